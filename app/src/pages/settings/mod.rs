//! Settings: the account's ways in (passkeys, Lightning keys), its
//! sessions, its API keys and its enrolment tokens. Secrets (a new key, a
//! new token) are shown once, with a copy button.
//!
//! - `keys`: API keys;
//! - `spending`: the default max price per job, and keys' caps.

mod keys;
mod spending;

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use wire::accounts::{AccountSettings, LnurlLogin, LnurlState, NewEnrolToken};
use wire::UnixMillis;

use crate::api::{
    create_enrol_token, end_session, load_settings, remove_lightning_key, remove_passkey,
    revoke_enrol_token, set_public_name,
};
use crate::auth::{
    add_passkey, sign_out_everywhere, start_lightning, wait_for_wallet, Me, RequireAccount,
};
use crate::browser::copy;
use crate::components::ago;
use keys::ApiKeys;
use spending::DefaultMaxPrice;

#[component]
pub(crate) fn SettingsPage() -> impl IntoView {
    view! {
        <h1>"Settings"</h1>
        <RequireAccount>
            <Settings />
        </RequireAccount>
    }
}

/// What a section reports: a message for people, and whether to reload.
/// The secrets just made live here, above the part that reloads, so that
/// reloading the lists does not hide them.
#[derive(Clone, Copy)]
struct Feedback {
    error: RwSignal<Option<String>>,
    version: RwSignal<u32>,
    new_key: RwSignal<Option<String>>,
    new_token: RwSignal<Option<String>>,
}

impl Feedback {
    /// Runs `work` in the browser; shows its error, or reloads the page's data.
    fn run<F>(self, work: F)
    where
        F: std::future::Future<Output = Result<(), String>> + 'static,
    {
        self.error.set(None);
        spawn_local(async move {
            match work.await {
                Ok(()) => self.version.update(|v| *v += 1),
                Err(e) => self.error.set(Some(e)),
            }
        });
    }
}

fn msg(e: ServerFnError) -> String {
    match e {
        ServerFnError::ServerError(m) => m,
        other => other.to_string(),
    }
}

fn when(t: Option<UnixMillis>, now: UnixMillis) -> String {
    t.map(|t| ago(now, t)).unwrap_or_else(|| "never".into())
}

