//! A stand-in for the Lightning network, behind the same [`Lightning`]
//! trait: it issues real BOLT11 invoices (signed with a test node key, on
//! regtest) and keeps their preimages; a test "pays" one by releasing its
//! preimage ([`TestLightning::settle`]), which emits the same event a real
//! backend would. Outgoing payments succeed or fail as the test decides.
//! Only the network is replaced: everything behind the trait is ours.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;
use wire::{MilliSats, UnixMillis};

use crate::{
    parse_invoice, Invoice, InvoiceState, Lightning, LightningError, LightningEvent, SentPayment,
};

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{Secp256k1, SecretKey};

struct Issued {
    preimage: [u8; 32],
    amount: MilliSats,
    expires_at: UnixMillis,
    paid_at: Option<UnixMillis>,
}

#[derive(Default)]
struct State {
    issued: HashMap<String, Issued>,
    /// Invoices paid out, by payment hash: each is paid once.
    sent: HashMap<String, SentPayment>,
    /// The next outgoing payments fail with this, while set.
    failing: Option<String>,
    /// The network cannot be reached, while set: payments neither fail
    /// nor succeed.
    unreachable: bool,
    /// The routing fee every payment out costs.
    fee: MilliSats,
}

/// What every test backend derives an invoice's preimage from: its payment
/// secret, under a constant of the test "network". So one test backend can
/// pay another's invoice (in another process, too) and learn the real
/// preimage, as routing would give it; an invoice from anywhere else has no
/// route.
const TEST_NETWORK: &[u8] = b"infernet test lightning network";

fn network_preimage(secret: &PaymentSecret) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(TEST_NETWORK);
    h.update(secret.0);
    h.finalize().into()
}

/// The preimage of a test backend's invoice, from the invoice alone; `None`
/// for an invoice no test backend issued.
fn routed_preimage(bolt11: &str) -> Option<[u8; 32]> {
    let text = bolt11.trim();
    let text = text
        .strip_prefix("lightning:")
        .or_else(|| text.strip_prefix("LIGHTNING:"))
        .unwrap_or(text);
    let invoice: lightning_invoice::Bolt11Invoice = text.to_lowercase().parse().ok()?;
    let preimage = network_preimage(invoice.payment_secret());
    (sha256::Hash::hash(&preimage) == *invoice.payment_hash()).then_some(preimage)
}

enum Description {
    Text(String),
    Hash([u8; 32]),
}

/// The test backend; cheap to clone, all clones share one wallet.
#[derive(Clone)]
pub struct TestLightning {
    key: SecretKey,
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<LightningEvent>,
}

impl Default for TestLightning {
    fn default() -> Self {
        Self::new()
    }
}

