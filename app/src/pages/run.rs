//! Run a job: pick a model, type two sentences, get their embeddings, their
//! similarity, and the node's signed receipt.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use wire::jobs::SubmitJob;
use wire::NodeId;

use crate::api::{list_models, run_job};
use crate::components::{short_id, JobResult};

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
    let model = RwSignal::new(String::new());
    let text_a = RwSignal::new(String::from("A man is playing a guitar."));
    let text_b = RwSignal::new(String::from("Someone is playing an instrument."));
    let run = Action::new(|job: &SubmitJob| {
        let job = job.clone();
        async move { run_job(job).await }
    });

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let mut chosen = model.get_untracked();
        if chosen.is_empty() {
            // The select shows its first option until the user changes it.
            if let Some(Ok(list)) = models.get_untracked() {
                chosen = list.first().map(|m| m.name.clone()).unwrap_or_default();
            }
        }
        run.dispatch(SubmitJob {
            model: chosen,
            input: serde_json::json!({ "texts": [text_a.get_untracked(), text_b.get_untracked()] }),
            node: pinned_node(),
            max_price_msat: None,
        });
    };

    view! {
        <h1>"Run a job"</h1>
        {move || {
            pinned_node()
                .map(|n| {
                    view! { <p>"On node " <span class="mono">{short_id(&n.to_string())}</span></p> }
                })
        }}
        <form class="run" on:submit=on_submit>
            <label>
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
                                    <select name="model" on:change:target=move |ev| model.set(ev.target().value())>
                                        {list
                                            .into_iter()
                                            .map(|m| {
                                                let label = format!(
                                                    "{} ({}, {} node(s), from {})",
                                                    m.name,
                                                    m.task.as_str(),
                                                    m.nodes,
                                                    m.cheapest,
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
            <label>
                "First sentence" <textarea name="text_a" rows="2" bind:value=text_a></textarea>
            </label>
            <label>
                "Second sentence" <textarea name="text_b" rows="2" bind:value=text_b></textarea>
            </label>
            <button type="submit" disabled=move || run.pending().get()>
                {move || if run.pending().get() { "Running…" } else { "Run" }}
            </button>
        </form>
        {move || {
            run.value()
                .get()
                .map(|result| match result {
                    Ok(record) => view! { <JobResult record /> }.into_any(),
                    Err(e) => {
                        view! { <p class="error" data-testid="run-error">{e.to_string()}</p> }.into_any()
                    }
                })
        }}
    }
}
