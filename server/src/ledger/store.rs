//! The `book`, `movement` and `posting` tables. Movements are applied by
//! the database function `fn::ledger_move` (in `schema.surql`), so that any
//! store can move money inside its own transaction with [`move_sql`].

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::json;
use wire::billing::{BillingSummary, BookKind, HistoryPage, MovementKind, Posting};
use wire::{AccountId, JobId, MilliSats, UnixMillis};

use super::{Applied, Book, LedgerError, Movement};
use crate::db::{Db, DbError};

/// How the database refuses a movement whose key was used already: its
/// record exists.
pub(super) const DUPLICATE: &str = "already exists";
/// What it throws for a book that would go negative, then the book.
pub(super) const INSUFFICIENT: &str = "ledger: insufficient funds in ";

/// The statement that applies the movement bound to `$<var>` (from
/// [`Movement::to_json`]), for another store's transaction. If it throws,
/// [`LedgerError::from_db`] says why.
pub(crate) fn move_sql(var: &str) -> String {
    format!("fn::ledger_move(${var});")
}

/// What [`LedgerStore::audit`] found.
#[derive(Debug, Default)]
pub(crate) struct Audit {
    /// The sum of every posting: 0.
    pub(crate) total: i64,
    pub(crate) movements: usize,
    pub(crate) postings: usize,
    /// Movements whose postings do not sum to zero.
    pub(crate) unbalanced_movements: Vec<String>,
    /// Books whose balance is not the sum of their postings.
    pub(crate) mismatched_books: Vec<String>,
    /// Books below zero that may not be.
    pub(crate) negative_books: Vec<String>,
}

impl Audit {
    pub(crate) fn is_clean(&self) -> bool {
        self.total == 0
            && self.unbalanced_movements.is_empty()
            && self.mismatched_books.is_empty()
            && self.negative_books.is_empty()
    }
}

#[derive(Clone)]
pub(super) struct LedgerStore {
    db: Db,
}

#[derive(Deserialize)]
struct Total {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    book_kind: Option<String>,
    total: i64,
}

#[derive(Deserialize)]
struct PostingRow {
    movement: String,
    seq: u32,
    kind: MovementKind,
    book_kind: BookKind,
    amount: i64,
    #[serde(default)]
    balance_after: Option<i64>,
    at: UnixMillis,
    #[serde(default)]
    job_id: Option<JobId>,
    #[serde(default)]
    payment_id: Option<String>,
    #[serde(default)]
    memo: Option<String>,
}

/// A history cursor: the last posting of the page, `at|seq|movement`.
fn cursor(p: &PostingRow) -> String {
    format!("{}|{}|{}", p.at.0, p.seq, p.movement)
}

fn parse_cursor(c: &str) -> Result<(u64, u32, String), LedgerError> {
    let bad = || LedgerError::BadRequest("`before` is not a cursor from a history page".into());
    let mut parts = c.splitn(3, '|');
    let at = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let seq = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let movement = parts.next().filter(|m| !m.is_empty()).ok_or_else(bad)?;
    Ok((at, seq, movement.to_owned()))
}

fn positive(v: i64) -> MilliSats {
    MilliSats(u64::try_from(v).unwrap_or(0))
}

impl LedgerStore {
    pub(super) fn new(db: Db) -> Self {
        LedgerStore { db }
    }

    pub(super) async fn apply(&self, movement: &Movement) -> Result<Applied, LedgerError> {
        let mv = movement.to_json()?;
        let sql = format!("BEGIN TRANSACTION; {} COMMIT TRANSACTION;", move_sql("mv"));
        match self
            .db
            .transact::<serde_json::Value>(&sql, json!({ "mv": mv }), 0)
            .await
        {
            Ok(_) => Ok(Applied::Moved),
            Err(e) => LedgerError::from_db(e),
        }
    }

    /// A book's balance: its row's, or for a shared book the sum of its
    /// postings.
    pub(super) async fn book_balance(&self, book: &str) -> Result<i64, DbError> {
        let rows: Vec<i64> = self
            .db
            .rows(
                "SELECT VALUE balance FROM type::record('book', $book)",
                json!({ "book": book }),
                0,
            )
            .await?;
        if let Some(balance) = rows.into_iter().next() {
            return Ok(balance);
        }
        #[derive(Deserialize)]
        struct Sum {
            total: i64,
        }
        let sums: Vec<Sum> = self
            .db
            .rows(
                "SELECT math::sum(amount) AS total FROM posting WHERE book = $book GROUP ALL",
                json!({ "book": book }),
                0,
            )
            .await?;
        Ok(sums.first().map_or(0, |s| s.total))
    }

