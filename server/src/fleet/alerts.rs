//! Alerts: a node offline too long, a GPU too hot, too many failed jobs,
//! a node nobody can reach. Each fires once when its condition starts and
//! resolves once when it ends; both show in the app (a `FleetEvent`) and go
//! to the operator's webhook, if they gave one: JSON, signed with
//! HMAC-SHA256 over `<timestamp>.<body>` with a secret derived from this
//! server's `webhook.key` (0600) and the account, retried with backoff.
//!
//! A webhook may not point at this machine or a private network unless
//! the server allows it (`--allow-private-webhooks`, for tests and
//! single-machine setups): the server would otherwise POST wherever an
//! operator says.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wire::accounts::Scope;
use wire::fleet::{
    AlertKind, AlertSettings, AlertSettingsView, AlertView, FleetEvent, ReachabilityKind,
    WebhookBody,
};
use wire::jobs::JobStatus;
use wire::{AccountId, Caller, NodeId, UnixMillis};

use super::store::AlertRow;
use super::{require_any, Fleet, FleetError};

/// How often conditions are checked; failure rates every `FAILURE_EVERY`.
pub(super) const CHECK_EVERY: Duration = Duration::from_secs(1);
pub(super) const FAILURE_EVERY: Duration = Duration::from_secs(30);
/// A failure rate needs at least this many ended jobs in the last hour.
const MIN_JOBS: usize = 5;
/// Webhook calls: tries, and the first pause between them (doubling).
const TRIES: u32 = 5;
const FIRST_PAUSE: Duration = Duration::from_secs(1);
pub(super) const KEY_FILE: &str = "webhook.key";

/// How alerts reach operators.
pub(crate) struct Webhooks {
    /// Every account's webhook secret is derived from this.
    key: [u8; 32],
    allow_private: bool,
    http: reqwest::Client,
}

impl Webhooks {
    /// The key in `<data dir>/webhook.key`, made (0600) on first start.
    pub(crate) fn load(data_dir: &Path, allow_private: bool) -> std::io::Result<Webhooks> {
        let path = data_dir.join(KEY_FILE);
        let key = match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut k = [0u8; 32];
                k.copy_from_slice(&bytes);
                k
            }
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not a 32-byte key", path.display()),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let k: [u8; 32] = crate::accounts::random_bytes();
                write_private(&path, &k)?;
                k
            }
            Err(e) => return Err(e),
        };
        Ok(Webhooks {
            key,
            allow_private,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(format!("infernet-server/{}", wire::VERSION))
                .build()
                .unwrap_or_default(),
        })
    }

    /// The secret `account`'s webhooks are signed with.
    fn secret(&self, account: &AccountId) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"infernet webhook secret v1:");
        mac.update(account.to_string().as_bytes());
        format!("whsec_{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Refuses URLs that name this machine or a private network, unless
    /// allowed.
    fn check_url(&self, url: &str) -> Result<(), String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("webhook_url: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("webhook_url must be http(s)".into());
        }
        let host = parsed
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']']);
        let private = host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| match ip {
                IpAddr::V4(v4) => {
                    v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
                }
                IpAddr::V6(v6) => {
                    v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xfe00) == 0xfc00
                }
            });
        if private && !self.allow_private {
            return Err("webhook_url may not point at this machine or a private network".into());
        }
        Ok(())
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// What the checks found for one node now.
struct Found {
    kind: AlertKind,
    detail: String,
}

impl Fleet {
    pub(crate) async fn alert_settings(
        &self,
        caller: &Caller,
    ) -> Result<AlertSettingsView, FleetError> {
        require_any(caller)?;
        let settings = self
            .inner
            .store
            .alert_settings(&caller.account)
            .await?
            .unwrap_or_default();
        Ok(AlertSettingsView {
            settings,
            webhook_secret: self.inner.webhooks.secret(&caller.account),
        })
    }

