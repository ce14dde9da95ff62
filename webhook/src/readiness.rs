//! What `/readyz` waits for: the TLS listener, and every owner cache's first sync.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;

#[derive(Debug, Clone, Default)]
struct CacheState {
    synced: bool,
    /// The last reason it is not synced (an API error), for `/readyz`.
    last_error: Option<String>,
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
    }

    /// The cache could not sync (yet); kept for `/readyz` until it does.
    pub fn cache_error(&self, name: &str, error: String) {
        let mut caches = self.caches();
        let state = caches.entry(name.to_string()).or_default();
        if !state.synced {
            state.last_error = Some(error);
        }
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
        Report {
            ready: missing.is_empty(),
            missing,
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
        // Errors after the first sync keep the (stale) cache usable.
        r.cache_error("Kustomization", "connection reset".into());
        assert!(r.report().ready);
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
