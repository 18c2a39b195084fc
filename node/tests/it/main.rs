//! Integration tests of the `cairn` binary: one binary, a module per scenario.

mod run;
