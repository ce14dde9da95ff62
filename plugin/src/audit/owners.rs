//! The owners part of `audit`: for each Flux Kustomization, HelmRelease and Argo CD Application,
//! its source, the revision it applied against its source's current one, whether that revision
//! is verified, Ready and suspended, and how many objects it declares. Pure: the caller reads the
//! owner and its source (and, for Argo CD, its AppProject) from the cluster.

use serde::Serialize;
use serde_json::Value;

/// Where an owner's manifests come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerSource {
    /// `GitRepository`, `OCIRepository`, `HelmRepository`, … or `Git` for an Argo CD source.
    pub kind: String,
    /// `flux-system/fleet` (empty for an Argo CD source, which is a URL only).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub url: String,
    /// The branch (or tag, semver range, commit) it follows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The owner's path in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Whether the applied revision is verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// `verified`, `not verified` (verification is configured and failed or has not run for
    /// this revision), `unknown` (configured, nothing says how it went) or `not configured`.
    pub state: &'static str,
    /// What says so: the source's `SourceVerified` condition, the AppProject's signature keys.
    pub detail: String,
}

/// One owner in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerReport {
    /// `Kustomization`, `HelmRelease` or `Application`.
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    /// `Flux Kustomization flux-system/apps`, as objects name their owner.
    pub owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<OwnerSource>,
    /// The revision the owner applied (`main@sha1:…`, a chart version).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_revision: Option<String>,
    /// The source's current revision (what the agent would apply next).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    /// Whether the applied revision is the current one (absent when either is unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub up_to_date: Option<bool>,
    pub verified: Verification,
    /// The Ready condition (Argo CD: health `Healthy`); absent when the owner has none yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// The Ready condition's message (Argo CD: health and sync status).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ready_message: String,
    pub suspended: bool,
    /// Objects it declares (Flux inventory, Argo CD resources; a HelmRelease: the objects in
    /// scope it installed).
    pub objects: usize,
}

fn text<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn string(v: &Value, pointer: &str) -> Option<String> {
    text(v, pointer)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A condition of `status.conditions` by type: `(status == "True", message)`.
pub fn condition(v: &Value, kind: &str) -> Option<(bool, String)> {
    v.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        .map(|c| {
            (
                c.get("status").and_then(Value::as_str) == Some("True"),
                c.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            )
        })
}

/// What a Flux source follows: `spec.ref.branch`, else tag, semver, name or commit.
fn flux_reference(source: &Value) -> Option<String> {
    for (key, prefix) in [
        ("branch", ""),
        ("tag", "tag "),
        ("semver", "semver "),
        ("name", "ref "),
        ("commit", "commit "),
    ] {
        if let Some(v) = string(source, &format!("/spec/ref/{key}")) {
            return Some(format!("{prefix}{v}"));
        }
    }
    None
}

/// The `namespace/name` a Flux `sourceRef` names (its namespace defaults to the owner's).
pub fn source_ref(owner: &Value, pointer: &str) -> Option<(String, String, String)> {
    let r = owner.pointer(pointer)?;
    let kind = r.get("kind").and_then(Value::as_str)?.to_string();
    let name = r.get("name").and_then(Value::as_str)?.to_string();
    let namespace = r
        .get("namespace")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| string(owner, "/metadata/namespace"))
        .unwrap_or_default();
    Some((kind, namespace, name))
}

/// Flux verification: `spec.verify` on the source, and its `SourceVerified` condition.
fn flux_verification(source: Option<&Value>, revision: Option<&str>) -> Verification {
    let Some(source) = source else {
        return Verification {
            state: "unknown",
            detail: "the source could not be read".into(),
        };
    };
    let Some(verify) = source.pointer("/spec/verify") else {
        return Verification {
            state: "not configured",
            detail: format!(
                "{} has no spec.verify",
                text(source, "/kind").unwrap_or("the source")
            ),
        };
    };
    let mode = verify
        .get("mode")
        .and_then(Value::as_str)
        .unwrap_or("HEAD")
        .to_string();
    let verified_rev = text(source, "/status/artifact/revision");
    match condition(source, "SourceVerified") {
        Some((true, message)) => {
            // The condition is about the source's current artifact: an owner that applied an
            // older revision applied something verified before, not this.
            if let (Some(applied), Some(current)) = (revision, verified_rev)
                && applied != current
            {
                return Verification {
                    state: "unknown",
                    detail: format!(
                        "spec.verify (mode {mode}): the source verified {current}, not the applied {applied}"
                    ),
                };
            }
            Verification {
                state: "verified",
                detail: format!("spec.verify (mode {mode}): {message}"),
            }
        }
        Some((false, message)) => Verification {
            state: "not verified",
            detail: format!("spec.verify (mode {mode}): {message}"),
        },
        None => Verification {
            state: "unknown",
            detail: format!("spec.verify (mode {mode}): no SourceVerified condition yet"),
        },
    }
}

