//! From a live object to the Git commit that owns it: owner (core's ownership detection) → source
//! (GitRepository / OCIRepository / an ArtifactGenerator's ExternalArtifact back to its
//! GitRepository / Argo CD repo URL, branch, path) → applied commit → repository (local clone or
//! cache) → file and document → the last commit that touched the file. For an Argo CD source
//! whose path is a Helm chart ([`helm`]), the file is the chart's template that renders the
//! object.
//!
//! The cluster part ([`plan`]) is async; the Git part ([`locate_all`]) is blocking and must run
//! outside the async runtime (gix's HTTP transport blocks). [`resolve`] does both for one object.

mod artifact;
pub mod error;
pub mod helm;

pub use helm::ArgoHelm;

use gitops_guard_core::custody::{
    ARGO as ARGO_GROUP, HELM as HELM_GROUP, KUSTOMIZE as KUSTOMIZE_GROUP,
    SOURCE as FLUX_SOURCE_GROUP,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gitops_guard_core::custody::SOURCE_EXTENSIONS;
use gitops_guard_core::owner::{self, OwnerKind, OwnerRef};
use gitops_guard_core::{Config, Object};
use gix::ObjectId;
use serde::Serialize;
use serde_json::Value;

use crate::Error;
use crate::change::shared::Graph;
use crate::change::target::Setter;
use crate::cluster::Cluster;
use crate::git::{self, CommitInfo, RepoFinder, RepoOrigin, Revision, revision};
use crate::locate::error::Error as LocateError;
use crate::manifest::{self, Build, Found, Index, Renderer, Wanted};

/// `apiVersion`, kind, namespace and name of an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    pub fn of(v: &Value) -> ObjectRef {
        let s = |p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        ObjectRef {
            api_version: s("/apiVersion"),
            kind: s("/kind"),
            namespace: s("/metadata/namespace"),
            name: s("/metadata/name"),
        }
    }

    pub fn group(&self) -> &str {
        self.api_version.rsplit_once('/').map_or("", |(g, _)| g)
    }

    /// `deployment/web`, as kubectl names objects.
    pub fn resource(&self) -> String {
        format!("{}/{}", self.kind.to_lowercase(), self.name)
    }

    /// `deployment.apps/web`, `configmap/web` (the core group has no suffix), as kubectl names
    /// objects when two kinds share a name.
    pub fn resource_with_group(&self) -> String {
        match self.group() {
            "" => self.resource(),
            group => format!("{}.{group}/{}", self.kind.to_lowercase(), self.name),
        }
    }

    /// `deployment/web in prod`, for messages.
    pub fn describe(&self) -> String {
        if self.namespace.is_empty() {
            self.resource()
        } else {
            format!("{} in {}", self.resource(), self.namespace)
        }
    }
}

/// Where an owner's manifests come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// `GitRepository`, `OCIRepository`, or `Application` for an Argo CD source.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub url: String,
    /// Branch, tag or other reference the source follows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The owner's path in the repository (normalized, `""` for the root).
    pub path: String,
}

/// One link of the ownership chain, for `trace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// What this link adds: the path and revision, the chart, the URL and reference.
    pub detail: String,
}

/// A field whose live value Git does not explain, and who set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    pub field: String,
    pub manager: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

/// Everything known about one object's place in Git.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    pub object: ObjectRef,
    /// The direct owner, if managed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<OwnerRef>,
    /// Every owner the object names (usually one).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<OwnerRef>,
    /// Object → owner(s) → source.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<Link>,
    /// For objects a HelmRelease installs or an Argo CD Helm source renders: `chart@version`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
    /// For objects an Argo CD Helm source renders: where the chart's values come from, lowest
    /// precedence first (the chart's `values.yaml`, `helm.valueFiles`, `helm.values`,
    /// `helm.parameters`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// The revision the owner applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<Revision>,
    /// Where the repository was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository_origin: Option<RepoOrigin>,
    /// The applied commit, full hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_commit: Option<String>,
    /// The file that defines the object (for HelmRelease-installed objects: the HelmRelease's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 0-based document index in the file; absent for generated objects (the file is the
    /// kustomization that generates them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<(usize, usize)>,
    /// The last commit at or before the applied commit that touched the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<CommitInfo>,
    /// A link to the file at that commit (GitHub, GitLab, Gitea).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Fields set outside Git (empty when none, or not checked).
    pub drift: Vec<Drift>,
    /// Why the chain stops short, if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The same, in a few words for a table cell (`repo unreachable`).
    #[serde(skip)]
    pub problem: Option<String>,
    /// The applied commit's details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<CommitInfo>,
    /// The live object (not printed).
    #[serde(skip)]
    pub live: Value,
    /// The name prefix/suffix and namespace the build adds (not printed).
    #[serde(skip)]
    pub transform: manifest::Transform,
    /// The build and the document it was found in (not printed): what `blame` replays the
    /// overlays of.
    #[serde(skip)]
    pub built_from: Option<(Build, manifest::Entry)>,
    /// The object as its document and overlays define it at the applied commit, from the same
    /// replay of the layers that found the overlays (not printed): `diff` compares with it
    /// instead of building it again. `Err`: why it could not be built.
    #[serde(skip)]
    pub effective: Option<std::rc::Rc<Result<Value, String>>>,
    /// Overlay files that set fields of the object on the way from its document (patches,
    /// `images`/`replicas` entries, common labels), each with the last commit that changed it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patched_by: Vec<PatchedBy>,
}

/// An overlay file that sets fields of an object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchedBy {
    pub file: String,
    /// What in it: `patch`, `patches[1].patch`, `images[0]`, `commonLabels`, ….
    pub what: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<CommitInfo>,
}

impl Location {
    /// The newest commit among the document's and its overlays': the last change to what
    /// defines the object.
    pub fn newest_commit(&self) -> Option<&CommitInfo> {
        self.commit
            .iter()
            .chain(self.patched_by.iter().filter_map(|p| p.commit.as_ref()))
            .max_by_key(|c| c.date)
    }
}

/// The kustomization graph (`change::shared::Graph`) of each (repository, commit), read once:
/// reading it walks every directory of the repository. A graph that cannot be read is `None`,
/// and `target::define_in` then reads it again itself and reports why.
#[derive(Default)]
struct Graphs(HashMap<(PathBuf, ObjectId), Option<std::rc::Rc<Graph>>>);

