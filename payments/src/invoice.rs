//! BOLT11 invoices as the server reads them: amount, payment hash, expiry,
//! network; checked before anything is paid or credited.

use std::str::FromStr;

use lightning_invoice::{Bolt11Invoice, Currency};
use wire::{MilliSats, UnixMillis};

use crate::LightningError;

/// What the server needs to know of an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedInvoice {
    pub payment_hash: String,
    pub amount: Option<MilliSats>,
    pub expires_at: UnixMillis,
    /// `bitcoin`, `testnet`, `signet`, `regtest` or `simnet`.
    pub network: &'static str,
    pub description: Option<String>,
    /// Hex SHA-256 of a description given by hash instead (LNURL-pay's
    /// metadata).
    pub description_hash: Option<String>,
    /// The payee's node key (hex).
    pub payee: String,
}

fn network_of(c: Currency) -> &'static str {
    match c {
        Currency::Bitcoin => "bitcoin",
        Currency::BitcoinTestnet => "testnet",
        Currency::Regtest => "regtest",
        Currency::Simnet => "simnet",
        Currency::Signet => "signet",
    }
}

/// Parses and checks a BOLT11 invoice (its signature included).
pub fn parse_invoice(bolt11: &str) -> Result<ParsedInvoice, LightningError> {
    let text = bolt11.trim();
    let text = text
        .strip_prefix("lightning:")
        .or_else(|| text.strip_prefix("LIGHTNING:"))
        .unwrap_or(text);
    if text.len() > 4096 {
        return Err(LightningError::InvalidInvoice("too long".into()));
    }
    let invoice = Bolt11Invoice::from_str(&text.to_lowercase())
        .map_err(|e| LightningError::InvalidInvoice(e.to_string()))?;
    let created = invoice.duration_since_epoch();
    let expires = created.saturating_add(invoice.expiry_time());
    Ok(ParsedInvoice {
        payment_hash: hex::encode(AsRef::<[u8]>::as_ref(invoice.payment_hash())),
        amount: invoice.amount_milli_satoshis().map(MilliSats),
        expires_at: UnixMillis(u64::try_from(expires.as_millis()).unwrap_or(u64::MAX)),
        network: network_of(invoice.currency()),
        description: match invoice.description() {
            lightning_invoice::Bolt11InvoiceDescriptionRef::Direct(d) => Some(d.to_string()),
            lightning_invoice::Bolt11InvoiceDescriptionRef::Hash(_) => None,
        },
        description_hash: match invoice.description() {
            lightning_invoice::Bolt11InvoiceDescriptionRef::Direct(_) => None,
            lightning_invoice::Bolt11InvoiceDescriptionRef::Hash(h) => {
                Some(hex::encode(AsRef::<[u8]>::as_ref(&h.0)))
            }
        },
        payee: invoice.get_payee_pub_key().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_invalid_invoice() {
        for bad in ["", "lnbc1", "hello", &"lnbc".repeat(2000)] {
            assert!(matches!(
                parse_invoice(bad),
                Err(LightningError::InvalidInvoice(_))
            ));
        }
    }
}