    pub(crate) async fn set_alert_settings(
        &self,
        caller: &Caller,
        settings: AlertSettings,
    ) -> Result<AlertSettingsView, FleetError> {
        crate::accounts::require(caller, Scope::FleetWrite)?;
        settings.check().map_err(FleetError::BadRequest)?;
        if let Some(url) = &settings.webhook_url {
            self.inner
                .webhooks
                .check_url(url)
                .map_err(FleetError::BadRequest)?;
        }
        self.inner
            .store
            .put_alert_settings(&caller.account, &settings, UnixMillis::now())
            .await?;
        self.alert_settings(caller).await
    }

    /// The caller's alerts, newest first.
    pub(crate) async fn alerts(
        &self,
        caller: &Caller,
        limit: u32,
    ) -> Result<Vec<AlertView>, FleetError> {
        require_any(caller)?;
        Ok(self
            .inner
            .store
            .alerts_of(&caller.account, limit)
            .await?
            .iter()
            .map(AlertRow::view)
            .collect())
    }

    /// Alerts still open from an earlier run: they resolve, not fire again.
    pub(super) async fn load_open_alerts(&self) -> Result<(), FleetError> {
        let open = self.inner.store.open_alerts().await?;
        let mut map = self.open_alerts();
        for row in open {
            map.insert((row.node, row.kind), row);
        }
        Ok(())
    }

