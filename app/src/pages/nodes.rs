//! The registry, live: every node with its hardware, models and status.

use std::time::Duration;

use leptos::prelude::*;
use wire::registry::{NodeQuery, NodeSort};

use crate::api::{list_nodes, NodesView};
use crate::components::{NodeTable, Pager, Pages, StaleNote};
use crate::pages::ticker;

fn parse_opt<T: std::str::FromStr>(s: &str) -> Option<T> {
    let s = s.trim();
    if s.is_empty() {
        None
    } else {
        s.parse().ok()
    }
}

/// Nodes per page.
const PER_PAGE: u32 = 50;

#[component]
pub(crate) fn NodesPage() -> impl IntoView {
    let online_only = RwSignal::new(false);
    let model = RwSignal::new(String::new());
    let gpu = RwSignal::new(String::from("any"));
    let min_vram = RwSignal::new(String::new());
    let max_price = RwSignal::new(String::new());
    let pool = RwSignal::new(String::new());
    let min_reputation = RwSignal::new(String::new());
    let by_reputation = RwSignal::new(false);
    let tick = ticker(Duration::from_secs(3));
    let pages = Pages::new();

    let filters = Memo::new(move |_| NodeQuery {
        online: online_only.get().then_some(true),
        model: Some(model.get().trim().to_owned()).filter(|m| !m.is_empty()),
        gpu: match gpu.get().as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        },
        min_vram_gb: parse_opt(&min_vram.get()),
        max_price: parse_opt(&max_price.get()),
        limit: Some(PER_PAGE),
        cursor: None,
        task: None,
        pool: Some(pool.get().trim().to_lowercase()).filter(|p| !p.is_empty()),
        min_reputation: parse_opt::<u8>(&min_reputation.get()).map(|r| r.min(100)),
        sort: by_reputation.get().then_some(NodeSort::Reputation),
    });
    // Other filters: back to the first page.
    Effect::new(move |_| {
        filters.track();
        pages.reset();
    });
    let query = move || NodeQuery {
        cursor: pages.cursor(),
        ..filters.get()
    };
    let nodes = Resource::new(move || (query(), tick.get()), |(q, _)| list_nodes(q));
    // The last answer: shown, marked stale, while the server cannot be
    // reached (offline, or the installed app opened without a network).
    let last = StoredValue::new(None::<NodesView>);

    view! {
        <h1>"Nodes"</h1>
        <form class="filters" on:submit=|ev| ev.prevent_default()>
            <label>
                <input type="checkbox" name="online" bind:checked=online_only />
                " Online only"
            </label>
            <label>
                "Model " <input type="text" name="model" placeholder="name or hash" bind:value=model />
            </label>
            <label>
                "GPU "
                <select name="gpu" on:change:target=move |ev| gpu.set(ev.target().value())>
                    <option value="any">"any"</option>
                    <option value="yes">"with GPU"</option>
                    <option value="no">"CPU only"</option>
                </select>
            </label>
            <label>
                "Min VRAM (GB) " <input type="number" name="min_vram_gb" min="0" step="1" bind:value=min_vram />
            </label>
            <label>
                "Max price (msat) " <input type="number" name="max_price" min="0" step="1" bind:value=max_price />
            </label>
            <label>
                "Pool " <input type="text" name="pool" placeholder="e.g. eu-west" bind:value=pool />
            </label>
            <label>
                "Min reputation " <input type="number" name="min_reputation" min="0" max="100" step="1" bind:value=min_reputation />
            </label>
            <label>
                <input type="checkbox" name="by_reputation" bind:checked=by_reputation />
                " Best reputation first"
            </label>
        </form>
        <Transition fallback=|| view! { <p class="empty">"Loading nodes…"</p> }>
            {move || Suspend::new(async move {
                let (view, stale) = match nodes.await {
                    Ok(view) => {
                        last.set_value(Some(view.clone()));
                        (view, None)
                    }
                    Err(e) => match last.get_value() {
                        Some(view) => (view, Some(e.to_string())),
                        None => return view! { <p class="error">{e.to_string()}</p> }.into_any(),
                    },
                };
                let count = view.list.nodes.len();
                let more = view.list.next_cursor.is_some();
                let stale = stale
                    .map(|_| view! { <StaleNote id="nodes-stale" what="the nodes" at=view.now /> });
                view! {
                    {stale}
                    <p class="count">
                        {match (pages.cursor().is_some(), more) {
                            (false, false) => format!("{count} node(s)"),
                            _ => format!("{count} node(s) on this page"),
                        }}
                    </p>
                    <NodeTable nodes=view.list.nodes now=view.now />
                    <Pager pages next=view.list.next_cursor />
                }
                    .into_any()
            })}
        </Transition>
    }
}
