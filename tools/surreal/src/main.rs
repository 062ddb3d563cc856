//! `surreal`: SurrealDB's own server entry point, as its `surreal` binary has it.
fn main() -> std::process::ExitCode {
    surrealdb_server::init(surrealdb_server::core::CommunityComposer())
}
