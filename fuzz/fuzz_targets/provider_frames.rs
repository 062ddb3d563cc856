#![no_main]
//! `cargo fuzz run provider_frames`: see `p2p::fuzzing::provider_frames`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| p2p::fuzzing::provider_frames(data));
