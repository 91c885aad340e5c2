#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tagsmith_fuzz::filter_size(data));
