#![no_main]
//! `cargo +nightly fuzz run device_file`: see leakwatch::fuzz::device_file.

libfuzzer_sys::fuzz_target!(|data: &[u8]| leakwatch::fuzz::device_file(data));
