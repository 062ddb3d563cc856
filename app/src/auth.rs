//! Signing in and out from the browser: passkeys (WebAuthn) and Lightning
//! (LNURL-auth), over the server's `/api/v1/auth` routes, which set and
//! clear the session cookie. The signed-in account is shared through a
//! [`Me`] context that pages refresh after signing in or out.

use leptos::prelude::*;
use wire::accounts::{
    Account, LnurlLogin, LnurlState, LnurlStatus, PasskeyCeremony, PasskeyFinish, PasskeyStart,
};

use crate::browser::{call, create_passkey, get_passkey};

/// Who is signed in, for every page: whether anyone is (known at once,
/// from the request on the server and from the server's answer when the
/// page hydrates) and the account (loaded).
///
/// Pages that need an account decide from `signed_in` without waiting:
/// a `Suspense` over the account around a page's own `Suspense`s made the
/// server's rendering deadlock (reactive_graph 0.2.16, two worker threads:
/// the outer effect and an inner resource lock each other's nodes).
#[derive(Clone, Copy)]
pub(crate) struct Me {
    pub(crate) account: Resource<Result<Option<Account>, ServerFnError>>,
    signed_in: RwSignal<bool>,
}

impl Me {
    pub(crate) fn provide() -> Me {
        let now = SharedValue::new(crate::api::signed_in_now).into_inner();
        let me = Me {
            account: Resource::new(|| (), |_| crate::api::me()),
            signed_in: RwSignal::new(now),
        };
        provide_context(me);
        me
    }

    pub(crate) fn get() -> Me {
        expect_context::<Me>()
    }

    pub(crate) fn signed_in(self) -> bool {
        self.signed_in.get()
    }

    /// After signing in (`true`) or out (`false`): reads the account again.
    pub(crate) fn changed(self, signed_in: bool) {
        self.signed_in.set(signed_in);
        self.account.refetch();
    }
}

/// A new account with its first passkey (and a session).
pub(crate) async fn sign_up(display_name: String) -> Result<Account, String> {
    let start = PasskeyStart {
        display_name: Some(display_name),
        name: Some(device_name()),
    };
    register(&start).await
}

/// Another passkey for the signed-in account.
pub(crate) async fn add_passkey(name: String) -> Result<Account, String> {
    register(&PasskeyStart {
        display_name: None,
        name: Some(name),
    })
    .await
}

async fn register(start: &PasskeyStart) -> Result<Account, String> {
    let ceremony: PasskeyCeremony =
        call("POST", "/api/v1/auth/passkey/register/start", Some(start)).await?;
    let credential = create_passkey(&ceremony.options).await?;
    let finish = PasskeyFinish {
        challenge_id: ceremony.challenge_id,
        credential,
    };
    call(
        "POST",
        "/api/v1/auth/passkey/register/finish",
        Some(&finish),
    )
    .await
}

/// Signs in with any passkey this device holds for the site.
pub(crate) async fn sign_in_with_passkey() -> Result<Account, String> {
    let ceremony: PasskeyCeremony =
        call("POST", "/api/v1/auth/passkey/sign-in/start", None::<&()>).await?;
    let credential = get_passkey(&ceremony.options).await?;
    let finish = PasskeyFinish {
        challenge_id: ceremony.challenge_id,
        credential,
    };
    call("POST", "/api/v1/auth/passkey/sign-in/finish", Some(&finish)).await
}

/// Starts a Lightning login (`link`: add the wallet's key to the
/// signed-in account instead).
pub(crate) async fn start_lightning(link: bool) -> Result<LnurlLogin, String> {
    let url = if link {
        "/api/v1/auth/lnurl?link=true"
    } else {
        "/api/v1/auth/lnurl"
    };
    call("POST", url, None::<&()>).await
}

/// Waits until the wallet has signed (`Done`) or the login expired.
pub(crate) async fn wait_for_wallet(login: &LnurlLogin) -> Result<LnurlState, String> {
    let url = format!("/api/v1/auth/lnurl/{}?poll={}", login.id, login.poll_token);
    loop {
        let status: LnurlStatus = call("GET", &url, None::<&()>).await?;
        if status.state != LnurlState::Pending {
            return Ok(status.state);
        }
    }
}

pub(crate) async fn sign_out() -> Result<(), String> {
    call::<()>("POST", "/api/v1/auth/sign-out", None::<&()>).await
}

pub(crate) async fn sign_out_everywhere() -> Result<(), String> {
    call::<()>("DELETE", "/api/v1/account/sessions", None::<&()>).await
}

/// A name for a new passkey: which kind of device made it.
fn device_name() -> String {
    #[cfg(feature = "hydrate")]
    {
        let ua = web_sys::window()
            .and_then(|w| w.navigator().user_agent().ok())
            .unwrap_or_default();
        for (needle, name) in [
            ("iPhone", "iPhone"),
            ("iPad", "iPad"),
            ("Android", "Android"),
            ("Mac OS", "Mac"),
            ("Windows", "Windows"),
            ("Linux", "Linux"),
        ] {
            if ua.contains(needle) {
                return format!("Passkey on {name}");
            }
        }
    }
    "Passkey".into()
}

/// Where to go after signing in: the `next` the sign-in page was sent
/// with, if it is a path on this site.
pub(crate) fn safe_next(next: Option<String>) -> String {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//"))
        .unwrap_or_else(|| "/".into())
}

/// `/sign-in?next=<path>`.
pub(crate) fn sign_in_href(path: &str) -> String {
    let mut encoded = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("/sign-in?next={encoded}")
}

/// Shows `children` to a signed-in visitor; sends anyone else to sign in,
/// and back here afterwards.
#[component]
pub(crate) fn RequireAccount(children: ChildrenFn) -> impl IntoView {
    let me = Me::get();
    let location = leptos_router::hooks::use_location();
    move || {
        if me.signed_in() {
            return children().into_any();
        }
        let path = location.pathname.get_untracked();
        let query = location.search.get_untracked();
        let here = if query.is_empty() {
            path
        } else {
            format!("{path}?{}", query.trim_start_matches('?'))
        };
        view! {
            <leptos_router::components::Redirect path=sign_in_href(&here) />
            <p class="empty">
                <a href=sign_in_href(&here)>"Sign in"</a>
                " to see this page."
            </p>
        }
        .into_any()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_site_are_followed_after_signing_in() {
        assert_eq!(safe_next(Some("/jobs".into())), "/jobs");
        assert_eq!(safe_next(Some("//evil.example".into())), "/");
        assert_eq!(safe_next(Some("https://evil.example".into())), "/");
        assert_eq!(safe_next(None), "/");
        assert_eq!(sign_in_href("/jobs/a?b=1"), "/sign-in?next=/jobs/a%3Fb%3D1");
    }
}
