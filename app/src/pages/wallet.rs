//! Wallet: the account's money on Infernet (balance, held, earnings, paid
//! out), top-ups over Lightning (an invoice with its QR code, credited live
//! as soon as it is paid), payouts and withdrawals (to an invoice or a
//! Lightning address), automatic payouts of earnings, the ledger's history,
//! and the browser wallet: a self-custodial Lightning wallet whose SDK
//! loads only when it is opened.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::json;
use wire::billing::{BillingSummary, HistoryPage, PaymentStatus, Payout, PayoutSettings, Topup};
use wire::UnixMillis;

use crate::api::billing_view;
use crate::auth::RequireAccount;
use crate::browser::{call, copy, open_wallet};
use crate::components::{ago, sats, sats_field, signed_sats, Pager, Pages};

/// Postings the page shows.
const HISTORY: u32 = 20;
/// How long one wait for a payment to change lasts (the server's limit is 60).
const WAIT_SECS: u32 = 25;

#[component]
pub(crate) fn WalletPage() -> impl IntoView {
    view! {
        <h1>"Wallet"</h1>
        <RequireAccount>
            <Wallet />
        </RequireAccount>
    }
}

fn msg(e: ServerFnError) -> String {
    match e {
        ServerFnError::ServerError(m) => m,
        other => other.to_string(),
    }
}

#[component]
fn Wallet() -> impl IntoView {
    // Bumped whenever money moved: the balances and history load again.
    let version = RwSignal::new(0u32);
    let pages = Pages::new();
    let view_data = Resource::new(
        move || (version.get(), pages.cursor()),
        |(_, before)| billing_view(HISTORY, before),
    );
    // The browser wallet paid Infernet: show the new balance.
    let listener = window_event_listener_untyped("infernet:billing-changed", move |_| {
        version.update(|v| *v += 1)
    });
    on_cleanup(move || listener.remove());
    view! {
        <Transition fallback=|| view! { <p class="empty">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match view_data.await {
                    Ok((summary, history, now)) => {
                        view! {
                            <Balances summary />
                            <History history now pages />
                        }
                            .into_any()
                    }
                    Err(e) => view! { <p class="error">{msg(e)}</p> }.into_any(),
                }
            })}
        </Transition>
        <TopUp version />
        <Withdraw version />
        <AutoPayouts />
        <BrowserWallet />
    }
}

#[component]
fn Balances(summary: BillingSummary) -> impl IntoView {
    let lightning = if summary.lightning {
        format!(
            "Lightning top-ups on {}",
            summary.lightning_network.as_deref().unwrap_or("Lightning")
        )
    } else {
        "This server takes no Lightning top-ups: its operator grants credit.".to_owned()
    };
    view! {
        <section class="card">
            <h2>"Balance"</h2>
            <p class="big" id="balance" data-msat=summary.balance_msat.0.to_string()>
                {sats(summary.balance_msat.0)}
            </p>
            <dl class="facts">
                <dt>"Held for running jobs"</dt>
                <dd id="held">{sats(summary.held_msat.0)}</dd>
                <dt>"Earnings (not yet paid out)"</dt>
                <dd id="earnings">{sats(summary.earnings_msat.0)}</dd>
                <dt>"Spent on jobs"</dt>
                <dd id="spent">{sats(summary.spent_msat.0)}</dd>
                <dt>"Topped up"</dt>
                <dd>{sats(summary.topped_up_msat.0)}</dd>
                <dt>"Paid out"</dt>
                <dd>{sats(summary.paid_out_msat.0)}</dd>
                <dt>"On its way out"</dt>
                <dd>{sats(summary.in_flight_msat.0)}</dd>
            </dl>
            <p class="muted">{lightning}</p>
            <span id="lightning-network" hidden>
                {summary.lightning_network.clone().unwrap_or_default()}
            </span>
        </section>
    }
}

