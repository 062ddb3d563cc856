//! The model catalogue that `GET /v1/models` and the app's picker show.

use testkit::fixtures::{node_info, offer, NOW};
use wire::catalog::catalog;
use wire::registry::{NodeStatus, Task};
use wire::{MilliSats, UnixMillis};

#[test]
fn each_model_is_listed_once_with_its_cheapest_offer_and_its_providers() {
    let mut dear = node_info(1, vec![offer("gpt", Task::TextGeneration, 900)]);
    dear.registered_at = UnixMillis(NOW.0 - 5_000);
    let mut cheap = node_info(
        2,
        vec![
            offer("gpt", Task::TextGeneration, 100),
            offer("minilm", Task::Embedding, 5),
        ],
    );
    cheap.models[0].token_price.output_msat = MilliSats(3);
    let listed = catalog(&[dear, cheap.clone()]);
    let names: Vec<&str> = listed.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["gpt", "minilm"], "sorted by name, once each");
    let gpt = &listed[0];
    assert_eq!(gpt.providers, 2);
    assert_eq!(gpt.price_msat, MilliSats(100));
    assert_eq!(gpt.token_price.output_msat, MilliSats(3));
    assert_eq!(gpt.hash, cheap.models[0].hash);
    assert_eq!(
        gpt.since,
        UnixMillis(NOW.0 - 5_000),
        "the earliest provider"
    );
    assert_eq!(
        gpt.price_label(),
        "from 0.100 sat/job + 3 sat/1k output tokens"
    );
}

#[test]
fn offline_and_paused_nodes_offer_nothing() {
    let mut offline = node_info(1, vec![offer("a", Task::Embedding, 1)]);
    offline.status = NodeStatus::Offline;
    let mut paused = node_info(2, vec![offer("b", Task::Embedding, 1)]);
    paused.accepting_jobs = false;
    let open = node_info(3, vec![offer("c", Task::Embedding, 1)]);
    let listed = catalog(&[offline, paused, open]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "c");
}
