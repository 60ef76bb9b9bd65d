#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lodge::fuzzing::token_parser(data));
