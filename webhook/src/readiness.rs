//! What `/readyz` waits for: the TLS listener, and every owner cache's first sync; and what it
//! reports: caches whose watch fails after that sync (degraded).
//!
//! A degraded cache keeps `/readyz` at 200 on purpose: the guard goes on deciding from the cache's
//! last synced state, which is what it knew a moment ago. Answering 503 instead would, when the
//! API server blips or a watch fails on every replica at once, take every replica out of the
//! webhook Service's endpoints together; the API server would then fail every request routed to
//! the `failurePolicy: Fail` entries (blocking the agents and Kubernetes' own controllers) and let
//! a person's change through the `Ignore` entries. The body (and the
//! `gitops_guard_cache_degraded` metric) says which cache is degraded and why, until its watch is
//! established again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;

#[derive(Debug, Clone, Default)]
struct CacheState {
    synced: bool,
    /// The last reason it is not synced (an API error), for `/readyz`.
    last_error: Option<String>,
    /// Why its watch fails since it synced (it answers from its last synced state).
    degraded: Option<String>,
}

/// Readiness of the webhook. Cheap to query; shared by the server, the watchers and the probes.
#[derive(Debug, Default)]
pub struct Readiness {
    tls_bound: AtomicBool,
    stopping: AtomicBool,
    caches: Mutex<BTreeMap<String, CacheState>>,
}

/// The `/readyz` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub ready: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// Caches synced once whose watch fails now: each with why. The webhook stays ready.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub degraded: Vec<String>,
}

impl Readiness {
    pub fn new() -> Readiness {
        Readiness::default()
    }

    pub fn set_tls_bound(&self) {
        self.tls_bound.store(true, Ordering::Release);
    }

    /// The server is draining: not ready any more.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// The caches' states. A panic while the lock was held (a bug) must not freeze or hide them.
    fn caches(&self) -> MutexGuard<'_, BTreeMap<String, CacheState>> {
        self.caches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A cache that must sync before the webhook is ready.
    pub fn register_cache(&self, name: &str) {
        let mut caches = self.caches();
        caches.entry(name.to_string()).or_default();
    }

    /// The cache has (re)listed everything, or its kind is not installed (an empty cache).
    pub fn cache_synced(&self, name: &str) {
        let mut caches = self.caches();
        let state = caches.entry(name.to_string()).or_default();
        state.synced = true;
        state.last_error = None;
        state.degraded = None;
    }

    /// The cache could not sync (yet), or, once synced, its watch failed (degraded); kept for
    /// `/readyz` until it syncs or its watch is established again.
    pub fn cache_error(&self, name: &str, error: String) {
        let mut caches = self.caches();
        let state = caches.entry(name.to_string()).or_default();
        if state.synced {
            state.degraded = Some(error);
        } else {
            state.last_error = Some(error);
        }
    }

    /// The cache's watch is established again (the API server answered it): not degraded.
    pub fn cache_recovered(&self, name: &str) {
        let mut caches = self.caches();
        if let Some(state) = caches.get_mut(name) {
            state.degraded = None;
        }
    }

    /// Whether the cache synced once and its watch fails now.
    pub fn is_degraded(&self, name: &str) -> bool {
        self.caches()
            .get(name)
            .is_some_and(|state| state.degraded.is_some())
    }

    pub fn report(&self) -> Report {
        let mut missing = Vec::new();
        if self.stopping.load(Ordering::Acquire) {
            missing.push("the webhook is shutting down".to_string());
        }
        if !self.tls_bound.load(Ordering::Acquire) {
            missing.push("the TLS listener is not bound yet".to_string());
        }
        let caches = self.caches();
        for (name, state) in caches.iter().filter(|(_, s)| !s.synced) {
            missing.push(match &state.last_error {
                Some(e) => format!("the {name} cache has not synced: {e}"),
                None => format!("the {name} cache has not synced yet"),
            });
        }
        let degraded = caches
            .iter()
            .filter_map(|(name, state)| {
                state.degraded.as_ref().map(|e| {
                    format!(
                        "the {name} cache is degraded (deciding from its last synced state): {e}"
                    )
                })
            })
            .collect();
        Report {
            ready: missing.is_empty(),
            missing,
            degraded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_bound_and_synced() {
        let r = Readiness::new();
        r.register_cache("Kustomization");
        r.register_cache("Namespace");
        let rep = r.report();
        assert!(!rep.ready);
        assert_eq!(rep.missing.len(), 3, "{rep:?}");
        r.set_tls_bound();
        r.cache_synced("Namespace");
        r.cache_error("Kustomization", "forbidden".into());
        let rep = r.report();
        assert_eq!(
            rep.missing,
            vec!["the Kustomization cache has not synced: forbidden".to_string()]
        );
        r.cache_synced("Kustomization");
        assert!(r.report().ready);
        // Errors after the first sync keep the (stale) cache usable, and say so.
        r.cache_error("Kustomization", "connection reset".into());
        let rep = r.report();
        assert!(rep.ready);
        assert_eq!(
            rep.degraded,
            [
                "the Kustomization cache is degraded (deciding from its last synced state): connection reset"
            ]
        );
        assert!(r.is_degraded("Kustomization") && !r.is_degraded("Namespace"));
        let body = serde_json::to_value(&rep).unwrap();
        assert_eq!(body["ready"], true);
        assert_eq!(body["degraded"].as_array().map(Vec::len), Some(1));
        // The watch is established again: nothing to report.
        r.cache_recovered("Kustomization");
        let rep = r.report();
        assert!(rep.ready && rep.degraded.is_empty() && !r.is_degraded("Kustomization"));
        assert_eq!(serde_json::to_string(&rep).unwrap(), r#"{"ready":true}"#);
        // A relist clears it too.
        r.cache_error("Namespace", "watch failed".into());
        r.cache_synced("Namespace");
        assert!(r.report().degraded.is_empty());
        // Recovery before the first sync leaves the reason it is not ready.
        r.register_cache("HelmRelease");
        r.cache_error("HelmRelease", "forbidden".into());
        r.cache_recovered("HelmRelease");
        assert_eq!(
            r.report().missing,
            ["the HelmRelease cache has not synced: forbidden"]
        );
        r.cache_synced("HelmRelease");
        r.set_stopping();
        assert!(!r.report().ready);
    }

    #[test]
    fn a_panic_while_the_lock_was_held_neither_freezes_nor_hides_readiness() {
        let r = std::sync::Arc::new(Readiness::new());
        r.set_tls_bound();
        r.register_cache("Kustomization");
        let poisoner = r.clone();
        let panicked = std::thread::spawn(move || {
            let _held = poisoner.caches.lock().unwrap();
            panic!("a bug while readiness is held");
        })
        .join();
        assert!(panicked.is_err() && r.caches.is_poisoned());
        assert_eq!(
            r.report().missing,
            ["the Kustomization cache has not synced yet"]
        );
        r.cache_synced("Kustomization");
        assert!(r.report().ready);
    }
}
