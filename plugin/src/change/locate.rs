//! The cluster side of a change, on top of [`crate::cluster`] and [`crate::locate`]: the live
//! object and its owner as `status` finds them, plus what a change needs beyond that — whether the
//! source follows a branch (and which), the chart of a HelmRelease-rendered object, what an Argo
//! CD source gives Helm should its path be a chart, and the server-side dry-run that validates
//! the changed object as the user.

use gitops_guard_core::Config;
use gitops_guard_core::custody::{
    HELM as HELM_GROUP, KUSTOMIZE as KUSTOMIZE_GROUP, SOURCE as FLUX_SOURCE_GROUP,
};
use gitops_guard_core::owner::{OwnerKind, OwnerRef};
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::Value;

use crate::Error;
use crate::cluster::{Cluster, Resource};
use crate::git::Revision;
use crate::locate::error::Error as LocateError;
use crate::locate::{self, OwnerCache};
use crate::manifest::Build;

use super::overrides::Overrides;

/// The Git source an owner follows, as a change needs it: its URL and the branch it follows
/// (where `crate::locate::Source` says where manifests come from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Followed {
    pub url: String,
    /// The branch the agent follows; `None` when it follows the remote's default branch (Argo CD
    /// `HEAD`).
    pub branch: Option<String>,
    /// Set when the agent follows a tag or a fixed commit instead of a branch.
    pub not_a_branch: Option<String>,
}

/// A chart rendered by a HelmRelease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmChart {
    /// `Flux HelmRelease prod/web`.
    pub owner: String,
    /// The command that changes the release's values (`kubectl gitops patch helmrelease/web -n prod`).
    pub values_command: String,
    /// Where the values are in the release (`spec.values`).
    pub values_field: Vec<String>,
    /// The chart's directory in a Git source, when it is in Git.
    pub git: Option<(Followed, String)>,
    /// How the chart is named (`the chart ./charts/web from GitRepository flux-system/platform`).
    pub chart: String,
}

/// How the object is defined.
#[derive(Debug, Clone)]
pub enum Definer {
    /// Manifests in Git, built from a path (Argo CD multi-source applications have several).
    Manifests(Vec<(Followed, Build)>),
    /// A Helm chart.
    Helm(HelmChart),
}

/// Everything the cluster says about where an object comes from.
#[derive(Debug, Clone)]
pub struct Located {
    pub resource: Resource,
    pub namespace: Option<String>,
    pub name: String,
    pub live: Value,
    /// The direct owner.
    pub owner: OwnerRef,
    /// Who applied the revision (`Flux Kustomization flux-system/apps`).
    pub applier: String,
    /// The revision the owner applied last.
    pub applied: Option<Revision>,
    /// The `config.kubernetes.io/origin` annotation, if the build recorded it.
    pub origin: Option<String>,
    pub definer: Definer,
    /// For each build of [`Definer::Manifests`] of an Argo CD Application: what the source gives
    /// Helm, should its path be a chart (Git says whether it is).
    pub charts: Vec<Option<locate::ArgoHelm>>,
    /// What a Flux Kustomization owner does to every object after the build.
    pub overrides: Option<Overrides>,
}

impl Located {
    /// `deployment/web`.
    pub fn resource(&self) -> String {
        format!("{}/{}", self.resource.api.kind.to_lowercase(), self.name)
    }

    /// `deployment/web in prod`.
    pub fn resource_in(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} in {ns}", self.resource()),
            None => self.resource(),
        }
    }

    pub fn kind(&self) -> &str {
        &self.resource.api.kind
    }

    pub fn group(&self) -> &str {
        &self.resource.api.group
    }
}

fn s<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// kubectl's words for a missing object: `deployments.apps "web" not found`.
fn not_found(r: &Resource, name: &str) -> Error {
    let plural = if r.api.group.is_empty() {
        r.api.plural.clone()
    } else {
        format!("{}.{}", r.api.plural, r.api.group)
    };
    crate::cluster::Error::NotFound {
        resource: format!("{plural} \"{name}\""),
    }
    .into()
}

