//! The fleet's newest commands and where each one is.

use leptos::prelude::*;
use wire::fleet::{CommandStatus, CommandView};
use wire::UnixMillis;

use crate::components::{ago, short_id};

fn status_class(s: CommandStatus) -> &'static str {
    match s {
        CommandStatus::Succeeded => "badge online",
        CommandStatus::Failed | CommandStatus::Expired | CommandStatus::Refused => "badge offline",
        CommandStatus::Queued | CommandStatus::Sent | CommandStatus::Acked => "badge pending",
    }
}

fn status_word(s: CommandStatus) -> &'static str {
    match s {
        CommandStatus::Queued => "waiting for the node",
        CommandStatus::Sent => "sent",
        CommandStatus::Acked => "running",
        CommandStatus::Succeeded => "done",
        CommandStatus::Failed => "failed",
        CommandStatus::Expired => "expired",
        CommandStatus::Refused => "refused",
    }
}

#[component]
pub(super) fn Commands(
    log: RwSignal<Vec<CommandView>>,
    now: RwSignal<UnixMillis>,
) -> impl IntoView {
    view! {
        <ul class="commands" id="fleet-commands">
            {move || {
                let now = now.get();
                let items = log.get();
                if items.is_empty() {
                    return view! { <li class="empty">"No commands yet."</li> }.into_any();
                }
                items
                    .into_iter()
                    .map(|c| {
                        let node = c.node_id.to_string();
                        view! {
                            <li class="command" data-command=c.id.to_string() data-status=format!("{:?}", c.status).to_lowercase()>
                                <strong>{c.action.describe()}</strong>
                                " · "
                                <span class="mono">{short_id(&node)}</span>
                                " "
                                <span class=status_class(c.status)>{status_word(c.status)}</span>
                                " "
                                <span class="muted">{c.detail.unwrap_or_default()}</span>
                                " "
                                <span class="muted">{ago(now, c.created_at)}</span>
                            </li>
                        }
                    })
                    .collect_view()
                    .into_any()
            }}
        </ul>
    }
}
