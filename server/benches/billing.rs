//! What billing adds to a job: the hold of its budget with its record and
//! the capture of its price with its end, against the same job recorded
//! without money, in the same run on the same embedded database (SurrealKV,
//! the server's durability settings); then ledger movements per second,
//! over many accounts and over one busy account.
//!
//! `cargo bench -p server --bench billing` (release) or, as a quick smoke,
//! `cargo bench --profile dev -p server --bench billing -- --jobs 50 --movements 200`.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use testkit::bench::{arg, p50_p99_ms};

#[tokio::main]
async fn main() {
    let jobs = arg("--jobs", 500).max(5);
    let movements = arg("--movements", 2000).max(10);
    let workers = arg("--workers", 8).max(1);
    let dir = std::env::temp_dir().join(format!("infernet-bench-billing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "billing: {jobs} jobs each way on embedded SurrealKV ({}), then {movements} movements by {workers} tasks",
        if cfg!(debug_assertions) { "debug build" } else { "release build" }
    );
    let report = server::bench::billing(&dir, jobs, movements, workers)
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let (u50, u99) = p50_p99_ms(report.unbilled.clone());
    let (b50, b99) = p50_p99_ms(report.billed.clone());
    println!("  job record + end, no money:        p50 {u50:7.2} ms  p99 {u99:7.2} ms");
    println!("  job record + end, hold + capture:  p50 {b50:7.2} ms  p99 {b99:7.2} ms");
    println!(
        "  added by billing:                  p50 {:+7.2} ms  p99 {:+7.2} ms  (×{:.2} at p50)",
        b50 - u50,
        b99 - u99,
        b50 / u50.max(1e-9)
    );
    for (what, t) in [
        ("many accounts", report.spread),
        ("one account", report.one_account),
    ] {
        println!(
            "  ledger movements, {what:13}: {} in {:.2} s by {} tasks = {:.0} movements/s",
            t.movements,
            t.elapsed.as_secs_f64(),
            t.workers,
            t.per_sec()
        );
    }
}
