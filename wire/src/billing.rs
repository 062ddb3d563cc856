//! Money as the billing API shows it: an account's balances, its ledger
//! history, top-ups and payouts. Amounts are integer millisatoshis; a
//! posting's amount is signed (money into the book is positive).

use serde::{Deserialize, Serialize};

use crate::{JobId, MilliSats, UnixMillis};

/// `GET /api/v1/billing`: where an account's money is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BillingSummary {
    /// What the account may spend on jobs or withdraw.
    pub balance_msat: MilliSats,
    /// Held for jobs that are running: released or charged when they end.
    pub held_msat: MilliSats,
    /// What the account's nodes earned and is not yet paid out.
    pub earnings_msat: MilliSats,
    /// Everything its nodes ever earned.
    pub earned_total_msat: MilliSats,
    /// Everything paid out or withdrawn over Lightning.
    pub paid_out_msat: MilliSats,
    /// Everything topped up (Lightning and credit).
    pub topped_up_msat: MilliSats,
    /// Everything its jobs cost.
    pub spent_msat: MilliSats,
    /// Payouts or withdrawals on their way (Lightning in flight).
    pub in_flight_msat: MilliSats,
    /// The platform's fee on earnings, in basis points (100 = 1 %).
    pub fee_bps: u32,
    /// Whether this server can take Lightning top-ups.
    pub lightning: bool,
    /// Which Lightning network it takes them on: `bitcoin`, `signet` or
    /// `regtest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lightning_network: Option<String>,
}

/// Which of an account's books a posting changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BookKind {
    /// Spendable balance.
    Balance,
    /// Money held for a running job.
    Escrow,
    /// A node operator's earnings.
    Earnings,
    /// A payout or withdrawal in flight.
    Payout,
    /// A top-up invoice being paid.
    Topup,
    /// Earnings of a node that no operator has enrolled yet.
    Pending,
    /// The platform's fees.
    Fees,
    /// Lightning: money entering or leaving the ledger.
    Lightning,
    /// Credit granted by the operator of the server.
    Grants,
    /// What checking nodes costs the platform: canary and second-opinion
    /// jobs, refunds of jobs a caught node ran, less what is clawed back.
    Checks,
}

impl BookKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BookKind::Balance => "balance",
            BookKind::Escrow => "escrow",
            BookKind::Earnings => "earnings",
            BookKind::Payout => "payout",
            BookKind::Topup => "topup",
            BookKind::Pending => "pending",
            BookKind::Fees => "fees",
            BookKind::Lightning => "lightning",
            BookKind::Grants => "grants",
            BookKind::Checks => "checks",
        }
    }
}

/// What a movement of money was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    /// A paid Lightning top-up.
    Topup,
    /// Credit granted by the server's operator.
    Credit,
    /// A job's budget held before it ran.
    Hold,
    /// A job's price charged from its hold, the rest released.
    Charge,
    /// A job's whole hold released (it failed or was refused).
    Release,
    /// A node's pending earnings moved to its new operator.
    Claim,
    /// Money leaving for a Lightning payout or withdrawal.
    Payout,
    /// A payout that Lightning confirmed.
    PayoutSettled,
    /// A payout that failed: its money back.
    PayoutFailed,
    /// A check job (a canary, a second opinion) paid by the platform.
    Check,
    /// A job refunded: its node was caught answering wrong.
    Refund,
    /// A caught node's earnings taken back.
    Clawback,
}

impl MovementKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MovementKind::Topup => "topup",
            MovementKind::Credit => "credit",
            MovementKind::Hold => "hold",
            MovementKind::Charge => "charge",
            MovementKind::Release => "release",
            MovementKind::Claim => "claim",
            MovementKind::Payout => "payout",
            MovementKind::PayoutSettled => "payout_settled",
            MovementKind::PayoutFailed => "payout_failed",
            MovementKind::Check => "check",
            MovementKind::Refund => "refund",
            MovementKind::Clawback => "clawback",
        }
    }
}

/// One line of an account's history: a change of one of its books.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Posting {
    /// Opaque, stable: the movement's key and the posting's place in it.
    pub id: String,
    pub at: UnixMillis,
    pub kind: MovementKind,
    pub book: BookKind,
    /// Signed: positive into the book.
    pub amount_msat: i64,
    /// The book's balance after this posting.
    pub balance_after_msat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<JobId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
}

