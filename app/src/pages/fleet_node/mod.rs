//! One of the operator's nodes: charts of its telemetry (CPU, RAM, jobs,
//! and each GPU's utilisation, temperature, power and memory) over the
//! last hour, day, week or month, drawn live as new telemetry arrives; and
//! what the operator changes on it over its fleet link (prices, schedule,
//! pools and tags, models), each change's result shown as it comes.

mod models;
mod settings;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_params_map;
use serde::Deserialize;
use wire::fleet::{
    Action, CommandId, CommandStatus, CommandView, FleetEvent, FleetNode, Gauges, NewCommand,
    Telemetry, TelemetryPoint, TelemetrySeries,
};
use wire::UnixMillis;

use models::Models;
use settings::{Labels, Prices, ScheduleForm};

use crate::api::fleet_node;
use crate::auth::RequireAccount;
use crate::browser::{call, listen_events, stop_events};
use crate::components::{short_id, LineChart};
use crate::pages::my_nodes::with_fleet;

/// The ranges a visitor may pick, in minutes.
const RANGES: [(u32, &str); 4] = [
    (60, "1 h"),
    (1440, "24 h"),
    (10_080, "7 d"),
    (43_200, "30 d"),
];

#[component]
pub(crate) fn FleetNodePage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id").unwrap_or_default());
    view! {
        <h1>"Node " <span class="mono">{move || short_id(&id())}</span></h1>
        <p>
            <a href="/my-nodes">"← My nodes"</a>
            " · "
            <a href=move || format!("/node/{}", id())>"Public page"</a>
        </p>
        <RequireAccount>
            <Charts id=Signal::derive(id) />
        </RequireAccount>
    }
}