impl Graphs {
    fn of(&mut self, dir: &Path, snap: &git::Snapshot<'_>) -> Option<std::rc::Rc<Graph>> {
        self.0
            .entry((dir.to_path_buf(), snap.commit))
            .or_insert_with(|| Graph::of(snap).ok().map(std::rc::Rc::new))
            .clone()
    }
}

/// The overlays that set fields of the object `entry` is, in `build` at `snap`.
fn overlays_of(setters: Vec<Setter>) -> Vec<PatchedBy> {
    let mut out: Vec<PatchedBy> = Vec::new();
    for s in setters {
        match out.iter_mut().find(|p| p.file == s.file) {
            Some(p) if !p.what.contains(&s.what) => p.what.push(s.what),
            Some(_) => {}
            None => out.push(PatchedBy {
                file: s.file,
                what: vec![s.what],
                commit: None,
            }),
        }
    }
    out
}

impl Location {
    /// A location that knows only the live object (what `plan` starts from).
    pub fn new(live: Value) -> Location {
        Location {
            object: ObjectRef::of(&live),
            owner: None,
            owners: Vec::new(),
            chain: Vec::new(),
            chart: None,
            values: Vec::new(),
            source: None,
            revision: None,
            repository: None,
            repository_origin: None,
            applied_commit: None,
            file: None,
            document: None,
            lines: None,
            commit: None,
            link: None,
            drift: Vec::new(),
            error: None,
            problem: None,
            applied: None,
            live,
            transform: manifest::Transform::default(),
            built_from: None,
            effective: None,
            patched_by: Vec::new(),
        }
    }

    pub fn managed(&self) -> bool {
        self.owner.is_some()
    }

    /// `error: <object>: <why>` for stderr (the object is not named twice).
    pub fn error_line(&self) -> Option<String> {
        let e = self.error.as_ref()?;
        let who = self.object.describe();
        Some(if e.starts_with(&who) {
            format!("error: {e}")
        } else {
            format!("error: {who}: {e}")
        })
    }

    /// Records why the chain stops here.
    pub fn fail(&mut self, e: &Error) {
        self.problem = Some(problem_of(e).to_string());
        self.error = Some(e.report());
    }
}

/// What the Git part has to do for one object.
#[derive(Debug, Clone)]
pub struct Target {
    /// Who applied the revision, for messages (`Flux Kustomization flux-system/apps`).
    pub applier: String,
    pub source: Source,
    pub revision: Revision,
    /// One build per Git source (Argo CD multi-source applications have several).
    pub builds: Vec<(Source, Revision, Build)>,
    /// The object to find in Git (the HelmRelease, for objects it installs).
    pub wanted: Wanted,
    pub origin: Option<String>,
    /// For a Kustomization that applies an ArtifactGenerator's ExternalArtifact: how the
    /// artifact's files map to Git, to check the file found is the one the artifact holds.
    pub artifact: Option<Artifact>,
    /// For each build of an Argo CD Application: what the source gives Helm, when its path may
    /// be a chart (Git says whether it is). Empty for Flux.
    pub charts: Vec<Option<ArgoHelm>>,
}

/// How an ExternalArtifact's files map to the Git repository they were copied from.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// `ArtifactGenerator flux-system/apps, artifact web`, for messages.
    pub generator: String,
    copies: artifact::Copies,
}

/// The result of the cluster part for one object.
pub struct Planned {
    pub location: Location,
    pub target: Option<Target>,
}

/// group, kind, namespace, name.
type OwnerKey = (String, String, String, String);

/// One index per repository, commit and build.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct IndexKey {
    repo: PathBuf,
    commit: ObjectId,
    build: String,
}

/// Owners and sources read from the cluster, each once.
#[derive(Default)]
pub struct OwnerCache {
    /// Shared, not copied: a Kustomization's inventory lists every object it applies, and each
    /// of them asks for its owner.
    objects: HashMap<OwnerKey, Result<Option<std::rc::Rc<Value>>, String>>,
}

impl OwnerCache {
    /// A cache that already holds the owners and sources among `listed` (a listing of the
    /// cluster), so that planning the listed objects does not read them again. Anything else
    /// is read when first asked for, as it would be without a listing.
    pub fn of_listed<'a>(listed: impl IntoIterator<Item = &'a Value>) -> OwnerCache {
        let mut objects = HashMap::new();
        for v in listed {
            let Some((group, kind)) = crate::cluster::group_kind_of(v) else {
                continue;
            };
            if gitops_guard_core::custody::kind_of(group, kind).is_none() {
                continue;
            }
            let o = ObjectRef::of(v);
            let key = (group.to_string(), o.kind, o.namespace, o.name);
            objects.insert(key, Ok(Some(std::rc::Rc::new(v.clone()))));
        }
        OwnerCache { objects }
    }

    /// The object, from the cache or else read (and kept, found or not).
    pub async fn get(
        &mut self,
        cluster: &Cluster,
        group: &str,
        kind: &str,
        ns: &str,
        name: &str,
    ) -> Result<Option<std::rc::Rc<Value>>, Error> {
        let key = (
            group.to_string(),
            kind.to_string(),
            ns.to_string(),
            name.to_string(),
        );
        if let Some(v) = self.objects.get(&key) {
            // A failure is remembered as its text (kube's errors cannot be copied).
            return v.clone().map_err(|m| {
                crate::cluster::Error::Refused {
                    action: format!("getting {kind} {ns}/{name}"),
                    message: m,
                }
                .into()
            });
        }
        let got = cluster
            .get_kind(group, kind, ns, name)
            .await
            .map(|v| v.map(std::rc::Rc::new));
        let stored = match &got {
            Ok(v) => Ok(v.clone()),
            Err(e) => Err(match e {
                crate::cluster::Error::Kube { source, .. } => crate::error::chain(source),
                crate::cluster::Error::Refused { message, .. } => message.clone(),
                other => crate::error::chain(other),
            }),
        };
        self.objects.insert(key, stored);
        Ok(got?)
    }
}

