//! My nodes: the operator's fleet, live. Each enrolled node with whether
//! its fleet link is open, its last telemetry (CPU, RAM, each GPU, jobs,
//! loaded models, reachability), and commands (pause, resume, drain) for
//! one node or a selection; the newest commands with their results; and
//! release. Changes arrive as server-sent events (`/api/v1/fleet/events`)
//! and show at once, without polling.

use std::collections::HashSet;

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::Deserialize;
use wire::fleet::{
    Action, AdmissionState, AlertView, CommandView, FleetEvent, FleetNode, NewCommand,
};
use wire::{NodeId, UnixMillis};

mod alerts;
mod card;
mod commands;
mod record;
mod team;

use alerts::{AlertSettingsForm, Alerts};
use card::NodeCard;
use commands::Commands;
use record::Record;
use team::{Acting, TeamSection};

use crate::api::{fleet_view, release_node};
use crate::auth::RequireAccount;
use crate::browser::{call, listen_events, stop_events};
use crate::components::StaleNote;
use crate::pwa::NeedsNetwork;

/// The event types the page listens to; `open` and `error` are the
/// stream's own (connected, lost: the browser then tries again).
const EVENTS: [&str; 8] = [
    "telemetry",
    "online",
    "offline",
    "command",
    "alert",
    "lagged",
    "open",
    "error",
];
/// Commands the page keeps on show.
const LOG: usize = 20;
/// Node cards per page.
const PER_PAGE: usize = 24;

/// Page `page` (from 0; past the end: the last) of `ids`, `per` a page:
/// the page's ids, the page shown and how many pages there are (at least
/// one).
fn page_of<T: Copy>(ids: &[T], page: usize, per: usize) -> (Vec<T>, usize, usize) {
    let pages = ids.len().div_ceil(per).max(1);
    let page = page.min(pages - 1);
    let start = page * per;
    let end = (start + per).min(ids.len());
    (ids[start..end].to_vec(), page, pages)
}

#[component]
pub(crate) fn MyNodesPage() -> impl IntoView {
    view! {
        <h1>"My nodes"</h1>
        <RequireAccount>
            <MyNodes />
        </RequireAccount>
    }
}

/// `?fleet=<owner>` appended to a fleet URL: the owner whose fleet the
/// page shows (a team member's view), if not one's own.
pub(crate) fn with_fleet(url: &str, fleet: &Option<String>) -> String {
    match fleet {
        Some(f) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}fleet={f}")
        }
        None => url.to_owned(),
    }
}

