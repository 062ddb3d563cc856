//! The fleet's alerts, live, and when they fire (the owner's settings and
//! webhook).

use leptos::prelude::*;
use leptos::task::spawn_local;
use wire::fleet::{AlertSettings, AlertSettingsView, AlertView};
use wire::UnixMillis;

use crate::browser::call;
use crate::components::{ago, short_id};

#[component]
pub(super) fn Alerts(alerts: RwSignal<Vec<AlertView>>, now: RwSignal<UnixMillis>) -> impl IntoView {
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
pub(super) fn AlertSettingsForm() -> impl IntoView {
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
