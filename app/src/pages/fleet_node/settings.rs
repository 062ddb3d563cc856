//! What an operator sets on a node: each model's prices, the availability
//! schedule (weekly hours in the node's time zone, maintenance windows,
//! the drain before each close), public pools and private tags.

use leptos::prelude::*;
use wire::fleet::{Action, CommandId, ModelPrice};
use wire::pricing::TokenPrice;
use wire::schedule::{format_weekly, local_text, parse_local, parse_weekly, Maintenance, Schedule};
use wire::UnixMillis;

use super::{CommandLine, Commander, LiveTelemetry};
use crate::components::{schedule_note, until};

type Shown = RwSignal<Option<Result<CommandId, String>>>;

/// The node's prices: each model's price per job and per token, in
/// millisatoshis.
#[component]
pub(super) fn Prices(
    commander: Commander,
    models: Vec<wire::registry::ModelOffer>,
) -> impl IntoView {
    let shown: Shown = RwSignal::new(None);
    let rows = models
        .into_iter()
        .map(|m| {
            let base = RwSignal::new(m.price_msat.0.to_string());
            let input = RwSignal::new(m.token_price.input_msat.0.to_string());
            let output = RwSignal::new(m.token_price.output_msat.0.to_string());
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
                match price {
                    Ok(p) => commander.send(Action::SetPrices { prices: vec![p] }, shown),
                    Err(e) => shown.set(Some(Err(e))),
                }
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
            <CommandLine commander shown />
        </section>
    }
}

/// The node's availability schedule. Weekly hours are written as people
/// say them (`Mon-Fri 09:00-17:00`), in the node's time zone; maintenance
/// windows are added one by one.
#[component]
pub(super) fn ScheduleForm(commander: Commander, telemetry: LiveTelemetry) -> impl IntoView {
    let shown: Shown = RwSignal::new(None);
    let current = telemetry.get_untracked().and_then(|t| t.schedule.clone());
    let zone = telemetry
        .get_untracked()
        .and_then(|t| {
            current
                .as_ref()
                .map(|s| s.time_zone.clone())
                .or(t.time_zone)
        })
        .unwrap_or_else(|| "UTC".into());
    let time_zone = RwSignal::new(zone);
    let weekly = RwSignal::new(
        current
            .as_ref()
            .map(|s| format_weekly(&s.weekly))
            .unwrap_or_default(),
    );
    let drain = RwSignal::new(
        current
            .as_ref()
            .map_or(Schedule::always().drain_minutes, |s| s.drain_minutes)
            .to_string(),
    );
    let maintenance = RwSignal::new(current.map(|s| s.maintenance).unwrap_or_default());
    let m_from = RwSignal::new(String::new());
    let m_hours = RwSignal::new("2".to_owned());
    let m_note = RwSignal::new(String::new());

    let now = move || {
        telemetry
            .with(|t| t.as_ref().map(|t| t.at))
            .unwrap_or(UnixMillis(0))
    };
    let status = move || {
        let Some(t) = telemetry.get() else {
            return "No telemetry yet.".to_owned();
        };
        match (t.schedule_status, schedule_note(t.at, t.schedule_status)) {
            (None, _) => "No schedule: open at all hours.".into(),
            (Some(s), None) => match s.closes_at {
                Some(at) => format!("Open now; stops taking jobs {}.", until(t.at, at)),
                None => "Open now.".into(),
            },
            (_, Some(note)) => format!("Outside its hours: {note}."),
        }
    };
    let add = move |_| {
        let tz = time_zone.get();
        let hours = m_hours
            .get()
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|h| *h > 0.0 && *h <= 24.0 * 31.0);
        match (parse_local(&m_from.get(), &tz), hours) {
            (Ok(from), Some(h)) => {
                maintenance.update(|m| {
                    m.push(Maintenance {
                        from,
                        until: UnixMillis(from.0 + (h * 3_600_000.0) as u64),
                        note: m_note.get().trim().chars().take(200).collect(),
                    })
                });
                m_from.set(String::new());
                m_note.set(String::new());
            }
            (Err(e), _) => shown.set(Some(Err(e))),
            (_, None) => shown.set(Some(Err("Hours must be a number above 0".into()))),
        }
    };
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let schedule = (|| {
            let drain_minutes = drain
                .get()
                .trim()
                .parse::<u16>()
                .map_err(|_| "The drain lead is a whole number of minutes".to_owned())?;
            let schedule = Schedule {
                time_zone: time_zone.get().trim().to_owned(),
                weekly: parse_weekly(&weekly.get())?,
                maintenance: maintenance.get(),
                drain_minutes,
            };
            schedule.check()?;
            Ok::<_, String>(schedule)
        })();
        match schedule {
            Ok(schedule) => commander.send(Action::SetSchedule { schedule }, shown),
            Err(e) => shown.set(Some(Err(e))),
        }
    };
    let windows = move || {
        let tz = time_zone.get();
        maintenance
            .get()
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let past = m.until < now();
                view! {
                    <li class:muted=past>
                        {format!(
                            "{} → {} {}",
                            local_text(m.from, &tz),
                            local_text(m.until, &tz),
                            m.note,
                        )}
                        <button
                            type="button"
                            class="secondary"
                            aria-label="Remove this maintenance window"
                            on:click=move |_| maintenance.update(|ms| {
                                if i < ms.len() {
                                    ms.remove(i);
                                }
                            })
                        >
                            "Remove"
                        </button>
                    </li>
                }
            })
            .collect_view()
    };
    view! {
        <section class="card schedule" id="schedule">
            <h2>"Schedule"</h2>
            <p class="muted" id="schedule-status">{status}</p>
            <form on:submit=save>
                <label>
                    "Time zone"
                    <input
                        type="text"
                        name="time_zone"
                        autocomplete="off"
                        prop:value=move || time_zone.get()
                        on:input=move |ev| time_zone.set(event_target_value(&ev))
                    />
                </label>
                <label>
                    "Weekly hours, one rule a line (empty: always open)"
                    <textarea
                        name="weekly"
                        rows="3"
                        placeholder="Mon-Fri 09:00-17:00\nSat 10:00-14:00"
                        prop:value=move || weekly.get()
                        on:input=move |ev| weekly.set(event_target_value(&ev))
                    ></textarea>
                </label>
                <label>
                    "Stop taking jobs this many minutes before each close"
                    <input
                        type="number"
                        name="drain_minutes"
                        min="0"
                        max="1440"
                        inputmode="numeric"
                        prop:value=move || drain.get()
                        on:input=move |ev| drain.set(event_target_value(&ev))
                    />
                </label>
                <h3>"Maintenance windows"</h3>
                <ul class="maintenance">{windows}</ul>
                <div class="row">
                    <label>
                        "From (node's time)"
                        <input
                            type="datetime-local"
                            name="maintenance_from"
                            prop:value=move || m_from.get()
                            on:input=move |ev| m_from.set(event_target_value(&ev))
                        />
                    </label>
                    <label>
                        "Hours"
                        <input
                            type="number"
                            name="maintenance_hours"
                            min="0.25"
                            step="0.25"
                            prop:value=move || m_hours.get()
                            on:input=move |ev| m_hours.set(event_target_value(&ev))
                        />
                    </label>
                    <label>
                        "Note"
                        <input
                            type="text"
                            name="maintenance_note"
                            maxlength="200"
                            prop:value=move || m_note.get()
                            on:input=move |ev| m_note.set(event_target_value(&ev))
                        />
                    </label>
                    <button type="button" class="secondary" id="add-maintenance" on:click=add>
                        "Add"
                    </button>
                </div>
                <button type="submit" id="save-schedule">"Save schedule"</button>
            </form>
            <CommandLine commander shown />
        </section>
    }
}

