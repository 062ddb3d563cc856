//! Pieces shared by several pages.

mod chart;
mod format;
mod node_table;
mod receipt;

pub(crate) use chart::LineChart;
pub(crate) use format::{ago, gib, sats, sats_field, schedule_note, short_id, signed_sats, until};
pub(crate) use node_table::NodeTable;
pub(crate) use receipt::JobResult;

use leptos::prelude::*;
use wire::jobs::JobStatus;
use wire::registry::NodeStatus;

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
