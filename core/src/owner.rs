//! Who manages an object: Flux (Kustomization, HelmRelease), Argo CD (Application), or a namespace
//! that says every object in it is managed.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{Config, Mode};
use crate::exception::Window;
use crate::object::Object;

pub const KUSTOMIZE_NAME: &str = "kustomize.toolkit.fluxcd.io/name";
pub const KUSTOMIZE_NAMESPACE: &str = "kustomize.toolkit.fluxcd.io/namespace";
pub const HELM_NAME: &str = "helm.toolkit.fluxcd.io/name";
pub const HELM_NAMESPACE: &str = "helm.toolkit.fluxcd.io/namespace";
pub const ARGO_TRACKING_ID: &str = "argocd.argoproj.io/tracking-id";
pub const ENFORCE: &str = "gitops-guard.dev/enforce";
pub const MODE: &str = "gitops-guard.dev/mode";
/// The label Kubernetes >= 1.21 sets on every namespace (and keeps equal to its name).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Labels and annotations of the agents that say who owns an object or how the agent treats it
/// (ownership, `reconcile: disabled`, `ssa`, `prune`, `force`, Argo CD sync and compare options):
/// no exception and no break-glass window covers them. Prefixes end in `/`.
pub const AGENT_KEYS: &[&str] = &[
    "kustomize.toolkit.fluxcd.io/",
    "helm.toolkit.fluxcd.io/",
    ARGO_TRACKING_ID,
    "argocd.argoproj.io/sync-options",
    "argocd.argoproj.io/compare-options",
];

/// Whether `key` is one of [`AGENT_KEYS`] (or the configured Argo CD tracking label).
pub fn is_agent_key(key: &str, config: &Config) -> bool {
    AGENT_KEYS.iter().any(|k| {
        if k.ends_with('/') {
            key.starts_with(k)
        } else {
            key == *k
        }
    }) || (config.argocd.label_tracking && key == config.argocd.tracking_label)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OwnerKind {
    /// Flux `kustomize.toolkit.fluxcd.io` Kustomization.
    Kustomization,
    /// Flux `helm.toolkit.fluxcd.io` HelmRelease.
    HelmRelease,
    /// Argo CD `argoproj.io` Application.
    Application,
    /// A namespace annotated `gitops-guard.dev/enforce: all`.
    Namespace,
}

impl OwnerKind {
    /// The owner kind an object kind stands for (`Kustomization`, `HelmRelease`, `Application`).
    pub fn of_kind(kind: &str) -> Option<OwnerKind> {
        match kind {
            "Kustomization" => Some(OwnerKind::Kustomization),
            "HelmRelease" => Some(OwnerKind::HelmRelease),
            "Application" => Some(OwnerKind::Application),
            _ => None,
        }
    }

    pub fn is_flux(self) -> bool {
        matches!(self, OwnerKind::Kustomization | OwnerKind::HelmRelease)
    }
}

/// One owner of an object. For [`OwnerKind::Namespace`], `namespace` and `name` are both the
/// namespace's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OwnerRef {
    pub kind: OwnerKind,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for OwnerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            OwnerKind::Kustomization => {
                write!(f, "Flux Kustomization {}/{}", self.namespace, self.name)
            }
            OwnerKind::HelmRelease => {
                write!(f, "Flux HelmRelease {}/{}", self.namespace, self.name)
            }
            OwnerKind::Application => {
                write!(f, "Argo CD Application {}/{}", self.namespace, self.name)
            }
            OwnerKind::Namespace => {
                write!(f, "namespace {} ({ENFORCE}: all)", self.name)
            }
        }
    }
}

/// What the guard knows about an owner from the cluster (webhook: a watch cache).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerInfo {
    /// The revision the agent last applied, as the owner reports it (`main@sha1:3f2a…`).
    pub revision: Option<String>,
    /// The username the agent impersonates for this owner's objects (Flux multi-tenancy, Argo CD
    /// destination service accounts), e.g. `system:serviceaccount:team-a:reconciler`.
    pub service_account: Option<String>,
}