/// A few words for a table cell.
pub fn problem_of(e: &Error) -> &'static str {
    use crate::{cluster, git};
    match e {
        Error::Git(git::Error::RepoUnreachable { .. }) => "repo unreachable",
        Error::Git(git::Error::CommitMissing { .. }) => "commit missing",
        Error::Locate(LocateError::AmbiguousFile { .. }) => "ambiguous file",
        Error::Locate(LocateError::FileNotFound { .. }) => "file not found",
        Error::Locate(LocateError::OwnerIncomplete { .. }) => "owner incomplete",
        Error::Cluster(cluster::Error::Kube { .. } | cluster::Error::Refused { .. }) => {
            "cluster error"
        }
        _ => "error",
    }
}

fn str_at<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn owner_label(o: &OwnerRef) -> String {
    o.to_string()
}

fn kind_word(kind: OwnerKind) -> &'static str {
    match kind {
        OwnerKind::Kustomization => "Kustomization",
        OwnerKind::HelmRelease => "HelmRelease",
        OwnerKind::Application => "Application",
        OwnerKind::Namespace => "Namespace",
    }
}

/// `chart@version` of a HelmRelease.
fn helm_chart(hr: &Value) -> Option<String> {
    if let Some(chart) = str_at(hr, "/spec/chart/spec/chart") {
        let version = str_at(hr, "/status/history/0/chartVersion")
            .or_else(|| str_at(hr, "/spec/chart/spec/version"))
            .unwrap_or("*");
        return Some(format!(
            "{}@{version}",
            chart.rsplit('/').next().unwrap_or(chart)
        ));
    }
    let name = str_at(hr, "/status/history/0/chartName")?;
    let version = str_at(hr, "/status/history/0/chartVersion").unwrap_or("?");
    Some(format!("{name}@{version}"))
}

fn wanted_of(obj: &ObjectRef) -> Wanted {
    Wanted {
        group: obj.group().to_string(),
        kind: obj.kind.clone(),
        namespace: obj.namespace.clone(),
        name: obj.name.clone(),
    }
}

/// What a Kustomization's source comes to in Git.
struct GitSource {
    /// The source that names the repository (a GitRepository, or an OCIRepository's metadata).
    kind: String,
    namespace: String,
    name: String,
    url: String,
    reference: Option<String>,
    /// The applied revision, if known.
    revision: Option<String>,
    /// Why no applied commit is known, when it is not (else the generic words are used).
    no_commit: Option<String>,
    /// The Kustomization's path in the repository.
    path: String,
    artifact: Option<Artifact>,
}

/// The OCI annotation (and Flux artifact metadata key) for the revision an artifact was made from.
const OCI_REVISION: &str = "org.opencontainers.image.revision";

/// URL and reference of a GitRepository.
fn git_repository(
    repo: &Value,
    namespace: &str,
    name: &str,
    incomplete: &dyn Fn(String) -> Error,
) -> Result<(String, Option<String>), Error> {
    let url = str_at(repo, "/spec/url")
        .ok_or_else(|| incomplete(format!("GitRepository {namespace}/{name} has no spec.url")))?;
    let reference = ["branch", "tag", "semver", "name", "commit"]
        .iter()
        .find_map(|k| str_at(repo, &format!("/spec/ref/{k}")))
        .map(str::to_string);
    Ok((url.to_string(), reference))
}

