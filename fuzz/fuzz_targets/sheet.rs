#![no_main]
//! `cargo +nightly fuzz run sheet`: see leakwatch::fuzz::sheet.

libfuzzer_sys::fuzz_target!(|data: &[u8]| leakwatch::fuzz::sheet(data));