#[component]
fn History(history: HistoryPage, now: UnixMillis, pages: Pages) -> impl IntoView {
    let next = history.next.clone();
    view! {
        <section class="card">
            <h2>"History"</h2>
            {if history.postings.is_empty() {
                view! { <p class="empty">"Nothing yet."</p> }.into_any()
            } else {
                view! {
                    <ul class="ledger" id="history">
                        {history
                            .postings
                            .into_iter()
                            .map(|p| {
                                let what = match (&p.job_id, &p.payment_id) {
                                    (Some(job), _) => {
                                        view! {
                                            <a href=format!("/jobs/{job}")>
                                                {format!("job {}", &job.to_string()[..8])}
                                            </a>
                                        }
                                            .into_any()
                                    }
                                    (None, Some(pay)) => view! { <span class="mono">{pay.clone()}</span> }.into_any(),
                                    _ => view! { <span>{p.memo.clone().unwrap_or_default()}</span> }.into_any(),
                                };
                                let class = if p.amount_msat < 0 { "amount out" } else { "amount in" };
                                view! {
                                    <li data-kind=p.kind.as_str() data-book=p.book.as_str()>
                                        <span class="kind">{format!("{} · {}", p.kind.as_str(), p.book.as_str())}</span>
                                        <span class=class>{signed_sats(p.amount_msat)}</span>
                                        <span class="muted">{ago(now, p.at)}</span>
                                        {what}
                                    </li>
                                }
                            })
                            .collect_view()}
                    </ul>
                }
                    .into_any()
            }}
            <Pager pages next />
            <p>
                <a href="/api/v1/billing/history?format=csv" download="infernet-billing.csv">
                    "Export as CSV"
                </a>
            </p>
        </section>
    }
}

/// Waits on a payment at `url` (a top-up or payout) until it is no longer
/// pending; the server answers as soon as it changes.
async fn wait_until_done<T>(url: &str, status: impl Fn(&T) -> PaymentStatus) -> Result<T, String>
where
    T: serde::de::DeserializeOwned,
{
    loop {
        let current: T = call("GET", &format!("{url}?wait_secs={WAIT_SECS}"), None::<&()>).await?;
        if status(&current) != PaymentStatus::Pending {
            return Ok(current);
        }
    }
}

/// What a form reports: how it is going (`true`) or what went wrong.
type FormState = RwSignal<Option<(bool, String)>>;

/// A form's report, read out to screen readers as it changes.
#[component]
fn Status(state: FormState, id: &'static str) -> impl IntoView {
    move || {
        state.get().map(|(ok, text)| {
            view! { <p class=if ok { "muted" } else { "error" } id=id role="status">{text}</p> }
        })
    }
}

