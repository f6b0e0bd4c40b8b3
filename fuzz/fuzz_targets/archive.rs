#![no_main]
//! `cargo +nightly fuzz run archive`: see leakwatch::fuzz::archive.

libfuzzer_sys::fuzz_target!(|data: &[u8]| leakwatch::fuzz::archive(data));