/// Public pools (in the node's ads; consumers can ask for one) and private
/// tags (kept by the server; commands can go to every node with a tag).
#[component]
pub(super) fn Labels(
    commander: Commander,
    telemetry: LiveTelemetry,
    tags: Vec<String>,
) -> impl IntoView {
    let shown: Shown = RwSignal::new(None);
    let pools = RwSignal::new(
        telemetry
            .get_untracked()
            .map(|t| t.pools.join(", "))
            .unwrap_or_default(),
    );
    let tags = RwSignal::new(tags.join(", "));
    let split = |text: String| -> Vec<String> {
        text.split([',', ' '])
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    };
    view! {
        <section class="card labels">
            <h2>"Pools and tags"</h2>
            <form
                class="inline"
                on:submit=move |ev| {
                    ev.prevent_default();
                    commander.send(Action::SetPools { pools: split(pools.get()) }, shown);
                }
            >
                <label>
                    "Pools (public)"
                    <input
                        type="text"
                        name="pools"
                        placeholder="eu-west, llama"
                        prop:value=move || pools.get()
                        on:input=move |ev| pools.set(event_target_value(&ev))
                    />
                </label>
                <button type="submit" id="save-pools">"Set pools"</button>
            </form>
            <form
                class="inline"
                on:submit=move |ev| {
                    ev.prevent_default();
                    commander.send(Action::SetTags { tags: split(tags.get()) }, shown);
                }
            >
                <label>
                    "Tags (private)"
                    <input
                        type="text"
                        name="tags"
                        placeholder="rack-3, 4090"
                        prop:value=move || tags.get()
                        on:input=move |ev| tags.set(event_target_value(&ev))
                    />
                </label>
                <button type="submit" id="save-tags">"Set tags"</button>
            </form>
            <CommandLine commander shown />
        </section>
    }
}
