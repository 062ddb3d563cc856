//! My nodes: the nodes enrolled to the signed-in operator, with their
//! status, and release (the node goes back to unclaimed, free to be
//! enrolled elsewhere). Refreshes itself every five seconds.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{my_nodes, release_node};
use crate::auth::RequireAccount;
use crate::components::{ago, short_id, StatusBadge};
use crate::pages::ticker;

#[component]
pub(crate) fn MyNodesPage() -> impl IntoView {
    view! {
        <h1>"My nodes"</h1>
        <RequireAccount>
            <MyNodes />
        </RequireAccount>
    }
}

#[component]
fn MyNodes() -> impl IntoView {
    let tick = ticker(std::time::Duration::from_secs(5));
    let version = RwSignal::new(0u32);
    let error = RwSignal::new(None::<String>);
    let nodes = Resource::new(move || (tick.get(), version.get()), |_| my_nodes());
    let release = move |id: String| {
        error.set(None);
        spawn_local(async move {
            match release_node(id).await {
                Ok(()) => version.update(|v| *v += 1),
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    view! {
        {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        <Transition fallback=|| view! { <p class="empty">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match nodes.await {
                    Ok((list, _)) if list.is_empty() => {
                        view! {
                            <p class="empty">
                                "No nodes yet. Make an enrolment token in "
                                <a href="/settings#enrol-tokens">"Settings"</a>
                                " and start a node with "
                                <code>"--enroll <token>"</code>
                                "."
                            </p>
                        }
                            .into_any()
                    }
                    Ok((list, now)) => {
                        let rows = list
                            .into_iter()
                            .map(|n| {
                                let id = n.node_id.to_string();
                                let to_release = id.clone();
                                let status = n.info.as_ref().map(|i| {
                                    view! { <StatusBadge status=i.status /> }
                                });
                                let models = n
                                    .info
                                    .as_ref()
                                    .map(|i| {
                                        i.models.iter().map(|m| m.name.clone()).collect::<Vec<_>>().join(", ")
                                    })
                                    .unwrap_or_default();
                                let seen = n
                                    .info
                                    .as_ref()
                                    .map(|i| ago(now, i.last_seen))
                                    .unwrap_or_else(|| "not seen lately".into());
                                view! {
                                    <tr class="my-node">
                                        <td>
                                            <a class="mono" href=format!("/node/{id}")>{short_id(&id)}</a>
                                        </td>
                                        <td>{status}</td>
                                        <td>{models}</td>
                                        <td>{seen}</td>
                                        <td>"enrolled " {ago(now, n.enrolled_at)}</td>
                                        <td>
                                            <button
                                                class="secondary"
                                                on:click=move |_| release(to_release.clone())
                                            >
                                                "Release"
                                            </button>
                                        </td>
                                    </tr>
                                }
                            })
                            .collect_view();
                        view! {
                            <div class="table-scroll">
                                <table class="my-nodes">
                                    <thead>
                                        <tr>
                                            <th>"Node"</th>
                                            <th>"Status"</th>
                                            <th>"Models"</th>
                                            <th>"Last seen"</th>
                                            <th>"Enrolled"</th>
                                            <th></th>
                                        </tr>
                                    </thead>
                                    <tbody>{rows}</tbody>
                                </table>
                            </div>
                        }
                            .into_any()
                    }
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}
