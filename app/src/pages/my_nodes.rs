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
    Action, AdmissionState, AlertSettings, AlertSettingsView, AlertView, CommandStatus,
    CommandView, FleetEvent, FleetNode, NewCommand, ReachabilityKind, Team, TeamGrant, TeamMember,
    TeamRole,
};
use wire::{NodeId, UnixMillis};

use crate::api::{fleet_stats, fleet_view, release_node};
use crate::auth::RequireAccount;
use crate::browser::{call, listen_events, stop_events};
use crate::components::{ago, sats, short_id};

/// The event types the page listens to.
const EVENTS: [&str; 6] = [
    "telemetry",
    "online",
    "offline",
    "command",
    "alert",
    "lagged",
];
/// Commands the page keeps on show.
const LOG: usize = 20;

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

    // Live: every change to these nodes, as it happens.
    Effect::new(move |_| {
        let id = listen_events(&events_url, &EVENTS, move |kind, data| {
            live.set(true);
            if kind == "lagged" {
                version.update(|v| *v += 1);
                return;
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
                placeholder="Filter: id, model, GPU"
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
                <option value="paused">"Paused or draining"</option>
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
        {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        <ul class="fleet">
            <For each=move || shown.get() key=|id| *id let:id>
                <NodeCard id nodes now selected send release fleet=fleet_for_cards.get_value() />
            </For>
        </ul>
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

#[component]
fn Alerts(alerts: RwSignal<Vec<AlertView>>, now: RwSignal<UnixMillis>) -> impl IntoView {
    view! {
        <ul class="commands alerts" id="fleet-alerts">
            {move || {
                let now = now.get();
                let items = alerts.get();
                if items.is_empty() {
                    return view! { <li class="empty">"No alerts."</li> }.into_any();
                }
                items
                    .into_iter()
                    .map(|a| {
                        let node = a.node_id.to_string();
                        let (class, state) = match a.resolved_at {
                            None => ("badge offline", "firing"),
                            Some(_) => ("badge online", "resolved"),
                        };
                        view! {
                            <li class="alert" data-kind=a.kind.as_str() data-state=state>
                                <span class=class>{state}</span>
                                " "
                                <strong>{a.kind.as_str().replace('_', " ")}</strong>
                                " · "
                                <span class="mono">{short_id(&node)}</span>
                                " "
                                <span class="muted">{ago(now, a.started_at)}</span>
                                <div>{a.detail}</div>
                            </li>
                        }
                    })
                    .collect_view()
                    .into_any()
            }}
        </ul>
    }
}

/// When alerts fire, and the webhook they go to: read and saved in the
/// browser, only when opened.
#[component]
fn AlertSettingsForm() -> impl IntoView {
    let settings = RwSignal::new(None::<AlertSettings>);
    let secret = RwSignal::new(String::new());
    let status = RwSignal::new(None::<Result<String, String>>);
    let load = move |_| {
        if settings.with(Option::is_some) {
            return;
        }
        spawn_local(async move {
            match call::<AlertSettingsView>("GET", "/api/v1/fleet/alert-settings", None::<&()>)
                .await
            {
                Ok(v) => {
                    secret.set(v.webhook_secret);
                    settings.set(Some(v.settings));
                }
                Err(e) => status.set(Some(Err(e))),
            }
        });
    };
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(s) = settings.get() else { return };
        spawn_local(async move {
            status.set(None);
            match call::<AlertSettingsView>("PUT", "/api/v1/fleet/alert-settings", Some(&s)).await {
                Ok(v) => {
                    settings.set(Some(v.settings));
                    status.set(Some(Ok("Saved.".into())));
                }
                Err(e) => status.set(Some(Err(e))),
            }
        });
    };
    let num = move |get: fn(&AlertSettings) -> u64, set: fn(&mut AlertSettings, u64)| {
        (
            move || settings.with(|s| s.as_ref().map(|s| get(s).to_string()).unwrap_or_default()),
            move |ev| {
                if let Ok(v) = event_target_value(&ev).trim().parse() {
                    settings.update(|s| {
                        if let Some(s) = s {
                            set(s, v);
                        }
                    });
                }
            },
        )
    };
    let (offline, set_offline) = num(
        |s| s.offline_after_secs / 60,
        |s, v| s.offline_after_secs = v * 60,
    );
    let (temp, set_temp) = num(
        |s| u64::from(s.gpu_temp_c),
        |s, v| s.gpu_temp_c = u32::try_from(v).unwrap_or(u32::MAX),
    );
    let (fail, set_fail) = num(
        |s| u64::from(s.failure_rate_pct),
        |s, v| s.failure_rate_pct = u32::try_from(v).unwrap_or(u32::MAX),
    );
    view! {
        <details class="card alert-settings" on:toggle=load>
            <summary>"Alert settings and webhook"</summary>
            <form on:submit=save>
                <label>
                    "Webhook URL (JSON, signed with HMAC-SHA256; empty: only here)"
                    <input
                        type="url"
                        id="alert-webhook"
                        placeholder="https://…"
                        prop:value=move || settings.with(|s| s.as_ref().and_then(|s| s.webhook_url.clone()).unwrap_or_default())
                        on:input=move |ev| {
                            let v = event_target_value(&ev);
                            settings.update(|s| {
                                if let Some(s) = s {
                                    s.webhook_url = (!v.trim().is_empty()).then(|| v.trim().to_owned());
                                }
                            });
                        }
                    />
                </label>
                <label>
                    "Offline for (minutes)"
                    <input type="number" min="1" inputmode="numeric" prop:value=offline on:input=set_offline />
                </label>
                <label>
                    "GPU temperature (°C)"
                    <input type="number" min="30" max="120" inputmode="numeric" prop:value=temp on:input=set_temp />
                </label>
                <label>
                    "Failed jobs in the last hour (%)"
                    <input type="number" min="1" max="100" inputmode="numeric" prop:value=fail on:input=set_fail />
                </label>
                <p class="muted">
                    "Signing secret: " <code class="invoice" id="alert-secret">{move || secret.get()}</code>
                    " — check " <code>"X-Infernet-Signature"</code> " = sha256 HMAC of "
                    <code>"<X-Infernet-Timestamp>.<body>"</code> "."
                </p>
                <button type="submit" id="alert-save">"Save"</button>
            </form>
            {move || {
                status
                    .get()
                    .map(|s| match s {
                        Ok(m) => view! { <p class="muted" role="status">{m}</p> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
                    })
            }}
        </details>
    }
}

/// Each node's record over the last week: the evidence its reputation is
/// built from, and what it earned.
#[component]
fn Record(fleet: Option<String>) -> impl IntoView {
    let csv = with_fleet("/api/v1/fleet/earnings?format=csv", &fleet);
    let stats = Resource::new(move || fleet.clone(), |f| fleet_stats(7, f));
    view! {
        <h2>"Record, last 7 days"</h2>
        <p>
            <a href=csv download="infernet-earnings.csv" id="earnings-csv">
                "Earnings per day, node, device and model (CSV)"
            </a>
        </p>
        <Transition fallback=|| view! { <p class="empty">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match stats.await {
                    Ok(s) => {
                        let rows = s
                            .nodes
                            .into_iter()
                            .map(|n| {
                                let id = n.node_id.to_string();
                                let days = n
                                    .uptime_by_day
                                    .iter()
                                    .enumerate()
                                    .map(|(i, d)| {
                                        let h = f64::from(d.uptime_pct.clamp(0.0, 100.0)) * 0.2;
                                        view! {
                                            <rect
                                                x=format!("{}", i * 6)
                                                y=format!("{:.1}", 20.0 - h)
                                                width="5"
                                                height=format!("{h:.1}")
                                            >
                                                <title>{format!("{:.0} %", d.uptime_pct)}</title>
                                            </rect>
                                        }
                                    })
                                    .collect_view();
                                view! {
                                    <tr class="record" data-node=id.clone()>
                                        <td class="mono">{short_id(&id)}</td>
                                        <td>
                                            <svg class="uptime-days" viewBox="0 0 42 20" role="img" aria-label="uptime per day">
                                                {days}
                                            </svg>
                                            {format!(" {:.1} %", n.uptime_pct)}
                                        </td>
                                        <td>
                                            {n
                                                .completion_pct
                                                .map(|c| format!("{c:.1} % of {}", n.jobs_succeeded + n.jobs_failed))
                                                .unwrap_or_else(|| "no jobs".into())}
                                        </td>
                                        <td>{n.median_latency_ms.map(|l| format!("{l} ms")).unwrap_or_default()}</td>
                                        <td>{sats(n.earned_msat.0)}</td>
                                    </tr>
                                }
                            })
                            .collect_view();
                        view! {
                            <div class="table-scroll">
                                <table class="record">
                                    <thead>
                                        <tr>
                                            <th>"Node"</th>
                                            <th>"Uptime"</th>
                                            <th>"Completed"</th>
                                            <th>"Median latency"</th>
                                            <th>"Earned"</th>
                                        </tr>
                                    </thead>
                                    <tbody>{rows}</tbody>
                                </table>
                            </div>
                        }
                            .into_any()
                    }
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn NodeCard(
    id: NodeId,
    nodes: RwSignal<Vec<FleetNode>>,
    now: RwSignal<UnixMillis>,
    selected: RwSignal<HashSet<NodeId>>,
    send: impl Fn(Vec<NodeId>, Action) + Copy + Send + Sync + 'static,
    release: impl Fn(String) + Copy + Send + Sync + 'static,
    fleet: Option<String>,
) -> impl IntoView {
    let node = Memo::new(move |_| nodes.with(|ns| ns.iter().find(|n| n.node_id == id).cloned()));
    let text = id.to_string();
    let short = short_id(&text);
    let href = with_fleet(&format!("/my-nodes/{text}"), &fleet);
    let (pause, drain, resume) = (send, send, send);
    let to_release = text.clone();
    let body = move || {
        let Some(n) = node.get() else {
            return ().into_any();
        };
        let now = now.get();
        let status = if n.online {
            view! { <span class="badge online">"online"</span> }.into_any()
        } else {
            view! { <span class="badge offline">"offline"</span> }.into_any()
        };
        let Some(t) = n.telemetry.clone() else {
            return view! {
                <div class="node-status">{status}</div>
                <p class="empty">"No telemetry yet: the node has not connected since the server started."</p>
            }
                .into_any();
        };
        let admission = match t.admission {
            AdmissionState::Open => None,
            AdmissionState::Paused => Some(("badge pending", "paused")),
            AdmissionState::Draining => Some(("badge pending", "draining")),
            AdmissionState::Drained => Some(("badge pending", "drained")),
        }
        .map(|(class, word)| view! { <span class=class data-admission=word>{word}</span> });
        let reach = match t.reachability.kind {
            ReachabilityKind::Public => "public",
            ReachabilityKind::Relayed => "relayed",
            ReachabilityKind::Unreachable => "unreachable",
            ReachabilityKind::Unknown => "checking",
        };
        let gpus = t
            .gpus
            .iter()
            .map(|g| {
                view! {
                    <div>
                        <dt>{format!("GPU {}", g.index)}</dt>
                        <dd>
                            {format!(
                                "{:.0} % · {:.0} °C · {:.0} W · {:.1}/{:.1} GiB",
                                g.util_pct,
                                g.temp_c,
                                g.power_w,
                                g.mem_used_mib as f64 / 1024.0,
                                g.mem_total_mib as f64 / 1024.0,
                            )}
                        </dd>
                    </div>
                }
            })
            .collect_view();
        let seen = n
            .last_seen
            .map(|s| ago(now, s))
            .unwrap_or_else(|| "never".into());
        let since = n.since.map(|s| ago(now, s)).unwrap_or_default();
        let models = if t.loaded_models.is_empty() {
            "none loaded".to_owned()
        } else {
            t.loaded_models.join(", ")
        };
        view! {
            <div class="node-status">
                {status}
                {admission}
                <span class="muted">{if n.online { "since " } else { "offline since " }} {since}</span>
            </div>
            <dl class="gauges">
                <div>
                    <dt>"CPU"</dt>
                    <dd data-gauge="cpu">{format!("{:.0} %", t.cpu_pct)}</dd>
                </div>
                <div>
                    <dt>"RAM"</dt>
                    <dd>
                        {format!(
                            "{:.1}/{:.1} GiB",
                            t.ram_used_mib as f64 / 1024.0,
                            t.ram_total_mib as f64 / 1024.0,
                        )}
                    </dd>
                </div>
                {gpus}
                <div>
                    <dt>"Jobs"</dt>
                    <dd>{format!("{} running, {} queued", t.running_jobs, t.queued_jobs)}</dd>
                </div>
                <div>
                    <dt>"Models"</dt>
                    <dd>{models}</dd>
                </div>
                <div>
                    <dt>"Reach"</dt>
                    <dd title=t.reachability.reason.clone().unwrap_or_default()>{reach}</dd>
                </div>
                <div>
                    <dt>"Seen"</dt>
                    <dd>{seen}</dd>
                </div>
            </dl>
            {t
                .reachability
                .reason
                .filter(|_| t.reachability.kind == ReachabilityKind::Unreachable)
                .map(|r| view! { <p class="error">{r}</p> })}
        }
            .into_any()
    };
    view! {
        <li class="fleet-node card" data-node=text.clone()>
            <div class="node-head">
                <label class="check">
                    <input
                        type="checkbox"
                        aria-label=format!("Select {short}")
                        prop:checked=move || selected.with(|s| s.contains(&id))
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            selected.update(|s| {
                                if on {
                                    s.insert(id);
                                } else {
                                    s.remove(&id);
                                }
                            });
                        }
                    />
                </label>
                <a class="mono" href=href>{short.clone()}</a>
            </div>
            {body}
            <div class="row">
                <button type="button" class="secondary pause" on:click=move |_| pause(vec![id], Action::Pause)>
                    "Pause"
                </button>
                <button type="button" class="secondary drain" on:click=move |_| drain(vec![id], Action::Drain)>
                    "Drain"
                </button>
                <button type="button" class="secondary resume" on:click=move |_| resume(vec![id], Action::Resume)>
                    "Resume"
                </button>
                <button type="button" class="secondary release" on:click=move |_| release(to_release.clone())>
                    "Release"
                </button>
            </div>
        </li>
    }
}

fn status_class(s: CommandStatus) -> &'static str {
    match s {
        CommandStatus::Succeeded => "badge online",
        CommandStatus::Failed | CommandStatus::Expired | CommandStatus::Refused => "badge offline",
        CommandStatus::Queued | CommandStatus::Sent | CommandStatus::Acked => "badge pending",
    }
}

fn status_word(s: CommandStatus) -> &'static str {
    match s {
        CommandStatus::Queued => "waiting for the node",
        CommandStatus::Sent => "sent",
        CommandStatus::Acked => "running",
        CommandStatus::Succeeded => "done",
        CommandStatus::Failed => "failed",
        CommandStatus::Expired => "expired",
        CommandStatus::Refused => "refused",
    }
}

#[component]
fn Commands(log: RwSignal<Vec<CommandView>>, now: RwSignal<UnixMillis>) -> impl IntoView {
    view! {
        <ul class="commands" id="fleet-commands">
            {move || {
                let now = now.get();
                let items = log.get();
                if items.is_empty() {
                    return view! { <li class="empty">"No commands yet."</li> }.into_any();
                }
                items
                    .into_iter()
                    .map(|c| {
                        let node = c.node_id.to_string();
                        view! {
                            <li class="command" data-command=c.id.to_string() data-status=format!("{:?}", c.status).to_lowercase()>
                                <strong>{c.action.describe()}</strong>
                                " · "
                                <span class="mono">{short_id(&node)}</span>
                                " "
                                <span class=status_class(c.status)>{status_word(c.status)}</span>
                                " "
                                <span class="muted">{c.detail.unwrap_or_default()}</span>
                                " "
                                <span class="muted">{ago(now, c.created_at)}</span>
                            </li>
                        }
                    })
                    .collect_view()
                    .into_any()
            }}
        </ul>
    }
}

/// Says whose fleet this is when it is not one's own.
#[component]
fn Acting(acting: Option<TeamMember>) -> impl IntoView {
    acting.map(|a| {
        let role = match a.role {
            TeamRole::Viewer => "viewer",
            TeamRole::Manager => "manager",
        };
        view! {
            <p class="acting card" id="fleet-acting">
                "The fleet of " <strong>{a.name}</strong> ", as " {role} ". "
                <a href="/my-nodes">"Back to my nodes"</a>
            </p>
        }
    })
}

/// One's team (who may see or run one's fleet), and the fleets one is in.
#[component]
fn TeamSection(team: Team, own: bool) -> impl IntoView {
    let members = RwSignal::new(team.members);
    let error = RwSignal::new(None::<String>);
    let account = RwSignal::new(String::new());
    let role = RwSignal::new("viewer".to_owned());
    let invite = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        error.set(None);
        let who = account.get().trim().to_owned();
        let as_role = if role.get() == "manager" {
            TeamRole::Manager
        } else {
            TeamRole::Viewer
        };
        spawn_local(async move {
            let url = format!("/api/v1/fleet/team/{who}");
            let grant = TeamGrant { role: as_role };
            match call::<serde_json::Value>("PUT", &url, Some(&grant)).await {
                Ok(_) => match call::<Team>("GET", "/api/v1/fleet/team", None::<&()>).await {
                    Ok(t) => {
                        members.set(t.members);
                        account.set(String::new());
                    }
                    Err(e) => error.set(Some(e)),
                },
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let revoke = move |who: String| {
        error.set(None);
        spawn_local(async move {
            let url = format!("/api/v1/fleet/team/{who}");
            match call::<serde_json::Value>("DELETE", &url, None::<&()>).await {
                Ok(_) => members.update(|m| m.retain(|x| x.account.to_string() != who)),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let fleets = team
        .fleets
        .into_iter()
        .map(|f| {
            let href = format!("/my-nodes?fleet={}", f.account);
            let role = match f.role {
                TeamRole::Viewer => "viewer",
                TeamRole::Manager => "manager",
            };
            view! {
                <li>
                    <a href=href class="team-fleet">{f.name}</a>
                    " · " {role}
                </li>
            }
        })
        .collect_view();
    view! {
        <h2>"Team"</h2>
        {own
            .then(|| {
                view! {
                    <p class="muted">
                        "Let another account see your fleet (viewer) or also command it (manager). They find their account id in Settings."
                    </p>
                    <ul class="rows" id="team-members">
                        {move || {
                            members
                                .get()
                                .into_iter()
                                .map(|m| {
                                    let who = m.account.to_string();
                                    let (shown, data) = (who.clone(), who.clone());
                                    let role = match m.role {
                                        TeamRole::Viewer => "viewer",
                                        TeamRole::Manager => "manager",
                                    };
                                    view! {
                                        <li class="team-member" data-account=data>
                                            <span>{m.name}</span>
                                            <span class="mono">{shown}</span>
                                            <span class="badge pending">{role}</span>
                                            <button type="button" class="secondary" on:click=move |_| revoke(who.clone())>
                                                "Remove"
                                            </button>
                                        </li>
                                    }
                                })
                                .collect_view()
                        }}
                    </ul>
                    <form class="inline" id="team-invite" on:submit=invite>
                        <input
                            type="text"
                            id="team-account"
                            placeholder="acct_…"
                            aria-label="Account id"
                            prop:value=move || account.get()
                            on:input=move |ev| account.set(event_target_value(&ev))
                        />
                        <select id="team-role" aria-label="Role" on:change=move |ev| role.set(event_target_value(&ev))>
                            <option value="viewer">"viewer"</option>
                            <option value="manager">"manager"</option>
                        </select>
                        <button type="submit">"Add"</button>
                    </form>
                }
            })}
        {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        <h3>"Fleets you are in"</h3>
        <ul id="team-fleets">{fleets}</ul>
    }
}
