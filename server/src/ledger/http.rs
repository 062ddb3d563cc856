//! The billing API, under `/api/v1`:
//!
//! | route | who may call |
//! |---|---|
//! | `GET /billing` (balance, held, earnings, totals) | signed in (`billing` scope for keys) |
//! | `GET /billing/history?before=&limit=&format=json\|csv` (one's postings, newest first) | signed in (`billing`) |

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use wire::accounts::Scope;
use wire::billing::{BillingSummary, HistoryPage, Posting};

use crate::accounts::{require, SignedIn};
use crate::error::{ApiError, ApiQuery};
use crate::AppState;

/// Postings per page by default, and at most.
const PAGE: u32 = 50;
const MAX_PAGE: u32 = 1000;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/billing", get(summary))
        .route("/billing/history", get(history))
}

async fn summary(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
) -> Result<Json<BillingSummary>, ApiError> {
    require(&caller, Scope::Billing)?;
    Ok(Json(state.ledger.summary(&caller.account).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    before: Option<String>,
    limit: Option<u32>,
    format: Option<String>,
}

async fn history(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Response, ApiError> {
    require(&caller, Scope::Billing)?;
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "format must be json or csv, not `{other}`"
            )))
        }
    };
    let limit = q.limit.unwrap_or(if csv { MAX_PAGE } else { PAGE });
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_PAGE}"
        )));
    }
    let page = state
        .ledger
        .history(&caller.account, q.before.as_deref(), limit)
        .await?;
    if !csv {
        return Ok(Json(page).into_response());
    }
    let mut response = to_csv(&page).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"infernet-billing.csv\""),
    );
    if let Some(next) = &page.next {
        // The next page of the export, as a link a script can follow.
        let link = format!(
            "<?format=csv&limit={limit}&before={}>; rel=\"next\"",
            urlencode(next)
        );
        if let Ok(v) = HeaderValue::from_str(&link) {
            headers.insert(header::LINK, v);
        }
    }
    Ok(response)
}

/// A cursor as a query value.
fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// One row per posting; amounts in millisatoshis, times in Unix milliseconds.
pub(crate) fn to_csv(page: &HistoryPage) -> String {
    let mut out =
        String::from("id,at_ms,kind,book,amount_msat,balance_after_msat,job_id,payment_id,memo\n");
    for p in &page.postings {
        out.push_str(&csv_row(p));
    }
    out
}

fn csv_row(p: &Posting) -> String {
    let field = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    format!(
        "{},{},{},{},{},{},{},{},{}\n",
        field(&p.id),
        p.at.0,
        p.kind.as_str(),
        p.book.as_str(),
        p.amount_msat,
        p.balance_after_msat,
        p.job_id.as_ref().map(|j| j.to_string()).unwrap_or_default(),
        field(p.payment_id.as_deref().unwrap_or_default()),
        field(p.memo.as_deref().unwrap_or_default()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::billing::{BookKind, MovementKind};
    use wire::UnixMillis;

    #[test]
    fn csv_quotes_what_needs_it() {
        let page = HistoryPage {
            postings: vec![Posting {
                id: "credit:a#1".into(),
                at: UnixMillis(7),
                kind: MovementKind::Credit,
                book: BookKind::Balance,
                amount_msat: 5000,
                balance_after_msat: 5000,
                job_id: None,
                payment_id: None,
                memo: Some("for \"testing\", thanks".into()),
            }],
            next: None,
        };
        assert_eq!(
            to_csv(&page),
            "id,at_ms,kind,book,amount_msat,balance_after_msat,job_id,payment_id,memo\n\
             credit:a#1,7,credit,balance,5000,5000,,,\"for \"\"testing\"\", thanks\"\n"
        );
        assert_eq!(urlencode("1|0|hold:x"), "1%7C0%7Chold%3Ax");
    }
}
