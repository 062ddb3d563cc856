use leptos::prelude::*;
use wire::registry::NodeInfo;
use wire::UnixMillis;

use super::{ago, gib, schedule_note, ShortId, StatusBadge};

#[component]
pub(crate) fn NodeTable(nodes: Vec<NodeInfo>, now: UnixMillis) -> impl IntoView {
    if nodes.is_empty() {
        return view! { <p class="empty">"No node matches these filters."</p> }.into_any();
    }
    let rows = nodes
        .into_iter()
        .map(|n| {
            let id = n.peer_id.to_string();
            let href = format!("/node/{id}");
            let gpus = if n.hardware.gpus.is_empty() {
                "CPU only".to_owned()
            } else {
                n.hardware
                    .gpus
                    .iter()
                    .enumerate()
                    .map(|(i, g)| {
                        // Listed by the node; backed once a job ran on it.
                        let backed = n.reputation.as_ref().is_some_and(|r| r.gpu_backed(i));
                        let claim = if backed { "" } else { ", claimed" };
                        format!("{} ({}{claim})", g.name, gib(g.vram_mb))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let models = n
                .models
                .iter()
                .map(|m| format!("{} · {} · {}", m.name, m.task.as_str(), m.price_label()))
                .collect::<Vec<_>>()
                .join("\n");
            let paused = (!n.accepting_jobs && n.status == wire::registry::NodeStatus::Online)
                .then(|| view! { <span class="badge pending">"paused"</span> });
            let unreachable =
                (n.reach.state == wire::registry::ReachState::Unreachable).then(|| {
                    let why = n.reach.reason.clone().unwrap_or_default();
                    view! { <span class="badge offline unreachable" title=why>"unreachable"</span> }
                });
            let banned = n.banned.as_ref().map(|b| {
                let why = b.reason.clone();
                view! { <span class="badge offline banned" title=why>"banned"</span> }
            });
            let closed = schedule_note(now, n.schedule)
                .map(|note| view! { <span class="badge pending schedule">{note}</span> });
            let pools = (!n.pools.is_empty()).then(|| {
                let chips = n
                    .pools
                    .iter()
                    .map(|p| view! { <span class="chip pool">{p.clone()}</span> })
                    .collect_view();
                view! { <div class="chips">{chips}</div> }
            });
            let reputation = n.reputation.as_ref().map(|r| {
                let detail = reputation_detail(r);
                view! {
                    <span class="score" title=detail.clone()>
                        {r.score.to_string()}
                    </span>
                    <span class="detail">{detail}</span>
                }
            });
            view! {
                <tr class="node-row" data-peer-id=id.clone()>
                    <td data-label="Node">
                        <div>
                            <ShortId id=id.clone() href=href />
                            {pools}
                        </div>
                    </td>
                    <td data-label="Status">
                        <div>
                            <StatusBadge status=n.status />
                            {banned}
                            {unreachable}
                            {paused}
                            {closed}
                        </div>
                    </td>
                    <td data-label="CPU / RAM">
                        {format!("{} cores · {}", n.hardware.cpu_cores, gib(n.hardware.ram_mb))}
                    </td>
                    <td data-label="GPUs">{gpus}</td>
                    <td data-label="Models" class="models">
                        {models}
                    </td>
                    <td data-label="Last seen">{ago(now, n.last_seen)}</td>
                    <td data-label="Reputation" class="reputation">
                        {reputation}
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="nodes stack">
            <thead>
                <tr>
                    <th>"Node"</th>
                    <th>"Status"</th>
                    <th>"CPU / RAM"</th>
                    <th>"GPUs"</th>
                    <th>"Models · task · price"</th>
                    <th>"Last seen"</th>
                    <th>"Reputation"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
    .into_any()
}

/// A reputation's figures in a line: uptime, completion, jobs.
pub(crate) fn reputation_detail(r: &wire::reputation::Reputation) -> String {
    let pct = |p: Option<f64>| p.map_or_else(|| "–".to_owned(), |p| format!("{p:.1} %"));
    format!(
        "uptime {} · completed {} of {} job(s)",
        pct(r.uptime_pct),
        r.jobs - r.failed,
        r.jobs
    )
}
