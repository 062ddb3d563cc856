//! What only a browser can do: call the server's JSON routes with the
//! session cookie (signing in and out sets and clears it), run WebAuthn
//! ceremonies, copy to the clipboard. On the server these answer an error:
//! they run from event handlers, which only the hydrated page has.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// `method` `url` with a JSON body (or none), answering the JSON body, or
/// the error message of an answer in the project's error shape.
#[cfg(feature = "hydrate")]
pub(crate) async fn call<T: DeserializeOwned>(
    method: &str,
    url: &str,
    body: Option<&impl Serialize>,
) -> Result<T, String> {
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;

    let js_err = |e: wasm_bindgen::JsValue| {
        e.as_string()
            .or_else(|| {
                js_sys::Reflect::get(&e, &"message".into())
                    .ok()
                    .and_then(|m| m.as_string())
            })
            .unwrap_or_else(|| format!("{e:?}"))
    };
    let window = web_sys::window().ok_or("no window")?;
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    let headers = web_sys::Headers::new().map_err(js_err)?;
    if let Some(body) = body {
        let text = serde_json::to_string(body).map_err(|e| e.to_string())?;
        init.set_body(&wasm_bindgen::JsValue::from_str(&text));
        headers
            .set("content-type", "application/json")
            .map_err(js_err)?;
    }
    init.set_headers(&headers);
    let request = web_sys::Request::new_with_str_and_init(url, &init).map_err(js_err)?;
    let response: web_sys::Response = JsFuture::from(window.fetch_with_request(&request))
        .await
        .map_err(js_err)?
        .dyn_into()
        .map_err(js_err)?;
    let text = JsFuture::from(response.text().map_err(js_err)?)
        .await
        .map_err(js_err)?
        .as_string()
        .unwrap_or_default();
    if !response.ok() {
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("the server answered {}", response.status()));
        return Err(message);
    }
    let text = if text.is_empty() { "null".into() } else { text };
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

#[cfg(not(feature = "hydrate"))]
pub(crate) async fn call<T: DeserializeOwned>(
    _method: &str,
    _url: &str,
    _body: Option<&impl Serialize>,
) -> Result<T, String> {
    Err("only in the browser".into())
}

#[cfg(feature = "hydrate")]
mod js {
    use wasm_bindgen::prelude::*;