/// `GET /api/v1/billing/history`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryPage {
    pub postings: Vec<Posting>,
    /// Pass as `before` for the next (older) page; none at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `POST /api/v1/billing/topups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewTopup {
    pub amount_msat: MilliSats,
}

/// Where a top-up or payout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Succeeded,
    Failed,
    Expired,
}

/// A top-up: a Lightning invoice that credits the account once paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Topup {
    pub id: String,
    pub amount_msat: MilliSats,
    /// BOLT11.
    pub invoice: String,
    pub payment_hash: String,
    pub status: PaymentStatus,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<UnixMillis>,
    /// The invoice as a QR code (SVG), for wallets that scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr_svg: Option<String>,
}

/// Checks a Lightning address (LUD-16): `name@domain`, with the name in
/// lower case letters, digits and `-_.+`, and a domain name (with an
/// optional port, for local services).
pub fn check_lightning_address(address: &str) -> Result<(), String> {
    let bad = || format!("`{address}` is not a Lightning address (name@domain)");
    let (name, domain) = address.split_once('@').ok_or_else(bad)?;
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.+".contains(c));
    let host = domain.split(':').next().unwrap_or_default();
    let domain_ok = !host.is_empty()
        && domain.len() <= 253
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c));
    if name_ok && domain_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Which of an account's books a payout is paid from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PayoutSource {
    /// What its nodes earned.
    #[default]
    Earnings,
    /// Its unspent balance (a withdrawal).
    Balance,
}

/// `POST /api/v1/billing/payouts`: pay out (or withdraw) to a BOLT11
/// invoice or a Lightning address. Exactly one of `invoice` and `address`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewPayout {
    #[serde(default)]
    pub from: PayoutSource,
    /// Needed for an address or an invoice that names no amount; must
    /// match an invoice that names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_msat: Option<MilliSats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice: Option<String>,
    /// A Lightning address (LUD-16), `name@domain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// A payout or withdrawal over Lightning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Payout {
    pub id: String,
    pub from: PayoutSource,
    /// What the payee gets.
    pub amount_msat: MilliSats,
    /// Held for the routing fee while it is sent; the unused part returns.
    pub fee_reserve_msat: MilliSats,
    /// The routing fee it cost, once sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_msat: Option<MilliSats>,
    /// The Lightning address it went to, if it went to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The BOLT11 invoice paid.
    pub invoice: String,
    pub payment_hash: String,
    /// Proof of payment (hex), once sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preimage: Option<String>,
    pub status: PaymentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether the payee's LNURL service confirmed it settled (LUD-21):
    /// `None` where it offers no verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// Made by the automatic payout of earnings above the threshold.
    pub automatic: bool,
    pub attempts: u32,
    pub created_at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<UnixMillis>,
}

/// `GET/PUT /api/v1/billing/payout-settings`: where and when earnings are
/// paid out automatically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PayoutSettings {
    /// The Lightning address (LUD-16) earnings go to; none: no automatic
    /// payouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Earnings are paid out once they reach this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_msat: Option<MilliSats>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialise_as_their_names() {
        for k in [
            MovementKind::Topup,
            MovementKind::Credit,
            MovementKind::Hold,
            MovementKind::Charge,
            MovementKind::Release,
            MovementKind::Claim,
            MovementKind::Payout,
            MovementKind::PayoutSettled,
            MovementKind::PayoutFailed,
            MovementKind::Check,
            MovementKind::Refund,
            MovementKind::Clawback,
        ] {
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::json!(k.as_str())
            );
        }
        for b in [
            BookKind::Balance,
            BookKind::Escrow,
            BookKind::Earnings,
            BookKind::Payout,
            BookKind::Topup,
            BookKind::Pending,
            BookKind::Fees,
            BookKind::Lightning,
            BookKind::Grants,
            BookKind::Checks,
        ] {
            assert_eq!(
                serde_json::to_value(b).unwrap(),
                serde_json::json!(b.as_str())
            );
        }
    }
}
