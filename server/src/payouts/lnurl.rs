//! Lightning addresses (LUD-16) to invoices, over LNURL-pay (LUD-06), and
//! LUD-21's verification that an invoice settled.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use wire::MilliSats;

use super::PayoutError;

/// The most of an LNURL service's answer that is read.
const MAX_BODY: usize = 64 * 1024;

/// An invoice fetched for an address, and where to verify it settled.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) invoice: String,
    pub(crate) verify: Option<String>,
}

/// `name@domain`, checked; the service's well-known URL. Plain `http` only
/// for loopback and onion hosts, as wallets do.
pub(crate) fn address_url(address: &str) -> Result<String, PayoutError> {
    let bad = || {
        PayoutError::BadRequest(format!(
            "`{address}` is not a Lightning address (name@domain)"
        ))
    };
    let (name, domain) = address.trim().split_once('@').ok_or_else(bad)?;
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.+".contains(c));
    let host = domain.split(':').next().unwrap_or_default();
    let domain_ok = !host.is_empty()
        && domain.len() <= 253
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c));
    if !name_ok || !domain_ok {
        return Err(bad());
    }
    let scheme = if host == "localhost" || host == "127.0.0.1" || host.ends_with(".onion") {
        "http"
    } else {
        "https"
    };
    Ok(format!("{scheme}://{domain}/.well-known/lnurlp/{name}"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PayRequest {
    callback: String,
    min_sendable: u64,
    max_sendable: u64,
    metadata: String,
    tag: String,
}

#[derive(Deserialize)]
struct InvoiceAnswer {
    pr: String,
    #[serde(default)]
    verify: Option<String>,
}

#[derive(Deserialize)]
struct VerifyAnswer {
    #[serde(default)]
    settled: bool,
    #[serde(default)]
    preimage: Option<String>,
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<T, PayoutError> {
    let unreachable = |e: String| PayoutError::Address(format!("{url}: {e}"));
    let mut response = http
        .get(url)
        .send()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| unreachable(e.to_string()))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BODY {
            return Err(unreachable("answer too large".into()));
        }
    }
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| unreachable(format!("not JSON: {e}")))?;
    if value["status"].as_str() == Some("ERROR") {
        let reason = value["reason"].as_str().unwrap_or("no reason given");
        return Err(PayoutError::Address(format!(
            "the service refused: {reason}"
        )));
    }
    serde_json::from_value(value).map_err(|e| unreachable(format!("unexpected answer: {e}")))
}

/// Asks `address`'s service for an invoice of `amount`, and checks it is
/// one: the amount asked, the metadata's hash.
pub(crate) async fn invoice_for(
    http: &reqwest::Client,
    address: &str,
    amount: MilliSats,
) -> Result<Resolved, PayoutError> {
    let url = address_url(address)?;
    let pay: PayRequest = get_json(http, &url).await?;
    if pay.tag != "payRequest" {
        return Err(PayoutError::Address(format!(
            "{address} is not a pay request ({})",
            pay.tag
        )));
    }
    if amount.0 < pay.min_sendable || amount.0 > pay.max_sendable {
        return Err(PayoutError::Address(format!(
            "{address} takes {} to {} msat, not {}",
            pay.min_sendable, pay.max_sendable, amount.0
        )));
    }
    let sep = if pay.callback.contains('?') { '&' } else { '?' };
    let callback = format!("{}{sep}amount={}", pay.callback, amount.0);
    let answer: InvoiceAnswer = get_json(http, &callback).await?;
    let parsed = payments::parse_invoice(&answer.pr)
        .map_err(|e| PayoutError::Address(format!("{address} gave a bad invoice: {e}")))?;
    if parsed.amount != Some(amount) {
        return Err(PayoutError::Address(format!(
            "{address} gave an invoice for {:?} msat, not {}",
            parsed.amount.map(|a| a.0),
            amount.0
        )));
    }
    let metadata_hash = hex::encode(Sha256::digest(pay.metadata.as_bytes()));
    if parsed.description_hash.as_deref() != Some(metadata_hash.as_str()) {
        return Err(PayoutError::Address(format!(
            "{address} gave an invoice that does not commit to its metadata"
        )));
    }
    Ok(Resolved {
        invoice: answer.pr,
        verify: answer.verify,
    })
}

/// LUD-21: whether the payee's service says the invoice settled, with a
/// preimage that hashes to `payment_hash`.
pub(crate) async fn verify(
    http: &reqwest::Client,
    url: &str,
    payment_hash: &str,
) -> Result<bool, PayoutError> {
    let answer: VerifyAnswer = get_json(http, url).await?;
    Ok(answer.settled
        && answer
            .preimage
            .and_then(|p| hex::decode(p).ok())
            .is_some_and(|p| hex::encode(Sha256::digest(p)) == payment_hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_and_loopback_is_plain_http() {
        assert_eq!(
            address_url("alice@example.com").unwrap(),
            "https://example.com/.well-known/lnurlp/alice"
        );
        assert_eq!(
            address_url("bob@127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080/.well-known/lnurlp/bob"
        );
        for bad in [
            "",
            "alice",
            "@example.com",
            "Alice@example.com",
            "a/b@example.com",
            "alice@",
            "alice@exa mple.com",
            "alice@example.com/../x",
        ] {
            assert!(address_url(bad).is_err(), "{bad}");
        }
    }
}
