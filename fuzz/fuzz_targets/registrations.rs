#![no_main]
//! `cargo fuzz run registrations`: see `p2p::fuzzing::registrations`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| p2p::fuzzing::registrations(data));
