//! Capability ads as every receiver checks them: signatures, publishers,
//! replays, expiry, limits and schedules.

use libp2p_identity::Keypair;
use testkit::fixtures::{ad, NOW};
use wire::ads::{decode_ad, AdBook, AdError, CapabilityAd, MAX_AD_BYTES};
use wire::schedule::{Availability, Span};
use wire::{Sha256Digest, SignedEnvelope, SigningError, UnixMillis};

fn seal(key: &Keypair, ad: &CapabilityAd) -> SignedEnvelope {
    SignedEnvelope::seal(key, ad).unwrap()
}

#[test]
fn a_fresh_signed_ad_is_kept_and_found_by_model() {
    let key = Keypair::generate_ed25519();
    let mut book = AdBook::default();
    let a = ad(&key, 1, NOW, 30_000);
    let held = book.accept(seal(&key, &a), Some(a.node_id), NOW).unwrap();
    assert_eq!(held.ad, a);
    assert_eq!(book.offering("m", NOW).count(), 1);
    assert_eq!(
        book.offering(&Sha256Digest::of(b"m").to_string(), NOW)
            .count(),
        1
    );
    assert_eq!(book.offering("other", NOW).count(), 0);
}

#[test]
fn forged_ads_are_rejected_as_forgeries() {
    let key = Keypair::generate_ed25519();
    let mallory = Keypair::generate_ed25519();
    let mut book = AdBook::default();
    let a = ad(&key, 1, NOW, 30_000);

    // Tampered payload: the price is lowered after signing.
    let mut tampered = seal(&key, &a);
    tampered.payload = tampered.payload.replace("1000", "1");
    let e = book.accept(tampered, None, NOW).unwrap_err();
    assert_eq!(e, AdError::Signature(SigningError::BadSignature));
    assert!(e.is_forgery());

    // Mallory signs an ad that claims to be the node.
    let e = book.accept(seal(&mallory, &a), None, NOW).unwrap_err();
    assert!(matches!(
        e,
        AdError::Signature(SigningError::SignerMismatch { .. })
    ));
    assert!(e.is_forgery());

    // A valid ad put on the network by someone else.
    let e = book
        .accept(
            seal(&key, &a),
            Some(mallory.public().to_peer_id().into()),
            NOW,
        )
        .unwrap_err();
    assert!(matches!(e, AdError::WrongPublisher { .. }));
    assert!(book.is_empty());
}

#[test]
fn replayed_and_expired_ads_are_dropped_but_not_forgeries() {
    let key = Keypair::generate_ed25519();
    let mut book = AdBook::default();
    let first = seal(&key, &ad(&key, 5, NOW, 30_000));
    book.accept(first.clone(), None, NOW).unwrap();

    let e = book.accept(first, None, NOW).unwrap_err();
    assert_eq!(e, AdError::Replayed { seq: 5, latest: 5 });
    assert!(!e.is_forgery());
    let older = seal(&key, &ad(&key, 4, NOW, 30_000));
    assert!(matches!(
        book.accept(older, None, NOW),
        Err(AdError::Replayed { .. })
    ));

    let stale = seal(&key, &ad(&key, 9, UnixMillis(NOW.0 - 40_000), 30_000));
    let e = book.accept(stale, None, NOW).unwrap_err();
    assert_eq!(e, AdError::Expired { ago_ms: 10_000 });
    assert!(!e.is_forgery());

    let future = seal(&key, &ad(&key, 9, UnixMillis(NOW.0 + 120_000), 30_000));
    assert!(book.accept(future, None, NOW).unwrap_err().is_forgery());

    let newer = seal(&key, &ad(&key, 6, NOW, 30_000));
    assert_eq!(book.accept(newer, None, NOW).unwrap().ad.seq, 6);
}

#[test]
fn ads_age_out() {
    let key = Keypair::generate_ed25519();
    let mut book = AdBook::default();
    let a = ad(&key, 1, NOW, 5_000);
    book.accept(seal(&key, &a), None, NOW).unwrap();
    let later = UnixMillis(NOW.0 + 5_000);
    assert!(book.get(&a.node_id, later).is_none());
    assert_eq!(book.offering("m", later).count(), 0);
    assert_eq!(book.expire(later), vec![a.node_id]);
    assert!(book.is_empty());
}

#[test]
fn limits_are_enforced() {
    let key = Keypair::generate_ed25519();
    let mut book = AdBook::with_capacity(1);
    let mut a = ad(&key, 1, NOW, 10);
    assert!(matches!(
        book.accept(seal(&key, &a), None, NOW),
        Err(AdError::Invalid(_))
    ));
    a.ttl_ms = 30_000;
    // Open spans out of order.
    a.availability = Some(Availability {
        open: vec![
            Span {
                from: UnixMillis(NOW.0 + 10),
                until: UnixMillis(NOW.0 + 20),
            },
            Span {
                from: NOW,
                until: UnixMillis(NOW.0 + 5),
            },
        ],
        until: UnixMillis(NOW.0 + 100),
    });
    assert!(matches!(
        book.accept(seal(&key, &a), None, NOW),
        Err(AdError::Invalid(_))
    ));
    a.availability = None;
    a.pools = vec!["EU West".into()];
    assert!(matches!(
        book.accept(seal(&key, &a), None, NOW),
        Err(AdError::Invalid(_))
    ));
    a.pools = vec!["eu-west".into()];
    book.accept(seal(&key, &a), None, NOW).unwrap();
    let other = Keypair::generate_ed25519();
    let b = ad(&other, 1, NOW, 30_000);
    assert_eq!(
        book.accept(seal(&other, &b), None, NOW).unwrap_err(),
        AdError::Full
    );
    assert!(matches!(
        decode_ad(&vec![b'x'; MAX_AD_BYTES + 1]),
        Err(AdError::TooLarge { .. })
    ));
    assert!(matches!(decode_ad(b"{}"), Err(AdError::Malformed(_))));
}

#[test]
fn an_ad_is_open_only_inside_its_spans_and_says_when_it_is_back() {
    let key = Keypair::generate_ed25519();
    let mut a = ad(&key, 1, NOW, 30_000);
    assert!(a.is_open(NOW), "no schedule: always open");
    let back = UnixMillis(NOW.0 + 3_600_000);
    a.availability = Some(Availability {
        open: vec![Span {
            from: back,
            until: UnixMillis(back.0 + 3_600_000),
        }],
        until: UnixMillis(NOW.0 + 7 * 86_400_000),
    });
    assert!(!a.is_open(NOW));
    assert!(a.is_open(back));
    let status = a.availability.as_ref().unwrap().status(NOW);
    assert_eq!((status.open, status.opens_at), (false, Some(back)));
    a.accepting_jobs = false;
    assert!(!a.is_open(back), "paused wins over the schedule");
}
