//! Job history, and one job with its status changes and receipt.

use std::time::Duration;

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::api::{get_job, list_jobs, JobsView};
use crate::components::{JobResult, JobStatusBadge, Pager, Pages, ShortId, StaleNote};
use crate::pages::ticker;

#[component]
pub(crate) fn JobsPage() -> impl IntoView {
    let pages = Pages::new();
    // Refreshed while open: statuses change, new jobs arrive.
    let tick = ticker(Duration::from_secs(5));
    let jobs = Resource::new(move || (pages.cursor(), tick.get()), |(c, _)| list_jobs(c));
    // The last answer: shown, marked stale, while the server cannot be
    // reached.
    let last = StoredValue::new(None::<JobsView>);
    view! {
        <h1>"Jobs"</h1>
        <Transition fallback=|| view! { <p class="empty">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let (view, stale) = match jobs.await {
                    Ok(view) => {
                        last.set_value(Some(view.clone()));
                        (view, false)
                    }
                    Err(e) => match last.get_value() {
                        Some(view) => (view, true),
                        None => return view! { <p class="error">{e.to_string()}</p> }.into_any(),
                    },
                };
                let stale = stale
                    .then(|| view! { <StaleNote id="jobs-stale" what="your jobs" at=view.now /> });
                let page = view.page;
                if page.jobs.is_empty() && pages.cursor().is_none() {
                    view! {
                        {stale}
                        <p class="empty">"No jobs yet. " <a href="/run">"Run one."</a></p>
                    }
                        .into_any()
                } else {
                    let rows = page
                        .jobs
                        .into_iter()
                        .map(|j| {
                            let latency = j
                                .finished_at
                                .map(|f| format!("{} ms", f.0.saturating_sub(j.created_at.0)))
                                .unwrap_or_default();
                            let id = j.id.to_string();
                            view! {
                                <tr class="job-row">
                                    <td data-label="Job">
                                        <ShortId id=id.clone() href=format!("/jobs/{id}") />
                                    </td>
                                    <td data-label="Status">
                                        <JobStatusBadge status=j.status />
                                    </td>
                                    <td data-label="Model">{j.model}</td>
                                    <td data-label="Node">
                                        <ShortId id=j.node_id.to_string() href=format!("/node/{}", j.node_id) />
                                    </td>
                                    <td data-label="Price (msat)">{j.price_msat.to_string()}</td>
                                    <td data-label="Latency">{latency}</td>
                                </tr>
                            }
                        })
                        .collect_view();
                    view! {
                        {stale}
                        <table class="jobs stack">
                            <thead>
                                <tr>
                                    <th>"Job"</th>
                                    <th>"Status"</th>
                                    <th>"Model"</th>
                                    <th>"Node"</th>
                                    <th>"Price (msat)"</th>
                                    <th>"Latency"</th>
                                </tr>
                            </thead>
                            <tbody>{rows}</tbody>
                        </table>
                        <Pager pages next=page.next_cursor />
                    }
                        .into_any()
                }
            })}
        </Transition>
    }
}

#[component]
pub(crate) fn JobPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let job = Resource::new(id, get_job);
    view! {
        <Suspense fallback=|| view! { <p class="empty">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match job.await {
                    Ok(Some(record)) => {
                        let events = record
                            .events
                            .iter()
                            .map(|e| {
                                let at = e.at.0.saturating_sub(record.created_at.0);
                                view! {
                                    <li>
                                        {format!(
                                            "+{at} ms · {} {}",
                                            e.status.as_str(),
                                            e.message.clone().unwrap_or_default(),
                                        )}
                                    </li>
                                }
                            })
                            .collect_view();
                        view! {
                            <h1 class="mono">{format!("Job {}", record.id)}</h1>
                            <ol class="events">{events}</ol>
                            <JobResult record />
                        }
                            .into_any()
                    }
                    Ok(None) => view! { <p class="empty">"No such job."</p> }.into_any(),
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}