impl TestLightning {
    pub fn new() -> Self {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&Sha256::digest(uuid::Uuid::new_v4().as_bytes()));
        // A SHA-256 is a valid secp256k1 key with overwhelming probability.
        let key = SecretKey::from_slice(&bytes)
            .unwrap_or_else(|_| SecretKey::from_slice(&[1; 32]).expect("a constant key is valid"));
        TestLightning {
            key,
            state: Arc::new(Mutex::new(State::default())),
            events: broadcast::channel(256).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A test that panicked while holding the lock has failed already.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pays one of our invoices, as a wallet would: releases its preimage,
    /// marks it paid and emits the event. Paying it again changes nothing
    /// (but the event is sent again, as a duplicate notification would be).
    pub fn settle(&self, bolt11: &str) -> Result<[u8; 32], LightningError> {
        let parsed = parse_invoice(bolt11)?;
        let (preimage, amount) = {
            let mut state = self.lock();
            let issued = state
                .issued
                .get_mut(&parsed.payment_hash)
                .ok_or_else(|| LightningError::UnknownPayment(parsed.payment_hash.clone()))?;
            if issued.paid_at.is_none() {
                if issued.expires_at <= UnixMillis::now() {
                    return Err(LightningError::PaymentFailed("the invoice expired".into()));
                }
                issued.paid_at = Some(UnixMillis::now());
            }
            (issued.preimage, issued.amount)
        };
        let _ = self.events.send(LightningEvent::InvoicePaid {
            payment_hash: parsed.payment_hash,
            amount,
        });
        Ok(preimage)
    }

    /// Marks an invoice paid without telling anyone: a missed event, which
    /// only reconciliation finds.
    pub fn settle_silently(&self, bolt11: &str) -> Result<(), LightningError> {
        let parsed = parse_invoice(bolt11)?;
        let mut state = self.lock();
        let issued = state
            .issued
            .get_mut(&parsed.payment_hash)
            .ok_or(LightningError::UnknownPayment(parsed.payment_hash))?;
        issued.paid_at.get_or_insert_with(UnixMillis::now);
        Ok(())
    }

    /// Makes outgoing payments fail with `reason` (or succeed again, with
    /// `None`).
    pub fn fail_payments(&self, reason: Option<&str>) {
        self.lock().failing = reason.map(str::to_owned);
    }

    /// Makes the network unreachable (or reachable again).
    pub fn set_unreachable(&self, unreachable: bool) {
        self.lock().unreachable = unreachable;
    }

    /// The routing fee of every payment out from now on.
    pub fn set_fee(&self, fee: MilliSats) {
        self.lock().fee = fee;
    }

    /// The invoices paid out so far.
    pub fn sent(&self) -> Vec<SentPayment> {
        self.lock().sent.values().cloned().collect()
    }

    /// Issues an invoice whose description is given by its hash (an
    /// LNURL-pay service's, for the SHA-256 of its metadata).
    pub fn create_invoice_for_hash(
        &self,
        amount: MilliSats,
        description_hash: [u8; 32],
        expiry_secs: u32,
    ) -> Result<Invoice, LightningError> {
        let (invoice, preimage) = self.issue_with(
            amount,
            Description::Hash(description_hash),
            Duration::from_secs(expiry_secs.into()),
        )?;
        self.lock().issued.insert(
            invoice.payment_hash.clone(),
            Issued {
                preimage,
                amount,
                expires_at: invoice.expires_at,
                paid_at: None,
            },
        );
        Ok(invoice)
    }

    /// A regtest invoice signed by this backend's key.
    fn issue(
        &self,
        amount: MilliSats,
        description: &str,
        expiry: Duration,
    ) -> Result<(Invoice, [u8; 32]), LightningError> {
        self.issue_with(amount, Description::Text(description.to_owned()), expiry)
    }

    fn issue_with(
        &self,
        amount: MilliSats,
        description: Description,
        expiry: Duration,
    ) -> Result<(Invoice, [u8; 32]), LightningError> {
        let secret = PaymentSecret(Sha256::digest(uuid::Uuid::new_v4().as_bytes()).into());
        let preimage = network_preimage(&secret);
        let hash = sha256::Hash::hash(&preimage);
        let builder = InvoiceBuilder::new(Currency::Regtest);
        let builder = match description {
            Description::Text(text) => builder.description(text),
            Description::Hash(h) => builder.description_hash(sha256::Hash::from_byte_array(h)),
        };
        let invoice = builder
            .payment_hash(hash)
            .payment_secret(secret)
            .duration_since_epoch(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default(),
            )
            .min_final_cltv_expiry_delta(144)
            .amount_milli_satoshis(amount.0)
            .expiry_time(expiry)
            .build_signed(|h| Secp256k1::new().sign_ecdsa_recoverable(h, &self.key))
            .map_err(|e| LightningError::Backend(e.to_string()))?;
        let bolt11 = invoice.to_string();
        let parsed = parse_invoice(&bolt11)?;
        Ok((
            Invoice {
                bolt11,
                payment_hash: parsed.payment_hash,
                amount,
                expires_at: parsed.expires_at,
            },
            preimage,
        ))
    }
}

impl Lightning for TestLightning {
    fn network(&self) -> &str {
        "test"
    }

    fn create_invoice(
        &self,
        amount: MilliSats,
        description: &str,
        expiry_secs: u32,
    ) -> BoxFuture<'_, Result<Invoice, LightningError>> {
        let issued = self.issue(amount, description, Duration::from_secs(expiry_secs.into()));
        Box::pin(async move {
            let (invoice, preimage) = issued?;
            self.lock().issued.insert(
                invoice.payment_hash.clone(),
                Issued {
                    preimage,
                    amount,
                    expires_at: invoice.expires_at,
                    paid_at: None,
                },
            );
            Ok(invoice)
        })
    }

