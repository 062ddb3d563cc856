//! Signed envelopes: a JSON payload, the node's public key and an ed25519
//! signature over a domain tag and the payload's exact bytes.
//!
//! The payload travels as a string so that verification never depends on
//! re-serialising JSON the same way twice.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use libp2p_identity::{KeyType, Keypair, PublicKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::NodeId;

/// A payload type that nodes sign. `DOMAIN` separates the kinds of message,
/// so that a signature over a heartbeat can never pass as a receipt.
pub trait Signable: Serialize + DeserializeOwned {
    const DOMAIN: &'static str;
    /// The node that claims to have signed this payload.
    fn signer(&self) -> NodeId;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedEnvelope {
    /// The signer's public key, protobuf-encoded as libp2p does, in base64.
    pub public_key: String,
    /// The payload's JSON text, exactly as signed.
    pub payload: String,
    /// The ed25519 signature in base64.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("the public key is not a valid base64 protobuf-encoded libp2p key")]
    BadPublicKey,
    #[error("only ed25519 keys are accepted")]
    NotEd25519,
    #[error("the signature is not valid base64")]
    BadSignatureEncoding,
    #[error("the signature does not match the payload and public key")]
    BadSignature,
    #[error("the payload claims signer {claimed} but was signed by {actual}")]
    SignerMismatch { claimed: String, actual: String },
    #[error("the payload is not valid: {0}")]
    Payload(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

fn signing_bytes(domain: &str, payload: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(domain.len() + 1 + payload.len());
    bytes.extend_from_slice(domain.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(payload.as_bytes());
    bytes
}

impl SignedEnvelope {
    /// Serialises `payload` and signs it with `keypair`.
    pub fn seal<T: Signable>(keypair: &Keypair, payload: &T) -> Result<Self, SigningError> {
        let text =
            serde_json::to_string(payload).map_err(|e| SigningError::Payload(e.to_string()))?;
        let signature = keypair
            .sign(&signing_bytes(T::DOMAIN, &text))
            .map_err(|e| SigningError::Sign(e.to_string()))?;
        Ok(SignedEnvelope {
            public_key: B64.encode(keypair.public().encode_protobuf()),
            payload: text,
            signature: B64.encode(signature),
        })
    }

    /// The key that signed this envelope, checked to be ed25519.
    pub fn public_key(&self) -> Result<PublicKey, SigningError> {
        let bytes = B64
            .decode(&self.public_key)
            .map_err(|_| SigningError::BadPublicKey)?;
        let key = PublicKey::try_decode_protobuf(&bytes).map_err(|_| SigningError::BadPublicKey)?;
        if key.key_type() != KeyType::Ed25519 {
            return Err(SigningError::NotEd25519);
        }
        Ok(key)
    }

    /// Verifies the signature, parses the payload and checks that the payload's
    /// claimed signer is the key's owner. Only then is the payload returned.
    pub fn open<T: Signable>(&self) -> Result<T, SigningError> {
        let key = self.public_key()?;
        let signature = B64
            .decode(&self.signature)
            .map_err(|_| SigningError::BadSignatureEncoding)?;
        if !key.verify(&signing_bytes(T::DOMAIN, &self.payload), &signature) {
            return Err(SigningError::BadSignature);
        }
        let payload: T = serde_json::from_str(&self.payload)
            .map_err(|e| SigningError::Payload(e.to_string()))?;
        let actual = NodeId::from(key.to_peer_id());
        let claimed = payload.signer();
        if claimed != actual {
            return Err(SigningError::SignerMismatch {
                claimed: claimed.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    struct Note {
        node_id: NodeId,
        text: String,
    }
    impl Signable for Note {
        const DOMAIN: &'static str = "test/note";
        fn signer(&self) -> NodeId {
            self.node_id
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    struct OtherNote {
        node_id: NodeId,
        text: String,
    }
    impl Signable for OtherNote {
        const DOMAIN: &'static str = "test/other";
        fn signer(&self) -> NodeId {
            self.node_id
        }
    }

    fn note(key: &Keypair) -> Note {
        Note {
            node_id: key.public().to_peer_id().into(),
            text: "hello".into(),
        }
    }

    #[test]
    fn sealed_envelope_opens_to_the_same_payload() {
        let key = Keypair::generate_ed25519();
        let env = SignedEnvelope::seal(&key, &note(&key)).unwrap();
        assert_eq!(env.open::<Note>().unwrap(), note(&key));
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let key = Keypair::generate_ed25519();
        let mut env = SignedEnvelope::seal(&key, &note(&key)).unwrap();
        env.payload = env.payload.replace("hello", "hellp");
        assert_eq!(env.open::<Note>().unwrap_err(), SigningError::BadSignature);
    }

    #[test]
    fn signature_from_another_key_is_rejected() {
        let key = Keypair::generate_ed25519();
        let other = Keypair::generate_ed25519();
        let mut env = SignedEnvelope::seal(&key, &note(&key)).unwrap();
        env.signature = SignedEnvelope::seal(&other, &note(&key)).unwrap().signature;
        assert_eq!(env.open::<Note>().unwrap_err(), SigningError::BadSignature);
    }

    #[test]
    fn payload_claiming_another_signer_is_rejected() {
        let key = Keypair::generate_ed25519();
        let victim = Keypair::generate_ed25519();
        let env = SignedEnvelope::seal(&key, &note(&victim)).unwrap();
        assert!(matches!(
            env.open::<Note>().unwrap_err(),
            SigningError::SignerMismatch { .. }
        ));
    }

    #[test]
    fn signature_does_not_transfer_across_domains() {
        let key = Keypair::generate_ed25519();
        let env = SignedEnvelope::seal(&key, &note(&key)).unwrap();
        assert_eq!(
            env.open::<OtherNote>().unwrap_err(),
            SigningError::BadSignature
        );
    }

    #[test]
    fn garbage_key_and_signature_are_reported_as_such() {
        let key = Keypair::generate_ed25519();
        let mut env = SignedEnvelope::seal(&key, &note(&key)).unwrap();
        env.signature = "%%%".into();
        assert_eq!(
            env.open::<Note>().unwrap_err(),
            SigningError::BadSignatureEncoding
        );
        env.public_key = "AAAA".into();
        assert_eq!(env.open::<Note>().unwrap_err(), SigningError::BadPublicKey);
    }
}
