//! One node of the fleet, live: its state, gauges and commands.

use std::collections::HashSet;

use leptos::prelude::*;
use wire::fleet::{Action, AdmissionState, FleetNode, ReachabilityKind};
use wire::{NodeId, UnixMillis};

use super::with_fleet;
use crate::components::{ago, schedule_note, short_id};

#[component]
pub(super) fn NodeCard(
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
            AdmissionState::OffSchedule => Some(("badge pending", "off schedule")),
        }
        .map(|(class, word)| view! { <span class=class data-admission=word>{word}</span> });
        let schedule = schedule_note(now, t.schedule_status)
            .map(|note| view! { <span class="muted schedule">{note}</span> });
        let labels = (!n.tags.is_empty() || !t.pools.is_empty()).then(|| {
            let tags = n
                .tags
                .iter()
                .map(|x| view! { <span class="chip tag" title="tag (private)">{x.clone()}</span> })
                .collect_view();
            let pools = t
                .pools
                .iter()
                .map(|x| view! { <span class="chip pool" title="pool (public)">{x.clone()}</span> })
                .collect_view();
            view! { <div class="chips">{tags}{pools}</div> }
        });
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
        // The public score the network sees (from the registry).
        let public = n.info.as_ref().and_then(|i| i.reputation.as_ref());
        let reputation = public.map_or_else(|| "–".to_owned(), |r| format!("{} / 100", r.score));
        let reputation_title = public
            .map(crate::components::reputation_detail)
            .unwrap_or_default();
        let models = if t.loaded_models.is_empty() {
            "none loaded".to_owned()
        } else {
            t.loaded_models.join(", ")
        };
        view! {
            <div class="node-status">
                {status}
                {admission}
                {schedule}
                <span class="muted">{if n.online { "since " } else { "offline since " }} {since}</span>
            </div>
            {labels}
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
                    <dd data-gauge="jobs">
                        {format!("{} running, {} queued", t.running_jobs, t.queued_jobs)}
                    </dd>
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
                <div>
                    <dt>"Reputation"</dt>
                    <dd data-gauge="reputation" title=reputation_title>
                        {reputation}
                    </dd>
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
