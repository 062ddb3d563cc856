//! The node's models: which are loaded, load or unload each, fetch one by
//! hash from the network (its progress live from telemetry), and restart
//! the engine.

use leptos::prelude::*;
use wire::fleet::{Action, CommandId};
use wire::registry::ModelOffer;
use wire::ModelHash;

use super::{CommandLine, Commander, LiveTelemetry};
use crate::components::short_id;

#[component]
pub(super) fn Models(
    commander: Commander,
    telemetry: LiveTelemetry,
    models: Vec<ModelOffer>,
) -> impl IntoView {
    let shown = RwSignal::new(None::<Result<CommandId, String>>);
    let fetch = RwSignal::new(String::new());
    let rows = models
        .into_iter()
        .map(|m| {
            let name = m.name.clone();
            let loaded = {
                let name = name.clone();
                move || {
                    telemetry.with(|t| t.as_ref().is_some_and(|t| t.loaded_models.contains(&name)))
                }
            };
            let hash = m.hash;
            view! {
                <li data-model=name.clone()>
                    <strong>{name.clone()}</strong>
                    <span class="muted">{format!(" {} · {}", m.task.as_str(), m.device)}</span>
                    {
                        let loaded = loaded.clone();
                        move || {
                            if loaded() {
                                view! { <span class="badge online">"loaded"</span> }.into_any()
                            } else {
                                view! { <span class="badge offline">"on disk"</span> }.into_any()
                            }
                        }
                    }
                    <button
                        type="button"
                        class="secondary load"
                        on:click=move |_| commander.send(Action::LoadModel { model: hash }, shown)
                    >
                        "Load"
                    </button>
                    <button
                        type="button"
                        class="secondary unload"
                        on:click=move |_| commander.send(Action::UnloadModel { model: hash }, shown)
                    >
                        "Unload"
                    </button>
                </li>
            }
        })
        .collect_view();
    let downloads = move || {
        telemetry.with(|t| {
            t.as_ref()
                .map(|t| {
                    t.downloads
                        .iter()
                        .map(|d| {
                            let pct = if d.total_bytes == 0 {
                                0.0
                            } else {
                                d.done_bytes as f64 * 100.0 / d.total_bytes as f64
                            };
                            let label = format!(
                                "{} {:.0} % ({} of {} MB)",
                                short_id(&d.model.to_string()),
                                pct,
                                d.done_bytes >> 20,
                                d.total_bytes >> 20
                            );
                            view! {
                                <li class="download">
                                    <label>
                                        {label.clone()}
                                        <progress max="100" value=format!("{pct:.1}") aria-label=label></progress>
                                    </label>
                                </li>
                            }
                        })
                        .collect_view()
                })
                .unwrap_or_default()
        })
    };
    let start_fetch = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match fetch.get().trim().parse::<ModelHash>() {
            Ok(model) => {
                commander.send(Action::FetchModel { model }, shown);
                fetch.set(String::new());
            }
            Err(_) => shown.set(Some(Err(
                "A model's hash is 64 hex characters (its SHA-256)".into(),
            ))),
        }
    };
    // Restarting asks first: it unloads every model.
    let asking = RwSignal::new(false);
    view! {
        <section class="card models">
            <h2>"Models"</h2>
            <ul class="models">{rows}</ul>
            <ul class="downloads">{downloads}</ul>
            <form class="inline" on:submit=start_fetch>
                <label>
                    "Fetch a model by hash"
                    <input
                        type="text"
                        name="fetch"
                        placeholder="sha-256 of the model file"
                        autocomplete="off"
                        prop:value=move || fetch.get()
                        on:input=move |ev| fetch.set(event_target_value(&ev))
                    />
                </label>
                <button type="submit" id="fetch-model">"Fetch"</button>
            </form>
            {move || {
                if asking.get() {
                    view! {
                        <div class="row" role="group" aria-label="Restart the engine?">
                            <span>"Every model is unloaded and loaded again; running jobs finish first."</span>
                            <button
                                type="button"
                                id="restart-engine-yes"
                                on:click=move |_| {
                                    asking.set(false);
                                    commander.send(Action::RestartEngine, shown);
                                }
                            >
                                "Restart"
                            </button>
                            <button type="button" class="secondary" on:click=move |_| asking.set(false)>
                                "Cancel"
                            </button>
                        </div>
                    }
                        .into_any()
                } else {
                    view! {
                        <button
                            type="button"
                            class="secondary"
                            id="restart-engine"
                            on:click=move |_| asking.set(true)
                        >
                            "Restart engine"
                        </button>
                    }
                        .into_any()
                }
            }}
            <CommandLine commander shown />
        </section>
    }
}
