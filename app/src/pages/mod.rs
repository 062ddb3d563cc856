//! One module per page.

pub(crate) mod chat;
pub(crate) mod fleet_node;
pub(crate) mod jobs;
pub(crate) mod my_nodes;
pub(crate) mod node;
pub(crate) mod nodes;
pub(crate) mod run;
pub(crate) mod settings;
pub(crate) mod sign_in;
pub(crate) mod wallet;

use std::time::Duration;

use leptos::prelude::*;

/// A counter that goes up every `period` in the browser (never on the
/// server), for pages that refresh themselves.
pub(crate) fn ticker(period: Duration) -> ReadSignal<u64> {
    let (tick, set_tick) = signal(0u64);
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(move || set_tick.update(|t| *t += 1), period) {
            on_cleanup(move || handle.clear());
        }
    });
    tick
}
