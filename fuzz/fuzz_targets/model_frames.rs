#![no_main]
//! `cargo fuzz run model_frames`: see `p2p::fuzzing::model_frames`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| p2p::fuzzing::model_frames(data));
