//! Chat with a text-generation model: the reply streams in token by token
//! from the server's OpenAI-compatible `POST /v1/chat/completions` (server-
//! sent events), then the job's record shows its cost and verified receipt.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use serde_json::{json, Value};

use crate::api::get_job;
use crate::components::JobResult;
use crate::pwa::NeedsNetwork;

#[derive(Debug, Clone, PartialEq)]
struct Message {
    role: &'static str,
    content: String,
}

#[component]
pub(crate) fn Chat(#[prop(into)] model: Signal<String>) -> impl IntoView {
    let messages = RwSignal::new(Vec::<Message>::new());
    let draft = RwSignal::new(String::from("Tell me a story about a lighthouse."));
    let max_tokens = RwSignal::new(48u32);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let job_id = RwSignal::new(None::<String>);
    let record = Resource::new(
        move || job_id.get(),
        |id| async move {
            match id {
                Some(id) => get_job(id).await.ok().flatten(),
                None => None,
            }
        },
    );

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let text = draft.get_untracked();
        if text.trim().is_empty() || busy.get_untracked() {
            return;
        }
        messages.update(|m| {
            m.push(Message {
                role: "user",
                content: text,
            });
            m.push(Message {
                role: "assistant",
                content: String::new(),
            })
        });
        draft.set(String::new());
        error.set(None);
        job_id.set(None);
        busy.set(true);
        let history: Vec<Value> = messages
            .get_untracked()
            .iter()
            .filter(|m| !(m.role == "assistant" && m.content.is_empty()))
            .map(|m| json!({ "role": m.role, "content": m.content }))
            .collect();
        let body = json!({
            "model": model.get_untracked(),
            "messages": history,
            "max_tokens": max_tokens.get_untracked(),
            "temperature": 0.8,
            "stream": true,
        });
        leptos::task::spawn_local(async move {
            let on_delta = move |delta: String| {
                messages.update(|m| {
                    if let Some(last) = m.last_mut() {
                        last.content.push_str(&delta);
                    }
                })
            };
            match stream_chat(body, on_delta).await {
                Ok(Some(id)) => job_id.set(Some(id)),
                Ok(None) => {}
                Err(e) => error.set(Some(e)),
            }
            busy.set(false);
        });
    };

    view! {
        <div class="chat" data-testid="chat">
            <ol class="messages">
                {move || {
                    messages
                        .get()
                        .into_iter()
                        .map(|m| {
                            let class = format!("message {}", m.role);
                            view! {
                                <li class=class data-role=m.role>
                                    <span class="role">{m.role}</span>
                                    <pre>{m.content}</pre>
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ol>
            <form class="run" on:submit=on_submit>
                <label>
                    "Message" <textarea name="message" rows="3" bind:value=draft></textarea>
                </label>
                <label>
                    "Max tokens "
                    <input
                        type="number"
                        name="max_tokens"
                        min="1"
                        max="4096"
                        prop:value=move || max_tokens.get().to_string()
                        on:change:target=move |ev| {
                            if let Ok(n) = ev.target().value().parse() {
                                max_tokens.set(n)
                            }
                        }
                    />
                </label>
                <button type="submit" disabled=move || busy.get()>
                    {move || if busy.get() { "Generating…" } else { "Send" }}
                </button>
                <NeedsNetwork />
            </form>
            {move || error.get().map(|e| view! { <p class="error" data-testid="chat-error">{e}</p> })}
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    record.await.map(|record| view! { <JobResult record /> })
                })}
            </Suspense>
        </div>
    }
}

/// Posts `body` with `stream: true` and feeds each content delta to
/// `on_delta`; returns the job id from the final chunk.
#[cfg(feature = "hydrate")]
async fn stream_chat(body: Value, on_delta: impl Fn(String)) -> Result<Option<String>, String> {
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;

    let js_err = |e: wasm_bindgen::JsValue| format!("{e:?}");
    let window = web_sys::window().ok_or("no window")?;
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&wasm_bindgen::JsValue::from_str(&body.to_string()));
    let headers = web_sys::Headers::new().map_err(js_err)?;
    headers
        .set("content-type", "application/json")
        .map_err(js_err)?;
    init.set_headers(&headers);
    let request =
        web_sys::Request::new_with_str_and_init("/v1/chat/completions", &init).map_err(js_err)?;
    let response: web_sys::Response = JsFuture::from(window.fetch_with_request(&request))
        .await
        .map_err(js_err)?
        .dyn_into()
        .map_err(js_err)?;
    if !response.ok() {
        let text = JsFuture::from(response.text().map_err(js_err)?)
            .await
            .map_err(js_err)?
            .as_string()
            .unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or(text);
        return Err(message);
    }
    let reader: web_sys::ReadableStreamDefaultReader = response
        .body()
        .ok_or("the answer has no body")?
        .get_reader()
        .unchecked_into();
    let decoder = web_sys::TextDecoder::new().map_err(js_err)?;
    let opts = web_sys::TextDecodeOptions::new();
    opts.set_stream(true);
    let mut buffer = String::new();
    let mut job = None;
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(js_err)?;
        let done = js_sys::Reflect::get(&chunk, &"done".into())
            .map_err(js_err)?
            .as_bool()
            .unwrap_or(true);
        if done {
            break;
        }
        let value: js_sys::Uint8Array = js_sys::Reflect::get(&chunk, &"value".into())
            .map_err(js_err)?
            .dyn_into()
            .map_err(js_err)?;
        let text = decoder
            .decode_with_buffer_source_and_options(&value, &opts)
            .map_err(js_err)?;
        buffer.push_str(&text);
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            for data in event.lines().filter_map(|l| l.strip_prefix("data:")) {
                let data = data.trim_start();
                if data == "[DONE]" {
                    return Ok(job);
                }
                let Ok(v) = serde_json::from_str::<Value>(data) else {
                    continue;
                };
                if let Some(message) = v["error"]["message"].as_str() {
                    return Err(message.to_owned());
                }
                if let Some(delta) = v["choices"][0]["delta"]["content"].as_str() {
                    if !delta.is_empty() {
                        on_delta(delta.to_owned());
                    }
                }
                if let Some(id) = v["infernet"]["job_id"].as_str() {
                    job = Some(id.to_owned());
                }
            }
        }
    }
    Ok(job)
}

#[cfg(not(feature = "hydrate"))]
async fn stream_chat(_body: Value, _on_delta: impl Fn(String)) -> Result<Option<String>, String> {
    Err("chat streams in the browser".into())
}
