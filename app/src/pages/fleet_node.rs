//! One of the operator's nodes: charts of its telemetry (CPU, RAM, jobs,
//! and each GPU's utilisation, temperature, power and memory) over the
//! last hour, day, week or month, drawn live as new telemetry arrives.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_params_map;
use wire::fleet::{
    Action, FleetEvent, Gauges, ModelPrice, NewCommand, TelemetryPoint, TelemetrySeries,
};
use wire::pricing::TokenPrice;
use wire::UnixMillis;

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
                    Ok((None, _, _)) => {
                        view! { <p class="empty">"No such node among yours."</p> }.into_any()
                    }
                    Ok((Some(node), series, now)) => {
                        let models = node.info.map(|i| i.models).unwrap_or_default();
                        let f = fleet.get_untracked();
                        view! {
                            <Live id=id.get() series now minutes=minutes.get() fleet=f.clone() />
                            <Prices id=id.get() models fleet=f />
                        }
                            .into_any()
                    }
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// The charts, with new telemetry appended as it arrives.
#[component]
fn Live(
    id: String,
    series: TelemetrySeries,
    now: UnixMillis,
    minutes: u32,
    fleet: Option<String>,
) -> impl IntoView {
    let events_url = with_fleet("/api/v1/fleet/events", &fleet);
    let span = u64::from(minutes) * 60_000;
    let step = series.step_ms;
    let points = RwSignal::new(series.points);
    let until = RwSignal::new(now.0);
    Effect::new({
        let id = id.clone();
        move |_| {
            let id = id.clone();
            let stream = listen_events(&events_url, &["telemetry"], move |_, data| {
                let Ok(FleetEvent::Telemetry {
                    node_id,
                    at,
                    telemetry,
                }) = serde_json::from_str::<FleetEvent>(&data)
                else {
                    return;
                };
                if node_id.to_string() != id {
                    return;
                }
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
    }
}

/// The node's prices, changed over its fleet link: each model's price per
/// job and per token, in millisatoshis.
#[component]
fn Prices(
    id: String,
    models: Vec<wire::registry::ModelOffer>,
    fleet: Option<String>,
) -> impl IntoView {
    let commands_url = with_fleet("/api/v1/fleet/commands", &fleet);
    let status = RwSignal::new(None::<Result<String, String>>);
    let rows = models
        .into_iter()
        .map(|m| {
            let base = RwSignal::new(m.price_msat.0.to_string());
            let input = RwSignal::new(m.token_price.input_msat.0.to_string());
            let output = RwSignal::new(m.token_price.output_msat.0.to_string());
            let id = id.clone();
            let commands_url = commands_url.clone();
            let hash = m.hash;
            let save = move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                let parse = |s: RwSignal<String>, what: &str| {
                    s.get()
                        .trim()
                        .parse::<u64>()
                        .map(wire::MilliSats)
                        .map_err(|_| format!("{what} must be a whole number of msat"))
                };
                let price = (|| {
                    Ok::<_, String>(ModelPrice {
                        model: hash,
                        price_msat: parse(base, "The price per job")?,
                        token_price: TokenPrice {
                            input_msat: parse(input, "The price per input token")?,
                            output_msat: parse(output, "The price per output token")?,
                        },
                    })
                })();
                let id = id.clone();
                let url = commands_url.clone();
                spawn_local(async move {
                    let price = match price {
                        Ok(p) => p,
                        Err(e) => return status.set(Some(Err(e))),
                    };
                    let Ok(node) = id.parse() else { return };
                    let body = NewCommand {
                        nodes: vec![node],
                        action: Action::SetPrices {
                            prices: vec![price],
                        },
                        expires_in_secs: None,
                    };
                    let sent = call::<serde_json::Value>("POST", &url, Some(&body)).await;
                    status.set(Some(sent.map(|v| {
                        format!(
                            "Sent ({}): the node advertises the new price once it has it.",
                            v["commands"][0]["status"].as_str().unwrap_or("sent")
                        )
                    })));
                });
            };
            view! {
                <form class="inline price" on:submit=save data-model=m.name.clone()>
                    <strong>{m.name.clone()}</strong>
                    <label>
                        "per job (msat)"
                        <input type="number" min="0" inputmode="numeric" prop:value=move || base.get() on:input=move |ev| base.set(event_target_value(&ev)) />
                    </label>
                    <label>
                        "per input token"
                        <input type="number" min="0" inputmode="numeric" prop:value=move || input.get() on:input=move |ev| input.set(event_target_value(&ev)) />
                    </label>
                    <label>
                        "per output token"
                        <input type="number" min="0" inputmode="numeric" prop:value=move || output.get() on:input=move |ev| output.set(event_target_value(&ev)) />
                    </label>
                    <button type="submit">"Set"</button>
                </form>
            }
        })
        .collect_view();
    view! {
        <section class="card prices">
            <h2>"Prices"</h2>
            {rows}
            {move || {
                status
                    .get()
                    .map(|s| match s {
                        Ok(m) => view! { <p class="muted" role="status">{m}</p> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
                    })
            }}
        </section>
    }
}
