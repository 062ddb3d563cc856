//! Top-ups: an account asks for a Lightning invoice, anyone pays it, and
//! the account's balance is credited exactly once. The backend's payment
//! events credit a paid invoice at once; a periodic reconciliation asks the
//! backend about every unpaid one, so a missed event (a restart, a dropped
//! worker) only delays the credit. The invoice's state lives in the `topup`
//! table and the money in the ledger, never only in the backend.
//!
//! - `store`: the `topup` table;
//! - `http`: `POST/GET /api/v1/billing/topups`.

mod http;
mod store;
#[cfg(test)]
mod tests;

pub(crate) use http::router;

use std::sync::Arc;
use std::time::Duration;

use payments::{InvoiceState, Lightning, LightningError, LightningEvent};
use qrcode::render::svg;
use qrcode::QrCode;
use tokio::sync::broadcast;
use wire::billing::{PaymentStatus, Topup};
use wire::{AccountId, MilliSats, UnixMillis};

use crate::db::{Db, DbError};
use crate::ledger::{Applied, Ledger, LedgerError, Movement};
use crate::lightning::PaymentChanges;
use store::{TopupRow, TopupStore};

/// The smallest and largest top-up, in millisatoshis (1 sat to 0.1 BTC).
pub(crate) const MIN_TOPUP: u64 = 1_000;
pub(crate) const MAX_TOPUP: u64 = 10_000_000_000;
/// How long a top-up invoice can be paid.
const EXPIRY_SECS: u32 = 3600;
/// Unpaid, unexpired invoices an account may hold at once.
const MAX_OPEN: usize = 20;
/// How far back the reconciliation looks for unpaid invoices.
const RECONCILE_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long after its expiry an invoice the backend still calls pending
/// (Breez keeps no record of an unpaid one) is marked expired: a payment
/// in flight at the deadline has settled by then.
const EXPIRY_GRACE: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub(crate) enum TopupError {
    #[error("this server takes no Lightning top-ups; its operator can grant credit")]
    Disabled,
    #[error("{0}")]
    BadRequest(String),
    #[error("top-up {0} not found")]
    NotFound(String),
    #[error("{0} top-up invoices are waiting to be paid: pay one or let them expire first")]
    TooManyOpen(usize),
    #[error(transparent)]
    Lightning(#[from] LightningError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Store(#[from] DbError),
}

/// What one round of reconciliation did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reconciled {
    pub(crate) credited: usize,
    pub(crate) expired: usize,
}

/// Cheap to clone.
#[derive(Clone)]
pub(crate) struct Topups {
    store: TopupStore,
    ledger: Ledger,
    lightning: Option<Arc<dyn Lightning>>,
    /// Woken whenever a top-up changes: callers waiting on one look again.
    changed: PaymentChanges,
    /// How long an invoice can be paid.
    expiry_secs: u32,
}

impl Topups {
    pub(crate) fn new(db: Db, ledger: Ledger, lightning: Option<Arc<dyn Lightning>>) -> Self {
        Topups {
            store: TopupStore::new(db),
            ledger,
            lightning,
            changed: PaymentChanges::default(),
            expiry_secs: EXPIRY_SECS,
        }
    }

    #[cfg(test)]
    fn with_expiry(mut self, secs: u32) -> Self {
        self.expiry_secs = secs;
        self
    }

    fn backend(&self) -> Result<&Arc<dyn Lightning>, TopupError> {
        self.lightning.as_ref().ok_or(TopupError::Disabled)
    }

    /// Issues an invoice for `amount` that credits `account` once paid.
    pub(crate) async fn create(
        &self,
        account: &AccountId,
        amount: MilliSats,
    ) -> Result<Topup, TopupError> {
        let backend = self.backend()?;
        if amount.0 < MIN_TOPUP || amount.0 > MAX_TOPUP {
            return Err(TopupError::BadRequest(format!(
                "amount_msat must be {MIN_TOPUP} to {MAX_TOPUP} (1 sat to 0.1 BTC)"
            )));
        }
        if !amount.0.is_multiple_of(1000) {
            return Err(TopupError::BadRequest(
                "amount_msat must be whole satoshis (a multiple of 1000)".into(),
            ));
        }
        let now = UnixMillis::now();
        let open = self.store.open_count(account, now).await?;
        if open >= MAX_OPEN {
            return Err(TopupError::TooManyOpen(open));
        }
        let topup_id = format!("top_{}", uuid::Uuid::new_v4().simple());
        let invoice = backend
            .create_invoice(
                amount,
                &format!("Infernet top-up {topup_id}"),
                self.expiry_secs,
            )
            .await?;
        let row = TopupRow {
            topup_id,
            account: account.clone(),
            amount_msat: amount,
            invoice: invoice.bolt11,
            payment_hash: invoice.payment_hash,
            status: PaymentStatus::Pending,
            created_at: now,
            expires_at: invoice.expires_at,
            paid_at: None,
            received_msat: None,
        };
        self.store.insert(&row).await?;
        tracing::info!(topup = %row.topup_id, %account, amount_msat = amount.0, "top-up invoice issued");
        with_qr(row.to_wire())
    }

    /// One of `account`'s top-ups (with its QR code). With `wait`, a
    /// pending one is returned as soon as it changes, or when `wait` ends.
    pub(crate) async fn get(
        &self,
        account: &AccountId,
        id: &str,
        wait: Option<Duration>,
    ) -> Result<Topup, TopupError> {
        let row = self
            .changed
            .read_until_settled(
                wait,
                || async {
                    self.store
                        .get(account, id)
                        .await?
                        .ok_or_else(|| TopupError::NotFound(id.to_owned()))
                },
                |row: &TopupRow| row.status,
            )
            .await?;
        with_qr(row.to_wire())
    }

