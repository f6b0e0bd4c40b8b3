#![no_main]
//! `cargo +nightly fuzz run rows`: see leakwatch::fuzz::rows.

libfuzzer_sys::fuzz_target!(|data: &[u8]| leakwatch::fuzz::rows(data));
