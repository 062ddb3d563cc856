//! Newtypes for the domain values that travel between processes.

use std::fmt;
use std::str::FromStr;

use libp2p_identity::PeerId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// A node's identity: the libp2p peer id derived from its ed25519 key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(PeerId);

impl NodeId {
    pub fn peer_id(&self) -> PeerId {
        self.0
    }
}

impl From<PeerId> for NodeId {
    fn from(p: PeerId) -> Self {
        NodeId(p)
    }
}

impl FromStr for NodeId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PeerId::from_str(s)
            .map(NodeId)
            .map_err(|_| ParseIdError::NodeId(truncate(s)))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

/// A SHA-256 digest, written as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    pub fn of(bytes: &[u8]) -> Self {
        Sha256Digest(Sha256::digest(bytes).into())
    }

    /// The digest of the canonical JSON encoding of `value`: the bytes that
    /// `serde_json::to_vec` writes, which are the same in every process that
    /// shares these types.
    pub fn of_json<T: Serialize>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_vec(value).map(|b| Self::of(&b))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Sha256Digest(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest as a multihash: `sha2-256` (0x12), 32 bytes, the digest.
    /// The key under which IPFS and libp2p DHTs keep a CID's providers.
    pub fn multihash(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(34);
        out.extend_from_slice(&[0x12, 0x20]);
        out.extend_from_slice(&self.0);
        out
    }

    /// The CIDv1 of the bytes this digests, with the raw codec (0x55): how
    /// every IPFS and libp2p implementation names a file by its content.
    pub fn cid_v1_raw(&self) -> Vec<u8> {
        let mut out = vec![0x01, 0x55];
        out.extend_from_slice(&self.multihash());
        out
    }

    /// [`Self::cid_v1_raw`] as text: multibase base32 (`b…`), e.g.
    /// `bafkrei…`, as `ipfs` and js-libp2p print it.
    pub fn cid_text(&self) -> String {
        format!("b{}", crate::accounts::base32_lower(&self.cid_v1_raw()))
    }
}

impl FromStr for Sha256Digest {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ParseIdError::Digest(truncate(s)));
        }
        hex::decode_to_slice(s, &mut out).map_err(|_| ParseIdError::Digest(truncate(s)))?;
        Ok(Sha256Digest(out))
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

/// The content hash of a model file: the SHA-256 of its bytes.
pub type ModelHash = Sha256Digest;

/// A job's id: 128 random bits as 32 hex characters, chosen by the server.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(String);

impl JobId {
    /// Wraps 16 random bytes; the caller supplies the randomness so that
    /// this crate needs no RNG.
    pub fn from_random(bytes: [u8; 16]) -> Self {
        JobId(hex::encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for JobId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(JobId(s.to_owned()))
        } else {
            Err(ParseIdError::JobId(truncate(s)))
        }
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({})", self.0)
    }
}

/// An amount of money in millisatoshis. Money is never a float.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct MilliSats(pub u64);

impl MilliSats {
    pub fn sats_floor(self) -> u64 {
        self.0 / 1000
    }

    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for MilliSats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{} sat", self.0 / 1000)
        } else {
            write!(f, "{}.{:03} sat", self.0 / 1000, self.0 % 1000)
        }
    }
}

impl fmt::Debug for MilliSats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}msat", self.0)
    }
}

/// Milliseconds since the Unix epoch (UTC).
#[derive(
    Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Debug,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// The current time. Not available in the browser build, where the
    /// caller reads the clock through `js_sys` instead.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        UnixMillis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// Absolute difference in milliseconds.
    pub fn abs_diff(self, other: UnixMillis) -> u64 {
        self.0.abs_diff(other.0)
    }

    /// This time plus `d` (saturating).
    pub fn plus(self, d: std::time::Duration) -> UnixMillis {
        UnixMillis(
            self.0
                .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }

    /// Milliseconds from `earlier` to this time; 0 if `earlier` is later.
    pub fn since(self, earlier: UnixMillis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

macro_rules! serde_via_str {
    ($t:ty, $expecting:literal) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$t, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

serde_via_str!(NodeId, "a libp2p peer id");
serde_via_str!(Sha256Digest, "64 lowercase hex characters");
serde_via_str!(JobId, "a job id of 32 lowercase hex characters");

/// Schemas of the ids that travel as strings, for the OpenAPI document.
#[cfg(feature = "openapi")]
macro_rules! string_schema {
    ($t:ty, $description:literal, $pattern:expr) => {
        impl utoipa::PartialSchema for $t {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some($description))
                    .pattern($pattern)
                    .into()
            }
        }
        impl utoipa::ToSchema for $t {}
    };
}

#[cfg(feature = "openapi")]
string_schema!(NodeId, "A node's libp2p peer id (base58).", None::<String>);
#[cfg(feature = "openapi")]
string_schema!(
    Sha256Digest,
    "A SHA-256 digest: 64 lowercase hex characters.",
    Some("^[0-9a-f]{64}$")
);
#[cfg(feature = "openapi")]
string_schema!(
    JobId,
    "A job id: 32 lowercase hex characters.",
    Some("^[0-9a-f]{32}$")
);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseIdError {
    #[error("`{0}` is not a valid peer id")]
    NodeId(String),
    #[error("`{0}` is not a SHA-256 digest (64 lowercase hex characters)")]
    Digest(String),
    #[error("`{0}` is not a job id (32 lowercase hex characters)")]
    JobId(String),
}

/// Keeps error messages short when the offending input is huge.
fn truncate(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_named_as_ipfs_names_the_file() {
        // The empty file: the CID every IPFS implementation gives it.
        let empty = Sha256Digest::of(b"");
        assert_eq!(
            empty.cid_text(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
        assert_eq!(&empty.multihash()[..2], &[0x12, 0x20]);
        assert_eq!(&empty.cid_v1_raw()[2..], empty.multihash().as_slice());
    }

    #[test]
    fn node_id_round_trips_through_json() {
        let peer = libp2p_identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let id = NodeId::from(peer);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{peer}\""));
        assert_eq!(serde_json::from_str::<NodeId>(&json).unwrap(), id);
    }

    #[test]
    fn node_id_rejects_garbage_with_a_clear_message() {
        let err = serde_json::from_str::<NodeId>("\"not-a-peer\"").unwrap_err();
        assert!(err.to_string().contains("not a valid peer id"), "{err}");
    }

    #[test]
    fn digest_parses_only_lowercase_hex_of_the_right_length() {
        let d = Sha256Digest::of(b"abc");
        assert_eq!(
            d.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.to_string().parse::<Sha256Digest>().unwrap(), d);
        assert!(d
            .to_string()
            .to_uppercase()
            .parse::<Sha256Digest>()
            .is_err());
        assert!("abcd".parse::<Sha256Digest>().is_err());
    }

    #[test]
    fn job_id_is_32_lowercase_hex() {
        let id = JobId::from_random([0xab; 16]);
        assert_eq!(id.as_str().len(), 32);
        assert_eq!(id.as_str().parse::<JobId>().unwrap(), id);
        assert!("ABABABABABABABABABABABABABABABAB".parse::<JobId>().is_err());
        assert!("../etc/passwd".parse::<JobId>().is_err());
    }

    #[test]
    fn millisats_display_in_sats() {
        assert_eq!(MilliSats(2000).to_string(), "2 sat");
        assert_eq!(MilliSats(1500).to_string(), "1.500 sat");
    }

    #[test]
    fn long_invalid_input_is_truncated_in_errors() {
        let long = "x".repeat(10_000);
        let msg = long.parse::<NodeId>().unwrap_err().to_string();
        assert!(msg.len() < 200);
    }
}