#[component]
fn TopUp(version: RwSignal<u32>) -> impl IntoView {
    let amount = RwSignal::new("10000".to_owned());
    let topup = RwSignal::new(None::<Topup>);
    let state: FormState = RwSignal::new(None);
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let Ok(Some(amount_msat)) = sats_field(&amount.get_untracked()) else {
            state.set(Some((false, "Say how many sat, in digits.".into())));
            return;
        };
        state.set(Some((true, "Asking for an invoice…".into())));
        topup.set(None);
        spawn_local(async move {
            let made: Result<Topup, String> = call(
                "POST",
                "/api/v1/billing/topups",
                Some(&json!({ "amount_msat": amount_msat })),
            )
            .await;
            let made = match made {
                Ok(t) => t,
                Err(e) => return state.set(Some((false, e))),
            };
            let url = format!("/api/v1/billing/topups/{}", made.id);
            topup.set(Some(made));
            state.set(Some((
                true,
                "Waiting for the payment: pay the invoice from any Lightning wallet.".into(),
            )));
            match wait_until_done(&url, |t: &Topup| t.status).await {
                Ok(done) if done.status == PaymentStatus::Succeeded => {
                    state.set(Some((
                        true,
                        format!("Paid: {} added.", sats(done.amount_msat.0)),
                    )));
                    version.update(|v| *v += 1);
                }
                Ok(done) => state.set(Some((
                    false,
                    format!("The invoice {:?}.", done.status).to_lowercase(),
                ))),
                Err(e) => state.set(Some((false, e))),
            }
        });
    };
    view! {
        <section class="card">
            <h2>"Top up"</h2>
            <form class="inline" on:submit=submit>
                <label>
                    "Amount (sat)"
                    <input
                        id="topup-amount"
                        type="number"
                        min="1"
                        inputmode="numeric"
                        prop:value=move || amount.get()
                        on:input=move |ev| amount.set(event_target_value(&ev))
                    />
                </label>
                <button type="submit" id="topup-create">"Get an invoice"</button>
            </form>
            <Status state id="topup-status" />
            {move || {
                topup
                    .get()
                    .map(|t| {
                        let invoice = t.invoice.clone();
                        let copy_it = move |_| {
                            let invoice = invoice.clone();
                            spawn_local(async move {
                                let _ = copy(&invoice).await;
                            });
                        };
                        view! {
                            <div class="invoice-box">
                                <div class="qr" id="topup-qr" inner_html=t.qr_svg.clone().unwrap_or_default()></div>
                                <code class="invoice" id="topup-invoice">{t.invoice.clone()}</code>
                                <div class="row">
                                    <a class="button" href=format!("lightning:{}", t.invoice)>"Open in a wallet"</a>
                                    <button type="button" class="secondary" on:click=copy_it>"Copy"</button>
                                </div>
                            </div>
                        }
                    })
            }}
        </section>
    }
}

#[component]
fn Withdraw(version: RwSignal<u32>) -> impl IntoView {
    let from = RwSignal::new("balance".to_owned());
    let to = RwSignal::new(String::new());
    let amount = RwSignal::new(String::new());
    let state: FormState = RwSignal::new(None);
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let dest = to.get_untracked().trim().to_owned();
        let mut body = json!({ "from": from.get_untracked() });
        if dest.contains('@') {
            body["address"] = json!(dest);
        } else {
            body["invoice"] = json!(dest);
        }
        match sats_field(&amount.get_untracked()) {
            Ok(Some(m)) => body["amount_msat"] = json!(m),
            Ok(None) => {}
            Err(e) => return state.set(Some((false, e))),
        }
        state.set(Some((true, "Sending…".into())));
        spawn_local(async move {
            let made: Result<Payout, String> =
                call("POST", "/api/v1/billing/payouts", Some(&body)).await;
            let made = match made {
                Ok(p) => p,
                Err(e) => return state.set(Some((false, e))),
            };
            version.update(|v| *v += 1);
            let url = format!("/api/v1/billing/payouts/{}", made.id);
            match wait_until_done(&url, |p: &Payout| p.status).await {
                Ok(done) if done.status == PaymentStatus::Succeeded => {
                    state.set(Some((true, format!("Sent {}.", sats(done.amount_msat.0)))));
                }
                Ok(done) => state.set(Some((
                    false,
                    format!(
                        "The payment failed ({}); the money is back.",
                        done.error.unwrap_or_default()
                    ),
                ))),
                Err(e) => state.set(Some((false, e))),
            }
            version.update(|v| *v += 1);
        });
    };
    view! {
        <section class="card">
            <h2>"Withdraw or pay out"</h2>
            <form class="stack" on:submit=submit>
                <label>
                    "From"
                    <select id="payout-from" on:change=move |ev| from.set(event_target_value(&ev))>
                        <option value="balance">"Balance (withdraw)"</option>
                        <option value="earnings">"Earnings (pay out)"</option>
                    </select>
                </label>
                <label>
                    "To: a BOLT11 invoice or a Lightning address"
                    <input
                        id="payout-to"
                        type="text"
                        placeholder="lnbc… or name@domain"
                        prop:value=move || to.get()
                        on:input=move |ev| to.set(event_target_value(&ev))
                    />
                </label>
                <label>
                    "Amount (sat; for an address, or an invoice that names none)"
                    <input
                        id="payout-amount"
                        type="number"
                        min="1"
                        inputmode="numeric"
                        prop:value=move || amount.get()
                        on:input=move |ev| amount.set(event_target_value(&ev))
                    />
                </label>
                <button type="submit" id="payout-send">"Send"</button>
            </form>
            <Status state id="payout-status" />
            <p class="muted">
                "A routing-fee reserve (1 %, at least 10 sat) is held while a payment is sent; what it does not cost comes back."
            </p>
        </section>
    }
}

