//! Text generation on the tiny GPT-2 (`scripts/export_gpt2.py --tiny`):
//! token for token what transformers generates, alone and batched, and the
//! stream, stop sequences, budget, sampling, chat and cancelling.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use node::engine::{
    DeviceChoice, Engine, EngineConfig, EngineError, Finished, LoadedModel, DELTA_BUFFER,
};
use tokio::sync::mpsc;
use wire::jobs::{ChatMessage, FinishReason, GenerationParams, JobInput, JobOutput, Prompt, Role};
use wire::MilliSats;

fn model_dir() -> PathBuf {
    crate::models_dir().join("tiny-gpt2")
}

/// The tiny GPT-2 alone, in an engine of its own.
fn model() -> Arc<LoadedModel> {
    static MODEL: OnceLock<Arc<LoadedModel>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let root = crate::store_of("generation", &["tiny-gpt2"]);
            let config = EngineConfig {
                device: DeviceChoice::Cpu,
                max_batch: 8,
                ..Default::default()
            };
            let engine = Arc::new(Engine::load(&root, config).unwrap());
            let hash = engine.offers()[0].hash;
            // On a runtime of its own: each test has its own.
            std::thread::spawn(move || {
                let rt = tokio::runtime::Runtime::new().unwrap();
                rt.block_on(engine.get(&hash)).unwrap()
            })
            .join()
            .unwrap()
        })
        .clone()
}

fn input(prompt: &str, params: GenerationParams) -> JobInput {
    JobInput::TextGeneration {
        prompt: Prompt::Text(prompt.into()),
        params,
    }
}

fn greedy(max_tokens: u32) -> GenerationParams {
    GenerationParams {
        max_tokens,
        ..Default::default()
    }
}

async fn run(input: JobInput, budget: MilliSats) -> (Result<Finished, EngineError>, Vec<String>) {
    // Room for every piece: the test reads them only at the end.
    let (tx, mut rx) = mpsc::channel(1024);
    let done = model()
        .run(
            input,
            budget,
            Instant::now() + Duration::from_secs(60),
            Some(tx),
        )
        .await;
    let mut deltas = Vec::new();
    while let Some(d) = rx.recv().await {
        deltas.push(d);
    }
    (done, deltas)
}

fn text(f: &Finished) -> (&str, FinishReason) {
    match &f.output {
        JobOutput::TextGeneration {
            text,
            finish_reason,
        } => (text, *finish_reason),
        other => panic!("{other:?}"),
    }
}

const RICH: MilliSats = MilliSats(u64::MAX);