#[component]
fn Settings() -> impl IntoView {
    let feedback = Feedback {
        error: RwSignal::new(None),
        version: RwSignal::new(0),
        new_key: RwSignal::new(None),
        new_token: RwSignal::new(None),
    };
    let settings = Resource::new(move || feedback.version.get(), |_| load_settings());
    view! {
        {move || feedback.error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        <Transition fallback=|| view! { <p class="empty">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match settings.await {
                    Ok((s, now)) => view! { <SettingsView settings=s feedback now /> }.into_any(),
                    Err(e) => view! { <p class="error">{msg(e)}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn SettingsView(settings: AccountSettings, feedback: Feedback, now: UnixMillis) -> impl IntoView {
    let AccountSettings {
        account,
        passkeys,
        lightning_keys,
        sessions,
        api_keys,
        enrol_tokens,
    } = settings;
    let public_name = RwSignal::new(account.public_name.clone().unwrap_or_default());
    let save_name = move |ev: SubmitEvent| {
        ev.prevent_default();
        let name = Some(public_name.get_untracked()).filter(|n| !n.trim().is_empty());
        feedback.run(async move { set_public_name(name).await.map(|_| ()).map_err(msg) });
    };
    let last_way_in = passkeys.len() + lightning_keys.len() <= 1;
    view! {
        <section class="card">
            <h2>"Account"</h2>
            <p>
                <strong id="account-name">{account.display_name.clone()}</strong>
                " "
                <span class="mono muted">{account.id.to_string()}</span>
            </p>
            <form class="inline" on:submit=save_name>
                <label>
                    "Public operator name (shown next to your nodes; empty hides it)"
                    <input
                        maxlength="64"
                        prop:value=move || public_name.get()
                        on:input:target=move |ev| public_name.set(ev.target().value())
                    />
                </label>
                <button type="submit">"Save"</button>
            </form>
            <DefaultMaxPrice current=account.default_max_price_msat feedback />
        </section>

        <section class="card" id="passkeys">
            <h2>"Passkeys"</h2>
            <ul class="rows">
                {passkeys
                    .into_iter()
                    .map(|p| {
                        let id = p.id.clone();
                        view! {
                            <li>
                                <span>{p.name}</span>
                                <span class="muted">"used " {when(p.last_used, now)}</span>
                                <button
                                    class="secondary"
                                    disabled=last_way_in
                                    on:click=move |_| {
                                        let id = id.clone();
                                        feedback.run(async move { remove_passkey(id).await.map_err(msg) })
                                    }
                                >
                                    "Remove"
                                </button>
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
            <button
                id="add-passkey"
                on:click=move |_| {
                    feedback.run(async move { add_passkey("Another passkey".into()).await.map(|_| ()) })
                }
            >
                "Add a passkey"
            </button>
        </section>

        <section class="card" id="lightning-keys">
            <h2>"Lightning wallets"</h2>
            <ul class="rows">
                {lightning_keys
                    .into_iter()
                    .map(|k| {
                        let id = k.id.clone();
                        view! {
                            <li>
                                <span class="mono">{crate::components::short_id(&k.pubkey)}</span>
                                <span class="muted">"used " {when(k.last_used, now)}</span>
                                <button
                                    class="secondary"
                                    disabled=last_way_in
                                    on:click=move |_| {
                                        let id = id.clone();
                                        feedback.run(async move { remove_lightning_key(id).await.map_err(msg) })
                                    }
                                >
                                    "Remove"
                                </button>
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
            <LinkWallet feedback />
        </section>

        <section class="card" id="sessions">
            <h2>"Signed-in devices"</h2>
            <ul class="rows">
                {sessions
                    .into_iter()
                    .map(|s| {
                        let id = s.id.clone();
                        let device = s.user_agent.clone().unwrap_or_else(|| "unknown device".into());
                        view! {
                            <li>
                                <span class="ellipsis">{device}</span>
                                <span class="muted">
                                    {s.method} ", seen " {ago(now, s.last_seen)}
                                    {s.current.then_some(" (this device)")}
                                </span>
                                <button
                                    class="secondary"
                                    on:click=move |_| {
                                        let id = id.clone();
                                        feedback.run(async move { end_session(id).await.map_err(msg) })
                                    }
                                >
                                    "Sign out"
                                </button>
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
            <SignOutEverywhere feedback />
        </section>

        <ApiKeys keys=api_keys feedback now />
        <EnrolTokens tokens=enrol_tokens feedback now />
    }
}

#[component]
fn LinkWallet(feedback: Feedback) -> impl IntoView {
    let login = RwSignal::new(None::<LnurlLogin>);
    let start = move |_| {
        feedback.error.set(None);
        spawn_local(async move {
            match start_lightning(true).await {
                Ok(l) => {
                    login.set(Some(l.clone()));
                    let state = wait_for_wallet(&l).await;
                    login.set(None);
                    match state {
                        Ok(LnurlState::Done) => feedback.version.update(|v| *v += 1),
                        Ok(_) => feedback
                            .error
                            .set(Some("That code expired; start again.".into())),
                        Err(e) => feedback.error.set(Some(e)),
                    }
                }
                Err(e) => feedback.error.set(Some(e)),
            }
        });
    };
    view! {
        <button id="link-wallet" on:click=start>"Link a Lightning wallet"</button>
        {move || {
            login
                .get()
                .map(|l| {
                    view! {
                        <div class="qr" inner_html=l.qr_svg.clone()></div>
                        <a class="lnurl mono" href=l.uri.clone()>"Open in a wallet"</a>
                        <p class="muted">"Waiting for your wallet…"</p>
                    }
                })
        }}
    }
}

#[component]
fn SignOutEverywhere(feedback: Feedback) -> impl IntoView {
    let me = Me::get();
    let navigate = use_navigate();
    let everywhere = move |_| {
        let navigate = navigate.clone();
        spawn_local(async move {
            match sign_out_everywhere().await {
                Ok(()) => {
                    me.changed(false);
                    navigate("/sign-in", Default::default());
                }
                Err(e) => feedback.error.set(Some(e)),
            }
        });
    };
    view! {
        <button id="sign-out-everywhere" class="danger" on:click=everywhere>
            "Sign out everywhere"
        </button>
    }
}

/// A secret shown once, with a copy button.
#[component]
fn Secret(id: &'static str, text: String, note: &'static str) -> impl IntoView {
    let copied = RwSignal::new(false);
    let to_copy = text.clone();
    view! {
        <div class="secret">
            <p class="muted">{note}</p>
            <code id=id class="mono">{text}</code>
            <button
                class="secondary"
                on:click=move |_| {
                    let t = to_copy.clone();
                    spawn_local(async move {
                        copied.set(copy(&t).await.is_ok());
                    })
                }
            >
                {move || if copied.get() { "Copied" } else { "Copy" }}
            </button>
        </div>
    }
}

#[component]
fn EnrolTokens(
    tokens: Vec<wire::accounts::EnrolTokenView>,
    feedback: Feedback,
    now: UnixMillis,
) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let reusable = RwSignal::new(false);
    let days = RwSignal::new(1u64);
    let created = feedback.new_token;
    let create = move |ev: SubmitEvent| {
        ev.prevent_default();
        let new = NewEnrolToken {
            name: name.get_untracked(),
            reusable: reusable.get_untracked(),
            expires_in_secs: Some(days.get_untracked() * 24 * 3600),
        };
        feedback.error.set(None);
        spawn_local(async move {
            match create_enrol_token(new).await {
                Ok(t) => {
                    created.set(Some(t.secret));
                    name.set(String::new());
                    feedback.version.update(|v| *v += 1);
                }
                Err(e) => feedback.error.set(Some(msg(e))),
            }
        });
    };
    let origin = origin();
    view! {
        <section class="card" id="enrol-tokens">
            <h2>"Enrolment tokens"</h2>
            <p class="muted">
                "Start a node with " <code>"--enroll <token>"</code>
                " and it joins your account. A reusable token enrols a whole farm."
            </p>
            <form on:submit=create>
                <label>
                    "Name"
                    <input
                        maxlength="64"
                        prop:value=move || name.get()
                        on:input:target=move |ev| name.set(ev.target().value())
                    />
                </label>
                <label class="check">
                    <input
                        type="checkbox"
                        prop:checked=move || reusable.get()
                        on:change:target=move |ev| reusable.set(ev.target().checked())
                    />
                    "Reusable (many nodes)"
                </label>
                <label>
                    "Expires after"
                    <select on:change:target=move |ev| {
                        days.set(ev.target().value().parse().unwrap_or(1))
                    }>
                        <option value="1">"1 day"</option>
                        <option value="7">"7 days"</option>
                        <option value="30">"30 days"</option>
                        <option value="90">"90 days"</option>
                    </select>
                </label>
                <button type="submit">"Create token"</button>
            </form>
            {move || {
                let origin = origin.clone();
                created
                    .get()
                    .map(|secret| {
                        let command = format!("infernet-node --server {origin} --enroll {secret}");
                        view! {
                            <Secret
                                id="new-enrol-token"
                                text=command
                                note="Run this on each node: the token is not shown again."
                            />
                        }
                    })
            }}
            <ul class="rows">
                {tokens
                    .into_iter()
                    .map(|t| {
                        let id = t.id.clone();
                        let live = t.revoked_at.is_none() && t.expires_at > now;
                        view! {
                            <li>
                                <span>
                                    <strong>{t.name}</strong>
                                    " "
                                    <span class="mono">{t.prefix} "…"</span>
                                </span>
                                <span class="muted">
                                    {if t.reusable { "reusable" } else { "single-use" }} ", "
                                    {t.uses} " used"
                                </span>
                                {if live {
                                    view! {
                                        <button
                                            class="secondary"
                                            on:click=move |_| {
                                                let id = id.clone();
                                                feedback.run(async move { revoke_enrol_token(id).await.map_err(msg) })
                                            }
                                        >
                                            "Revoke"
                                        </button>
                                    }
                                        .into_any()
                                } else {
                                    view! { <span class="badge offline">"ended"</span> }.into_any()
                                }}
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        </section>
    }
}

/// This site's origin, for the command line a node runs.
fn origin() -> String {
    #[cfg(feature = "hydrate")]
    {
        web_sys::window()
            .and_then(|w| w.location().origin().ok())
            .unwrap_or_default()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        "<this server>".into()
    }
}
