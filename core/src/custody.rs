//! Chain of custody: the owner and source kinds of Flux and Argo CD, and whether one of them traces
//! back through Git to a bootstrap root.
//!
//! An agent applies whatever its owners and sources point at. So the guard does not only ask "is
//! this the agent?" but also "does what the agent acts for come from Git?": every Kustomization,
//! HelmRelease, Application and every source they read must be applied by an owner that is itself
//! in Git, up to a root named in the config (`custody.roots`, by default what `flux bootstrap`
//! creates).

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Config;
use crate::owner::{OwnerKind, OwnerRef};

/// Which agent acts on a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agent {
    Flux,
    ArgoCd,
}

impl Agent {
    pub fn name(self) -> &'static str {
        match self {
            Agent::Flux => "Flux",
            Agent::ArgoCd => "Argo CD",
        }
    }
}

/// One owner or source kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub agent: Agent,
    /// What it is, with its article, for messages ("a Flux source", "an Argo CD Application").
    pub noun: &'static str,
    /// Whether `status` is a subresource (else it is an ordinary field of the object).
    pub status_subresource: bool,
    /// The controller (service account name) whose CRD this is: it counts as installed only while
    /// the API server serves this kind.
    pub controller: &'static str,
}

const fn flux(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    noun: &'static str,
    controller: &'static str,
) -> Kind {
    Kind {
        group,
        version,
        kind,
        plural,
        agent: Agent::Flux,
        noun,
        status_subresource: true,
        controller,
    }
}

const fn argo(
    kind: &'static str,
    plural: &'static str,
    noun: &'static str,
    status_subresource: bool,
    controller: &'static str,
) -> Kind {
    Kind {
        group: ARGO,
        version: "v1alpha1",
        kind,
        plural,
        agent: Agent::ArgoCd,
        noun,
        status_subresource,
        controller,
    }
}

/// Flux source-controller's API group (GitRepository, OCIRepository, Bucket, HelmRepository,
/// HelmChart, ExternalArtifact).
pub const SOURCE: &str = "source.toolkit.fluxcd.io";
/// Flux kustomize-controller's API group (Kustomization).
pub const KUSTOMIZE: &str = "kustomize.toolkit.fluxcd.io";
/// Flux helm-controller's API group (HelmRelease).
pub const HELM: &str = "helm.toolkit.fluxcd.io";
/// Argo CD's API group (Application, ApplicationSet, AppProject).
pub const ARGO: &str = "argoproj.io";
const IMAGE: &str = "image.toolkit.fluxcd.io";
/// The API group of source-watcher's ArtifactGenerator (its ExternalArtifacts are in
/// `source.toolkit.fluxcd.io`).
pub const SOURCE_EXTENSIONS: &str = "source.extensions.fluxcd.io";

