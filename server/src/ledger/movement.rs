//! Books and movements: what money moves where, as values. Every way money
//! moves is one constructor here, so each one's postings and idempotency
//! key are decided in one place.

use serde_json::json;
use wire::billing::{BookKind, MovementKind};
use wire::{AccountId, JobId, MilliSats, NodeId, UnixMillis};

use super::{fee_of, LedgerError};

/// One book of the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Book {
    Balance(AccountId),
    Earnings(AccountId),
    /// Earnings of a node that no operator has enrolled yet.
    Pending(NodeId),
    Escrow {
        job: JobId,
        owner: AccountId,
    },
    /// A payout or withdrawal in flight.
    Payout {
        id: String,
        owner: Option<AccountId>,
    },
    Fees,
    /// Lightning: money entering (negative) or leaving (positive).
    Lightning,
    /// Credit the server's operator granted.
    Grants,
    /// What checking nodes costs the platform (see `crate::verify`).
    Checks,
}

impl Book {
    pub(crate) fn key(&self) -> String {
        match self {
            Book::Balance(a) => format!("balance:{a}"),
            Book::Earnings(a) => format!("earnings:{a}"),
            Book::Pending(n) => format!("pending:{n}"),
            Book::Escrow { job, .. } => format!("escrow:{job}"),
            Book::Payout { id, .. } => format!("payout:{id}"),
            Book::Fees => "fees".into(),
            Book::Lightning => "lightning".into(),
            Book::Grants => "grants".into(),
            Book::Checks => "checks".into(),
        }
    }

    pub(crate) fn kind(&self) -> BookKind {
        match self {
            Book::Balance(_) => BookKind::Balance,
            Book::Earnings(_) => BookKind::Earnings,
            Book::Pending(_) => BookKind::Pending,
            Book::Escrow { .. } => BookKind::Escrow,
            Book::Payout { .. } => BookKind::Payout,
            Book::Fees => BookKind::Fees,
            Book::Lightning => BookKind::Lightning,
            Book::Grants => BookKind::Grants,
            Book::Checks => BookKind::Checks,
        }
    }

    fn owner(&self) -> Option<&AccountId> {
        match self {
            Book::Balance(a) | Book::Earnings(a) | Book::Escrow { owner: a, .. } => Some(a),
            Book::Payout { owner, .. } => owner.as_ref(),
            Book::Pending(_) | Book::Fees | Book::Lightning | Book::Grants | Book::Checks => None,
        }
    }

    /// The world outside the ledger may go negative; no book inside may.
    fn overdraft(&self) -> bool {
        matches!(self, Book::Lightning | Book::Grants | Book::Checks)
    }

    /// Books that every job or payment would write keep no running
    /// balance (concurrent transactions would all collide on that one
    /// row): theirs is the sum of their postings. None of them is ever
    /// spent from by a movement that needs its balance checked.
    pub(crate) fn shared(&self) -> bool {
        matches!(
            self,
            Book::Lightning | Book::Grants | Book::Fees | Book::Checks
        )
    }
}

/// Who a job's price goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Payee {
    /// The node's operator.
    Operator(AccountId),
    /// Nobody has enrolled the node yet: it earns into its pending book.
    Node(NodeId),
}

/// Postings that sum to zero, under an idempotency key.
#[derive(Debug, Clone)]
pub(crate) struct Movement {
    pub(crate) key: String,
    pub(crate) kind: MovementKind,
    pub(crate) at: UnixMillis,
    pub(crate) job_id: Option<JobId>,
    pub(crate) payment_id: Option<String>,
    pub(crate) memo: Option<String>,
    postings: Vec<(Book, i64)>,
}

/// An amount as a signed posting; amounts beyond `i64` are refused long
/// before (inputs are bounded), so saturating is only a guard.
fn signed(m: MilliSats) -> i64 {
    i64::try_from(m.0).unwrap_or(i64::MAX)
}

impl Movement {
    fn new(key: String, kind: MovementKind, at: UnixMillis) -> Self {
        Movement {
            key,
            kind,
            at,
            job_id: None,
            payment_id: None,
            memo: None,
            postings: Vec::new(),
        }
    }

    fn post(mut self, book: Book, amount: i64) -> Self {
        if amount != 0 {
            self.postings.push((book, amount));
        }
        self
    }

    /// The key that settles a job: its charge and its release share it,
    /// so a job is settled exactly once, whichever comes first.
    pub(crate) fn settle_key(job: &JobId) -> String {
        format!("settle:{job}")
    }

