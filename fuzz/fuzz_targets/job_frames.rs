#![no_main]
//! `cargo fuzz run job_frames`: see `p2p::fuzzing::job_frames`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| p2p::fuzzing::job_frames(data));
