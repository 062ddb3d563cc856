#![no_main]
//! `cargo fuzz run signed_envelopes`: see `p2p::fuzzing::signed_envelopes`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| p2p::fuzzing::signed_envelopes(data));
