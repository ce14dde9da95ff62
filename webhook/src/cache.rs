//! What the guard knows about owners, sources and namespaces, behind
//! [`gitops_guard_core::Lookup`].
//!
//! [`Caches`] is fed by Kubernetes watches ([`watch`]) of every owner and source kind of the chain
//! of custody ([`custody::KINDS`]) and of Namespaces, with the objects as JSON. Each object is
//! reduced as it arrives ([`Caches::prepare`]): what the core derives from the whole object and
//! that no config changes ([`CustodyInfo`]'s source, project and namespaces: the Flux inventory and
//! the Argo CD resource list are read here, then dropped) is kept derived; of the object itself only
//! its *facts* are kept, the few fields the config-dependent derivations read (metadata, the
//! revision and service-account fields), so that a config change can derive again
//! ([`OwnerInfo`], [`NamespaceInfo`], a custody object's own owners). Memory per object is its
//! labels and annotations plus a handful of strings, whatever the size of its spec or status.
//! The admission hot path only reads the derived maps.
//!
//! [`StaticLookup`] is a fixed table, for tests and benchmarks.

pub mod shallow;
pub mod watch;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use arc_swap::ArcSwap;
use gitops_guard_core::custody::{self, CustodyInfo, ObjectRef};
use gitops_guard_core::exception::window_opened;
use gitops_guard_core::ingress;
use gitops_guard_core::owner::{argo_owner_info, flux_owner_info, namespace_info, owners_of};
use gitops_guard_core::workload::{self, ControllerRef, Facts, Steered, Target};
use gitops_guard_core::{Config, Lookup, NamespaceInfo, Object, OwnerInfo, OwnerKind, OwnerRef};
use serde_json::{Map, Value};

/// A kind the guard watches: an owner or source kind of the chain of custody, Namespaces, a
/// workload kind or Services (what runs: [`workload::WORKLOADS`]), or Ingresses (the hosts the
/// managed ones claim, cluster-wide).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watched {
    Custody(&'static custody::Kind),
    Namespace,
    Workload(&'static workload::Kind),
    Ingress,
}

impl Watched {
    /// Every watched kind: [`custody::KINDS`], Namespaces, [`workload::WORKLOADS`], then
    /// Ingresses.
    pub fn all() -> impl Iterator<Item = Watched> {
        custody::KINDS
            .iter()
            .map(Watched::Custody)
            .chain(std::iter::once(Watched::Namespace))
            .chain(workload::WORKLOADS.iter().map(Watched::Workload))
            .chain(std::iter::once(Watched::Ingress))
    }

    /// The watched kind called `kind` (`"Kustomization"`, `"Namespace"`, `"Deployment"`).
    pub fn named(kind: &str) -> Option<Watched> {
        if kind == "Namespace" {
            return Some(Watched::Namespace);
        }
        if kind == ingress::KIND {
            return Some(Watched::Ingress);
        }
        custody::kind_named(kind).map(Watched::Custody).or_else(|| {
            workload::WORKLOADS
                .iter()
                .find(|k| k.kind == kind)
                .map(Watched::Workload)
        })
    }

    /// `(group, version, kind, plural)`, with the preferred version.
    pub fn gvk(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Watched::Custody(k) => (k.group, k.version, k.kind, k.plural),
            Watched::Namespace => ("", "v1", "Namespace", "namespaces"),
            Watched::Workload(k) => (k.group, k.versions[0], k.kind, k.plural),
            Watched::Ingress => (ingress::GROUPS[0], "v1", ingress::KIND, ingress::RESOURCE),
        }
    }

    /// The versions to watch it in, preferred first.
    pub fn versions(self) -> &'static [&'static str] {
        match self {
            Watched::Custody(k) => std::slice::from_ref(&k.version),
            Watched::Namespace => &["v1"],
            Watched::Workload(k) => k.versions,
            // networking.k8s.io/v1 came with Kubernetes 1.19; v1beta1 serves the same objects.
            Watched::Ingress => &["v1", "v1beta1"],
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

    /// Whether the kind may not be served (a custom resource, or a version Kubernetes added
    /// later: `batch/v1` CronJobs came with 1.21, `networking.k8s.io/v1` Ingresses with 1.19).
    pub fn is_crd(self) -> bool {
        matches!(
            self,
            Watched::Custody(_) | Watched::Workload(_) | Watched::Ingress
        )
    }
}

/// The owner kind a custody kind stands for, when objects name it as their owner.
fn owner_kind(kind: &custody::Kind) -> Option<OwnerKind> {
    OwnerKind::of_kind(kind.kind)
}

/// The last-applied annotation: a whole copy of the object, never read.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
}

/// Copies the value at `path` in `from` (if any) to the same path in `to`.
fn copy(from: &Value, to: &mut Map<String, Value>, path: &[&str]) {
    let Some(value) = path.iter().try_fold(from, |v, k| v.get(k)) else {
        return;
    };
    put(to, path, value.clone());
}

/// Sets `path` in `to` to `value`, making the objects on the way.
fn put(to: &mut Map<String, Value>, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut map = to;
    for key in parents {
        let entry = map
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else {
            return;
        };
        map = next;
    }
    map.insert(last.to_string(), value);
}

/// `entry` reduced to the fields at `paths`.
fn pick(entry: &Value, paths: &[&str]) -> Value {
    let mut out = Map::new();
    for path in paths {
        copy(entry, &mut out, &[path]);
    }
    Value::Object(out)
}

/// What [`owners_of`] reads, for every watched kind: identity, labels, annotations (less the
/// last-applied copy).
fn metadata_facts(v: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for path in [
        &["apiVersion"][..],
        &["kind"],
        &["metadata", "name"],
        &["metadata", "namespace"],
        &["metadata", "labels"],
        &["metadata", "deletionTimestamp"],
    ] {
        copy(v, &mut out, path);
    }
    if let Some(annotations) = v.pointer("/metadata/annotations") {
        let mut annotations = annotations.clone();
        if let Some(map) = annotations.as_object_mut() {
            map.remove(LAST_APPLIED);
        }
        put(&mut out, &["metadata", "annotations"], annotations);
    }
    out
}

/// The facts of an owner or source: what the config-dependent derivations read
/// ([`owners_of`], [`flux_owner_info`], [`argo_owner_info`] of an Application and of its
/// AppProject). Never the spec as a whole, nor `status.inventory` or `status.resources`.
fn custody_facts(kind: &custody::Kind, v: &Value) -> Value {
    let mut out = metadata_facts(v);
    match kind.kind {
        "Kustomization" | "HelmRelease" => {
            copy(v, &mut out, &["spec", "serviceAccountName"]);
            copy(v, &mut out, &["status", "lastAppliedRevision"]);
            // helm.toolkit.fluxcd.io/v2: the newest release.
            if let Some(latest) = v.pointer("/status/history/0") {
                let latest = pick(latest, &["chartName", "chartVersion"]);
                put(&mut out, &["status", "history"], Value::Array(vec![latest]));
            }
        }
        "Application" => {
            copy(v, &mut out, &["spec", "project"]);
            copy(v, &mut out, &["spec", "destination"]);
            let deployed = ["revision", "revisions"];
            if let Some(sync) = v.pointer("/status/operationState/syncResult") {
                put(
                    &mut out,
                    &["status", "operationState", "syncResult"],
                    pick(sync, &deployed),
                );
            }
            if let Some(last) = v
                .pointer("/status/history")
                .and_then(Value::as_array)
                .and_then(|h| h.last())
            {
                put(
                    &mut out,
                    &["status", "history"],
                    Value::Array(vec![pick(last, &deployed)]),
                );
            }
        }
        "AppProject" => copy(v, &mut out, &["spec", "destinationServiceAccounts"]),
        _ => {}
    }
    Value::Object(out)
}

/// The facts of a Namespace: what [`namespace_info`] reads, with only the `managedFields`
/// entries that date a break-glass window.
fn namespace_facts(v: &Value) -> Value {
    let mut out = metadata_facts(v);
    copy(v, &mut out, &["status", "phase"]);
    if let Some(entries) = v
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    {
        let dating: Vec<Value> = entries
            .iter()
            .filter(|e| window_opened(&Value::Array(vec![(*e).clone()])).is_some())
            .cloned()
            .collect();
        if !dating.is_empty() {
            put(
                &mut out,
                &["metadata", "managedFields"],
                Value::Array(dating),
            );
        }
    }
    Value::Object(out)
}

/// The ownership markers an owner or source carries, from its facts.
fn own_owners(kind: &custody::Kind, facts: &Value, config: &Config) -> Vec<OwnerRef> {
    let Ok(text) = serde_json::to_string(facts) else {
        return Vec::new();
    };
    match Object::from_json(&text) {
        Ok(object) => owners_of(&object, kind.group, kind.kind, config),
        Err(_) => Vec::new(),
    }
}

/// A watched object reduced to what the guard keeps, ready to go into [`Caches`] (made outside
/// the cache's lock by [`Caches::prepare`]).
#[derive(Debug, Clone)]
pub struct Entry {
    kind: Watched,
    namespace: String,
    name: String,
    facts: Value,
    /// For an owner or source: derived from the whole object, its owners under `config`.
    custody: Option<CustodyInfo>,
    /// For a workload or Service: what [`workload::facts`] derives under `config`.
    workload: Option<Facts>,
    /// For an Ingress: what [`ingress::facts`] derives under `config`.
    ingress: Option<ingress::Facts>,
    config: Arc<Config>,
}

/// The Ingresses of every namespace, by namespace and name: their shallow copy (to derive them
/// again when the config changes) and their facts (hosts, owners, exceptions).
type Ingresses = HashMap<(String, String), (Value, ingress::Facts)>;

/// The workloads and Services, by uid, and the uids in each namespace. `facts` (their shallow
/// copy) is kept to derive them again when the config changes.
#[derive(Debug, Default)]
struct Workloads {
    by_uid: HashMap<String, (Value, Facts)>,
    by_namespace: HashMap<String, HashSet<String>>,
}