    /// Holds a job's budget from its owner's balance before it runs.
    pub(crate) fn hold(job: &JobId, owner: &AccountId, budget: MilliSats, at: UnixMillis) -> Self {
        let escrow = Book::Escrow {
            job: job.clone(),
            owner: owner.clone(),
        };
        let mut m = Movement::new(format!("hold:{job}"), MovementKind::Hold, at)
            .post(Book::Balance(owner.clone()), -signed(budget))
            .post(escrow, signed(budget));
        m.job_id = Some(job.clone());
        m
    }

    /// Charges a finished job's price from its hold: the price (less the
    /// platform's fee) to the payee, the fee to the platform, the rest of
    /// the hold back to the owner. A price above the hold is refused
    /// (receipts are checked against the budget before this).
    pub(crate) fn charge(
        job: &JobId,
        owner: &AccountId,
        held: MilliSats,
        price: MilliSats,
        payee: &Payee,
        fee_bps: u32,
        at: UnixMillis,
    ) -> Result<Self, LedgerError> {
        if price > held {
            return Err(LedgerError::Unbalanced(format!(
                "job {job} costs {price:?}, more than the {held:?} held"
            )));
        }
        let fee = fee_of(price, fee_bps);
        let earned = MilliSats(price.0 - fee.0);
        let to = match payee {
            Payee::Operator(a) => Book::Earnings(a.clone()),
            Payee::Node(n) => Book::Pending(*n),
        };
        let mut m = Movement::new(Self::settle_key(job), MovementKind::Charge, at)
            .post(
                Book::Escrow {
                    job: job.clone(),
                    owner: owner.clone(),
                },
                -signed(held),
            )
            .post(to, signed(earned))
            .post(Book::Fees, signed(fee))
            .post(Book::Balance(owner.clone()), signed(held) - signed(price));
        m.job_id = Some(job.clone());
        Ok(m)
    }

    /// Releases a job's whole hold back to its owner.
    pub(crate) fn release(job: &JobId, owner: &AccountId, held: MilliSats, at: UnixMillis) -> Self {
        let mut m = Movement::new(Self::settle_key(job), MovementKind::Release, at)
            .post(
                Book::Escrow {
                    job: job.clone(),
                    owner: owner.clone(),
                },
                -signed(held),
            )
            .post(Book::Balance(owner.clone()), signed(held));
        m.job_id = Some(job.clone());
        m
    }

    /// Credit granted by the server's operator.
    pub(crate) fn credit(
        account: &AccountId,
        amount: MilliSats,
        key: &str,
        at: UnixMillis,
        memo: Option<String>,
    ) -> Self {
        let mut m = Movement::new(format!("credit:{account}:{key}"), MovementKind::Credit, at)
            .post(Book::Grants, -signed(amount))
            .post(Book::Balance(account.clone()), signed(amount));
        m.memo = memo;
        m
    }

    /// A check job's price, paid by the platform: to the payee less the
    /// fee, as a consumer's job pays.
    pub(crate) fn check(
        job: &JobId,
        payee: &Payee,
        price: MilliSats,
        fee_bps: u32,
        at: UnixMillis,
    ) -> Self {
        let fee = fee_of(price, fee_bps);
        let to = match payee {
            Payee::Operator(a) => Book::Earnings(a.clone()),
            Payee::Node(n) => Book::Pending(*n),
        };
        let mut m = Movement::new(format!("check:{job}"), MovementKind::Check, at)
            .post(Book::Checks, -signed(price))
            .post(to, signed(price) - signed(fee))
            .post(Book::Fees, signed(fee));
        m.job_id = Some(job.clone());
        m
    }

    /// A job's price back to its owner: its node was caught answering
    /// wrong. The platform pays (and claws back what it can).
    pub(crate) fn refund(job: &JobId, owner: &AccountId, price: MilliSats, at: UnixMillis) -> Self {
        let mut m = Movement::new(format!("refund:{job}"), MovementKind::Refund, at)
            .post(Book::Checks, -signed(price))
            .post(Book::Balance(owner.clone()), signed(price));
        m.job_id = Some(job.clone());
        m.memo = Some("refunded: the node that ran it was caught answering wrong".into());
        m
    }

    /// Earnings of a caught node taken back from `from`, once per `key`.
    pub(crate) fn clawback(key: &str, from: Book, amount: i64, at: UnixMillis) -> Self {
        let mut m = Movement::new(format!("clawback:{key}"), MovementKind::Clawback, at)
            .post(from, -amount)
            .post(Book::Checks, amount);
        m.memo = Some("earnings of jobs refunded after a ban".into());
        m
    }

