// The example guests, one `<name>.wasm` each: the one list that runtime/build.rs builds and
// runtime/src/guests.rs names (both `include!` it).
[
    "echo",
    "wordcount",
    "hashloop",
    "matmul",
    "nanfloat",
    "matmul-i8",
    "digits",
    "transformer",
]
