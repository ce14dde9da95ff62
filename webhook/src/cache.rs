//! What the guard knows about owners and namespaces, behind [`gitops_guard_core::Lookup`].
//!
//! [`Caches`] is fed by Kubernetes watches ([`watch`]) with the objects as JSON; it keeps each
//! object (trimmed) and what the core derives from it ([`OwnerInfo`], [`NamespaceInfo`]), and
//! derives again when the config changes. The admission hot path only reads the derived maps.
//! [`StaticLookup`] is a fixed table, for tests and benchmarks.

pub mod watch;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;
use gitops_guard_core::owner::{argo_owner_info, flux_owner_info, namespace_info};
use gitops_guard_core::{Config, Lookup, NamespaceInfo, OwnerInfo, OwnerKind, OwnerRef};
use serde_json::Value;

/// The kinds the guard watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Watched {
    Kustomization,
    HelmRelease,
    Application,
    AppProject,
    Namespace,
}

impl Watched {
    pub const ALL: [Watched; 5] = [
        Watched::Kustomization,
        Watched::HelmRelease,
        Watched::Application,
        Watched::AppProject,
        Watched::Namespace,
    ];

    /// `(group, version, kind, plural)`.
    pub fn gvk(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Watched::Kustomization => (
                "kustomize.toolkit.fluxcd.io",
                "v1",
                "Kustomization",
                "kustomizations",
            ),
            Watched::HelmRelease => (
                "helm.toolkit.fluxcd.io",
                "v2",
                "HelmRelease",
                "helmreleases",
            ),
            Watched::Application => ("argoproj.io", "v1alpha1", "Application", "applications"),
            Watched::AppProject => ("argoproj.io", "v1alpha1", "AppProject", "appprojects"),
            Watched::Namespace => ("", "v1", "Namespace", "namespaces"),
        }
    }

    /// The name used in logs and `/readyz`: `Kustomization (kustomize.toolkit.fluxcd.io/v1)`.
    pub fn display(self) -> String {
        let (group, version, kind, _) = self.gvk();
        if group.is_empty() {
            format!("{kind} ({version})")
        } else {
            format!("{kind} ({group}/{version})")
        }
    }

    /// Whether the kind is a custom resource that may not be installed.
    pub fn is_crd(self) -> bool {
        self != Watched::Namespace
    }
}

type Key = (String, String);