    /// `account`'s top-ups, newest first.
    pub(crate) async fn list(
        &self,
        account: &AccountId,
        limit: u32,
    ) -> Result<Vec<Topup>, TopupError> {
        Ok(self
            .store
            .list(account, limit)
            .await?
            .iter()
            .map(TopupRow::to_wire)
            .collect())
    }

    /// The invoice with `payment_hash` was paid `amount`: credits its
    /// account once. `None` if no top-up issued it.
    pub(crate) async fn paid(
        &self,
        payment_hash: &str,
        amount: MilliSats,
        at: UnixMillis,
    ) -> Result<Option<Applied>, TopupError> {
        let Some(row) = self.store.by_hash(payment_hash).await? else {
            return Ok(None);
        };
        if row.status == PaymentStatus::Succeeded {
            return Ok(Some(Applied::AlreadyDone));
        }
        // What arrived is what is credited (a wallet may pay more than
        // the invoice asks, never less).
        let movement = Movement::topup(&row.account, &row.topup_id, amount, at);
        let applied = {
            let _locked = self.ledger.lock(&[&movement]).await;
            self.store
                .credit(&row.topup_id, amount, at, &movement)
                .await?
        };
        if applied == Applied::Moved {
            tracing::info!(topup = %row.topup_id, account = %row.account, amount_msat = amount.0, "top-up paid and credited");
        }
        self.changed.notify();
        Ok(Some(applied))
    }

    /// Asks the backend about every unpaid top-up of the last week:
    /// credits the paid ones (whose event was missed) and marks the
    /// expired ones.
    pub(crate) async fn reconcile(&self, now: UnixMillis) -> Result<Reconciled, TopupError> {
        let backend = self.backend()?;
        let since = UnixMillis(now.0.saturating_sub(RECONCILE_WINDOW.as_millis() as u64));
        let mut done = Reconciled::default();
        for row in self.store.pending(since, 500).await? {
            match backend.invoice_state(&row.payment_hash).await {
                Ok(InvoiceState::Paid { amount, at }) => {
                    if self.paid(&row.payment_hash, amount, at).await? == Some(Applied::Moved) {
                        done.credited += 1;
                    }
                }
                Ok(InvoiceState::Expired) => {
                    self.store.expire(&row.topup_id).await?;
                    done.expired += 1;
                }
                // Unpaid (or forgotten by the backend: a wallet restored
                // elsewhere) well past its expiry: it can no longer be
                // paid. (Should a late payment still be reported, `paid`
                // credits it all the same.)
                Ok(InvoiceState::Pending) | Err(LightningError::UnknownPayment(_))
                    if row.expires_at.plus(EXPIRY_GRACE) < now =>
                {
                    self.store.expire(&row.topup_id).await?;
                    done.expired += 1;
                }
                Ok(InvoiceState::Pending) | Err(LightningError::UnknownPayment(_)) => {}
                // The backend cannot answer now: try again next round.
                Err(e) => return Err(e.into()),
            }
        }
        if done.expired > 0 {
            self.changed.notify();
        }
        Ok(done)
    }

    /// Credits invoices as the backend reports them paid, and reconciles
    /// every `every`; runs for as long as the server does.
    pub(crate) async fn follow(self, every: Duration) {
        let Some(backend) = self.lightning.clone() else {
            return;
        };
        let mut events = backend.events();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut listening = true;
        loop {
            tokio::select! {
                event = events.recv(), if listening => match event {
                    Ok(LightningEvent::InvoicePaid { payment_hash, amount }) => {
                        match self.paid(&payment_hash, amount, UnixMillis::now()).await {
                            Ok(Some(_)) => {}
                            Ok(None) => tracing::debug!(%payment_hash, "a payment for an invoice that is not a top-up"),
                            // The reconciliation will credit it.
                            Err(e) => tracing::warn!(%payment_hash, error = %e, "could not credit a paid top-up yet"),
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "missed Lightning events: reconciling now");
                        self.reconcile_logged().await;
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        tracing::warn!("the Lightning backend's events ended: reconciling only");
                        listening = false;
                    }
                },
                _ = tick.tick() => self.reconcile_logged().await,
            }
        }
    }

    async fn reconcile_logged(&self) {
        match self.reconcile(UnixMillis::now()).await {
            Ok(done) if done != Reconciled::default() => {
                tracing::info!(
                    credited = done.credited,
                    expired = done.expired,
                    "top-ups reconciled"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "top-up reconciliation failed; will retry"),
        }
    }
}

/// The invoice as a QR code a phone's wallet scans: the `lightning:` URI,
/// upper case (QR's compact alphanumeric mode).
fn with_qr(mut topup: Topup) -> Result<Topup, TopupError> {
    let uri = format!("LIGHTNING:{}", topup.invoice.to_uppercase());
    let qr = QrCode::new(uri.as_bytes())
        .map_err(|e| TopupError::BadRequest(format!("could not draw the QR code: {e}")))?;
    topup.qr_svg = Some(
        qr.render::<svg::Color<'_>>()
            .min_dimensions(240, 240)
            .quiet_zone(true)
            .build(),
    );
    Ok(topup)
}