/// The Flux source of a Kustomization: URL, reference and applied revision; for an
/// ArtifactGenerator's ExternalArtifact, also how its files map back to Git.
async fn flux_kustomization(
    cluster: &Cluster,
    cache: &mut OwnerCache,
    ks: &Value,
    owner: &OwnerRef,
    chain: &mut Vec<Link>,
) -> Result<((Source, Revision, Build), Option<Artifact>), Error> {
    let label = owner_label(owner);
    let incomplete = |problem: String| {
        LocateError::OwnerIncomplete {
            owner: label.clone(),
            problem,
        }
        .into()
    };
    let path = git::normalize_path(str_at(ks, "/spec/path").unwrap_or("./"))
        .ok_or_else(|| incomplete("spec.path climbs out of the repository".into()))?;
    let applied = str_at(ks, "/status/lastAppliedRevision");
    let src_kind = str_at(ks, "/spec/sourceRef/kind").unwrap_or("GitRepository");
    // An artifact's revision is a digest of its files; the Git revision it was made from is the
    // origin revision.
    let origin = str_at(ks, "/status/lastAppliedOriginRevision")
        .filter(|_| src_kind == "ExternalArtifact")
        .map(|o| format!(" from {}", owner::short_revision(o)))
        .unwrap_or_default();
    chain.push(Link {
        kind: "Kustomization".into(),
        namespace: owner.namespace.clone(),
        name: owner.name.clone(),
        detail: format!(
            "path ./{path}, applied {}{origin}",
            applied
                .map(owner::short_revision)
                .unwrap_or_else(|| "nothing yet".into())
        ),
    });
    let src_name = str_at(ks, "/spec/sourceRef/name")
        .ok_or_else(|| incomplete("spec.sourceRef.name is not set".into()))?;
    let src_ns = str_at(ks, "/spec/sourceRef/namespace").unwrap_or(owner.namespace.as_str());
    let src = cache
        .get(cluster, FLUX_SOURCE_GROUP, src_kind, src_ns, src_name)
        .await?
        .ok_or_else(|| {
            incomplete(format!(
                "its source {src_kind} {src_ns}/{src_name} does not exist"
            ))
        })?;
    let found = match src_kind {
        "GitRepository" => {
            let (url, reference) = git_repository(&src, src_ns, src_name, &incomplete)?;
            GitSource {
                kind: src_kind.to_string(),
                namespace: src_ns.to_string(),
                name: src_name.to_string(),
                url,
                reference,
                revision: applied.map(str::to_string),
                no_commit: None,
                path: path.clone(),
                artifact: None,
            }
        }
        "OCIRepository" => {
            let meta = |k: &str| {
                src.pointer("/status/artifact/metadata")
                    .and_then(|m| m.get(k))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            let url = meta("org.opencontainers.image.source").ok_or_else(|| {
                incomplete(format!(
                    "its source is the OCI artifact {} without org.opencontainers.image.source metadata, so its Git repository is unknown (push it with `flux push artifact --source=<git url> --revision=<branch@sha1:commit>`)",
                    str_at(&src, "/spec/url").unwrap_or("?")
                ))
            })?;
            GitSource {
                kind: src_kind.to_string(),
                namespace: src_ns.to_string(),
                name: src_name.to_string(),
                url,
                reference: None,
                revision: meta(OCI_REVISION),
                no_commit: None,
                path: path.clone(),
                artifact: None,
            }
        }
        "ExternalArtifact" => {
            external_artifact(cluster, cache, ks, &src, &path, chain, &incomplete).await?
        }
        other => {
            return Err(incomplete(format!(
                "its source is a {other}, which is not a Git repository"
            )));
        }
    };
    let revision = revision::parse(found.revision.as_deref().unwrap_or_default());
    chain.push(Link {
        kind: found.kind.clone(),
        namespace: found.namespace.clone(),
        name: found.name.clone(),
        detail: match &found.reference {
            Some(r) => format!("{} ({r})", found.url),
            None => found.url.clone(),
        },
    });
    if revision.commit.is_none() {
        return Err(incomplete(match (found.no_commit, found.revision) {
            (Some(why), _) => why,
            (None, None) => {
                "it has not applied a revision yet (no status.lastAppliedRevision)".into()
            }
            (None, Some(t)) => format!("its applied revision {t:?} names no commit"),
        }));
    }
    let source = Source {
        kind: found.kind,
        namespace: found.namespace,
        name: found.name,
        url: found.url,
        reference: found.reference,
        path: found.path.clone(),
    };
    let build = Build {
        path: found.path,
        renderer: Renderer::Flux,
        name_prefix: str_at(ks, "/spec/namePrefix")
            .unwrap_or_default()
            .to_string(),
        name_suffix: str_at(ks, "/spec/nameSuffix")
            .unwrap_or_default()
            .to_string(),
        namespace: str_at(ks, "/spec/targetNamespace").map(str::to_string),
        default_namespace: None,
    };
    Ok(((source, revision, build), found.artifact))
}

/// A Kustomization's ExternalArtifact, followed through the ArtifactGenerator that makes it to
/// the GitRepository its copy rules take the Kustomization's path from.
async fn external_artifact(
    cluster: &Cluster,
    cache: &mut OwnerCache,
    ks: &Value,
    ea: &Value,
    path: &str,
    chain: &mut Vec<Link>,
    incomplete: &dyn Fn(String) -> Error,
) -> Result<GitSource, Error> {
    let ea_ref = ObjectRef::of(ea);
    let (ea_ns, ea_name) = (ea_ref.namespace.as_str(), ea_ref.name.as_str());
    let producer = (
        str_at(ea, "/spec/sourceRef/kind"),
        str_at(ea, "/spec/sourceRef/name"),
    );
    let gen_ns = str_at(ea, "/spec/sourceRef/namespace").unwrap_or(ea_ns);
    let current = str_at(ea, "/status/artifact/revision");
    chain.push(Link {
        kind: "ExternalArtifact".into(),
        namespace: ea_ns.to_string(),
        name: ea_name.to_string(),
        detail: format!(
            "{}, revision {}",
            match producer {
                (Some(k), Some(n)) => format!("made by {k} {gen_ns}/{n}"),
                _ => "made by an unnamed producer".into(),
            },
            current
                .map(owner::short_revision)
                .unwrap_or_else(|| "none yet".into())
        ),
    });
    let gen_name = match producer {
        (Some("ArtifactGenerator"), Some(n)) => n,
        (Some(k), Some(n)) => {
            return Err(incomplete(format!(
                "its source ExternalArtifact {ea_ns}/{ea_name} is made by the {k} {gen_ns}/{n}; only an ArtifactGenerator's copy rules are followed back to Git"
            )));
        }
        _ => {
            return Err(incomplete(format!(
                "its source ExternalArtifact {ea_ns}/{ea_name} does not name what makes it (no spec.sourceRef), so its Git repository is unknown"
            )));
        }
    };
    let generator = format!("ArtifactGenerator {gen_ns}/{gen_name}, artifact {ea_name}");
    let ag = cache
        .get(
            cluster,
            SOURCE_EXTENSIONS,
            "ArtifactGenerator",
            gen_ns,
            gen_name,
        )
        .await?
        .ok_or_else(|| {
            incomplete(format!(
                "the ArtifactGenerator {gen_ns}/{gen_name} that makes its ExternalArtifact {ea_ns}/{ea_name} does not exist"
            ))
        })?;
    let spec = ag
        .pointer("/spec/artifacts")
        .and_then(Value::as_array)
        .and_then(|list| list.iter().find(|a| str_at(a, "/name") == Some(ea_name)))
        .ok_or_else(|| {
            incomplete(format!(
                "the ArtifactGenerator {gen_ns}/{gen_name} has no artifact {ea_name} in spec.artifacts"
            ))
        })?;
    let sources = artifact::sources(&ag, gen_ns);
    let mapped = artifact::rules(spec)
        .and_then(|rules| artifact::map(&rules, &sources, path, &artifact::guess_dir));
    let mut link = Link {
        kind: "ArtifactGenerator".into(),
        namespace: gen_ns.to_string(),
        name: gen_name.to_string(),
        detail: format!("artifact {ea_name}"),
    };
    let copies = match mapped {
        Ok(c) => c,
        Err(why) => {
            chain.push(link);
            return Err(incomplete(format!("{generator}: {why}")));
        }
    };
    link.detail = format!(
        "artifact {ea_name}: ./{} is ./{} of @{}, by {}",
        copies.path,
        copies.git_path,
        copies.alias,
        copies.rules_used()
    );
    chain.push(link);
    let Some(git) = sources.iter().find(|s| s.alias == copies.alias) else {
        return Err(incomplete(format!(
            "{generator}: @{} is none of its sources",
            copies.alias
        )));
    };
    let repo = cache
        .get(
            cluster,
            FLUX_SOURCE_GROUP,
            "GitRepository",
            &git.namespace,
            &git.name,
        )
        .await?
        .ok_or_else(|| {
            incomplete(format!(
                "the GitRepository {}/{} of {generator} (@{}) does not exist",
                git.namespace, git.name, git.alias
            ))
        })?;
    let (url, reference) = git_repository(&repo, &git.namespace, &git.name, incomplete)?;
    let (revision, no_commit) =
        match applied_commit(ks, ea, spec, &sources, &copies.alias, &generator) {
            Ok(r) => (Some(r), None),
            Err(why) => (None, Some(why)),
        };
    Ok(GitSource {
        kind: "GitRepository".into(),
        namespace: git.namespace.clone(),
        name: git.name.clone(),
        url,
        reference,
        revision,
        no_commit,
        path: copies.git_path.clone(),
        artifact: Some(Artifact { generator, copies }),
    })
}

/// The Git revision a Kustomization applied through an ExternalArtifact, whose own revision is a
/// digest of the copied files (`latest@sha256:…`): the artifact's revision when it mirrors the
/// Git source (`revision: "@alias"`), else the origin revision the Kustomization recorded
/// (`originRevision: "@alias"` puts it in the artifact's metadata), else that metadata itself
/// while the artifact is still the one applied. `Err` says what is missing.
fn applied_commit(
    ks: &Value,
    ea: &Value,
    spec: &Value,
    sources: &[artifact::SourceRef],
    alias: &str,
    generator: &str,
) -> Result<String, String> {
    let applied = str_at(ks, "/status/lastAppliedRevision");
    let names_commit = |r: &str| revision::parse(r).commit.is_some();
    let alias_in = |k: &str| str_at(spec, k).map(|a| a.trim_start_matches('@'));
    if alias_in("/revision") == Some(alias)
        && let Some(a) = applied.filter(|a| names_commit(a))
    {
        return Ok(a.to_string());
    }
    // Without `originRevision` the origin can only be the one source's.
    let origin_alias = alias_in("/originRevision");
    let origin_is_ours = match origin_alias {
        Some(a) => a == alias,
        None => sources.len() == 1,
    };
    if let Some(o) = str_at(ks, "/status/lastAppliedOriginRevision") {
        if !origin_is_ours {
            return Err(match origin_alias {
                Some(a) => format!(
                    "its applied origin revision {o} is that of @{a} in {generator}, not of @{alias} where its files come from"
                ),
                None => format!(
                    "its applied origin revision {o} may be that of any source of {generator}, which sets no originRevision"
                ),
            });
        }
        if names_commit(o) {
            return Ok(o.to_string());
        }
    }
    let current = str_at(ea, "/status/artifact/revision");
    if origin_is_ours
        && current.is_some()
        && current == applied
        && let Some(m) = ea
            .pointer("/status/artifact/metadata")
            .and_then(|m| m.get(OCI_REVISION))
            .and_then(Value::as_str)
            .filter(|m| names_commit(m))
    {
        return Ok(m.to_string());
    }
    Err(match applied {
        None => {
            "it has not applied its ExternalArtifact yet (no status.lastAppliedRevision)".into()
        }
        Some(a) => {
            let why = match current {
                Some(c) if c != a => format!(
                    "the ExternalArtifact has moved on to {} since",
                    owner::short_revision(c)
                ),
                _ => format!(
                    "the ExternalArtifact's status.artifact.metadata has no {OCI_REVISION} either (set originRevision: \"@{alias}\" on {generator})"
                ),
            };
            format!(
                "it applied the artifact {}, a digest of the copied files, and no Git commit is recorded with it: no status.lastAppliedOriginRevision, and {why}",
                owner::short_revision(a)
            )
        }
    })
}

/// The Git sources of an Argo CD application, with their deployed revisions, and for each what
/// it gives Helm should its path be a chart.
type ArgoBuilds = (Vec<(Source, Revision, Build)>, Vec<Option<ArgoHelm>>);

fn argo_application(
    app: &Value,
    owner: &OwnerRef,
    chain: &mut Vec<Link>,
) -> Result<ArgoBuilds, Error> {
    let label = owner_label(owner);
    let incomplete = |problem: String| {
        LocateError::OwnerIncomplete {
            owner: label.clone(),
            problem,
        }
        .into()
    };
    let multi = app
        .pointer("/spec/sources")
        .and_then(Value::as_array)
        .is_some_and(|l| !l.is_empty());
    let sources: Vec<&Value> = match app.pointer("/spec/sources").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => list.iter().collect(),
        _ => app.pointer("/spec/source").into_iter().collect(),
    };
    if sources.is_empty() {
        return Err(incomplete("spec.source is not set".into()));
    }
    let revisions = owner::argo_deployed_revisions(app);
    let dest_ns = str_at(app, "/spec/destination/namespace").map(str::to_string);
    let mut out = Vec::new();
    let mut charts = Vec::new();
    let mut notes = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        let url = str_at(s, "/repoURL").unwrap_or_default();
        let target = str_at(s, "/targetRevision").unwrap_or("HEAD");
        if let Some(chart) = str_at(s, "/chart") {
            notes.push(format!(
                "chart {chart}@{target} from the Helm repository {url}"
            ));
            continue;
        }
        let Some(path) = str_at(s, "/path") else {
            continue;
        };
        let Some(path) = git::normalize_path(path) else {
            continue;
        };
        let deployed = revisions.get(i).cloned().unwrap_or_default();
        let revision = revision::parse(&deployed);
        let source = Source {
            kind: "Application".into(),
            namespace: owner.namespace.clone(),
            name: owner.name.clone(),
            url: url.to_string(),
            reference: Some(target.to_string()),
            path: path.clone(),
        };
        let recurse = s
            .pointer("/directory/recurse")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let build = Build {
            path: path.clone(),
            renderer: Renderer::ArgoDirectory { recurse },
            name_prefix: str_at(s, "/kustomize/namePrefix")
                .unwrap_or_default()
                .to_string(),
            name_suffix: str_at(s, "/kustomize/nameSuffix")
                .unwrap_or_default()
                .to_string(),
            namespace: str_at(s, "/kustomize/namespace").map(str::to_string),
            default_namespace: dest_ns.clone(),
        };
        chain.push(Link {
            kind: "Application".into(),
            namespace: owner.namespace.clone(),
            name: owner.name.clone(),
            detail: format!(
                "{url} ({target}), path ./{path}, deployed {}",
                if deployed.is_empty() {
                    "nothing yet".into()
                } else {
                    revision::short(&deployed).to_string()
                }
            ),
        });
        if revision.commit.is_none() {
            notes.push(format!(
                "{url} path ./{path} has no deployed commit yet (no sync result or history)"
            ));
            continue;
        }
        out.push((source, revision, build));
        let field = if multi {
            format!("spec.sources[{i}]")
        } else {
            "spec.source".into()
        };
        charts.push(ArgoHelm::of_source(app, s, field));
    }
    if out.is_empty() {
        return Err(incomplete(if notes.is_empty() {
            "none of its sources is a Git path".into()
        } else {
            notes.join("; ")
        }));
    }
    Ok((out, charts))
}