/// What the guard knows about a namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceInfo {
    /// `gitops-guard.dev/enforce: all`: every object in it is managed (counted only when the
    /// namespace itself is GitOps-managed: the annotation came from Git).
    pub enforce_all: bool,
    /// The Namespace object itself is GitOps-managed.
    #[serde(default)]
    pub managed: bool,
    /// An owner or source lives in it or holds objects in it (Flux inventory, Argo CD resources,
    /// target namespaces): only the agent may delete it.
    #[serde(default)]
    pub holds_managed: bool,
    /// `gitops-guard.dev/mode`, counted only when the namespace itself is GitOps-managed (the
    /// annotation came from Git, not from a hand edit).
    pub mode: Option<Mode>,
    /// The namespace is being deleted.
    pub terminating: bool,
    /// A namespace-wide break-glass window (`gitops-guard.dev/break-glass-*` on the Namespace).
    pub break_glass: Option<Window>,
}

/// Who an object says manages it. `group` and `kind` are the object's own (for a tracking id check).
pub fn owners_of(obj: &Object<'_>, group: &str, kind: &str, config: &Config) -> Vec<OwnerRef> {
    let mut owners = Vec::new();
    let flux = [
        (
            OwnerKind::Kustomization,
            KUSTOMIZE_NAME,
            KUSTOMIZE_NAMESPACE,
        ),
        (OwnerKind::HelmRelease, HELM_NAME, HELM_NAMESPACE),
    ];
    for (owner_kind, name_key, ns_key) in flux {
        if let Some(name) = obj.label(name_key).filter(|n| !n.is_empty()) {
            let namespace = obj
                .label(ns_key)
                .filter(|n| !n.is_empty())
                .unwrap_or(obj.namespace.as_str());
            owners.push(OwnerRef {
                kind: owner_kind,
                namespace: namespace.to_string(),
                name: name.to_string(),
            });
        }
    }
    if let Some(id) = obj.annotation(ARGO_TRACKING_ID)
        && let Some(app) = argo_tracking_app(id, obj, group, kind, &config.argocd.namespace)
    {
        owners.push(app);
    }
    if config.argocd.label_tracking
        && let Some(app) = obj
            .label(&config.argocd.tracking_label)
            .filter(|a| !a.is_empty())
    {
        let (namespace, name) = split_app(app, &config.argocd.namespace);
        owners.push(OwnerRef {
            kind: OwnerKind::Application,
            namespace,
            name,
        });
    }
    owners.sort();
    owners.dedup();
    owners
}

/// `<app>:<group>/<kind>:<namespace>/<name>`; counts only if it names the object it sits on.
fn argo_tracking_app(
    id: &str,
    obj: &Object<'_>,
    group: &str,
    kind: &str,
    default_ns: &str,
) -> Option<OwnerRef> {
    let (app, rest) = id.split_once(':')?;
    let (gk, ns_name) = rest.split_once(':')?;
    let (id_group, id_kind) = gk.split_once('/')?;
    let (id_ns, id_name) = ns_name.split_once('/')?;
    // Argo CD writes the Application's destination namespace into the tracking id of a
    // cluster-scoped object, and accepts any namespace there for one.
    let same_namespace = id_ns == obj.namespace || obj.namespace.is_empty();
    if app.is_empty() || id_kind != kind || id_name != obj.name || !same_namespace {
        return None;
    }
    // Argo CD writes the core group as "" and treats "extensions" and "apps" alike.
    // An Ingress is the same object in networking.k8s.io and extensions (before 1.22).
    let same_group = id_group == group
        || (matches!(id_group, "apps" | "extensions") && matches!(group, "apps" | "extensions"))
        || (kind == crate::ingress::KIND
            && crate::ingress::GROUPS.contains(&id_group)
            && crate::ingress::GROUPS.contains(&group));
    if !same_group {
        return None;
    }
    let (namespace, name) = split_app(app, default_ns);
    Some(OwnerRef {
        kind: OwnerKind::Application,
        namespace,
        name,
    })
}

