//! One node: hardware, models on offer and being downloaded, addresses.
//! Refreshes itself every two seconds.

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::api::get_node;
use crate::components::{ago, gib, StatusBadge};
use crate::pages::ticker;

#[component]
pub(crate) fn NodePage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let tick = ticker(std::time::Duration::from_secs(2));
    let node = Resource::new(move || (id(), tick.get()), |(id, _)| get_node(id));
    view! {
            <Transition fallback=|| view! { <p class="empty">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match node.await {
                        Ok(Some((n, now))) => {
                            let gpus = n
                                .hardware
                                .gpus
                                .iter()
                                .enumerate()
                                .map(|(i, g)| {
                                    let backed = n
                                        .reputation
                                        .as_ref()
                                        .is_some_and(|r| r.gpu_backed(i));
                                    view! {
                                        <li class="gpu">
                                            {format!(
                                                "{} · {} VRAM · compute {} · {}",
                                                g.name,
                                                gib(g.vram_mb),
                                                g.compute_capability.clone().unwrap_or_else(|| "?".into()),
                                                if backed {
                                                    "backed: it ran verified jobs"
                                                } else {
                                                    "claimed: no verified job ran on it yet"
                                                },
                                            )}
                                        </li>
                                    }
                                })
                                .collect_view();
                            let models = n
                                .models
                                .iter()
                                .map(|m| {
                                    view! {
                                        <tr>
                                            <td data-label="Name">{m.name.clone()}</td>
                                            <td data-label="Task">{m.task.as_str()}</td>
                                            <td data-label="Price per job">{m.price_label()}</td>
                                            <td data-label="Device">{m.device.clone()}</td>
                                            <td data-label="Content hash" class="mono">
    {m.hash.to_string()}
    </td>
                                        </tr>
                                    }
                                })
                                .collect_view();
                            let downloads = (!n.fetching.is_empty())
                                .then(|| {
                                    let rows = n
                                        .fetching
                                        .iter()
                                        .map(|f| {
                                            let pct = (f.done_bytes * 100)
                                                .checked_div(f.total_bytes)
                                                .unwrap_or(100);
                                            view! {
                                                <li data-testid="fetching">
                                                    <span class="mono">{f.model.to_string()}</span>
                                                    " "
                                                    <progress max="100" value=pct.to_string()></progress>
                                                    {format!(
                                                        " {pct}% · {:.1} of {:.1} MB",
                                                        f.done_bytes as f64 / 1e6,
                                                        f.total_bytes as f64 / 1e6,
                                                    )}
                                                </li>
                                            }
                                        })
                                        .collect_view();
                                    view! {
                                        <h2>"Downloading"</h2>
                                        <ul class="downloads">{rows}</ul>
                                    }
                                });
                            let reputation = n.reputation.clone().map(|r| {
                                let name_of = |hash: &wire::ModelHash| {
                                    n.models
                                        .iter()
                                        .find(|m| m.hash == *hash)
                                        .map_or_else(|| short_hash(hash), |m| m.name.clone())
                                };
                                let latency = r
                                    .latency
                                    .iter()
                                    .map(|l| {
                                        view! {
                                            <tr>
                                                <td data-label="Model">{name_of(&l.model)}</td>
                                                <td data-label="Jobs">{l.jobs.to_string()}</td>
                                                <td data-label="Median">{format!("{} ms", l.p50_ms)}</td>
                                                <td data-label="p95">{format!("{} ms", l.p95_ms)}</td>
                                            </tr>
                                        }
                                    })
                                    .collect_view();
                                let latency = (!r.latency.is_empty())
                                    .then(|| {
                                        view! {
                                            <table class="stack latency">
                                                <thead>
                                                    <tr>
                                                        <th>"Model"</th>
                                                        <th>"Jobs"</th>
                                                        <th>"Median"</th>
                                                        <th>"p95"</th>
                                                    </tr>
                                                </thead>
                                                <tbody>{latency}</tbody>
                                            </table>
                                        }
                                    });
                                let pct = |p: Option<f64>| {
                                    p.map_or_else(|| "no record yet".to_owned(), |p| format!("{p:.1} %"))
                                };
                                view! {
                                    <h2>"Reputation"</h2>
                                    <p id="node-reputation">
                                        <meter min="0" max="100" low="50" high="80" optimum="100" value=r.score.to_string()></meter>
                                        {format!(" {} of 100", r.score)}
                                    </p>
                                    <ul class="reputation">
                                        <li>{format!("Uptime (30 days): {}", pct(r.uptime_pct))}</li>
                                        <li>
                                            {format!(
                                                "Jobs completed: {} ({} of {})",
                                                pct(r.completion_pct),
                                                r.jobs - r.failed,
                                                r.jobs,
                                            )}
                                        </li>
                                        <li>
                                            {format!(
                                                "Canary jobs passed: {} of {} · disputes lost: {}",
                                                r.canaries_passed,
                                                r.canaries_passed + r.canaries_failed,
                                                r.disputes_lost,
                                            )}
                                        </li>
                                        {(r.recent_failures > 0)
                                            .then(|| {
                                                view! {
                                                    <li>
                                                        {format!(
                                                            "{} failed or refused job(s) in the last 15 minutes",
                                                            r.recent_failures,
                                                        )}
                                                    </li>
                                                }
                                            })}
                                    </ul>
                                    {latency}
                                }
                            });
                            let addrs = n
                                .multiaddrs
                                .iter()
                                .map(|a| view! { <li class="mono">{a.clone()}</li> })
                                .collect_view();
                            view! {
                                <h1 class="mono">{n.peer_id.to_string()}</h1>
                                {n.banned.as_ref().map(|b| {
                                    let evidence = format!("/nodes/{}/ban", n.peer_id);
                                    view! {
                                        <p class="stale" id="node-banned">
                                            {format!(
                                                "Banned {}: {}. No job goes to it. ",
                                                ago(now, b.at),
                                                b.reason,
                                            )}
                                            <a href=evidence rel="external">"The signed evidence"</a>
                                        </p>
                                    }
                                })}
                                {(n.reach.state == wire::registry::ReachState::Unreachable)
                                    .then(|| {
                                        view! {
                                            <p class="stale" id="node-unreachable">
                                                {format!(
                                                    "This server cannot reach this node, so no job goes to it: {}",
                                                    n.reach.reason.clone().unwrap_or_default(),
                                                )}
                                            </p>
                                        }
                                    })}
                                <p>
                                    <StatusBadge status=n.status />
                                    {format!(
                                        " last seen {} · heartbeat every {} ms · {} active job(s) · version {}",
                                        ago(now, n.last_seen),
                                        n.heartbeat_interval_ms,
                                        n.active_jobs,
                                        n.version,
                                    )}
                                </p>
                                <p id="node-queue">
                                    {match (n.queued_jobs, n.top_bid_msat) {
                                        (0, None) => "Queue: empty: jobs start at once.".to_owned(),
                                        (q, None) => format!("Queue: {q} waiting, none bidding."),
                                        (q, Some(b)) => format!(
                                            "Queue: {q} waiting; bid more than {} (bid_msat) to go ahead of them.",
                                            crate::components::sats(b.0)
                                        ),
                                    }}
                                </p>
                                {reputation}
                                <h2>"Hardware"</h2>
                                <p>
                                    {format!(
                                        "{} · {} cores · {} RAM · {}/{}",
                                        n.hardware.cpu_model,
                                        n.hardware.cpu_cores,
                                        gib(n.hardware.ram_mb),
                                        n.hardware.os,
                                        n.hardware.arch,
                                    )}
                                </p>
                                <ul>{gpus}</ul>
                                <h2>"Models"</h2>
                                <table class="stack">
                                    <thead>
                                        <tr>
                                            <th>"Name"</th>
                                            <th>"Task"</th>
                                            <th>"Price per job"</th>
                                            <th>"Device"</th>
                                            <th>"Content hash"</th>
                                        </tr>
                                    </thead>
                                    <tbody>{models}</tbody>
                                </table>
                                {downloads}
                                <h2>"Addresses"</h2>
                                <ul>{addrs}</ul>
                                <p>
                                    <a href=format!("/run?node={}", n.peer_id)>"Run a job on this node"</a>
                                </p>
                            }
                                .into_any()
                        }
                        Ok(None) => view! { <p class="empty">"No such node."</p> }.into_any(),
                        Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        }
}

fn short_hash(hash: &wire::ModelHash) -> String {
    let text = hash.to_string();
    format!("{}…", &text[..12])
}
