#![no_main]
//! `cargo +nightly fuzz run scan_lines`: see leakwatch::fuzz::scan_lines.

libfuzzer_sys::fuzz_target!(|data: &[u8]| leakwatch::fuzz::scan_lines(data));