#[component]
fn Charts(id: Signal<String>) -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    let fleet = Memo::new(move |_| query.with(|q| q.get("fleet")));
    let minutes = RwSignal::new(60u32);
    let data = Resource::new(
        move || (id.get(), minutes.get(), fleet.get()),
        |(id, m, f)| fleet_node(id, m, f),
    );
    view! {
        <div class="row ranges" role="group" aria-label="Range">
            {RANGES
                .iter()
                .map(|&(m, label)| {
                    view! {
                        <button
                            type="button"
                            class=move || if minutes.get() == m { "" } else { "secondary" }
                            aria-pressed=move || (minutes.get() == m).to_string()
                            on:click=move |_| minutes.set(m)
                        >
                            {label}
                        </button>
                    }
                })
                .collect_view()}
        </div>
        <Transition fallback=|| view! { <p class="empty">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok((None, _, _, _)) => {
                        view! { <p class="empty">"No such node among yours."</p> }.into_any()
                    }
                    Ok((Some(node), series, activity, now)) => {
                        view! {
                            {activity.map(|activity| view! { <Activity activity /> })}
                            <Live
                                node
                                series
                                now
                                minutes=minutes.get()
                                fleet=fleet.get_untracked()
                            />
                        }
                            .into_any()
                    }
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// The node's jobs over the range: jobs per hour, failure rate, median
/// latency and earnings, one point per bucket.
#[component]
fn Activity(activity: wire::fleet::NodeActivity) -> impl IntoView {
    let step = activity.bucket_ms.max(1);
    let per_hour = 3_600_000.0 / step as f32;
    let (since, until) = (activity.since.0, activity.until.0);
    let series = |f: &dyn Fn(&wire::fleet::ActivityBucket) -> Option<f32>| {
        activity
            .buckets
            .iter()
            .filter_map(|b| f(b).map(|v| (b.at.0 + step / 2, v)))
            .collect::<Vec<_>>()
    };
    let jobs = series(&|b| Some((b.succeeded + b.failed) as f32 * per_hour));
    let failures = series(&|b| {
        let all = b.succeeded + b.failed;
        (all > 0).then(|| b.failed as f32 * 100.0 / all as f32)
    });
    let latency = series(&|b| b.median_latency_ms.map(|l| l as f32));
    let earned = series(&|b| Some(b.earned_msat.0 as f32 / 1000.0));
    let gap = step * 2;
    view! {
        <div class="charts" id="node-activity">
            <LineChart title="Jobs per hour".to_owned() unit="" points=jobs since until gap_ms=gap />
            <LineChart
                title="Failure rate".to_owned()
                unit="%"
                points=failures
                since
                until
                gap_ms=gap
                max=Some(100.0)
            />
            <LineChart title="Median latency".to_owned() unit="ms" points=latency since until gap_ms=gap />
            <LineChart
                title=format!("Earned per {}", bucket_words(step))
                unit="sat"
                points=earned
                since
                until
                gap_ms=gap
            />
        </div>
    }
}

/// A bucket's length in words: `5 min`, `4 h`, `day`.
fn bucket_words(ms: u64) -> String {
    match ms / 60_000 {
        m if m < 60 => format!("{m} min"),
        1440 => "day".into(),
        m => format!("{} h", m / 60),
    }
}

/// The node's commands as this page has seen them: sent from here, and
/// moved on by the server's events.
#[derive(Clone, Copy)]
pub(crate) struct Commander {
    url: StoredValue<String>,
    node: wire::NodeId,
    seen: RwSignal<Vec<CommandView>>,
}

impl Commander {
    /// Sends `action`; `shown` then follows the command (or holds the
    /// error).
    pub(super) fn send(self, action: Action, shown: RwSignal<Option<Result<CommandId, String>>>) {
        let url = self.url.get_value();
        let node = self.node;
        let seen = self.seen;
        shown.set(None);
        spawn_local(async move {
            #[derive(Deserialize)]
            struct Sent {
                commands: Vec<CommandView>,
            }
            let body = NewCommand {
                nodes: vec![node],
                tag: None,
                action,
                expires_in_secs: None,
            };
            match call::<Sent>("POST", &url, Some(&body)).await {
                Ok(sent) => {
                    if let Some(c) = sent.commands.into_iter().next() {
                        shown.set(Some(Ok(c.id.clone())));
                        seen.update(|s| {
                            if !s.iter().any(|x| x.id == c.id) {
                                s.push(c);
                            }
                        });
                    }
                }
                Err(e) => shown.set(Some(Err(e))),
            }
        });
    }

    fn get(self, id: &CommandId) -> Option<CommandView> {
        self.seen.with(|s| s.iter().find(|c| &c.id == id).cloned())
    }
}

/// How the command a form sent is going: queued, sent, done and what the
/// node said, or why it failed.
#[component]
pub(super) fn CommandLine(
    commander: Commander,
    shown: RwSignal<Option<Result<CommandId, String>>>,
) -> impl IntoView {
    move || {
        shown.get().map(|s| match s {
            Err(e) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
            Ok(id) => {
                let Some(c) = commander.get(&id) else {
                    return ().into_any();
                };
                let word = match c.status {
                    CommandStatus::Queued => "waiting for the node to connect",
                    CommandStatus::Sent => "sent",
                    CommandStatus::Acked => "running on the node",
                    CommandStatus::Succeeded => "done",
                    CommandStatus::Failed => "failed",
                    CommandStatus::Expired => "expired before the node came back",
                    CommandStatus::Refused => "refused",
                };
                let class = match c.status {
                    CommandStatus::Failed | CommandStatus::Expired | CommandStatus::Refused => {
                        "error"
                    }
                    _ => "muted",
                };
                let detail = c.detail.map(|d| format!(": {d}")).unwrap_or_default();
                view! {
                    <p class=class role="status" data-command-status=format!("{:?}", c.status).to_lowercase()>
                        {format!("{} — {word}{detail}", c.action.describe())}
                    </p>
                }
                    .into_any()
            }
        })
    }
}

/// The node, live: charts with new telemetry appended as it arrives, and
/// the forms that change it.
#[component]
fn Live(
    node: FleetNode,
    series: TelemetrySeries,
    now: UnixMillis,
    minutes: u32,
    fleet: Option<String>,
) -> impl IntoView {
    let events_url = with_fleet("/api/v1/fleet/events", &fleet);
    let commander = Commander {
        url: StoredValue::new(with_fleet("/api/v1/fleet/commands", &fleet)),
        node: node.node_id,
        seen: RwSignal::new(Vec::new()),
    };
    let telemetry = RwSignal::new(node.telemetry.clone());
    let span = u64::from(minutes) * 60_000;
    let step = series.step_ms;
    let points = RwSignal::new(series.points);
    let until = RwSignal::new(now.0);
    let id = node.node_id;
    Effect::new({
        move |_| {
            let stream = listen_events(&events_url, &["telemetry", "command"], move |_, data| {
                let event = serde_json::from_str::<FleetEvent>(&data);
                let Ok(FleetEvent::Telemetry {
                    node_id,
                    at,
                    telemetry: frame,
                }) = event
                else {
                    if let Ok(FleetEvent::Command(c)) = event {
                        commander
                            .seen
                            .update(|s| match s.iter_mut().find(|x| x.id == c.id) {
                                Some(x) => *x = *c,
                                None if c.node_id == id => s.push(*c),
                                None => {}
                            });
                    }
                    return;
                };
                if node_id != id {
                    return;
                }
                telemetry.set(Some((*frame).clone()));
                let telemetry = frame;
                until.set(at.0);
                // Coarse series gain a point per step, not per frame.
                points.update(|ps| {
                    if ps
                        .last()
                        .is_none_or(|l| at.0.saturating_sub(l.at.0) >= step)
                    {
                        ps.push(TelemetryPoint {
                            at,
                            gauges: Gauges::of(&telemetry),
                        });
                    }
                    let from = at.0.saturating_sub(span);
                    ps.retain(|p| p.at.0 >= from);
                });
            });
            on_cleanup(move || stop_events(stream));
        }
    });
    // A gap of three steps (or 30 s of frames) is time the node was away.
    let gap = (step * 3).max(30_000);
    let chart =
        move |title: String, unit: &'static str, max: Option<f32>, f: fn(&Gauges) -> f32| {
            let until = until.get();
            let pts: Vec<(u64, f32)> =
                points.with(|ps| ps.iter().map(|p| (p.at.0, f(&p.gauges))).collect());
            view! {
                <LineChart
                    title
                    unit
                    points=pts
                    since=until.saturating_sub(span)
                    until
                    gap_ms=gap
                    max
                />
            }
        };
    let gpus = move || points.with(|ps| ps.iter().map(|p| p.gauges.gpus.len()).max().unwrap_or(0));
    let models = node
        .info
        .as_ref()
        .map(|i| i.models.clone())
        .unwrap_or_default();
    view! {
        <div class="charts" id="node-charts">
            {move || chart("CPU".into(), "%", Some(100.0), |g| g.cpu_pct)}
            {move || chart("RAM used".into(), "MiB", None, |g| g.ram_used_mib)}
            {move || chart("Jobs running".into(), "", None, |g| g.running_jobs)}
            {move || {
                let until_now = until.get();
                let since = until_now.saturating_sub(span);
                (0..gpus())
                    .map(|i| {
                        let pick = |f: fn(&wire::fleet::GpuGauges) -> f32| {
                            points.with(|ps| {
                                ps.iter()
                                    .filter_map(|p| p.gauges.gpus.get(i).map(|g| (p.at.0, f(g))))
                                    .collect::<Vec<_>>()
                            })
                        };
                        view! {
                            <LineChart
                                title=format!("GPU {i} utilisation")
                                unit="%"
                                points=pick(|g| g.util_pct)
                                since
                                until=until_now
                                gap_ms=gap
                                max=Some(100.0)
                            />
                            <LineChart
                                title=format!("GPU {i} temperature")
                                unit="°C"
                                points=pick(|g| g.temp_c)
                                since
                                until=until_now
                                gap_ms=gap
                            />
                            <LineChart
                                title=format!("GPU {i} power")
                                unit="W"
                                points=pick(|g| g.power_w)
                                since
                                until=until_now
                                gap_ms=gap
                            />
                            <LineChart
                                title=format!("GPU {i} memory used")
                                unit="MiB"
                                points=pick(|g| g.mem_used_mib)
                                since
                                until=until_now
                                gap_ms=gap
                            />
                        }
                    })
                    .collect_view()
            }}
        </div>
        <Prices commander models=models.clone() />
        <ScheduleForm commander telemetry />
        <Labels commander telemetry tags=node.tags.clone() />
        <Models commander telemetry models />
    }
}

/// Telemetry as last heard, for the forms.
pub(super) type LiveTelemetry = RwSignal<Option<Telemetry>>;
