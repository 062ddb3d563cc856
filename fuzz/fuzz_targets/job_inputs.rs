#![no_main]
//! `cargo fuzz run job_inputs`: see `p2p::fuzzing::job_inputs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| p2p::fuzzing::job_inputs(data));