/// The cluster part: who owns `live` and where their manifests come from.
pub async fn plan(
    cluster: &Cluster,
    cache: &mut OwnerCache,
    live: Value,
    config: &Config,
) -> Planned {
    let mut location = Location::new(live);
    let text = serde_json::to_string(&location.live).unwrap_or_default();
    let owners = match Object::from_json(&text) {
        Ok(obj) => owner::owners_of(&obj, location.object.group(), &location.object.kind, config),
        Err(e) => {
            location.fail(&Error::Invalid {
                what: location.object.describe(),
                source: e.into(),
            });
            return Planned {
                location,
                target: None,
            };
        }
    };
    location.owners = owners.clone();
    let Some(first) = owners.into_iter().next() else {
        return Planned {
            location,
            target: None,
        };
    };
    location.owner = Some(first.clone());
    match plan_owner(cluster, cache, &mut location, &first, config).await {
        Ok(target) => Planned {
            location,
            target: Some(target),
        },
        Err(e) => {
            location.fail(&e);
            Planned {
                location,
                target: None,
            }
        }
    }
}

async fn plan_owner(
    cluster: &Cluster,
    cache: &mut OwnerCache,
    location: &mut Location,
    owner: &OwnerRef,
    config: &Config,
) -> Result<Target, Error> {
    let origin = location
        .live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(manifest::ORIGIN_ANNOTATION))
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut wanted = wanted_of(&location.object);
    let mut origin = origin;
    let mut owner = owner.clone();
    if owner.kind == OwnerKind::HelmRelease {
        // The HelmRelease's own file is what to change: find it through its owner.
        let hr = cache
            .get(
                cluster,
                HELM_GROUP,
                "HelmRelease",
                &owner.namespace,
                &owner.name,
            )
            .await?
            .ok_or_else(|| LocateError::OwnerIncomplete {
                owner: owner_label(&owner),
                problem: "it does not exist".into(),
            })?;
        location.chart = helm_chart(&hr);
        location.chain.push(Link {
            kind: "HelmRelease".into(),
            namespace: owner.namespace.clone(),
            name: owner.name.clone(),
            detail: format!(
                "chart {}",
                location.chart.clone().unwrap_or_else(|| "unknown".into())
            ),
        });
        let text = serde_json::to_string(&*hr).unwrap_or_default();
        let hr_ref = ObjectRef::of(&hr);
        let parent = Object::from_json(&text)
            .ok()
            .map(|o| owner::owners_of(&o, HELM_GROUP, "HelmRelease", config))
            .unwrap_or_default()
            .into_iter()
            .find(|o| o.kind != OwnerKind::HelmRelease)
            .ok_or_else(|| LocateError::OwnerIncomplete {
                owner: owner_label(&owner),
                problem: "the HelmRelease itself is not managed from Git (no Flux or Argo CD owner), so no file defines it".into(),
            })?;
        wanted = Wanted {
            group: HELM_GROUP.into(),
            kind: "HelmRelease".into(),
            namespace: hr_ref.namespace.clone(),
            name: hr_ref.name.clone(),
        };
        origin = hr
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(manifest::ORIGIN_ANNOTATION))
            .and_then(Value::as_str)
            .map(str::to_string);
        owner = parent;
    }
    let mut artifact = None;
    let mut charts = Vec::new();
    let builds = match owner.kind {
        OwnerKind::Kustomization => {
            let ks = cache
                .get(
                    cluster,
                    KUSTOMIZE_GROUP,
                    "Kustomization",
                    &owner.namespace,
                    &owner.name,
                )
                .await?
                .ok_or_else(|| LocateError::OwnerIncomplete {
                    owner: owner_label(&owner),
                    problem: "it does not exist".into(),
                })?;
            let (build, copied) =
                flux_kustomization(cluster, cache, &ks, &owner, &mut location.chain).await?;
            artifact = copied;
            vec![build]
        }
        OwnerKind::Application => {
            let app = cache
                .get(
                    cluster,
                    ARGO_GROUP,
                    "Application",
                    &owner.namespace,
                    &owner.name,
                )
                .await?
                .ok_or_else(|| LocateError::OwnerIncomplete {
                    owner: owner_label(&owner),
                    problem: "it does not exist".into(),
                })?;
            let (builds, helm) = argo_application(&app, &owner, &mut location.chain)?;
            charts = helm;
            builds
        }
        other => {
            return Err(LocateError::OwnerIncomplete {
                owner: owner_label(&owner),
                problem: format!("a {} is not backed by a Git repository", kind_word(other)),
            }
            .into());
        }
    };
    let (source, revision, _) = builds[0].clone();
    location.source = Some(source.clone());
    location.revision = Some(revision.clone());
    Ok(Target {
        applier: owner_label(&owner),
        source,
        revision,
        builds,
        wanted,
        origin,
        artifact,
        charts,
    })
}

