//! What Infernet's tests and benchmarks share, and its programs never use:
//! sample values of the wire types (`fixtures`) and the small kit every
//! benchmark needs (`bench`). A dev-dependency only, so that it changes no
//! feature of any crate the programs are built from.

pub mod bench;
pub mod fixtures;