/// Finds the object, its owner and what the owner builds it from.
pub async fn locate(
    cluster: &mut Cluster,
    type_text: &str,
    name: &str,
    namespace: &str,
    config: &Config,
) -> Result<Located, Error> {
    cluster.discover().await?;
    cluster.refresh_if_unknown(type_text).await?;
    let resource = cluster.resolve_type(type_text)?.clone();
    let ns = resource.namespaced.then(|| namespace.to_string());
    let live = cluster
        .get(&resource, ns.as_deref(), name)
        .await?
        .ok_or_else(|| not_found(&resource, name))?;
    let mut cache = OwnerCache::default();
    let planned = locate::plan(cluster, &mut cache, live.clone(), config).await;
    let location = planned.location;
    let resource_in = match &ns {
        Some(n) => format!("{}/{name} in {n}", resource.api.kind.to_lowercase()),
        None => format!("{}/{name}", resource.api.kind.to_lowercase()),
    };
    let Some(owner) = location.owner.clone() else {
        return Err(match location.error {
            Some(e) => LocateError::NotLocated { message: e }.into(),
            None => LocateError::Unmanaged {
                resource: resource_in,
            }
            .into(),
        });
    };
    if owner.kind == OwnerKind::HelmRelease {
        let chart = helm_chart(cluster, &owner).await?;
        return Ok(Located {
            resource,
            namespace: ns,
            name: name.to_string(),
            live,
            applier: owner.to_string(),
            owner,
            applied: location.revision.clone(),
            origin: None,
            definer: Definer::Helm(chart),
            charts: Vec::new(),
            overrides: None,
        });
    }
    let Some(target) = planned.target else {
        return Err(LocateError::NotLocated {
            message: location
                .error
                .unwrap_or_else(|| format!("{resource_in}: its owner {owner} names no Git source")),
        }
        .into());
    };
    let mut builds = Vec::new();
    for (src, _revision, build) in &target.builds {
        let source = branch_of(cluster, src, &target.revision).await?;
        builds.push((source, build.clone()));
    }
    let overrides = match owner.kind {
        OwnerKind::Kustomization => cluster
            .get_kind(
                KUSTOMIZE_GROUP,
                "Kustomization",
                &owner.namespace,
                &owner.name,
            )
            .await?
            .as_ref()
            .and_then(Overrides::of_kustomization),
        _ => None,
    };
    Ok(Located {
        resource,
        namespace: ns,
        name: name.to_string(),
        live,
        owner,
        applier: target.applier.clone(),
        applied: Some(target.revision.clone()),
        origin: target.origin.clone(),
        definer: Definer::Manifests(builds),
        charts: target.charts.clone(),
        overrides,
    })
}

/// Which branch a source follows.
async fn branch_of(
    cluster: &Cluster,
    src: &locate::Source,
    applied: &Revision,
) -> Result<Followed, Error> {
    let mut out = Followed {
        url: src.url.clone(),
        branch: None,
        not_a_branch: None,
    };
    match src.kind.as_str() {
        "GitRepository" => {
            let repo = cluster
                .get_kind(
                    FLUX_SOURCE_GROUP,
                    "GitRepository",
                    &src.namespace,
                    &src.name,
                )
                .await?
                .unwrap_or(Value::Null);
            if let Some(b) = s(&repo, "/spec/ref/branch") {
                out.branch = Some(b.to_string());
            } else if let Some(n) = s(&repo, "/spec/ref/name") {
                match n.strip_prefix("refs/heads/") {
                    Some(b) => out.branch = Some(b.to_string()),
                    None => out.not_a_branch = Some(format!("the reference {n}")),
                }
            } else if let Some(t) = s(&repo, "/spec/ref/tag") {
                out.not_a_branch = Some(format!("the tag {t}"));
            } else if let Some(v) = s(&repo, "/spec/ref/semver") {
                out.not_a_branch = Some(format!("the tags matching {v}"));
            } else if let Some(c) = s(&repo, "/spec/ref/commit") {
                out.not_a_branch = Some(format!("the commit {c}"));
            } else {
                // Flux's default reference is the master branch.
                out.branch = Some("master".into());
            }
        }
        "Application" => match src.reference.as_deref().unwrap_or("HEAD") {
            "HEAD" | "" => {}
            r if r.len() == 40 && r.chars().all(|c| c.is_ascii_hexdigit()) => {
                out.not_a_branch = Some(format!("the commit {r}"));
            }
            r => out.branch = Some(r.trim_start_matches("refs/heads/").to_string()),
        },
        _ => match applied.short_reference() {
            Some(b) => out.branch = Some(b.to_string()),
            None => {
                out.not_a_branch = Some(format!("the {} {}/{}", src.kind, src.namespace, src.name))
            }
        },
    }
    Ok(out)
}

