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
//! | `GET /fleet/stats?days=` (uptime, completion, latency, earnings per node) | signed in (`fleet:read`) |
//! | `GET /fleet/alerts?limit=` | signed in (`fleet:read`) |
//! | `GET /fleet/alert-settings` (with the webhook secret) | signed in (`fleet:read`), the owner only |
//! | `PUT /fleet/alert-settings` | signed in (`fleet:write`), the owner only |
//! | `GET /fleet/team` (one's team, and the fleets one is in) | signed in (`fleet:read`) |
//! | `PUT /fleet/team/{account} {role}`, `DELETE /fleet/team/{account}` | signed-in session, the owner |
//! | `GET /fleet/earnings?since=&until=&format=json\|csv` | signed in (`fleet:read`) |
//! | `GET /fleet/nodes/{peer_id}/activity?since=&until=` (at most 72 buckets, 30 days) | signed in (`fleet:read`), the node's operator |
//!
//! Every route but the alert settings and the team takes `?fleet=<owner>`:
//! a team member acts on that owner's fleet, as viewer or manager.

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wire::api::ErrorBody;
use wire::fleet::{
    AlertSettings, AlertSettingsView, AlertView, CommandId, CommandView, Earnings, FleetNode,
    FleetStats, NewCommand, NodeActivity, Team, TeamGrant, TeamMember, TelemetrySeries,
};
use wire::{AccountId, NodeId, UnixMillis};

use crate::accounts::{Session, SignedIn};
use crate::error::{parse_id, ApiError, ApiJson, ApiQuery};
use crate::AppState;

/// The caller as they act on the fleet named by `?fleet=<owner>` (a
/// team member), or on their own.
pub(crate) struct Acting(pub(crate) wire::Caller);

impl axum::extract::FromRequestParts<AppState> for Acting {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        let SignedIn(caller) = SignedIn::from_request_parts(parts, state).await?;
        let fleet = parts.uri.query().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "fleet")
                .map(|(_, v)| v.into_owned())
        });
        Ok(Acting(state.fleet.acting(&caller, fleet.as_deref()).await?))
    }
}

/// `?limit=` on a list: 50 unless given, 1 to 500.
fn list_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit.unwrap_or(50) {
        l @ 1..=500 => Ok(l),
        _ => Err(ApiError::BadRequest("limit must be 1 to 500".into())),
    }
}

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(nodes))
        .routes(routes!(telemetry))
        .routes(routes!(activity))
        .routes(routes!(log, send))
        .routes(routes!(command))
        .routes(routes!(events))
        .routes(routes!(stats))
        .routes(routes!(alerts))
        .routes(routes!(team))
        .routes(routes!(grant, revoke))
        .routes(routes!(alert_settings, set_alert_settings))
        .routes(routes!(earnings))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
}

/// The operator's nodes.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = FleetNodeList)]
struct NodeList {
    nodes: Vec<FleetNode>,
}