#[component]
fn MyNodes() -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    let fleet = Memo::new(move |_| query.with(|q| q.get("fleet")));
    // Bumped to read the whole fleet again (after a release, or when the
    // event stream fell behind).
    let version = RwSignal::new(0u32);
    let view_data = Resource::new(move || (version.get(), fleet.get()), |(_, f)| fleet_view(f));
    view! {
        <Transition fallback=|| view! { <p class="empty">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match view_data.await {
                    Ok(v) if v.nodes.is_empty() => {
                        view! {
                            <Acting acting=v.acting.clone() />
                            <p class="empty">
                                "No nodes yet. Make an enrolment token in "
                                <a href="/settings#enrol-tokens">"Settings"</a>
                                " and start a node with "
                                <code>"--enroll <token>"</code>
                                "."
                            </p>
                            <TeamSection team=v.team own=v.acting.is_none() />
                        }
                            .into_any()
                    }
                    Ok(v) => {
                        let own = v.acting.is_none();
                        view! {
                            <Acting acting=v.acting.clone() />
                            <Fleet
                                nodes=v.nodes
                                log=v.log
                                alerts=v.alerts
                                now=v.now
                                version
                                fleet=fleet.get_untracked()
                                own
                            />
                            <TeamSection team=v.team own />
                        }
                            .into_any()
                    }
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// Which nodes the list shows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Show {
    All,
    Online,
    Offline,
    Paused,
}

impl Show {
    fn parse(s: &str) -> Show {
        match s {
            "online" => Show::Online,
            "offline" => Show::Offline,
            "paused" => Show::Paused,
            _ => Show::All,
        }
    }

    fn admits(self, n: &FleetNode) -> bool {
        let admission = n.telemetry.as_ref().map(|t| t.admission);
        match self {
            Show::All => true,
            Show::Online => n.online,
            Show::Offline => !n.online,
            Show::Paused => n.online && admission.is_some_and(|a| a != AdmissionState::Open),
        }
    }
}

fn matches(n: &FleetNode, query: &str) -> bool {
    if query.is_empty() {
        return true;
    }
    let q = query.to_lowercase();
    n.node_id.to_string().to_lowercase().contains(&q)
        || n.tags.iter().any(|t| t.contains(&q))
        || n.telemetry
            .as_ref()
            .is_some_and(|t| t.pools.iter().any(|p| p.contains(&q)))
        || n.info.as_ref().is_some_and(|i| {
            i.models.iter().any(|m| m.name.to_lowercase().contains(&q))
                || i.hardware
                    .gpus
                    .iter()
                    .any(|g| g.name.to_lowercase().contains(&q))
        })
}

/// Applies one pushed event to the page's state.
fn apply(
    event: FleetEvent,
    nodes: RwSignal<Vec<FleetNode>>,
    log: RwSignal<Vec<CommandView>>,
    alerts: RwSignal<Vec<AlertView>>,
    now: RwSignal<UnixMillis>,
) {
    match event {
        FleetEvent::Alert(a) => alerts.update(|l| match l.iter_mut().find(|x| x.id == a.id) {
            Some(x) => *x = *a,
            None => {
                l.insert(0, *a);
                l.truncate(LOG);
            }
        }),
        FleetEvent::Telemetry {
            node_id,
            at,
            telemetry,
        } => {
            now.set(at);
            nodes.update(|ns| {
                if let Some(n) = ns.iter_mut().find(|n| n.node_id == node_id) {
                    n.online = true;
                    n.last_seen = Some(at);
                    n.telemetry = Some(*telemetry);
                }
            });
        }
        FleetEvent::Online { node_id, at } | FleetEvent::Offline { node_id, at, .. } => {
            let online = matches!(event, FleetEvent::Online { .. });
            now.set(at);
            nodes.update(|ns| {
                if let Some(n) = ns.iter_mut().find(|n| n.node_id == node_id) {
                    n.online = online;
                    n.since = Some(at);
                }
            });
        }
        FleetEvent::Command(c) => log.update(|l| match l.iter_mut().find(|x| x.id == c.id) {
            Some(x) => *x = *c,
            None => {
                l.insert(0, *c);
                l.truncate(LOG);
            }
        }),
    }
}

#[component]
fn Fleet(
    nodes: Vec<FleetNode>,
    log: Vec<CommandView>,
    alerts: Vec<AlertView>,
    now: UnixMillis,
    version: RwSignal<u32>,
    /// Whose fleet (a team member's view), if not one's own.
    fleet: Option<String>,
    /// One's own fleet: alert settings are the owner's alone.
    own: bool,
) -> impl IntoView {
    let events_url = with_fleet("/api/v1/fleet/events", &fleet);
    let commands_url = StoredValue::new(with_fleet("/api/v1/fleet/commands", &fleet));
    let fleet_for_cards = StoredValue::new(fleet.clone());
    let nodes = RwSignal::new(nodes);
    let log = RwSignal::new(log);
    let alerts = RwSignal::new(alerts);
    let now = RwSignal::new(now);
    let selected = RwSignal::new(HashSet::<NodeId>::new());
    let query = RwSignal::new(String::new());
    let show = RwSignal::new(Show::All);
    let error = RwSignal::new(None::<String>);
    let live = RwSignal::new(false);
    // The server's stream was lost (offline, or the server is down).
    let stale = RwSignal::new(false);

    // Live: every change to these nodes, as it happens.
    Effect::new(move |_| {
        let id = listen_events(&events_url, &EVENTS, move |kind, data| {
            match kind.as_str() {
                // Lost: what is shown stays, marked as not up to date.
                "error" => {
                    live.set(false);
                    stale.set(true);
                    return;
                }
                // Back after a loss: changes may have been missed, so the
                // whole fleet is read again.
                "open" if stale.get_untracked() => {
                    version.update(|v| *v += 1);
                    return;
                }
                "lagged" => {
                    version.update(|v| *v += 1);
                    return;
                }
                _ => live.set(true),
            }
            if let Ok(event) = serde_json::from_str::<FleetEvent>(&data) {
                apply(event, nodes, log, alerts, now);
            }
        });
        on_cleanup(move || stop_events(id));
    });

    let shown = Memo::new(move |_| {
        let q = query.get();
        let s = show.get();
        nodes.with(|ns| {
            ns.iter()
                .filter(|n| s.admits(n) && matches(n, &q))
                .map(|n| n.node_id)
                .collect::<Vec<_>>()
        })
    });
    // The shown nodes a page at a time; another filter starts again at the
    // first page.
    let page = RwSignal::new(0usize);
    Effect::new(move |_| {
        query.track();
        show.track();
        page.set(0);
    });
    let paged = Memo::new(move |_| shown.with(|ids| page_of(ids, page.get(), PER_PAGE)));
    let send = move |targets: Vec<NodeId>, action: Action| {
        error.set(None);
        if targets.is_empty() {
            return;
        }
        let url = commands_url.get_value();
        spawn_local(async move {
            #[derive(Deserialize)]
            struct Sent {
                commands: Vec<CommandView>,
            }
            let body = NewCommand {
                nodes: targets,
                tag: None,
                action,
                expires_in_secs: None,
            };
            match call::<Sent>("POST", &url, Some(&body)).await {
                Ok(sent) => log.update(|l| {
                    for c in sent.commands.into_iter().rev() {
                        if !l.iter().any(|x| x.id == c.id) {
                            l.insert(0, c);
                        }
                    }
                    l.truncate(LOG);
                }),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let release = move |id: String| {
        error.set(None);
        spawn_local(async move {
            match release_node(id).await {
                Ok(()) => version.update(|v| *v += 1),
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    let bulk = move |action: Action| {
        let targets: Vec<NodeId> = selected
            .with(|s| shown.with(|ids| ids.iter().filter(|id| s.contains(id)).copied().collect()));
        send(targets, action);
    };
    let all_shown_selected = move || {
        let ids = shown.get();
        !ids.is_empty() && selected.with(|s| ids.iter().all(|id| s.contains(id)))
    };
    let counts = move || {
        nodes.with(|ns| {
            let online = ns.iter().filter(|n| n.online).count();
            format!("{online} of {} online", ns.len())
        })
    };
    view! {
        <div class="fleet-bar">
            <input
                type="search"
                id="fleet-filter"
                placeholder="Filter: id, model, GPU, tag, pool"
                aria-label="Filter nodes"
                prop:value=move || query.get()
                on:input=move |ev| query.set(event_target_value(&ev))
            />
            <select
                id="fleet-show"
                aria-label="Show"
                on:change=move |ev| show.set(Show::parse(&event_target_value(&ev)))
            >
                <option value="all">"All"</option>
                <option value="online">"Online"</option>
                <option value="offline">"Offline"</option>
                <option value="paused">"Paused, draining or closed"</option>
            </select>
            <label class="check">
                <input
                    type="checkbox"
                    id="fleet-select-all"
                    prop:checked=all_shown_selected
                    on:change=move |ev| {
                        let on = event_target_checked(&ev);
                        let ids = shown.get();
                        selected.update(|s| {
                            for id in ids {
                                if on {
                                    s.insert(id);
                                } else {
                                    s.remove(&id);
                                }
                            }
                        });
                    }
                />
                "Select all shown"
            </label>
            <span class="count" id="fleet-count">
                {counts}
                {move || if live.get() { " · live" } else { "" }}
            </span>
        </div>
        <div class="row bulk" aria-label="Commands for the selected nodes">
            <span class="count">
                {move || format!("{} selected", selected.with(HashSet::len))}
            </span>
            <button
                type="button"
                class="secondary"
                id="bulk-pause"
                disabled=move || selected.with(HashSet::is_empty)
                on:click=move |_| bulk(Action::Pause)
            >
                "Pause"
            </button>
            <button
                type="button"
                class="secondary"
                id="bulk-drain"
                disabled=move || selected.with(HashSet::is_empty)
                on:click=move |_| bulk(Action::Drain)
            >
                "Drain"
            </button>
            <button
                type="button"
                class="secondary"
                id="bulk-resume"
                disabled=move || selected.with(HashSet::is_empty)
                on:click=move |_| bulk(Action::Resume)
            >
                "Resume"
            </button>
        </div>
        <NeedsNetwork />
        {move || {
            stale
                .get()
                .then(|| view! { <StaleNote id="fleet-stale" what="your nodes" at=now.get() /> })
        }}
        {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        <ul class="fleet">
            <For each=move || paged.with(|p| p.0.clone()) key=|id| *id let:id>
                <NodeCard id nodes now selected send release fleet=fleet_for_cards.get_value() />
            </For>
        </ul>
        <Show when=move || paged.with(|p| p.2 > 1)>
            <nav class="pager" aria-label="Pages of nodes">
                <button
                    type="button"
                    class="prev"
                    disabled=move || paged.with(|p| p.1 == 0)
                    on:click=move |_| page.set(paged.with_untracked(|p| p.1.saturating_sub(1)))
                >
                    "← Previous"
                </button>
                <span class="muted">
                    {move || {
                        let (_, at, pages) = paged.get();
                        let total = shown.with(Vec::len);
                        let first = at * PER_PAGE + 1;
                        format!("{first}–{} of {total} · page {} of {pages}", (first + PER_PAGE - 1).min(total), at + 1)
                    }}
                </span>
                <button
                    type="button"
                    class="next"
                    disabled=move || paged.with(|p| p.1 + 1 >= p.2)
                    on:click=move |_| page.set(paged.with_untracked(|p| p.1 + 1))
                >
                    "Next →"
                </button>
            </nav>
        </Show>
        {move || {
            shown.with(Vec::is_empty).then(|| view! { <p class="empty">"No node matches."</p> })
        }}
        <h2>"Alerts"</h2>
        <Alerts alerts now />
        {own.then(|| view! { <AlertSettingsForm /> })}
        <h2>"Recent commands"</h2>
        <Commands log now />
        <Record fleet />
    }
}

#[cfg(test)]
mod tests {
    use super::page_of;

    #[test]
    fn node_cards_go_a_page_at_a_time_and_a_page_past_the_end_is_the_last() {
        let ids: Vec<u32> = (0..50).collect();
        assert_eq!(page_of(&ids, 0, 24), ((0..24).collect(), 0, 3));
        assert_eq!(page_of(&ids, 1, 24), ((24..48).collect(), 1, 3));
        assert_eq!(page_of(&ids, 2, 24), (vec![48, 49], 2, 3));
        // The list shrank under the page shown (nodes released, a filter).
        assert_eq!(page_of(&ids[..30], 2, 24), ((24..30).collect(), 1, 2));
        assert_eq!(page_of::<u32>(&[], 3, 24), (vec![], 0, 1));
    }
}
