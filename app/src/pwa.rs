//! The installed app's side of the browser: whether the network is there,
//! a new version waiting (offered, never forced mid-task), and the
//! browser's offer to install the app.
//!
//! The page's shell script (see [`SHELL_SCRIPT`]) registers the service
//! worker and catches the browser's events before the app has loaded;
//! the app reads what it caught and follows what comes next.

use leptos::prelude::*;

/// Runs in the page before the app loads: registers the service worker,
/// notes a new version waiting, and keeps the browser's install offer
/// (`beforeinstallprompt` fires once, early) for the Install button.
pub const SHELL_SCRIPT: &str = r#"(() => {
  const s = (window.__infernet = { waiting: null, install: null, applying: false });
  const tell = (n) => window.dispatchEvent(new Event(n));
  addEventListener("beforeinstallprompt", (e) => { e.preventDefault(); s.install = e; tell("infernet-pwa"); });
  addEventListener("appinstalled", () => { s.install = null; tell("infernet-pwa"); });
  if (!("serviceWorker" in navigator)) return;
  const waiting = (w) => { if (w && navigator.serviceWorker.controller) { s.waiting = w; tell("infernet-pwa"); } };
  addEventListener("load", () => navigator.serviceWorker.register("/sw.js").then((reg) => {
    waiting(reg.waiting);
    reg.addEventListener("updatefound", () => {
      const w = reg.installing;
      if (w) w.addEventListener("statechange", () => { if (w.state === "installed") waiting(w); });
    });
    setInterval(() => reg.update().catch(() => {}), 3600000);
  }).catch(() => {}));
  navigator.serviceWorker.addEventListener("controllerchange", () => { if (s.applying) location.reload(); });
})();"#;

/// What the app knows of the browser's state; in context from [`provide`].
#[derive(Clone, Copy)]
pub(crate) struct Pwa {
    /// The browser says it is online (on the server: always).
    pub(crate) online: ReadSignal<bool>,
    update: ReadSignal<bool>,
    installable: ReadSignal<bool>,
}

impl Pwa {
    pub(crate) fn get() -> Self {
        expect_context::<Pwa>()
    }
}

/// Puts [`Pwa`] in context and starts following the browser's events.
pub(crate) fn provide() {
    let (online, set_online) = signal(true);
    let (update, set_update) = signal(false);
    let (installable, set_installable) = signal(false);
    Effect::new(move |_| {
        let read = move || {
            let state = js::state();
            set_online.set(state & 4 != 0);
            set_update.set(state & 1 != 0);
            set_installable.set(state & 2 != 0);
        };
        read();
        js::follow(read);
    });
    provide_context(Pwa {
        online,
        update,
        installable,
    });
}

/// The offline and new-version banners, under the top bar.
#[component]
pub(crate) fn Banners() -> impl IntoView {
    let pwa = Pwa::get();
    let later = RwSignal::new(false);
    view! {
        <Show when=move || !pwa.online.get()>
            <div class="banner offline" role="status" id="offline-banner">
                <strong>"You are offline."</strong>
                <span>
                    "Showing what this app saw last. Anything that needs the network (running a job, commands, payments) waits until you are back."
                </span>
            </div>
        </Show>
        <Show when=move || pwa.update.get() && !later.get()>
            <div class="banner update" role="status" id="update-banner">
                <span>"A new version of Infernet is ready."</span>
                <button type="button" on:click=move |_| js::apply_update()>
                    "Reload to update"
                </button>
                <button type="button" class="secondary" on:click=move |_| later.set(true)>
                    "Later"
                </button>
            </div>
        </Show>
    }
}

/// "Install", where the browser offers to install the app.
#[component]
pub(crate) fn InstallButton() -> impl IntoView {
    let pwa = Pwa::get();
    view! {
        <Show when=move || pwa.installable.get()>
            <button type="button" class="install" id="install-app" on:click=move |_| js::install()>
                "Install app"
            </button>
        </Show>
    }
}

/// "You are offline" for a form whose action needs the network, or
/// nothing.
#[component]
pub(crate) fn NeedsNetwork() -> impl IntoView {
    let pwa = Pwa::get();
    // Pages loaded later (lazy routes) hydrate after the browser's state is
    // known: they must first render what the server did (online), and
    // follow the browser once hydrated, which an effect of their own does.
    let offline = RwSignal::new(false);
    Effect::new(move |_| offline.set(!pwa.online.get()));
    view! {
        <p class="stale needs-network" role="status" hidden=move || !offline.get()>
            "You are offline: this needs the network. Try again when you are back online."
        </p>
    }
}

/// Forgets the pages the service worker kept (they hold the account's
/// data), when signing out.
pub(crate) fn forget_pages() {
    js::forget_pages();
}

#[cfg(feature = "hydrate")]
mod js {
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen(inline_js = r#"
export function state() {
  const s = window.__infernet || {};
  return (s.waiting ? 1 : 0) | (s.install ? 2 : 0) | (navigator.onLine ? 4 : 0);
}
export function follow(cb) {
  for (const k of ["infernet-pwa", "online", "offline"]) addEventListener(k, () => cb());
}
export function applyUpdate() {
  const s = window.__infernet;
  if (s && s.waiting) { s.applying = true; s.waiting.postMessage("skip-waiting"); }
}
export async function install() {
  const s = window.__infernet;
  if (!s || !s.install) return;
  const offer = s.install;
  s.install = null;
  window.dispatchEvent(new Event("infernet-pwa"));
  try { await offer.prompt(); } catch (_) {}
}
export function forgetPages() {
  if (window.caches) caches.delete("infernet-pages").catch(() => {});
}
"#)]
    extern "C" {
        #[wasm_bindgen(js_name = state)]
        fn state_bits() -> u32;
        #[wasm_bindgen(js_name = follow)]
        fn follow_js(cb: &Closure<dyn FnMut()>);
        #[wasm_bindgen(js_name = applyUpdate)]
        pub(super) fn apply_update();
        #[wasm_bindgen(js_name = install)]
        fn install_js() -> js_sys::Promise;
        #[wasm_bindgen(js_name = forgetPages)]
        pub(super) fn forget_pages();
    }

    pub(super) fn state() -> u32 {
        state_bits()
    }

    /// Calls `cb` at every change, for the page's whole life.
    pub(super) fn follow(cb: impl FnMut() + 'static) {
        let cb = Closure::<dyn FnMut()>::new(cb);
        follow_js(&cb);
        cb.forget();
    }

    pub(super) fn install() {
        drop(install_js());
    }
}

#[cfg(not(feature = "hydrate"))]
mod js {
    pub(super) fn state() -> u32 {
        4
    }
    pub(super) fn follow(_: impl FnMut() + 'static) {}
    pub(super) fn apply_update() {}
    pub(super) fn install() {}
    pub(super) fn forget_pages() {}
}