    fn open_alerts(&self) -> std::sync::MutexGuard<'_, HashMap<(NodeId, AlertKind), AlertRow>> {
        self.inner.alerts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks every known node's conditions; fires and resolves alerts.
    pub(super) async fn check_alerts(&self, check_failures: bool) {
        let now = UnixMillis::now();
        let settings: HashMap<AccountId, AlertSettings> =
            match self.inner.store.all_alert_settings().await {
                Ok(s) => s.into_iter().collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "alerts: could not read settings");
                    return;
                }
            };
        let failing = if check_failures {
            Some(self.failing_nodes(&settings, now).await)
        } else {
            None
        };
        // What each known node shows now.
        let snapshot: Vec<(NodeId, AccountId, Vec<Found>)> = {
            let live = self.live();
            live.iter()
                .filter_map(|(node, l)| {
                    let owner = l.owner.clone()?;
                    let s = settings.get(&owner).cloned().unwrap_or_default();
                    let mut found = Vec::new();
                    let since = l.since.map_or(0, |t| now.0.saturating_sub(t.0));
                    if l.link.is_none() && since >= s.offline_after_secs * 1000 {
                        found.push(Found {
                            kind: AlertKind::Offline,
                            detail: format!(
                                "no fleet link for {} min: is the node running, and can it reach this server?{}",
                                since / 60_000,
                                l.last_end.as_ref().map(|r| format!(" (its link ended: {r})")).unwrap_or_default()
                            ),
                        });
                    }
                    if let (Some(t), true) = (&l.telemetry, l.link.is_some()) {
                        if let Some(g) = t.gpus.iter().find(|g| g.temp_c >= s.gpu_temp_c as f32) {
                            found.push(Found {
                                kind: AlertKind::GpuHot,
                                detail: format!(
                                    "GPU {} ({}) is at {:.0} °C (alert at {} °C): check its cooling, or lower its power limit",
                                    g.index, g.name, g.temp_c, s.gpu_temp_c
                                ),
                            });
                        }
                        if t.reachability.kind == ReachabilityKind::Unreachable
                            && since >= s.unreachable_after_secs * 1000
                        {
                            found.push(Found {
                                kind: AlertKind::Unreachable,
                                detail: t
                                    .reachability
                                    .reason
                                    .clone()
                                    .unwrap_or_else(|| "peers cannot reach this node".into()),
                            });
                        }
                    }
                    if let Some(f) = failing.as_ref().and_then(|f| f.get(node)) {
                        found.push(Found {
                            kind: AlertKind::FailureRate,
                            detail: f.clone(),
                        });
                    }
                    Some((*node, owner, found))
                })
                .collect()
        };
        for (node, owner, found) in snapshot {
            let active: HashSet<AlertKind> = found.iter().map(|f| f.kind).collect();
            for f in found {
                if !self.open_alerts().contains_key(&(node, f.kind)) {
                    self.fire(node, &owner, f, now, &settings).await;
                }
            }
            // What no longer holds resolves (failure rates only when checked).
            let ended: Vec<AlertRow> = self
                .open_alerts()
                .iter()
                .filter(|((n, kind), _)| {
                    *n == node
                        && !active.contains(kind)
                        && (*kind != AlertKind::FailureRate || failing.is_some())
                })
                .map(|(_, row)| row.clone())
                .collect();
            for row in ended {
                self.resolve(row, now, &settings).await;
            }
        }
    }

    /// Nodes whose jobs of the last hour failed too often: why, by node.
    async fn failing_nodes(
        &self,
        settings: &HashMap<AccountId, AlertSettings>,
        now: UnixMillis,
    ) -> HashMap<NodeId, String> {
        let owners: HashMap<NodeId, AccountId> = self
            .live()
            .iter()
            .filter_map(|(n, l)| l.owner.clone().map(|o| (*n, o)))
            .collect();
        let nodes: Vec<NodeId> = owners.keys().copied().collect();
        if nodes.is_empty() {
            return HashMap::new();
        }
        let since = UnixMillis(now.0.saturating_sub(3_600_000));
        let jobs = match self.inner.jobs.facts(&nodes, since, now, &[]).await {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "alerts: could not read jobs");
                return HashMap::new();
            }
        };
        let mut out = HashMap::new();
        for (node, owner) in owners {
            let ended: Vec<_> = jobs
                .iter()
                .filter(|j| j.node_id == node && j.status != JobStatus::Dispatched)
                .collect();
            let failed = ended
                .iter()
                .filter(|j| j.status == JobStatus::Failed)
                .count();
            let threshold = settings
                .get(&owner)
                .cloned()
                .unwrap_or_default()
                .failure_rate_pct;
            if ended.len() >= MIN_JOBS && failed * 100 >= threshold as usize * ended.len() {
                out.insert(
                    node,
                    format!(
                        "{failed} of its last {} jobs failed in the past hour (alert at {threshold} %): see their errors in Jobs, and the node's log",
                        ended.len()
                    ),
                );
            }
        }
        out
    }

    async fn fire(
        &self,
        node: NodeId,
        owner: &AccountId,
        found: Found,
        now: UnixMillis,
        settings: &HashMap<AccountId, AlertSettings>,
    ) {
        let row = AlertRow {
            alert_id: crate::accounts::new_id("alert"),
            owner: owner.clone(),
            node,
            kind: found.kind,
            started_at: now,
            resolved_at: None,
            detail: found.detail,
            fired_webhook: None,
            resolved_webhook: None,
        };
        if let Err(e) = self.inner.store.insert_alert(&row).await {
            tracing::warn!(%node, error = %e, "could not record an alert");
            return;
        }
        tracing::warn!(%node, kind = row.kind.as_str(), detail = %row.detail, "alert");
        self.open_alerts().insert((node, row.kind), row.clone());
        self.emit(owner, FleetEvent::Alert(Box::new(row.view())));
        self.notify(row, false, settings.get(owner));
    }

    async fn resolve(
        &self,
        mut row: AlertRow,
        now: UnixMillis,
        settings: &HashMap<AccountId, AlertSettings>,
    ) {
        if let Err(e) = self.inner.store.resolve_alert(&row.alert_id, now).await {
            tracing::warn!(node = %row.node, error = %e, "could not resolve an alert");
            return;
        }
        self.open_alerts().remove(&(row.node, row.kind));
        row.resolved_at = Some(now);
        tracing::info!(node = %row.node, kind = row.kind.as_str(), "alert resolved");
        self.emit(&row.owner, FleetEvent::Alert(Box::new(row.view())));
        let settings = settings.get(&row.owner).cloned();
        self.notify(row, true, settings.as_ref());
    }

    /// Sends the alert to the owner's webhook on a task of its own, with
    /// retries; records what became of it.
    fn notify(&self, row: AlertRow, resolved: bool, settings: Option<&AlertSettings>) {
        let fleet = self.clone();
        let url = settings.and_then(|s| s.webhook_url.clone());
        tokio::spawn(async move {
            let store = &fleet.inner.store;
            let Some(url) = url else {
                let _ = store
                    .webhook_outcome(&row.alert_id, resolved, "no webhook")
                    .await;
                return;
            };
            let webhooks = &fleet.inner.webhooks;
            let outcome = match webhooks.check_url(&url) {
                Err(e) => e,
                Ok(()) => {
                    let body = WebhookBody {
                        kind: if resolved {
                            "alert.resolved"
                        } else {
                            "alert.fired"
                        }
                        .into(),
                        alert: row.view(),
                    };
                    let body = serde_json::to_vec(&body).unwrap_or_default();
                    let secret = webhooks.secret(&row.owner);
                    let mut pause = FIRST_PAUSE;
                    let mut last = String::new();
                    for attempt in 1..=TRIES {
                        let timestamp = UnixMillis::now().0.to_string();
                        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
                            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
                        mac.update(timestamp.as_bytes());
                        mac.update(b".");
                        mac.update(&body);
                        let signature = hex::encode(mac.finalize().into_bytes());
                        let sent = webhooks
                            .http
                            .post(&url)
                            .header("content-type", "application/json")
                            .header("x-infernet-timestamp", &timestamp)
                            .header("x-infernet-signature", format!("sha256={signature}"))
                            .header(
                                "x-infernet-delivery",
                                format!(
                                    "{}:{}",
                                    row.alert_id,
                                    if resolved { "resolved" } else { "fired" }
                                ),
                            )
                            .body(body.clone())
                            .send()
                            .await;
                        match sent {
                            Ok(r) if r.status().is_success() => {
                                last = "delivered".into();
                                break;
                            }
                            Ok(r) => last = format!("the webhook answered {}", r.status()),
                            Err(e) => last = format!("could not reach the webhook: {e}"),
                        }
                        tracing::info!(alert = %row.alert_id, attempt, error = %last, "webhook failed; trying again");
                        if attempt < TRIES {
                            tokio::time::sleep(pause).await;
                            pause *= 2;
                        }
                    }
                    last
                }
            };
            if let Err(e) = store
                .webhook_outcome(&row.alert_id, resolved, &outcome)
                .await
            {
                tracing::warn!(alert = %row.alert_id, error = %e, "could not record a webhook's outcome");
            }
        });
    }
}

