//! Fleet routes, under `/api/v1/fleet`. Everything the fleet pages show is
//! here with `fleet:read`; everything they change with `fleet:write` (a
//! browser session may do both). Another account's node or command
//! answers 404, exactly like a missing one.
//!
//! | route | who may call |
//! |---|---|
//! | `GET /fleet/nodes` | signed in (`fleet:read` for keys) |
//! | `GET /fleet/nodes/{peer_id}/telemetry?since=&until=` (at most 720 points) | signed in (`fleet:read`), the node's operator |
//! | `POST /fleet/commands` | signed in (`fleet:write` for keys), the nodes' operator |
//! | `GET /fleet/commands?node=&before=&limit=` (the audit log) | signed in (`fleet:read`) |
//! | `GET /fleet/commands/{id}` | signed in (`fleet:read`), the node's operator |
//! | `GET /fleet/events` (server-sent events) | signed in (`fleet:read`) |

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use wire::fleet::{CommandId, CommandView, FleetNode, NewCommand, TelemetrySeries};
use wire::{NodeId, UnixMillis};

use crate::accounts::SignedIn;
use crate::error::{parse_id, ApiError, ApiJson, ApiQuery};
use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/fleet/nodes", get(nodes))
        .route("/fleet/nodes/{peer_id}/telemetry", get(telemetry))
        .route("/fleet/commands", get(log).post(send))
        .route("/fleet/commands/{id}", get(command))
        .route("/fleet/events", get(events))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
}

#[derive(Serialize)]
struct NodeList {
    nodes: Vec<FleetNode>,
}

async fn nodes(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
) -> Result<Json<NodeList>, ApiError> {
    Ok(Json(NodeList {
        nodes: state.fleet.nodes(&caller).await?,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TelemetryQuery {
    since: Option<u64>,
    until: Option<u64>,
}

async fn telemetry(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
    Path(peer_id): Path<String>,
    ApiQuery(q): ApiQuery<TelemetryQuery>,
) -> Result<Json<TelemetrySeries>, ApiError> {
    let node: NodeId = parse_id(&peer_id)?;
    let until = UnixMillis(q.until.unwrap_or_else(|| UnixMillis::now().0));
    let since = UnixMillis(q.since.unwrap_or(until.0.saturating_sub(3600 * 1000)));
    if since > until {
        return Err(ApiError::BadRequest("since must not be after until".into()));
    }
    Ok(Json(
        state.fleet.telemetry(&caller, node, since, until).await?,
    ))
}

#[derive(Serialize)]
struct CommandList {
    commands: Vec<CommandView>,
}

async fn send(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
    ApiJson(new): ApiJson<NewCommand>,
) -> Result<(StatusCode, Json<CommandList>), ApiError> {
    let commands = state.fleet.send(&caller, new).await?;
    Ok((StatusCode::CREATED, Json(CommandList { commands })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    node: Option<String>,
    before: Option<u64>,
    limit: Option<u32>,
}

async fn log(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Json<CommandList>, ApiError> {
    let node = q.node.as_deref().map(parse_id::<NodeId>).transpose()?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be 1 to 500".into()));
    }
    Ok(Json(CommandList {
        commands: state
            .fleet
            .log(&caller, node, q.before.map(UnixMillis), limit)
            .await?,
    }))
}

async fn command(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
    Path(id): Path<String>,
) -> Result<Json<CommandView>, ApiError> {
    let id: CommandId = id.parse().map_err(ApiError::BadRequest)?;
    Ok(Json(state.fleet.command(&caller, &id).await?))
}

/// Every change to the caller's nodes as it happens: `online`, `offline`,
/// `telemetry` and `command` events, each a JSON object.
async fn events(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // The same check as reading the fleet, before anything streams.
    state.fleet.nodes(&caller).await?;
    let events = state.fleet.subscribe();
    let account = caller.account;
    let stream = futures::stream::unfold(events, move |mut events| {
        let account = account.clone();
        async move {
            loop {
                match events.recv().await {
                    Ok((owner, event)) if owner == account => {
                        let sse = Event::default()
                            .event(event.kind())
                            .json_data(&event)
                            .unwrap_or_else(|_| Event::default().comment("unencodable"));
                        return Some((Ok(sse), events));
                    }
                    Ok(_) => {}
                    // Fell behind: the page reloads the fleet on this.
                    Err(RecvError::Lagged(n)) => {
                        let sse = Event::default().event("lagged").data(n.to_string());
                        return Some((Ok(sse), events));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