fn reference(prompts: &[&str], max_new: u32) -> Vec<Vec<u32>> {
    use std::io::Write;
    let python = std::env::var("INFERNET_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/reference_generation.py"
    );
    let mut child = std::process::Command::new(&python)
        .arg(script)
        .arg(model_dir())
        .arg(max_new.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not run {python}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(prompts).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "reference_generation.py failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

const PROMPTS: [&str; 5] = [
    "User: tell me a story about a lighthouse.\nAssistant:",
    "The market",
    "",
    "Ünïcödé and emoji 🚀 in a longer prompt about inference markets and nodes",
    "A",
];

#[tokio::test]
async fn greedy_tokens_match_transformers_one_by_one_and_batched() {
    let want = reference(&PROMPTS, 24);
    // One at a time.
    for (prompt, want) in PROMPTS.iter().zip(&want) {
        let (done, _) = run(input(prompt, greedy(24)), RICH).await;
        let done = done.unwrap();
        assert_eq!(&done.tokens, want, "prompt {prompt:?} alone");
    }
    // All at once, joining a long generation already running: they
    // are admitted between its decode steps and decode together.
    let long = tokio::spawn(run(input("Once upon a time", greedy(100)), RICH));
    let together: Vec<_> = PROMPTS
        .iter()
        .map(|p| tokio::spawn(run(input(p, greedy(24)), RICH)))
        .collect();
    for ((prompt, want), job) in PROMPTS.iter().zip(&want).zip(together) {
        let (done, _) = job.await.unwrap();
        assert_eq!(&done.unwrap().tokens, want, "prompt {prompt:?} batched");
    }
    let (long, _) = long.await.unwrap();
    let alone = run(input("Once upon a time", greedy(100)), RICH).await.0;
    assert_eq!(long.unwrap().tokens, alone.unwrap().tokens);
}

#[tokio::test]
async fn text_streams_in_order_and_stops_at_max_tokens() {
    let (done, deltas) = run(input("The market", greedy(17)), RICH).await;
    let done = done.unwrap();
    let (text, reason) = text(&done);
    assert_eq!(reason, FinishReason::Length);
    assert_eq!(done.usage.output_tokens, 17);
    assert_eq!(done.tokens.len(), 17);
    assert!(deltas.len() > 1, "{deltas:?}");
    assert_eq!(deltas.concat(), text, "the stream is the text, in order");
    assert!(done.usage.input_tokens > 0);
}

#[tokio::test]
async fn a_stop_sequence_ends_the_text_just_before_it() {
    let (free, _) = run(input("User: hello", greedy(40)), RICH).await;
    let free = free.unwrap();
    let (full, _) = text(&free);
    // A stop sequence taken from the middle of the free text.
    let chars: Vec<char> = full.chars().collect();
    assert!(chars.len() > 12, "{full:?}");
    let stop: String = chars[8..11].iter().collect();
    let before = &full[..full.find(&stop).unwrap()];
    let mut params = greedy(40);
    params.stop = vec!["never appears ~~~".into(), stop.clone()];
    let (cut, deltas) = run(input("User: hello", params), RICH).await;
    let cut = cut.unwrap();
    let (text, reason) = text(&cut);
    assert_eq!(reason, FinishReason::Stop);
    assert_eq!(text, before);
    assert_eq!(deltas.concat(), before, "no part of the stop was streamed");
}

#[tokio::test]
async fn the_budget_caps_output_tokens_and_an_empty_budget_is_refused() {
    let model = model();
    let (done, _) = run(input("The market", greedy(50)), RICH).await;
    let input_tokens = done.unwrap().usage.input_tokens;
    let offer = &model.offer;
    // Enough for the prompt and exactly 5 output tokens.
    let budget = offer.price_for(input_tokens, 5);
    let (capped, _) = run(input("The market", greedy(50)), budget).await;
    let capped = capped.unwrap();
    assert_eq!(capped.usage.output_tokens, 5);
    assert_eq!(text(&capped).1, FinishReason::Length);
    let (refused, _) = run(
        input("The market", greedy(50)),
        offer.price_for(input_tokens, 0),
    )
    .await;
    assert!(
        matches!(refused, Err(EngineError::OverBudget(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn seeded_sampling_repeats_and_other_seeds_differ() {
    let sampled = |seed| GenerationParams {
        max_tokens: 30,
        temperature: 1.0,
        seed: Some(seed),
        ..Default::default()
    };
    let a = run(input("A", sampled(42)), RICH).await.0.unwrap().tokens;
    let b = run(input("A", sampled(42)), RICH).await.0.unwrap().tokens;
    let c = run(input("A", sampled(43)), RICH).await.0.unwrap().tokens;
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[tokio::test]
async fn chats_use_the_template_and_long_prompts_are_refused() {
    let chat = JobInput::TextGeneration {
        prompt: Prompt::Chat(vec![ChatMessage {
            role: Role::User,
            content: "hello".into(),
        }]),
        params: greedy(8),
    };
    let (by_chat, _) = run(chat, RICH).await;
    let (by_text, _) = run(input("User: hello\nAssistant:", greedy(8)), RICH).await;
    assert_eq!(by_chat.unwrap().tokens, by_text.unwrap().tokens);
    let (long, _) = run(input(&"word ".repeat(400), greedy(8)), RICH).await;
    assert!(matches!(long, Err(EngineError::BadInput(_))), "{long:?}");
}

#[tokio::test]
async fn a_cancelled_generation_stops_and_frees_its_slot() {
    let model = model();
    let (tx, mut rx) = mpsc::channel(DELTA_BUFFER);
    let job = {
        let model = model.clone();
        tokio::spawn(async move {
            model
                .run(
                    input("Once upon a time", greedy(120)),
                    RICH,
                    Instant::now() + Duration::from_secs(60),
                    Some(tx),
                )
                .await
        })
    };
    assert!(rx.recv().await.is_some(), "the generation started");
    job.abort();
    // The worker notices, drops the sequence and with it the sender.
    while rx.recv().await.is_some() {}
    let (after, _) = run(input("A", greedy(4)), RICH).await;
    assert_eq!(after.unwrap().usage.output_tokens, 4);
}
