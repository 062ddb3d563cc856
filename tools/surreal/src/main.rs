//! `surreal`: SurrealDB's own server entry point, as its `surreal` binary has it.
// A release build needs more than the default 128 (the query engine's
// async bodies nest deeply), as SurrealDB's own binary sets.
#![recursion_limit = "256"]
fn main() -> std::process::ExitCode {
    surrealdb_server::init(surrealdb_server::core::CommunityComposer())
}
