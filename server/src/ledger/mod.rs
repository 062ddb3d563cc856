//! The ledger: double-entry bookkeeping in integer millisatoshis.
//!
//! Money lives in books (an account's spendable `balance` and `earnings`, a
//! job's `escrow`, a node's `pending` earnings before it is enrolled, a
//! payout or top-up in flight, the platform's `fees`, and `lightning` and
//! `grants`: the world outside). A [`Movement`] is a set of postings that
//! sum to zero, applied in one transaction together with whatever it
//! belongs to (a job's record, a payment's state), under an idempotency
//! key: applying the same key twice moves nothing the second time. No
//! book but the world's may go negative.
//!
//! - `movement`: books, movements and the ones jobs and payments make;
//! - `store`: the `book`, `movement` and `posting` tables;
//! - `http`: `GET /api/v1/billing`, `/billing/history` (JSON or CSV).

mod http;
mod movement;
mod store;
#[cfg(test)]
mod tests;

pub(crate) use http::router;
pub(crate) use movement::{Book, Movement, Payee};
pub(crate) use store::{move_sql, Audit};

use std::sync::Arc;

use wire::billing::{BillingSummary, HistoryPage};
use wire::{AccountId, MilliSats, NodeId, UnixMillis};

use crate::db::{Db, DbError};
use store::LedgerStore;

/// Why money did not move.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LedgerError {
    /// A book that may not go negative would have.
    #[error("insufficient funds: {0}")]
    InsufficientFunds(String),
    /// A movement whose postings do not sum to zero: a bug, refused.
    #[error("unbalanced movement {0}")]
    Unbalanced(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] DbError),
}

impl LedgerError {
    /// The ledger's own error, if `e` is the database refusing a movement
    /// inside some other module's transaction.
    pub(crate) fn from_db(e: DbError) -> Result<Applied, LedgerError> {
        let text = match &e {
            DbError::Surreal(s) => s.to_string(),
            _ => return Err(LedgerError::Store(e)),
        };
        if text.contains(store::DUPLICATE) && text.contains("movement:") {
            Ok(Applied::AlreadyDone)
        } else if let Some(at) = text.find(store::INSUFFICIENT) {
            let book = text[at + store::INSUFFICIENT.len()..]
                .split(['\'', '"', '`', ' '])
                .next()
                .unwrap_or_default();
            Err(LedgerError::InsufficientFunds(book.to_owned()))
        } else {
            Err(LedgerError::Store(e))
        }
    }
}

/// Whether a movement was applied now or had been already (same key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    Moved,
    AlreadyDone,
}

/// How many locks the books are spread over.
const STRIPES: usize = 256;

/// In-process locks over books, spread over a fixed set of stripes: a
/// movement takes the stripes of the books it changes (in order, so two
/// never wait on each other) for as long as its transaction runs. The
/// database would refuse one of two concurrent writes of a balance anyway
/// (and `Db::transact` would run it again), but a busy account (many jobs
/// at once) would then lose most of its transactions to each other; here
/// they queue instead.
pub(crate) struct BookLocks {
    stripes: Vec<Arc<tokio::sync::Mutex<()>>>,
}

/// Held while a movement's transaction runs.
pub(crate) struct BooksLocked {
    _guards: Vec<tokio::sync::OwnedMutexGuard<()>>,
}

impl BookLocks {
    fn new() -> Self {
        BookLocks {
            stripes: (0..STRIPES)
                .map(|_| Arc::new(tokio::sync::Mutex::new(())))
                .collect(),
        }
    }

    async fn lock(&self, movements: &[&Movement]) -> BooksLocked {
        let mut stripes: Vec<usize> = movements
            .iter()
            .flat_map(|m| m.books())
            .filter(|b| !b.shared())
            .map(|b| {
                let digest = <sha2::Sha256 as sha2::Digest>::digest(b.key().as_bytes());
                usize::from(digest[0]) % STRIPES
            })
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for i in stripes {
            guards.push(self.stripes[i].clone().lock_owned().await);
        }
        BooksLocked { _guards: guards }
    }
}

/// The ledger; cheap to clone.
#[derive(Clone)]
pub(crate) struct Ledger {
    store: LedgerStore,
    locks: Arc<BookLocks>,
    /// The platform's fee on every job's price, in basis points.
    fee_bps: u32,
    /// Whether top-ups over Lightning are possible here.
    lightning: bool,
    /// On which network.
    network: Option<String>,
}

