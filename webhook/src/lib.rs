#![forbid(unsafe_code)]
//! gitops-guard's validating admission webhook.
//!
//! The decision is made by [`gitops_guard_core::decide`]; this crate is the server around it:
//!
//! - [`App`]: the shared state (config, owner caches, metrics, readiness) and the two axum
//!   routers — [`App::router`] (`POST /validate`, served over TLS) and [`App::probe_router`]
//!   (`/healthz`, `/readyz`, `/metrics`, plain HTTP on its own port). Tests drive them with
//!   `tower::ServiceExt::oneshot`.
//! - [`handler`]: the synchronous hot path (decode → decide → encode), also used by the benchmark.
//! - [`cache`]: the owner and namespace caches behind [`gitops_guard_core::Lookup`], fed by
//!   Kubernetes watches ([`cache::watch`]), or a [`cache::StaticLookup`].
//! - [`Server`]: binds the listeners, reloads the TLS certificate ([`tls`]) and the config file
//!   ([`config_file`]) when they change on disk, and drains on shutdown. [`run`] is the binary's
//!   whole life; [`cluster`] holds what it asks the API server besides its watches.

pub mod app;
pub mod cache;
pub mod cli;
pub mod cluster;
pub mod config_file;
pub mod files;
pub mod handler;
pub mod logging;
pub mod metrics;
pub mod readiness;
pub mod server;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use app::App;
pub use app::ReviewLimits;
pub use cache::{Caches, StaticLookup};
pub use cli::{Args, LogFormat};
pub use metrics::Metrics;
pub use readiness::Readiness;
pub use server::{Cluster, ConnectionLimits, Server, ServerOptions, run};

/// This build's version (the workspace version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The Git commit this build was made from: `GITOPS_GUARD_COMMIT` at build time (scripts/release.sh
/// and scripts/build-image.sh set it), `None` for a plain `cargo build`.
pub const COMMIT: Option<&str> = option_env!("GITOPS_GUARD_COMMIT");

/// Everything that can go wrong in the webhook. Messages name the file, address or object
/// concerned and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the config file {path}: {source}")]
    ConfigRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the config file {path} is invalid: {source}. Fix it (every key is optional; an empty file means all defaults)"
    )]
    ConfigInvalid {
        path: PathBuf,
        source: gitops_guard_core::Error,
    },
    #[error("cannot read the TLS {what} file {path}: {source}")]
    TlsRead {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the TLS certificate {cert} and key {key} cannot be used: {why}. They must be PEM files holding the serving certificate (chain) and its private key"
    )]
    Tls {
        cert: PathBuf,
        key: PathBuf,
        why: String,
    },
    #[error("cannot listen on {addr} for the {what}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read the kubeconfig {path}: {why}")]
    Kubeconfig { path: PathBuf, why: String },
    #[error(
        "cannot configure the Kubernetes client: {0}. Pass --kubeconfig (or KUBECONFIG), or run in a pod with a service account"
    )]
    KubeClient(String),
    #[error("the Kubernetes API failed: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Review(#[from] gitops_guard_core::Error),
    #[error("cannot set up logging: {0}")]
    Logging(String),
    #[error("the {what} server failed: {source}")]
    Serve {
        what: &'static str,
        source: std::io::Error,
    },
}