/// A chart in Git whose template that renders the object cannot be told.
struct UnknownTemplate {
    error: Error,
    /// The words for the table (`rendered by the Helm chart helm-guestbook`).
    problem: String,
    chart: String,
    values: Vec<String>,
}

/// The Git part for many objects: open each repository once, index each (commit, build) once,
/// and walk each applied commit's history once for all files.
pub fn locate_all(finder: &mut RepoFinder, planned: Vec<Planned>) -> Vec<Location> {
    struct Pending {
        repo: std::rc::Rc<git::Repo>,
        commit: ObjectId,
    }
    let mut out: Vec<Location> = Vec::with_capacity(planned.len());
    let mut pending: Vec<Option<Pending>> = Vec::with_capacity(planned.len());
    let mut indexes: HashMap<IndexKey, Result<Index, String>> = HashMap::new();
    // Charts of Argo CD Helm sources, keyed like the indexes (the build is the source's Helm
    // settings and path).
    let mut charts: HashMap<IndexKey, Result<Option<helm::ChartValues>, String>> = HashMap::new();
    // The kustomization graph of each (repository, commit), read once for all its objects.
    let mut graphs = Graphs::default();
    for Planned {
        mut location,
        target,
    } in planned
    {
        let Some(target) = target else {
            out.push(location);
            pending.push(None);
            continue;
        };
        let mut result: Result<Option<Pending>, Error> = Ok(None);
        let mut misses: Vec<String> = Vec::new();
        let mut many: Option<Error> = None;
        let mut unknown_template: Option<UnknownTemplate> = None;
        for (i, (source, revision, build)) in target.builds.iter().enumerate() {
            let commit_hex = revision.commit.as_deref();
            let found = match finder.open(&source.url, commit_hex, &target.applier) {
                Ok(f) => f,
                Err(e) => {
                    result = Err(e.into());
                    continue;
                }
            };
            let Some(commit) = found.commit else { continue };
            let repo = found.repo;
            if let Some(h) = target.charts.get(i).and_then(Option::as_ref) {
                let key = IndexKey {
                    repo: repo.dir.clone(),
                    commit,
                    build: format!("{h:?} {}", build.path),
                };
                let read = charts.entry(key).or_insert_with(|| {
                    repo.snapshot(commit)
                        .map_err(Error::from)
                        .and_then(|snap| helm::read(&snap, &build.path, h))
                        .map_err(|e| e.report())
                });
                match read {
                    Err(e) => {
                        result = Err(git::Error::Invalid {
                            repo: repo.dir.display().to_string(),
                            message: e.clone(),
                        }
                        .into());
                        continue;
                    }
                    Ok(None) => {}
                    Ok(Some(cv)) => {
                        let r = helm::locate(cv, h, &target.wanted);
                        location.source = Some(source.clone());
                        location.revision = Some(revision.clone());
                        location.repository = Some(repo.dir.clone());
                        location.repository_origin = Some(repo.origin);
                        location.applied_commit = Some(commit.to_string());
                        match r.template {
                            Ok((file, doc)) => {
                                location.chart = Some(r.chart);
                                location.values = r.values;
                                location.lines = doc.as_ref().map(|d| (d.first_line, d.last_line));
                                location.document = doc.map(|d| d.index);
                                location.link =
                                    git::url::file_link(&source.url, &commit.to_string(), &file);
                                location.file = Some(file);
                                result = Ok(Some(Pending { repo, commit }));
                                break;
                            }
                            Err(why) => {
                                let chart = if build.path.is_empty() {
                                    "the repository root".to_string()
                                } else {
                                    build.path.clone()
                                };
                                unknown_template = Some(UnknownTemplate {
                                    error: LocateError::HelmRendered {
                                        message: format!(
                                            "{} is rendered by {} from the Helm chart {chart} ({}) at {}, but which of its templates renders it cannot be told: {why}",
                                            describe_wanted(&target.wanted),
                                            target.applier,
                                            r.chart,
                                            revision::short(&commit.to_string())
                                        ),
                                    }.into(),
                                    problem: format!("rendered by the Helm chart {chart}"),
                                    chart: r.chart,
                                    values: r.values,
                                });
                                result = Ok(None);
                                continue;
                            }
                        }
                    }
                }
            }
            let key = IndexKey {
                repo: repo.dir.clone(),
                commit,
                build: format!("{build:?}"),
            };
            let index = indexes.entry(key).or_insert_with(|| {
                repo.snapshot(commit)
                    .map_err(Error::from)
                    .and_then(|snap| manifest::index(&snap, build))
                    .map_err(|e| e.report())
            });
            let index = match index {
                Ok(i) => i,
                Err(e) => {
                    result = Err(git::Error::Invalid {
                        repo: repo.dir.display().to_string(),
                        message: e.clone(),
                    }
                    .into());
                    continue;
                }
            };
            location.source = Some(source.clone());
            location.revision = Some(revision.clone());
            location.repository = Some(repo.dir.clone());
            location.repository_origin = Some(repo.origin);
            location.applied_commit = Some(commit.to_string());
            match index.find(&target.wanted, target.origin.as_deref()) {
                Found::One(entry) => {
                    if let Some(a) = &target.artifact
                        && let Err(why) = repo
                            .snapshot(commit)
                            .map_err(|e| crate::error::chain(&e))
                            .and_then(|snap| a.copies.verify(&snap, &entry.file))
                    {
                        // The file is not what the artifact holds: say why, name no file.
                        result = Err(LocateError::OwnerIncomplete {
                            owner: target.applier.clone(),
                            problem: format!("{}: {why}", a.generator),
                        }
                        .into());
                        break;
                    }
                    location.file = Some(entry.file.clone());
                    location.document = entry.doc;
                    location.lines = Some((entry.first_line, entry.last_line));
                    location.transform = entry.transform.clone();
                    location.built_from = Some((build.clone(), entry.clone()));
                    if entry.doc.is_some()
                        && let Ok(snap) = repo.snapshot(commit)
                    {
                        let graph = graphs.of(&repo.dir, &snap);
                        // One replay of the layers gives both the overlays and the object.
                        let built =
                            crate::change::target::define_in(&snap, build, entry, graph.as_deref())
                                .and_then(|d| d.setters_and_effective())
                                .map_err(|e| e.to_string());
                        let effective = built.map(|(setters, effective)| {
                            location.patched_by = overlays_of(setters);
                            effective
                        });
                        location.effective = Some(std::rc::Rc::new(effective));
                    }
                    location.link =
                        git::url::file_link(&source.url, &commit.to_string(), &entry.file);
                    result = Ok(Some(Pending { repo, commit }));
                    break;
                }
                Found::Many(entries) => {
                    let mut files: Vec<String> = entries
                        .iter()
                        .map(|e| match e.doc {
                            Some(d) if d > 0 => format!("{} (document {})", e.file, d + 1),
                            _ => e.file.clone(),
                        })
                        .collect();
                    files.dedup();
                    many = Some(
                        LocateError::AmbiguousFile {
                            resource: describe_wanted(&target.wanted),
                            commit: revision::short(&commit.to_string()).to_string(),
                            count: entries.len(),
                            candidates: files.join(", "),
                        }
                        .into(),
                    );
                }
                Found::None => {
                    let mut why = if index.notes.is_empty() {
                        format!("{} manifests searched", index.entries.len())
                    } else {
                        format!(
                            "{} manifests searched; {}",
                            index.entries.len(),
                            index.notes.join("; ")
                        )
                    };
                    if let Some(o) = &target.origin {
                        why.push_str(&format!(
                            "; its {} annotation says {}",
                            manifest::ORIGIN_ANNOTATION,
                            o.trim().replace('\n', " ")
                        ));
                    }
                    misses.push(why);
                    result = Ok(None);
                }
            }
        }
        match result {
            Ok(Some(p)) => {
                out.push(location);
                pending.push(Some(p));
            }
            Ok(None) if unknown_template.is_some() => {
                if let Some(u) = unknown_template {
                    location.fail(&u.error);
                    location.problem = Some(u.problem);
                    location.chart = Some(u.chart);
                    location.values = u.values;
                }
                out.push(location);
                pending.push(None);
            }
            Ok(None) => {
                let e = match many {
                    Some(e) => e,
                    None => LocateError::FileNotFound {
                        resource: describe_wanted(&target.wanted),
                        path: format!("./{}", target.source.path),
                        commit: location
                            .applied_commit
                            .as_deref()
                            .map(|c| revision::short(c).to_string())
                            .unwrap_or_else(|| target.revision.display()),
                        why: misses.join("; "),
                    }
                    .into(),
                };
                location.fail(&e);
                out.push(location);
                pending.push(None);
            }
            Err(e) => {
                location.fail(&e);
                out.push(location);
                pending.push(None);
            }
        }
    }
    // One walk per (repository, applied commit) for all files found there.
    let mut groups: HashMap<(PathBuf, ObjectId), Vec<usize>> = HashMap::new();
    for (i, p) in pending.iter().enumerate() {
        if let Some(p) = p {
            groups
                .entry((p.repo.dir.clone(), p.commit))
                .or_default()
                .push(i);
        }
    }
    let mut infos: HashMap<(PathBuf, ObjectId), CommitInfo> = HashMap::new();
    for ((dir, commit), members) in groups {
        let Some(Some(first)) = pending.get(members[0]) else {
            continue;
        };
        let repo = first.repo.clone();
        if let Ok(info) = repo.commit_info(commit) {
            for &i in &members {
                out[i].applied = Some(info.clone());
            }
        }
        let paths: Vec<String> = members
            .iter()
            .map(|&i| out[i].file.clone().unwrap_or_default())
            .collect();
        // The overlays' files, in the same walk.
        let mut overlay_files: Vec<String> = members
            .iter()
            .flat_map(|&i| out[i].patched_by.iter().map(|p| p.file.clone()))
            .filter(|f| !paths.contains(f))
            .collect();
        overlay_files.sort();
        overlay_files.dedup();
        let all: Vec<String> = paths.iter().chain(&overlay_files).cloned().collect();
        let walked = repo.last_commits(commit, &all).map(|(found, stats)| {
            let by_file: HashMap<String, Option<ObjectId>> =
                all.iter().cloned().zip(found.iter().copied()).collect();
            for &i in &members {
                for p in &mut out[i].patched_by {
                    p.commit = by_file.get(&p.file).copied().flatten().and_then(|c| {
                        infos
                            .get(&(dir.clone(), c))
                            .cloned()
                            .or_else(|| repo.commit_info(c).ok())
                    });
                }
            }
            (
                found.into_iter().take(paths.len()).collect::<Vec<_>>(),
                stats,
            )
        });
        match walked {
            Ok((found, _)) => {
                for (&i, c) in members.iter().zip(found) {
                    let Some(c) = c else {
                        let e: Error = git::Error::Invalid {
                            repo: dir.display().to_string(),
                            message: format!(
                                "{} is not a file at {}",
                                out[i].file.clone().unwrap_or_default(),
                                revision::short(&commit.to_string())
                            ),
                        }
                        .into();
                        out[i].fail(&e);
                        continue;
                    };
                    let info = match infos.get(&(dir.clone(), c)) {
                        Some(info) => Ok(info.clone()),
                        None => repo.commit_info(c),
                    };
                    match info {
                        Ok(info) => {
                            infos.insert((dir.clone(), c), info.clone());
                            if let (Some(source), Some(file)) = (&out[i].source, &out[i].file) {
                                out[i].link = git::url::file_link(&source.url, &info.id, file);
                            }
                            out[i].commit = Some(info);
                        }
                        Err(e) => out[i].fail(&e.into()),
                    }
                }
            }
            Err(e) => {
                let e = Error::from(e);
                for &i in &members {
                    out[i].fail(&e);
                }
            }
        }
    }
    out
}

fn describe_wanted(w: &Wanted) -> String {
    let r = format!("{}/{}", w.kind.to_lowercase(), w.name);
    if w.namespace.is_empty() {
        r
    } else {
        format!("{r} in {}", w.namespace)
    }
}

/// Everything for one object: cluster part on `rt`, Git part here. The error is the reason the
/// chain stops short (unmanaged, owner incomplete, repository unreachable, file not found, …).
pub fn resolve(
    rt: &tokio::runtime::Runtime,
    cluster: &Cluster,
    finder: &mut RepoFinder,
    live: Value,
    config: &Config,
) -> Result<Location, Error> {
    let mut cache = OwnerCache::default();
    let planned = rt.block_on(plan(cluster, &mut cache, live, config));
    if planned.location.owner.is_none() && planned.location.error.is_none() {
        return Err(LocateError::Unmanaged {
            resource: planned.location.object.describe(),
        }
        .into());
    }
    let mut located = locate_all(finder, vec![planned]);
    let location = located
        .pop()
        .ok_or_else(|| Error::Usage("nothing to locate".into()))?;
    Ok(location)
}
