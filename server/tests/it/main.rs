//! End-to-end tests over real processes: the `server` binary (embedded
//! SurrealDB on disk, libp2p on loopback) and the `node` binary (libtorch,
//! the real all-MiniLM-L6-v2), on ports chosen by the OS.

mod accounts;
mod billing;
mod enrolment;
mod fleet;
mod harness;
mod jobs;
mod lightning;
mod network;
mod openai;
mod openapi;
mod registry;
mod remote_db;
mod reputation;
mod site;
mod slow_clients;
mod verify;
mod wallet;