    /// A paid top-up invoice: Lightning into the account's balance.
    pub(crate) fn topup(
        account: &AccountId,
        payment_id: &str,
        amount: MilliSats,
        at: UnixMillis,
    ) -> Self {
        let mut m = Movement::new(format!("topup:{payment_id}"), MovementKind::Topup, at)
            .post(Book::Lightning, -signed(amount))
            .post(Book::Balance(account.clone()), signed(amount));
        m.payment_id = Some(payment_id.to_owned());
        m
    }

    /// A node's pending earnings to its new operator.
    pub(crate) fn claim(node: &NodeId, account: &AccountId, amount: i64, at: UnixMillis) -> Self {
        let key = format!("claim:{node}:{}", uuid::Uuid::new_v4().simple());
        let mut m = Movement::new(key, MovementKind::Claim, at)
            .post(Book::Pending(*node), -amount)
            .post(Book::Earnings(account.clone()), amount);
        m.memo = Some(format!("earned by {node} before it was enrolled"));
        m
    }

    /// Money leaving `from` for a payout in flight.
    pub(crate) fn payout(from: Book, payment_id: &str, amount: MilliSats, at: UnixMillis) -> Self {
        let owner = from.owner().cloned();
        let mut m = Movement::new(format!("payout:{payment_id}"), MovementKind::Payout, at)
            .post(from, -signed(amount))
            .post(
                Book::Payout {
                    id: payment_id.to_owned(),
                    owner,
                },
                signed(amount),
            );
        m.payment_id = Some(payment_id.to_owned());
        m
    }

    /// A payout Lightning confirmed: what it cost (`paid`: the amount and
    /// the routing fee) leaves the ledger, and the rest of what was
    /// `reserved` for it returns to `back_to`. A fee beyond the reserve
    /// is the platform's cost.
    pub(crate) fn payout_settled(
        payment_id: &str,
        reserved: MilliSats,
        paid: MilliSats,
        back_to: Book,
        at: UnixMillis,
    ) -> Self {
        let owner = back_to.owner().cloned();
        let (reserved, paid) = (signed(reserved), signed(paid));
        let mut m = Movement::new(
            format!("payout-end:{payment_id}"),
            MovementKind::PayoutSettled,
            at,
        )
        .post(
            Book::Payout {
                id: payment_id.to_owned(),
                owner,
            },
            -reserved,
        )
        .post(Book::Lightning, paid)
        .post(back_to, reserved - paid.min(reserved))
        .post(Book::Fees, -(paid - reserved).max(0));
        m.payment_id = Some(payment_id.to_owned());
        m
    }

    /// A payout that failed: its money back where it came from. Shares its
    /// key with [`Movement::payout_settled`]: a payout ends once.
    pub(crate) fn payout_failed(
        payment_id: &str,
        back_to: Book,
        amount: MilliSats,
        at: UnixMillis,
    ) -> Self {
        let owner = back_to.owner().cloned();
        let mut m = Movement::new(
            format!("payout-end:{payment_id}"),
            MovementKind::PayoutFailed,
            at,
        )
        .post(
            Book::Payout {
                id: payment_id.to_owned(),
                owner,
            },
            -signed(amount),
        )
        .post(back_to, signed(amount));
        m.payment_id = Some(payment_id.to_owned());
        m
    }

    /// The books it changes.
    pub(crate) fn books(&self) -> impl Iterator<Item = &Book> {
        self.postings.iter().map(|(b, _)| b)
    }

    /// Its postings: each book and the signed amount into it.
    #[cfg(test)]
    pub(crate) fn postings(&self) -> &[(Book, i64)] {
        &self.postings
    }

    /// The movement as `fn::ledger_move` takes it; refused unless its
    /// postings sum to zero.
    pub(crate) fn to_json(&self) -> Result<serde_json::Value, LedgerError> {
        let sum = self
            .postings
            .iter()
            .try_fold(0i64, |acc, (_, a)| acc.checked_add(*a));
        if sum != Some(0) {
            return Err(LedgerError::Unbalanced(self.key.clone()));
        }
        let postings: Vec<_> = self
            .postings
            .iter()
            .enumerate()
            .map(|(seq, (book, amount))| {
                without_nulls(json!({
                    "seq": seq,
                    "book": book.key(),
                    "book_kind": book.kind().as_str(),
                    "owner": book.owner(),
                    "amount": amount,
                    "overdraft": book.overdraft(),
                    "shared": book.shared(),
                }))
            })
            .collect();
        Ok(without_nulls(json!({
            "key": self.key,
            "kind": self.kind.as_str(),
            "at": self.at,
            "job_id": self.job_id,
            "payment_id": self.payment_id,
            "memo": self.memo,
            "postings": postings,
        })))
    }
}

