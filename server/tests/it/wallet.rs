//! A Lightning wallet as far as LNURL-auth goes: a BIP32 master key from a
//! seed, LUD-05 linking keys (one per domain), LUD-04 signatures over `k1`.
//! Real secp256k1 keys, so the server is checked as a wallet would use it.

use bech32::Hrp;
use hmac::{Hmac, Mac};
use reqwest::blocking::Client;
use secp256k1::{ecdsa, Message, PublicKey, Scalar, SecretKey};
use serde_json::Value;
use sha2::{Sha256, Sha512};
use wire::accounts::LnurlLogin;

use crate::harness::{http, Server};

pub(crate) struct Wallet {
    key: SecretKey,
    chain_code: [u8; 32],
}

fn hmac_sha512(key: &[u8], data: &[u8]) -> [u8; 64] {
    let mut mac = Hmac::<Sha512>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().into()
}

impl Wallet {
    pub(crate) fn from_seed(seed: &[u8]) -> Wallet {
        let i = hmac_sha512(b"Bitcoin seed", seed);
        Wallet {
            key: SecretKey::from_secret_bytes(i[..32].try_into().unwrap()).unwrap(),
            chain_code: i[32..].try_into().unwrap(),
        }
    }

    /// BIP32 CKDpriv.
    fn child(&self, index: u32) -> Wallet {
        let mut data = Vec::with_capacity(37);
        if index >= 0x8000_0000 {
            data.push(0);
            data.extend_from_slice(&self.key.to_secret_bytes());
        } else {
            data.extend_from_slice(&PublicKey::from_secret_key(&self.key).serialize());
        }
        data.extend_from_slice(&index.to_be_bytes());
        let i = hmac_sha512(&self.chain_code, &data);
        let tweak = Scalar::from_be_bytes(i[..32].try_into().unwrap()).unwrap();
        Wallet {
            key: self.key.add_tweak(&tweak).unwrap(),
            chain_code: i[32..].try_into().unwrap(),
        }
    }

    /// LUD-05: the linking key for `domain`.
    pub(crate) fn linking_key(&self, domain: &str) -> SecretKey {
        let hashing_key = self.child(0x8000_0000 + 138).child(0).key;
        let mut mac = Hmac::<Sha256>::new_from_slice(&hashing_key.to_secret_bytes()).unwrap();
        mac.update(domain.as_bytes());
        let material = mac.finalize().into_bytes();
        let mut node = self.child(0x8000_0000 + 138);
        for chunk in material[..16].chunks(4) {
            node = node.child(u32::from_be_bytes(chunk.try_into().unwrap()));
        }
        node.key
    }

    /// The callback URL a wallet calls for `lnurl`: `k1` signed with this
    /// wallet's key for the callback's domain.
    pub(crate) fn signed_callback(&self, lnurl: &str) -> String {
        let url = decode_lnurl(lnurl);
        let parsed = reqwest::Url::parse(&url).unwrap();
        let domain = parsed.host_str().unwrap().to_owned();
        let k1 = parsed
            .query_pairs()
            .find(|(k, _)| k == "k1")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        sign(&url, &k1, &self.linking_key(&domain), None)
    }
}

/// The URL inside a bech32 `LNURL1…`.
pub(crate) fn decode_lnurl(lnurl: &str) -> String {
    let (hrp, data) = bech32::decode(lnurl).unwrap();
    assert_eq!(hrp, Hrp::parse("lnurl").unwrap());
    String::from_utf8(data).unwrap()
}

/// `url` with `sig` (by `key`, over `k1`) and `key` (the public key,
/// or `claimed` instead) appended.
pub(crate) fn sign(url: &str, k1: &str, key: &SecretKey, claimed: Option<&PublicKey>) -> String {
    let digest: [u8; 32] = hex::decode(k1).unwrap().try_into().unwrap();
    let sig = ecdsa::sign(Message::from_digest(digest), key);
    let public = claimed
        .copied()
        .unwrap_or_else(|| PublicKey::from_secret_key(key));
    format!(
        "{url}&sig={}&key={}",
        hex::encode(sig.serialize_der()),
        hex::encode(public.serialize())
    )
}

/// A browser's view of the site: cookies kept, and this site's `Origin`
/// on every request (as a page of the site sends it).
pub(crate) fn browser(server: &Server) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::ORIGIN, server.public_url.parse().unwrap());
    Client::builder()
        .cookie_store(true)
        .default_headers(headers)
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Starts a Lightning login in `browser`.
pub(crate) fn start_login(server: &Server, browser: &Client, link: bool) -> LnurlLogin {
    let path = if link {
        "/api/v1/auth/lnurl?link=true"
    } else {
        "/api/v1/auth/lnurl"
    };
    let r = browser.post(server.url(path)).send().unwrap();
    assert!(r.status().is_success(), "{}", r.text().unwrap());
    r.json().unwrap()
}

/// The page's wait for its login, not waiting longer than `wait` seconds.
pub(crate) fn collect(
    server: &Server,
    browser: &Client,
    login: &LnurlLogin,
    wait: u64,
) -> (u16, Value) {
    let r = browser
        .get(server.url(&format!(
            "/api/v1/auth/lnurl/{}?poll={}&wait={wait}",
            login.id, login.poll_token
        )))
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

/// Signs `browser` in with `wallet`, as the sign-in page and the wallet do.
pub(crate) fn sign_in(server: &Server, browser: &Client, wallet: &Wallet) {
    let login = start_login(server, browser, false);
    let r = http()
        .get(wallet.signed_callback(&login.lnurl))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    let (status, body) = collect(server, browser, &login, 5);
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("done")),
        "{body}\n{}",
        server.logs()
    );
}

/// Makes an API key with `scopes` in a signed-in `browser`; its secret and id.
pub(crate) fn create_key(
    server: &Server,
    browser: &Client,
    name: &str,
    scopes: &[&str],
) -> (String, String) {
    let r = browser
        .post(server.url("/api/v1/account/keys"))
        .json(&serde_json::json!({ "name": name, "scopes": scopes }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    let created: Value = r.json().unwrap();
    (
        created["secret"].as_str().unwrap().to_owned(),
        created["key"]["id"].as_str().unwrap().to_owned(),
    )
}
