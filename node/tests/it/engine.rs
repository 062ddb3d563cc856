//! The model store with the real models: what fits loads at start, the rest
//! on demand, the least recently used making room, too-large models refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use node::engine::manifest::ModelFiles;
use node::engine::{estimate_bytes, DeviceChoice, Engine, EngineConfig, EngineError};
use wire::jobs::{GenerationParams, JobInput, JobOutput, Prompt};
use wire::{MilliSats, Sha256Digest};

const BOTH: [&str; 2] = ["all-minilm-l6-v2", "tiny-gpt2"];

#[tokio::test]
async fn models_load_on_demand_and_the_least_recently_used_makes_room() {
    let root = crate::store_of("evict", &BOTH);
    let sizes: Vec<u64> = BOTH
        .iter()
        .map(|m| estimate_bytes(&ModelFiles::read(&root.join(m).join("manifest.json")).unwrap()))
        .collect();
    // Room for either model, not both.
    let config = EngineConfig {
        device: DeviceChoice::Cpu,
        memory_budget: Some(sizes[0] + sizes[1] - 1),
        ..Default::default()
    };
    let engine = Arc::new(Engine::load(&root, config).unwrap());
    let offers = engine.offers();
    assert_eq!(offers.len(), 2, "both are offered, loaded or not");
    let (minilm, gpt) = (offers[0].hash, offers[1].hash);
    assert_eq!(engine.resident(), vec![minilm], "what fits loads at start");

    let model = engine.get(&gpt).await.unwrap();
    assert_eq!(engine.resident(), vec![gpt], "MiniLM made room");
    let input = JobInput::TextGeneration {
        prompt: Prompt::Text("hi".into()),
        params: GenerationParams {
            max_tokens: 3,
            ..Default::default()
        },
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = model
        .run(input, MilliSats(u64::MAX), deadline, None)
        .await
        .unwrap();
    assert_eq!(done.usage.output_tokens, 3);

    let model = engine.get(&minilm).await.unwrap();
    assert_eq!(engine.resident(), vec![minilm]);
    let input = JobInput::Embedding {
        texts: vec!["back again".into()],
    };
    let done = model
        .run(input, MilliSats(u64::MAX), deadline, None)
        .await
        .unwrap();
    assert!(matches!(done.output, JobOutput::Embedding { dim: 384, .. }));
    assert!(matches!(
        engine.get(&Sha256Digest::of(b"nope")).await,
        Err(EngineError::UnknownModel(_))
    ));
}

#[tokio::test]
async fn a_model_larger_than_the_budget_is_refused_with_its_size() {
    let root = crate::store_of("small", &BOTH);
    let config = EngineConfig {
        device: DeviceChoice::Cpu,
        memory_budget: Some(4 << 20),
        ..Default::default()
    };
    let engine = Arc::new(Engine::load(&root, config).unwrap());
    let minilm = engine.offers()[0].hash;
    match engine.get(&minilm).await {
        Err(EngineError::TooLarge {
            need_mb, budget_mb, ..
        }) => {
            assert!(need_mb > 100, "{need_mb} MB");
            assert_eq!(budget_mb, 4);
        }
        Err(other) => panic!("expected TooLarge, got {other}"),
        Ok(_) => panic!("expected TooLarge, got a model"),
    }
}