fn key_of(v: &Value) -> Key {
    let meta = |k: &str| {
        v.pointer(&format!("/metadata/{k}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (meta("namespace"), meta("name"))
}

/// Drops what the guard never reads from a watched object, to keep the cache small.
fn trim(mut v: Value) -> Value {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            ann.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    if let Some(status) = v.get_mut("status").and_then(Value::as_object_mut) {
        // Argo CD: per-resource status lists can be large; the revision lives elsewhere.
        status.remove("resources");
        status.remove("conditions");
        status.remove("inventory");
        if let Some(sync) = status
            .get_mut("operationState")
            .and_then(|o| o.get_mut("syncResult"))
            .and_then(Value::as_object_mut)
        {
            sync.remove("resources");
        }
    }
    v
}

#[derive(Debug, Default)]
struct State {
    kustomizations: HashMap<Key, Value>,
    helm_releases: HashMap<Key, Value>,
    applications: HashMap<Key, Value>,
    projects: HashMap<Key, Value>,
    namespaces_raw: HashMap<String, Value>,
    owners: HashMap<OwnerRef, OwnerInfo>,
    namespaces: HashMap<String, NamespaceInfo>,
}

impl State {
    fn raw_mut(&mut self, kind: Watched) -> Option<&mut HashMap<Key, Value>> {
        match kind {
            Watched::Kustomization => Some(&mut self.kustomizations),
            Watched::HelmRelease => Some(&mut self.helm_releases),
            Watched::Application => Some(&mut self.applications),
            Watched::AppProject => Some(&mut self.projects),
            Watched::Namespace => None,
        }
    }

    fn project_of<'s>(&'s self, app: &Value, config: &Config) -> Option<&'s Value> {
        let project = app
            .pointer("/spec/project")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .unwrap_or("default");
        self.projects
            .get(&(config.argocd.namespace.clone(), project.to_string()))
    }

    fn derive_owner(&mut self, kind: OwnerKind, key: &Key, config: &Config) {
        let owner = OwnerRef {
            kind,
            namespace: key.0.clone(),
            name: key.1.clone(),
        };
        let info = match kind {
            OwnerKind::Kustomization => self
                .kustomizations
                .get(key)
                .map(|v| flux_owner_info(v, config)),
            OwnerKind::HelmRelease => self
                .helm_releases
                .get(key)
                .map(|v| flux_owner_info(v, config)),
            OwnerKind::Application => self
                .applications
                .get(key)
                .map(|app| argo_owner_info(app, self.project_of(app, config))),
            OwnerKind::Namespace => None,
        };
        match info {
            Some(info) => {
                self.owners.insert(owner, info);
            }
            None => {
                self.owners.remove(&owner);
            }
        }
    }

    fn derive_namespace(&mut self, name: &str, config: &Config) {
        match self.namespaces_raw.get(name) {
            Some(v) => {
                let info = namespace_info(v, config);
                self.namespaces.insert(name.to_string(), info);
            }
            None => {
                self.namespaces.remove(name);
            }
        }
    }

    fn derive_all_applications(&mut self, config: &Config) {
        let keys: Vec<Key> = self.applications.keys().cloned().collect();
        self.owners.retain(|o, _| o.kind != OwnerKind::Application);
        for key in keys {
            self.derive_owner(OwnerKind::Application, &key, config);
        }
    }

    fn derive_all(&mut self, config: &Config) {
        self.owners.clear();
        let flux: Vec<(OwnerKind, Key)> = self
            .kustomizations
            .keys()
            .map(|k| (OwnerKind::Kustomization, k.clone()))
            .chain(
                self.helm_releases
                    .keys()
                    .map(|k| (OwnerKind::HelmRelease, k.clone())),
            )
            .collect();
        for (kind, key) in flux {
            self.derive_owner(kind, &key, config);
        }
        self.derive_all_applications(config);
        self.namespaces = self
            .namespaces_raw
            .iter()
            .map(|(name, v)| (name.clone(), namespace_info(v, config)))
            .collect();
    }

    fn derive_kind(&mut self, kind: Watched, key: &Key, config: &Config) {
        match kind {
            Watched::Kustomization => self.derive_owner(OwnerKind::Kustomization, key, config),
            Watched::HelmRelease => self.derive_owner(OwnerKind::HelmRelease, key, config),
            Watched::Application => self.derive_owner(OwnerKind::Application, key, config),
            Watched::AppProject => self.derive_all_applications(config),
            Watched::Namespace => self.derive_namespace(&key.1, config),
        }
    }
}

/// The webhook's owner and namespace caches.
#[derive(Debug)]
pub struct Caches {
    config: ArcSwap<Config>,
    state: RwLock<State>,
}

impl Caches {
    pub fn new(config: Arc<Config>) -> Caches {
        Caches {
            config: ArcSwap::new(config),
            state: RwLock::new(State::default()),
        }
    }

    /// The config changed: derive everything again (e.g. `flux.defaultServiceAccount`).
    pub fn set_config(&self, config: Arc<Config>) {
        self.config.store(config.clone());
        if let Ok(mut state) = self.state.write() {
            state.derive_all(&config);
        }
    }

    /// An object of `kind` was added or changed.
    pub fn apply(&self, kind: Watched, object: Value) {
        let config = self.config.load();
        let object = trim(object);
        let key = key_of(&object);
        if let Ok(mut state) = self.state.write() {
            match state.raw_mut(kind) {
                Some(map) => {
                    map.insert(key.clone(), object);
                }
                None => {
                    state.namespaces_raw.insert(key.1.clone(), object);
                }
            }
            state.derive_kind(kind, &key, &config);
        }
    }

    /// An object of `kind` was deleted.
    pub fn delete(&self, kind: Watched, object: &Value) {
        let config = self.config.load();
        let key = key_of(object);
        if let Ok(mut state) = self.state.write() {
            match state.raw_mut(kind) {
                Some(map) => {
                    map.remove(&key);
                }
                None => {
                    state.namespaces_raw.remove(&key.1);
                }
            }
            state.derive_kind(kind, &key, &config);
        }
    }

    /// A full (re)list of `kind`: replaces everything known about it. An empty list also stands for
    /// a kind that is not installed.
    pub fn replace(&self, kind: Watched, objects: Vec<Value>) {
        let config = self.config.load();
        if let Ok(mut state) = self.state.write() {
            let entries = objects.into_iter().map(trim).map(|v| (key_of(&v), v));
            match state.raw_mut(kind) {
                Some(map) => *map = entries.collect(),
                None => {
                    state.namespaces_raw = entries.map(|((_, name), v)| (name, v)).collect();
                }
            }
            match kind {
                Watched::Kustomization | Watched::HelmRelease | Watched::Application => {
                    let owner_kind = match kind {
                        Watched::Kustomization => OwnerKind::Kustomization,
                        Watched::HelmRelease => OwnerKind::HelmRelease,
                        _ => OwnerKind::Application,
                    };
                    state.owners.retain(|o, _| o.kind != owner_kind);
                    let keys: Vec<Key> = match state.raw_mut(kind) {
                        Some(map) => map.keys().cloned().collect(),
                        None => Vec::new(),
                    };
                    for key in keys {
                        state.derive_owner(owner_kind, &key, &config);
                    }
                }
                Watched::AppProject => state.derive_all_applications(&config),
                Watched::Namespace => {
                    state.namespaces = state
                        .namespaces_raw
                        .iter()
                        .map(|(name, v)| (name.clone(), namespace_info(v, &config)))
                        .collect();
                }
            }
        }
    }

    /// How many objects of `kind` are cached.
    pub fn len(&self, kind: Watched) -> usize {
        match self.state.read() {
            Ok(state) => match kind {
                Watched::Kustomization => state.kustomizations.len(),
                Watched::HelmRelease => state.helm_releases.len(),
                Watched::Application => state.applications.len(),
                Watched::AppProject => state.projects.len(),
                Watched::Namespace => state.namespaces_raw.len(),
            },
            Err(_) => 0,
        }
    }
}

impl Lookup for Caches {
    fn owner(&self, owner: &OwnerRef) -> Option<OwnerInfo> {
        self.state.read().ok()?.owners.get(owner).cloned()
    }

    fn namespace(&self, name: &str) -> Option<NamespaceInfo> {
        self.state.read().ok()?.namespaces.get(name).cloned()
    }
}

/// A fixed table of owners and namespaces.
#[derive(Debug, Clone, Default)]
pub struct StaticLookup {
    pub owners: HashMap<OwnerRef, OwnerInfo>,
    pub namespaces: HashMap<String, NamespaceInfo>,
}

impl StaticLookup {
    pub fn new() -> StaticLookup {
        StaticLookup::default()
    }

    pub fn with_owner(mut self, owner: OwnerRef, info: OwnerInfo) -> StaticLookup {
        self.owners.insert(owner, info);
        self
    }

    pub fn with_namespace(mut self, name: &str, info: NamespaceInfo) -> StaticLookup {
        self.namespaces.insert(name.to_string(), info);
        self
    }
}

impl Lookup for StaticLookup {
    fn owner(&self, owner: &OwnerRef) -> Option<OwnerInfo> {
        self.owners.get(owner).cloned()
    }

    fn namespace(&self, name: &str) -> Option<NamespaceInfo> {
        self.namespaces.get(name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owner(kind: OwnerKind, ns: &str, name: &str) -> OwnerRef {
        OwnerRef {
            kind,
            namespace: ns.into(),
            name: name.into(),
        }
    }

    fn kustomization(rev: &str) -> Value {
        json!({"apiVersion":"kustomize.toolkit.fluxcd.io/v1","kind":"Kustomization",
            "metadata":{"name":"apps","namespace":"flux-system","managedFields":[{"manager":"x"}]},
            "spec":{"path":"./apps"},"status":{"lastAppliedRevision":rev}})
    }

    #[test]
    fn flux_owners_follow_watch_events() {
        let caches = Caches::new(Arc::new(Config::default()));
        let apps = owner(OwnerKind::Kustomization, "flux-system", "apps");
        assert_eq!(caches.owner(&apps), None);
        caches.apply(Watched::Kustomization, kustomization("main@sha1:aaa"));
        assert_eq!(
            caches.owner(&apps).unwrap().revision.as_deref(),
            Some("main@sha1:aaa")
        );
        caches.apply(Watched::Kustomization, kustomization("main@sha1:bbb"));
        assert_eq!(
            caches.owner(&apps).unwrap().revision.as_deref(),
            Some("main@sha1:bbb")
        );
        // A HelmRelease of the same name is another owner.
        assert_eq!(
            caches.owner(&owner(OwnerKind::HelmRelease, "flux-system", "apps")),
            None
        );
        caches.delete(Watched::Kustomization, &kustomization(""));
        assert_eq!(caches.owner(&apps), None);
        caches.replace(Watched::Kustomization, vec![kustomization("main@sha1:ccc")]);
        assert_eq!(caches.len(Watched::Kustomization), 1);
        caches.replace(Watched::Kustomization, vec![]);
        assert_eq!(caches.owner(&apps), None);
    }

    #[test]
    fn config_changes_derive_again() {
        let caches = Caches::new(Arc::new(Config::default()));
        let apps = owner(OwnerKind::Kustomization, "flux-system", "apps");
        caches.apply(Watched::Kustomization, kustomization("r"));
        assert_eq!(caches.owner(&apps).unwrap().service_account, None);
        let mut cfg = Config::default();
        cfg.flux.default_service_account = "default".into();
        caches.set_config(Arc::new(cfg));
        assert_eq!(
            caches.owner(&apps).unwrap().service_account.as_deref(),
            Some("system:serviceaccount:flux-system:default")
        );
    }

    #[test]
    fn applications_pick_up_their_project() {
        let caches = Caches::new(Arc::new(Config::default()));
        let web = owner(OwnerKind::Application, "argocd", "web");
        caches.apply(
            Watched::Application,
            json!({"metadata":{"name":"web","namespace":"argocd"},
                "spec":{"project":"team-a","destination":{"server":"https://kubernetes.default.svc","namespace":"prod"}},
                "status":{"operationState":{"syncResult":{"revision":"7d0e51f0a1","resources":[{"kind":"Deployment"}]}}}}),
        );
        let info = caches.owner(&web).unwrap();
        assert_eq!(info.revision.as_deref(), Some("7d0e51f0a1"));
        assert_eq!(info.service_account, None);
        caches.apply(
            Watched::AppProject,
            json!({"metadata":{"name":"team-a","namespace":"argocd"},
                "spec":{"destinationServiceAccounts":[{"server":"*","namespace":"prod","defaultServiceAccount":"deployer"}]}}),
        );
        assert_eq!(
            caches.owner(&web).unwrap().service_account.as_deref(),
            Some("system:serviceaccount:prod:deployer")
        );
        caches.replace(Watched::AppProject, vec![]);
        assert_eq!(caches.owner(&web).unwrap().service_account, None);
    }

    #[test]
    fn namespaces_are_derived() {
        let caches = Caches::new(Arc::new(Config::default()));
        caches.replace(
            Watched::Namespace,
            vec![
                json!({"metadata":{"name":"prod","annotations":{"gitops-guard.dev/enforce":"all"}}}),
                json!({"metadata":{"name":"dev"}}),
            ],
        );
        assert!(caches.namespace("prod").unwrap().enforce_all);
        assert!(!caches.namespace("dev").unwrap().enforce_all);
        caches.delete(Watched::Namespace, &json!({"metadata":{"name":"prod"}}));
        assert_eq!(caches.namespace("prod"), None);
    }
}