    pub(super) async fn summary(&self, account: &AccountId) -> Result<BillingSummary, LedgerError> {
        let vars = json!({ "account": account });
        let books: Vec<Total> = self
            .db
            .rows(
                "SELECT kind, math::sum(balance) AS total FROM book \
                 WHERE owner = $account GROUP BY kind",
                vars.clone(),
                0,
            )
            .await?;
        let flows: Vec<Total> = self
            .db
            .rows(
                "SELECT kind, book_kind, math::sum(amount) AS total FROM posting \
                 WHERE owner = $account GROUP BY kind, book_kind",
                vars,
                0,
            )
            .await?;
        let book = |k: BookKind| {
            books
                .iter()
                .filter(|b| b.kind.as_deref() == Some(k.as_str()))
                .map(|b| b.total)
                .sum::<i64>()
        };
        let flow = |kinds: &[MovementKind], book_kinds: &[BookKind]| {
            flows
                .iter()
                .filter(|f| {
                    kinds.iter().any(|k| f.kind.as_deref() == Some(k.as_str()))
                        && book_kinds
                            .iter()
                            .any(|b| f.book_kind.as_deref() == Some(b.as_str()))
                })
                .map(|f| f.total)
                .sum::<i64>()
        };
        use BookKind as B;
        use MovementKind as M;
        Ok(BillingSummary {
            balance_msat: positive(book(B::Balance)),
            held_msat: positive(book(B::Escrow)),
            earnings_msat: positive(book(B::Earnings)),
            earned_total_msat: positive(flow(&[M::Charge, M::Claim], &[B::Earnings])),
            // What settled payouts took (amount and fee): their books'
            // debit less the unused fee reserve returned.
            paid_out_msat: positive(
                -flow(&[M::PayoutSettled], &[B::Payout])
                    - flow(&[M::PayoutSettled], &[B::Balance, B::Earnings]),
            ),
            topped_up_msat: positive(flow(&[M::Topup, M::Credit], &[B::Balance])),
            // What left the balance and escrow for good through jobs.
            spent_msat: positive(-flow(
                &[M::Hold, M::Charge, M::Release],
                &[B::Balance, B::Escrow],
            )),
            in_flight_msat: positive(book(B::Payout)),
            fee_bps: 0,
            lightning: false,
            lightning_network: None,
        })
    }

    /// The postings to `account`'s earnings that belong to jobs, from
    /// `since` (inclusive) to `until` (exclusive): (job id, amount, when).
    pub(super) async fn job_earnings(
        &self,
        account: &AccountId,
        since: UnixMillis,
        until: UnixMillis,
    ) -> Result<Vec<(String, i64, UnixMillis)>, DbError> {
        #[derive(Deserialize)]
        struct Row {
            job_id: String,
            amount: i64,
            at: UnixMillis,
        }
        let rows: Vec<Row> = self
            .db
            .rows(
                "SELECT job_id, amount, at FROM posting WHERE owner = $account \
                 AND book = $book AND job_id != NONE AND at >= $since AND at < $until",
                json!({
                    "account": account,
                    "book": Book::Earnings(account.clone()).key(),
                    "since": since,
                    "until": until,
                }),
                0,
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.job_id, r.amount, r.at))
            .collect())
    }

    pub(super) async fn history(
        &self,
        account: &AccountId,
        before: Option<&str>,
        limit: u32,
    ) -> Result<HistoryPage, LedgerError> {
        let limit = limit.clamp(1, 1000);
        let (sql, vars) = match before {
            None => (
                "SELECT * FROM posting WHERE owner = $account \
                 ORDER BY at DESC, seq DESC, movement DESC LIMIT $limit",
                json!({ "account": account, "limit": limit + 1 }),
            ),
            Some(c) => {
                let (at, seq, movement) = parse_cursor(c)?;
                (
                    "SELECT * FROM posting WHERE owner = $account AND (at < $at OR \
                     (at = $at AND (seq < $seq OR (seq = $seq AND movement < $mv)))) \
                     ORDER BY at DESC, seq DESC, movement DESC LIMIT $limit",
                    json!({ "account": account, "limit": limit + 1, "at": at, "seq": seq, "mv": movement }),
                )
            }
        };
        let mut rows: Vec<PostingRow> = self.db.rows(sql, vars, 0).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = if more { rows.last().map(cursor) } else { None };
        let postings = rows
            .into_iter()
            .map(|r| Posting {
                id: format!("{}#{}", r.movement, r.seq),
                at: r.at,
                kind: r.kind,
                book: r.book_kind,
                amount_msat: r.amount,
                balance_after_msat: r.balance_after.unwrap_or_default(),
                job_id: r.job_id,
                payment_id: r.payment_id,
                memo: r.memo,
            })
            .collect();
        Ok(HistoryPage { postings, next })
    }

    pub(super) async fn audit(&self) -> Result<Audit, DbError> {
        #[derive(Deserialize)]
        struct Sum {
            key: String,
            total: i64,
            #[serde(default)]
            count: usize,
        }
        #[derive(Deserialize)]
        struct BookRow {
            book: String,
            balance: i64,
            overdraft: bool,
        }
        let by_movement: Vec<Sum> = self
            .db
            .rows(
                "SELECT movement AS key, math::sum(amount) AS total, count() AS count \
                 FROM posting GROUP BY key",
                json!({}),
                0,
            )
            .await?;
        let by_book: Vec<Sum> = self
            .db
            .rows(
                "SELECT book AS key, math::sum(amount) AS total FROM posting GROUP BY key",
                json!({}),
                0,
            )
            .await?;
        let books: Vec<BookRow> = self
            .db
            .rows("SELECT book, balance, overdraft FROM book", json!({}), 0)
            .await?;
        #[derive(Deserialize)]
        struct Count {
            count: usize,
        }
        let movements: Vec<Count> = self
            .db
            .rows(
                "SELECT count() AS count FROM movement GROUP ALL",
                json!({}),
                0,
            )
            .await?;
        let sums: HashMap<&str, i64> = by_book.iter().map(|s| (s.key.as_str(), s.total)).collect();
        let mut audit = Audit {
            total: by_movement.iter().map(|s| s.total).sum(),
            movements: movements.first().map_or(0, |c| c.count),
            postings: by_movement.iter().map(|s| s.count).sum(),
            ..Audit::default()
        };
        audit.unbalanced_movements = by_movement
            .iter()
            .filter(|s| s.total != 0)
            .map(|s| s.key.clone())
            .collect();
        for b in &books {
            if sums.get(b.book.as_str()).copied().unwrap_or(0) != b.balance {
                audit.mismatched_books.push(b.book.clone());
            }
            if b.balance < 0 && !b.overdraft {
                audit.negative_books.push(b.book.clone());
            }
        }
        Ok(audit)
    }
}