/// `<appNamespace>_<appName>` or `<appName>` (in Argo CD's own namespace).
fn split_app(app: &str, default_ns: &str) -> (String, String) {
    match app.split_once('_') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() => (ns.into(), name.into()),
        _ => (default_ns.into(), app.into()),
    }
}

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn sa_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// What a Flux Kustomization or HelmRelease (as JSON from the API) tells the guard.
pub fn flux_owner_info(owner: &Value, config: &Config) -> OwnerInfo {
    let namespace = str_at(owner, &["metadata", "namespace"]).unwrap_or_default();
    let revision = str_at(owner, &["status", "lastAppliedRevision"])
        .map(str::to_string)
        .or_else(|| {
            // helm.toolkit.fluxcd.io/v2: the newest release in status.history.
            let latest = owner.pointer("/status/history/0")?;
            let chart = str_at(latest, &["chartName"])?;
            let version = str_at(latest, &["chartVersion"])?;
            Some(format!("chart {chart}@{version}"))
        });
    let service_account = str_at(owner, &["spec", "serviceAccountName"])
        .or(Some(config.flux.default_service_account.as_str()).filter(|s| !s.is_empty()))
        .map(|sa| sa_user(namespace, sa));
    OwnerInfo {
        revision,
        service_account,
    }
}

/// Reads what an Argo CD Application last deployed from the last sync's result, else from the
/// newest history entry (never `status.sync.revision`, which is what Git has now, not what is
/// deployed).
fn argo_deployed<T>(app: &Value, read: impl Fn(&Value) -> Option<T>) -> Option<T> {
    app.pointer("/status/operationState/syncResult")
        .and_then(&read)
        .or_else(|| {
            app.pointer("/status/history")
                .and_then(Value::as_array)
                .and_then(|h| h.last())
                .and_then(&read)
        })
}

/// The revision an Argo CD Application last deployed (the first source's, for a multi-source one).
pub fn argo_deployed_revision(app: &Value) -> Option<String> {
    argo_deployed(app, |v| {
        v.get("revision")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .or_else(|| v.pointer("/revisions/0").and_then(Value::as_str))
            .map(str::to_string)
    })
}

/// Every revision an Argo CD Application last deployed, one per entry of `spec.sources` for a
/// multi-source Application (`revisions`), else the single `revision`.
pub fn argo_deployed_revisions(app: &Value) -> Vec<String> {
    argo_deployed(app, |v| {
        if let Some(list) = v
            .get("revisions")
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty())
        {
            return Some(
                list.iter()
                    .map(|r| r.as_str().unwrap_or_default().to_string())
                    .collect(),
            );
        }
        v.get("revision")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(|r| vec![r.to_string()])
    })
    .unwrap_or_default()
}

/// What an Argo CD Application (and its AppProject, when cached) tells the guard.
pub fn argo_owner_info(app: &Value, project: Option<&Value>) -> OwnerInfo {
    OwnerInfo {
        revision: argo_deployed_revision(app),
        service_account: project.and_then(|p| argo_destination_sa(app, p)),
    }
}

/// Argo CD sync impersonation: the AppProject's `destinationServiceAccounts` entry that matches the
/// Application's destination (server and namespace globs; first match wins).
fn argo_destination_sa(app: &Value, project: &Value) -> Option<String> {
    // No destination namespace: Argo CD uses the Application's own.
    let dest_ns = str_at(app, &["spec", "destination", "namespace"])
        .or_else(|| str_at(app, &["metadata", "namespace"]))
        .unwrap_or_default();
    let dest_server = str_at(app, &["spec", "destination", "server"]).unwrap_or_default();
    let entries = project
        .pointer("/spec/destinationServiceAccounts")?
        .as_array()?;
    entries.iter().find_map(|e| {
        let server = str_at(e, &["server"]).unwrap_or("*");
        let namespace = str_at(e, &["namespace"]).unwrap_or("*");
        let sa = str_at(e, &["defaultServiceAccount"])?;
        if !glob(server, dest_server) || !glob(namespace, dest_ns) {
            return None;
        }
        Some(match sa.split_once(':') {
            Some((ns, name)) => sa_user(ns, name),
            None => sa_user(dest_ns, sa),
        })
    })
}

