//! The billing API, under `/api/v1`:
//!
//! | route | who may call |
//! |---|---|
//! | `GET /billing` (balance, held, earnings, totals) | signed in (`billing` scope for keys) |
//! | `GET /billing/history?before=&limit=&format=json\|csv` (one's postings, newest first) | signed in (`billing`) |

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wire::accounts::Scope;
use wire::api::ErrorBody;
use wire::billing::{BillingSummary, HistoryPage, Posting};

use crate::accounts::{require, SignedIn};
use crate::error::{ApiError, ApiQuery};
use crate::AppState;

/// Postings per page by default, and at most.
const PAGE: u32 = 50;
const MAX_PAGE: u32 = 1000;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(summary))
        .routes(routes!(history))
}

/// The account's money.
///
/// Its balance, what is held for jobs running, its earnings, and totals. An
/// API key needs the `billing` scope.
#[utoipa::path(
    get,
    path = "/billing",
    operation_id = "billing_summary",
    tag = "billing",
    responses(
        (status = 200, description = "The account's money.", body = BillingSummary),
        crate::openapi::NotSignedIn,
        crate::openapi::NoBilling,
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn summary(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
) -> Result<Json<BillingSummary>, ApiError> {
    require(&caller, Scope::Billing)?;
    Ok(Json(state.ledger.summary(&caller.account).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    /// The previous page's `next`: postings older than it.
    before: Option<String>,
    /// Postings a page, 1 to 1000 [default: 50; CSV: 1000].
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `json` [default] or `csv`.
    #[param(pattern = "^(json|csv)$")]
    format: Option<String>,
}

/// The account's postings, newest first, a page at a time.
///
/// `before` is the previous page's `next`. As JSON, or with `format=csv` a
/// CSV file (amounts in millisatoshis, times in Unix milliseconds; 1000 rows
/// a page unless `limit` says otherwise) whose `Link` header names the next
/// page. An API key needs the `billing` scope.
#[utoipa::path(
    get,
    path = "/billing/history",
    operation_id = "billing_history",
    tag = "billing",
    params(HistoryQuery),
    responses(
        (status = 200, description = "A page of postings.",
            content(
                (HistoryPage = "application/json"),
                (String = "text/csv"),
            ),
            headers(
                ("Content-Disposition" = String, description = "CSV: `attachment; filename=\"infernet-billing.csv\"`."),
                ("Link" = String, description = "CSV, when there are older postings: the next page, `rel=\"next\"`."),
            )),
        (status = 400, description = "A `format` other than `json` or `csv`, a `limit` out of range, a `before` that is not a cursor, or a query that is not understood.", body = ErrorBody),
        crate::openapi::NotSignedIn,
        crate::openapi::NoBilling,
    ),
    security(("session" = []), ("api_key" = [])),
)]
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
