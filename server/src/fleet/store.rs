//! The `fleet_command` and `telemetry` tables and all their SurrealQL.

use serde::{Deserialize, Serialize};
use serde_json::json;
use wire::fleet::{
    Action, AlertKind, AlertSettings, AlertView, CommandId, CommandStatus, CommandView, Gauges,
    TeamRole, TelemetryPoint,
};
use wire::{AccountId, NodeId, UnixMillis};

use crate::db::{Db, DbError};

/// A command as stored: the audit log's row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct CommandRow {
    pub(super) command_id: CommandId,
    pub(super) node: NodeId,
    pub(super) owner: AccountId,
    pub(super) account: AccountId,
    pub(super) issued_by: String,
    pub(super) action: Action,
    pub(super) status: CommandStatus,
    pub(super) created_at: UnixMillis,
    pub(super) expires_at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) sent_at: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) acked_at: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) finished_at: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) detail: Option<String>,
}

impl CommandRow {
    pub(super) fn view(&self) -> CommandView {
        CommandView {
            id: self.command_id.clone(),
            node_id: self.node,
            action: self.action.clone(),
            status: self.status,
            issued_by: self.issued_by.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            sent_at: self.sent_at,
            acked_at: self.acked_at,
            finished_at: self.finished_at,
            detail: self.detail.clone(),
        }
    }
}

const FIELDS: &str = "command_id, node, owner, account, issued_by, action, status, created_at, \
                      expires_at, sent_at, acked_at, finished_at, detail";

#[derive(Clone)]
pub(super) struct FleetStore {
    db: Db,
}

impl FleetStore {
    pub(super) fn new(db: Db) -> Self {
        FleetStore { db }
    }

    pub(super) async fn insert(&self, row: &CommandRow) -> Result<(), DbError> {
        self.db
            .execute(
                "CREATE type::record('fleet_command', $id) CONTENT $row",
                json!({ "id": row.command_id, "row": row }),
            )
            .await
    }

    /// Records a tag change and makes it, in one transaction: the node's
    /// tags become `tags` and the command is in the log as succeeded.
    pub(super) async fn set_tags(&self, row: &CommandRow, tags: &[String]) -> Result<(), DbError> {
        self.db
            .transact::<serde_json::Value>(
                "BEGIN TRANSACTION;                  UPSERT type::record('node_tag', $node) CONTENT { node: $node, owner: $owner, tags: $tags };                  CREATE type::record('fleet_command', $id) CONTENT $row;                  COMMIT TRANSACTION;",
                json!({
                    "node": row.node,
                    "owner": row.owner,
                    "tags": tags,
                    "id": row.command_id,
                    "row": row,
                }),
                0,
            )
            .await
            .map(|_| ())
    }

    /// `owner`'s tags on their nodes.
    pub(super) async fn tags_of(
        &self,
        owner: &AccountId,
    ) -> Result<std::collections::HashMap<NodeId, Vec<String>>, DbError> {
        #[derive(Deserialize)]
        struct Row {
            node: NodeId,
            tags: Vec<String>,
        }
        let rows: Vec<Row> = self
            .db
            .rows(
                "SELECT node, tags FROM node_tag WHERE owner = $owner",
                json!({ "owner": owner }),
                0,
            )
            .await?;
        Ok(rows.into_iter().map(|r| (r.node, r.tags)).collect())
    }