async fn helm_chart(cluster: &Cluster, owner: &OwnerRef) -> Result<HelmChart, Error> {
    let describe = owner.to_string();
    let hr = cluster
        .get_kind(HELM_GROUP, "HelmRelease", &owner.namespace, &owner.name)
        .await?
        .ok_or_else(|| LocateError::OwnerIncomplete {
            owner: describe.clone(),
            problem: "it does not exist".into(),
        })?;
    let chart_name = s(&hr, "/spec/chart/spec/chart")
        .unwrap_or_default()
        .to_string();
    let src_kind = s(&hr, "/spec/chart/spec/sourceRef/kind").unwrap_or_default();
    let src_name = s(&hr, "/spec/chart/spec/sourceRef/name").unwrap_or_default();
    let src_ns = s(&hr, "/spec/chart/spec/sourceRef/namespace").unwrap_or(&owner.namespace);
    let git = if src_kind == "GitRepository" {
        let src = locate::Source {
            kind: "GitRepository".into(),
            namespace: src_ns.to_string(),
            name: src_name.to_string(),
            url: String::new(),
            reference: None,
            path: String::new(),
        };
        let repo = cluster
            .get_kind(FLUX_SOURCE_GROUP, "GitRepository", src_ns, src_name)
            .await?;
        match repo.as_ref().and_then(|r| s(r, "/spec/url")) {
            Some(url) => {
                let src = locate::Source {
                    url: url.to_string(),
                    ..src
                };
                let source = branch_of(cluster, &src, &crate::git::revision::parse("")).await?;
                crate::git::normalize_path(&chart_name).map(|p| (source, p))
            }
            None => None,
        }
    } else {
        None
    };
    let chart = match hr.pointer("/spec/chartRef") {
        Some(r) => format!(
            "the chart of the {} {}",
            s(r, "/kind").unwrap_or("OCIRepository"),
            s(r, "/name").unwrap_or_default()
        ),
        None if src_kind == "GitRepository" => {
            format!("the chart {chart_name} in the GitRepository {src_ns}/{src_name}")
        }
        None => format!(
            "the chart {chart_name}{} from the {src_kind} {src_ns}/{src_name}",
            s(&hr, "/spec/chart/spec/version")
                .map(|v| format!(" {v}"))
                .unwrap_or_default()
        ),
    };
    Ok(HelmChart {
        owner: describe,
        values_command: format!(
            "kubectl gitops patch helmrelease/{} -n {}",
            owner.name, owner.namespace
        ),
        values_field: vec!["spec".into(), "values".into()],
        git,
        chart,
    })
}

/// Replaces the object with `object` as a server-side dry run (`dryRun=All`): the API server
/// validates, defaults and runs admission as the user, and stores nothing. `Ok(Err(message))`
/// when the server refuses the object.
pub async fn dry_run_replace(
    cluster: &Cluster,
    r: &Resource,
    namespace: Option<&str>,
    name: &str,
    object: &Value,
) -> Result<Result<(), String>, Error> {
    let what = format!("{}/{name}", r.api.kind.to_lowercase());
    let obj: DynamicObject =
        serde_json::from_value(object.clone()).map_err(|source| crate::cluster::Error::Encode {
            action: format!("preparing the dry run of {what}"),
            source,
        })?;
    let api: Api<DynamicObject> = match namespace {
        Some(ns) if r.namespaced => Api::namespaced_with(cluster.client.clone(), ns, &r.api),
        _ => Api::all_with(cluster.client.clone(), &r.api),
    };
    let pp = PostParams {
        dry_run: true,
        field_manager: Some("kubectl-gitops".into()),
    };
    match api.replace(name, &pp, &obj).await {
        Ok(_) => Ok(Ok(())),
        Err(kube::Error::Api(st)) if (400..500).contains(&st.code) && st.code != 401 => {
            Ok(Err(st.message.clone()))
        }
        Err(source) => Err(crate::cluster::Error::Kube {
            action: format!("validating {what} with a server-side dry run"),
            source,
        }
        .into()),
    }
}
