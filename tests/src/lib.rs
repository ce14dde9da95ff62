#![forbid(unsafe_code)]
//! Harness for end-to-end tests against a real Kubernetes control plane.
//!
//! [`Cluster::start`] brings up etcd + kube-apiserver v1.20.2 with `scripts/local-cluster.sh` in a
//! temporary directory and stops it again on drop. [`Cluster::kubectl`] runs the real `kubectl` as
//! one of three users ([`User`]); [`Webhook::start`] runs the `gitops-guard-webhook` binary from the
//! same cargo target directory and registers it with the apiserver.
//!
//! ```no_run
//! use gitops_guard_tests::{Cluster, User, Webhook};
//!
//! let cluster = Cluster::start();
//! cluster.install_crds();
//! let _guard = Webhook::start(&cluster, "mode: enforce\n");
//! let out = cluster.kubectl(User::Developer, &["scale", "deployment/web", "-n", "prod", "--replicas=3"]);
//! assert!(out.denied().starts_with("deployment/web in prod is managed by"));
//! ```
//!
//! Test-support code: everything here panics with a message naming what failed instead of
//! returning errors. Processes never outlive the test process: the cluster has a watchdog that
//! stops it (and any webhook started for it) when the test process is gone, even after a SIGKILL.

mod cluster;
mod command;
mod gitops;
mod http;
mod pki;
pub mod repo;
mod webhook;

pub use cluster::{Cluster, User, build_path, kubectl_program, target_profile_dir};
pub use command::{DENIED_PREFIX, Out, run as run_command};
pub use gitops::{APPS, FROM_ROOT, KUSTOMIZE_CONTROLLER, NO_TOKEN_HINT, ROOTS};
pub use webhook::{CUSTODY_GROUPS, WEBHOOK_NAME, Webhook};