    fn invoice_state(
        &self,
        payment_hash: &str,
    ) -> BoxFuture<'_, Result<InvoiceState, LightningError>> {
        let hash = payment_hash.to_owned();
        Box::pin(async move {
            let state = self.lock();
            let issued = state
                .issued
                .get(&hash)
                .ok_or(LightningError::UnknownPayment(hash.clone()))?;
            Ok(match issued.paid_at {
                Some(at) => InvoiceState::Paid {
                    amount: issued.amount,
                    at,
                },
                None if issued.expires_at <= UnixMillis::now() => InvoiceState::Expired,
                None => InvoiceState::Pending,
            })
        })
    }

    fn pay_invoice(
        &self,
        bolt11: &str,
        amount: Option<MilliSats>,
    ) -> BoxFuture<'_, Result<SentPayment, LightningError>> {
        let parsed = parse_invoice(bolt11);
        let bolt11 = bolt11.to_owned();
        Box::pin(async move {
            let parsed = parsed?;
            let amount = match (parsed.amount, amount) {
                (Some(a), None) => a,
                (Some(a), Some(b)) if a == b => a,
                (Some(a), Some(b)) => {
                    return Err(LightningError::InvalidInvoice(format!(
                        "the invoice asks for {a:?}, not {b:?}"
                    )))
                }
                (None, Some(b)) => b,
                (None, None) => {
                    return Err(LightningError::InvalidInvoice(
                        "the invoice names no amount".into(),
                    ))
                }
            };
            let mut state = self.lock();
            if state.unreachable {
                return Err(LightningError::Unreachable(
                    "test network switched off".into(),
                ));
            }
            if let Some(done) = state.sent.get(&parsed.payment_hash) {
                // Paying the same invoice again returns the first payment
                // (expired or not by now).
                return Ok(done.clone());
            }
            if parsed.expires_at <= UnixMillis::now() {
                return Err(LightningError::InvalidInvoice("the invoice expired".into()));
            }
            if let Some(reason) = &state.failing {
                return Err(LightningError::PaymentFailed(reason.clone()));
            }
            // The payee's preimage, as routing to it would reveal it.
            let preimage = match state.issued.get_mut(&parsed.payment_hash) {
                Some(own) => {
                    own.paid_at.get_or_insert_with(UnixMillis::now);
                    own.preimage
                }
                None => routed_preimage(bolt11.as_str())
                    .ok_or_else(|| LightningError::PaymentFailed("no route to the payee".into()))?,
            };
            let sent = SentPayment {
                payment_hash: parsed.payment_hash.clone(),
                preimage: hex::encode(preimage),
                amount,
                fee: state.fee,
            };
            state.sent.insert(parsed.payment_hash, sent.clone());
            Ok(sent)
        })
    }

    fn events(&self) -> broadcast::Receiver<LightningEvent> {
        self.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_issued_invoice_is_real_bolt11_and_settles_once_with_its_preimage() {
        let ln = TestLightning::new();
        let mut events = ln.events();
        let invoice = ln
            .create_invoice(MilliSats(21_000), "Infernet top-up", 600)
            .await
            .unwrap();
        assert!(
            invoice.bolt11.starts_with("lnbcrt210n1"),
            "{}",
            invoice.bolt11
        );
        let parsed = parse_invoice(&invoice.bolt11).unwrap();
        assert_eq!(parsed.amount, Some(MilliSats(21_000)));
        assert_eq!(parsed.network, "regtest");
        assert_eq!(parsed.description.as_deref(), Some("Infernet top-up"));
        assert_eq!(parsed.payment_hash, invoice.payment_hash);
        assert_eq!(
            ln.invoice_state(&invoice.payment_hash).await.unwrap(),
            InvoiceState::Pending
        );
        let preimage = ln.settle(&invoice.bolt11).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(preimage)),
            invoice.payment_hash,
            "the preimage hashes to the payment hash"
        );
        assert_eq!(
            events.recv().await.unwrap(),
            LightningEvent::InvoicePaid {
                payment_hash: invoice.payment_hash.clone(),
                amount: MilliSats(21_000)
            }
        );
        assert!(matches!(
            ln.invoice_state(&invoice.payment_hash).await.unwrap(),
            InvoiceState::Paid {
                amount: MilliSats(21_000),
                ..
            }
        ));
        // A second notification of the same payment: same preimage.
        assert_eq!(ln.settle(&invoice.bolt11).unwrap(), preimage);
    }

    #[tokio::test]
    async fn payouts_are_paid_once_and_fail_when_told() {
        let payee = TestLightning::new();
        let ours = TestLightning::new();
        let invoice = payee
            .create_invoice(MilliSats(5_000), "payout", 600)
            .await
            .unwrap();
        ours.fail_payments(Some("no route"));
        assert_eq!(
            ours.pay_invoice(&invoice.bolt11, None).await,
            Err(LightningError::PaymentFailed("no route".into()))
        );
        ours.fail_payments(None);
        let sent = ours.pay_invoice(&invoice.bolt11, None).await.unwrap();
        assert_eq!(sent.amount, MilliSats(5_000));
        // The payee's real preimage, as routing reveals it.
        assert_eq!(
            hex::encode(Sha256::digest(hex::decode(&sent.preimage).unwrap())),
            invoice.payment_hash
        );
        let again = ours.pay_invoice(&invoice.bolt11, None).await.unwrap();
        assert_eq!(again, sent, "an invoice is paid once");
        assert_eq!(ours.sent().len(), 1);
        assert!(matches!(
            ours.pay_invoice(&invoice.bolt11, Some(MilliSats(1))).await,
            Err(LightningError::InvalidInvoice(_))
        ));
    }
}
