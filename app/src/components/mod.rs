//! Pieces shared by several pages.

mod chart;
mod format;
mod node_table;
mod receipt;

pub(crate) use chart::LineChart;
pub(crate) use format::{ago, gib, sats, sats_field, schedule_note, short_id, signed_sats, until};
pub(crate) use node_table::{reputation_detail, NodeTable};
pub(crate) use receipt::JobResult;

use leptos::prelude::*;
use wire::jobs::JobStatus;
use wire::registry::NodeStatus;

/// An id shown short (both ends; the whole id as its title), a link when
/// `href` is given, with a button that copies the whole id.
#[component]
pub(crate) fn ShortId(id: String, #[prop(optional, into)] href: Option<String>) -> impl IntoView {
    let copied = RwSignal::new(false);
    let short = short_id(&id);
    let shown = match href {
        Some(href) => view! {
            <a class="mono" href=href title=id.clone()>
                {short}
            </a>
        }
        .into_any(),
        None => view! {
            <span class="mono" title=id.clone()>
                {short}
            </span>
        }
        .into_any(),
    };
    let on_copy = move |_| {
        let id = id.clone();
        leptos::task::spawn_local(async move {
            if crate::browser::copy(&id).await.is_ok() {
                copied.set(true);
            }
        });
    };
    view! {
        <span class="id">
            {shown}
            <button type="button" class="copy" aria-label="Copy the whole id" on:click=on_copy>
                {move || {
                    if copied.get() {
                        view! { <span>"✓"</span> }.into_any()
                    } else {
                        view! {
                            <svg viewBox="0 0 16 16" width="16" height="16" aria-hidden="true">
                                <rect x="5" y="5" width="9" height="9" rx="1.5" />
                                <path d="M11 3.5V3a1 1 0 0 0-1-1H3a1 1 0 0 0-1 1v7a1 1 0 0 0 1 1h.5" />
                            </svg>
                        }
                            .into_any()
                    }
                }}
            </button>
        </span>
    }
}

/// Pages of a list read by cursor: the cursors of the pages before this
/// one, so that "Previous" goes back without the server keeping state.
#[derive(Clone, Copy)]
pub(crate) struct Pages {
    before: RwSignal<Vec<String>>,
}

impl Pages {
    pub(crate) fn new() -> Self {
        Pages {
            before: RwSignal::new(Vec::new()),
        }
    }

    /// The cursor of the page shown (tracked): `None` on the first.
    pub(crate) fn cursor(&self) -> Option<String> {
        self.before.with(|b| b.last().cloned())
    }

    /// Back to the first page (when the filters change).
    pub(crate) fn reset(&self) {
        if self.before.with_untracked(|b| !b.is_empty()) {
            self.before.set(Vec::new());
        }
    }
}

/// "Previous · page n · Next" under a list; `next` is the answer's
/// `next_cursor`. Nothing when everything fits on one page.
#[component]
pub(crate) fn Pager(pages: Pages, next: Option<String>) -> impl IntoView {
    let page = pages.before.with_untracked(Vec::len) + 1;
    if page == 1 && next.is_none() {
        return ().into_any();
    }
    let has_next = next.is_some();
    view! {
        <nav class="pager" aria-label="Pages">
            <button
                type="button"
                class="prev"
                disabled=page == 1
                on:click=move |_| pages.before.update(|b| {
                    b.pop();
                })
            >
                "← Previous"
            </button>
            <span class="muted">{format!("Page {page}")}</span>
            <button
                type="button"
                class="next"
                disabled=!has_next
                on:click=move |_| {
                    if let Some(cursor) = next.clone() {
                        pages.before.update(|b| b.push(cursor));
                    }
                }
            >
                "Next →"
            </button>
        </nav>
    }
    .into_any()
}

#[component]
pub(crate) fn StatusBadge(status: NodeStatus) -> impl IntoView {
    let (class, text) = match status {
        NodeStatus::Online => ("badge online", "online"),
        NodeStatus::Offline => ("badge offline", "offline"),
    };
    view! { <span class=class>{text}</span> }
}

#[component]
pub(crate) fn JobStatusBadge(status: JobStatus) -> impl IntoView {
    let class = match status {
        JobStatus::Dispatched => "badge pending",
        JobStatus::Succeeded => "badge online",
        JobStatus::Failed => "badge offline",
    };
    view! { <span class=class>{status.as_str()}</span> }
}

/// What a page shows while the server cannot be reached: its last data,
/// and this note saying how old it is.
#[component]
pub(crate) fn StaleNote(
    /// The note's element id (`nodes-stale`, `jobs-stale`, …).
    id: &'static str,
    /// What the page lists ("the nodes", "your jobs").
    what: &'static str,
    /// The server's clock when the data was read.
    at: wire::UnixMillis,
) -> impl IntoView {
    view! {
        <p class="stale" role="status" id=id>
            {format!(
                "Not up to date: the server cannot be reached. These are {what} as they were at {}.",
                wire::schedule::utc_text(at),
            )}
        </p>
    }
}
