//! API keys in Settings: make one (its secret shown once), see each one's
//! scopes, use and spending, set its caps, revoke it.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wire::accounts::{NewApiKey, Scope};
use wire::UnixMillis;

use super::spending::KeyCapsForm;
use super::{msg, when, Feedback, Secret};
use crate::api::{create_api_key, revoke_api_key};
use crate::components::sats_field;

#[component]
pub(super) fn ApiKeys(
    keys: Vec<wire::accounts::ApiKeyView>,
    feedback: Feedback,
    now: UnixMillis,
) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let scopes = RwSignal::new(vec![Scope::Jobs]);
    let daily = RwSignal::new(String::new());
    let total = RwSignal::new(String::new());
    let created = feedback.new_key;
    let create = move |ev: SubmitEvent| {
        ev.prevent_default();
        let (daily_cap_msat, total_cap_msat) = match (
            sats_field(&daily.get_untracked()),
            sats_field(&total.get_untracked()),
        ) {
            (Ok(d), Ok(t)) => (d, t),
            (Err(e), _) | (_, Err(e)) => return feedback.error.set(Some(e)),
        };
        let new = NewApiKey {
            daily_cap_msat,
            total_cap_msat,
            name: name.get_untracked(),
            scopes: scopes.get_untracked(),
        };
        feedback.error.set(None);
        spawn_local(async move {
            match create_api_key(new).await {
                Ok(k) => {
                    created.set(Some(k.secret));
                    name.set(String::new());
                    feedback.version.update(|v| *v += 1);
                }
                Err(e) => feedback.error.set(Some(msg(e))),
            }
        });
    };
    view! {
        <section class="card" id="api-keys">
            <h2>"API keys"</h2>
            <p class="muted">
                "For programs: " <code>"Authorization: Bearer sk-inf-…"</code>
                " on /api/v1 and the OpenAI-compatible /v1."
            </p>
            <form on:submit=create>
                <label>
                    "Name"
                    <input
                        id="key-name"
                        maxlength="64"
                        prop:value=move || name.get()
                        on:input:target=move |ev| name.set(ev.target().value())
                    />
                </label>
                <fieldset class="scopes">
                    <legend>"Scopes"</legend>
                    {Scope::ALL
                        .into_iter()
                        .map(|scope| {
                            view! {
                                <label class="check">
                                    <input
                                        type="checkbox"
                                        prop:checked=move || scopes.get().contains(&scope)
                                        on:change:target=move |ev| {
                                            let on = ev.target().checked();
                                            scopes
                                                .update(|s| {
                                                    s.retain(|x| *x != scope);
                                                    if on {
                                                        s.push(scope);
                                                    }
                                                })
                                        }
                                    />
                                    <span class="mono">{scope.as_str()}</span>
                                    <span class="muted">{scope.describe()}</span>
                                </label>
                            }
                        })
                        .collect_view()}
                </fieldset>
                <div class="row">
                    <label>
                        "Spending cap per day (sat, optional)"
                        <input
                            id="key-daily-cap"
                            type="number"
                            min="0"
                            inputmode="numeric"
                            prop:value=move || daily.get()
                            on:input:target=move |ev| daily.set(ev.target().value())
                        />
                    </label>
                    <label>
                        "In all (sat, optional)"
                        <input
                            id="key-total-cap"
                            type="number"
                            min="0"
                            inputmode="numeric"
                            prop:value=move || total.get()
                            on:input:target=move |ev| total.set(ev.target().value())
                        />
                    </label>
                </div>
                <button id="create-key" type="submit">"Create key"</button>
            </form>
            {move || {
                created
                    .get()
                    .map(|secret| {
                        view! {
                            <Secret
                                id="new-key"
                                text=secret
                                note="Copy this key now: it is not shown again."
                            />
                        }
                    })
            }}
            <ul class="rows">
                {keys
                    .into_iter()
                    .map(|k| {
                        let id = k.id.clone();
                        let revoked = k.revoked_at.is_some();
                        let caps_form = (!revoked)
                            .then(|| view! { <KeyCapsForm key=k.clone() feedback /> });
                        let scopes = k
                            .scopes
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ");
                        view! {
                            <li class="api-key" class:revoked=revoked>
                                <span>
                                    <strong>{k.name}</strong>
                                    " "
                                    <span class="mono">{k.prefix} "…"</span>
                                </span>
                                <span class="muted">
                                    {scopes} ", used " {when(k.last_used, now)}
                                </span>
                                {caps_form}
                                {if revoked {
                                    view! { <span class="badge offline">"revoked"</span> }.into_any()
                                } else {
                                    view! {
                                        <button
                                            class="secondary revoke-key"
                                            on:click=move |_| {
                                                let id = id.clone();
                                                feedback.run(async move { revoke_api_key(id).await.map_err(msg) })
                                            }
                                        >
                                            "Revoke"
                                        </button>
                                    }
                                        .into_any()
                                }}
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        </section>
    }
}