    // The WebAuthn API takes and gives ArrayBuffers; the server speaks
    // base64url JSON (as `PublicKeyCredential.parse…FromJSON` and `toJSON`
    // do, which not every browser has yet).
    #[wasm_bindgen(inline_js = r#"
const toBytes = (s) => {
  const b = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
  return Uint8Array.from(b, (c) => c.charCodeAt(0)).buffer;
};
const toText = (buf) => {
  if (!buf) return null;
  let s = "";
  for (const b of new Uint8Array(buf)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
};
const ids = (list) => list && list.map((c) => ({ ...c, id: toBytes(c.id) }));
export function passkeysSupported() {
  return typeof window !== "undefined" && !!window.PublicKeyCredential && !!navigator.credentials;
}
export async function passkeyCreate(json) {
  const o = JSON.parse(json);
  o.challenge = toBytes(o.challenge);
  o.user.id = toBytes(o.user.id);
  o.excludeCredentials = ids(o.excludeCredentials);
  // PRF lets the Wallet page derive a wallet from this passkey; browsers
  // and authenticators without it ignore the request.
  o.extensions = { ...(o.extensions || {}), prf: {} };
  const c = await navigator.credentials.create({ publicKey: o });
  return JSON.stringify({
    id: c.id, rawId: toText(c.rawId), type: c.type,
    response: {
      attestationObject: toText(c.response.attestationObject),
      clientDataJSON: toText(c.response.clientDataJSON),
      transports: c.response.getTransports ? c.response.getTransports() : undefined,
    },
    extensions: c.getClientExtensionResults(),
  });
}
export async function passkeyGet(json) {
  const o = JSON.parse(json);
  o.challenge = toBytes(o.challenge);
  o.allowCredentials = ids(o.allowCredentials);
  const c = await navigator.credentials.get({ publicKey: o });
  return JSON.stringify({
    id: c.id, rawId: toText(c.rawId), type: c.type,
    response: {
      authenticatorData: toText(c.response.authenticatorData),
      clientDataJSON: toText(c.response.clientDataJSON),
      signature: toText(c.response.signature),
      userHandle: toText(c.response.userHandle),
    },
    extensions: c.getClientExtensionResults(),
  });
}
export async function copyText(text) {
  await navigator.clipboard.writeText(text);
}
const streams = new Map();
let nextStream = 1;
export function openEvents(url, kinds, cb) {
  const id = nextStream++;
  const es = new EventSource(url);
  // "open" and "error" are the stream's own events, without data.
  for (const k of kinds.split(",")) es.addEventListener(k, (e) => cb(k, e.data ?? ""));
  streams.set(id, es);
  return id;
}
export function closeEvents(id) {
  streams.get(id)?.close();
  streams.delete(id);
}
export async function openWallet(id, network) {
  const m = await import("/wallet/wallet.js");
  await m.mount(document.getElementById(id), { network });
}
"#)]
    extern "C" {
        #[wasm_bindgen(js_name = passkeysSupported)]
        pub(super) fn passkeys_supported() -> bool;
        #[wasm_bindgen(js_name = passkeyCreate, catch)]
        pub(super) async fn passkey_create(json: &str) -> Result<JsValue, JsValue>;
        #[wasm_bindgen(js_name = passkeyGet, catch)]
        pub(super) async fn passkey_get(json: &str) -> Result<JsValue, JsValue>;
        #[wasm_bindgen(js_name = copyText, catch)]
        pub(super) async fn copy_text(text: &str) -> Result<JsValue, JsValue>;
        #[wasm_bindgen(js_name = openEvents)]
        pub(super) fn open_events(
            url: &str,
            kinds: &str,
            cb: &Closure<dyn FnMut(String, String)>,
        ) -> u32;
        #[wasm_bindgen(js_name = closeEvents)]
        pub(super) fn close_events(id: u32);
        #[wasm_bindgen(js_name = openWallet, catch)]
        pub(super) async fn open_wallet(id: &str, network: &str) -> Result<JsValue, JsValue>;
    }
}

/// The browser's reason for refusing a ceremony, in words.
#[cfg(feature = "hydrate")]
fn ceremony_error(e: wasm_bindgen::JsValue) -> String {
    let name = js_sys::Reflect::get(&e, &"name".into())
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_default();
    match name.as_str() {
        "NotAllowedError" => "The passkey request was cancelled or timed out.".into(),
        "InvalidStateError" => "This device already holds a passkey for this account.".into(),
        "SecurityError" => "Passkeys need this site's own address (https, or localhost).".into(),
        _ => js_sys::Reflect::get(&e, &"message".into())
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_else(|| "The passkey request failed.".into()),
    }
}

/// Refuses at once where the browser has no WebAuthn.
#[cfg(feature = "hydrate")]
fn require_passkeys() -> Result<(), String> {
    if js::passkeys_supported() {
        Ok(())
    } else {
        Err("This browser has no passkeys.".into())
    }
}

/// The credential a ceremony answered, as the server reads it.
#[cfg(feature = "hydrate")]
fn credential(
    out: Result<wasm_bindgen::JsValue, wasm_bindgen::JsValue>,
) -> Result<serde_json::Value, String> {
    let out = out.map_err(ceremony_error)?;
    serde_json::from_str(&out.as_string().unwrap_or_default()).map_err(|e| e.to_string())
}

/// Runs `navigator.credentials.create` on the server's options.
#[cfg(feature = "hydrate")]
pub(crate) async fn create_passkey(
    options: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    require_passkeys()?;
    credential(js::passkey_create(&options.to_string()).await)
}

/// Runs `navigator.credentials.get` on the server's options.
#[cfg(feature = "hydrate")]
pub(crate) async fn get_passkey(options: &serde_json::Value) -> Result<serde_json::Value, String> {
    require_passkeys()?;
    credential(js::passkey_get(&options.to_string()).await)
}

#[cfg(feature = "hydrate")]
pub(crate) async fn copy(text: &str) -> Result<(), String> {
    js::copy_text(text)
        .await
        .map(|_| ())
        .map_err(|_| "Could not copy; select the text instead.".to_owned())
}

#[cfg(not(feature = "hydrate"))]
pub(crate) async fn create_passkey(_: &serde_json::Value) -> Result<serde_json::Value, String> {
    Err("only in the browser".into())
}

#[cfg(not(feature = "hydrate"))]
pub(crate) async fn get_passkey(_: &serde_json::Value) -> Result<serde_json::Value, String> {
    Err("only in the browser".into())
}

#[cfg(not(feature = "hydrate"))]
pub(crate) async fn copy(_: &str) -> Result<(), String> {
    Err("only in the browser".into())
}

/// Loads the browser wallet (and with it the Lightning SDK, only now) into
/// the element `id`, on `network`.
#[cfg(feature = "hydrate")]
pub(crate) async fn open_wallet(id: &str, network: &str) -> Result<(), String> {
    js::open_wallet(id, network).await.map(|_| ()).map_err(|e| {
        js_sys::Reflect::get(&e, &"message".into())
            .ok()
            .and_then(|m| m.as_string())
            .unwrap_or_else(|| "The wallet could not load.".into())
    })
}

#[cfg(not(feature = "hydrate"))]
pub(crate) async fn open_wallet(_: &str, _: &str) -> Result<(), String> {
    Err("only in the browser".into())
}

/// Listens to the server-sent events at `url` (with the session cookie)
/// of the types in `kinds`, calling `on_event(type, data)` for each, until
/// [`stop_events`] with the id it returns. The browser reconnects by itself
/// when the stream breaks.
#[cfg(feature = "hydrate")]
pub(crate) fn listen_events(
    url: &str,
    kinds: &[&str],
    on_event: impl FnMut(String, String) + 'static,
) -> u32 {
    use wasm_bindgen::closure::Closure;
    let cb: Closure<dyn FnMut(String, String)> = Closure::new(on_event);
    let id = js::open_events(url, &kinds.join(","), &cb);
    EVENT_CALLBACKS.with(|m| m.borrow_mut().insert(id, cb));
    id
}

/// The callbacks of the open event streams, by id: they live as long as
/// their stream.
#[cfg(feature = "hydrate")]
type EventCallbacks =
    std::collections::HashMap<u32, wasm_bindgen::closure::Closure<dyn FnMut(String, String)>>;

#[cfg(feature = "hydrate")]
thread_local! {
    static EVENT_CALLBACKS: std::cell::RefCell<EventCallbacks> = Default::default();
}

#[cfg(feature = "hydrate")]
pub(crate) fn stop_events(id: u32) {
    js::close_events(id);
    EVENT_CALLBACKS.with(|m| m.borrow_mut().remove(&id));
}

#[cfg(not(feature = "hydrate"))]
pub(crate) fn listen_events(_: &str, _: &[&str], _: impl FnMut(String, String) + 'static) -> u32 {
    0
}

#[cfg(not(feature = "hydrate"))]
pub(crate) fn stop_events(_: u32) {}
