//! Each node's record over the last week, and the earnings export.

use leptos::prelude::*;

use super::with_fleet;
use crate::api::fleet_stats;
use crate::components::{sats, ShortId};

/// Each node's record over the last week: the evidence its reputation is
/// built from, and what it earned.
#[component]
pub(super) fn Record(fleet: Option<String>) -> impl IntoView {
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
                                            <td data-label="Node">
    <ShortId id=id.clone() />
    </td>
                                            <td data-label="Uptime">
                                                <svg class="uptime-days" viewBox="0 0 42 20" role="img" aria-label="uptime per day">
                                                    {days}
                                                </svg>
                                                {format!(" {:.1} %", n.uptime_pct)}
                                            </td>
                                            <td data-label="Completed">
                                                {n
                                                    .completion_pct
                                                    .map(|c| format!("{c:.1} % of {}", n.jobs_succeeded + n.jobs_failed))
                                                    .unwrap_or_else(|| "no jobs".into())}
                                            </td>
                                            <td data-label="Median latency">{n.median_latency_ms.map(|l| format!("{l} ms")).unwrap_or_default()}</td>
                                            <td data-label="Earned">{sats(n.earned_msat.0)}</td>
                                        </tr>
                                    }
                                })
                                .collect_view();
                            view! {
                                <div class="table-scroll">
                                    <table class="record stack">
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
