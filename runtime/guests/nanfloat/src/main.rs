//! A float-heavy kernel whose results are NaN: prints one line per result, `f32 HEX` or
//! `f64 HEX` with the result's bit pattern, so a test can check that every NaN is canonical.
//!
//! The operands go through `black_box` so that the compiler cannot fold the NaNs at build
//! time: they must come from the wasm arithmetic at run time. Several operands are NaNs with a
//! sign bit or a payload, which native x86 arithmetic would propagate.
use std::hint::black_box;

fn f32_results() -> Vec<f32> {
    let zero = black_box(0.0f32);
    let inf = black_box(f32::INFINITY);
    let payload = black_box(f32::from_bits(0x7fc0_1234));
    let negative = black_box(f32::from_bits(0xffc0_0001));
    let mut acc = black_box(1.0f32);
    for i in 0..1000 {
        acc = acc * 1.000_1 + (i as f32).sqrt();
    }
    vec![
        zero / zero,
        inf - inf,
        zero * inf,
        black_box(-1.0f32).sqrt(),
        payload + 1.0,
        negative * 2.0,
        payload - negative,
        acc * f32::NAN.min(black_box(negative)) + zero,
        (acc - acc) / (acc - acc),
        black_box(payload).sqrt(),
    ]
}

fn f64_results() -> Vec<f64> {
    let zero = black_box(0.0f64);
    let inf = black_box(f64::INFINITY);
    let payload = black_box(f64::from_bits(0x7ff8_0000_dead_beef));
    let negative = black_box(f64::from_bits(0xfff8_0000_0000_0001));
    let mut acc = black_box(1.0f64);
    for i in 0..1000 {
        acc = acc * 1.000_1 + (i as f64).sqrt();
    }
    vec![
        zero / zero,
        inf - inf,
        zero * inf,
        black_box(-1.0f64).sqrt(),
        payload + 1.0,
        negative * 2.0,
        payload - negative,
        acc * f64::NAN.min(black_box(negative)) + zero,
        (acc - acc) / (acc - acc),
        black_box(payload).sqrt(),
        black_box(f32::from_bits(0xffc0_0003)) as f64 + 0.0,
    ]
}

fn main() {
    for x in f32_results() {
        println!("f32 {:08x}", x.to_bits());
    }
    for x in f64_results() {
        println!("f64 {:016x}", x.to_bits());
    }
}
