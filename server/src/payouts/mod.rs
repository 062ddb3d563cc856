//! Payouts and withdrawals over Lightning: an operator's earnings, or a
//! consumer's unspent balance, to a BOLT11 invoice or a Lightning address
//! (LUD-16), on demand or automatically once earnings reach a threshold.
//!
//! A payout's money (its amount and a reserve for the routing fee) leaves
//! its book with the payout's record, in one transaction. Sending it ends
//! in one of two movements, with its status: succeeded (the amount and fee
//! leave the ledger, the rest of the reserve returns; the preimage is
//! kept, and checked against the payment hash, and confirmed by the
//! payee's LUD-21 verify URL where it has one) or failed (all of it
//! returns). When the backend cannot be reached the payout stays pending
//! and is tried again with backoff; paying an invoice again is safe (the
//! backend pays an invoice once), so a retry never pays twice.
//!
//! - `store`: the `payout` and `payout_settings` tables;
//! - `lnurl`: Lightning addresses to invoices, LUD-21 verification;
//! - `http`: `/api/v1/billing/payouts`, `/billing/payout-settings`.

mod http;
mod lnurl;
mod store;
#[cfg(test)]
mod tests;

pub(crate) use http::router;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use payments::{Lightning, LightningError};
use serde_json::json;
use sha2::{Digest, Sha256};
use wire::billing::{NewPayout, PaymentStatus, Payout, PayoutSettings, PayoutSource};
use wire::{AccountId, MilliSats, NodeId, UnixMillis};

use crate::db::{Db, DbError};
use crate::ledger::{Applied, Book, Ledger, LedgerError, Movement};
use crate::lightning::PaymentChanges;
use store::{InsertError, PayoutRow, PayoutStore};