#[component]
fn AutoPayouts() -> impl IntoView {
    let address = RwSignal::new(String::new());
    let threshold = RwSignal::new(String::new());
    let state: FormState = RwSignal::new(None);
    // Filled in once the page runs in the browser.
    Effect::new(move |_| {
        spawn_local(async move {
            if let Ok(s) =
                call::<PayoutSettings>("GET", "/api/v1/billing/payout-settings", None::<&()>).await
            {
                address.set(s.address.unwrap_or_default());
                threshold.set(
                    s.threshold_msat
                        .map(|t| (t.0 / 1000).to_string())
                        .unwrap_or_default(),
                );
            }
        });
    });
    let save = move |ev: SubmitEvent| {
        ev.prevent_default();
        let address_text = address.get_untracked().trim().to_owned();
        let threshold_text = threshold.get_untracked().trim().to_owned();
        let mut body = json!({});
        if !address_text.is_empty() {
            body["address"] = json!(address_text);
        }
        match sats_field(&threshold_text) {
            Ok(Some(m)) => body["threshold_msat"] = json!(m),
            Ok(None) => {}
            Err(e) => return state.set(Some((false, e))),
        }
        spawn_local(async move {
            let saved: Result<PayoutSettings, String> =
                call("PUT", "/api/v1/billing/payout-settings", Some(&body)).await;
            state.set(Some(match saved {
                Ok(_) => (true, "Saved.".into()),
                Err(e) => (false, e),
            }));
        });
    };
    view! {
        <section class="card">
            <h2>"Automatic payouts"</h2>
            <p class="muted">"Your nodes' earnings go to your Lightning address once they reach the threshold."</p>
            <form class="stack" on:submit=save>
                <label>
                    "Lightning address"
                    <input
                        id="auto-address"
                        type="text"
                        placeholder="name@domain"
                        prop:value=move || address.get()
                        on:input=move |ev| address.set(event_target_value(&ev))
                    />
                </label>
                <label>
                    "Threshold (sat)"
                    <input
                        id="auto-threshold"
                        type="number"
                        min="11"
                        inputmode="numeric"
                        prop:value=move || threshold.get()
                        on:input=move |ev| threshold.set(event_target_value(&ev))
                    />
                </label>
                <button type="submit" id="auto-save">"Save"</button>
            </form>
            <Status state id="auto-status" />
        </section>
    }
}

#[component]
fn BrowserWallet() -> impl IntoView {
    let opened = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let open = move |_| {
        opened.set(true);
        error.set(None);
        spawn_local(async move {
            let network = document()
                .get_element_by_id("lightning-network")
                .and_then(|e| e.text_content())
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| "bitcoin".into());
            if let Err(e) = open_wallet("browser-wallet", network.trim()).await {
                error.set(Some(e));
            }
        });
    };
    view! {
        <section class="card">
            <h2>"Browser wallet"</h2>
            <p class="muted">
                "A self-custodial Lightning wallet in this browser (Breez SDK, Spark): its keys never reach Infernet, and come from your passkey or from backup words. It loads (about 5 MB) only when you open it."
            </p>
            <Show when=move || !opened.get()>
                <button type="button" id="wallet-open" on:click=open>
                    "Open browser wallet"
                </button>
            </Show>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <div id="browser-wallet"></div>
        </section>
    }
}