/// Shell-style glob with `*` and `?`, as Argo CD matches destinations.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// What a Namespace (as JSON from the API) tells the guard.
pub fn namespace_info(ns: &Value, config: &Config) -> NamespaceInfo {
    let annotation = |k: &str| {
        ns.pointer("/metadata/annotations")
            .and_then(|a| a.get(k))
            .and_then(Value::as_str)
    };
    let managed = match serde_json::to_string(ns) {
        Ok(text) => match Object::from_json(&text) {
            Ok(obj) => !owners_of(&obj, "", "Namespace", config).is_empty(),
            Err(_) => false,
        },
        Err(_) => false,
    };
    let opened = ns
        .pointer("/metadata/managedFields")
        .and_then(crate::exception::window_opened);
    NamespaceInfo {
        enforce_all: managed && annotation(ENFORCE).is_some_and(|v| v.trim() == "all"),
        managed,
        holds_managed: false,
        mode: if managed {
            annotation(MODE).and_then(Mode::parse)
        } else {
            None
        },
        terminating: ns.pointer("/metadata/deletionTimestamp").is_some()
            || str_at(ns, &["status", "phase"]) == Some("Terminating"),
        break_glass: ns
            .pointer("/metadata/annotations")
            .and_then(|a| serde_json::from_value(a.clone()).ok())
            .and_then(|a| Window::from_annotations(&a))
            .map(|w| Window { opened, ..w }),
    }
}