/// The caller's nodes (or those of the fleet named by `?fleet=`), live:
/// online or not, latest telemetry, tags and listing.
#[utoipa::path(
    get,
    path = "/fleet/nodes",
    operation_id = "list_fleet_nodes",
    tag = "fleet",
    params(("fleet" = Option<String>, Query, description = "An owner's account id: act on their fleet as a member of their team (one's own fleet unless given).")),
    responses(
        (status = 200, description = "The fleet's nodes.", body = NodeList),
        (status = 400, description = "`fleet` is not an account id.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        crate::openapi::NoFleetRead,
        (status = 404, description = "`fleet` names a fleet the caller is not in.", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn nodes(
    State(state): State<AppState>,
    Acting(caller): Acting,
) -> Result<Json<NodeList>, ApiError> {
    Ok(Json(NodeList {
        nodes: state.fleet.nodes(&caller).await?,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct TelemetryQuery {
    /// An owner's account id: act on their fleet as a member of their team
    /// (one's own fleet unless given).
    // Read by `Acting`.
    #[allow(dead_code)]
    fleet: Option<String>,
    /// From when, in Unix milliseconds (an hour before `until` unless given).
    since: Option<u64>,
    /// Until when, in Unix milliseconds (now unless given).
    until: Option<u64>,
}

/// One of the fleet's nodes' telemetry from `since` to `until`: every
/// frame within the last day, five-minute means beyond; at most 720 points,
/// neighbours averaged together if need be.
#[utoipa::path(
    get,
    path = "/fleet/nodes/{peer_id}/telemetry",
    operation_id = "get_fleet_node_telemetry",
    tag = "fleet",
    params(
        ("peer_id" = String, Path, description = "The node's libp2p peer id."),
        TelemetryQuery,
    ),
    responses(
        (status = 200, description = "The node's telemetry.", body = TelemetrySeries),
        (status = 400, description = "Not a peer id, `since` after `until`, `fleet` not an account id, or an unknown parameter.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        crate::openapi::NoFleetRead,
        (status = 404, description = "No such node in the fleet, or a fleet the caller is not in.", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn telemetry(
    State(state): State<AppState>,
    Acting(caller): Acting,
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

/// `fleet:read`: one of the caller's nodes' jobs, failures, latency and
/// earnings over time (the last hour unless told).
#[utoipa::path(
    get,
    path = "/fleet/nodes/{peer_id}/activity",
    operation_id = "get_fleet_node_activity",
    tag = "fleet",
    params(
        ("peer_id" = String, Path, description = "The node's libp2p peer id."),
        TelemetryQuery,
    ),
    responses(
        (status = 200, description = "The node's activity, in buckets.", body = NodeActivity),
        (status = 400, description = "Not a peer id, `since` not before `until` or more than 30 days before it, `fleet` not an account id, or an unknown parameter.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        crate::openapi::NoFleetRead,
        (status = 404, description = "No such node in the fleet, or a fleet the caller is not in.", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn activity(
    State(state): State<AppState>,
    Acting(caller): Acting,
    Path(peer_id): Path<String>,
    ApiQuery(q): ApiQuery<TelemetryQuery>,
) -> Result<Json<wire::fleet::NodeActivity>, ApiError> {
    let node: NodeId = parse_id(&peer_id)?;
    let until = UnixMillis(q.until.unwrap_or_else(|| UnixMillis::now().0));
    let since = UnixMillis(q.since.unwrap_or(until.0.saturating_sub(3600 * 1000)));
    Ok(Json(
        state.fleet.activity(&caller, node, since, until).await?,
    ))
}

/// Commands, as the audit log shows them.
#[derive(Serialize, utoipa::ToSchema)]
struct CommandList {
    commands: Vec<CommandView>,
}

/// Sends an action to nodes (those named, and those carrying `tag`): one
/// command each, sent at once to nodes online and queued for the others.
/// Refused as a whole if any node is not the fleet's.
#[utoipa::path(
    post,
    path = "/fleet/commands",
    operation_id = "send_fleet_commands",
    tag = "fleet",
    params(("fleet" = Option<String>, Query, description = "An owner's account id: act on their fleet as a manager in their team (one's own fleet unless given).")),
    request_body = NewCommand,
    responses(
        (status = 201, description = "The commands, one per node.", body = CommandList),
        (status = 400, description = "Malformed JSON, no node or too many, an unknown tag, an action or expiry out of range, or `fleet` not an account id.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        (status = 403, description = "An API key (or team role) without `fleet:write`, or a cross-site request with the session cookie.", body = ErrorBody),
        (status = 404, description = "A node that is not the fleet's, or a fleet the caller is not in.", body = ErrorBody),
        (status = 413, description = "A body over 64 KiB.", body = ErrorBody),
        (status = 415, description = "Not JSON.", body = ErrorBody),
        (status = 422, description = "JSON that is not a command.", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn send(
    State(state): State<AppState>,
    Acting(caller): Acting,
    ApiJson(new): ApiJson<NewCommand>,
) -> Result<(StatusCode, Json<CommandList>), ApiError> {
    let commands = state.fleet.send(&caller, new).await?;
    Ok((StatusCode::CREATED, Json(CommandList { commands })))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    /// An owner's account id: act on their fleet as a member of their team
    /// (one's own fleet unless given).
    // Read by `Acting`.
    #[allow(dead_code)]
    fleet: Option<String>,
    /// Only this node's commands (its libp2p peer id).
    node: Option<String>,
    /// Only commands made before this, in Unix milliseconds.
    before: Option<u64>,
    /// How many, 1 to 500 (50 unless given).
    limit: Option<u32>,
}

/// The fleet's audit log: its commands, newest first.
#[utoipa::path(
    get,
    path = "/fleet/commands",
    operation_id = "list_fleet_commands",
    tag = "fleet",
    params(LogQuery),
    responses(
        (status = 200, description = "The commands.", body = CommandList),
        (status = 400, description = "`node` not a peer id, a limit out of range, `fleet` not an account id, or an unknown parameter.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        crate::openapi::NoFleetRead,
        (status = 404, description = "`fleet` names a fleet the caller is not in.", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn log(
    State(state): State<AppState>,
    Acting(caller): Acting,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Json<CommandList>, ApiError> {
    let node = q.node.as_deref().map(parse_id::<NodeId>).transpose()?;
    let limit = list_limit(q.limit)?;
    Ok(Json(CommandList {
        commands: state
            .fleet
            .log(&caller, node, q.before.map(UnixMillis), limit)
            .await?,
    }))
}

/// One of the fleet's commands.
#[utoipa::path(
    get,
    path = "/fleet/commands/{id}",
    operation_id = "get_fleet_command",
    tag = "fleet",
    params(
        ("id" = String, Path, description = "The command's id (`cmd_` and 32 hex characters)."),
        ("fleet" = Option<String>, Query, description = "An owner's account id: act on their fleet as a member of their team (one's own fleet unless given)."),
    ),
    responses(
        (status = 200, description = "The command.", body = CommandView),
        (status = 400, description = "Not a command id, or `fleet` not an account id.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        crate::openapi::NoFleetRead,
        (status = 404, description = "No such command in the fleet, or a fleet the caller is not in.", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn command(
    State(state): State<AppState>,
    Acting(caller): Acting,
    Path(id): Path<String>,
) -> Result<Json<CommandView>, ApiError> {
    let id: CommandId = id.parse().map_err(ApiError::BadRequest)?;
    Ok(Json(state.fleet.command(&caller, &id).await?))
}

/// How often an open event stream checks that its caller may still read:
/// a key revoked, a session ended or a team membership taken back ends it.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// What an event stream keeps between events.
struct Stream {
    events: tokio::sync::broadcast::Receiver<(AccountId, wire::fleet::FleetEvent)>,
    state: AppState,
    headers: axum::http::HeaderMap,
    /// The signed-in account, and the fleet it reads (its own or an owner's).
    me: AccountId,
    fleet: AccountId,
    recheck: tokio::time::Interval,
}

impl Stream {
    async fn still_allowed(&self) -> bool {
        if !crate::accounts::still_signed_in(&self.state.accounts, &self.headers, &self.me).await {
            return false;
        }
        if self.fleet == self.me {
            return true;
        }
        let me = wire::Caller {
            account: self.me.clone(),
            auth: wire::CallerAuth::ApiKey {
                key_id: String::new(),
                scopes: vec![wire::accounts::Scope::FleetRead],
            },
        };
        let fleet = self.fleet.to_string();
        self.state.fleet.acting(&me, Some(&fleet)).await.is_ok()
    }
}

/// Every change to the caller's nodes as it happens: `online`, `offline`,
/// `telemetry`, `command` and `alert` events, each a JSON object. Ends when
/// the caller may no longer read them.
///
/// Each event's `event:` names its type, and its `data:` is a `FleetEvent`
/// as JSON; a `lagged` event (its data: how many events were missed) says
/// the stream fell behind and the fleet should be read again.
#[utoipa::path(
    get,
    path = "/fleet/events",
    operation_id = "fleet_events",
    tag = "fleet",
    params(("fleet" = Option<String>, Query, description = "An owner's account id: follow their fleet as a member of their team (one's own fleet unless given).")),
    responses(
        (status = 200, description = "Server-sent events, until the caller may no longer read them.", body = crate::openapi::ServerSentEvent, content_type = "text/event-stream"),
        (status = 400, description = "`fleet` is not an account id.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        crate::openapi::NoFleetRead,
        (status = 404, description = "`fleet` names a fleet the caller is not in.", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn events(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    Acting(caller): Acting,
    headers: axum::http::HeaderMap,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // The same check as reading the fleet, before anything streams.
    state.fleet.nodes(&caller).await?;
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    recheck.reset();
    let start = Stream {
        events: state.fleet.subscribe(),
        state,
        headers,
        me: me.account,
        fleet: caller.account,
        recheck,
    };
    let stream = futures::stream::unfold(start, |mut s| async move {
        loop {
            tokio::select! {
                _ = s.recheck.tick() => {
                    if !s.still_allowed().await {
                        return None;
                    }
                }
                got = s.events.recv() => match got {
                    Ok((owner, event)) if owner == s.fleet => {
                        let sse = Event::default()
                            .event(event.kind())
                            .json_data(&event)
                            .unwrap_or_else(|_| Event::default().comment("unencodable"));
                        return Some((Ok(sse), s));
                    }
                    Ok(_) => {}
                    // Fell behind: the page reloads the fleet on this.
                    Err(RecvError::Lagged(n)) => {
                        let sse = Event::default().event("lagged").data(n.to_string());
                        return Some((Ok(sse), s));
                    }
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AlertsQuery {
    /// An owner's account id: act on their fleet as a member of their team
    /// (one's own fleet unless given).
    // Read by `Acting`.
    #[allow(dead_code)]
    fleet: Option<String>,
    /// How many, 1 to 500 (50 unless given).
    limit: Option<u32>,
}

/// Alerts, newest first.
#[derive(Serialize, utoipa::ToSchema)]
struct AlertList {
    alerts: Vec<AlertView>,
}

/// The fleet's alerts, newest first: each fires once when its condition
/// starts and resolves once when it ends.
#[utoipa::path(
    get,
    path = "/fleet/alerts",
    operation_id = "list_fleet_alerts",
    tag = "fleet",
    params(AlertsQuery),
    responses(
        (status = 200, description = "The alerts.", body = AlertList),
        (status = 400, description = "A limit out of range, `fleet` not an account id, or an unknown parameter.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        crate::openapi::NoFleetRead,
        (status = 404, description = "`fleet` names a fleet the caller is not in.", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn alerts(
    State(state): State<AppState>,
    Acting(caller): Acting,
    ApiQuery(q): ApiQuery<AlertsQuery>,
) -> Result<Json<AlertList>, ApiError> {
    let limit = list_limit(q.limit)?;
    Ok(Json(AlertList {
        alerts: state.fleet.alerts(&caller, limit).await?,
    }))
}

/// The caller's own alert settings, with the secret that signs their
/// webhooks (the owner's alone: not available through `?fleet=`).
#[utoipa::path(
    get,
    path = "/fleet/alert-settings",
    operation_id = "get_alert_settings",
    tag = "fleet",
    responses(
        (status = 200, description = "The settings and the webhook secret.", body = AlertSettingsView),
        crate::openapi::NotSignedIn,
        (status = 403, description = "An API key without `fleet:read`.", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn alert_settings(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
) -> Result<Json<AlertSettingsView>, ApiError> {
    Ok(Json(state.fleet.alert_settings(&caller).await?))
}

/// Sets when the caller's alerts fire and where they are sent besides the
/// app (the owner's alone).
#[utoipa::path(
    put,
    path = "/fleet/alert-settings",
    operation_id = "set_alert_settings",
    tag = "fleet",
    request_body = AlertSettings,
    responses(
        (status = 200, description = "The settings as now kept, and the webhook secret.", body = AlertSettingsView),
        (status = 400, description = "Malformed JSON, settings out of range, or a webhook URL that is not allowed.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        (status = 403, description = "An API key without `fleet:write`, or a cross-site request with the session cookie.", body = ErrorBody),
        (status = 413, description = "A body over 64 KiB.", body = ErrorBody),
        (status = 415, description = "Not JSON.", body = ErrorBody),
        (status = 422, description = "JSON that is not alert settings.", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn set_alert_settings(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
    ApiJson(settings): ApiJson<AlertSettings>,
) -> Result<Json<AlertSettingsView>, ApiError> {
    Ok(Json(
        state.fleet.set_alert_settings(&caller, settings).await?,
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    /// An owner's account id: act on their fleet as a member of their team
    /// (one's own fleet unless given).
    // Read by `Acting`.
    #[allow(dead_code)]
    fleet: Option<String>,
    /// How many UTC days, today included: 1 to 30 (7 unless given).
    days: Option<u32>,
}

/// Each of the fleet's nodes' record over the last `days` UTC days:
/// uptime, completion, latency and earnings.
#[utoipa::path(
    get,
    path = "/fleet/stats",
    operation_id = "get_fleet_stats",
    tag = "fleet",
    params(StatsQuery),
    responses(
        (status = 200, description = "The nodes' records.", body = FleetStats),
        (status = 400, description = "`days` out of range, `fleet` not an account id, or an unknown parameter.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        crate::openapi::NoFleetRead,
        (status = 404, description = "`fleet` names a fleet the caller is not in.", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn stats(
    State(state): State<AppState>,
    Acting(caller): Acting,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> Result<Json<FleetStats>, ApiError> {
    Ok(Json(state.fleet.stats(&caller, q.days.unwrap_or(7)).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct EarningsQuery {
    /// An owner's account id: act on their fleet as a member of their team
    /// (one's own fleet unless given).
    // Read by `Acting`.
    #[allow(dead_code)]
    fleet: Option<String>,
    /// From when, in Unix milliseconds (30 days before `until` unless given).
    since: Option<u64>,
    /// Until when (not included), in Unix milliseconds (now unless given).
    until: Option<u64>,
    /// `json` (unless given) or `csv`.
    format: Option<String>,
}

/// What the caller's nodes earned, per UTC day, node, device and model:
/// JSON, or CSV whose lines add up to the ledger's earnings to the
/// millisatoshi (the last line is the total).
#[utoipa::path(
    get,
    path = "/fleet/earnings",
    operation_id = "get_fleet_earnings",
    tag = "fleet",
    params(EarningsQuery),
    responses(
        (status = 200, description = "The earnings: JSON, or CSV (`format=csv`, as an attachment).",
            content((Earnings = "application/json"), (String = "text/csv"))),
        (status = 400, description = "`format` neither json nor csv, `since` not before `until`, `fleet` not an account id, or an unknown parameter.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        crate::openapi::NoFleetRead,
        (status = 404, description = "`fleet` names a fleet the caller is not in.", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn earnings(
    State(state): State<AppState>,
    Acting(caller): Acting,
    ApiQuery(q): ApiQuery<EarningsQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "format must be json or csv, not `{other}`"
            )))
        }
    };
    let until = UnixMillis(q.until.unwrap_or_else(|| UnixMillis::now().0 + 1));
    let since = UnixMillis(
        q.since
            .unwrap_or(until.0.saturating_sub(30 * 24 * 3600 * 1000)),
    );
    let earnings = state.fleet.earnings(&caller, since, until).await?;
    if !csv {
        return Ok(Json(earnings).into_response());
    }
    let mut out = String::from("day,node_id,device,model,jobs,earned_msat\n");
    for l in &earnings.lines {
        out.push_str(&format!(
            "{},{},{},{},{},{}\n",
            iso_day(l.day),
            l.node_id,
            csv_field(&l.device),
            csv_field(&l.model),
            l.jobs,
            l.earned_msat.0
        ));
    }
    out.push_str(&format!("total,,,,,{}\n", earnings.total_msat.0));
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"infernet-earnings.csv\"",
            ),
        ],
        out,
    )
        .into_response())
}

/// `2026-11-27` for a UTC midnight.
fn iso_day(t: UnixMillis) -> String {
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = (t.0 / 86_400_000) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A CSV field, quoted when it must be.
fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_owned()
    }
}

/// The caller's team and the fleets they are in, with names.
pub(crate) async fn team_view(state: &AppState, caller: &wire::Caller) -> Result<Team, ApiError> {
    let (members, fleets) = state.fleet.team(caller).await?;
    let mut view = Team {
        members: Vec::new(),
        fleets: Vec::new(),
    };
    for (rows, theirs) in [(members, true), (fleets, false)] {
        for r in rows {
            let account = if theirs { r.member } else { r.owner };
            let name = state.accounts.account(&account).await?.display_name;
            let m = TeamMember {
                account,
                name,
                role: r.role,
                added_at: r.added_at,
            };
            if theirs {
                view.members.push(m);
            } else {
                view.fleets.push(m);
            }
        }
    }
    Ok(view)
}

/// The caller's team (who may see or run their fleet) and the fleets they
/// are in, with names.
#[utoipa::path(
    get,
    path = "/fleet/team",
    operation_id = "get_fleet_team",
    tag = "fleet",
    responses(
        (status = 200, description = "The team and the fleets.", body = Team),
        crate::openapi::NotSignedIn,
        (status = 403, description = "An API key without `fleet:read`.", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn team(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
) -> Result<Json<Team>, ApiError> {
    Ok(Json(team_view(&state, &caller).await?))
}

/// Lets an account into the caller's fleet as a viewer or a manager (or
/// changes its role). Takes a signed-in browser session.
#[utoipa::path(
    put,
    path = "/fleet/team/{account}",
    operation_id = "grant_team_member",
    tag = "fleet",
    params(("account" = String, Path, description = "The member's account id.")),
    request_body = TeamGrant,
    responses(
        (status = 204, description = "The account is in the team, with that role."),
        (status = 400, description = "Malformed JSON, not an account id, or the caller's own.", body = ErrorBody),
        (status = 401, description = "Not signed in, or an expired session.", body = ErrorBody),
        (status = 403, description = "An API key, not a browser session, or a cross-site request.", body = ErrorBody),
        (status = 404, description = "No such account.", body = ErrorBody),
        (status = 413, description = "A body over 64 KiB.", body = ErrorBody),
        (status = 415, description = "Not JSON.", body = ErrorBody),
        (status = 422, description = "JSON that is not a role.", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn grant(
    State(state): State<AppState>,
    Session(caller): Session,
    Path(account): Path<String>,
    ApiJson(grant): ApiJson<TeamGrant>,
) -> Result<StatusCode, ApiError> {
    let member: AccountId = account
        .parse()
        .map_err(|e: wire::accounts::BadAccountId| ApiError::BadRequest(e.to_string()))?;
    // Someone who does not exist cannot be let in.
    state.accounts.account(&member).await?;
    state.fleet.grant(&caller, &member, grant.role).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Takes an account out of the caller's fleet. Takes a signed-in browser
/// session.
#[utoipa::path(
    delete,
    path = "/fleet/team/{account}",
    operation_id = "revoke_team_member",
    tag = "fleet",
    params(("account" = String, Path, description = "The member's account id.")),
    responses(
        (status = 204, description = "The account is out of the team."),
        (status = 400, description = "Not an account id.", body = ErrorBody),
        (status = 401, description = "Not signed in, or an expired session.", body = ErrorBody),
        (status = 403, description = "An API key, not a browser session, or a cross-site request.", body = ErrorBody),
        (status = 404, description = "The account is not in the team.", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn revoke(
    State(state): State<AppState>,
    Session(caller): Session,
    Path(account): Path<String>,
) -> Result<StatusCode, ApiError> {
    let member: AccountId = account
        .parse()
        .map_err(|e: wire::accounts::BadAccountId| ApiError::BadRequest(e.to_string()))?;
    state.fleet.revoke(&caller, &member).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_read_as_iso_dates() {
        assert_eq!(iso_day(UnixMillis(0)), "1970-01-01");
        assert_eq!(iso_day(UnixMillis(1_795_737_600_000)), "2026-11-27");
        assert_eq!(iso_day(UnixMillis(951_782_400_000)), "2000-02-29");
    }

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        assert_eq!(csv_field("cuda:0"), "cuda:0");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