/// Every owner and source kind the guard keeps in custody (the versions are those the webhook
/// watches; requests in any version are judged alike).
pub const KINDS: &[Kind] = &[
    flux(
        SOURCE,
        "v1",
        "GitRepository",
        "gitrepositories",
        "a Flux source",
        "source-controller",
    ),
    flux(
        SOURCE,
        "v1",
        "OCIRepository",
        "ocirepositories",
        "a Flux source",
        "source-controller",
    ),
    flux(
        SOURCE,
        "v1",
        "HelmRepository",
        "helmrepositories",
        "a Flux source",
        "source-controller",
    ),
    flux(
        SOURCE,
        "v1",
        "HelmChart",
        "helmcharts",
        "a Flux source",
        "source-controller",
    ),
    flux(
        SOURCE,
        "v1",
        "Bucket",
        "buckets",
        "a Flux source",
        "source-controller",
    ),
    flux(
        SOURCE,
        "v1",
        "ExternalArtifact",
        "externalartifacts",
        "a Flux source",
        "source-watcher",
    ),
    flux(
        SOURCE_EXTENSIONS,
        "v1beta1",
        "ArtifactGenerator",
        "artifactgenerators",
        "a Flux source",
        "source-watcher",
    ),
    flux(
        KUSTOMIZE,
        "v1",
        "Kustomization",
        "kustomizations",
        "a Flux Kustomization",
        "kustomize-controller",
    ),
    flux(
        HELM,
        "v2",
        "HelmRelease",
        "helmreleases",
        "a Flux HelmRelease",
        "helm-controller",
    ),
    flux(
        IMAGE,
        "v1",
        "ImageRepository",
        "imagerepositories",
        "a Flux image automation object",
        "image-reflector-controller",
    ),
    flux(
        IMAGE,
        "v1",
        "ImagePolicy",
        "imagepolicies",
        "a Flux image automation object",
        "image-reflector-controller",
    ),
    flux(
        IMAGE,
        "v1",
        "ImageUpdateAutomation",
        "imageupdateautomations",
        "a Flux image automation object",
        "image-automation-controller",
    ),
    argo(
        "Application",
        "applications",
        "an Argo CD Application",
        false,
        "argocd-application-controller",
    ),
    argo(
        "ApplicationSet",
        "applicationsets",
        "an Argo CD ApplicationSet",
        true,
        "argocd-applicationset-controller",
    ),
    argo(
        "AppProject",
        "appprojects",
        "an Argo CD AppProject",
        false,
        "argocd-application-controller",
    ),
];

/// The custody kind of `group`/`kind`, if it is one.
pub fn kind_of(group: &str, kind: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.group == group && k.kind == kind)
}

/// The custody kind of `group`/`plural` (a request's resource), if it is one.
pub fn kind_of_resource(group: &str, plural: &str) -> Option<&'static Kind> {
    KINDS
        .iter()
        .find(|k| k.group == group && k.plural == plural)
}

/// The custody kind called `kind` (kinds are unique across the groups above).
pub fn kind_named(kind: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.kind == kind)
}

/// Whether the controller `name` of `agent` is installed, as far as `served` tells: a controller
/// that owns a custody kind counts only while the API server serves one of its kinds; a name the
/// guard does not know (a configured extra) always counts.
pub fn controller_installed(agent: Agent, name: &str, served: impl Fn(&Kind) -> bool) -> bool {
    let mut kinds = KINDS
        .iter()
        .filter(|k| k.agent == agent && k.controller == name)
        .peekable();
    if kinds.peek().is_none() {
        return true;
    }
    kinds.any(served)
}

