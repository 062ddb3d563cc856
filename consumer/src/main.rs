//! `infernet`: find providers and run jobs on the Infernet network directly,
//! without any server.
//!
//! ```text
//! infernet providers --peer /ip4/…/tcp/4001/p2p/12D3… all-minilm-l6-v2
//! infernet run --peer /ip4/…/tcp/4001/p2p/12D3… --model all-minilm-l6-v2 \
//!     --text "A man plays a guitar." --text "Someone makes music."
//! ```
//!
//! Progress goes to stderr, the result (JSON) to stdout. Exit codes: 0 done
//! (also when the reader of stdout went away first, as with `| head`),
//! 2 bad usage or input, 3 no provider found, 4 every provider failed,
//! 1 anything else (network set-up, a failed write).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use consumer::{Consumer, ConsumerError, JobSpec, Progress};
use p2p::Multiaddr;
use serde_json::json;
use wire::jobs::{cosine, GenerationParams, JobInput, JobOutput, Prompt};
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
        Ok(result) => match write_result(&mut std::io::stdout().lock(), &result) {
            Ok(()) => ExitCode::SUCCESS,
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
                | ConsumerError::NotInPool { .. } => 3,
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

/// Runs the command and returns its result.
async fn run(cli: Cli) -> Result<serde_json::Value, ConsumerError> {
    let (consumer, _task) = Consumer::join(cli.peers, Vec::new()).await?;
    match cli.command {
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
            Ok(json!({ "model": model, "providers": list }))
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
                    return Ok(result);
                }
                JobOutput::TextGeneration {
                    text,
                    finish_reason,
                } => {
                    say(String::new());
                    let mut result = base;
                    result["text"] = json!(text);
                    result["finish_reason"] = json!(finish_reason);
                    return Ok(result);
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
            Ok(result)
        }
    }
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