/// Shortens the commit hashes in a revision for messages: `main@sha1:3f2a9c1e…` → `main@sha1:3f2a9c1`.
pub fn short_revision(revision: &str) -> String {
    let short = |sha: &str| -> String {
        if sha.len() > 7 && sha.chars().all(|c| c.is_ascii_hexdigit()) {
            sha[..7].to_string()
        } else {
            sha.to_string()
        }
    };
    for algo in ["sha1:", "sha256:"] {
        if let Some(pos) = revision.find(algo) {
            let start = pos + algo.len();
            return format!("{}{}", &revision[..start], short(&revision[start..]));
        }
    }
    short(revision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(text: &str) -> Object<'_> {
        Object::from_json(text).unwrap()
    }

    fn owner(kind: OwnerKind, ns: &str, name: &str) -> OwnerRef {
        OwnerRef {
            kind,
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn ownership_table() {
        use OwnerKind::*;
        let cfg = Config::default();
        let mut label_cfg = Config::default();
        label_cfg.argocd.label_tracking = true;
        type Case<'a> = (
            &'a str,
            &'a Config,
            &'a str,
            &'a str,
            &'a str,
            Vec<OwnerRef>,
        );
        let cases: Vec<Case> = vec![
            (
                "flux kustomization labels",
                &cfg,
                "apps",
                "Deployment",
                r#"{"metadata":{"name":"web","namespace":"prod","labels":{"kustomize.toolkit.fluxcd.io/name":"apps","kustomize.toolkit.fluxcd.io/namespace":"flux-system"}}}"#,
                vec![owner(Kustomization, "flux-system", "apps")],
            ),
            (
                "flux helmrelease labels",
                &cfg,
                "",
                "Service",
                r#"{"metadata":{"name":"web","namespace":"prod","labels":{"helm.toolkit.fluxcd.io/name":"web","helm.toolkit.fluxcd.io/namespace":"prod"}}}"#,
                vec![owner(HelmRelease, "prod", "web")],
            ),
            (
                "argo tracking id naming this object",
                &cfg,
                "apps",
                "Deployment",
                r#"{"metadata":{"name":"web","namespace":"prod","annotations":{"argocd.argoproj.io/tracking-id":"web:apps/Deployment:prod/web"}}}"#,
                vec![owner(Application, "argocd", "web")],
            ),
            (
                "argo tracking id with app namespace",
                &cfg,
                "",
                "ConfigMap",
                r#"{"metadata":{"name":"env","namespace":"prod","annotations":{"argocd.argoproj.io/tracking-id":"team-a_web:/ConfigMap:prod/env"}}}"#,
                vec![owner(Application, "team-a", "web")],
            ),
            (
                "argo tracking id copied from another object is ignored",
                &cfg,
                "",
                "ConfigMap",
                r#"{"metadata":{"name":"copy","namespace":"prod","annotations":{"argocd.argoproj.io/tracking-id":"web:/ConfigMap:prod/env"}}}"#,
                vec![],
            ),
            (
                "argo tracking id for another kind is ignored",
                &cfg,
                "",
                "Secret",
                r#"{"metadata":{"name":"env","namespace":"prod","annotations":{"argocd.argoproj.io/tracking-id":"web:/ConfigMap:prod/env"}}}"#,
                vec![],
            ),
            (
                "cluster-scoped tracking id with the app's destination namespace",
                &cfg,
                "rbac.authorization.k8s.io",
                "ClusterRole",
                r#"{"metadata":{"name":"viewer","annotations":{"argocd.argoproj.io/tracking-id":"platform:rbac.authorization.k8s.io/ClusterRole:prod/viewer"}}}"#,
                vec![owner(Application, "argocd", "platform")],
            ),
            (
                "namespaced object, tracking id of another namespace",
                &cfg,
                "",
                "ConfigMap",
                r#"{"metadata":{"name":"env","namespace":"prod","annotations":{"argocd.argoproj.io/tracking-id":"web:/ConfigMap:staging/env"}}}"#,
                vec![],
            ),
            (
                "cluster-scoped tracking id",
                &cfg,
                "rbac.authorization.k8s.io",
                "ClusterRole",
                r#"{"metadata":{"name":"viewer","annotations":{"argocd.argoproj.io/tracking-id":"platform:rbac.authorization.k8s.io/ClusterRole:/viewer"}}}"#,
                vec![owner(Application, "argocd", "platform")],
            ),
            (
                "garbage tracking id",
                &cfg,
                "",
                "ConfigMap",
                r#"{"metadata":{"name":"env","namespace":"prod","annotations":{"argocd.argoproj.io/tracking-id":"nonsense"}}}"#,
                vec![],
            ),
            (
                "instance label ignored by default (helm charts set it)",
                &cfg,
                "",
                "ConfigMap",
                r#"{"metadata":{"name":"env","namespace":"prod","labels":{"app.kubernetes.io/instance":"web"}}}"#,
                vec![],
            ),
            (
                "instance label counts when label tracking is on",
                &label_cfg,
                "",
                "ConfigMap",
                r#"{"metadata":{"name":"env","namespace":"prod","labels":{"app.kubernetes.io/instance":"web"}}}"#,
                vec![owner(Application, "argocd", "web")],
            ),
            (
                "flux label without namespace label uses the object's namespace",
                &cfg,
                "",
                "ConfigMap",
                r#"{"metadata":{"name":"env","namespace":"prod","labels":{"kustomize.toolkit.fluxcd.io/name":"apps"}}}"#,
                vec![owner(Kustomization, "prod", "apps")],
            ),
            (
                "empty flux label is no owner",
                &cfg,
                "",
                "ConfigMap",
                r#"{"metadata":{"name":"env","namespace":"prod","labels":{"kustomize.toolkit.fluxcd.io/name":""}}}"#,
                vec![],
            ),
            (
                "two owners",
                &cfg,
                "",
                "ConfigMap",
                r#"{"metadata":{"name":"env","namespace":"prod","labels":{"kustomize.toolkit.fluxcd.io/name":"apps","kustomize.toolkit.fluxcd.io/namespace":"flux-system"},"annotations":{"argocd.argoproj.io/tracking-id":"web:/ConfigMap:prod/env"}}}"#,
                vec![
                    owner(Kustomization, "flux-system", "apps"),
                    owner(Application, "argocd", "web"),
                ],
            ),
            (
                "unmanaged",
                &cfg,
                "",
                "Secret",
                r#"{"metadata":{"name":"manual","namespace":"prod"}}"#,
                vec![],
            ),
        ];
        for (what, cfg, group, kind, text, want) in cases {
            assert_eq!(owners_of(&obj(text), group, kind, cfg), want, "{what}");
        }
    }

    #[test]
    fn flux_owner_info_table() {
        let mut tenant_default = Config::default();
        tenant_default.flux.default_service_account = "default".into();
        let cfg = Config::default();
        let cases = vec![
            (
                "kustomization revision",
                &cfg,
                json!({"metadata":{"namespace":"flux-system"},"status":{"lastAppliedRevision":"main@sha1:3f2a9c1e"}}),
                OwnerInfo {
                    revision: Some("main@sha1:3f2a9c1e".into()),
                    service_account: None,
                },
            ),
            (
                "tenant service account",
                &cfg,
                json!({"metadata":{"namespace":"team-a"},"spec":{"serviceAccountName":"reconciler"}}),
                OwnerInfo {
                    revision: None,
                    service_account: Some("system:serviceaccount:team-a:reconciler".into()),
                },
            ),
            (
                "default service account from config",
                &tenant_default,
                json!({"metadata":{"namespace":"team-b"},"spec":{}}),
                OwnerInfo {
                    revision: None,
                    service_account: Some("system:serviceaccount:team-b:default".into()),
                },
            ),
            (
                "helmrelease v2 history",
                &cfg,
                json!({"metadata":{"namespace":"prod"},"status":{"history":[{"chartName":"podinfo","chartVersion":"6.5.0"}]}}),
                OwnerInfo {
                    revision: Some("chart podinfo@6.5.0".into()),
                    service_account: None,
                },
            ),
        ];
        for (what, cfg, v, want) in cases {
            assert_eq!(flux_owner_info(&v, cfg), want, "{what}");
        }
    }

    #[test]
    fn argo_revision_and_service_account() {
        let app = json!({
            "spec":{"project":"team","destination":{"server":"https://kubernetes.default.svc","namespace":"prod"}},
            "status":{"sync":{"revision":"ffffffff"},"operationState":{"syncResult":{"revision":"7d0e51f0a"}},
                      "history":[{"revision":"1111111"}]}
        });
        let project = json!({"spec":{"destinationServiceAccounts":[
            {"server":"https://other","namespace":"*","defaultServiceAccount":"nope"},
            {"server":"*","namespace":"pr*","defaultServiceAccount":"deployer"}
        ]}});
        let info = argo_owner_info(&app, Some(&project));
        assert_eq!(info.revision.as_deref(), Some("7d0e51f0a"));
        assert_eq!(
            info.service_account.as_deref(),
            Some("system:serviceaccount:prod:deployer")
        );

        let history_only =
            json!({"status":{"history":[{"revision":"aaa"},{"revisions":["bbb","ccc"]}]}});
        assert_eq!(
            argo_deployed_revision(&history_only).as_deref(),
            Some("bbb")
        );
        let sync_only = json!({"status":{"sync":{"revision":"fff"}}});
        assert_eq!(argo_deployed_revision(&sync_only), None);
        assert!(argo_deployed_revisions(&sync_only).is_empty());

        let multi = json!({"status":{"operationState":{"syncResult":{"revisions":["aaa","bbb"]}},
            "history":[{"revision":"old"}]}});
        assert_eq!(argo_deployed_revisions(&multi), ["aaa", "bbb"]);
        assert_eq!(argo_deployed_revision(&multi).as_deref(), Some("aaa"));
        assert_eq!(argo_deployed_revisions(&history_only), ["bbb", "ccc"]);
        assert_eq!(argo_deployed_revisions(&app), ["7d0e51f0a"]);

        let qualified = json!({"spec":{"destinationServiceAccounts":[
            {"server":"*","namespace":"*","defaultServiceAccount":"argocd-deploy:sync"}]}});
        assert_eq!(
            argo_owner_info(&app, Some(&qualified))
                .service_account
                .as_deref(),
            Some("system:serviceaccount:argocd-deploy:sync")
        );
        assert_eq!(argo_owner_info(&app, None).service_account, None);
    }

    #[test]
    fn glob_table() {
        for (p, t, want) in [
            ("*", "", true),
            ("*", "prod", true),
            ("pr*", "prod", true),
            ("pr*", "staging", false),
            ("p?od", "prod", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("prod", "prod", true),
            ("", "x", false),
        ] {
            assert_eq!(glob(p, t), want, "{p} ~ {t}");
        }
    }

    #[test]
    fn namespace_info_table() {
        let cfg = Config::default();
        let git = json!({"kustomize.toolkit.fluxcd.io/name":"infra","kustomize.toolkit.fluxcd.io/namespace":"flux-system"});
        let cases = vec![
            (
                "enforce all on a hand-made namespace does not count",
                json!({"metadata":{"name":"prod","annotations":{"gitops-guard.dev/enforce":"all"}}}),
                NamespaceInfo::default(),
            ),
            (
                "enforce all from Git counts",
                json!({"metadata":{"name":"prod","labels":git,"annotations":{"gitops-guard.dev/enforce":"all"}}}),
                NamespaceInfo {
                    enforce_all: true,
                    managed: true,
                    ..Default::default()
                },
            ),
            (
                "audit mode on a hand-made namespace does not count",
                json!({"metadata":{"name":"prod","annotations":{"gitops-guard.dev/mode":"audit"}}}),
                NamespaceInfo::default(),
            ),
            (
                "audit mode from Git counts",
                json!({"metadata":{"name":"prod","labels":git,"annotations":{"gitops-guard.dev/mode":"audit"}}}),
                NamespaceInfo {
                    mode: Some(Mode::Audit),
                    managed: true,
                    ..Default::default()
                },
            ),
            (
                "terminating",
                json!({"metadata":{"name":"old","deletionTimestamp":"2026-01-01T00:00:00Z"},"status":{"phase":"Terminating"}}),
                NamespaceInfo {
                    terminating: true,
                    ..Default::default()
                },
            ),
            (
                "a window is dated by the managedFields entry that wrote it",
                json!({"metadata":{"name":"incident",
                    "annotations":{"gitops-guard.dev/break-glass-until":"2026-11-21T13:00:00Z","gitops-guard.dev/break-glass-reason":"db","gitops-guard.dev/break-glass-by":"sam"},
                    "managedFields":[
                        {"manager":"kubectl-create","operation":"Update","time":"2026-11-01T00:00:00Z","fieldsV1":{"f:metadata":{"f:labels":{}}}},
                        {"manager":"kubectl-annotate","operation":"Update","time":"2026-11-21T11:00:00Z",
                         "fieldsV1":{"f:metadata":{"f:annotations":{"f:gitops-guard.dev/break-glass-until":{},"f:gitops-guard.dev/break-glass-reason":{}}}}}]}}),
                NamespaceInfo {
                    break_glass: Some(Window {
                        until: "2026-11-21T13:00:00Z".into(),
                        reason: "db".into(),
                        ticket: None,
                        by: "sam".into(),
                        opened: Some("2026-11-21T11:00:00Z".into()),
                    }),
                    ..Default::default()
                },
            ),
        ];
        for (what, v, want) in cases {
            assert_eq!(namespace_info(&v, &cfg), want, "{what}");
        }
    }

    #[test]
    fn short_revision_table() {
        for (rev, want) in [
            ("main@sha1:3f2a9c1e8b7d", "main@sha1:3f2a9c1"),
            ("sha1:3f2a9c1e8b7d", "sha1:3f2a9c1"),
            ("v1.2.0@sha1:3f2a9c1e8b7d", "v1.2.0@sha1:3f2a9c1"),
            ("7d0e51f0a1b2c3", "7d0e51f"),
            ("chart podinfo@6.5.0", "chart podinfo@6.5.0"),
            ("main@sha256:abcdef0123456789", "main@sha256:abcdef0"),
            ("short", "short"),
        ] {
            assert_eq!(short_revision(rev), want, "{rev}");
        }
    }

    #[test]
    fn owner_display() {
        assert_eq!(
            owner(OwnerKind::Kustomization, "flux-system", "apps").to_string(),
            "Flux Kustomization flux-system/apps"
        );
        assert_eq!(
            owner(OwnerKind::Application, "argocd", "web").to_string(),
            "Argo CD Application argocd/web"
        );
        assert_eq!(
            owner(OwnerKind::Namespace, "prod", "prod").to_string(),
            "namespace prod (gitops-guard.dev/enforce: all)"
        );
    }
}
