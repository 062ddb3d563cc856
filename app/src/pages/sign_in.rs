//! Signing in and signing up: a passkey (no username to type), a new
//! account with a passkey, or a Lightning wallet scanning a QR code. The
//! page signs in as soon as the server has checked the wallet's signature.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::{use_navigate, use_query_map};
use wire::accounts::{LnurlLogin, LnurlState};

use crate::auth::{safe_next, sign_in_with_passkey, sign_up, start_lightning, wait_for_wallet, Me};
use crate::pwa::NeedsNetwork;

#[component]
pub(crate) fn SignInPage() -> impl IntoView {
    let me = Me::get();
    let query = use_query_map();
    let navigate = use_navigate();
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let name = RwSignal::new(String::new());
    let lightning = RwSignal::new(None::<LnurlLogin>);
    let lightning_note = RwSignal::new(None::<String>);

    // After any way in: who is signed in changes, then on to `next`.
    let done = move || {
        me.changed(true);
        let next = safe_next(query.read_untracked().get("next"));
        navigate(&next, Default::default());
    };

    let passkey = {
        let done = done.clone();
        move |_| {
            let done = done.clone();
            busy.set(true);
            error.set(None);
            spawn_local(async move {
                match sign_in_with_passkey().await {
                    Ok(_) => done(),
                    Err(e) => error.set(Some(e)),
                }
                busy.set(false);
            });
        }
    };

    let create = {
        let done = done.clone();
        move |ev: SubmitEvent| {
            ev.prevent_default();
            let display_name = name.get_untracked().trim().to_owned();
            if display_name.is_empty() {
                error.set(Some("Choose a display name first.".into()));
                return;
            }
            let done = done.clone();
            busy.set(true);
            error.set(None);
            spawn_local(async move {
                match sign_up(display_name).await {
                    Ok(_) => done(),
                    Err(e) => error.set(Some(e)),
                }
                busy.set(false);
            });
        }
    };

    let with_lightning = move |_| {
        let done = done.clone();
        error.set(None);
        lightning_note.set(Some("Preparing…".into()));
        spawn_local(async move {
            let login = match start_lightning(false).await {
                Ok(l) => l,
                Err(e) => {
                    lightning_note.set(None);
                    error.set(Some(e));
                    return;
                }
            };
            lightning.set(Some(login.clone()));
            lightning_note.set(Some("Waiting for your wallet…".into()));
            match wait_for_wallet(&login).await {
                Ok(LnurlState::Done) => done(),
                Ok(_) => {
                    lightning.set(None);
                    lightning_note.set(Some("That code expired; start again.".into()));
                }
                Err(e) => {
                    lightning.set(None);
                    lightning_note.set(None);
                    error.set(Some(e));
                }
            }
        });
    };

    view! {
        <h1>"Sign in"</h1>
        <NeedsNetwork />
        <div class="cards">
            <section class="card">
                <h2>"With a passkey"</h2>
                <p class="muted">"Your phone, computer or security key signs you in. No password."</p>
                <button id="passkey-sign-in" on:click=passkey disabled=move || busy.get()>
                    "Sign in with a passkey"
                </button>
            </section>
            <section class="card">
                <h2>"New here?"</h2>
                <form on:submit=create>
                    <label>
                        "Display name"
                        <input
                            id="display-name"
                            maxlength="64"
                            autocomplete="nickname"
                            prop:value=move || name.get()
                            on:input:target=move |ev| name.set(ev.target().value())
                        />
                    </label>
                    <button id="passkey-sign-up" type="submit" disabled=move || busy.get()>
                        "Create an account with a passkey"
                    </button>
                </form>
            </section>
            <section class="card">
                <h2>"With Lightning"</h2>
                <p class="muted">"Scan with a wallet that supports LNURL-auth."</p>
                <button id="lightning-sign-in" on:click=with_lightning>
                    "Sign in with Lightning"
                </button>
                {move || {
                    lightning
                        .get()
                        .map(|login| {
                            view! {
                                <div class="qr" inner_html=login.qr_svg.clone()></div>
                                <a class="lnurl mono" href=login.uri.clone()>
                                    "Open in a wallet"
                                </a>
                            }
                        })
                }}
                {move || lightning_note.get().map(|n| view! { <p class="muted">{n}</p> })}
            </section>
        </div>
        {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
    }
}
