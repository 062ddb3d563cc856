//! `infernet`: find providers and run jobs on the Infernet network directly,
//! without any server.
//!
//! ```text
//! infernet providers --peer /ip4/…/tcp/4001/p2p/12D3… all-minilm-l6-v2
//! infernet run --peer /ip4/…/tcp/4001/p2p/12D3… --model all-minilm-l6-v2 \
//!     --text "A man plays a guitar." --text "Someone makes music."
//! ```
//!
//! `infernet check --canaries canaries.json [--provider <peer id>]` runs
//! known answers (`infernet-node --make-canaries`) as jobs and compares.
//!
//! Progress goes to stderr, the result (JSON) to stdout. Exit codes: 0 done
//! (also when the reader of stdout went away first, as with `| head`),
//! 2 bad usage or input, 3 no provider found, 4 every provider failed
//! (`check`: a job failed), 5 (`check`) an answer disagreed with the known
//! one, 1 anything else (network set-up, a failed write).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use consumer::canaries::{CaseOutcome, SetCheck};
use consumer::{Consumer, ConsumerError, JobSpec, Progress};
use p2p::{Multiaddr, PeerId};
use serde_json::json;
use wire::jobs::{cosine, GenerationParams, JobInput, JobOutput, Prompt};
use wire::verify::CanarySet;
use wire::{MilliSats, UnixMillis};

#[derive(Parser, Debug)]
#[command(
    name = "infernet",
    version,
    about = "Run inference jobs on the Infernet peer-to-peer network"
)]
struct Cli {
    /// A peer to join the network through: `/ip4/…/tcp/…/p2p/<peer id>`.
    /// Any node or server will do. Repeat for more.
    #[arg(
        long = "peer",
        env = "INFERNET_PEERS",
        value_delimiter = ',',
        required = true
    )]
    peers: Vec<Multiaddr>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Lists the providers of a model, best first.
    Providers {
        /// Model name or content hash.
        model: String,
        /// Only providers at or under this price (millisatoshis per job).
        #[arg(long)]
        max_price: Option<u64>,
    },
    /// Runs a job on the best provider, failing over to the next: an
    /// embedding job (`--text`) or a text generation (`--prompt`, streamed
    /// to stderr as it is generated).
    Run {
        /// Model name or content hash.
        #[arg(long)]
        model: String,
        /// A text to embed; repeat for more (with two, the similarity is shown).
        #[arg(
            long = "text",
            required_unless_present_any = ["prompt", "tensors"],
            conflicts_with_all = ["prompt", "tensors"]
        )]
        texts: Vec<String>,
        /// Named input tensors for a tensor model, as JSON:
        /// `[{"name": "x", "shape": [1, 4], "data": {"dtype": "f32", "values": [...]}}]`.
        #[arg(long, conflicts_with = "prompt")]
        tensors: Option<String>,
        /// A prompt to continue (text generation models).
        #[arg(long)]
        prompt: Option<String>,
        /// Most tokens to generate.
        #[arg(long, default_value_t = 128)]
        max_tokens: u32,
        /// Sampling temperature; 0 is greedy.
        #[arg(long, default_value_t = 0.0)]
        temperature: f32,
        /// The most to pay, in millisatoshis.
        #[arg(long)]
        max_price: Option<u64>,
        /// Only providers that joined this public pool (e.g. a region).
        #[arg(long)]
        pool: Option<String>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Print the vectors in the result, not just their size.
        #[arg(long)]
        vectors: bool,
        /// Only this provider (its peer id): no failover to another.
        #[arg(long)]
        provider: Option<PeerId>,
    },
    /// Runs known answers (a canaries file from `infernet-node
    /// --make-canaries`) as jobs and compares each answer with the known
    /// one as servers do: exit 0 when every answer agrees, 5 when one
    /// does not, 4 when a job failed.
    Check {
        /// The canaries file.
        #[arg(long)]
        canaries: PathBuf,
        /// Only this provider (its peer id); else each job goes to the
        /// best provider of the model, as any job does.
        #[arg(long)]
        provider: Option<PeerId>,
        /// Give up on a job after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("INFERNET_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            say(format!("error: cannot start the async runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok((result, code)) => match write_result(&mut std::io::stdout().lock(), &result) {
            Ok(()) => ExitCode::from(code),
            Err(e) => {
                say(format!("error: could not write the result: {e}"));
                ExitCode::from(1)
            }
        },
        Err(e) => {
            say(format!("error: {e}"));
            ExitCode::from(match e {
                ConsumerError::BadInput(_) => 2,
                ConsumerError::NoProviders(_)
                | ConsumerError::TooExpensive { .. }
                | ConsumerError::NotInPool { .. }
                | ConsumerError::ProviderNotFound { .. } => 3,
                ConsumerError::AllFailed(_) => 4,
                ConsumerError::Network(_) => 1,
            })
        }
    }
}