    /// Moves `node`'s command on, if it is in one of `from`; the row after, or
    /// `None` when it was not (already further on, or unknown).
    pub(super) async fn advance(
        &self,
        node: NodeId,
        id: &CommandId,
        from: &[CommandStatus],
        to: CommandStatus,
        at: UnixMillis,
        detail: Option<&str>,
    ) -> Result<Option<CommandRow>, DbError> {
        let stamp = match to {
            CommandStatus::Sent => "sent_at = $at",
            CommandStatus::Acked => "acked_at = $at",
            // Back in the queue: it was never taken.
            CommandStatus::Queued => "sent_at = NONE",
            _ => "finished_at = $at",
        };
        let sql = format!(
            "UPDATE type::record('fleet_command', $id) SET status = $to, {stamp}, \
             detail = $detail ?? detail WHERE node = $node AND status IN $from RETURN {FIELDS}"
        );
        let rows: Vec<CommandRow> = self
            .db
            .rows(
                &sql,
                json!({ "node": node, "id": id, "to": to, "at": at, "from": from, "detail": detail }),
                0,
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    /// `node`'s commands that wait for it, oldest first.
    pub(super) async fn queued_for(&self, node: NodeId) -> Result<Vec<CommandRow>, DbError> {
        let sql = format!(
            "SELECT {FIELDS} FROM fleet_command WHERE node = $node AND status = 'queued' \
             ORDER BY created_at ASC"
        );
        self.db.rows(&sql, json!({ "node": node }), 0).await
    }

    /// Commands that waited past their expiry without reaching their node
    /// (or without an answer): expired now. The rows changed.
    pub(super) async fn expire(&self, now: UnixMillis) -> Result<Vec<CommandRow>, DbError> {
        let sql = format!(
            "UPDATE fleet_command SET status = 'expired', finished_at = $now, \
             detail = 'the node did not take it in time' \
             WHERE status IN ['queued', 'sent'] AND expires_at < $now RETURN {FIELDS}"
        );
        self.db.rows(&sql, json!({ "now": now }), 0).await
    }

    /// `owner`'s audit log, newest first, optionally for one node.
    pub(super) async fn log(
        &self,
        owner: &AccountId,
        node: Option<NodeId>,
        before: Option<UnixMillis>,
        limit: u32,
    ) -> Result<Vec<CommandRow>, DbError> {
        let mut filter = String::new();
        if node.is_some() {
            filter.push_str(" AND node = $node");
        }
        if before.is_some() {
            filter.push_str(" AND created_at < $before");
        }
        let sql = format!(
            "SELECT {FIELDS} FROM fleet_command WHERE owner = $owner{filter} \
             ORDER BY created_at DESC LIMIT $limit"
        );
        self.db
            .rows(
                &sql,
                json!({ "owner": owner, "node": node, "before": before, "limit": limit }),
                0,
            )
            .await
    }

    /// One of `owner`'s commands.
    pub(super) async fn get(
        &self,
        owner: &AccountId,
        id: &CommandId,
    ) -> Result<Option<CommandRow>, DbError> {
        let sql =
            format!("SELECT {FIELDS} FROM type::record('fleet_command', $id) WHERE owner = $owner");
        let rows: Vec<CommandRow> = self
            .db
            .rows(&sql, json!({ "id": id, "owner": owner }), 0)
            .await?;
        Ok(rows.into_iter().next())
    }

    /// One frame's numbers, under the record id `[node, at]`: a range of
    /// ids is a node's series, with no index to keep.
    pub(super) async fn record_gauges(
        &self,
        node: NodeId,
        at: UnixMillis,
        gauges: &Gauges,
    ) -> Result<(), DbError> {
        self.db
            .execute(
                "UPSERT type::record('frame', [$node, $at]) CONTENT { g: $g }",
                json!({ "node": node, "at": at, "g": gauges.to_vec() }),
            )
            .await
    }

    /// Writes one five-minute bucket (again: the same bucket is replaced).
    pub(super) async fn record_bucket(
        &self,
        node: NodeId,
        at: UnixMillis,
        frames: u32,
        gauges: &Gauges,
    ) -> Result<(), DbError> {
        self.db
            .execute(
                "UPSERT type::record('frame_5m', [$node, $at]) CONTENT { n: $n, g: $g }",
                json!({ "node": node, "at": at, "n": frames, "g": gauges.to_vec() }),
            )
            .await
    }

    /// `node`'s points from `since` to `until`, oldest first: frames, or
    /// five-minute buckets when `buckets`.
    pub(super) async fn points(
        &self,
        node: NodeId,
        since: UnixMillis,
        until: UnixMillis,
        buckets: bool,
    ) -> Result<Vec<TelemetryPoint>, DbError> {
        #[derive(Deserialize)]
        struct Row {
            at: UnixMillis,
            g: Vec<f32>,
        }
        let table = if buckets { "frame_5m" } else { "frame" };
        let sql = format!(
            "SELECT id[1] AS at, g FROM {table}:[$node, $since]..=[$node, $until] LIMIT 50000"
        );
        let rows: Vec<Row> = self
            .db
            .rows(
                &sql,
                json!({ "node": node, "since": since, "until": until }),
                0,
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| TelemetryPoint {
                at: r.at,
                gauges: Gauges::from_vec(&r.g),
            })
            .collect())
    }

    /// The `slot_ms` slots since `since` in which each of `nodes` reported
    /// telemetry (frames for the last day, five-minute buckets before).
    pub(super) async fn reported_slots(
        &self,
        nodes: &[NodeId],
        since: UnixMillis,
        slot_ms: u64,
    ) -> Result<Vec<(NodeId, u64)>, DbError> {
        #[derive(Deserialize)]
        struct Row {
            slot: f64,
        }
        let mut out = Vec::new();
        for node in nodes {
            for table in ["frame", "frame_5m"] {
                let sql = format!(
                    "SELECT math::floor(id[1] / $slot) AS slot FROM {table}:[$node, $since]..=[$node, $until] \
                     GROUP BY slot"
                );
                let rows: Vec<Row> = self
                    .db
                    .rows(
                        &sql,
                        json!({ "node": node, "since": since, "until": UnixMillis::now(), "slot": slot_ms }),
                        0,
                    )
                    .await?;
                out.extend(rows.into_iter().map(|r| (*node, r.slot as u64)));
            }
        }
        out.sort_unstable_by_key(|(n, s)| (n.to_string(), *s));
        out.dedup();
        Ok(out)
    }

    /// Drops frames older than `frames_before` and buckets older than
    /// `buckets_before`.
    pub(super) async fn prune_telemetry(
        &self,
        frames_before: UnixMillis,
        buckets_before: UnixMillis,
    ) -> Result<(), DbError> {
        self.db
            .execute(
                "DELETE frame WHERE id[1] < $frames; DELETE frame_5m WHERE id[1] < $buckets;",
                json!({ "frames": frames_before, "buckets": buckets_before }),
            )
            .await
    }

    /// `node`'s commands that were sent but not acknowledged when its link
    /// broke: queued again, to go on the next link (every action is safe
    /// to run twice).
    pub(super) async fn requeue_unacked(&self, node: NodeId) -> Result<(), DbError> {
        self.db
            .execute(
                "UPDATE fleet_command SET status = 'queued', sent_at = NONE \
                 WHERE node = $node AND status = 'sent'",
                json!({ "node": node }),
            )
            .await
    }

    pub(super) async fn alert_settings(
        &self,
        account: &AccountId,
    ) -> Result<Option<AlertSettings>, DbError> {
        #[derive(Deserialize)]
        struct Row {
            settings: AlertSettings,
        }
        let rows: Vec<Row> = self
            .db
            .rows(
                "SELECT settings FROM type::record('alert_settings', $account)",
                json!({ "account": account }),
                0,
            )
            .await?;
        Ok(rows.into_iter().next().map(|r| r.settings))
    }

    pub(super) async fn put_alert_settings(
        &self,
        account: &AccountId,
        settings: &AlertSettings,
        at: UnixMillis,
    ) -> Result<(), DbError> {
        self.db
            .execute(
                "UPSERT type::record('alert_settings', $account) CONTENT \
                 { account: $account, settings: $settings, updated_at: $at }",
                json!({ "account": account, "settings": settings, "at": at }),
            )
            .await
    }

    /// Every account's settings that differ from the defaults.
    pub(super) async fn all_alert_settings(
        &self,
    ) -> Result<Vec<(AccountId, AlertSettings)>, DbError> {
        #[derive(Deserialize)]
        struct Row {
            account: AccountId,
            settings: AlertSettings,
        }
        let rows: Vec<Row> = self
            .db
            .rows("SELECT account, settings FROM alert_settings", json!({}), 0)
            .await?;
        Ok(rows.into_iter().map(|r| (r.account, r.settings)).collect())
    }

    pub(super) async fn insert_alert(&self, row: &AlertRow) -> Result<(), DbError> {
        self.db
            .execute(
                "CREATE type::record('alert', $id) CONTENT $row",
                json!({ "id": row.alert_id, "row": row }),
            )
            .await
    }

    pub(super) async fn resolve_alert(&self, id: &str, at: UnixMillis) -> Result<(), DbError> {
        self.db
            .execute(
                "UPDATE type::record('alert', $id) SET resolved_at = $at WHERE resolved_at = NONE",
                json!({ "id": id, "at": at }),
            )
            .await
    }

    /// Records what became of a webhook call (`resolved`: the resolution's).
    pub(super) async fn webhook_outcome(
        &self,
        id: &str,
        resolved: bool,
        outcome: &str,
    ) -> Result<(), DbError> {
        let field = if resolved {
            "resolved_webhook"
        } else {
            "fired_webhook"
        };
        self.db
            .execute(
                &format!("UPDATE type::record('alert', $id) SET {field} = $outcome"),
                json!({ "id": id, "outcome": outcome }),
            )
            .await
    }

    /// Alerts that have not resolved (after a restart: still open).
    pub(super) async fn open_alerts(&self) -> Result<Vec<AlertRow>, DbError> {
        self.db
            .rows(
                "SELECT * OMIT id FROM alert WHERE resolved_at = NONE",
                json!({}),
                0,
            )
            .await
    }

    /// `owner`'s alerts, newest first.
    pub(super) async fn alerts_of(
        &self,
        owner: &AccountId,
        limit: u32,
    ) -> Result<Vec<AlertRow>, DbError> {
        self.db
            .rows(
                "SELECT * OMIT id FROM alert WHERE owner = $owner ORDER BY started_at DESC LIMIT $limit",
                json!({ "owner": owner, "limit": limit }),
                0,
            )
            .await
    }

    pub(super) async fn put_member(
        &self,
        owner: &AccountId,
        member: &AccountId,
        role: TeamRole,
        at: UnixMillis,
    ) -> Result<(), DbError> {
        self.db
            .execute(
                "UPSERT type::record('fleet_member', [$owner, $member]) CONTENT \
                 { owner: $owner, member: $member, role: $role, added_at: $at }",
                json!({ "owner": owner, "member": member, "role": role, "at": at }),
            )
            .await
    }

    /// Whether there was such a member.
    pub(super) async fn remove_member(
        &self,
        owner: &AccountId,
        member: &AccountId,
    ) -> Result<bool, DbError> {
        let gone: Vec<serde_json::Value> = self
            .db
            .rows(
                "DELETE type::record('fleet_member', [$owner, $member]) RETURN BEFORE",
                json!({ "owner": owner, "member": member }),
                0,
            )
            .await?;
        Ok(!gone.is_empty())
    }

    /// `member`'s role in `owner`'s fleet, if any.
    pub(super) async fn role(
        &self,
        owner: &AccountId,
        member: &AccountId,
    ) -> Result<Option<TeamRole>, DbError> {
        Ok(self
            .memberships("WHERE owner = $owner AND member = $member", owner, member)
            .await?
            .into_iter()
            .next()
            .map(|m| m.role))
    }

    async fn memberships(
        &self,
        filter: &str,
        owner: &AccountId,
        member: &AccountId,
    ) -> Result<Vec<MemberRow>, DbError> {
        self.db
            .rows(
                &format!(
                    "SELECT owner, member, role, added_at FROM fleet_member {filter} ORDER BY added_at"
                ),
                json!({ "owner": owner, "member": member }),
                0,
            )
            .await
    }

    /// `account`'s team (as owner), and the fleets it belongs to (as member).
    pub(super) async fn team(
        &self,
        account: &AccountId,
    ) -> Result<(Vec<MemberRow>, Vec<MemberRow>), DbError> {
        Ok((
            self.memberships("WHERE owner = $owner", account, account)
                .await?,
            self.memberships("WHERE member = $member", account, account)
                .await?,
        ))
    }
}

/// One membership as stored.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct MemberRow {
    pub(super) owner: AccountId,
    pub(super) member: AccountId,
    pub(super) role: TeamRole,
    pub(super) added_at: UnixMillis,
}

/// An alert as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct AlertRow {
    pub(super) alert_id: String,
    pub(super) owner: AccountId,
    pub(super) node: NodeId,
    pub(super) kind: AlertKind,
    pub(super) started_at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) resolved_at: Option<UnixMillis>,
    pub(super) detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) fired_webhook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) resolved_webhook: Option<String>,
}

impl AlertRow {
    pub(super) fn view(&self) -> AlertView {
        AlertView {
            id: self.alert_id.clone(),
            node_id: self.node,
            kind: self.kind,
            started_at: self.started_at,
            resolved_at: self.resolved_at,
            detail: self.detail.clone(),
        }
    }
}
