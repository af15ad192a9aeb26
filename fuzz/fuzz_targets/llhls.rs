#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rtmp_proto_fuzz::checks::llhls(data));
