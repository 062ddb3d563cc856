//! Run a job: pick a model, then, by its task, chat with it (the reply
//! streams in), embed two sentences (their similarity), or send it named
//! tensors; every result comes with its cost and the node's signed receipt.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use wire::catalog::ModelListing;
use wire::jobs::SubmitJob;
use wire::registry::Task;
use wire::NodeId;

use crate::api::{list_models, run_job};
use crate::components::{short_id, JobResult};
use crate::pages::chat::Chat;
use crate::pwa::NeedsNetwork;

#[component]
pub(crate) fn RunPage() -> impl IntoView {
    let query = use_query_map();
    let pinned_node = move || {
        query
            .read()
            .get("node")
            .and_then(|n| n.parse::<NodeId>().ok())
    };
    let models = Resource::new(|| (), |_| list_models());
    let picked = RwSignal::new(String::new());
    // The select shows its first option until the user changes it.
    let chosen = Signal::derive(move || {
        let picked = picked.get();
        let list: Vec<ModelListing> = models.get().and_then(Result::ok).unwrap_or_default();
        list.iter()
            .find(|m| m.name == picked)
            .or_else(|| list.first())
            .cloned()
    });
    let model_name = Signal::derive(move || chosen.get().map(|m| m.name).unwrap_or_default());

    view! {
        <h1>"Run a job"</h1>
        {move || {
            pinned_node()
                .map(|n| {
                    view! { <p>"On node " <span class="mono">{short_id(&n.to_string())}</span></p> }
                })
        }}
        <label class="model-pick">
            "Model "
            <Suspense fallback=|| view! { <span>"loading models…"</span> }>
                {move || Suspend::new(async move {
                    match models.await {
                        Ok(list) if list.is_empty() => {
                            view! { <span class="error">"No online node offers a model yet."</span> }
                                .into_any()
                        }
                        Ok(list) => {
                            view! {
                                <select name="model" on:change:target=move |ev| picked.set(ev.target().value())>
                                    {list
                                        .into_iter()
                                        .map(|m| {
                                            let label = format!(
                                                "{} ({}, {} node(s), {})",
                                                m.name,
                                                m.task.as_str(),
                                                m.providers,
                                                m.price_label(),
                                            );
                                            view! { <option value=m.name>{label}</option> }
                                        })
                                        .collect_view()}
                                </select>
                            }
                                .into_any()
                        }
                        Err(e) => view! { <span class="error">{e.to_string()}</span> }.into_any(),
                    }
                })}
            </Suspense>
        </label>
        {move || match chosen.get().map(|m| m.task) {
            Some(Task::TextGeneration) => view! { <Chat model=model_name /> }.into_any(),
            Some(Task::Tensor) => {
                view! { <TensorForm model=model_name node=Signal::derive(pinned_node) /> }.into_any()
            }
            Some(Task::Embedding) | None => {
                view! { <EmbeddingForm model=model_name node=Signal::derive(pinned_node) /> }
                    .into_any()
            }
        }}
    }
}

/// Shows a job's outcome: its record with the verified receipt, or the error.
fn outcome(run: Action<SubmitJob, Result<wire::jobs::JobRecord, ServerFnError>>) -> impl IntoView {
    move || {
        run.value().get().map(|result| match result {
            Ok(record) => view! { <JobResult record /> }.into_any(),
            Err(e) => {
                view! { <p class="error" data-testid="run-error">{e.to_string()}</p> }.into_any()
            }
        })
    }
}

fn submit_action() -> Action<SubmitJob, Result<wire::jobs::JobRecord, ServerFnError>> {
    Action::new(|job: &SubmitJob| {
        let job = job.clone();
        async move { run_job(job).await }
    })
}

#[component]
fn EmbeddingForm(model: Signal<String>, node: Signal<Option<NodeId>>) -> impl IntoView {
    let text_a = RwSignal::new(String::from("A man is playing a guitar."));
    let text_b = RwSignal::new(String::from("Someone is playing an instrument."));
    let run = submit_action();
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        run.dispatch(SubmitJob {
            model: model.get_untracked(),
            input: serde_json::json!({ "texts": [text_a.get_untracked(), text_b.get_untracked()] }),
            node: node.get_untracked(),
            pool: None,
            max_price_msat: None,
            bid_msat: None,
        });
    };
    view! {
        <form class="run" on:submit=on_submit>
            <label>
                "First sentence" <textarea name="text_a" rows="2" bind:value=text_a></textarea>
            </label>
            <label>
                "Second sentence" <textarea name="text_b" rows="2" bind:value=text_b></textarea>
            </label>
            <button type="submit" disabled=move || run.pending().get()>
                {move || if run.pending().get() { "Running…" } else { "Run" }}
            </button>
            <NeedsNetwork />
        </form>
        {outcome(run)}
    }
}

#[component]
fn TensorForm(model: Signal<String>, node: Signal<Option<NodeId>>) -> impl IntoView {
    let inputs = RwSignal::new(String::from(
        r#"[{"name": "x", "shape": [1, 4], "data": {"dtype": "f32", "values": [3, 4, 0, 0]}},
 {"name": "scale", "shape": [1], "data": {"dtype": "f32", "values": [1]}}]"#,
    ));
    let bad_json = RwSignal::new(None::<String>);
    let run = submit_action();
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        match serde_json::from_str::<serde_json::Value>(&inputs.get_untracked()) {
            Ok(list) => {
                bad_json.set(None);
                run.dispatch(SubmitJob {
                    model: model.get_untracked(),
                    input: serde_json::json!({ "inputs": list }),
                    node: node.get_untracked(),
                    pool: None,
                    max_price_msat: None,
                    bid_msat: None,
                });
            }
            Err(e) => bad_json.set(Some(format!("inputs are not JSON: {e}"))),
        }
    };
    view! {
        <form class="run" on:submit=on_submit>
            <label>
                "Input tensors (JSON)" <textarea name="tensors" rows="6" class="mono" bind:value=inputs></textarea>
            </label>
            <button type="submit" disabled=move || run.pending().get()>
                {move || if run.pending().get() { "Running…" } else { "Run" }}
            </button>
            <NeedsNetwork />
        </form>
        {move || bad_json.get().map(|e| view! { <p class="error">{e}</p> })}
        {outcome(run)}
    }
}
