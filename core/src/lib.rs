#![forbid(unsafe_code)]
//! The decision core of gitops-guard.
//!
//! Everything here is pure: it decodes what the API server sends, works out who manages an object
//! ([`owner`]), who is asking ([`identity`]), what an exception allows ([`exception`]), and decides
//! ([`decide()`]). There is no I/O, no async and no Kubernetes client: the webhook and the
//! `kubectl-gitops` plugin are thin shells around this crate, which is why they agree.

pub mod config;
pub mod custody;
pub mod decide;
pub mod diff;
pub mod exception;
pub mod identity;
pub mod ingress;
pub mod managed_fields;
pub mod object;
pub mod owner;
pub mod review;
pub mod workload;

pub use config::{Config, Mode};
pub use decide::{Decision, Lookup, Reason, Verdict, decide};
pub use identity::Identity;
pub use object::Object;
pub use owner::{NamespaceInfo, OwnerInfo, OwnerKind, OwnerRef};
pub use review::{AdmissionRequest, Operation};

/// Everything that can go wrong in the core: bad input, never a bug.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid config: {0}")]
    Config(String),
    #[error("malformed AdmissionReview: {0}")]
    Review(String),
    #[error("malformed object: {0}")]
    Object(String),
    #[error("invalid field path {path:?}: {why}")]
    FieldPath { path: String, why: String },
}
