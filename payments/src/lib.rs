//! Lightning for Infernet: the [`Lightning`] trait through which the server
//! issues top-up invoices, learns they were paid, and pays out; kept in a
//! crate of its own so that Lightning's dependencies stay out of the
//! server's core.
//!
//! Backends: the Breez SDK (Spark) worker for the real network, and
//! [`test_backend::TestLightning`], which issues real, signed BOLT11
//! invoices and settles them when a test says so (the Lightning network
//! cannot be reached from here). Payment state lives in the server's
//! ledger, never only in a backend.

pub mod breez;
pub mod invoice;
pub mod test_backend;

use futures::future::BoxFuture;
use tokio::sync::broadcast;
use wire::{MilliSats, UnixMillis};

pub use invoice::{parse_invoice, ParsedInvoice};

/// Why a Lightning operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LightningError {
    /// The backend cannot reach the Lightning network (or its service).
    #[error("Lightning network unreachable: {0}")]
    Unreachable(String),
    /// Not a BOLT11 invoice, or one we cannot pay (wrong network, expired).
    #[error("invalid invoice: {0}")]
    InvalidInvoice(String),
    /// The payment was tried and failed (no route, refused, timed out).
    #[error("payment failed: {0}")]
    PaymentFailed(String),
    #[error("unknown payment {0}")]
    UnknownPayment(String),
    /// This server runs without Lightning.
    #[error("Lightning is not enabled on this server")]
    Disabled,
    #[error("Lightning backend: {0}")]
    Backend(String),
}

/// An invoice we issued, to be paid to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// BOLT11.
    pub bolt11: String,
    /// Hex SHA-256 of the preimage: what identifies the payment.
    pub payment_hash: String,
    pub amount: MilliSats,
    pub expires_at: UnixMillis,
}

/// Where an invoice we issued stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceState {
    Pending,
    Paid { amount: MilliSats, at: UnixMillis },
    Expired,
}

/// A payment we sent and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentPayment {
    pub payment_hash: String,
    /// Hex; the proof that the payee was paid.
    pub preimage: String,
    pub amount: MilliSats,
    pub fee: MilliSats,
}

/// What a backend tells the server as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LightningEvent {
    /// An invoice we issued was paid.
    InvoicePaid {
        payment_hash: String,
        amount: MilliSats,
    },
}

/// A Lightning wallet the server uses. Every method may be retried: an
/// invoice is identified by its payment hash, a payment by the invoice it
/// pays, so the backend (and the ledger behind it) never pays twice.
pub trait Lightning: Send + Sync + 'static {
    /// Which network: `bitcoin`, `signet`, `regtest`, or `test`.
    fn network(&self) -> &str;

    /// Issues an invoice for `amount`, valid for `expiry_secs`.
    fn create_invoice(
        &self,
        amount: MilliSats,
        description: &str,
        expiry_secs: u32,
    ) -> BoxFuture<'_, Result<Invoice, LightningError>>;

    /// Where an invoice we issued stands (the reconciliation that catches
    /// a paid invoice whose event was missed).
    fn invoice_state(
        &self,
        payment_hash: &str,
    ) -> BoxFuture<'_, Result<InvoiceState, LightningError>>;

    /// Pays a BOLT11 invoice (with `amount` for one that names none).
    fn pay_invoice(
        &self,
        bolt11: &str,
        amount: Option<MilliSats>,
    ) -> BoxFuture<'_, Result<SentPayment, LightningError>>;

    /// Events from now on.
    fn events(&self) -> broadcast::Receiver<LightningEvent>;
}