/// The signature a webhook receiver checks: hex HMAC-SHA256 with the
/// account's secret over `<timestamp>.<body>` (tests use it).
#[cfg(test)]
pub(crate) fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(allow_private: bool) -> Webhooks {
        let dir = std::env::temp_dir().join(format!(
            "infernet-webhooks-{}-{allow_private}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Webhooks::load(&dir, allow_private).unwrap()
    }

    #[test]
    fn private_addresses_are_refused_unless_allowed() {
        let strict = hooks(false);
        for bad in [
            "http://localhost/x",
            "http://127.0.0.1:9/x",
            "https://10.1.2.3/",
            "http://192.168.0.1/",
            "http://[::1]/",
            "ftp://example.com/",
        ] {
            assert!(strict.check_url(bad).is_err(), "{bad}");
        }
        assert!(strict
            .check_url("https://hooks.example.com/infernet")
            .is_ok());
        assert!(hooks(true).check_url("http://127.0.0.1:9/x").is_ok());
    }

    #[test]
    fn the_key_file_is_private_and_secrets_are_per_account_and_stable() {
        let dir = std::env::temp_dir().join(format!("infernet-webhook-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let a = Webhooks::load(&dir, false).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let b = Webhooks::load(&dir, false).unwrap();
        let one: AccountId = "acct_aaaaaaaaaaaaaaaaaaaaaaaaaa".parse().unwrap();
        let two: AccountId = "acct_bbbbbbbbbbbbbbbbbbbbbbbbbb".parse().unwrap();
        assert_eq!(a.secret(&one), b.secret(&one), "the same after a restart");
        assert_ne!(a.secret(&one), a.secret(&two));
        assert!(a.secret(&one).starts_with("whsec_"));
        assert_eq!(sign("s", "1", b"{}").len(), 64);
    }
}