/// The smallest payout (1 sat) and the largest (0.1 BTC).
const MIN_PAYOUT: u64 = 1_000;
const MAX_PAYOUT: u64 = 10_000_000_000;
/// The smallest fee reserve: 10 sat.
const MIN_FEE_RESERVE: u64 = 10_000;
/// Retries of a payout the backend could not answer for: 5 s doubling to
/// an hour.
const RETRY_FIRST: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(3600);
/// After a failed automatic payout: 1 min doubling to a day.
const AUTO_BACKOFF_FIRST: Duration = Duration::from_secs(60);
const AUTO_BACKOFF_MAX: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub(crate) enum PayoutError {
    #[error("this server has no Lightning to pay out with")]
    Disabled,
    #[error("{0}")]
    BadRequest(String),
    #[error("payout {0} not found")]
    NotFound(String),
    #[error("this invoice was paid out already")]
    Duplicate,
    /// The Lightning address's service refused or could not be reached.
    #[error("Lightning address: {0}")]
    Address(String),
    #[error(transparent)]
    Lightning(#[from] LightningError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Store(#[from] DbError),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
}

/// What is held for a payment's routing fee: 1 %, at least 10 sat.
pub(crate) fn fee_reserve(amount: MilliSats) -> MilliSats {
    MilliSats((amount.0 / 100).max(MIN_FEE_RESERVE))
}

/// The largest whole-satoshi payout that fits in `available` with its fee
/// reserve; `None` if not even the smallest does.
pub(crate) fn largest_payout(available: u64) -> Option<MilliSats> {
    let by_min = available.saturating_sub(MIN_FEE_RESERVE);
    let by_pct = available.saturating_mul(100) / 101;
    let amount = by_min.min(by_pct) / 1000 * 1000;
    (amount >= MIN_PAYOUT && amount + fee_reserve(MilliSats(amount)).0 <= available)
        .then_some(MilliSats(amount))
}

fn backoff(first: Duration, max: Duration, failures: u32) -> Duration {
    first.saturating_mul(1u32 << failures.min(16)).min(max)
}

/// Whose money a payout is.
enum Payer {
    Account(AccountId),
    /// A node nobody has enrolled, paid to the address it signed.
    Node(NodeId),
}

/// Cheap to clone.
#[derive(Clone)]
pub(crate) struct Payouts {
    store: PayoutStore,
    ledger: Ledger,
    lightning: Option<Arc<dyn Lightning>>,
    http: reqwest::Client,
    changed: PaymentChanges,
    /// Payouts being sent by this process now: not sent twice at once.
    sending: Arc<Mutex<HashSet<String>>>,
    /// Unenrolled nodes' payout addresses, and the pending earnings at
    /// which they are paid out.
    nodes: Option<(crate::registry::Registry, MilliSats)>,
}

impl Payouts {
    pub(crate) fn new(db: Db, ledger: Ledger, lightning: Option<Arc<dyn Lightning>>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .unwrap_or_default();
        Payouts {
            store: PayoutStore::new(db),
            ledger,
            lightning,
            http,
            changed: PaymentChanges::default(),
            sending: Arc::new(Mutex::new(HashSet::new())),
            nodes: None,
        }
    }

    /// Also pays unenrolled nodes' pending earnings, once they reach
    /// `threshold`, to the payout address each signed.
    pub(crate) fn paying_nodes(
        mut self,
        registry: crate::registry::Registry,
        threshold: MilliSats,
    ) -> Self {
        self.nodes = Some((registry, threshold));
        self
    }

    fn backend(&self) -> Result<&Arc<dyn Lightning>, PayoutError> {
        self.lightning.as_ref().ok_or(PayoutError::Disabled)
    }

    /// Records a payout and starts sending it; returns it as recorded
    /// (pending). Its money is taken now: short of it, nothing is recorded.
    pub(crate) async fn create(
        &self,
        account: &AccountId,
        new: NewPayout,
    ) -> Result<Payout, PayoutError> {
        let row = self
            .prepare(Payer::Account(account.clone()), new, false)
            .await?;
        self.record(&row).await?;
        let wire = row.to_wire();
        let this = self.clone();
        tokio::spawn(async move { this.send_logged(row).await });
        Ok(wire)
    }

    /// Checks a new payout and fetches its invoice; records nothing.
    async fn prepare(
        &self,
        payer: Payer,
        new: NewPayout,
        automatic: bool,
    ) -> Result<PayoutRow, PayoutError> {
        let backend = self.backend()?;
        let (invoice, address, verify_url, amount) = match (new.invoice, new.address) {
            (Some(invoice), None) => {
                let parsed = payments::parse_invoice(&invoice)
                    .map_err(|e| PayoutError::BadRequest(e.to_string()))?;
                let amount = match (parsed.amount, new.amount_msat) {
                    (Some(a), None) => a,
                    (Some(a), Some(b)) if a == b => a,
                    (Some(a), Some(b)) => {
                        return Err(PayoutError::BadRequest(format!(
                            "the invoice asks for {} msat, not {}",
                            a.0, b.0
                        )))
                    }
                    (None, Some(b)) => b,
                    (None, None) => {
                        return Err(PayoutError::BadRequest(
                            "the invoice names no amount: give amount_msat".into(),
                        ))
                    }
                };
                let network = match backend.network() {
                    "test" => "regtest",
                    other => other,
                };
                if parsed.network != network {
                    return Err(PayoutError::BadRequest(format!(
                        "the invoice is for {}, this server pays on {network}",
                        parsed.network
                    )));
                }
                if parsed.expires_at <= UnixMillis::now() {
                    return Err(PayoutError::BadRequest("the invoice has expired".into()));
                }
                check_amount(amount)?;
                (invoice.trim().to_owned(), None, None, amount)
            }
            (None, Some(address)) => {
                let amount = new.amount_msat.ok_or_else(|| {
                    PayoutError::BadRequest("a payout to an address needs amount_msat".into())
                })?;
                check_amount(amount)?;
                let address = address.trim().to_owned();
                let resolved = lnurl::invoice_for(&self.http, &address, amount).await?;
                (resolved.invoice, Some(address), resolved.verify, amount)
            }
            _ => {
                return Err(PayoutError::BadRequest(
                    "give exactly one of invoice and address".into(),
                ))
            }
        };
        let payment_hash = payments::parse_invoice(&invoice)
            .map_err(|e| PayoutError::BadRequest(e.to_string()))?
            .payment_hash;
        let now = UnixMillis::now();
        let (account, node_id) = match payer {
            Payer::Account(a) => (Some(a), None),
            Payer::Node(n) => (None, Some(n)),
        };
        Ok(PayoutRow {
            payout_id: format!("pay_{}", uuid::Uuid::new_v4().simple()),
            account,
            node_id,
            source: new.from,
            amount_msat: amount,
            fee_reserve_msat: fee_reserve(amount),
            fee_msat: None,
            address,
            invoice,
            payment_hash,
            preimage: None,
            status: PaymentStatus::Pending,
            error: None,
            verify_url,
            verified: None,
            automatic,
            attempts: 0,
            // The sender started with it goes first; the retry loop later.
            next_attempt_at: now.plus(RETRY_FIRST.saturating_mul(6)),
            created_at: now,
            finished_at: None,
        })
    }

    /// The book a payout's money comes from (and returns to).
    fn source_book(row: &PayoutRow) -> Result<Book, PayoutError> {
        match (&row.node_id, &row.account, row.source) {
            (Some(node), _, _) => Ok(Book::Pending(*node)),
            (None, Some(a), PayoutSource::Earnings) => Ok(Book::Earnings(a.clone())),
            (None, Some(a), PayoutSource::Balance) => Ok(Book::Balance(a.clone())),
            (None, None, _) => Err(PayoutError::BadRequest(format!(
                "payout {} has nobody to pay from",
                row.payout_id
            ))),
        }
    }

    async fn record(&self, row: &PayoutRow) -> Result<(), PayoutError> {
        let reserved = MilliSats(row.amount_msat.0 + row.fee_reserve_msat.0);
        let take = Movement::payout(
            Self::source_book(row)?,
            &row.payout_id,
            reserved,
            row.created_at,
        );
        let _locked = self.ledger.lock(&[&take]).await;
        match self.store.insert(row, &take).await {
            Ok(()) => {
                tracing::info!(payout = %row.payout_id, account = ?row.account, node = ?row.node_id, amount_msat = row.amount_msat.0, automatic = row.automatic, "payout recorded");
                Ok(())
            }
            Err(InsertError::Duplicate) => Err(PayoutError::Duplicate),
            Err(InsertError::Ledger(e)) => Err(e.into()),
        }
    }

    async fn send_logged(&self, row: PayoutRow) {
        let id = row.payout_id.clone();
        if let Err(e) = self.send(row).await {
            tracing::warn!(payout = %id, error = %e, "payout attempt failed; will retry");
        }
    }

    /// One attempt to send a pending payout, and its end if the backend
    /// says how it ended.
    async fn send(&self, row: PayoutRow) -> Result<(), PayoutError> {
        let backend = self.backend()?.clone();
        {
            let mut sending = self.sending.lock().unwrap_or_else(|e| e.into_inner());
            if !sending.insert(row.payout_id.clone()) {
                return Ok(());
            }
        }
        let result = self.send_once(&backend, &row).await;
        self.sending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&row.payout_id);
        self.changed.notify();
        result
    }

    async fn send_once(
        &self,
        backend: &Arc<dyn Lightning>,
        row: &PayoutRow,
    ) -> Result<(), PayoutError> {
        let names_amount = payments::parse_invoice(&row.invoice)
            .map(|p| p.amount.is_some())
            .unwrap_or(true);
        let amount = (!names_amount).then_some(row.amount_msat);
        match backend.pay_invoice(&row.invoice, amount).await {
            Ok(sent) => {
                let proof_ok = hex::decode(&sent.preimage)
                    .is_ok_and(|p| hex::encode(Sha256::digest(p)) == row.payment_hash);
                if !proof_ok {
                    // Not proof of payment: keep it pending, ask again.
                    self.retry(row, "the backend's preimage does not match the invoice")
                        .await?;
                    return Ok(());
                }
                let verified = match &row.verify_url {
                    Some(url) => Some(
                        lnurl::verify(&self.http, url, &row.payment_hash)
                            .await
                            .unwrap_or(false),
                    ),
                    None => None,
                };
                self.succeeded(row, &sent.preimage, sent.fee, verified)
                    .await
            }
            Err(e @ (LightningError::PaymentFailed(_) | LightningError::InvalidInvoice(_))) => {
                self.failed(row, &e.to_string()).await
            }
            Err(e) => {
                self.retry(row, &e.to_string()).await?;
                Ok(())
            }
        }
    }

    async fn retry(&self, row: &PayoutRow, error: &str) -> Result<(), PayoutError> {
        let wait = backoff(RETRY_FIRST, RETRY_MAX, row.attempts);
        self.store
            .retry_later(&row.payout_id, UnixMillis::now().plus(wait), error)
            .await?;
        Ok(())
    }

    async fn succeeded(
        &self,
        row: &PayoutRow,
        preimage: &str,
        fee: MilliSats,
        verified: Option<bool>,
    ) -> Result<(), PayoutError> {
        let now = UnixMillis::now();
        let reserved = MilliSats(row.amount_msat.0 + row.fee_reserve_msat.0);
        let paid = MilliSats(row.amount_msat.0 + fee.0);
        let end =
            Movement::payout_settled(&row.payout_id, reserved, paid, Self::source_book(row)?, now);
        let mut patch = json!({
            "status": PaymentStatus::Succeeded,
            "preimage": preimage,
            "fee_msat": fee,
            "finished_at": now,
            "attempts": row.attempts + 1,
        });
        if let Some(v) = verified {
            patch["verified"] = json!(v);
        }
        let applied = {
            let _locked = self.ledger.lock(&[&end]).await;
            self.store.finish(&row.payout_id, patch, &end).await?
        };
        if applied == Applied::Moved {
            tracing::info!(payout = %row.payout_id, amount_msat = row.amount_msat.0, fee_msat = fee.0, ?verified, "payout sent");
            if let (true, Some(account)) = (row.automatic, &row.account) {
                self.store.back_off(account, 0, UnixMillis(0)).await?;
            }
        }
        Ok(())
    }

    async fn failed(&self, row: &PayoutRow, error: &str) -> Result<(), PayoutError> {
        let now = UnixMillis::now();
        let reserved = MilliSats(row.amount_msat.0 + row.fee_reserve_msat.0);
        let end = Movement::payout_failed(&row.payout_id, Self::source_book(row)?, reserved, now);
        let patch = json!({
            "status": PaymentStatus::Failed,
            "error": error,
            "finished_at": now,
            "attempts": row.attempts + 1,
        });
        let applied = {
            let _locked = self.ledger.lock(&[&end]).await;
            self.store.finish(&row.payout_id, patch, &end).await?
        };
        if applied == Applied::Moved {
            tracing::warn!(payout = %row.payout_id, error, "payout failed; its money is back");
            if let (true, Some(account)) = (row.automatic, &row.account) {
                let failures = self.store.failures(account).await?.saturating_add(1);
                let wait = backoff(AUTO_BACKOFF_FIRST, AUTO_BACKOFF_MAX, failures);
                self.store
                    .back_off(account, failures, now.plus(wait))
                    .await?;
            }
        }
        Ok(())
    }

    /// One of `account`'s payouts; with `wait`, a pending one is returned
    /// as soon as it ends, or when `wait` is over.
    pub(crate) async fn get(
        &self,
        account: &AccountId,
        id: &str,
        wait: Option<Duration>,
    ) -> Result<Payout, PayoutError> {
        let row = self
            .changed
            .read_until_settled(
                wait,
                || async {
                    self.store
                        .get(account, id)
                        .await?
                        .ok_or_else(|| PayoutError::NotFound(id.to_owned()))
                },
                |row: &PayoutRow| row.status,
            )
            .await?;
        Ok(row.to_wire())
    }

    pub(crate) async fn list(
        &self,
        account: &AccountId,
        limit: u32,
    ) -> Result<Vec<Payout>, PayoutError> {
        Ok(self
            .store
            .list(account, limit)
            .await?
            .iter()
            .map(PayoutRow::to_wire)
            .collect())
    }

    pub(crate) async fn settings(
        &self,
        account: &AccountId,
    ) -> Result<PayoutSettings, PayoutError> {
        Ok(self.store.settings(account).await?)
    }

    /// Sets where and when earnings are paid out by themselves. The
    /// address is checked (its service is asked what it accepts).
    pub(crate) async fn set_settings(
        &self,
        account: &AccountId,
        settings: PayoutSettings,
    ) -> Result<PayoutSettings, PayoutError> {
        if let Some(address) = &settings.address {
            lnurl::address_url(address)?;
        }
        match settings.threshold_msat {
            Some(t) if t.0 < MIN_PAYOUT + MIN_FEE_RESERVE || t.0 > MAX_PAYOUT => {
                return Err(PayoutError::BadRequest(format!(
                    "threshold_msat must be {} to {MAX_PAYOUT}",
                    MIN_PAYOUT + MIN_FEE_RESERVE
                )))
            }
            Some(_) if settings.address.is_none() => {
                return Err(PayoutError::BadRequest(
                    "automatic payouts need an address".into(),
                ))
            }
            _ => {}
        }
        if settings.address.is_some() || settings.threshold_msat.is_some() {
            self.backend()?;
        }
        self.store.set_settings(account, &settings).await?;
        Ok(settings)
    }

    /// Sends due retries and starts automatic payouts; once.
    pub(crate) async fn tick(&self, now: UnixMillis) -> Result<(), PayoutError> {
        self.backend()?;
        for row in self.store.due(now, 100).await? {
            self.send_logged(row).await;
        }
        for due in self.store.due_settings(now, 100).await? {
            if self.store.automatic_pending(&due.account).await? {
                continue;
            }
            let earnings = self
                .ledger
                .book_balance(&Book::Earnings(due.account.clone()))
                .await?;
            let earnings = u64::try_from(earnings).unwrap_or(0);
            if earnings < due.threshold_msat.0 {
                continue;
            }
            let Some(amount) = largest_payout(earnings) else {
                continue;
            };
            let new = NewPayout {
                from: PayoutSource::Earnings,
                amount_msat: Some(amount),
                invoice: None,
                address: Some(due.address.clone()),
            };
            let prepared = match self
                .prepare(Payer::Account(due.account.clone()), new, true)
                .await
            {
                Ok(row) => row,
                Err(e) => {
                    let failures = due.failures.saturating_add(1);
                    let wait = backoff(AUTO_BACKOFF_FIRST, AUTO_BACKOFF_MAX, failures);
                    tracing::warn!(account = %due.account, error = %e, ?wait, "automatic payout could not start");
                    self.store
                        .back_off(&due.account, failures, now.plus(wait))
                        .await?;
                    continue;
                }
            };
            match self.record(&prepared).await {
                Ok(()) => self.send_logged(prepared).await,
                // Spent meanwhile: next round.
                Err(PayoutError::Ledger(LedgerError::InsufficientFunds(_))) => {}
                Err(e) => return Err(e),
            }
        }
        self.pay_nodes(now).await
    }

    /// Pays out unenrolled nodes' pending earnings over the threshold to
    /// their signed payout addresses, backing off after failures.
    async fn pay_nodes(&self, now: UnixMillis) -> Result<(), PayoutError> {
        let Some((registry, threshold)) = &self.nodes else {
            return Ok(());
        };
        let day_ago = UnixMillis(now.0.saturating_sub(24 * 3600 * 1000));
        for (node, address) in registry.payout_addresses().await? {
            let pending = self.ledger.book_balance(&Book::Pending(node)).await?;
            let pending = u64::try_from(pending).unwrap_or(0);
            if pending < threshold.0 {
                continue;
            }
            let (latest, failed) = self.store.node_history(&node, day_ago).await?;
            if let Some(latest) = latest {
                let waiting = match latest.status {
                    PaymentStatus::Pending => true,
                    PaymentStatus::Failed => {
                        let wait = backoff(AUTO_BACKOFF_FIRST, AUTO_BACKOFF_MAX, failed);
                        latest.finished_at.unwrap_or(now).plus(wait) > now
                    }
                    _ => false,
                };
                if waiting {
                    continue;
                }
            }
            let Some(amount) = largest_payout(pending) else {
                continue;
            };
            let new = NewPayout {
                from: PayoutSource::Earnings,
                amount_msat: Some(amount),
                invoice: None,
                address: Some(address),
            };
            match self.prepare(Payer::Node(node), new, true).await {
                Ok(row) => match self.record(&row).await {
                    Ok(()) => self.send_logged(row).await,
                    Err(PayoutError::Ledger(LedgerError::InsufficientFunds(_))) => {}
                    Err(e) => return Err(e),
                },
                Err(e) => tracing::warn!(%node, error = %e, "node payout could not start"),
            }
        }
        Ok(())
    }

    /// Runs [`Payouts::tick`] every `every` for as long as the server runs.
    pub(crate) async fn follow(self, every: Duration) {
        if self.lightning.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.tick(UnixMillis::now()).await {
                tracing::warn!(error = %e, "payout round failed; will retry");
            }
        }
    }
}

fn check_amount(amount: MilliSats) -> Result<(), PayoutError> {
    if amount.0 < MIN_PAYOUT || amount.0 > MAX_PAYOUT {
        return Err(PayoutError::BadRequest(format!(
            "payouts are {MIN_PAYOUT} to {MAX_PAYOUT} msat"
        )));
    }
    if !amount.0.is_multiple_of(1000) {
        return Err(PayoutError::BadRequest(
            "payouts are whole satoshis (a multiple of 1000 msat)".into(),
        ));
    }
    Ok(())
}
