//! The app's pages other than the Nodes page, each loaded when first
//! visited: with `#[lazy_route]` the view's code goes into a wasm module of
//! its own (`tools/wasm-split` at build time), so that a first visit of the
//! Nodes page downloads only what that page needs. On the server these are
//! plain routes.
//!
//! Each impl is written out: a lazy function's id comes from where it is in
//! the source, so they cannot come from one macro.

use leptos::prelude::*;
use leptos_router::{lazy_route, LazyRoute};

use crate::auth::RequireAccount;
use crate::pages;

#[derive(Debug)]
pub(crate) struct NodeRoute;

#[lazy_route]
impl LazyRoute for NodeRoute {
    fn data() -> Self {
        NodeRoute
    }
    fn view(_this: Self) -> AnyView {
        view! { <pages::node::NodePage /> }.into_any()
    }
}

#[derive(Debug)]
pub(crate) struct RunRoute;

#[lazy_route]
impl LazyRoute for RunRoute {
    fn data() -> Self {
        RunRoute
    }
    fn view(_this: Self) -> AnyView {
        view! {
            <RequireAccount>
                <pages::run::RunPage />
            </RequireAccount>
        }
        .into_any()
    }
}

#[derive(Debug)]
pub(crate) struct JobsRoute;

#[lazy_route]
impl LazyRoute for JobsRoute {
    fn data() -> Self {
        JobsRoute
    }
    fn view(_this: Self) -> AnyView {
        view! {
            <RequireAccount>
                <pages::jobs::JobsPage />
            </RequireAccount>
        }
        .into_any()
    }
}

#[derive(Debug)]
pub(crate) struct JobRoute;

#[lazy_route]
impl LazyRoute for JobRoute {
    fn data() -> Self {
        JobRoute
    }
    fn view(_this: Self) -> AnyView {
        view! {
            <RequireAccount>
                <pages::jobs::JobPage />
            </RequireAccount>
        }
        .into_any()
    }
}

#[derive(Debug)]
pub(crate) struct SignInRoute;

#[lazy_route]
impl LazyRoute for SignInRoute {
    fn data() -> Self {
        SignInRoute
    }
    fn view(_this: Self) -> AnyView {
        view! { <pages::sign_in::SignInPage /> }.into_any()
    }
}

#[derive(Debug)]
pub(crate) struct SettingsRoute;

#[lazy_route]
impl LazyRoute for SettingsRoute {
    fn data() -> Self {
        SettingsRoute
    }
    fn view(_this: Self) -> AnyView {
        view! { <pages::settings::SettingsPage /> }.into_any()
    }
}

#[derive(Debug)]
pub(crate) struct FleetRoute;

#[lazy_route]
impl LazyRoute for FleetRoute {
    fn data() -> Self {
        FleetRoute
    }
    fn view(_this: Self) -> AnyView {
        view! { <pages::my_nodes::MyNodesPage /> }.into_any()
    }
}

#[derive(Debug)]
pub(crate) struct FleetNodeRoute;

#[lazy_route]
impl LazyRoute for FleetNodeRoute {
    fn data() -> Self {
        FleetNodeRoute
    }
    fn view(_this: Self) -> AnyView {
        view! { <pages::fleet_node::FleetNodePage /> }.into_any()
    }
}

#[derive(Debug)]
pub(crate) struct WalletRoute;

#[lazy_route]
impl LazyRoute for WalletRoute {
    fn data() -> Self {
        WalletRoute
    }
    fn view(_this: Self) -> AnyView {
        view! { <pages::wallet::WalletPage /> }.into_any()
    }
}