impl Ledger {
    pub(crate) fn new(db: Db, fee_bps: u32, lightning: bool) -> Self {
        Ledger {
            store: LedgerStore::new(db),
            locks: Arc::new(BookLocks::new()),
            fee_bps,
            lightning,
            network: None,
        }
    }

    /// Says which Lightning network top-ups are taken on.
    pub(crate) fn on_network(mut self, network: &str) -> Self {
        self.network = Some(network.to_owned());
        self
    }

    pub(crate) fn fee_bps(&self) -> u32 {
        self.fee_bps
    }

    /// Applies a movement in a transaction of its own.
    pub(crate) async fn apply(&self, movement: &Movement) -> Result<Applied, LedgerError> {
        let _locked = self.lock(&[movement]).await;
        self.store.apply(movement).await
    }

    /// Takes the locks of the books `movements` change: whoever applies
    /// them in a transaction of their own (a job's record) holds this
    /// while it runs.
    pub(crate) async fn lock(&self, movements: &[&Movement]) -> BooksLocked {
        self.locks.lock(movements).await
    }

    /// Grants `amount` of credit to `account` (an operator's admin command
    /// on a private instance), once per `key`.
    pub(crate) async fn credit(
        &self,
        account: &AccountId,
        amount: MilliSats,
        key: &str,
        memo: Option<String>,
    ) -> Result<Applied, LedgerError> {
        if amount.0 == 0 || amount.0 > i64::MAX as u64 {
            return Err(LedgerError::BadRequest("amount must be positive".into()));
        }
        if key.is_empty() || key.len() > 200 {
            return Err(LedgerError::BadRequest("key must be 1 to 200 bytes".into()));
        }
        let movement = Movement::credit(account, amount, key, UnixMillis::now(), memo);
        self.apply(&movement).await
    }

    /// Moves whatever `node` earned before it was enrolled to `account`'s
    /// earnings. Returns how much moved.
    pub(crate) async fn claim_pending(
        &self,
        node: &NodeId,
        account: &AccountId,
    ) -> Result<MilliSats, LedgerError> {
        let pending = self.store.book_balance(&Book::Pending(*node).key()).await?;
        if pending <= 0 {
            return Ok(MilliSats(0));
        }
        let movement = Movement::claim(node, account, pending, UnixMillis::now());
        match self.apply(&movement).await {
            Ok(_) => Ok(MilliSats(pending as u64)),
            // Someone else swept it meanwhile.
            Err(LedgerError::InsufficientFunds(_)) => Ok(MilliSats(0)),
            Err(e) => Err(e),
        }
    }

    /// An account's balances.
    pub(crate) async fn summary(&self, account: &AccountId) -> Result<BillingSummary, LedgerError> {
        let mut summary = self.store.summary(account).await?;
        summary.fee_bps = self.fee_bps;
        summary.lightning = self.lightning;
        summary.lightning_network = self.network.clone().filter(|_| self.lightning);
        Ok(summary)
    }

    /// What `account`'s nodes earned per job from `since` to `until`, as
    /// the ledger's earnings postings say: (job id, amount, when).
    pub(crate) async fn job_earnings(
        &self,
        account: &AccountId,
        since: UnixMillis,
        until: UnixMillis,
    ) -> Result<Vec<(String, i64, UnixMillis)>, LedgerError> {
        Ok(self.store.job_earnings(account, since, until).await?)
    }

    /// An account's postings, newest first, `limit` at most, older than
    /// the cursor `before` (from the previous page's `next`).
    pub(crate) async fn history(
        &self,
        account: &AccountId,
        before: Option<&str>,
        limit: u32,
    ) -> Result<HistoryPage, LedgerError> {
        self.store.history(account, before, limit).await
    }

    /// Checks the whole ledger: postings sum to zero, every book's balance
    /// is the sum of its postings, and no book that may not is negative.
    pub(crate) async fn audit(&self) -> Result<Audit, LedgerError> {
        Ok(self.store.audit().await?)
    }

    /// The balance of one book (tests, reconciliation).
    pub(crate) async fn book_balance(&self, book: &Book) -> Result<i64, LedgerError> {
        Ok(self.store.book_balance(&book.key()).await?)
    }
}

/// The platform's cut of `price` at `fee_bps`, rounded down.
pub(crate) fn fee_of(price: MilliSats, fee_bps: u32) -> MilliSats {
    MilliSats(u64::try_from(u128::from(price.0) * u128::from(fee_bps) / 10_000).unwrap_or(0))
}