/// SurrealDB takes JSON `null` as NULL, which an `option<…>` field refuses:
/// a missing value must be left out to be NONE.
fn without_nulls(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(map) = v.as_object_mut() {
        map.retain(|_, value| !value.is_null());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(n: u8) -> AccountId {
        AccountId::from_random([n; 16])
    }

    fn sum(m: &Movement) -> i64 {
        m.postings.iter().map(|(_, a)| a).sum()
    }

    #[test]
    fn a_charge_splits_the_hold_between_payee_fee_and_refund() {
        let job = JobId::from_random([1; 16]);
        let m = Movement::charge(
            &job,
            &acct(1),
            MilliSats(10_000),
            MilliSats(3_333),
            &Payee::Operator(acct(2)),
            250,
            UnixMillis(5),
        )
        .unwrap();
        assert_eq!(sum(&m), 0);
        let by_book: Vec<(String, i64)> = m.postings.iter().map(|(b, a)| (b.key(), *a)).collect();
        assert_eq!(
            by_book,
            vec![
                (format!("escrow:{job}"), -10_000),
                (format!("earnings:{}", acct(2)), 3_250),
                ("fees".into(), 83),
                (format!("balance:{}", acct(1)), 6_667),
            ]
        );
        assert_eq!(m.key, Movement::settle_key(&job));
        let release = Movement::release(&job, &acct(1), MilliSats(10_000), UnixMillis(5));
        assert_eq!(release.key, m.key, "a job settles once");
    }

    #[test]
    fn checks_are_paid_refunds_and_clawbacks_go_through_the_checks_book_once_each() {
        let job = JobId::from_random([2; 16]);
        let node = testkit::fixtures::node_id(3);
        let keyed = |m: &Movement| -> Vec<(String, i64)> {
            m.postings.iter().map(|(b, a)| (b.key(), *a)).collect()
        };
        // A check job pays its node as a consumer's job would.
        let paid = Movement::check(
            &job,
            &Payee::Node(node),
            MilliSats(1_000),
            250,
            UnixMillis(1),
        );
        assert_eq!(sum(&paid), 0);
        assert_eq!(
            keyed(&paid),
            vec![
                ("checks".into(), -1_000),
                (format!("pending:{node}"), 975),
                ("fees".into(), 25),
            ]
        );
        assert_eq!(paid.key, format!("check:{job}"));
        let refund = Movement::refund(&job, &acct(1), MilliSats(1_000), UnixMillis(2));
        assert_eq!(sum(&refund), 0);
        assert_eq!(
            keyed(&refund),
            vec![
                ("checks".into(), -1_000),
                (format!("balance:{}", acct(1)), 1_000)
            ]
        );
        // Its own key: a job's settle and its refund are different movements.
        assert_eq!(refund.key, format!("refund:{job}"));
        let back = Movement::clawback("n:m", Book::Earnings(acct(2)), 975, UnixMillis(3));
        assert_eq!(sum(&back), 0);
        assert_eq!(back.key, "clawback:n:m");
        // The checks book is the world's: it may go negative and keeps no row.
        assert!(Book::Checks.overdraft() && Book::Checks.shared());
    }

    #[test]
    fn a_charge_above_the_hold_is_refused() {
        let job = JobId::from_random([1; 16]);
        assert!(matches!(
            Movement::charge(
                &job,
                &acct(1),
                MilliSats(10),
                MilliSats(11),
                &Payee::Node(testkit::fixtures::node_id(1)),
                0,
                UnixMillis(5),
            ),
            Err(LedgerError::Unbalanced(_))
        ));
    }

    #[test]
    fn zero_postings_are_left_out_and_unbalanced_movements_refused() {
        let job = JobId::from_random([1; 16]);
        let m = Movement::charge(
            &job,
            &acct(1),
            MilliSats(100),
            MilliSats(100),
            &Payee::Node(testkit::fixtures::node_id(1)),
            0,
            UnixMillis(5),
        )
        .unwrap();
        assert_eq!(m.postings.len(), 2, "no fee, nothing back");
        let bad = Movement::new("x".into(), MovementKind::Credit, UnixMillis(1))
            .post(Book::Fees, 5)
            .post(Book::Grants, -4);
        assert!(matches!(bad.to_json(), Err(LedgerError::Unbalanced(_))));
    }
}
