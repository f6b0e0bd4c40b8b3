#![no_main]
//! `cargo +nightly fuzz run parse_stream`: see leakwatch::fuzz::parse_stream.

libfuzzer_sys::fuzz_target!(|data: &[u8]| leakwatch::fuzz::parse_stream(data));