/// Writes the result as one line of JSON. A reader that has gone away
/// (`infernet … | head -c 100`) is not an error: there is nobody left to
/// tell.
fn write_result(out: &mut impl Write, result: &serde_json::Value) -> std::io::Result<()> {
    match writeln!(out, "{result}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// A line of progress on stderr; never fails the run (stderr may be closed).
fn say(line: String) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Runs the command and returns its result and exit code.
async fn run(cli: Cli) -> Result<(serde_json::Value, u8), ConsumerError> {
    // The file is read before joining: a bad one fails at once.
    let sets = match &cli.command {
        Command::Check { canaries, .. } => read_canaries(canaries)?,
        _ => Vec::new(),
    };
    let (consumer, _task) = Consumer::join(cli.peers, Vec::new()).await?;
    match cli.command {
        Command::Check {
            provider, timeout, ..
        } => {
            let mut checked = Vec::with_capacity(sets.len());
            for set in &sets {
                say(format!(
                    "checking {} ({} known answers made on {})",
                    set.model,
                    set.cases.len(),
                    set.device
                ));
                let check = consumer
                    .check_canaries(set, provider, Duration::from_secs(timeout))
                    .await;
                say(summary(&check));
                checked.push(check);
            }
            Ok(check_result(&checked))
        }
        Command::Providers { model, max_price } => {
            let found = consumer.discover(&model).await?;
            if found.is_empty() {
                return Err(ConsumerError::NoProviders(model));
            }
            let task = found[0].offer.task;
            let ranked = consumer::rank(found, task, max_price.map(MilliSats), UnixMillis::now());
            let list: Vec<_> = ranked
                .iter()
                .map(|c| {
                    json!({
                        "peer_id": c.peer.to_string(),
                        "model": c.offer.name,
                        "model_hash": c.offer.hash.to_string(),
                        "price_msat": c.offer.price_msat.0,
                        "token_price": c.offer.token_price,
                        "price": c.offer.price_label(),
                        "device": c.offer.device,
                        "gpus": c.ad.hardware.gpus,
                        "load": c.ad.load,
                        "rtt_ms": c.rtt.as_secs_f64() * 1e3,
                        "multiaddrs": c.ad.multiaddrs,
                    })
                })
                .collect();
            Ok((json!({ "model": model, "providers": list }), 0))
        }
        Command::Run {
            model,
            texts,
            tensors,
            prompt,
            max_tokens,
            temperature,
            max_price,
            pool,
            timeout,
            vectors,
            provider,
        } => {
            let input = match (prompt, tensors) {
                (_, Some(json)) => JobInput::Tensor {
                    inputs: serde_json::from_str(&json)
                        .map_err(|e| ConsumerError::BadInput(format!("--tensors: {e}")))?,
                },
                (Some(prompt), None) => JobInput::TextGeneration {
                    prompt: Prompt::Text(prompt),
                    params: GenerationParams {
                        max_tokens,
                        temperature,
                        ..Default::default()
                    },
                },
                (None, None) => JobInput::Embedding { texts },
            };
            input
                .validate()
                .map_err(|e| ConsumerError::BadInput(e.to_string()))?;
            let spec = JobSpec {
                model,
                input,
                max_price: max_price.map(MilliSats),
                pool,
                provider,
                timeout: Duration::from_secs(timeout),
            };
            let done = consumer
                .run(&spec, |p| match p {
                    Progress::Trying { provider, price } => {
                        say(format!("trying {provider} at {price}"))
                    }
                    Progress::Accepted {
                        provider,
                        queue_position,
                    } => say(format!(
                        "{provider} accepted the job (queue position {queue_position})"
                    )),
                    Progress::Output { items, .. } => say(format!("received {items} vector(s)")),
                    Progress::Text { delta, .. } => {
                        use std::io::Write;
                        let mut err = std::io::stderr();
                        let _ = err.write_all(delta.as_bytes());
                        let _ = err.flush();
                    }
                    Progress::Failed(a) => say(format!(
                        "{} failed after {} ms: {}",
                        a.provider, a.ms, a.outcome
                    )),
                })
                .await?;
            let base = json!({
                "job_id": done.job_id.to_string(),
                "provider": done.provider.to_string(),
                "model": done.offer.name,
                "model_hash": done.offer.hash.to_string(),
                "price_msat": done.receipt.price_msat.0,
                "usage": done.receipt.usage,
                "receipt": done.receipt_envelope,
                "receipt_verified": true,
                "failed_attempts": done.failed_attempts,
            });
            let (dim, vs) = match &done.output {
                JobOutput::Embedding { dim, vectors } => (dim, vectors),
                JobOutput::Tensor { outputs } => {
                    let mut result = base;
                    result["outputs"] = json!(outputs);
                    return Ok((result, 0));
                }
                JobOutput::TextGeneration {
                    text,
                    finish_reason,
                } => {
                    say(String::new());
                    let mut result = base;
                    result["text"] = json!(text);
                    result["finish_reason"] = json!(finish_reason);
                    return Ok((result, 0));
                }
            };
            let similarity = (vs.len() == 2).then(|| cosine(&vs[0], &vs[1]));
            let mut result = base;
            result["dim"] = json!(dim);
            result["count"] = json!(vs.len());
            result["similarity"] = json!(similarity);
            if vectors {
                result["vectors"] = json!(vs);
            }
            Ok((result, 0))
        }
    }
}

/// A canaries file: every set checked before any job runs.
fn read_canaries(path: &std::path::Path) -> Result<Vec<CanarySet>, ConsumerError> {
    let bad = |e: String| ConsumerError::BadInput(format!("{}: {e}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let sets: Vec<CanarySet> = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if sets.is_empty() {
        return Err(bad("no canaries in it".into()));
    }
    for set in &sets {
        set.check().map_err(bad)?;
    }
    Ok(sets)
}

/// One line per set for stderr.
fn summary(check: &SetCheck) -> String {
    if let Some(why) = &check.skipped {
        return format!("{}: not checked: {why}", check.model);
    }
    let agreed = check.count(|o| *o == CaseOutcome::Agree);
    let mut line = format!(
        "{}: {agreed} of {} answers agree",
        check.model,
        check.cases.len()
    );
    for case in &check.cases {
        match &case.outcome {
            CaseOutcome::Agree => {}
            CaseOutcome::Disagree { detail } => {
                line.push_str(&format!("\n  case {}: disagrees: {detail}", case.case))
            }
            CaseOutcome::Failed { error } => {
                line.push_str(&format!("\n  case {}: failed: {error}", case.case))
            }
        }
    }
    line
}

/// The check's JSON and exit code: 5 when an answer disagreed, else 4
/// when a job failed, else 3 when nothing could be checked, else 0.
fn check_result(checked: &[SetCheck]) -> (serde_json::Value, u8) {
    let total = |f: fn(&CaseOutcome) -> bool| checked.iter().map(|c| c.count(f)).sum::<usize>();
    let agreed = total(|o| matches!(o, CaseOutcome::Agree));
    let disagreed = total(|o| matches!(o, CaseOutcome::Disagree { .. }));
    let failed = total(|o| matches!(o, CaseOutcome::Failed { .. }));
    let code = if disagreed > 0 {
        5
    } else if failed > 0 {
        4
    } else if agreed == 0 {
        3
    } else {
        0
    };
    let result = json!({
        "checked": agreed + disagreed + failed,
        "agreed": agreed,
        "disagreed": disagreed,
        "failed": failed,
        "sets": checked,
    });
    (result, code)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stands for a pipe whose reader has gone.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    /// Stands for a full disk.
    struct Full;

    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::StorageFull.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn set(outcomes: &[CaseOutcome], skipped: bool) -> SetCheck {
        SetCheck {
            model: "m".into(),
            model_hash: wire::ModelHash::of(b"m"),
            task: wire::registry::Task::Tensor,
            made_on: "cpu".into(),
            skipped: skipped.then(|| "nobody serves it".into()),
            cases: outcomes
                .iter()
                .enumerate()
                .map(|(case, outcome)| consumer::canaries::CaseCheck {
                    case,
                    provider: Some("p".into()),
                    device: Some("cuda:0".into()),
                    outcome: outcome.clone(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_check_exits_5_on_a_wrong_answer_4_on_a_failed_job_3_when_nothing_ran() {
        let agree = CaseOutcome::Agree;
        let wrong = CaseOutcome::Disagree {
            detail: "cosine 0.2".into(),
        };
        let failed = CaseOutcome::Failed {
            error: "timed out".into(),
        };
        let (json, code) = check_result(&[set(&[agree.clone(), agree.clone()], false)]);
        assert_eq!(
            (code, json["checked"].as_u64(), json["agreed"].as_u64()),
            (0, Some(2), Some(2))
        );
        assert_eq!(json["sets"][0]["cases"][0]["outcome"], "agree");
        assert_eq!(json["sets"][0]["cases"][0]["device"], "cuda:0");
        let (json, code) = check_result(&[
            set(&[agree.clone(), failed.clone()], false),
            set(std::slice::from_ref(&wrong), false),
        ]);
        assert_eq!(
            (code, json["disagreed"].as_u64(), json["failed"].as_u64()),
            (5, Some(1), Some(1))
        );
        assert_eq!(json["sets"][1]["cases"][0]["detail"], "cosine 0.2");
        assert_eq!(check_result(&[set(&[agree, failed], false)]).1, 4);
        let (json, code) = check_result(&[set(&[], true)]);
        assert_eq!(code, 3);
        assert_eq!(json["sets"][0]["skipped"], "nobody serves it");
        assert!(summary(&set(&[wrong], false)).contains("case 0: disagrees: cosine 0.2"));
    }

    #[test]
    fn a_canaries_file_is_checked_before_any_job() {
        let dir = std::env::temp_dir().join(format!("infernet-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = read_canaries(&dir.join("none.json")).unwrap_err();
        assert!(matches!(missing, ConsumerError::BadInput(_)), "{missing}");
        let empty = dir.join("empty.json");
        std::fs::write(&empty, "[]").unwrap();
        assert!(read_canaries(&empty)
            .unwrap_err()
            .to_string()
            .contains("no canaries"));
        let garbled = dir.join("garbled.json");
        std::fs::write(&garbled, "{\"cases\": 1}").unwrap();
        assert!(matches!(
            read_canaries(&garbled),
            Err(ConsumerError::BadInput(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_reader_that_went_away_is_not_an_error_but_a_failed_write_is() {
        let result = json!({"job_id": "x"});
        assert!(write_result(&mut ClosedPipe, &result).is_ok());
        assert!(write_result(&mut Full, &result).is_err());
        let mut out = Vec::new();
        write_result(&mut out, &result).unwrap();
        assert_eq!(out, b"{\"job_id\":\"x\"}\n");
    }
}
