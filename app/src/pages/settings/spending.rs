//! Spending limits in Settings: the account's default maximum price per
//! job, and each API key's caps with what it spent.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;

use super::Feedback;
use crate::components::sats_field;

fn sat_text(m: Option<wire::MilliSats>) -> String {
    m.map(|m| (m.0 / 1000).to_string()).unwrap_or_default()
}

/// The most a job may cost when it names no maximum itself.
#[component]
pub(super) fn DefaultMaxPrice(
    current: Option<wire::MilliSats>,
    feedback: Feedback,
) -> impl IntoView {
    let value = RwSignal::new(sat_text(current));
    let save = move |ev: SubmitEvent| {
        ev.prevent_default();
        let max = match sats_field(&value.get_untracked()) {
            Ok(m) => m,
            Err(e) => return feedback.error.set(Some(e)),
        };
        feedback.run(async move {
            crate::browser::call::<serde_json::Value>(
                "PATCH",
                "/api/v1/account",
                Some(&serde_json::json!({ "default_max_price_msat": max })),
            )
            .await
            .map(|_| ())
        });
    };
    view! {
        <form class="inline" on:submit=save>
            <label>
                "Default max price per job (sat; empty: the input's worst case)"
                <input
                    id="default-max-price"
                    type="number"
                    min="1"
                    inputmode="numeric"
                    prop:value=move || value.get()
                    on:input:target=move |ev| value.set(ev.target().value())
                />
            </label>
            <button type="submit" id="save-default-max-price">"Save"</button>
        </form>
    }
}

/// A key's spending caps, and a form to change them.
#[component]
pub(super) fn KeyCapsForm(key: wire::accounts::ApiKeyView, feedback: Feedback) -> impl IntoView {
    let daily = RwSignal::new(sat_text(key.caps.daily_cap_msat));
    let total = RwSignal::new(sat_text(key.caps.total_cap_msat));
    let id = key.id.clone();
    let save = move |ev: SubmitEvent| {
        ev.prevent_default();
        let (d, t) = match (
            sats_field(&daily.get_untracked()),
            sats_field(&total.get_untracked()),
        ) {
            (Ok(d), Ok(t)) => (d, t),
            (Err(e), _) | (_, Err(e)) => return feedback.error.set(Some(e)),
        };
        let url = format!("/api/v1/account/keys/{id}/caps");
        feedback.run(async move {
            crate::browser::call::<serde_json::Value>(
                "PUT",
                &url,
                Some(&serde_json::json!({ "daily_cap_msat": d, "total_cap_msat": t })),
            )
            .await
            .map(|_| ())
        });
    };
    let cap = |c: Option<wire::MilliSats>| {
        c.map(|c| crate::components::sats(c.0))
            .unwrap_or_else(|| "no cap".into())
    };
    view! {
        <details class="caps">
            <summary>
                {format!(
                    "Spent today {} ({}), in all {} ({})",
                    crate::components::sats(key.spent_today_msat.0),
                    cap(key.caps.daily_cap_msat),
                    crate::components::sats(key.spent_total_msat.0),
                    cap(key.caps.total_cap_msat),
                )}
            </summary>
            <form class="inline" on:submit=save>
                <label>
                    "Per day (sat)"
                    <input
                        type="number"
                        min="0"
                        inputmode="numeric"
                        prop:value=move || daily.get()
                        on:input:target=move |ev| daily.set(ev.target().value())
                    />
                </label>
                <label>
                    "In all (sat)"
                    <input
                        type="number"
                        min="0"
                        inputmode="numeric"
                        prop:value=move || total.get()
                        on:input:target=move |ev| total.set(ev.target().value())
                    />
                </label>
                <button type="submit" class="secondary">"Set caps"</button>
            </form>
        </details>
    }
}