fn flux_ready(owner: &Value) -> (Option<bool>, String) {
    match condition(owner, "Ready") {
        Some((ready, message)) => (Some(ready), message),
        None => (None, String::new()),
    }
}

fn flux_source(source_kind: &str, ns: &str, name: &str, source: Option<&Value>) -> OwnerSource {
    OwnerSource {
        kind: source_kind.to_string(),
        name: format!("{ns}/{name}"),
        url: source
            .and_then(|s| string(s, "/spec/url"))
            .unwrap_or_default(),
        branch: source.and_then(flux_reference),
        path: None,
    }
}

fn up_to_date(applied: Option<&str>, current: Option<&str>) -> Option<bool> {
    Some(applied? == current?)
}

/// A Flux Kustomization with its source (`None`: not readable).
pub fn kustomization(ks: &Value, source: Option<&Value>) -> OwnerReport {
    let namespace = string(ks, "/metadata/namespace").unwrap_or_default();
    let name = string(ks, "/metadata/name").unwrap_or_default();
    let (source_kind, source_ns, source_name) =
        source_ref(ks, "/spec/sourceRef").unwrap_or_default();
    let applied = string(ks, "/status/lastAppliedRevision");
    let current = source.and_then(|s| string(s, "/status/artifact/revision"));
    let (ready, ready_message) = flux_ready(ks);
    let mut src = flux_source(&source_kind, &source_ns, &source_name, source);
    src.path = Some(
        string(ks, "/spec/path")
            .unwrap_or_else(|| "./".into())
            .to_string(),
    );
    OwnerReport {
        kind: "Kustomization",
        owner: format!("Flux Kustomization {namespace}/{name}"),
        namespace,
        name,
        source: Some(src),
        up_to_date: up_to_date(applied.as_deref(), current.as_deref()),
        verified: flux_verification(source, applied.as_deref()),
        applied_revision: applied,
        current_revision: current,
        ready,
        ready_message,
        suspended: ks.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true),
        objects: ks
            .pointer("/status/inventory/entries")
            .and_then(Value::as_array)
            .map_or(0, Vec::len),
    }
}

/// The source a HelmRelease's chart comes from: `spec.chart.spec.sourceRef`, else `spec.chartRef`.
pub fn helm_source_ref(hr: &Value) -> Option<(String, String, String)> {
    source_ref(hr, "/spec/chart/spec/sourceRef").or_else(|| source_ref(hr, "/spec/chartRef"))
}

/// A Flux HelmRelease with its chart's source and the HelmChart source-controller made for it
/// (its artifact's revision is the chart version the release would install next); `objects`:
/// the objects in scope it installed.
pub fn helm_release(
    hr: &Value,
    source: Option<&Value>,
    chart: Option<&Value>,
    objects: usize,
) -> OwnerReport {
    let namespace = string(hr, "/metadata/namespace").unwrap_or_default();
    let name = string(hr, "/metadata/name").unwrap_or_default();
    let (source_kind, source_ns, source_name) = helm_source_ref(hr).unwrap_or_default();
    let applied = string(hr, "/status/history/0/chartVersion")
        .or_else(|| string(hr, "/status/lastAppliedRevision"))
        .or_else(|| string(hr, "/status/lastAttemptedRevision"));
    let current = chart
        .and_then(|c| string(c, "/status/artifact/revision"))
        .or_else(|| {
            // An OCIRepository or HelmChart given directly.
            source
                .filter(|_| source_kind != "GitRepository" && source_kind != "HelmRepository")
                .and_then(|s| string(s, "/status/artifact/revision"))
        });
    let (ready, ready_message) = flux_ready(hr);
    let mut src = flux_source(&source_kind, &source_ns, &source_name, source);
    src.path = string(hr, "/spec/chart/spec/chart");
    // A chart version from Git carries the commit after `+`; the release records the version.
    let same = match (applied.as_deref(), current.as_deref()) {
        (Some(a), Some(c)) => Some(a == c || c.split('+').next() == Some(a)),
        _ => None,
    };
    let verify_on = chart
        .filter(|c| c.pointer("/spec/verify").is_some())
        .or(source);
    OwnerReport {
        kind: "HelmRelease",
        owner: format!("Flux HelmRelease {namespace}/{name}"),
        namespace,
        name,
        source: Some(src),
        up_to_date: same,
        verified: flux_verification(verify_on, None),
        applied_revision: applied,
        current_revision: current,
        ready,
        ready_message,
        suspended: hr.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true),
        objects,
    }
}

