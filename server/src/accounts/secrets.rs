//! Bearer secrets (session tokens, API keys, enrolment tokens, LNURL poll
//! tokens): random, shown once, stored only as their SHA-256.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// `n` random bytes from the OS-seeded CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// A fresh secret: `prefix` and 256 random bits in lowercase base32.
pub(crate) fn new_secret(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        wire::accounts::base32_lower(&random_bytes::<32>())
    )
}

/// A short public id (`prefix` and 80 random bits) for rows that must be
/// named without naming their secret.
pub(crate) fn new_id(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        wire::accounts::base32_lower(&random_bytes::<10>())
    )
}

/// What is stored in place of a secret, and what it is looked up by.
pub(crate) fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_fresh_and_stored_only_as_hashes() {
        let a = new_secret("sk-inf-");
        let b = new_secret("sk-inf-");
        assert_ne!(a, b);
        assert!(a.starts_with("sk-inf-") && a.len() == 7 + 52);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert!(!hash(&a).contains(&a[7..]));
    }
}
