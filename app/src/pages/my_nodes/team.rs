//! Team access: whose fleet this is, one's team, and the fleets one is in.

use leptos::prelude::*;
use leptos::task::spawn_local;
use wire::fleet::{Team, TeamGrant, TeamMember, TeamRole};

use crate::browser::call;

/// Says whose fleet this is when it is not one's own.
#[component]
pub(super) fn Acting(acting: Option<TeamMember>) -> impl IntoView {
    acting.map(|a| {
        let role = match a.role {
            TeamRole::Viewer => "viewer",
            TeamRole::Manager => "manager",
        };
        view! {
            <p class="acting card" id="fleet-acting">
                "The fleet of " <strong>{a.name}</strong> ", as " {role} ". "
                <a href="/my-nodes">"Back to my nodes"</a>
            </p>
        }
    })
}

/// One's team (who may see or run one's fleet), and the fleets one is in.
#[component]
pub(super) fn TeamSection(team: Team, own: bool) -> impl IntoView {
    let members = RwSignal::new(team.members);
    let error = RwSignal::new(None::<String>);
    let account = RwSignal::new(String::new());
    let role = RwSignal::new("viewer".to_owned());
    let invite = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        error.set(None);
        let who = account.get().trim().to_owned();
        let as_role = if role.get() == "manager" {
            TeamRole::Manager
        } else {
            TeamRole::Viewer
        };
        spawn_local(async move {
            let url = format!("/api/v1/fleet/team/{who}");
            let grant = TeamGrant { role: as_role };
            match call::<serde_json::Value>("PUT", &url, Some(&grant)).await {
                Ok(_) => match call::<Team>("GET", "/api/v1/fleet/team", None::<&()>).await {
                    Ok(t) => {
                        members.set(t.members);
                        account.set(String::new());
                    }
                    Err(e) => error.set(Some(e)),
                },
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let revoke = move |who: String| {
        error.set(None);
        spawn_local(async move {
            let url = format!("/api/v1/fleet/team/{who}");
            match call::<serde_json::Value>("DELETE", &url, None::<&()>).await {
                Ok(_) => members.update(|m| m.retain(|x| x.account.to_string() != who)),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let fleets = team
        .fleets
        .into_iter()
        .map(|f| {
            let href = format!("/my-nodes?fleet={}", f.account);
            let role = match f.role {
                TeamRole::Viewer => "viewer",
                TeamRole::Manager => "manager",
            };
            view! {
                <li>
                    <a href=href class="team-fleet">{f.name}</a>
                    " · " {role}
                </li>
            }
        })
        .collect_view();
    view! {
        <h2>"Team"</h2>
        {own
            .then(|| {
                view! {
                    <p class="muted">
                        "Let another account see your fleet (viewer) or also command it (manager). They find their account id in Settings."
                    </p>
                    <ul class="rows" id="team-members">
                        {move || {
                            members
                                .get()
                                .into_iter()
                                .map(|m| {
                                    let who = m.account.to_string();
                                    let (shown, data) = (who.clone(), who.clone());
                                    let role = match m.role {
                                        TeamRole::Viewer => "viewer",
                                        TeamRole::Manager => "manager",
                                    };
                                    view! {
                                        <li class="team-member" data-account=data>
                                            <span>{m.name}</span>
                                            <span class="mono">{shown}</span>
                                            <span class="badge pending">{role}</span>
                                            <button type="button" class="secondary" on:click=move |_| revoke(who.clone())>
                                                "Remove"
                                            </button>
                                        </li>
                                    }
                                })
                                .collect_view()
                        }}
                    </ul>
                    <form class="inline" id="team-invite" on:submit=invite>
                        <input
                            type="text"
                            id="team-account"
                            placeholder="acct_…"
                            aria-label="Account id"
                            prop:value=move || account.get()
                            on:input=move |ev| account.set(event_target_value(&ev))
                        />
                        <select id="team-role" aria-label="Role" on:change=move |ev| role.set(event_target_value(&ev))>
                            <option value="viewer">"viewer"</option>
                            <option value="manager">"manager"</option>
                        </select>
                        <button type="submit">"Add"</button>
                    </form>
                }
            })}
        {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        <h3>"Fleets you are in"</h3>
        <ul id="team-fleets">{fleets}</ul>
    }
}
