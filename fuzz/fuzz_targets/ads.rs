#![no_main]
//! `cargo fuzz run ads`: see `p2p::fuzzing::ads`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| p2p::fuzzing::ads(data));