impl Workloads {
    fn insert(&mut self, facts: Value, derived: Facts) {
        if derived.uid.is_empty() {
            return;
        }
        self.by_namespace
            .entry(derived.namespace.clone())
            .or_default()
            .insert(derived.uid.clone());
        self.by_uid.insert(derived.uid.clone(), (facts, derived));
    }

    fn remove(&mut self, uid: &str) {
        if let Some((_, f)) = self.by_uid.remove(uid)
            && let Some(set) = self.by_namespace.get_mut(&f.namespace)
        {
            set.remove(uid);
            if set.is_empty() {
                self.by_namespace.remove(&f.namespace);
            }
        }
    }

    fn clear(&mut self, kind: &workload::Kind) {
        let gone: Vec<String> = self
            .by_uid
            .iter()
            .filter(|(_, (_, f))| f.kind == kind)
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in gone {
            self.remove(&uid);
        }
    }

    fn get(&self, uid: &str) -> Option<&Facts> {
        self.by_uid.get(uid).map(|(_, f)| f)
    }

    fn in_namespace<'w>(&'w self, namespace: &str) -> impl Iterator<Item = &'w Facts> {
        self.by_namespace
            .get(namespace)
            .into_iter()
            .flatten()
            .filter_map(|uid| self.get(uid))
    }
}

/// One cached owner or source.
#[derive(Debug, Clone)]
struct Held {
    facts: Value,
    info: CustodyInfo,
}

