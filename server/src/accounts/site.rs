//! The server's public URL, and what follows from it: the WebAuthn relying
//! party (its host) and origin, the origin that cookie-authenticated
//! requests must come from, whether cookies are `Secure`, and the LNURL
//! callback's address.

use std::net::SocketAddr;

use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("--public-url `{0}` is not a URL")]
    NotAUrl(String),
    #[error("--public-url must be http:// or https://, got `{0}`")]
    Scheme(String),
    #[error(
        "--public-url `{url}` names an IP address; passkeys need a domain name: \
         use http://localhost:{port} here, or the domain you serve on"
    )]
    IpAddress { url: String, port: u16 },
    #[error(
        "--public-url `{0}` is plain http on a host other than localhost; browsers allow \
         passkeys only on https (or http://localhost): use https:// behind your TLS proxy"
    )]
    InsecureHost(String),
    #[error(
        "--public-url `{url}` says port {public}, but the server listens on {listen}: \
         passkeys and sign-in cookies would not work; set --public-url http://localhost:{listen}"
    )]
    PortMismatch {
        url: String,
        public: u16,
        listen: u16,
    },
    #[error("--public-url `{0}` must be the site's root, without a path, query or fragment")]
    HasPath(String),
    #[error("the WebAuthn relying party for `{url}` is invalid: {reason}")]
    WebAuthn { url: String, reason: String },
}

/// The site as browsers see it.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    url: Url,
    origin: String,
}

impl Site {
    /// From `--public-url` (default `http://localhost:<port it listens on>`),
    /// refusing a URL that passkeys or the session cookie could not work on.
    pub(crate) fn new(public_url: Option<&str>, listen: SocketAddr) -> Result<Site, SiteError> {
        let text = public_url
            .map(str::to_owned)
            .unwrap_or_else(|| format!("http://localhost:{}", listen.port()));
        let url = Url::parse(&text).map_err(|_| SiteError::NotAUrl(text.clone()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SiteError::Scheme(text));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(_) => {
                return Err(SiteError::IpAddress {
                    url: text,
                    port: listen.port(),
                })
            }
            None => return Err(SiteError::NotAUrl(text)),
        };
        if (url.path() != "/" && !url.path().is_empty())
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(SiteError::HasPath(text));
        }
        let local = host == "localhost" || host.ends_with(".localhost");
        if url.scheme() == "http" && !local {
            return Err(SiteError::InsecureHost(text));
        }
        // Served straight to the browser on this machine: the port must be
        // the one it listens on (behind a proxy, the URL is https).
        if url.scheme() == "http" && local {
            let public = url.port_or_known_default().unwrap_or(80);
            if public != listen.port() {
                return Err(SiteError::PortMismatch {
                    url: text,
                    public,
                    listen: listen.port(),
                });
            }
        }
        let origin = url.origin().ascii_serialization();
        let site = Site { url, origin };
        site.webauthn()?;
        Ok(site)
    }

    /// `scheme://host[:port]`, as browsers send it in `Origin`.
    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    /// Cookies are `Secure` when the site is https.
    pub(crate) fn secure(&self) -> bool {
        self.url.scheme() == "https"
    }

    /// The WebAuthn relying party id: the host.
    pub(crate) fn rp_id(&self) -> &str {
        self.url.host_str().unwrap_or("localhost")
    }

    /// An absolute URL for `path` on this site.
    pub(crate) fn absolute(&self, path: &str) -> String {
        format!("{}{}", self.origin, path)
    }

    pub(super) fn webauthn(&self) -> Result<webauthn_rs::Webauthn, SiteError> {
        let err = |e: webauthn_rs::prelude::WebauthnError| SiteError::WebAuthn {
            url: self.url.to_string(),
            reason: e.to_string(),
        };
        webauthn_rs::WebauthnBuilder::new(self.rp_id(), &self.url)
            .map_err(err)?
            .rp_name("Infernet")
            .timeout(super::CHALLENGE_TTL)
            .build()
            .map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn the_default_is_localhost_on_the_listening_port() {
        let site = Site::new(None, listen(8080)).unwrap();
        assert_eq!(site.origin(), "http://localhost:8080");
        assert_eq!(site.rp_id(), "localhost");
        assert!(!site.secure());
    }

    #[test]
    fn urls_passkeys_cannot_work_on_are_refused_at_start_up() {
        assert!(matches!(
            Site::new(Some("http://127.0.0.1:8080"), listen(8080)),
            Err(SiteError::IpAddress { .. })
        ));
        assert!(matches!(
            Site::new(Some("http://infernet.example"), listen(8080)),
            Err(SiteError::InsecureHost(_))
        ));
        assert!(matches!(
            Site::new(Some("http://localhost:9000"), listen(8080)),
            Err(SiteError::PortMismatch { .. })
        ));
        assert!(matches!(
            Site::new(Some("https://infernet.example/app"), listen(8080)),
            Err(SiteError::HasPath(_))
        ));
        assert!(matches!(
            Site::new(Some("ftp://x.example"), listen(8080)),
            Err(SiteError::Scheme(_))
        ));
    }

    #[test]
    fn https_behind_a_proxy_is_secure_on_any_listening_port() {
        let site = Site::new(Some("https://infernet.example"), listen(8080)).unwrap();
        assert_eq!(site.origin(), "https://infernet.example");
        assert_eq!(site.rp_id(), "infernet.example");
        assert!(site.secure());
    }
}
