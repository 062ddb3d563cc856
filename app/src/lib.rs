//! Infernet's web app: browse nodes, run jobs, read their receipts.
//!
//! Server-only code (the [`backend`] the server functions call into) sits
//! behind the `ssr` feature; the `hydrate` build for the browser never sees
//! it. The app never talks to SurrealDB or libp2p itself.

// `#[component]` expands to `pub` items inside private modules.
#![allow(unreachable_pub)]
// The Settings page's view type is deep: the compiler's default of 128
// nested queries is not enough for it in the browser build.
#![recursion_limit = "256"]

pub mod api;
mod auth;
#[cfg(feature = "ssr")]
pub mod backend;
mod browser;
mod components;
mod pages;
mod pwa;
mod routes;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Link, Meta, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::path;
use leptos_router::{Lazy, SsrMode};

use crate::auth::Me;

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="stylesheet" id="infernet" href=format!("/{}/app.css", options.site_pkg_dir) />
                <AppScript options />
                <MetaTags />
            </head>
            <body>
                <App />
                <script inner_html=pwa::SHELL_SCRIPT></script>
            </body>
        </html>
    }
}

/// Loads the app's code and hydrates the page, once the server-rendered
/// page has painted: the page is readable first (its largest paint never
/// waits for the wasm), interactive a moment later. This is Leptos's
/// `HydrationScripts` without its preload hints in the head; like it, it
/// reads the build's split manifest once, so that a lazy page's server
/// rendering names the wasm modules it needs.
#[component]
fn AppScript(options: LeptosOptions) -> impl IntoView {
    use std::sync::OnceLock;
    static SPLIT: OnceLock<Option<leptos::WasmSplitManifest>> = OnceLock::new();
    let pkg = options.site_pkg_dir.to_string();
    let split = SPLIT.get_or_init(|| {
        let path = std::path::Path::new(options.site_root.as_ref())
            .join(&pkg)
            .join("__wasm_split_manifest.json");
        let text = std::fs::read_to_string(path).ok()?;
        let preloads = serde_json::from_str(&text).ok()?;
        Some(leptos::WasmSplitManifest(ArcStoredValue::new((
            format!("/{pkg}"),
            preloads,
            "__wasm_split.______________________.js".to_owned(),
        ))))
    });
    if let Some(split) = split {
        provide_context(split.clone());
    }
    let name = options.output_name.to_string();
    let script = format!(
        "const go = () => import(\"/{pkg}/{name}.js\").then((m) => m.default({{ module_or_path: \"/{pkg}/{name}_bg.wasm\" }}).then(() => m.hydrate()));\n\
         requestAnimationFrame(() => setTimeout(go, 0));"
    );
    view! { <script type="module" inner_html=script></script> }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Effects run only in the browser: this marks the page as hydrated, which
    // the browser tests wait for before they click.
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    Me::provide();
    pwa::provide();
    // The top bar's menu, on narrow screens: closed again by any navigation.
    let menu = RwSignal::new(false);
    view! {
        <Title text="Infernet" />
        <Meta name="description" content="An open marketplace for AI inference" />
        <Meta name="theme-color" content="#0f172a" />
        <Link rel="manifest" href="/manifest.webmanifest" />
        <Link rel="icon" href="/icons/icon-192.png" />
        <Link rel="apple-touch-icon" href="/icons/icon-192.png" />
        <Router>
            <header class="topbar" class:open=move || menu.get()>
                <A href="/" attr:class="brand">
                    "Infernet"
                </A>
                <pwa::InstallButton />
                <button
                    type="button"
                    class="menu-toggle"
                    aria-controls="main-nav"
                    aria-expanded=move || if menu.get() { "true" } else { "false" }
                    on:click=move |_| menu.update(|m| *m = !*m)
                >
                    {move || if menu.get() { "Close" } else { "Menu" }}
                </button>
                <nav id="main-nav" aria-label="Main" on:click=move |_| menu.set(false)>
                    <A href="/">"Nodes"</A>
                    <A href="/run">"Run a job"</A>
                    <A href="/jobs">"Jobs"</A>
                    <A href="/my-nodes">"My nodes"</A>
                    <A href="/wallet">"Wallet"</A>
                </nav>
                <AccountMenu />
            </header>
            <pwa::Banners />
            <main>
                <Routes fallback=|| view! { <p class="empty">"Page not found."</p> }>
                    // Every page rendered whole on the server, not streamed:
                    // its data is in the first HTML (the node list, what
                    // people come for, paints first), and the same data
                    // gives the same bytes, so a kept copy is revalidated
                    // rather than sent again (the server's `validators`).
                    <Route path=path!("/") view=pages::nodes::NodesPage ssr=SsrMode::Async />
                    <Route path=path!("/node/:id") view={Lazy::<routes::NodeRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/run") view={Lazy::<routes::RunRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/jobs") view={Lazy::<routes::JobsRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/jobs/:id") view={Lazy::<routes::JobRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/sign-in") view={Lazy::<routes::SignInRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/settings") view={Lazy::<routes::SettingsRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/my-nodes") view={Lazy::<routes::FleetRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/my-nodes/:id") view={Lazy::<routes::FleetNodeRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/wallet") view={Lazy::<routes::WalletRoute>::new()} ssr=SsrMode::Async />
                </Routes>
            </main>
        </Router>
    }
}

/// The top bar's account corner: who is signed in (to Settings) and sign
/// out, or a link to sign in.
#[component]
fn AccountMenu() -> impl IntoView {
    let me = Me::get();
    let navigate = leptos_router::hooks::use_navigate();
    let sign_out = move |_| {
        let navigate = navigate.clone();
        leptos::task::spawn_local(async move {
            if auth::sign_out().await.is_ok() {
                pwa::forget_pages();
                me.changed(false);
                navigate("/", Default::default());
            }
        });
    };
    view! {
        <div class="account">
            <Transition fallback=|| ()>
                {move || {
                    let sign_out = sign_out.clone();
                    Suspend::new(async move {
                    match me.account.await {
                        Ok(Some(account)) => {
                            view! {
                                <A href="/settings" attr:id="account-menu">
                                    {account.display_name}
                                </A>
                                <button id="sign-out" class="link" on:click=sign_out>
                                    "Sign out"
                                </button>
                            }
                                .into_any()
                        }
                        _ => view! { <A href="/sign-in" attr:id="sign-in-link">"Sign in"</A> }.into_any(),
                    }
                })
                }}
            </Transition>
        </div>
    }
}

/// The browser's entry point, called by the hydration script.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_lazy(App);
}