/// An Argo CD Application with its AppProject (`None`: not readable).
pub fn application(app: &Value, project: Option<&Value>) -> OwnerReport {
    let namespace = string(app, "/metadata/namespace").unwrap_or_default();
    let name = string(app, "/metadata/name").unwrap_or_default();
    let source = app
        .pointer("/spec/source")
        .or_else(|| app.pointer("/spec/sources/0"));
    let applied = string(app, "/status/operationState/syncResult/revision")
        .or_else(|| string(app, "/status/operationState/syncResult/revisions/0"));
    let current =
        string(app, "/status/sync/revision").or_else(|| string(app, "/status/sync/revisions/0"));
    let health = string(app, "/status/health/status");
    let sync = string(app, "/status/sync/status");
    let ready_message = match (&health, &sync) {
        (Some(h), Some(s)) => format!("health {h}, sync {s}"),
        (Some(h), None) => format!("health {h}"),
        (None, Some(s)) => format!("sync {s}"),
        (None, None) => String::new(),
    };
    let keys = project
        .and_then(|p| p.pointer("/spec/signatureKeys"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let integrity = project.is_some_and(|p| p.pointer("/spec/sourceIntegrity").is_some());
    let project_name = string(app, "/spec/project").unwrap_or_else(|| "default".into());
    let verified = if keys == 0 && !integrity {
        Verification {
            state: if project.is_some() {
                "not configured"
            } else {
                "unknown"
            },
            detail: if project.is_some() {
                format!("AppProject {project_name} has no signatureKeys or sourceIntegrity")
            } else {
                format!("AppProject {project_name} could not be read")
            },
        }
    } else {
        let what = if keys > 0 {
            format!("AppProject {project_name} requires commits signed by {keys} key(s)")
        } else {
            format!("AppProject {project_name} sets sourceIntegrity")
        };
        // Argo CD refuses to sync a revision that fails verification: a successful sync of the
        // applied revision is its verification.
        match string(app, "/status/operationState/phase").as_deref() {
            Some("Succeeded") if applied.is_some() => Verification {
                state: "verified",
                detail: format!("{what}; the sync of the applied revision succeeded"),
            },
            Some(phase) => Verification {
                state: "not verified",
                detail: format!(
                    "{what}; the last sync is {phase}: {}",
                    string(app, "/status/operationState/message").unwrap_or_default()
                ),
            },
            None => Verification {
                state: "unknown",
                detail: format!("{what}; no sync recorded"),
            },
        }
    };
    OwnerReport {
        kind: "Application",
        owner: format!("Argo CD Application {namespace}/{name}"),
        namespace,
        name,
        source: source.map(|s| OwnerSource {
            kind: if s.get("chart").is_some() {
                "Helm".into()
            } else {
                "Git".into()
            },
            name: String::new(),
            url: string(s, "/repoURL").unwrap_or_default(),
            branch: string(s, "/targetRevision").or_else(|| Some("HEAD".into())),
            path: string(s, "/path").or_else(|| string(s, "/chart")),
        }),
        up_to_date: up_to_date(applied.as_deref(), current.as_deref()),
        verified,
        applied_revision: applied,
        current_revision: current,
        ready: health.as_deref().map(|h| h == "Healthy"),
        ready_message,
        suspended: false,
        objects: app
            .pointer("/status/resources")
            .and_then(Value::as_array)
            .map_or(0, Vec::len),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn git_repository(verify: bool, verified: Option<bool>, revision: &str) -> Value {
        let mut v = json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "fleet", "namespace": "flux-system"},
            "spec": {"url": "https://git.example.com/acme/fleet.git", "ref": {"branch": "main"}},
            "status": {"artifact": {"revision": revision}, "conditions": []}
        });
        if verify {
            v["spec"]["verify"] = json!({"mode": "HEAD", "secretRef": {"name": "pgp"}});
        }
        if let Some(ok) = verified {
            v["status"]["conditions"] = json!([{"type": "SourceVerified",
                "status": if ok { "True" } else { "False" },
                "message": if ok { "verified signature of commit" } else { "no signature" }}]);
        }
        v
    }

    fn ks(applied: &str, suspend: bool) -> Value {
        json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "team", "namespace": "flux-system"},
            "spec": {"path": "./apps/team", "suspend": suspend,
                     "sourceRef": {"kind": "GitRepository", "name": "fleet"}},
            "status": {"lastAppliedRevision": applied,
                "inventory": {"entries": [{"id": "team_web_apps_Deployment", "v": "v1"}]},
                "conditions": [{"type": "Ready", "status": "True", "message": "Applied revision: main@sha1:abc"}]}
        })
    }

    #[test]
    fn a_kustomization_up_to_date_and_verified() {
        let r = kustomization(
            &ks("main@sha1:abc", false),
            Some(&git_repository(true, Some(true), "main@sha1:abc")),
        );
        assert_eq!(r.owner, "Flux Kustomization flux-system/team");
        let src = r.source.clone().unwrap();
        assert_eq!(src.name, "flux-system/fleet");
        assert_eq!(src.branch.as_deref(), Some("main"));
        assert_eq!(src.path.as_deref(), Some("./apps/team"));
        assert_eq!(r.up_to_date, Some(true));
        assert_eq!(r.verified.state, "verified");
        assert_eq!(r.ready, Some(true));
        assert!(!r.suspended);
        assert_eq!(r.objects, 1);
    }

    #[test]
    fn a_kustomization_behind_its_source_is_not_up_to_date_and_its_verification_unknown() {
        let r = kustomization(
            &ks("main@sha1:old", true),
            Some(&git_repository(true, Some(true), "main@sha1:new")),
        );
        assert_eq!(r.up_to_date, Some(false));
        assert!(r.suspended);
        assert_eq!(r.verified.state, "unknown", "{:?}", r.verified);
        let r = kustomization(
            &ks("main@sha1:abc", false),
            Some(&git_repository(true, Some(false), "main@sha1:abc")),
        );
        assert_eq!(r.verified.state, "not verified");
        assert!(r.verified.detail.contains("no signature"));
        let r = kustomization(
            &ks("main@sha1:abc", false),
            Some(&git_repository(false, None, "main@sha1:abc")),
        );
        assert_eq!(r.verified.state, "not configured");
        let r = kustomization(&ks("main@sha1:abc", false), None);
        assert_eq!(r.up_to_date, None);
        assert_eq!(r.verified.state, "unknown");
    }

    #[test]
    fn an_argo_application_with_signature_keys() {
        let app = json!({
            "metadata": {"name": "guestbook", "namespace": "argocd"},
            "spec": {"project": "secure", "source": {"repoURL": "https://git.example.com/acme/apps.git",
                "targetRevision": "main", "path": "guestbook"}},
            "status": {"sync": {"status": "Synced", "revision": "abc"},
                "health": {"status": "Healthy"},
                "operationState": {"phase": "Succeeded", "syncResult": {"revision": "abc"}},
                "resources": [{"kind": "Service", "name": "a"}, {"kind": "Deployment", "name": "a"}]}
        });
        let project = json!({"spec": {"signatureKeys": [{"keyID": "4AEE18F83AFDEB23"}]}});
        let r = application(&app, Some(&project));
        assert_eq!(r.owner, "Argo CD Application argocd/guestbook");
        assert_eq!(r.up_to_date, Some(true));
        assert_eq!(r.verified.state, "verified");
        assert_eq!(r.ready, Some(true));
        assert_eq!(r.ready_message, "health Healthy, sync Synced");
        assert_eq!(r.objects, 2);
        let r = application(&app, Some(&json!({"spec": {}})));
        assert_eq!(r.verified.state, "not configured");
    }

    #[test]
    fn a_helm_release_against_its_chart() {
        let hr = json!({
            "metadata": {"name": "redis", "namespace": "cache"},
            "spec": {"chart": {"spec": {"chart": "redis",
                "sourceRef": {"kind": "HelmRepository", "name": "bitnami", "namespace": "flux-system"}}}},
            "status": {"history": [{"chartVersion": "18.1.0"}],
                "conditions": [{"type": "Ready", "status": "False", "message": "install retries exhausted"}]}
        });
        let repo = json!({"spec": {"url": "https://charts.example.com"}});
        let chart = json!({"status": {"artifact": {"revision": "18.2.0"}}});
        let r = helm_release(&hr, Some(&repo), Some(&chart), 3);
        assert_eq!(r.applied_revision.as_deref(), Some("18.1.0"));
        assert_eq!(r.up_to_date, Some(false));
        assert_eq!(r.ready, Some(false));
        assert_eq!(r.objects, 3);
        assert_eq!(r.verified.state, "not configured");
        assert_eq!(r.source.unwrap().name, "flux-system/bitnami");
    }
}