/// The namespaces an owner or source holds: its own and those it lists.
fn held_namespaces<'i>(object: &'i ObjectRef, info: &'i CustodyInfo) -> Vec<&'i str> {
    let mut out: Vec<&str> = std::iter::once(object.namespace.as_str())
        .chain(info.namespaces.iter().map(String::as_str))
        .filter(|ns| !ns.is_empty())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[derive(Debug, Default)]
struct State {
    /// Owners and sources, by kind name ([`custody::Kind::kind`]).
    objects: HashMap<&'static str, HashMap<ObjectRef, Held>>,
    /// The custody kinds the API server serves (listed since last found absent).
    served: HashSet<&'static str>,
    /// Namespace facts, by name.
    namespace_facts: HashMap<String, Value>,
    owners: HashMap<OwnerRef, OwnerInfo>,
    /// Derived from `namespace_facts`; `holds_managed` comes from `holders` at lookup.
    namespaces: HashMap<String, NamespaceInfo>,
    /// The cached owners and sources that live in or hold objects in each namespace (no entry:
    /// none).
    holders: HashMap<String, HashSet<ObjectRef>>,
    /// The owners that apply each ConfigMap's or Secret's content (their `CustodyInfo::inputs`).
    readers: HashMap<ObjectRef, HashSet<ObjectRef>>,
}

impl State {
    fn held(&self, kind: &str, object: &ObjectRef) -> Option<&Held> {
        self.objects.get(kind)?.get(object)
    }

    fn hold(&mut self, object: &ObjectRef, info: &CustodyInfo) {
        for ns in held_namespaces(object, info) {
            self.holders
                .entry(ns.to_string())
                .or_default()
                .insert(object.clone());
        }
        for input in &info.inputs {
            self.readers
                .entry(input.clone())
                .or_default()
                .insert(object.clone());
        }
    }

    fn release(&mut self, object: &ObjectRef, info: &CustodyInfo) {
        for ns in held_namespaces(object, info) {
            if let Some(set) = self.holders.get_mut(ns) {
                set.remove(object);
                if set.is_empty() {
                    self.holders.remove(ns);
                }
            }
        }
        for input in &info.inputs {
            if let Some(set) = self.readers.get_mut(input) {
                set.remove(object);
                if set.is_empty() {
                    self.readers.remove(input);
                }
            }
        }
    }

    /// Caches an owner or source (replacing what was known about it).
    fn insert(&mut self, kind: &'static custody::Kind, entry: Entry, config: &Arc<Config>) {
        let object = ObjectRef::new(kind.kind, &entry.namespace, &entry.name);
        let mut info = entry.custody.unwrap_or_default();
        if !Arc::ptr_eq(&entry.config, config) {
            // The config changed since the entry was made.
            info.owners = own_owners(kind, &entry.facts, config);
        }
        // What it held before is released first: the holders are sets.
        if let Some(old) = self
            .objects
            .get_mut(kind.kind)
            .and_then(|m| m.remove(&object))
        {
            self.release(&object, &old.info);
        }
        self.hold(&object, &info);
        let held = Held {
            facts: entry.facts,
            info,
        };
        self.objects
            .entry(kind.kind)
            .or_default()
            .insert(object, held);
    }

    fn remove(&mut self, kind: &'static custody::Kind, object: &ObjectRef) {
        let old = self
            .objects
            .get_mut(kind.kind)
            .and_then(|m| m.remove(object));
        if let Some(old) = old {
            self.release(object, &old.info);
        }
    }

    /// Forgets every object of `kind`.
    fn clear(&mut self, kind: &'static custody::Kind) {
        if let Some(map) = self.objects.remove(kind.kind) {
            for (object, held) in &map {
                self.release(object, &held.info);
            }
        }
        if let Some(owner_kind) = owner_kind(kind) {
            self.owners.retain(|o, _| o.kind != owner_kind);
        }
    }

    /// The AppProject facts of an Application (the projects live in Argo CD's namespace).
    fn project_of(&self, app: &Value, config: &Config) -> Option<&Value> {
        let project = str_at(app, &["spec", "project"])
            .filter(|p| !p.is_empty())
            .unwrap_or("default");
        let object = ObjectRef::new("AppProject", &config.argocd.namespace, project);
        self.held("AppProject", &object).map(|h| &h.facts)
    }

    fn derive_owner(&mut self, kind: &'static custody::Kind, object: &ObjectRef, config: &Config) {
        let Some(owner_kind) = owner_kind(kind) else {
            return;
        };
        let owner = OwnerRef {
            kind: owner_kind,
            namespace: object.namespace.clone(),
            name: object.name.clone(),
        };
        let info = self.held(kind.kind, object).map(|h| match owner_kind {
            OwnerKind::Application => argo_owner_info(&h.facts, self.project_of(&h.facts, config)),
            _ => flux_owner_info(&h.facts, config),
        });
        match info {
            Some(info) => {
                self.owners.insert(owner, info);
            }
            None => {
                self.owners.remove(&owner);
            }
        }
    }

    /// Derives the owner info of every cached object of `kind` (AppProjects: of every
    /// Application).
    fn derive_kind_all(&mut self, kind: &'static custody::Kind, config: &Config) {
        let kind = match kind.kind {
            "AppProject" => match custody::kind_named("Application") {
                Some(app) => app,
                None => return,
            },
            _ => kind,
        };
        let Some(owner_kind) = owner_kind(kind) else {
            return;
        };
        self.owners.retain(|o, _| o.kind != owner_kind);
        let objects: Vec<ObjectRef> = self
            .objects
            .get(kind.kind)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for object in objects {
            self.derive_owner(kind, &object, config);
        }
    }

    /// Derives what follows from a change to `object` of `kind`.
    fn derive_object(&mut self, kind: &'static custody::Kind, object: &ObjectRef, config: &Config) {
        if kind.kind == "AppProject" {
            self.derive_kind_all(kind, config);
        } else {
            self.derive_owner(kind, object, config);
        }
    }

    fn derive_namespace(&mut self, name: &str, config: &Config) {
        match self.namespace_facts.get(name) {
            Some(v) => {
                let info = namespace_info(v, config);
                self.namespaces.insert(name.to_string(), info);
            }
            None => {
                self.namespaces.remove(name);
            }
        }
    }

    fn derive_namespaces(&mut self, config: &Config) {
        self.namespaces = self
            .namespace_facts
            .iter()
            .map(|(name, v)| (name.clone(), namespace_info(v, config)))
            .collect();
    }

    /// The config changed: every object's own owners, every owner and namespace.
    fn derive_all(&mut self, config: &Config) {
        for kind in custody::KINDS {
            if let Some(map) = self.objects.get_mut(kind.kind) {
                for held in map.values_mut() {
                    held.info.owners = own_owners(kind, &held.facts, config);
                }
            }
        }
        self.owners.clear();
        for kind in custody::KINDS {
            if owner_kind(kind).is_some() {
                self.derive_kind_all(kind, config);
            }
        }
        self.derive_namespaces(config);
    }
}

/// The webhook's owner, source and namespace caches.
#[derive(Debug)]
pub struct Caches {
    config: ArcSwap<Config>,
    state: RwLock<State>,
    /// What runs; its own lock (taken before `state` when both are needed).
    workloads: RwLock<Workloads>,
    /// Ingresses; their own lock (taken before `state` when both are needed).
    ingresses: RwLock<Ingresses>,
    /// Served resources by `(group, plural)` and whether they have a status subresource (from
    /// API discovery; `None` before the first one).
    status_subresources: ArcSwap<Option<HashMap<(String, String), bool>>>,
}

fn key_of(v: &Value) -> (String, String) {
    let meta = |k: &str| str_at(v, &["metadata", k]).unwrap_or_default().to_string();
    (meta("namespace"), meta("name"))
}

impl Caches {
    pub fn new(config: Arc<Config>) -> Caches {
        Caches {
            config: ArcSwap::new(config),
            state: RwLock::new(State::default()),
            workloads: RwLock::new(Workloads::default()),
            ingresses: RwLock::new(Ingresses::default()),
            status_subresources: ArcSwap::new(Arc::new(None)),
        }
    }

    /// The config changed: derive everything again (e.g. `flux.defaultServiceAccount`).
    pub fn set_config(&self, config: Arc<Config>) {
        self.config.store(config.clone());
        self.write().derive_all(&config);
        let mut w = self.write_workloads();
        for (facts, derived) in w.by_uid.values_mut() {
            *derived = workload::facts(derived.kind, facts, &config);
        }
        drop(w);
        for (facts, derived) in self.write_ingresses().values_mut() {
            *derived = ingress::facts(facts, &config);
        }
    }

    /// Reduces an object of `kind` (whole, as the API server sends it) to what the cache keeps.
    pub fn prepare(&self, kind: Watched, object: Value) -> Entry {
        let config = self.config.load_full();
        let (namespace, name) = key_of(&object);
        let mut ingress_facts = None;
        let (facts, custody, derived) = match kind {
            Watched::Custody(k) => {
                let facts = custody_facts(k, &object);
                let owners = own_owners(k, &facts, &config);
                (facts, Some(custody::custody_info(k, &object, owners)), None)
            }
            Watched::Namespace => (namespace_facts(&object), None, None),
            Watched::Workload(k) => {
                let derived = workload::facts(k, &object, &config);
                (object, None, Some(derived))
            }
            Watched::Ingress => {
                ingress_facts = Some(ingress::facts(&object, &config));
                (object, None, None)
            }
        };
        Entry {
            kind,
            namespace,
            name,
            facts,
            custody,
            workload: derived,
            ingress: ingress_facts,
            config,
        }
    }

    /// An object of `kind` was added or changed.
    pub fn apply(&self, kind: Watched, object: Value) {
        let entry = self.prepare(kind, object);
        if let Some(derived) = entry.workload {
            self.write_workloads().insert(entry.facts, derived);
            return;
        }
        if let Some(derived) = entry.ingress {
            self.write_ingresses()
                .insert((entry.namespace, entry.name), (entry.facts, derived));
            return;
        }
        {
            let mut state = self.write();
            let config = self.config.load_full();
            Self::store(&mut state, entry, &config);
        }
    }

    fn store(state: &mut State, entry: Entry, config: &Arc<Config>) {
        match entry.kind {
            Watched::Custody(k) => {
                let object = ObjectRef::new(k.kind, &entry.namespace, &entry.name);
                state.insert(k, entry, config);
                state.derive_object(k, &object, config);
            }
            Watched::Namespace => {
                let name = entry.name;
                state.namespace_facts.insert(name.clone(), entry.facts);
                state.derive_namespace(&name, config);
            }
            // Kept apart, under their own lock ([`Caches::apply`]).
            Watched::Workload(_) | Watched::Ingress => {}
        }
    }

    /// An object of `kind` was deleted.
    pub fn delete(&self, kind: Watched, object: &Value) {
        if let Watched::Workload(_) = kind {
            let uid = str_at(object, &["metadata", "uid"]).unwrap_or_default();
            self.write_workloads().remove(uid);
            return;
        }
        let (namespace, name) = key_of(object);
        if kind == Watched::Ingress {
            self.write_ingresses().remove(&(namespace, name));
            return;
        }
        {
            let mut state = self.write();
            let config = self.config.load_full();
            match kind {
                Watched::Custody(k) => {
                    let object = ObjectRef::new(k.kind, &namespace, &name);
                    state.remove(k, &object);
                    state.derive_object(k, &object, &config);
                }
                Watched::Namespace => {
                    state.namespace_facts.remove(&name);
                    state.derive_namespace(&name, &config);
                }
                Watched::Workload(_) | Watched::Ingress => {}
            }
        }
    }

    /// A full (re)list of `kind`: replaces everything known about it, and the API server serves it.
    pub fn replace(&self, kind: Watched, objects: Vec<Value>) {
        let entries = objects.into_iter().map(|o| self.prepare(kind, o)).collect();
        self.replace_entries(kind, entries);
    }

    /// [`Caches::replace`] with objects already prepared (entries of another kind are ignored).
    pub fn replace_entries(&self, kind: Watched, entries: Vec<Entry>) {
        if let Watched::Workload(k) = kind {
            let mut w = self.write_workloads();
            w.clear(k);
            for e in entries.into_iter().filter(|e| e.kind == kind) {
                if let Some(derived) = e.workload {
                    w.insert(e.facts, derived);
                }
            }
            return;
        }
        if kind == Watched::Ingress {
            let mut w = self.write_ingresses();
            w.clear();
            for e in entries.into_iter().filter(|e| e.kind == kind) {
                if let Some(derived) = e.ingress {
                    w.insert((e.namespace, e.name), (e.facts, derived));
                }
            }
            return;
        }
        let mut state = self.write();
        let config = self.config.load_full();
        let entries = entries.into_iter().filter(|e| e.kind == kind);
        match kind {
            Watched::Custody(k) => {
                state.clear(k);
                state.served.insert(k.kind);
                for entry in entries {
                    state.insert(k, entry, &config);
                }
                state.derive_kind_all(k, &config);
            }
            Watched::Namespace => {
                state.namespace_facts = entries.map(|e| (e.name, e.facts)).collect();
                state.derive_namespaces(&config);
            }
            Watched::Workload(_) | Watched::Ingress => {}
        }
    }

    /// The API server does not serve `kind` (its CRD is not installed): no such objects.
    pub fn absent(&self, kind: Watched) {
        match kind {
            Watched::Custody(k) => {
                let mut state = self.write();
                let config = self.config.load_full();
                state.clear(k);
                state.served.remove(k.kind);
                state.derive_kind_all(k, &config);
            }
            // Always served; an empty list is what there is.
            Watched::Namespace => self.replace(kind, Vec::new()),
            Watched::Workload(k) => self.write_workloads().clear(k),
            Watched::Ingress => self.write_ingresses().clear(),
        }
    }

    /// How many objects of `kind` are cached.
    pub fn len(&self, kind: Watched) -> usize {
        if kind == Watched::Ingress {
            return self.read_ingresses().len();
        }
        let state = self.read();
        match kind {
            Watched::Custody(k) => state.objects.get(k.kind).map_or(0, HashMap::len),
            Watched::Namespace => state.namespace_facts.len(),
            Watched::Workload(k) => self
                .read_workloads()
                .by_uid
                .values()
                .filter(|(_, f)| f.kind == k)
                .count(),
            Watched::Ingress => 0,
        }
    }
}

impl Caches {
    /// The state for reading. A panic while it was held (a bug) leaves it poisoned; the guard goes
    /// on from what it holds rather than answering from nothing or stopping updates silently.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state for writing (see [`Caches::read`] on a poisoned lock).
    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The kinds GitOps manages in this cluster (`Kind.group`) and how many objects of each, from
    /// the Kustomizations' inventories and the Applications' resources the guard has seen.
    pub fn managed_kinds(&self) -> std::collections::BTreeMap<String, usize> {
        let state = self.read();
        let mut out = std::collections::BTreeMap::new();
        for held in state.objects.values().flat_map(HashMap::values) {
            for kind in &held.info.applies {
                *out.entry(kind.clone()).or_insert(0) += 1;
            }
        }
        out
    }

    fn read_workloads(&self) -> RwLockReadGuard<'_, Workloads> {
        self.workloads
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write_workloads(&self) -> RwLockWriteGuard<'_, Workloads> {
        self.workloads
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn read_ingresses(&self) -> RwLockReadGuard<'_, Ingresses> {
        self.ingresses
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write_ingresses(&self) -> RwLockWriteGuard<'_, Ingresses> {
        self.ingresses
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Who manages a workload or Service: its labels' owners, or its namespace when that is
    /// `enforce: all` (from Git).
    fn managed_owners(&self, f: &Facts) -> Vec<OwnerRef> {
        self.owners_in(&f.owners, &f.namespace)
    }

    /// `owners`, or the namespace when it is `enforce: all` (from Git) and `owners` is empty.
    fn owners_in(&self, owners: &[OwnerRef], namespace: &str) -> Vec<OwnerRef> {
        if !owners.is_empty() {
            return owners.to_vec();
        }
        let enforce_all = self
            .read()
            .namespaces
            .get(namespace)
            .is_some_and(|n| n.enforce_all);
        if enforce_all {
            vec![OwnerRef {
                kind: OwnerKind::Namespace,
                namespace: namespace.to_string(),
                name: namespace.to_string(),
            }]
        } else {
            Vec::new()
        }
    }

    /// What API discovery found: every served resource and whether it has a status subresource.
    pub fn set_status_subresources(&self, found: HashMap<(String, String), bool>) {
        self.status_subresources.store(Arc::new(Some(found)));
    }
}

impl Lookup for Caches {
    fn owner(&self, owner: &OwnerRef) -> Option<OwnerInfo> {
        self.read().owners.get(owner).cloned()
    }

    /// A namespace that is not cached (yet) but that owners or sources hold counts as one.
    fn namespace(&self, name: &str) -> Option<NamespaceInfo> {
        let state = self.read();
        let holds_managed = state.holders.contains_key(name);
        match state.namespaces.get(name) {
            Some(info) => Some(NamespaceInfo {
                holds_managed,
                ..info.clone()
            }),
            None if holds_managed => Some(NamespaceInfo {
                holds_managed,
                ..NamespaceInfo::default()
            }),
            None => None,
        }
    }

    fn custody(&self, object: &ObjectRef) -> Option<CustodyInfo> {
        let state = self.read();
        state
            .held(object.kind.as_str(), object)
            .map(|h| h.info.clone())
    }

    fn serves(&self, kind: &custody::Kind) -> bool {
        self.read().served.contains(kind.kind)
    }

    fn holders(&self, namespace: &str) -> Vec<ObjectRef> {
        self.read()
            .holders
            .get(namespace)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn readers(&self, input: &ObjectRef) -> Vec<ObjectRef> {
        self.read()
            .readers
            .get(input)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn controlled(&self, namespace: &str, controller: &ControllerRef) -> Option<Steered> {
        let w = self.read_workloads();
        workload::ancestor(
            namespace,
            controller,
            |uid| w.get(uid),
            |f| self.managed_owners(f),
        )
    }

    fn steered(&self, namespace: &str, target: &Target) -> Vec<Steered> {
        let w = self.read_workloads();
        workload::steered_among(
            w.in_namespace(namespace),
            target,
            |uid| w.get(uid),
            |f| self.managed_owners(f),
        )
    }

    /// Every Ingress is read: the managed ones are a few in most clusters, and a host overlaps
    /// another by a wildcard, which no map by name finds.
    fn claims(&self, this: (&str, &str), hosts: &[ingress::Host]) -> Vec<ingress::Claim> {
        let w = self.read_ingresses();
        ingress::claims_among(w.values().map(|(_, f)| f), this, hosts, |f| {
            self.owners_in(&f.owners, &f.namespace)
        })
    }

    /// Unknown resources (before discovery, or not served) count as having one.
    fn status_is_subresource(&self, group: &str, resource: &str) -> bool {
        match &**self.status_subresources.load() {
            Some(found) => found
                .get(&(group.to_string(), resource.to_string()))
                .copied()
                .unwrap_or(true),
            None => true,
        }
    }
}

/// A fixed table of owners, custody objects and namespaces (every kind counts as served).
#[derive(Debug, Clone, Default)]
pub struct StaticLookup {
    pub owners: HashMap<OwnerRef, OwnerInfo>,
    pub namespaces: HashMap<String, NamespaceInfo>,
    pub custody: HashMap<ObjectRef, CustodyInfo>,
}

impl StaticLookup {
    pub fn new() -> StaticLookup {
        StaticLookup::default()
    }

    pub fn with_owner(mut self, owner: OwnerRef, info: OwnerInfo) -> StaticLookup {
        self.owners.insert(owner, info);
        self
    }

    /// With a Flux Kustomization `namespace/name` applied at `revision` under the controller's
    /// own account: the owner the webhook's test fixtures and benchmarks name.
    pub fn with_kustomization(self, namespace: &str, name: &str, revision: &str) -> StaticLookup {
        self.with_owner(
            OwnerRef {
                kind: OwnerKind::Kustomization,
                namespace: namespace.into(),
                name: name.into(),
            },
            OwnerInfo {
                revision: Some(revision.into()),
                service_account: None,
            },
        )
    }

    pub fn with_namespace(mut self, name: &str, info: NamespaceInfo) -> StaticLookup {
        self.namespaces.insert(name.to_string(), info);
        self
    }

    pub fn with_custody(mut self, object: ObjectRef, info: CustodyInfo) -> StaticLookup {
        self.custody.insert(object, info);
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

    fn custody(&self, object: &ObjectRef) -> Option<CustodyInfo> {
        self.custody.get(object).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitops_guard_core::custody::traces_to_root;
    use serde_json::json;

    fn w(kind: &str) -> Watched {
        Watched::named(kind).unwrap()
    }

    fn owner(kind: OwnerKind, ns: &str, name: &str) -> OwnerRef {
        OwnerRef {
            kind,
            namespace: ns.into(),
            name: name.into(),
        }
    }

    fn object(kind: &str, ns: &str, name: &str) -> ObjectRef {
        ObjectRef::new(kind, ns, name)
    }

    /// One watch event.
    enum Event {
        Apply(&'static str, Value),
        Delete(&'static str, Value),
        Replace(&'static str, Vec<Value>),
        Absent(&'static str),
    }

    fn feed(caches: &Caches, event: &Event) {
        match event {
            Event::Apply(k, v) => caches.apply(w(k), v.clone()),
            Event::Delete(k, v) => caches.delete(w(k), v),
            Event::Replace(k, l) => caches.replace(w(k), l.clone()),
            Event::Absent(k) => caches.absent(w(k)),
        }
    }

    fn kustomization(rev: &str) -> Value {
        json!({"apiVersion":"kustomize.toolkit.fluxcd.io/v1","kind":"Kustomization",
            "metadata":{"name":"apps","namespace":"flux-system","managedFields":[{"manager":"x"}]},
            "spec":{"path":"./apps"},"status":{"lastAppliedRevision":rev}})
    }

    /// flux-system/apps as `flux bootstrap` layouts have it: applied by the root Kustomization,
    /// reading the root GitRepository, with an inventory.
    fn flux_apps(inventory: &[&str]) -> Value {
        let entries: Vec<Value> = inventory
            .iter()
            .map(|id| json!({"id": id, "v": "v1"}))
            .collect();
        json!({"apiVersion":"kustomize.toolkit.fluxcd.io/v1","kind":"Kustomization",
            "metadata":{"name":"apps","namespace":"flux-system",
                "labels":{"kustomize.toolkit.fluxcd.io/name":"flux-system",
                    "kustomize.toolkit.fluxcd.io/namespace":"flux-system"},
                "annotations":{LAST_APPLIED:"{\"spec\":{\"path\":\"./apps\"}}"},
                "managedFields":[{"manager":"kustomize-controller","operation":"Apply"}]},
            "spec":{"interval":"10m","path":"./apps","prune":true,
                "sourceRef":{"kind":"GitRepository","name":"flux-system"}},
            "status":{"lastAppliedRevision":"main@sha1:aaa","inventory":{"entries":entries},
                "conditions":[{"type":"Ready","status":"True"}]}})
    }

    fn argo_web(destination: &str, resources: &[&str]) -> Value {
        let resources: Vec<Value> = resources
            .iter()
            .map(|ns| json!({"kind":"ConfigMap","name":"web","namespace":ns,"status":"Synced"}))
            .collect();
        json!({"apiVersion":"argoproj.io/v1alpha1","kind":"Application",
            "metadata":{"name":"web","namespace":"argocd"},
            "spec":{"project":"default","destination":{"server":"https://kubernetes.default.svc","namespace":destination},
                "source":{"repoURL":"https://git.example.com/web.git","path":"deploy"}},
            "status":{"resources":resources,"sync":{"status":"Synced"}}})
    }

    fn namespace(name: &str) -> Value {
        json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":name}})
    }

    #[test]
    fn flux_owners_follow_watch_events() {
        let caches = Caches::new(Arc::new(Config::default()));
        let ks = w("Kustomization");
        let apps = owner(OwnerKind::Kustomization, "flux-system", "apps");
        assert_eq!(caches.owner(&apps), None);
        caches.apply(ks, kustomization("main@sha1:aaa"));
        assert_eq!(
            caches.owner(&apps).unwrap().revision.as_deref(),
            Some("main@sha1:aaa")
        );
        caches.apply(ks, kustomization("main@sha1:bbb"));
        assert_eq!(
            caches.owner(&apps).unwrap().revision.as_deref(),
            Some("main@sha1:bbb")
        );
        // A HelmRelease of the same name is another owner.
        assert_eq!(
            caches.owner(&owner(OwnerKind::HelmRelease, "flux-system", "apps")),
            None
        );
        caches.delete(ks, &kustomization(""));
        assert_eq!(caches.owner(&apps), None);
        caches.replace(ks, vec![kustomization("main@sha1:ccc")]);
        assert_eq!(caches.len(ks), 1);
        caches.replace(ks, vec![]);
        assert_eq!(caches.owner(&apps), None);
    }

    #[test]
    fn config_changes_derive_again() {
        let caches = Caches::new(Arc::new(Config::default()));
        let apps = owner(OwnerKind::Kustomization, "flux-system", "apps");
        caches.apply(w("Kustomization"), kustomization("r"));
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
            w("Application"),
            json!({"metadata":{"name":"web","namespace":"argocd"},
                "spec":{"project":"team-a","destination":{"server":"https://kubernetes.default.svc","namespace":"prod"}},
                "status":{"operationState":{"syncResult":{"revision":"7d0e51f0a1","resources":[{"kind":"Deployment"}]}}}}),
        );
        let info = caches.owner(&web).unwrap();
        assert_eq!(info.revision.as_deref(), Some("7d0e51f0a1"));
        assert_eq!(info.service_account, None);
        caches.apply(
            w("AppProject"),
            json!({"metadata":{"name":"team-a","namespace":"argocd"},
                "spec":{"destinationServiceAccounts":[{"server":"*","namespace":"prod","defaultServiceAccount":"deployer"}]}}),
        );
        assert_eq!(
            caches.owner(&web).unwrap().service_account.as_deref(),
            Some("system:serviceaccount:prod:deployer")
        );
        caches.replace(w("AppProject"), vec![]);
        assert_eq!(caches.owner(&web).unwrap().service_account, None);
    }

    #[test]
    fn namespaces_are_derived() {
        let caches = Caches::new(Arc::new(Config::default()));
        caches.replace(
            w("Namespace"),
            vec![
                json!({"metadata":{"name":"prod","annotations":{"gitops-guard.dev/enforce":"all"},
                    "labels":{"kustomize.toolkit.fluxcd.io/name":"infra","kustomize.toolkit.fluxcd.io/namespace":"flux-system"}}}),
                // Not from Git: its annotation does not count.
                json!({"metadata":{"name":"staging","annotations":{"gitops-guard.dev/enforce":"all"}}}),
                json!({"metadata":{"name":"dev"}}),
            ],
        );
        let cases = [
            ("prod", true, true),
            ("staging", false, false),
            ("dev", false, false),
        ];
        for (name, managed, enforce_all) in cases {
            let info = caches.namespace(name).unwrap();
            assert_eq!(
                (info.managed, info.enforce_all),
                (managed, enforce_all),
                "{name}"
            );
        }
        caches.delete(w("Namespace"), &json!({"metadata":{"name":"prod"}}));
        assert_eq!(caches.namespace("prod"), None);
    }

    #[test]
    fn custody_info_follows_watch_events() {
        let cfg = Config::default();
        let caches = Caches::new(Arc::new(cfg.clone()));
        let apps = object("Kustomization", "flux-system", "apps");
        let labelled = CustodyInfo {
            owners: vec![owner(
                OwnerKind::Kustomization,
                "flux-system",
                "flux-system",
            )],
            sources: vec![object("GitRepository", "flux-system", "flux-system")],
            namespaces: vec!["flux-system".into(), "prod".into()],
            // What its inventory holds.
            applies: vec!["Deployment.apps".into()],
            ..CustodyInfo::default()
        };
        let mut unlabelled_apps = flux_apps(&[]);
        unlabelled_apps["metadata"]["labels"] = json!({});
        let unlabelled = CustodyInfo {
            owners: vec![],
            namespaces: vec!["flux-system".into()],
            applies: vec![],
            ..labelled.clone()
        };
        // (event, custody info of flux-system/apps, whether it traces to a root)
        let steps = [
            (
                Event::Apply("Kustomization", flux_apps(&["prod_web_apps_Deployment"])),
                Some(labelled.clone()),
                true,
            ),
            // Relabelled by hand: no owner any more.
            (
                Event::Apply("Kustomization", unlabelled_apps),
                Some(unlabelled),
                false,
            ),
            (Event::Delete("Kustomization", flux_apps(&[])), None, false),
            (
                Event::Replace(
                    "Kustomization",
                    vec![flux_apps(&["prod_web_apps_Deployment"])],
                ),
                Some(labelled.clone()),
                true,
            ),
            // Another kind of the same name is another object.
            (
                Event::Replace("HelmRelease", vec![]),
                Some(labelled.clone()),
                true,
            ),
            (Event::Replace("Kustomization", vec![]), None, false),
            (
                Event::Apply("Kustomization", flux_apps(&["prod_web_apps_Deployment"])),
                Some(labelled.clone()),
                true,
            ),
            // The CRD goes away.
            (Event::Absent("Kustomization"), None, false),
        ];
        for (i, (event, want, traces)) in steps.iter().enumerate() {
            feed(&caches, event);
            assert_eq!(caches.custody(&apps), *want, "step {i}");
            assert_eq!(
                caches.custody(&object("HelmRelease", "flux-system", "apps")),
                None,
                "step {i}"
            );
            assert_eq!(
                traces_to_root(&apps, &|o| caches.custody(o), &cfg),
                *traces,
                "step {i}"
            );
        }
    }

    #[test]
    fn custody_owners_follow_the_config() {
        let caches = Caches::new(Arc::new(Config::default()));
        let project = json!({"apiVersion":"argoproj.io/v1alpha1","kind":"AppProject",
            "metadata":{"name":"team-a","namespace":"argocd","labels":{"app.kubernetes.io/instance":"root"}}});
        let team_a = object("AppProject", "argocd", "team-a");
        let owners = |c: &Caches| c.custody(&team_a).map(|i| i.owners);
        caches.apply(w("AppProject"), project.clone());
        assert_eq!(owners(&caches), Some(vec![]));
        let mut cfg = Config::default();
        cfg.argocd.label_tracking = true;
        let cfg = Arc::new(cfg);
        caches.set_config(cfg.clone());
        let root = vec![owner(OwnerKind::Application, "argocd", "root")];
        assert_eq!(owners(&caches), Some(root.clone()));
        // Prepared under one config, cached under another: derived under the one in force.
        let entry = caches.prepare(w("AppProject"), project);
        caches.set_config(Arc::new(Config::default()));
        caches.replace_entries(w("AppProject"), vec![entry.clone()]);
        assert_eq!(owners(&caches), Some(vec![]));
        caches.set_config(cfg);
        caches.replace_entries(w("AppProject"), vec![entry]);
        assert_eq!(owners(&caches), Some(root));
        // Entries of another kind are not this kind's.
        let other = caches.prepare(w("Kustomization"), flux_apps(&[]));
        caches.replace_entries(w("AppProject"), vec![other]);
        assert_eq!(caches.len(w("AppProject")), 0);
        assert_eq!(caches.len(w("Kustomization")), 0);
    }

    #[test]
    fn status_subresources_come_from_discovery() {
        let caches = Caches::new(Arc::new(Config::default()));
        // Before the first discovery every kind counts as having one.
        assert!(caches.status_is_subresource("example.gitops-guard.dev", "widgets"));
        caches.set_status_subresources(HashMap::from([
            (("example.gitops-guard.dev".into(), "widgets".into()), false),
            (("apps".into(), "deployments".into()), true),
        ]));
        assert!(!caches.status_is_subresource("example.gitops-guard.dev", "widgets"));
        assert!(caches.status_is_subresource("apps", "deployments"));
        // A resource discovery did not list (an aggregated API that was down) is not guessed at.
        assert!(caches.status_is_subresource("metrics.k8s.io", "pods"));
    }

    #[test]
    fn readers_follow_values_from_and_substitute_from() {
        let caches = Caches::new(Arc::new(Config::default()));
        let hr = |values: Value| json!({"metadata":{"name":"web","namespace":"prod"},"spec":{"valuesFrom":values}});
        let values = ObjectRef::new("ConfigMap", "prod", "web-values");
        feed(
            &caches,
            &Event::Apply(
                "HelmRelease",
                hr(json!([{"kind":"ConfigMap","name":"web-values"}])),
            ),
        );
        assert_eq!(
            caches.readers(&values),
            [ObjectRef::new("HelmRelease", "prod", "web")]
        );
        // It reads another one now: the first is nobody's input any more.
        feed(
            &caches,
            &Event::Apply(
                "HelmRelease",
                hr(json!([{"kind":"Secret","name":"web-secret"}])),
            ),
        );
        assert!(caches.readers(&values).is_empty());
        assert_eq!(
            caches.readers(&ObjectRef::new("Secret", "prod", "web-secret")),
            [ObjectRef::new("HelmRelease", "prod", "web")]
        );
        feed(&caches, &Event::Delete("HelmRelease", hr(json!([]))));
        assert!(caches.state.read().unwrap().readers.is_empty());
    }

    #[test]
    fn a_panic_while_the_lock_was_held_does_not_stop_updates() {
        let caches = Arc::new(Caches::new(Arc::new(Config::default())));
        feed(
            &caches,
            &Event::Apply("Kustomization", flux_apps(&["prod_web_apps_Deployment"])),
        );
        let poisoner = caches.clone();
        let panicked = std::thread::spawn(move || {
            let _held = poisoner.state.write().unwrap();
            panic!("a bug while the state is held");
        })
        .join();
        assert!(panicked.is_err() && caches.state.is_poisoned());
        // Decisions still see what was there, and watch events still land.
        let apps = ObjectRef::new("Kustomization", "flux-system", "apps");
        assert!(caches.custody(&apps).is_some());
        feed(
            &caches,
            &Event::Apply("Application", argo_web("web", &["prod"])),
        );
        assert!(
            caches
                .custody(&ObjectRef::new("Application", "argocd", "web"))
                .is_some()
        );
        assert_eq!(caches.holders("prod").len(), 2);
    }

    #[test]
    fn holders_name_the_owners_that_hold_a_namespace() {
        let caches = Caches::new(Arc::new(Config::default()));
        feed(
            &caches,
            &Event::Apply("Kustomization", flux_apps(&["prod_web_apps_Deployment"])),
        );
        feed(
            &caches,
            &Event::Apply("Application", argo_web("web", &["prod"])),
        );
        let mut prod = caches.holders("prod");
        prod.sort();
        assert_eq!(
            prod,
            [
                ObjectRef::new("Application", "argocd", "web"),
                ObjectRef::new("Kustomization", "flux-system", "apps"),
            ]
        );
        // Applied again holding less: it no longer holds prod, and still holds its own namespace.
        feed(&caches, &Event::Apply("Kustomization", flux_apps(&[])));
        assert_eq!(
            caches.holders("prod"),
            [ObjectRef::new("Application", "argocd", "web")]
        );
        assert_eq!(
            caches.holders("flux-system"),
            [ObjectRef::new("Kustomization", "flux-system", "apps")]
        );
        assert!(caches.holders("nowhere").is_empty());
    }

    #[test]
    fn holds_managed_follows_inventories_and_resources() {
        let caches = Caches::new(Arc::new(Config::default()));
        let namespaces = ["flux-system", "argocd", "prod", "monitoring", "web", "dev"];
        // (event, namespaces that hold managed objects; `staging` is not a cached namespace)
        let steps: [(Event, &[&str], Option<bool>); 7] = [
            (
                Event::Replace(
                    "Namespace",
                    namespaces.iter().map(|n| namespace(n)).collect(),
                ),
                &[],
                None,
            ),
            (
                Event::Apply(
                    "Kustomization",
                    flux_apps(&[
                        "prod_web_apps_Deployment",
                        "staging_db__Service",
                        "_prod__Namespace",
                    ]),
                ),
                &["flux-system", "prod"],
                Some(true),
            ),
            (
                Event::Apply("Application", argo_web("web", &["monitoring", "prod"])),
                &["flux-system", "argocd", "prod", "monitoring", "web"],
                Some(true),
            ),
            // The inventory no longer lists prod, but the Application does.
            (
                Event::Apply("Kustomization", flux_apps(&[])),
                &["flux-system", "argocd", "prod", "monitoring", "web"],
                None,
            ),
            (
                Event::Delete("Application", argo_web("web", &[])),
                &["flux-system"],
                None,
            ),
            (Event::Delete("Kustomization", flux_apps(&[])), &[], None),
            // A source holds its own namespace.
            (
                Event::Replace(
                    "GitRepository",
                    vec![json!({"metadata":{"name":"podinfo","namespace":"dev"}})],
                ),
                &["dev"],
                None,
            ),
        ];
        for (i, (event, holding, staging)) in steps.iter().enumerate() {
            feed(&caches, event);
            for ns in namespaces {
                let info = caches.namespace(ns).unwrap();
                assert_eq!(info.holds_managed, holding.contains(&ns), "step {i}: {ns}");
            }
            assert_eq!(
                caches.namespace("staging").map(|i| i.holds_managed),
                *staging,
                "step {i}"
            );
        }
        caches.absent(w("GitRepository"));
        assert!(!caches.namespace("dev").unwrap().holds_managed);
        assert!(caches.state.read().unwrap().holders.is_empty());
    }

    #[test]
    fn serves_answers_from_the_watches() {
        let caches = Caches::new(Arc::new(Config::default()));
        let served = |kind: &str| caches.serves(custody::kind_named(kind).unwrap());
        // (event, kinds served after it)
        let steps: [(Event, &[&str]); 6] = [
            (Event::Absent("GitRepository"), &[]),
            (Event::Replace("GitRepository", vec![]), &["GitRepository"]),
            (
                Event::Replace(
                    "ApplicationSet",
                    vec![json!({"metadata":{"name":"a","namespace":"argocd"}})],
                ),
                &["GitRepository", "ApplicationSet"],
            ),
            (
                Event::Absent("Namespace"),
                &["GitRepository", "ApplicationSet"],
            ),
            (Event::Absent("ApplicationSet"), &["GitRepository"]),
            (Event::Absent("GitRepository"), &[]),
        ];
        for (i, (event, want)) in steps.iter().enumerate() {
            feed(&caches, event);
            for kind in custody::KINDS {
                assert_eq!(
                    served(kind.kind),
                    want.contains(&kind.kind),
                    "step {i}: {}",
                    kind.kind
                );
            }
        }
        assert_eq!(caches.len(w("ApplicationSet")), 0);
    }

    #[test]
    fn namespace_windows_keep_their_opening_time() {
        let cfg = Config::default();
        let caches = Caches::new(Arc::new(cfg.clone()));
        let opened = |time: &str| {
            json!({"manager":"kubectl-annotate","operation":"Update","apiVersion":"v1","time":time,
                "fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:annotations":{
                    "f:gitops-guard.dev/break-glass-until":{},"f:gitops-guard.dev/break-glass-reason":{},
                    "f:gitops-guard.dev/break-glass-by":{}}}}})
        };
        let other = json!({"manager":"kustomize-controller","operation":"Apply","apiVersion":"v1",
            "time":"2026-12-01T11:00:00Z","fieldsType":"FieldsV1",
            "fieldsV1":{"f:metadata":{"f:labels":{"f:kustomize.toolkit.fluxcd.io/name":{}}}}});
        let ns = |name: &str, fields: Vec<Value>| {
            json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":name,
                "labels":{"kustomize.toolkit.fluxcd.io/name":"infra","kustomize.toolkit.fluxcd.io/namespace":"flux-system"},
                "annotations":{"gitops-guard.dev/break-glass-until":"2026-12-01T14:00:00Z",
                    "gitops-guard.dev/break-glass-reason":"db failover","gitops-guard.dev/break-glass-by":"ana",
                    LAST_APPLIED:"{}"},
                "managedFields":fields},
                "spec":{"finalizers":["kubernetes"]},"status":{"phase":"Active"}})
        };
        // (namespace, when its window opened, managedFields entries kept)
        let cases = [
            (
                ns("prod", vec![other.clone(), opened("2026-12-01T12:00:00Z")]),
                Some("2026-12-01T12:00:00Z"),
                1,
            ),
            // Re-opened: the newest entry dates it.
            (
                ns(
                    "shop",
                    vec![
                        opened("2026-12-01T09:00:00Z"),
                        other.clone(),
                        opened("2026-12-01T12:30:00Z"),
                    ],
                ),
                Some("2026-12-01T12:30:00Z"),
                2,
            ),
            // Written while no record says when: the window cannot be dated.
            (ns("dev", vec![other]), None, 0),
            (ns("qa", vec![]), None, 0),
        ];
        for (value, want, kept) in cases {
            let name = value["metadata"]["name"].as_str().unwrap().to_string();
            caches.apply(w("Namespace"), value.clone());
            let info = caches.namespace(&name).unwrap();
            assert_eq!(info, namespace_info(&value, &cfg), "{name}");
            assert_eq!(info.break_glass.unwrap().opened.as_deref(), want, "{name}");
            let state = caches.state.read().unwrap();
            let facts = &state.namespace_facts[&name];
            let fields = facts.pointer("/metadata/managedFields");
            assert_eq!(
                fields.and_then(Value::as_array).map_or(0, Vec::len),
                kept,
                "{name}"
            );
            assert_eq!(
                facts
                    .pointer("/metadata/annotations")
                    .unwrap()
                    .get(LAST_APPLIED),
                None
            );
            assert_eq!(facts.get("spec"), None, "{name}");
        }
    }

    /// The facts kept of an object derive what the whole object derives, whatever the config.
    #[test]
    fn facts_derive_as_the_whole_object() {
        let mut sa = Config::default();
        sa.flux.default_service_account = "default".into();
        let mut labels = Config::default();
        labels.argocd.label_tracking = true;
        labels.argocd.namespace = "gitops".into();
        let configs = [Config::default(), sa, labels];
        let project = json!({"apiVersion":"argoproj.io/v1alpha1","kind":"AppProject",
            "metadata":{"name":"team-a","namespace":"argocd","labels":{"app.kubernetes.io/instance":"root"},
                "annotations":{"argocd.argoproj.io/tracking-id":"root:argoproj.io/AppProject:argocd/team-a"}},
            "spec":{"sourceRepos":["*"],"destinations":[{"server":"*","namespace":"*"}],
                "destinationServiceAccounts":[{"server":"*","namespace":"prod","defaultServiceAccount":"deployer"},
                    {"server":"*","namespace":"*","defaultServiceAccount":"argocd:sync"}]}});
        let mut tenant = flux_apps(&["prod_web_apps_Deployment"]);
        tenant["spec"]["serviceAccountName"] = "reconciler".into();
        let cases = [
            ("Kustomization", flux_apps(&["prod_web_apps_Deployment"])),
            ("Kustomization", tenant),
            (
                "HelmRelease",
                json!({"apiVersion":"helm.toolkit.fluxcd.io/v2","kind":"HelmRelease",
                    "metadata":{"name":"redis","namespace":"prod","labels":{"kustomize.toolkit.fluxcd.io/name":"apps",
                        "kustomize.toolkit.fluxcd.io/namespace":"flux-system"}},
                    "spec":{"chart":{"spec":{"chart":"redis","sourceRef":{"kind":"HelmRepository","name":"bitnami"}}},
                        "values":{"replicas":3}},
                    "status":{"history":[{"chartName":"redis","chartVersion":"19.0.1","digest":"sha256:x","status":"deployed"},
                        {"chartName":"redis","chartVersion":"18.0.0"}]}}),
            ),
            (
                "Application",
                json!({"apiVersion":"argoproj.io/v1alpha1","kind":"Application",
                    "metadata":{"name":"web","namespace":"argocd","labels":{"app.kubernetes.io/instance":"root"}},
                    "spec":{"project":"team-a","destination":{"server":"https://kubernetes.default.svc","namespace":"prod"},
                        "source":{"repoURL":"https://git.example.com/web.git","targetRevision":"main","helm":{"values":"big: values"}}},
                    "status":{"operationState":{"syncResult":{"revision":"7d0e51f0a1","resources":[{"kind":"Deployment"}]}},
                        "history":[{"revision":"0000000","id":1}],"resources":[{"kind":"Deployment","namespace":"prod"}]}}),
            ),
            (
                "Application",
                json!({"apiVersion":"argoproj.io/v1alpha1","kind":"Application",
                    "metadata":{"name":"multi","namespace":"argocd"},
                    "spec":{"project":"team-a","destination":{"server":"https://kubernetes.default.svc","namespace":"shop"},
                        "sources":[{"repoURL":"a"},{"repoURL":"b"}]},
                    "status":{"history":[{"revisions":["1111111","2222222"],"id":1},{"revisions":["3333333","4444444"],"id":2}]}}),
            ),
            ("AppProject", project.clone()),
        ];
        for cfg in &configs {
            for (kind, value) in &cases {
                let k = custody::kind_named(kind).unwrap();
                let facts = custody_facts(k, value);
                let text = serde_json::to_string(value).unwrap();
                let whole = Object::from_json(&text).unwrap();
                assert_eq!(
                    own_owners(k, &facts, cfg),
                    owners_of(&whole, k.group, k.kind, cfg),
                    "{kind} {value}"
                );
                match *kind {
                    "Kustomization" | "HelmRelease" => assert_eq!(
                        flux_owner_info(&facts, cfg),
                        flux_owner_info(value, cfg),
                        "{value}"
                    ),
                    "Application" => {
                        let project_facts =
                            custody_facts(custody::kind_named("AppProject").unwrap(), &project);
                        for (p, pf) in [(None, None), (Some(&project), Some(&project_facts))] {
                            assert_eq!(
                                argo_owner_info(&facts, pf),
                                argo_owner_info(value, p),
                                "{value}"
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// The watches decode objects shallow ([`shallow::Shallow`]): what the caches derive from that
    /// is what they derive from the whole object, for every kind and config, whatever else and
    /// however deep the object holds.
    #[test]
    fn shallow_objects_derive_as_whole_ones() {
        // As deep as a whole object may be as a `Value` (serde_json's limit, 128, counts from its
        // root); the shallow walk cuts at 16. Deeper: `shallow`'s own tests.
        let deep = |depth: usize| -> Value {
            serde_json::from_str(&format!("{}1{}", "[".repeat(depth), "]".repeat(depth))).unwrap()
        };
        let mut sa = Config::default();
        sa.flux.default_service_account = "default".into();
        let mut labels = Config::default();
        labels.argocd.label_tracking = true;
        labels.argocd.namespace = "gitops".into();
        let configs = [Config::default(), sa, labels];
        let from_root = json!({"kustomize.toolkit.fluxcd.io/name":"flux-system",
            "kustomize.toolkit.fluxcd.io/namespace":"flux-system","app.kubernetes.io/instance":"root"});
        let mut ks = flux_apps(&["prod_web_apps_Deployment", "_prod__Namespace"]);
        ks["spec"]["serviceAccountName"] = "reconciler".into();
        ks["spec"]["targetNamespace"] = "shop".into();
        ks["spec"]["postBuild"] = json!({"substitute":{"a":"b"},
            "substituteFrom":[{"kind":"ConfigMap","name":"vars"},{"kind":"Secret","name":"creds","optional":true}]});
        ks["spec"]["patches"] = json!([{"patch": deep(90)}]);
        let helm = |chart: Value| {
            json!({"apiVersion":"helm.toolkit.fluxcd.io/v2","kind":"HelmRelease",
                "metadata":{"name":"redis","namespace":"prod","labels":from_root,
                    "annotations":{LAST_APPLIED:"{}","argocd.argoproj.io/tracking-id":"root:helm.toolkit.fluxcd.io/HelmRelease:prod/redis"},
                    "managedFields":[{"manager":"helm","time":"2026-12-01T10:00:00Z","fieldsV1":{"f:spec":{"f:values":deep(90)}}}]},
                "spec":{"chart":chart["chart"],"chartRef":chart["chartRef"],"values":{"a":deep(90)},
                    "serviceAccountName":"deployer","targetNamespace":"cache",
                    "valuesFrom":[{"kind":"ConfigMap","name":"redis-values"},{"kind":"Secret","name":"redis-auth","valuesKey":"pw"}]},
                "status":{"lastAppliedRevision":"19.0.1","history":[{"chartName":"redis","chartVersion":"19.0.1","values":deep(90)},
                    {"chartName":"redis","chartVersion":"18.0.0"}]}})
        };
        let cases = [
            ("Kustomization", ks),
            (
                "HelmRelease",
                helm(
                    json!({"chart":{"spec":{"chart":"redis","sourceRef":{"kind":"HelmRepository","name":"bitnami","namespace":"flux-system"}}}}),
                ),
            ),
            (
                "HelmRelease",
                helm(json!({"chartRef":{"kind":"OCIRepository","name":"redis"}})),
            ),
            (
                "ArtifactGenerator",
                json!({"apiVersion":"source.extensions.fluxcd.io/v1beta1","kind":"ArtifactGenerator",
                    "metadata":{"name":"gen","namespace":"flux-system","labels":from_root},
                    "spec":{"sources":[{"alias":"a","kind":"GitRepository","name":"flux-system"},
                        {"alias":"b","kind":"OCIRepository","name":"charts","namespace":"shared"}],
                        "artifacts":[{"name":"x","copy":[{"from":"@a/**","to":"@artifact/"}],"deep":deep(90)}]}}),
            ),
            (
                "ExternalArtifact",
                json!({"apiVersion":"source.toolkit.fluxcd.io/v1","kind":"ExternalArtifact",
                    "metadata":{"name":"x","namespace":"flux-system"},
                    "spec":{"sourceRef":{"apiVersion":"source.extensions.fluxcd.io/v1beta1","kind":"ArtifactGenerator","name":"gen"}}}),
            ),
            (
                "GitRepository",
                json!({"apiVersion":"source.toolkit.fluxcd.io/v1","kind":"GitRepository",
                    "metadata":{"name":"podinfo","namespace":"dev","labels":from_root,"deletionTimestamp":"2026-12-01T10:00:00Z"},
                    "spec":{"url":"https://github.com/acme/podinfo","ref":{"branch":"main"},
                        "include":[{"repository":{"name":"shared"},"fromPath":"deploy","toPath":"shared"}]},
                    "status":{"artifact":{"revision":"main@sha1:1"}}}),
            ),
            (
                "HelmChart",
                json!({"apiVersion":"source.toolkit.fluxcd.io/v1","kind":"HelmChart",
                    "metadata":{"name":"shop","namespace":"flux-system","labels":from_root},
                    "spec":{"chart":"./charts/shop","version":"*","sourceRef":{"kind":"GitRepository","name":"platform"}}}),
            ),
            (
                "Application",
                json!({"apiVersion":"argoproj.io/v1alpha1","kind":"Application",
                    "metadata":{"name":"web","namespace":"argocd","labels":from_root,
                        "ownerReferences":[{"apiVersion":"argoproj.io/v1alpha1","kind":"ApplicationSet","name":"webs","uid":"u","controller":true}]},
                    "spec":{"project":"team-a","destination":{"server":"https://kubernetes.default.svc","namespace":"prod"},
                        "sources":[{"repoURL":"a","helm":{"valuesObject":deep(90)}},{"repoURL":"b"}]},
                    "status":{"operationState":{"syncResult":{"revisions":["1111111","2222222"],"resources":[{"kind":"Deployment"}],"source":deep(90)}},
                        "history":[{"revision":"0000000","id":1,"source":deep(90)},{"revisions":["3333333","4444444"],"id":2}],
                        "resources":[{"kind":"Deployment","namespace":"prod"},{"kind":"Namespace","name":"extra"},{"kind":"Service","namespace":"shop"}]}}),
            ),
            (
                "AppProject",
                json!({"apiVersion":"argoproj.io/v1alpha1","kind":"AppProject",
                    "metadata":{"name":"team-a","namespace":"argocd","labels":from_root},
                    "spec":{"sourceRepos":["*"],"destinations":[{"server":"*","namespace":"*"}],
                        "destinationServiceAccounts":[{"server":"*","namespace":"prod","defaultServiceAccount":"deployer"},
                            {"server":"*","namespace":"*","defaultServiceAccount":"argocd:sync"}]}}),
            ),
            (
                "Namespace",
                json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"prod","labels":from_root,
                    "annotations":{"gitops-guard.dev/enforce":"all","gitops-guard.dev/mode":"audit",
                        "gitops-guard.dev/break-glass-until":"2026-12-01T14:00:00Z","gitops-guard.dev/break-glass-reason":"db",
                        "gitops-guard.dev/break-glass-by":"ana",LAST_APPLIED:"{}"},
                    "managedFields":[
                        {"manager":"kubectl-annotate","operation":"Update","time":"2026-12-01T12:00:00Z","fieldsType":"FieldsV1",
                            "fieldsV1":{"f:metadata":{"f:annotations":{"f:gitops-guard.dev/break-glass-until":{}}}}},
                        {"manager":"kustomize-controller","operation":"Apply","time":"2026-12-01T13:00:00Z",
                            "fieldsV1":{"f:metadata":{"f:labels":{"f:x":{}}},"f:spec":deep(90)}}]},
                    "spec":{"finalizers":["kubernetes"]},"status":{"phase":"Terminating"}}),
            ),
        ];
        for cfg in configs {
            let caches = Caches::new(Arc::new(cfg.clone()));
            for (kind, whole) in &cases {
                let text = serde_json::to_string(whole).unwrap();
                let shallow: shallow::Shallow = serde_json::from_str(&text).unwrap();
                let shallow = shallow.into_value();
                assert!(shallow.to_string().len() < 1500, "{kind}: {shallow}");
                let (a, b) = (
                    caches.prepare(w(kind), whole.clone()),
                    caches.prepare(w(kind), shallow),
                );
                assert_eq!((&a.namespace, &a.name), (&b.namespace, &b.name), "{kind}");
                assert_eq!(a.custody, b.custody, "{kind}");
                if *kind == "Namespace" {
                    assert_eq!(
                        namespace_info(&a.facts, &cfg),
                        namespace_info(&b.facts, &cfg)
                    );
                    assert!(namespace_info(&b.facts, &cfg).break_glass.is_some());
                } else {
                    assert_eq!(a.facts, b.facts, "{kind}");
                }
            }
            // And the owners derived from them.
            for (kind, whole) in &cases {
                caches.apply(w(kind), whole.clone());
            }
            let whole_owners = caches.read().owners.clone();
            for (kind, whole) in &cases {
                let shallow: shallow::Shallow = serde_json::from_str(&whole.to_string()).unwrap();
                caches.apply(w(kind), shallow.into_value());
            }
            assert_eq!(caches.read().owners, whole_owners);
            assert!(!whole_owners.is_empty());
        }
    }

    /// What the cache keeps does not grow with inventories, resource lists or specs.
    #[test]
    fn cached_objects_stay_small() {
        let caches = Caches::new(Arc::new(Config::default()));
        let ids: Vec<String> = (0..2000)
            .map(|i| format!("ns-{}_web-{i}_apps_Deployment", i % 3))
            .collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut ks = flux_apps(&ids);
        ks["spec"]["patches"] = json!([{"patch": "x".repeat(50_000)}]);
        let resources: Vec<String> = (0..2000).map(|i| format!("ns-{}", i % 4)).collect();
        let resources: Vec<&str> = resources.iter().map(String::as_str).collect();
        let app = argo_web("web", &resources);
        let cases = [
            (
                "Kustomization",
                ks,
                object("Kustomization", "flux-system", "apps"),
                4,
            ),
            (
                "Application",
                app,
                object("Application", "argocd", "web"),
                6,
            ),
        ];
        for (kind, value, object, namespaces) in cases {
            caches.apply(w(kind), value);
            let state = caches.state.read().unwrap();
            let held = state.held(kind, &object).unwrap();
            let size = serde_json::to_string(&held.facts).unwrap().len();
            assert!(size < 600, "{kind}: {size} bytes: {}", held.facts);
            assert_eq!(
                held.info.namespaces.len(),
                namespaces,
                "{kind}: {:?}",
                held.info.namespaces
            );
        }
    }

    #[test]
    fn watched_kinds_come_from_the_custody_table() {
        let all: Vec<Watched> = Watched::all().collect();
        assert_eq!(
            all.len(),
            custody::KINDS.len() + 1 + workload::WORKLOADS.len() + 1
        );
        let cases = [
            (
                "Kustomization",
                "Kustomization (kustomize.toolkit.fluxcd.io/v1)",
                true,
            ),
            (
                "HelmRelease",
                "HelmRelease (helm.toolkit.fluxcd.io/v2)",
                true,
            ),
            (
                "ArtifactGenerator",
                "ArtifactGenerator (source.extensions.fluxcd.io/v1beta1)",
                true,
            ),
            ("AppProject", "AppProject (argoproj.io/v1alpha1)", true),
            ("Namespace", "Namespace (v1)", false),
            // Not always served in these versions: watched once discovery finds one.
            ("Deployment", "Deployment (apps/v1)", true),
            ("CronJob", "CronJob (batch/v1)", true),
            ("Service", "Service (v1)", true),
            ("Ingress", "Ingress (networking.k8s.io/v1)", true),
        ];
        for (kind, display, crd) in cases {
            let watched = w(kind);
            assert!(all.contains(&watched), "{kind}");
            assert_eq!(watched.display(), display);
            assert_eq!(watched.is_crd(), crd, "{kind}");
            assert_eq!(watched.gvk().2, kind);
        }
        assert_eq!(w("CronJob").versions(), ["v1", "v1beta1"]);
        assert_eq!(w("Ingress").versions(), ["v1", "v1beta1"]);
        assert_eq!(Watched::named("Pod"), None);
    }

    /// The Ingresses cache: the hosts of the managed ones, in every namespace, as the shallow
    /// copy derives them, following watch events, relists, the config and `enforce: all`.
    #[test]
    fn ingresses_claim_their_hosts_cluster_wide() {
        let caches = Caches::new(Arc::new(Config::default()));
        let ingress = |ns: &str, name: &str, labels: Value, host: &str| {
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": name, "namespace": ns, "uid": format!("{ns}-{name}"), "labels": labels,
                    "annotations": {LAST_APPLIED: "{}", "gitops-guard.dev/allow": "manual"}},
                "spec": {"ingressClassName": "nginx",
                    "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                        "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}],
                    "tls": [{"hosts": ["*.tls.example.com"], "secretName": "web-tls"}]},
                "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}})
        };
        let flux = json!({"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"});
        let web = ingress("prod", "web", flux.clone(), "app.example.com");
        let text = web.to_string();
        let shallow: shallow::Shallow = serde_json::from_str(&text).unwrap();
        let shallow = shallow.into_value();
        assert!(!shallow.to_string().contains("backend"), "{shallow}");
        let (a, b) = (
            caches.prepare(Watched::Ingress, web.clone()),
            caches.prepare(Watched::Ingress, shallow),
        );
        assert_eq!(a.ingress, b.ingress);
        let facts = b.ingress.clone().unwrap();
        assert_eq!(facts.hosts.len(), 2);
        assert_eq!(facts.owners.len(), 1);
        assert_eq!(facts.exceptions.len(), 1);

        let hosts = |h: &str| vec![ingress::Host::parse(h)];
        let claims = |this: (&str, &str), h: &str| -> Vec<String> {
            caches
                .claims(this, &hosts(h))
                .iter()
                .map(|c| format!("{}/{} {}", c.ingress.namespace, c.ingress.name, c.host))
                .collect()
        };
        caches.replace(
            Watched::Ingress,
            vec![
                web.clone(),
                ingress("dev", "tool", json!({}), "tool.example.com"),
            ],
        );
        assert_eq!(caches.len(Watched::Ingress), 2);
        assert_eq!(
            claims(("team", "x"), "APP.example.com"),
            ["prod/web app.example.com"]
        );
        assert_eq!(
            claims(("team", "x"), "a.tls.example.com"),
            ["prod/web *.tls.example.com"]
        );
        assert_eq!(
            claims(("prod", "web"), "app.example.com"),
            Vec::<String>::new()
        );
        // Not managed: nobody's host.
        assert_eq!(
            claims(("team", "x"), "tool.example.com"),
            Vec::<String>::new()
        );
        // Its namespace becomes `enforce: all` (from Git): the namespace manages it.
        let mut dev = namespace("dev");
        dev["metadata"]["labels"] = flux.clone();
        dev["metadata"]["annotations"] = json!({"gitops-guard.dev/enforce": "all"});
        caches.apply(Watched::Namespace, dev);
        assert_eq!(
            claims(("team", "x"), "tool.example.com"),
            ["dev/tool tool.example.com"]
        );
        // Watch events: moved to another host, deleted.
        caches.apply(
            Watched::Ingress,
            ingress("prod", "web", flux.clone(), "new.example.com"),
        );
        assert_eq!(
            claims(("team", "x"), "app.example.com"),
            Vec::<String>::new()
        );
        assert_eq!(
            claims(("team", "x"), "new.example.com"),
            ["prod/web new.example.com"]
        );
        caches.delete(Watched::Ingress, &web);
        assert_eq!(
            claims(("team", "x"), "new.example.com"),
            Vec::<String>::new()
        );
        // Label tracking turned on: an Ingress with the tracking label becomes managed.
        caches.apply(
            Watched::Ingress,
            ingress(
                "prod",
                "web",
                json!({"app.kubernetes.io/instance": "web"}),
                "app.example.com",
            ),
        );
        assert_eq!(
            claims(("team", "x"), "app.example.com"),
            Vec::<String>::new()
        );
        let mut tracking = Config::default();
        tracking.argocd.label_tracking = true;
        caches.set_config(Arc::new(tracking));
        assert_eq!(
            claims(("team", "x"), "app.example.com"),
            ["prod/web app.example.com"]
        );
        caches.absent(Watched::Ingress);
        assert_eq!(caches.len(Watched::Ingress), 0);
    }

    /// The workloads cache: a Pod's chain, what a target steers, and both following watch
    /// events, relists, the config and the namespace's `enforce: all`.
    #[test]
    fn workloads_lead_pods_to_what_git_declares() {
        let config = Arc::new(Config::default());
        let caches = Caches::new(config.clone());
        let deployment = |labels: Value| {
            json!({"apiVersion":"apps/v1","kind":"Deployment",
                "metadata":{"name":"web","namespace":"prod","uid":"d-1","labels":labels,
                    "annotations":{LAST_APPLIED:"{}","gitops-guard.dev/allow":"manual"}},
                "spec":{"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},
                    "spec":{"containers":[{"name":"web","image":"web:1"}]}}}})
        };
        let rs = json!({"apiVersion":"apps/v1","kind":"ReplicaSet",
            "metadata":{"name":"web-1","namespace":"prod","uid":"rs-1",
                "ownerReferences":[{"apiVersion":"apps/v1","kind":"Deployment","name":"web","uid":"d-1","controller":true,"blockOwnerDeletion":true}]},
            "spec":{"selector":{"matchLabels":{"app":"web","pod-template-hash":"1"}},
                "template":{"metadata":{"labels":{"app":"web","pod-template-hash":"1"}}}}});
        let service = json!({"apiVersion":"v1","kind":"Service",
            "metadata":{"name":"web","namespace":"prod","uid":"s-1","labels":{"app.kubernetes.io/instance":"web"}},
            "spec":{"selector":{"app":"web"}}});
        let from_pod = ControllerRef {
            group: "apps".into(),
            kind: "ReplicaSet".into(),
            name: "web-1".into(),
            uid: "rs-1".into(),
        };
        let pods = Target::Pods([("app".to_string(), "web".to_string())].into());
        let names = |c: &Caches| -> Vec<String> {
            c.steered("prod", &pods)
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        let shallow = |v: &Value| -> Value {
            serde_json::from_str::<shallow::Shallow>(&v.to_string())
                .unwrap()
                .into_value()
        };
        let flux = json!({"kustomize.toolkit.fluxcd.io/name":"apps","kustomize.toolkit.fluxcd.io/namespace":"flux-system"});

        // Not managed yet: nothing leads anywhere.
        caches.replace(w("ReplicaSet"), vec![shallow(&rs)]);
        caches.replace(w("Deployment"), vec![shallow(&deployment(json!({})))]);
        caches.replace(w("Service"), vec![shallow(&service)]);
        assert_eq!(caches.len(w("ReplicaSet")), 1);
        assert_eq!(caches.controlled("prod", &from_pod), None);
        assert!(names(&caches).is_empty());

        // Flux applies the Deployment: its ReplicaSet's Pods lead to it, with its exceptions.
        caches.apply(w("Deployment"), shallow(&deployment(flux.clone())));
        let root = caches.controlled("prod", &from_pod).unwrap();
        assert_eq!(root.to_string(), "deployment/web");
        assert_eq!(
            root.owners[0].to_string(),
            "Flux Kustomization flux-system/apps"
        );
        assert_eq!(
            root.exceptions
                .get("gitops-guard.dev/allow")
                .map(String::as_str),
            Some("manual")
        );
        assert_eq!(
            caches.controlled("dev", &from_pod),
            None,
            "owner references stay in a namespace"
        );
        assert_eq!(names(&caches), ["deployment/web"]);

        // Label tracking turned on: the Service's instance label is Argo CD's now.
        let mut tracking = Config::default();
        tracking.argocd.label_tracking = true;
        caches.set_config(Arc::new(tracking));
        assert_eq!(names(&caches), ["service/web", "deployment/web"]);
        caches.set_config(config);

        // An `enforce: all` namespace from Git manages every workload in it.
        caches.apply(w("Deployment"), shallow(&deployment(json!({}))));
        assert_eq!(caches.controlled("prod", &from_pod), None);
        caches.replace(
            Watched::Namespace,
            vec![
                json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"prod",
                "labels": flux, "annotations":{"gitops-guard.dev/enforce":"all"}}}),
            ],
        );
        let root = caches.controlled("prod", &from_pod).unwrap();
        assert_eq!(
            (root.to_string(), root.owners[0].kind),
            ("deployment/web".to_string(), OwnerKind::Namespace),
            "the topmost managed object is named"
        );
        assert_eq!(names(&caches), ["service/web", "deployment/web"]);
        caches.replace(Watched::Namespace, Vec::new());
        caches.apply(w("Deployment"), shallow(&deployment(flux.clone())));

        // Deleted, relisted without it, or its kind no longer served: gone.
        caches.delete(w("ReplicaSet"), &rs);
        assert_eq!(caches.controlled("prod", &from_pod), None);
        caches.apply(w("ReplicaSet"), shallow(&rs));
        assert!(caches.controlled("prod", &from_pod).is_some());
        caches.replace(w("Deployment"), Vec::new());
        assert_eq!(caches.controlled("prod", &from_pod), None);
        caches.absent(w("Service"));
        assert!(names(&caches).is_empty());
    }

    #[test]
    fn static_lookup_answers_custody() {
        let apps = object("Kustomization", "flux-system", "apps");
        let info = CustodyInfo {
            owners: vec![owner(
                OwnerKind::Kustomization,
                "flux-system",
                "flux-system",
            )],
            ..CustodyInfo::default()
        };
        let lookup = StaticLookup::new().with_custody(apps.clone(), info.clone());
        assert_eq!(lookup.custody(&apps), Some(info));
        assert_eq!(
            lookup.custody(&object("Kustomization", "flux-system", "infra")),
            None
        );
        assert!(traces_to_root(
            &apps,
            &|o| lookup.custody(o),
            &Config::default()
        ));
        assert!(lookup.serves(&custody::KINDS[0]));
    }
}