/// One owner or source object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    pub fn new(kind: &str, namespace: &str, name: &str) -> ObjectRef {
        ObjectRef {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The object an owner reference names (`None` for a namespace, which is no object here).
    pub fn of_owner(owner: &OwnerRef) -> Option<ObjectRef> {
        let kind = match owner.kind {
            OwnerKind::Kustomization => "Kustomization",
            OwnerKind::HelmRelease => "HelmRelease",
            OwnerKind::Application => "Application",
            OwnerKind::Namespace => return None,
        };
        Some(ObjectRef::new(kind, &owner.namespace, &owner.name))
    }

    /// The owner this object is, when it is one (Kustomization, HelmRelease, Application): the
    /// inverse of [`ObjectRef::of_owner`].
    pub fn as_owner(&self) -> Option<OwnerRef> {
        Some(OwnerRef {
            kind: OwnerKind::of_kind(&self.kind)?,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        })
    }

    fn is_root(&self, config: &Config) -> bool {
        config
            .custody
            .roots
            .iter()
            .any(|r| r.kind == self.kind && r.namespace == self.namespace && r.name == self.name)
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let agent = kind_named(&self.kind).map_or("", |k| k.agent.name());
        write!(f, "{agent} {} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// What the guard knows about one owner or source object (the webhook: a watch cache).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustodyInfo {
    /// Who applied it: its own ownership labels or tracking id.
    pub owners: Vec<OwnerRef>,
    /// What made it, when no owner applied it: an Application's ApplicationSet (its owner
    /// reference), an ExternalArtifact's ArtifactGenerator (its `sourceRef`).
    pub generator: Option<ObjectRef>,
    /// The sources it reads (a Kustomization's `sourceRef`, a HelmRelease's chart source, an
    /// ArtifactGenerator's `sources`, a HelmChart's `sourceRef`, the GitRepositories a
    /// GitRepository includes): every one must come from Git too.
    pub sources: Vec<ObjectRef>,
    /// An Application's AppProject (as named; AppProjects live in Argo CD's namespace, see
    /// [`CustodyInfo::project_in`]).
    pub project: Option<ObjectRef>,
    /// Namespaces it holds objects in (a Flux inventory, an Argo CD resource list, a target
    /// namespace), for "this namespace holds managed objects".
    pub namespaces: Vec<String>,
    /// The ConfigMaps and Secrets whose content it applies: a HelmRelease's `valuesFrom`, a
    /// Kustomization's `postBuild.substituteFrom`. Whoever changes one changes what it applies.
    #[serde(default)]
    pub inputs: Vec<ObjectRef>,
    /// The kinds of the objects it applies, as `Kind.group` (`Deployment.apps`, `ConfigMap`): from a
    /// Kustomization's inventory or an Application's resources, one entry per object.
    #[serde(default)]
    pub applies: Vec<String>,
}

/// `Kind.group`, as kubectl names a kind (`Deployment.apps`; `ConfigMap` in the core group).
pub fn kind_dot_group(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

impl CustodyInfo {
    /// The AppProject of an Application, where Argo CD keeps it: in its own namespace
    /// (`argocd.namespace`), whatever namespace the Application is in.
    pub fn project_in(&self, config: &Config) -> Option<ObjectRef> {
        self.project
            .as_ref()
            .map(|p| ObjectRef::new(&p.kind, &config.argocd.namespace, &p.name))
    }
}

/// ConfigMap and Secret references (`[{kind, name}]`) in `namespace`.
fn input_refs(list: Option<&Value>, namespace: &str) -> Vec<ObjectRef> {
    list.and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| {
                    let kind = str_at(r, &["kind"])?;
                    let name = str_at(r, &["name"])?;
                    matches!(kind, "ConfigMap" | "Secret")
                        .then(|| ObjectRef::new(kind, namespace, name))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A Flux `sourceRef` (`{kind, name, namespace?}`) relative to the object in `namespace`.
fn source_ref(r: Option<&Value>, namespace: &str) -> Option<ObjectRef> {
    let r = r?;
    let kind = str_at(r, &["kind"])?;
    let name = str_at(r, &["name"])?;
    let ns = str_at(r, &["namespace"]).unwrap_or(namespace);
    Some(ObjectRef::new(kind, ns, name))
}

/// What an owner or source object (as JSON from the API) tells the guard. `owners` are its own
/// ownership markers, read by the caller with [`crate::owner::owners_of`].
pub fn custody_info(kind: &Kind, v: &Value, owners: Vec<OwnerRef>) -> CustodyInfo {
    let namespace = str_at(v, &["metadata", "namespace"]).unwrap_or_default();
    let mut namespaces = vec![namespace.to_string()];
    let mut generator = None;
    let mut project = None;
    let mut sources: Vec<ObjectRef> = Vec::new();
    let mut inputs: Vec<ObjectRef> = Vec::new();
    let mut applies: Vec<String> = Vec::new();
    match kind.kind {
        "Kustomization" => {
            // Inventory ids are `<namespace>_<name>_<group>_<kind>`.
            if let Some(entries) = v
                .pointer("/status/inventory/entries")
                .and_then(Value::as_array)
            {
                let ids = entries.iter().filter_map(|e| str_at(e, &["id"]));
                namespaces.extend(
                    ids.clone()
                        .filter_map(|id| id.split_once('_').map(|(ns, _)| ns))
                        .filter(|ns| !ns.is_empty())
                        .map(str::to_string),
                );
                // Names and groups hold no `_`: the last two parts are the group and kind.
                applies.extend(ids.filter_map(|id| {
                    let mut parts = id.rsplitn(3, '_');
                    let kind = parts.next()?;
                    let group = parts.next()?;
                    parts.next()?;
                    Some(kind_dot_group(group, kind))
                }));
            }
            sources.extend(source_ref(v.pointer("/spec/sourceRef"), namespace));
            inputs = input_refs(v.pointer("/spec/postBuild/substituteFrom"), namespace);
        }
        "HelmRelease" => {
            inputs = input_refs(v.pointer("/spec/valuesFrom"), namespace);
            sources.extend(
                source_ref(v.pointer("/spec/chartRef"), namespace)
                    .or_else(|| source_ref(v.pointer("/spec/chart/spec/sourceRef"), namespace)),
            );
        }
        "ArtifactGenerator" => {
            if let Some(list) = v.pointer("/spec/sources").and_then(Value::as_array) {
                sources.extend(list.iter().filter_map(|s| source_ref(Some(s), namespace)));
            }
        }
        "ExternalArtifact" => generator = source_ref(v.pointer("/spec/sourceRef"), namespace),
        // A HelmChart builds its chart from the source it names.
        "HelmChart" => sources.extend(source_ref(v.pointer("/spec/sourceRef"), namespace)),
        // A GitRepository copies the content of the GitRepositories it includes into its own.
        "GitRepository" => {
            if let Some(list) = v.pointer("/spec/include").and_then(Value::as_array) {
                sources.extend(list.iter().filter_map(|i| {
                    let name = str_at(i, &["repository", "name"])?;
                    Some(ObjectRef::new("GitRepository", namespace, name))
                }));
            }
        }
        "Application" => {
            if let Some(resources) = v.pointer("/status/resources").and_then(Value::as_array) {
                namespaces.extend(
                    resources
                        .iter()
                        .filter_map(|r| str_at(r, &["namespace"]))
                        .map(str::to_string),
                );
                applies.extend(resources.iter().filter_map(|r| {
                    let kind = str_at(r, &["kind"])?;
                    Some(kind_dot_group(str_at(r, &["group"]).unwrap_or(""), kind))
                }));
            }
            let name = str_at(v, &["spec", "project"]).unwrap_or("default");
            project = Some(ObjectRef::new("AppProject", namespace, name));
            generator = v
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .and_then(|refs| {
                    refs.iter().find(|r| {
                        str_at(r, &["kind"]) == Some("ApplicationSet")
                            && str_at(r, &["apiVersion"])
                                .is_some_and(|a| a.starts_with("argoproj.io/"))
                    })
                })
                .and_then(|r| str_at(r, &["name"]))
                .map(|name| ObjectRef::new("ApplicationSet", namespace, name));
        }
        _ => {}
    }
    for path in [
        &["spec", "targetNamespace"][..],
        &["spec", "destination", "namespace"],
    ] {
        if let Some(ns) = str_at(v, path) {
            namespaces.push(ns.to_string());
        }
    }
    namespaces.sort();
    namespaces.dedup();
    CustodyInfo {
        owners,
        generator,
        sources,
        project,
        namespaces,
        inputs,
        applies,
    }
}

/// The longest chain of owners the guard follows to a root: deeper chains do not trace.
pub const MAX_CHAIN: usize = 16;

/// Whether `object` traces back through Git to a bootstrap root: it is a root, or it was applied
/// by an owner (or made by a generator) that traces back, and every source it reads (and, for an
/// Application, its AppProject, which decides where and as whom Argo CD applies it) traces back
/// too. Chains longer than
/// [`MAX_CHAIN`] and cycles do not trace; an object the guard has not seen does not either.
pub fn traces_to_root(
    object: &ObjectRef,
    lookup: &dyn Fn(&ObjectRef) -> Option<CustodyInfo>,
    config: &Config,
) -> bool {
    let mut memo = HashMap::new();
    let mut path = Vec::new();
    traced(object, lookup, config, &mut memo, &mut path)
}

fn traced(
    object: &ObjectRef,
    lookup: &dyn Fn(&ObjectRef) -> Option<CustodyInfo>,
    config: &Config,
    memo: &mut HashMap<ObjectRef, bool>,
    path: &mut Vec<ObjectRef>,
) -> bool {
    if object.is_root(config) {
        return true;
    }
    if let Some(known) = memo.get(object) {
        return *known;
    }
    if path.len() >= MAX_CHAIN || path.contains(object) {
        return false;
    }
    let Some(info) = lookup(object) else {
        memo.insert(object.clone(), false);
        return false;
    };
    path.push(object.clone());
    let parents: Vec<ObjectRef> = info
        .owners
        .iter()
        .filter_map(ObjectRef::of_owner)
        .chain(info.generator.clone())
        .collect();
    let owned = parents
        .iter()
        .filter(|o| *o != object)
        .any(|o| traced(o, lookup, config, memo, path));
    let project = info.project_in(config);
    let sourced = owned
        && info
            .sources
            .iter()
            .chain(project.as_ref())
            .all(|s| traced(s, lookup, config, memo, path));
    path.pop();
    memo.insert(object.clone(), sourced);
    sourced
}

/// Fields of `operation.sync` that go beyond a sync of the Application as declared.
pub const SYNC_OVERRIDES: &[&str] = &[
    "revision",
    "revisions",
    "source",
    "sources",
    "manifests",
    "resources",
    "syncOptions",
];

/// The fields of an Argo CD `operation` that carry something other than what the Application
/// declares (another revision or source, inline manifests, a subset of resources, sync options),
/// less those the config allows. `spec` is the Application's spec after the request; `status` is
/// its status before it (written by the agent only): argocd-server resolves the declared target
/// revision to the commit the controller reports there, and copies the declared sync options in.
pub fn sync_overrides(
    operation: &Value,
    spec: &Value,
    status: &Value,
    allowed: &[String],
) -> Vec<&'static str> {
    let Some(sync) = operation.get("sync") else {
        return Vec::new();
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    let declared_revision =
        |source: Option<&Value>| text(source.and_then(|s| s.get("targetRevision")));
    let same_revision = |asked: &str, declared: &str, reported: &str| {
        asked.is_empty()
            || asked == declared
            || (!reported.is_empty() && asked == reported)
            || (declared.is_empty() && asked.eq_ignore_ascii_case("HEAD"))
    };
    let present = |v: &Value| {
        !v.is_null() && *v != Value::Array(Vec::new()) && *v != Value::Object(Default::default())
    };
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|l| l.iter().map(|s| text(Some(s))).collect())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for field in SYNC_OVERRIDES {
        let Some(v) = sync.get(*field).filter(|v| present(v)) else {
            continue;
        };
        let override_ = match *field {
            "revision" => !same_revision(
                v.as_str().unwrap_or("\u{0}"),
                &declared_revision(spec.get("source")),
                &text(status.pointer("/sync/revision")),
            ),
            "revisions" => {
                let declared: Vec<String> = spec
                    .get("sources")
                    .and_then(Value::as_array)
                    .map(|l| l.iter().map(|s| declared_revision(Some(s))).collect())
                    .unwrap_or_default();
                let reported = strings(status.pointer("/sync/revisions"));
                match v.as_array() {
                    Some(asked) => {
                        asked.len() != declared.len()
                            || asked.iter().enumerate().any(|(i, a)| {
                                !same_revision(
                                    a.as_str().unwrap_or("\u{0}"),
                                    &declared[i],
                                    reported.get(i).map_or("", String::as_str),
                                )
                            })
                    }
                    None => true,
                }
            }
            "syncOptions" => {
                let declared = strings(spec.pointer("/syncPolicy/syncOptions"));
                match v.as_array() {
                    Some(asked) => asked
                        .iter()
                        .any(|o| !o.as_str().is_some_and(|o| declared.iter().any(|d| d == o))),
                    None => true,
                }
            }
            _ => true,
        };
        if override_ && !allowed.iter().any(|a| a == field) {
            out.push(*field);
        }
    }
    out
}

#[cfg(test)]
mod tests;
