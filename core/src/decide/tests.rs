//! Every rule of [`decide`] as a table.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::*;
use crate::custody::{CustodyInfo, ObjectRef};
use crate::exception::Window;
use crate::owner::OwnerKind;

struct Cluster {
    owners: HashMap<OwnerRef, OwnerInfo>,
    namespaces: HashMap<String, NamespaceInfo>,
    custody: HashMap<ObjectRef, CustodyInfo>,
}

impl Lookup for Cluster {
    fn owner(&self, owner: &OwnerRef) -> Option<OwnerInfo> {
        self.owners.get(owner).cloned()
    }
    fn namespace(&self, name: &str) -> Option<NamespaceInfo> {
        self.namespaces.get(name).cloned()
    }
    fn custody(&self, object: &ObjectRef) -> Option<CustodyInfo> {
        self.custody.get(object).cloned()
    }
    fn readers(&self, input: &ObjectRef) -> Vec<ObjectRef> {
        self.custody
            .iter()
            .filter(|(_, i)| i.inputs.contains(input))
            .map(|(o, _)| o.clone())
            .collect()
    }
    fn holders(&self, namespace: &str) -> Vec<ObjectRef> {
        self.custody
            .iter()
            .filter(|(o, i)| {
                o.namespace == namespace || i.namespaces.iter().any(|n| n == namespace)
            })
            .map(|(o, _)| o.clone())
            .collect()
    }
}

/// An owner applied by `by` (its own labels), reading `source`.
fn applied_by(by: Option<OwnerRef>, source: Option<ObjectRef>) -> CustodyInfo {
    CustodyInfo {
        owners: by.into_iter().collect(),
        sources: source.into_iter().collect(),
        ..Default::default()
    }
}

fn oref(kind: OwnerKind, ns: &str, name: &str) -> OwnerRef {
    OwnerRef {
        kind,
        namespace: ns.into(),
        name: name.into(),
    }
}

fn cluster() -> Cluster {
    let mut owners = HashMap::new();
    owners.insert(
        oref(OwnerKind::Kustomization, "flux-system", "apps"),
        OwnerInfo {
            revision: Some("main@sha1:3f2a9c1e0b7d4c2a9f8e7d6c5b4a39281706f5e4".into()),
            service_account: None,
        },
    );
    owners.insert(
        oref(OwnerKind::Kustomization, "team-a", "apps"),
        OwnerInfo {
            revision: Some("main@sha1:aaaaaaa1111".into()),
            service_account: Some("system:serviceaccount:team-a:reconciler".into()),
        },
    );
    owners.insert(
        oref(OwnerKind::Kustomization, "team-b", "apps"),
        OwnerInfo {
            revision: None,
            service_account: Some("system:serviceaccount:team-b:reconciler".into()),
        },
    );
    owners.insert(
        oref(OwnerKind::Application, "argocd", "web"),
        OwnerInfo {
            revision: Some("7d0e51f0a1b2".into()),
            service_account: None,
        },
    );
    owners.insert(
        oref(OwnerKind::Kustomization, "team-x", "evil"),
        OwnerInfo {
            revision: None,
            service_account: Some("system:serviceaccount:team-x:reconciler".into()),
        },
    );
    let mut namespaces = HashMap::new();
    namespaces.insert("prod".to_string(), NamespaceInfo::default());
    namespaces.insert(
        "locked".to_string(),
        NamespaceInfo {
            enforce_all: true,
            ..Default::default()
        },
    );
    namespaces.insert(
        "staging".to_string(),
        NamespaceInfo {
            mode: Some(Mode::Audit),
            ..Default::default()
        },
    );
    namespaces.insert(
        "dying".to_string(),
        NamespaceInfo {
            terminating: true,
            ..Default::default()
        },
    );
    namespaces.insert(
        "incident".to_string(),
        NamespaceInfo {
            break_glass: Some(Window {
                until: "2026-11-21T13:00:00Z".into(),
                reason: "db outage".into(),
                ticket: Some("INC-7".into()),
                by: "sam".into(),
                opened: Some("2026-11-21T11:00:00Z".into()),
            }),
            ..Default::default()
        },
    );
    namespaces.insert(
        "holding".to_string(),
        NamespaceInfo {
            holds_managed: true,
            ..Default::default()
        },
    );
    // The chain of custody: flux-system/flux-system (a root) applies flux-system/apps and the
    // tenants' Kustomizations; the Application web comes from the root app platform.
    let root = oref(OwnerKind::Kustomization, "flux-system", "flux-system");
    let git = |ns: &str, name: &str| Some(ObjectRef::new("GitRepository", ns, name));
    let mut custody = HashMap::new();
    for (ns, source) in [
        ("flux-system", git("flux-system", "flux-system")),
        ("team-a", git("team-a", "team-a")),
        ("team-b", git("team-b", "team-b")),
    ] {
        custody.insert(
            ObjectRef::new("Kustomization", ns, "apps"),
            applied_by(Some(root.clone()), source),
        );
    }
    for ns in ["team-a", "team-b"] {
        custody.insert(
            ObjectRef::new("GitRepository", ns, ns),
            applied_by(Some(root.clone()), None),
        );
    }
    // Made by hand before the guard: in the cluster, not in Git.
    custody.insert(
        ObjectRef::new("Kustomization", "team-x", "evil"),
        applied_by(None, git("team-x", "evil")),
    );
    custody.insert(
        ObjectRef::new("GitRepository", "team-x", "evil"),
        applied_by(None, None),
    );
    // In Git, but reading a source made by hand.
    custody.insert(
        ObjectRef::new("Kustomization", "flux-system", "stray-source"),
        applied_by(Some(root.clone()), git("team-x", "evil")),
    );
    custody.insert(
        ObjectRef::new("Application", "argocd", "web"),
        CustodyInfo {
            owners: vec![oref(OwnerKind::Application, "argocd", "platform")],
            project: Some(ObjectRef::new("AppProject", "argocd", "default")),
            ..Default::default()
        },
    );
    custody.insert(
        ObjectRef::new("Application", "argocd", "platform"),
        applied_by(None, None),
    );
    // A HelmRelease from Git that applies the values a ConfigMap holds.
    custody.insert(
        ObjectRef::new("HelmRelease", "prod", "shop"),
        CustodyInfo {
            inputs: vec![ObjectRef::new("ConfigMap", "prod", "shop-values")],
            ..applied_by(Some(root.clone()), None)
        },
    );
    owners.insert(
        oref(OwnerKind::HelmRelease, "prod", "shop"),
        OwnerInfo {
            revision: Some("chart shop@1.2.0".into()),
            service_account: None,
        },
    );
    Cluster {
        owners,
        namespaces,
        custody,
    }
}

/// The default config with the root app `argocd/platform` among the bootstrap roots.
fn config() -> Config {
    let mut c = Config::default();
    c.custody.roots.push(crate::config::Root {
        kind: "Application".into(),
        namespace: "argocd".into(),
        name: "platform".into(),
    });
    c
}

fn now() -> jiff::Timestamp {
    "2026-11-21T12:00:00Z".parse().unwrap()
}

fn flux_labels(ns: &str) -> Value {
    json!({"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": ns})
}

fn deployment(ns: &str, labels: Value, annotations: Value, replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns, "labels": labels, "annotations": annotations,
                     "resourceVersion": "100", "generation": 3,
                     "managedFields": [{"manager": "kustomize-controller", "operation": "Apply"}]},
        "spec": {"replicas": replicas, "template": {"metadata": {"labels": {"app": "web"}},
                 "spec": {"containers": [{"name": "web", "image": image}]}}},
        "status": {"replicas": replicas}
    })
}

fn managed() -> Value {
    deployment("prod", flux_labels("flux-system"), json!({}), 2, "web:1")
}

/// One request; `object`/`old` as JSON, `None` for absent.
struct Req {
    op: &'static str,
    group: &'static str,
    kind: &'static str,
    resource: &'static str,
    sub: &'static str,
    ns: &'static str,
    name: &'static str,
    user: &'static str,
    groups: Vec<&'static str>,
    object: Option<Value>,
    old: Option<Value>,
    dry_run: bool,
}

fn req(op: &'static str, user: &'static str, old: Option<Value>, object: Option<Value>) -> Req {
    // Service accounts carry the groups the API server gives them; impostors set theirs.
    let groups = match crate::identity::service_account(user) {
        Some(("flux-system", _)) => vec![
            "system:serviceaccounts",
            "system:serviceaccounts:flux-system",
            "system:authenticated",
        ],
        Some(("argocd", _)) => vec![
            "system:serviceaccounts",
            "system:serviceaccounts:argocd",
            "system:authenticated",
        ],
        Some(("team-a", _)) => vec![
            "system:serviceaccounts",
            "system:serviceaccounts:team-a",
            "system:authenticated",
        ],
        Some(("team-b", _)) => vec![
            "system:serviceaccounts",
            "system:serviceaccounts:team-b",
            "system:authenticated",
        ],
        Some(("kube-system", _)) => vec![
            "system:serviceaccounts",
            "system:serviceaccounts:kube-system",
            "system:authenticated",
        ],
        _ => vec!["system:authenticated"],
    };
    Req {
        op,
        group: "apps",
        kind: "Deployment",
        resource: "deployments",
        sub: "",
        ns: "prod",
        name: "web",
        user,
        groups,
        object,
        old,
        dry_run: false,
    }
}

impl Req {
    fn ns(mut self, ns: &'static str) -> Req {
        self.ns = ns;
        self
    }
    fn groups(mut self, g: &[&'static str]) -> Req {
        self.groups = g.to_vec();
        self
    }
    fn kind(mut self, group: &'static str, kind: &'static str, resource: &'static str) -> Req {
        self.group = group;
        self.kind = kind;
        self.resource = resource;
        self
    }
    fn sub(mut self, sub: &'static str) -> Req {
        self.sub = sub;
        self
    }
    fn dry(mut self) -> Req {
        self.dry_run = true;
        self
    }
    fn review(&self) -> String {
        json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "uid-1",
                "kind": {"group": if self.sub == "scale" { "autoscaling" } else { self.group }, "version": "v1",
                         "kind": if self.sub == "scale" { "Scale" } else { self.kind }},
                "resource": {"group": self.group, "version": "v1", "resource": self.resource},
                "subResource": self.sub, "name": self.name, "namespace": self.ns, "operation": self.op,
                "userInfo": {"username": self.user, "groups": self.groups},
                "object": self.object, "oldObject": self.old, "dryRun": self.dry_run
            }
        })
        .to_string()
    }
}

fn run_with(r: &Req, parent: Option<&Value>, config: &Config) -> Decision {
    let body = r.review();
    let request = AdmissionRequest::decode(body.as_bytes()).unwrap();
    let parent_text = parent.map(|p| p.to_string());
    let parent_obj = parent_text
        .as_deref()
        .map(|t| Object::from_json(t).unwrap());
    decide(&request, parent_obj.as_ref(), config, &cluster(), now())
}

fn run(r: &Req) -> Decision {
    run_with(r, None, &config())
}

const ANA: &str = "ana";
const KC: &str = "system:serviceaccount:flux-system:kustomize-controller";
const HC: &str = "system:serviceaccount:flux-system:helm-controller";
const ARGO: &str = "system:serviceaccount:argocd:argocd-application-controller";
const ARGO_SERVER: &str = "system:serviceaccount:argocd:argocd-server";
const TENANT_A: &str = "system:serviceaccount:team-a:reconciler";
const TENANT_B: &str = "system:serviceaccount:team-b:reconciler";

fn with_image(mut v: Value, image: &str) -> Value {
    v["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
    v
}

fn with_replicas(mut v: Value, n: i64) -> Value {
    v["spec"]["replicas"] = json!(n);
    v
}

fn with_annotation(mut v: Value, k: &str, val: &str) -> Value {
    v["metadata"]["annotations"][k] = json!(val);
    v
}

fn argo_managed() -> Value {
    deployment(
        "prod",
        json!({}),
        json!({"argocd.argoproj.io/tracking-id": "web:apps/Deployment:prod/web"}),
        2,
        "web:1",
    )
}

/// The denial of `managed()`'s image changed (`with_image`): the way forward is `set image`.
const DENY_WEB: &str = "deployment/web in prod is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1).\nChange it in Git instead: kubectl gitops set image deployment/web web=web:2 -n prod\n(no forge token? add --no-pr to push a branch only, or --local to commit only)";

#[test]
fn who_may_change_a_managed_object() {
    let update = |user, old: Value| {
        let new = with_image(old.clone(), "web:2");
        req("UPDATE", user, Some(old), Some(new))
    };
    let cases: Vec<(&str, Req, Verdict, Reason)> = vec![
        ("a person editing a Flux object", update(ANA, managed()), Verdict::Deny, Reason::Managed),
        ("Flux's kustomize-controller", update(KC, managed()), Verdict::Allow, Reason::Agent),
        ("Flux's helm-controller", update(HC, managed()), Verdict::Allow, Reason::Agent),
        ("Argo CD on a Flux object", update(ARGO, managed()), Verdict::Deny, Reason::Managed),
        ("Argo CD's controller", update(ARGO, argo_managed()), Verdict::Allow, Reason::Agent),
        ("argocd-server is a human path", update(ARGO_SERVER, argo_managed()), Verdict::Deny, Reason::Managed),
        ("Flux on an Argo object", update(KC, argo_managed()), Verdict::Deny, Reason::Managed),
        (
            "tenant account on its own owner's object",
            update(TENANT_A, deployment("team-a", flux_labels("team-a"), json!({}), 1, "a:1")).kind("apps", "Deployment", "deployments").ns("team-a"),
            Verdict::Allow,
            Reason::Agent,
        ),
        (
            "tenant account on another tenant's object",
            update(TENANT_B, deployment("team-a", flux_labels("team-a"), json!({}), 1, "a:1")).ns("team-a"),
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "tenant moving another tenant's object to itself",
            req(
                "UPDATE",
                TENANT_B,
                Some(deployment("team-a", flux_labels("team-a"), json!({}), 1, "a:1")),
                Some(deployment("team-a", flux_labels("team-b"), json!({}), 1, "a:1")),
            )
            .ns("team-a"),
            Verdict::Deny,
            Reason::Managed,
        ),
        ("the API server itself", update("system:apiserver", managed()), Verdict::Allow, Reason::System),
        (
            "the garbage collector",
            req("DELETE", "system:serviceaccount:kube-system:generic-garbage-collector", Some(managed()), None),
            Verdict::Allow,
            Reason::System,
        ),
        (
            "a node",
            update("system:node:n1", managed()).groups(&["system:nodes"]),
            Verdict::Allow,
            Reason::System,
        ),
        (
            "a person editing an unmanaged object",
            update(ANA, deployment("prod", json!({}), json!({}), 1, "x:1")),
            Verdict::Allow,
            Reason::Unmanaged,
        ),
        (
            "a status write",
            update(ANA, managed()).sub("status"),
            Verdict::Allow,
            Reason::Status,
        ),
        (
            "another subresource (eviction)",
            req("CREATE", ANA, None, Some(json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web"}}))).sub("eviction"),
            Verdict::Allow,
            Reason::Subresource,
        ),
        (
            "exec is not a change",
            req("CONNECT", ANA, None, None),
            Verdict::Allow,
            Reason::Connect,
        ),
    ];
    for (what, r, verdict, reason) in cases {
        let d = run(&r);
        assert_eq!((d.verdict, d.reason), (verdict, reason), "{what}: {d:?}");
    }
}

#[test]
fn denial_message_names_owner_revision_and_command() {
    const FLUX: &str = "deployment/web in prod is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1).";
    const HINT: &str =
        "(no forge token? add --no-pr to push a branch only, or --local to commit only)";
    let change = |command: &str| {
        format!("{FLUX}\nChange it in Git instead: kubectl gitops {command}\n{HINT}")
    };
    let relabelled = {
        let mut v = managed();
        v["metadata"]["labels"]["team"] = json!("a");
        v
    };
    let mut relabelled_again = relabelled.clone();
    relabelled_again["metadata"]["labels"]["team"] = json!("b");
    relabelled_again["metadata"]["labels"]["tier"] = json!("front");
    let mut unlabelled = relabelled.clone();
    unlabelled["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("team");
    let ns = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "prod", "labels": flux_labels("flux-system")}});
    let mut namespace = req(
        "UPDATE",
        ANA,
        Some(ns.clone()),
        Some(with_annotation(ns, "note", "x")),
    )
    .kind("", "Namespace", "namespaces");
    namespace.name = "prod";
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "viewer", "labels": flux_labels("flux-system")}, "rules": []});
    let mut cluster_role = req(
        "UPDATE",
        ANA,
        Some(role.clone()),
        Some(with_annotation(role.clone(), "a", "b")),
    )
    .kind("rbac.authorization.k8s.io", "ClusterRole", "clusterroles")
    .ns("");
    cluster_role.name = "viewer";
    let mut edited_role = role.clone();
    edited_role["rules"] = json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]);
    let mut cluster_role_edit = req("UPDATE", ANA, Some(role.clone()), Some(edited_role))
        .kind("rbac.authorization.k8s.io", "ClusterRole", "clusterroles")
        .ns("");
    cluster_role_edit.name = "viewer";
    let helm = deployment(
        "prod",
        json!({"helm.toolkit.fluxcd.io/name": "web", "helm.toolkit.fluxcd.io/namespace": "prod"}),
        json!({}),
        1,
        "x",
    );
    let image_and_replicas = with_replicas(with_image(managed(), "web:2"), 9);
    let cases: Vec<(&str, Req, String)> = vec![
        (
            "kubectl set image",
            req(
                "UPDATE",
                ANA,
                Some(managed()),
                Some(with_image(managed(), "web:2")),
            ),
            change("set image deployment/web web=web:2 -n prod"),
        ),
        (
            "replicas in an edit",
            req(
                "UPDATE",
                ANA,
                Some(managed()),
                Some(with_replicas(managed(), 3)),
            ),
            change("scale deployment/web --replicas=3 -n prod"),
        ),
        (
            "kubectl label",
            req("UPDATE", ANA, Some(managed()), Some(relabelled.clone())),
            change("label deployment/web team=a -n prod"),
        ),
        (
            "kubectl label --overwrite",
            req(
                "UPDATE",
                ANA,
                Some(relabelled.clone()),
                Some(relabelled_again),
            ),
            change("label deployment/web team=b tier=front --overwrite -n prod"),
        ),
        (
            "kubectl label KEY-",
            req("UPDATE", ANA, Some(relabelled.clone()), Some(unlabelled)),
            change("label deployment/web team- -n prod"),
        ),
        (
            "kubectl annotate",
            req(
                "UPDATE",
                ANA,
                Some(managed()),
                Some(with_annotation(managed(), "note", "x")),
            ),
            change("annotate deployment/web note=x -n prod"),
        ),
        (
            "stripping the ownership label is no label command",
            req(
                "UPDATE",
                ANA,
                Some(managed()),
                Some({
                    let mut v = managed();
                    v["metadata"]["labels"]
                        .as_object_mut()
                        .unwrap()
                        .remove("kustomize.toolkit.fluxcd.io/name");
                    v
                }),
            ),
            change("edit deployment/web -n prod"),
        ),
        (
            "more than one kind of change",
            req("UPDATE", ANA, Some(managed()), Some(image_and_replicas)),
            change("edit deployment/web -n prod"),
        ),
        (
            "an image and a label",
            req(
                "UPDATE",
                ANA,
                Some(managed()),
                Some(with_image(relabelled.clone(), "web:2")),
            ),
            change("edit deployment/web -n prod"),
        ),
        (
            "a label and an annotation",
            req(
                "UPDATE",
                ANA,
                Some(managed()),
                Some(with_annotation(relabelled.clone(), "note", "x")),
            ),
            change("edit deployment/web -n prod"),
        ),
        (
            "the Pod template's labels, not its image",
            req(
                "UPDATE",
                ANA,
                Some(managed()),
                Some({
                    let mut v = managed();
                    v["spec"]["template"]["metadata"]["labels"]["extra"] = json!("x");
                    v
                }),
            ),
            change("edit deployment/web -n prod"),
        ),
        (
            "a Namespace (its name is the request's namespace)",
            namespace,
            format!(
                "namespace/prod is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1).\nChange it in Git instead: kubectl gitops annotate namespace/prod note=x\n{HINT}"
            ),
        ),
        (
            "cluster-scoped: no -n",
            cluster_role,
            format!(
                "clusterrole/viewer is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1).\nChange it in Git instead: kubectl gitops annotate clusterrole/viewer a=b\n{HINT}"
            ),
        ),
        (
            "cluster-scoped edit",
            cluster_role_edit,
            format!(
                "clusterrole/viewer is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1).\nChange it in Git instead: kubectl gitops edit clusterrole/viewer\n{HINT}"
            ),
        ),
        (
            "kubectl delete",
            req("DELETE", ANA, Some(managed()), None),
            format!(
                "{FLUX}\nRemove it from Git instead, and the agent prunes it (kubectl gitops trace deployment/web -n prod names its file)"
            ),
        ),
        (
            "a create claiming the owner",
            req("CREATE", ANA, None, Some(managed())),
            format!(
                "{FLUX}\nAdd it to Git instead: put its manifest where Flux Kustomization flux-system/apps applies from (kubectl gitops trace kustomization/apps -n flux-system names its source and path), commit and push"
            ),
        ),
        (
            "Argo CD's UI: an Application",
            req(
                "UPDATE",
                ARGO_SERVER,
                Some(argo_managed()),
                Some(with_replicas(argo_managed(), 5)),
            ),
            format!(
                "deployment/web in prod is managed by Argo CD Application argocd/web (7d0e51f).\nChange it in Git instead: kubectl gitops scale deployment/web --replicas=5 -n prod\n{HINT}"
            ),
        ),
        (
            "rendered by Helm (an owner the cache does not know yet: no revision)",
            req(
                "UPDATE",
                ANA,
                Some(helm.clone()),
                Some(with_image(helm, "y")),
            ),
            format!(
                "deployment/web in prod is managed by Flux HelmRelease prod/web.\nIt is rendered by Helm from Flux HelmRelease prod/web: change the release's values in Git instead: kubectl gitops edit helmrelease/web -n prod\n{HINT}"
            ),
        ),
    ];
    for (name, r, want) in cases {
        let d = run(&r);
        assert_eq!(d.message.as_deref(), Some(want.as_str()), "{name}");
    }
    let d = run(&req(
        "UPDATE",
        ANA,
        Some(managed()),
        Some(with_image(managed(), "web:2")),
    ));
    assert_eq!(
        d.owner,
        Some(oref(OwnerKind::Kustomization, "flux-system", "apps"))
    );
}

#[test]
fn which_object_says_it_is_managed() {
    let bare = deployment("prod", json!({}), json!({}), 2, "web:1");
    let cases: Vec<(&str, Req, Verdict)> = vec![
        (
            "stripping the labels does not escape",
            req("UPDATE", ANA, Some(managed()), Some(bare.clone())),
            Verdict::Deny,
        ),
        (
            "adding the labels by hand is forgery",
            req("UPDATE", ANA, Some(bare.clone()), Some(managed())),
            Verdict::Deny,
        ),
        (
            "creating with forged labels",
            req("CREATE", ANA, None, Some(managed())),
            Verdict::Deny,
        ),
        (
            "creating with the agent's identity",
            req("CREATE", KC, None, Some(managed())),
            Verdict::Allow,
        ),
        (
            "creating something unmanaged",
            req("CREATE", ANA, None, Some(bare.clone())),
            Verdict::Allow,
        ),
        (
            "deleting a managed object",
            req("DELETE", ANA, Some(managed()), None),
            Verdict::Deny,
        ),
        (
            "deleting an unmanaged object",
            req("DELETE", ANA, Some(bare.clone()), None),
            Verdict::Allow,
        ),
        (
            "a tracking id copied onto another object does not count",
            req(
                "UPDATE",
                ANA,
                Some(deployment(
                    "prod",
                    json!({}),
                    json!({"argocd.argoproj.io/tracking-id": "web:apps/Deployment:prod/other"}),
                    1,
                    "x",
                )),
                Some(deployment(
                    "prod",
                    json!({}),
                    json!({"argocd.argoproj.io/tracking-id": "web:apps/Deployment:prod/other"}),
                    2,
                    "x",
                )),
            ),
            Verdict::Allow,
        ),
    ];
    for (what, r, verdict) in cases {
        let d = run(&r);
        assert_eq!(d.verdict, verdict, "{what}: {d:?}");
    }
}

#[test]
fn deletion_and_terminating_namespaces() {
    let mut deleting = managed();
    deleting["metadata"]["deletionTimestamp"] = json!("2026-11-21T11:00:00Z");
    let mut finalizers_removed = deleting.clone();
    finalizers_removed["metadata"]["finalizers"] = json!([]);
    let cases: Vec<(&str, Req, Verdict, Reason)> = vec![
        (
            "delete of an object already being deleted",
            req("DELETE", ANA, Some(deleting.clone()), None),
            Verdict::Allow,
            Reason::Terminating,
        ),
        (
            "finalizer removal on an object being deleted",
            req("UPDATE", ANA, Some(deleting), Some(finalizers_removed)),
            Verdict::Allow,
            Reason::Terminating,
        ),
        (
            "delete inside a terminating namespace",
            req(
                "DELETE",
                ANA,
                Some(deployment(
                    "dying",
                    flux_labels("flux-system"),
                    json!({}),
                    1,
                    "x",
                )),
                None,
            )
            .ns("dying"),
            Verdict::Allow,
            Reason::Terminating,
        ),
        (
            "update inside a terminating namespace is still guarded",
            {
                let o = deployment("dying", flux_labels("flux-system"), json!({}), 1, "x");
                req("UPDATE", ANA, Some(o.clone()), Some(with_replicas(o, 3))).ns("dying")
            },
            Verdict::Deny,
            Reason::Managed,
        ),
    ];
    for (what, r, verdict, reason) in cases {
        let d = run(&r);
        assert_eq!((d.verdict, d.reason), (verdict, reason), "{what}: {d:?}");
    }
}

#[test]
fn enforce_all_namespaces() {
    let plain = |ns| deployment(ns, json!({}), json!({}), 1, "x:1");
    let event = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "locked"}});
    let cases: Vec<(&str, Req, Verdict, Reason)> = vec![
        (
            "unlabelled object in an enforce-all namespace",
            req(
                "UPDATE",
                ANA,
                Some(plain("locked")),
                Some(with_replicas(plain("locked"), 4)),
            )
            .ns("locked"),
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "the agent there",
            req(
                "UPDATE",
                KC,
                Some(plain("locked")),
                Some(with_replicas(plain("locked"), 4)),
            )
            .ns("locked"),
            Verdict::Allow,
            Reason::Agent,
        ),
        (
            "Argo CD there",
            req("CREATE", ARGO, None, Some(plain("locked"))).ns("locked"),
            Verdict::Allow,
            Reason::Agent,
        ),
        (
            "a tenant account there is not every owner's agent",
            req("CREATE", TENANT_A, None, Some(plain("locked"))).ns("locked"),
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "events are records, not configuration",
            req("CREATE", ANA, None, Some(event))
                .kind("", "Event", "events")
                .ns("locked"),
            Verdict::Allow,
            Reason::Unmanaged,
        ),
        (
            "elsewhere nothing changes",
            req(
                "UPDATE",
                ANA,
                Some(plain("prod")),
                Some(with_replicas(plain("prod"), 4)),
            ),
            Verdict::Allow,
            Reason::Unmanaged,
        ),
    ];
    for (what, r, verdict, reason) in cases {
        let d = run(&r);
        assert_eq!((d.verdict, d.reason), (verdict, reason), "{what}: {d:?}");
    }
    let d = run(&req("DELETE", ANA, Some(plain("locked")), None).ns("locked"));
    assert_eq!(
        d.message.as_deref(),
        Some(
            "deployment/web in locked is managed by namespace locked (gitops-guard.dev/enforce: all).\nRemove it from Git instead, and the agent prunes it (kubectl gitops trace deployment/web -n locked names its file)"
        )
    );
}

#[test]
fn operational_changes_pass() {
    let ks = json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "web", "namespace": "prod", "labels": flux_labels("flux-system"), "resourceVersion": "1"},
        "spec": {"interval": "5m", "path": "./apps", "suspend": false}});
    let ks_req = |new: Value| {
        req("UPDATE", ANA, Some(ks.clone()), Some(new)).kind(
            "kustomize.toolkit.fluxcd.io",
            "Kustomization",
            "kustomizations",
        )
    };
    let mut suspended = ks.clone();
    suspended["spec"]["suspend"] = json!(true);
    let mut suspended_and_path = suspended.clone();
    suspended_and_path["spec"]["path"] = json!("./other");
    let app = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "web", "namespace": "argocd", "annotations": {"argocd.argoproj.io/tracking-id": "root:argoproj.io/Application:argocd/web"}},
        "spec": {"project": "default"}});
    let app_req = |new: Value| {
        let mut r = req("UPDATE", ARGO_SERVER, Some(app.clone()), Some(new))
            .kind("argoproj.io", "Application", "applications")
            .ns("argocd");
        r.name = "web";
        r
    };
    let mut synced = app.clone();
    synced["operation"] = json!({"sync": {"revision": "HEAD"}, "initiatedBy": {"username": "ana"}});
    let mut restarted = managed();
    restarted["spec"]["template"]["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/restartedAt": "2026-11-21T12:00:00Z"});
    let mut rv_only = managed();
    rv_only["metadata"]["resourceVersion"] = json!("101");
    rv_only["status"]["replicas"] = json!(7);

    let defaults = config();
    let mut no_ops = config();
    no_ops.operational.flux_reconcile = false;
    no_ops.operational.rollout_restart = false;

    let cases: Vec<(&str, Req, &Config, Verdict, Reason)> = vec![
        (
            "flux reconcile",
            ks_req(with_annotation(
                ks.clone(),
                "reconcile.fluxcd.io/requestedAt",
                "now",
            )),
            &defaults,
            Verdict::Allow,
            Reason::Operational,
        ),
        (
            "flux reconcile --force",
            ks_req(with_annotation(
                with_annotation(ks.clone(), "reconcile.fluxcd.io/requestedAt", "now"),
                "reconcile.fluxcd.io/forceAt",
                "now",
            )),
            &defaults,
            Verdict::Allow,
            Reason::Operational,
        ),
        (
            "flux reconcile when turned off",
            ks_req(with_annotation(
                ks.clone(),
                "reconcile.fluxcd.io/requestedAt",
                "now",
            )),
            &no_ops,
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "flux suspend",
            ks_req(suspended),
            &defaults,
            Verdict::Allow,
            Reason::Operational,
        ),
        (
            "suspend plus a real change",
            ks_req(suspended_and_path),
            &defaults,
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "argo refresh",
            app_req(with_annotation(
                app.clone(),
                "argocd.argoproj.io/refresh",
                "hard",
            )),
            &defaults,
            Verdict::Allow,
            Reason::Operational,
        ),
        (
            "argo sync from the UI",
            app_req(synced),
            &defaults,
            Verdict::Allow,
            Reason::Operational,
        ),
        (
            "argo UI edit of the spec",
            app_req({
                let mut a = app.clone();
                a["spec"]["project"] = json!("other");
                a
            }),
            &defaults,
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "kubectl rollout restart",
            req("UPDATE", ANA, Some(managed()), Some(restarted.clone())),
            &defaults,
            Verdict::Allow,
            Reason::Operational,
        ),
        (
            "rollout restart when turned off",
            req("UPDATE", ANA, Some(managed()), Some(restarted)),
            &no_ops,
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "reconcile annotation on a Deployment is configuration",
            req(
                "UPDATE",
                ANA,
                Some(managed()),
                Some(with_annotation(
                    managed(),
                    "reconcile.fluxcd.io/requestedAt",
                    "now",
                )),
            ),
            &defaults,
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "only server-maintained fields differ",
            req("UPDATE", ANA, Some(managed()), Some(rv_only)),
            &defaults,
            Verdict::Allow,
            Reason::Operational,
        ),
        (
            "a label change",
            req(
                "UPDATE",
                ANA,
                Some(managed()),
                Some({
                    let mut m = managed();
                    m["metadata"]["labels"]["team"] = json!("x");
                    m
                }),
            ),
            &defaults,
            Verdict::Deny,
            Reason::Managed,
        ),
    ];
    for (what, r, cfg, verdict, reason) in cases {
        let d = run_with(&r, None, cfg);
        assert_eq!((d.verdict, d.reason), (verdict, reason), "{what}: {d:?}");
    }
}

#[test]
fn dry_run_and_audit_mode() {
    let change = |ns: &'static str| {
        let o = deployment(ns, flux_labels("flux-system"), json!({}), 2, "web:1");
        req("UPDATE", ANA, Some(o.clone()), Some(with_image(o, "web:2"))).ns(ns)
    };
    let d = run(&change("prod").dry());
    assert_eq!((d.verdict, d.reason), (Verdict::Warn, Reason::DryRun));
    assert!(d.allowed());
    assert_eq!(
        d.warnings,
        vec![format!(
            "dry-run only: the real change would be denied: {}",
            DENY_WEB.replace('\n', " ")
        )]
    );
    assert!(d.audit_annotations.is_empty());

    let audit = Config {
        mode: Mode::Audit,
        ..Default::default()
    };
    let d = run_with(&change("prod"), None, &audit);
    assert_eq!((d.verdict, d.reason), (Verdict::Warn, Reason::Audit));
    assert!(d.warnings[0].starts_with("audit mode: this change would be denied: deployment/web in prod is managed by Flux Kustomization flux-system/apps"));
    assert_eq!(
        d.audit_annotations[0],
        ("decision".to_string(), "would-deny".to_string())
    );

    // Per namespace (the namespace's mode annotation came from Git).
    let d = run(&change("staging"));
    assert_eq!((d.verdict, d.reason), (Verdict::Warn, Reason::Audit));
    // A namespace in enforce mode overrides a global audit mode.
    let mut enforce_ns = cluster();
    enforce_ns.namespaces.insert(
        "prod".into(),
        NamespaceInfo {
            mode: Some(Mode::Enforce),
            ..Default::default()
        },
    );
    let body = change("prod").review();
    let r = AdmissionRequest::decode(body.as_bytes()).unwrap();
    assert_eq!(
        decide(&r, None, &audit, &enforce_ns, now()).verdict,
        Verdict::Deny
    );
    // An allowed dry run carries no warning.
    let d = run(&req(
        "UPDATE",
        KC,
        Some(managed()),
        Some(with_image(managed(), "web:2")),
    )
    .dry());
    assert_eq!((d.verdict, d.warnings.len()), (Verdict::Allow, 0));
}

#[test]
fn scale_looks_at_the_parent() {
    let scale = |n: i64| {
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": "web", "namespace": "prod", "resourceVersion": "100"},
        "spec": {"replicas": n}, "status": {"replicas": 2}})
    };
    let r = req("UPDATE", ANA, Some(scale(2)), Some(scale(5))).sub("scale");
    let d = run_with(&r, Some(&managed()), &config());
    assert_eq!((d.verdict, d.reason), (Verdict::Deny, Reason::Managed));
    assert_eq!(
        d.message.as_deref(),
        Some(
            DENY_WEB
                .replace(
                    "set image deployment/web web=web:2",
                    "scale deployment/web --replicas=5"
                )
                .as_str()
        )
    );

    let d = run_with(
        &r,
        Some(&deployment("prod", json!({}), json!({}), 2, "x")),
        &config(),
    );
    assert_eq!((d.verdict, d.reason), (Verdict::Allow, Reason::Unmanaged));
    let d = run_with(&r, None, &config());
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Allow, Reason::Unmanaged),
        "parent gone"
    );

    let hpa = req(
        "UPDATE",
        "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
        Some(scale(2)),
        Some(scale(5)),
    )
    .sub("scale");
    assert_eq!(
        run_with(&hpa, Some(&managed()), &config()).reason,
        Reason::System
    );

    let allow = with_annotation(managed(), "gitops-guard.dev/allow-fields", "spec.replicas");
    let d = run_with(&r, Some(&allow), &config());
    assert_eq!((d.verdict, d.reason), (Verdict::Allow, Reason::AllowFields));
}

#[test]
fn exceptions_decided_in_git() {
    let allow_replicas =
        with_annotation(managed(), "gitops-guard.dev/allow-fields", "spec.replicas");
    let manual = with_annotation(managed(), "gitops-guard.dev/allow", "manual");
    let cases: Vec<(&str, Req, Verdict, Reason)> = vec![
        (
            "allowed field",
            req(
                "UPDATE",
                ANA,
                Some(allow_replicas.clone()),
                Some(with_replicas(allow_replicas.clone(), 6)),
            ),
            Verdict::Allow,
            Reason::AllowFields,
        ),
        (
            "other field",
            req(
                "UPDATE",
                ANA,
                Some(allow_replicas.clone()),
                Some(with_image(allow_replicas.clone(), "web:2")),
            ),
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "mixed",
            req(
                "UPDATE",
                ANA,
                Some(allow_replicas.clone()),
                Some(with_image(
                    with_replicas(allow_replicas.clone(), 6),
                    "web:2",
                )),
            ),
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "allow-fields added by hand",
            req(
                "UPDATE",
                ANA,
                Some(managed()),
                Some(with_replicas(allow_replicas.clone(), 6)),
            ),
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "allow-fields widened by hand",
            req(
                "UPDATE",
                ANA,
                Some(allow_replicas.clone()),
                Some(with_annotation(
                    allow_replicas.clone(),
                    "gitops-guard.dev/allow-fields",
                    "spec",
                )),
            ),
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "allow-fields: metadata.annotations cannot unlock the guard's own",
            {
                let wide = with_annotation(
                    managed(),
                    "gitops-guard.dev/allow-fields",
                    "metadata.annotations",
                );
                req(
                    "UPDATE",
                    ANA,
                    Some(wide.clone()),
                    Some(with_annotation(wide, "gitops-guard.dev/allow", "manual")),
                )
            },
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "allow-fields does not cover delete",
            req("DELETE", ANA, Some(allow_replicas.clone()), None),
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "allow: manual on the live object",
            req(
                "UPDATE",
                ANA,
                Some(manual.clone()),
                Some(with_image(manual.clone(), "web:2")),
            ),
            Verdict::Allow,
            Reason::AllowManual,
        ),
        (
            "allow: manual covers delete",
            req("DELETE", ANA, Some(manual.clone()), None),
            Verdict::Allow,
            Reason::AllowManual,
        ),
        (
            "allow: manual added by hand",
            req(
                "UPDATE",
                ANA,
                Some(managed()),
                Some(with_image(manual.clone(), "web:2")),
            ),
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "allow: manual forged on create",
            req("CREATE", ANA, None, Some(manual)),
            Verdict::Deny,
            Reason::Managed,
        ),
    ];
    for (what, r, verdict, reason) in cases {
        let d = run(&r);
        assert_eq!((d.verdict, d.reason), (verdict, reason), "{what}: {d:?}");
    }
    let d = run(&req(
        "UPDATE",
        ANA,
        Some(allow_replicas.clone()),
        Some(with_image(with_replicas(allow_replicas, 6), "web:2")),
    ));
    assert_eq!(
        d.message.as_deref(),
        Some(format!("{}\nOnly spec.replicas may be changed by hand here (gitops-guard.dev/allow-fields); this change also touches: spec.template.spec.containers[0].image", DENY_WEB.replace("set image deployment/web web=web:2", "edit deployment/web")).as_str())
    );
    let bad = with_annotation(managed(), "gitops-guard.dev/allow-fields", "spec..replicas");
    let d = run(&req(
        "UPDATE",
        ANA,
        Some(bad.clone()),
        Some(with_replicas(bad, 6)),
    ));
    assert_eq!(d.verdict, Verdict::Deny);
    assert!(
        d.message
            .unwrap()
            .contains("annotation is invalid and was ignored")
    );
}

#[test]
fn break_glass_windows() {
    let mut cfg = config();
    cfg.break_glass.groups = vec!["sre".into()];
    cfg.break_glass.max_duration = jiff::SignedDuration::from_hours(2);
    let window = |v: Value, until: &str, reason: &str, by: &str| {
        let mut v = with_annotation(v, "gitops-guard.dev/break-glass-until", until);
        v = with_annotation(v, "gitops-guard.dev/break-glass-reason", reason);
        with_annotation(v, "gitops-guard.dev/break-glass-by", by)
    };
    // A window at rest is dated by the API server's record of the write that opened it.
    let dated = |mut v: Value, opened: &str| {
        v["metadata"]["managedFields"]
            .as_array_mut()
            .unwrap()
            .push(json!({"manager": "kubectl-annotate", "operation": "Update", "time": opened,
                "fieldsV1": {"f:metadata": {"f:annotations": {"f:gitops-guard.dev/break-glass-until": {}}}}}));
        v
    };
    let open = dated(
        window(managed(), "2026-11-21T13:00:00Z", "db outage", "sam"),
        "2026-11-21T11:30:00Z",
    );
    let expired = dated(
        window(managed(), "2026-11-21T11:59:00Z", "db outage", "sam"),
        "2026-11-21T11:00:00Z",
    );
    // Written while the guard was away: until is far beyond opening + maxDuration.
    let forged = dated(
        window(managed(), "2099-01-01T00:00:00Z", "db outage", "sam"),
        "2026-11-21T11:30:00Z",
    );
    // No record of when it was opened.
    let undated = window(managed(), "2026-11-21T13:00:00Z", "db outage", "sam");
    let sre = &["sre", "system:authenticated"][..];
    let (open_parent, expired_parent) = (open.clone(), expired.clone());
    let cases: Vec<(&str, Req, Verdict, Reason)> = vec![
        (
            "a window longer than maxDuration from its opening does not count",
            req(
                "UPDATE",
                "kim",
                Some(forged.clone()),
                Some(with_image(forged.clone(), "web:hotfix")),
            )
            .groups(sre),
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "a window nobody can date does not count",
            req(
                "UPDATE",
                "kim",
                Some(undated.clone()),
                Some(with_image(undated.clone(), "web:hotfix")),
            )
            .groups(sre),
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "a window does not cover stripping ownership",
            req(
                "UPDATE",
                "kim",
                Some(open.clone()),
                Some({
                    let mut v = open.clone();
                    v["metadata"]["labels"] = json!({});
                    v
                }),
            )
            .groups(sre),
            Verdict::Deny,
            Reason::BreakGlassRefused,
        ),
        (
            "a window does not cover allow: manual",
            req(
                "UPDATE",
                "kim",
                Some(open.clone()),
                Some(with_annotation(
                    open.clone(),
                    "gitops-guard.dev/allow",
                    "manual",
                )),
            )
            .groups(sre),
            Verdict::Deny,
            Reason::BreakGlassRefused,
        ),
        (
            "a window does not cover finalizers",
            req(
                "UPDATE",
                "kim",
                Some(open.clone()),
                Some({
                    let mut v = open.clone();
                    v["metadata"]["finalizers"] = json!(["example.com/keep"]);
                    v
                }),
            )
            .groups(sre),
            Verdict::Deny,
            Reason::BreakGlassRefused,
        ),
        (
            "a managed object created with a window of its own is checked like an opening",
            req(
                "CREATE",
                ANA,
                None,
                Some(window(managed(), "2099-01-01T00:00:00Z", "x", ANA)),
            ),
            Verdict::Deny,
            Reason::BreakGlassRefused,
        ),
        (
            "a member cannot bring a window along with a new managed object",
            req(
                "CREATE",
                "sam",
                None,
                Some(window(managed(), "2026-11-21T13:00:00Z", "x", "sam")),
            )
            .groups(sre),
            Verdict::Deny,
            Reason::BreakGlassRefused,
        ),
        (
            "a member opens a window on a new namespace",
            {
                let ns =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fresh"}});
                let mut r = req(
                    "CREATE",
                    "sam",
                    None,
                    Some(window(ns, "2026-11-21T13:00:00Z", "x", "sam")),
                )
                .kind("", "Namespace", "namespaces")
                .ns("fresh")
                .groups(sre);
                r.name = "fresh";
                r
            },
            Verdict::Warn,
            Reason::BreakGlass,
        ),
        (
            "a namespace created with a forged window until 2099",
            {
                let ns =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fresh"}});
                let mut r = req(
                    "CREATE",
                    ANA,
                    None,
                    Some(window(ns, "2099-01-01T00:00:00Z", "x", ANA)),
                )
                .kind("", "Namespace", "namespaces")
                .ns("fresh");
                r.name = "fresh";
                r
            },
            Verdict::Deny,
            Reason::BreakGlassRefused,
        ),
        (
            "a member opens a window",
            req(
                "UPDATE",
                "sam",
                Some(managed()),
                // The API server dates the entry that writes the window: now.
                Some(dated(
                    window(managed(), "2026-11-21T13:00:00Z", "db outage", "sam"),
                    "2026-11-21T12:00:00Z",
                )),
            )
            .groups(sre),
            Verdict::Warn,
            Reason::BreakGlass,
        ),
        (
            "a non-member opens a window",
            req(
                "UPDATE",
                ANA,
                Some(managed()),
                Some(window(managed(), "2026-11-21T13:00:00Z", "x", ANA)),
            ),
            Verdict::Deny,
            Reason::BreakGlassRefused,
        ),
        (
            "a window beyond the maximum",
            req(
                "UPDATE",
                "sam",
                Some(managed()),
                Some(window(managed(), "2026-11-21T14:00:01Z", "x", "sam")),
            )
            .groups(sre),
            Verdict::Deny,
            Reason::BreakGlassRefused,
        ),
        (
            "a window without a reason",
            req(
                "UPDATE",
                "sam",
                Some(managed()),
                Some(window(managed(), "2026-11-21T13:00:00Z", "", "sam")),
            )
            .groups(sre),
            Verdict::Deny,
            Reason::BreakGlassRefused,
        ),
        (
            "a window opened in someone else's name",
            req(
                "UPDATE",
                "sam",
                Some(managed()),
                Some(window(managed(), "2026-11-21T13:00:00Z", "x", "ana")),
            )
            .groups(sre),
            Verdict::Deny,
            Reason::BreakGlassRefused,
        ),
        (
            "a non-member extends a window",
            req(
                "UPDATE",
                ANA,
                Some(open.clone()),
                Some(window(
                    managed(),
                    "2026-11-21T13:30:00Z",
                    "db outage",
                    "sam",
                )),
            ),
            Verdict::Deny,
            Reason::BreakGlassRefused,
        ),
        (
            "a member extends within the maximum",
            req(
                "UPDATE",
                "sam",
                Some(open.clone()),
                Some(window(
                    managed(),
                    "2026-11-21T13:30:00Z",
                    "db outage",
                    "sam",
                )),
            )
            .groups(sre),
            Verdict::Warn,
            Reason::BreakGlass,
        ),
        (
            "a member changes inside the window",
            req(
                "UPDATE",
                "kim",
                Some(open.clone()),
                Some(with_image(open.clone(), "web:hotfix")),
            )
            .groups(sre),
            Verdict::Warn,
            Reason::BreakGlass,
        ),
        (
            "a member deletes inside the window",
            req("DELETE", "kim", Some(open.clone()), None).groups(sre),
            Verdict::Warn,
            Reason::BreakGlass,
        ),
        (
            "a non-member inside the window",
            req(
                "UPDATE",
                ANA,
                Some(open.clone()),
                Some(with_image(open.clone(), "web:hotfix")),
            ),
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "after the window",
            req(
                "UPDATE",
                "kim",
                Some(expired.clone()),
                Some(with_image(expired, "web:hotfix")),
            )
            .groups(sre),
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "a member closes the window",
            req("UPDATE", "sam", Some(open.clone()), Some(managed())).groups(sre),
            Verdict::Warn,
            Reason::BreakGlass,
        ),
        (
            "a member closes the window early, keeping its record (its end moved to now)",
            req(
                "UPDATE",
                "kim",
                Some(open.clone()),
                Some(window(
                    managed(),
                    "2026-11-21T12:00:00Z",
                    "db outage",
                    "sam",
                )),
            )
            .groups(sre),
            Verdict::Warn,
            Reason::BreakGlass,
        ),
        (
            "a member opens a window and strips the owner's labels in the same request",
            req(
                "UPDATE",
                "sam",
                Some(managed()),
                Some({
                    let mut v = window(managed(), "2026-11-21T13:00:00Z", "db outage", "sam");
                    v["metadata"]["labels"] = json!({});
                    v
                }),
            )
            .groups(sre),
            Verdict::Deny,
            Reason::BreakGlassRefused,
        ),
        (
            "a member closes a window and changes the image in the same request",
            req(
                "UPDATE",
                "kim",
                Some(open.clone()),
                Some(with_image(
                    window(managed(), "2026-11-21T12:00:00Z", "db outage", "sam"),
                    "evil:1",
                )),
            )
            .groups(sre),
            Verdict::Deny,
            Reason::BreakGlassRefused,
        ),
        (
            "a 'close' of a long-expired window that rewrites its opener and reason",
            req(
                "UPDATE",
                "kim",
                Some(window(
                    managed(),
                    "2020-01-01T00:00:00Z",
                    "db outage",
                    "sam",
                )),
                Some(window(
                    managed(),
                    "2019-01-01T00:00:00Z",
                    "planned",
                    "alice",
                )),
            )
            .groups(sre),
            Verdict::Deny,
            Reason::BreakGlassRefused,
        ),
        (
            "a close that ends the window before it was opened (hiding what was done under it)",
            req(
                "UPDATE",
                "kim",
                Some(open.clone()),
                Some(window(
                    managed(),
                    "2026-11-21T11:00:00Z",
                    "db outage",
                    "sam",
                )),
            )
            .groups(sre),
            Verdict::Deny,
            Reason::BreakGlassRefused,
        ),
        (
            "a close dated a few seconds ahead of the guard's clock (skew) still closes",
            req(
                "UPDATE",
                "kim",
                Some(open.clone()),
                Some(window(
                    managed(),
                    "2026-11-21T12:00:10Z",
                    "db outage",
                    "sam",
                )),
            )
            .groups(sre),
            Verdict::Warn,
            Reason::BreakGlass,
        ),
        (
            "a 'close' that moves an expired window's end later is an opening, in the opener's name only",
            req(
                "UPDATE",
                "kim",
                Some(dated(
                    window(managed(), "2026-11-21T11:59:00Z", "db outage", "sam"),
                    "2026-11-21T11:00:00Z",
                )),
                Some(window(
                    managed(),
                    "2026-11-21T12:00:10Z",
                    "db outage",
                    "sam",
                )),
            )
            .groups(sre),
            Verdict::Deny,
            Reason::BreakGlassRefused,
        ),
        (
            "a non-member closes the window early",
            req(
                "UPDATE",
                ANA,
                Some(open.clone()),
                Some(window(
                    managed(),
                    "2026-11-21T12:00:00Z",
                    "db outage",
                    "sam",
                )),
            ),
            Verdict::Deny,
            Reason::BreakGlassRefused,
        ),
        (
            "a member writes a window that ended, where there was none (a false record)",
            req(
                "UPDATE",
                "kim",
                Some(managed()),
                Some(window(
                    managed(),
                    "2026-11-21T11:00:00Z",
                    "db outage",
                    "kim",
                )),
            )
            .groups(sre),
            Verdict::Deny,
            Reason::BreakGlassRefused,
        ),
        (
            "a namespace-wide window lets a member through",
            {
                let o = deployment("incident", flux_labels("flux-system"), json!({}), 1, "x");
                req("UPDATE", "kim", Some(o.clone()), Some(with_replicas(o, 3)))
                    .ns("incident")
                    .groups(sre)
            },
            Verdict::Warn,
            Reason::BreakGlass,
        ),
        (
            "a non-member opens a window on an unmanaged namespace",
            {
                let ns =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}});
                let mut r = req(
                    "UPDATE",
                    ANA,
                    Some(ns.clone()),
                    Some(window(ns, "2026-11-21T13:00:00Z", "x", ANA)),
                )
                .kind("", "Namespace", "namespaces")
                .ns("prod");
                r.name = "prod";
                r
            },
            Verdict::Deny,
            Reason::BreakGlassRefused,
        ),
        (
            "a member opens a window on a namespace",
            {
                let ns =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}});
                let mut r = req(
                    "UPDATE",
                    "sam",
                    Some(ns.clone()),
                    Some(window(ns, "2026-11-21T13:00:00Z", "x", "sam")),
                )
                .kind("", "Namespace", "namespaces")
                .ns("prod")
                .groups(sre);
                r.name = "prod";
                r
            },
            Verdict::Warn,
            Reason::BreakGlass,
        ),
    ];
    for (what, r, verdict, reason) in cases {
        let d = run_with(&r, None, &cfg);
        assert_eq!((d.verdict, d.reason), (verdict, reason), "{what}: {d:?}");
        if reason == Reason::BreakGlass {
            assert!(
                d.event.is_some(),
                "{what}: a break-glass change is recorded as an Event"
            );
            assert_eq!(d.audit_annotations[0].0, "break-glass", "{what}");
        }
    }
    let d = run_with(
        &req(
            "UPDATE",
            "kim",
            Some(open.clone()),
            Some(with_image(open, "web:hotfix")),
        )
        .groups(sre),
        None,
        &cfg,
    );
    assert_eq!(
        d.warnings,
        vec!["break-glass: deployment/web in prod changed by kim under the window opened by sam until 2026-11-21T13:00:00Z (db outage); it is managed by Flux Kustomization flux-system/apps: bring the change back into Git".to_string()]
    );
    // `kubectl scale` inside the window: the Scale object has no annotations, the window is on
    // the parent the guard reads.
    let scale = |n: i64| {
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": "web", "namespace": "prod", "resourceVersion": "100"},
        "spec": {"replicas": n}, "status": {"replicas": 2}})
    };
    let scaled = req("UPDATE", "kim", Some(scale(2)), Some(scale(5)))
        .sub("scale")
        .groups(sre);
    let d = run_with(&scaled, Some(&open_parent), &cfg);
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Warn, Reason::BreakGlass),
        "{d:?}"
    );
    assert!(
        d.event.is_some(),
        "a break-glass scale is recorded as an Event"
    );
    let d = run_with(&scaled, Some(&expired_parent), &cfg);
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Deny, Reason::Managed),
        "{d:?}"
    );
    // Off by default: nobody can open a window.
    let d = run(&req(
        "UPDATE",
        "sam",
        Some(managed()),
        Some(window(managed(), "2026-11-21T13:00:00Z", "x", "sam")),
    )
    .groups(sre));
    assert_eq!(d.reason, Reason::BreakGlassRefused);
    assert!(d.message.unwrap().contains("break-glass is off"));
}

#[test]
fn extra_agents_from_config() {
    let mut cfg = config();
    cfg.agents.users = vec!["ci-deployer".into()];
    let r = req(
        "UPDATE",
        "ci-deployer",
        Some(managed()),
        Some(with_image(managed(), "web:2")),
    );
    assert_eq!(run_with(&r, None, &cfg).reason, Reason::Agent);
    assert_eq!(run(&r).reason, Reason::Managed);
}

#[test]
fn response_encoding() {
    let d = run(&req(
        "UPDATE",
        ANA,
        Some(managed()),
        Some(with_image(managed(), "web:2")),
    ));
    let out: Value = serde_json::from_slice(&crate::review::encode_response(
        "admission.k8s.io/v1",
        "uid-1",
        &d,
    ))
    .unwrap();
    assert_eq!(
        out,
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {
            "uid": "uid-1", "allowed": false,
            "status": {"code": 403, "reason": "Forbidden", "message": DENY_WEB}}})
    );
    let audit = Config {
        mode: Mode::Audit,
        ..Default::default()
    };
    let d = run_with(
        &req(
            "UPDATE",
            ANA,
            Some(managed()),
            Some(with_image(managed(), "web:2")),
        ),
        None,
        &audit,
    );
    let out: Value = serde_json::from_slice(&crate::review::encode_response(
        "admission.k8s.io/v1",
        "u",
        &d,
    ))
    .unwrap();
    assert_eq!(out["response"]["allowed"], json!(true));
    assert_eq!(
        out["response"]["auditAnnotations"]["decision"],
        json!("would-deny")
    );
    assert!(
        out["response"]["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("audit mode:")
    );
    assert!(out["response"].get("status").is_none());
}

fn source(ns: &str, name: &str, labels: Value, spec: Value) -> Value {
    json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": spec, "status": {"artifact": {"digest": "sha256:aaa"}}})
}

fn kustomization(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec})
}

fn application(spec: Value, operation: Value, status: Value) -> Value {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "hand", "namespace": "argocd"},
        "spec": spec, "operation": operation, "status": status})
}

/// Labelled as Flux's kustomize-controller applies it for flux-system/apps.
fn flux_applied(mut v: Value) -> Value {
    v["metadata"]["labels"] = flux_labels("flux-system");
    v
}

fn owned_by(ns: &str, name: &str) -> Value {
    deployment(
        "prod",
        json!({"kustomize.toolkit.fluxcd.io/name": name, "kustomize.toolkit.fluxcd.io/namespace": ns}),
        json!({}),
        2,
        "web:1",
    )
}

fn namespace_object(name: &'static str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

fn on_namespace(mut r: Req, name: &'static str) -> Req {
    r = r.kind("", "Namespace", "namespaces").ns(name);
    r.name = name;
    r
}

const SC: &str = "system:serviceaccount:flux-system:source-controller";

/// The agent's record in managedFields, as the API server keeps it.
fn flux_entry() -> Value {
    json!({"manager": "kustomize-controller", "operation": "Apply", "time": "2026-11-20T09:00:00Z",
        "fieldsV1": {"f:spec": {"f:replicas": {}}}})
}

fn recorded() -> Value {
    let mut v = managed();
    v["metadata"]["managedFields"] = json!([flux_entry()]);
    v
}

fn restarted(managed_fields: Value) -> Value {
    let mut v = recorded();
    v["spec"]["template"]["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/restartedAt": "2026-11-21T12:00:00Z"});
    v["metadata"]["managedFields"] = managed_fields;
    v
}

#[test]
fn custody_rules() {
    let flux_source = || {
        source(
            "team-x",
            "evil",
            json!({}),
            json!({"url": "https://git.example/evil", "ref": {"branch": "main"}}),
        )
    };
    let git = (
        "source.toolkit.fluxcd.io",
        "GitRepository",
        "gitrepositories",
    );
    let ks = (
        "kustomize.toolkit.fluxcd.io",
        "Kustomization",
        "kustomizations",
    );
    let app = ("argoproj.io", "Application", "applications");
    let with_kind = |r: Req,
                     (g, k, res): (&'static str, &'static str, &'static str),
                     ns: &'static str,
                     name: &'static str| {
        let mut r = r.kind(g, k, res).ns(ns);
        r.name = name;
        r
    };
    let hand_ks = kustomization(
        "team-x",
        "evil",
        json!({"path": "./", "sourceRef": {"kind": "GitRepository", "name": "evil"}}),
    );
    let root = kustomization(
        "flux-system",
        "flux-system",
        json!({"path": "./clusters/prod", "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}),
    );
    let declared = json!({"project": "default", "source": {"repoURL": "https://git.example/app.git", "targetRevision": "main"},
        "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop"}});
    let app_old = application(
        declared.clone(),
        Value::Null,
        json!({"sync": {"status": "Synced"}}),
    );
    let sync = |op: Value| application(declared.clone(), op, json!({"sync": {"status": "Synced"}}));
    let mut with_exception = managed();
    with_exception["metadata"]["annotations"] =
        json!({"gitops-guard.dev/allow-fields": "metadata.labels"});
    let cases: Vec<(&str, Req, Verdict, Reason)> = vec![
        (
            "a person creates a source",
            with_kind(
                req("CREATE", ANA, None, Some(flux_source())),
                git,
                "team-x",
                "evil",
            ),
            Verdict::Deny,
            Reason::Custody,
        ),
        (
            "source-controller creates a source",
            with_kind(
                req("CREATE", SC, None, Some(flux_source())),
                git,
                "team-x",
                "evil",
            ),
            Verdict::Allow,
            Reason::Agent,
        ),
        (
            "Argo CD is not Flux's agent",
            with_kind(
                req(
                    "UPDATE",
                    ARGO,
                    Some(hand_ks.clone()),
                    Some(kustomization("team-x", "evil", json!({"path": "./x"}))),
                ),
                ks,
                "team-x",
                "evil",
            ),
            Verdict::Deny,
            Reason::Custody,
        ),
        (
            "a person creates the bootstrap root",
            with_kind(
                req("CREATE", ANA, None, Some(root.clone())),
                ks,
                "flux-system",
                "flux-system",
            ),
            Verdict::Warn,
            Reason::Bootstrap,
        ),
        (
            "a person repoints the bootstrap root",
            with_kind(
                req(
                    "UPDATE",
                    ANA,
                    Some(root.clone()),
                    Some(kustomization(
                        "flux-system",
                        "flux-system",
                        json!({"path": "./evil"}),
                    )),
                ),
                ks,
                "flux-system",
                "flux-system",
            ),
            Verdict::Deny,
            Reason::Custody,
        ),
        (
            "a person renames a hand-made owner's tenant",
            with_kind(
                req(
                    "UPDATE",
                    ANA,
                    Some(hand_ks.clone()),
                    Some({
                        let mut v = hand_ks.clone();
                        v["spec"]["serviceAccountName"] = json!("admin");
                        v
                    }),
                ),
                ks,
                "team-x",
                "evil",
            ),
            Verdict::Deny,
            Reason::Custody,
        ),
        (
            "a person suspends an owner",
            with_kind(
                req(
                    "UPDATE",
                    ANA,
                    Some(hand_ks.clone()),
                    Some({
                        let mut v = hand_ks.clone();
                        v["spec"]["suspend"] = json!(true);
                        v
                    }),
                ),
                ks,
                "team-x",
                "evil",
            ),
            Verdict::Allow,
            Reason::Operational,
        ),
        (
            "a person deletes an owner",
            with_kind(
                req("DELETE", ANA, Some(hand_ks.clone()), None),
                ks,
                "team-x",
                "evil",
            ),
            Verdict::Deny,
            Reason::Custody,
        ),
        (
            "a dry run of a denied owner change",
            with_kind(
                req("CREATE", ANA, None, Some(flux_source())),
                git,
                "team-x",
                "evil",
            )
            .dry(),
            Verdict::Warn,
            Reason::DryRun,
        ),
        (
            "a person writes a source's status",
            with_kind(
                req(
                    "UPDATE",
                    ANA,
                    Some(flux_source()),
                    Some({
                        let mut v = flux_source();
                        v["status"]["artifact"]["digest"] = json!("sha256:evil");
                        v
                    }),
                ),
                git,
                "team-x",
                "evil",
            )
            .sub("status"),
            Verdict::Deny,
            Reason::AgentStatus,
        ),
        (
            "source-controller writes a source's status",
            with_kind(
                req("UPDATE", SC, Some(flux_source()), Some(flux_source())),
                git,
                "team-x",
                "evil",
            )
            .sub("status"),
            Verdict::Allow,
            Reason::Status,
        ),
        (
            "a person writes a Deployment's status",
            req("UPDATE", ANA, Some(managed()), Some(managed())).sub("status"),
            Verdict::Allow,
            Reason::Status,
        ),
        (
            "a person creates an Application",
            with_kind(
                req("CREATE", ANA, None, Some(app_old.clone())),
                app,
                "argocd",
                "hand",
            ),
            Verdict::Deny,
            Reason::Custody,
        ),
        (
            "a sync as declared",
            with_kind(
                req(
                    "UPDATE",
                    ARGO_SERVER,
                    Some(app_old.clone()),
                    Some(sync(
                        json!({"sync": {"revision": "main"}, "initiatedBy": {"username": "ana"}}),
                    )),
                ),
                app,
                "argocd",
                "hand",
            ),
            Verdict::Allow,
            Reason::Operational,
        ),
        (
            "a sync with inline manifests",
            with_kind(
                req(
                    "UPDATE",
                    ARGO_SERVER,
                    Some(app_old.clone()),
                    Some(sync(
                        json!({"sync": {"revision": "main", "manifests": ["kind: Pod"]}}),
                    )),
                ),
                app,
                "argocd",
                "hand",
            ),
            Verdict::Deny,
            Reason::ArgoOperation,
        ),
        (
            "a sync of another revision",
            with_kind(
                req(
                    "UPDATE",
                    ARGO_SERVER,
                    Some(app_old.clone()),
                    Some(sync(json!({"sync": {"revision": "evil"}}))),
                ),
                app,
                "argocd",
                "hand",
            ),
            Verdict::Deny,
            Reason::ArgoOperation,
        ),
        (
            "a person forges an Application's status",
            with_kind(
                req(
                    "UPDATE",
                    ANA,
                    Some(app_old.clone()),
                    Some(application(
                        declared.clone(),
                        Value::Null,
                        json!({"sync": {"status": "Synced", "revision": "evil"}}),
                    )),
                ),
                app,
                "argocd",
                "hand",
            ),
            Verdict::Deny,
            Reason::Custody,
        ),
        (
            "the application controller writes its status",
            with_kind(
                req(
                    "UPDATE",
                    ARGO,
                    Some(app_old.clone()),
                    Some(application(
                        declared.clone(),
                        Value::Null,
                        json!({"sync": {"status": "OutOfSync"}}),
                    )),
                ),
                app,
                "argocd",
                "hand",
            ),
            Verdict::Allow,
            Reason::Agent,
        ),
        (
            "Argo CD writes the status of an Application that Flux applies",
            with_kind(
                req(
                    "UPDATE",
                    ARGO,
                    Some(flux_applied(app_old.clone())),
                    Some(flux_applied(application(
                        declared.clone(),
                        Value::Null,
                        json!({"sync": {"status": "OutOfSync"}}),
                    ))),
                ),
                app,
                "argocd",
                "hand",
            ),
            Verdict::Allow,
            Reason::Agent,
        ),
        (
            "Argo CD changes the spec of an Application that Flux applies",
            with_kind(
                req(
                    "UPDATE",
                    ARGO,
                    Some(flux_applied(app_old.clone())),
                    Some(flux_applied(application(
                        json!({"project": "default"}),
                        Value::Null,
                        json!({"sync": {"status": "Synced"}}),
                    ))),
                ),
                app,
                "argocd",
                "hand",
            ),
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "a person writes the status of an Application that Flux applies",
            with_kind(
                req(
                    "UPDATE",
                    ANA,
                    Some(flux_applied(app_old.clone())),
                    Some(flux_applied(application(
                        declared.clone(),
                        Value::Null,
                        json!({"sync": {"status": "OutOfSync"}}),
                    ))),
                ),
                app,
                "argocd",
                "hand",
            ),
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "the agent creates for an owner from Git",
            req("CREATE", KC, None, Some(managed())),
            Verdict::Allow,
            Reason::Agent,
        ),
        (
            "the agent creates for a hand-made owner",
            req("CREATE", KC, None, Some(owned_by("team-x", "evil"))),
            Verdict::Deny,
            Reason::Unrooted,
        ),
        (
            "the agent creates for an owner reading a hand-made source",
            req(
                "CREATE",
                KC,
                None,
                Some(owned_by("flux-system", "stray-source")),
            ),
            Verdict::Deny,
            Reason::Unrooted,
        ),
        (
            "the agent moves an object between owners from Git",
            req(
                "UPDATE",
                KC,
                Some(managed()),
                Some(owned_by("team-a", "apps")),
            ),
            Verdict::Allow,
            Reason::Agent,
        ),
        (
            "the agent moves an object to a hand-made owner",
            req(
                "UPDATE",
                KC,
                Some(managed()),
                Some(owned_by("team-x", "evil")),
            ),
            Verdict::Deny,
            Reason::Unrooted,
        ),
        (
            "the agent keeps an object it had before the guard",
            req(
                "UPDATE",
                KC,
                Some(owned_by("team-x", "evil")),
                Some(with_image(owned_by("team-x", "evil"), "web:2")),
            ),
            Verdict::Allow,
            Reason::Agent,
        ),
        (
            "a tenant of a hand-made owner",
            req(
                "UPDATE",
                "system:serviceaccount:team-x:reconciler",
                Some(owned_by("team-x", "evil")),
                Some(with_image(owned_by("team-x", "evil"), "web:2")),
            ),
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "a tenant of an owner from Git",
            req(
                "UPDATE",
                TENANT_A,
                Some(owned_by("team-a", "apps")),
                Some(with_image(owned_by("team-a", "apps"), "web:2")),
            ),
            Verdict::Allow,
            Reason::Agent,
        ),
        (
            "a user named like kustomize-controller",
            req(
                "UPDATE",
                KC,
                Some(managed()),
                Some(with_image(managed(), "web:2")),
            )
            .groups(&["system:authenticated"]),
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "a person deletes a namespace that holds managed objects",
            on_namespace(
                req(
                    "DELETE",
                    ANA,
                    Some(namespace_object("holding", json!({}))),
                    None,
                ),
                "holding",
            ),
            Verdict::Deny,
            Reason::HoldsManaged,
        ),
        (
            "the agent deletes it",
            on_namespace(
                req(
                    "DELETE",
                    KC,
                    Some(namespace_object("holding", json!({}))),
                    None,
                ),
                "holding",
            ),
            Verdict::Allow,
            Reason::Unmanaged,
        ),
        (
            "a person deletes an unrelated namespace",
            on_namespace(
                req(
                    "DELETE",
                    ANA,
                    Some(namespace_object("prod", json!({}))),
                    None,
                ),
                "prod",
            ),
            Verdict::Allow,
            Reason::Unmanaged,
        ),
        (
            "a namespace labelled as kube-system",
            on_namespace(
                req(
                    "UPDATE",
                    ANA,
                    Some(namespace_object(
                        "prod",
                        json!({"kubernetes.io/metadata.name": "prod"}),
                    )),
                    Some(namespace_object(
                        "prod",
                        json!({"kubernetes.io/metadata.name": "kube-system"}),
                    )),
                ),
                "prod",
            ),
            Verdict::Deny,
            Reason::NamespaceLabel,
        ),
        (
            "a namespace labelled with its own name",
            on_namespace(
                req(
                    "CREATE",
                    ANA,
                    None,
                    Some(namespace_object(
                        "fresh",
                        json!({"kubernetes.io/metadata.name": "fresh"}),
                    )),
                ),
                "fresh",
            ),
            Verdict::Allow,
            Reason::Unmanaged,
        ),
        (
            "an excluded namespace",
            req(
                "UPDATE",
                ANA,
                Some(managed()),
                Some(with_image(managed(), "web:2")),
            )
            .ns("kube-system"),
            Verdict::Allow,
            Reason::Excluded,
        ),
        (
            "allow-fields does not cover ownership",
            req(
                "UPDATE",
                ANA,
                Some(with_exception.clone()),
                Some({
                    let mut v = with_exception.clone();
                    v["metadata"]["labels"] = json!({});
                    v
                }),
            ),
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "allow-fields covers an ordinary label",
            req(
                "UPDATE",
                ANA,
                Some(with_exception.clone()),
                Some({
                    let mut v = with_exception.clone();
                    v["metadata"]["labels"]["team"] = json!("b");
                    v
                }),
            ),
            Verdict::Allow,
            Reason::AllowFields,
        ),
        (
            "a rollout restart that clears managedFields",
            req("UPDATE", ANA, Some(recorded()), Some(restarted(json!([])))),
            Verdict::Deny,
            Reason::ManagedFields,
        ),
        (
            "a rollout restart",
            req(
                "UPDATE",
                ANA,
                Some(recorded()),
                Some(restarted(
                    json!([flux_entry(), {"manager": "kubectl-rollout", "operation": "Update",
                    "time": "2026-11-21T12:00:00Z", "fieldsV1": {"f:spec": {"f:template": {"f:metadata": {"f:annotations": {"f:kubectl.kubernetes.io/restartedAt": {}}}}}}}]),
                )),
            ),
            Verdict::Allow,
            Reason::Operational,
        ),
    ];
    for (what, r, verdict, reason) in cases {
        let d = run(&r);
        assert_eq!((d.verdict, d.reason), (verdict, reason), "{what}: {d:?}");
    }
}

/// What an owner applies from a ConfigMap or Secret nobody applies is guarded through the owner.
#[test]
fn inputs_an_owner_reads() {
    let values = |name: &str, image: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "prod"},
            "data": {"values.yaml": format!("image: {image}\n")}})
    };
    let on = |r: Req, name: &'static str| {
        let mut r = r.kind("", "ConfigMap", "configmaps");
        r.name = name;
        r
    };
    let cases: Vec<(&str, Req, Verdict, Reason)> = vec![
        (
            "a person edits the values a HelmRelease applies",
            on(
                req(
                    "UPDATE",
                    ANA,
                    Some(values("shop-values", "web:1")),
                    Some(values("shop-values", "evil:1")),
                ),
                "shop-values",
            ),
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "a person deletes them",
            on(
                req("DELETE", ANA, Some(values("shop-values", "web:1")), None),
                "shop-values",
            ),
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "a person creates them while they are missing",
            on(
                req("CREATE", ANA, None, Some(values("shop-values", "evil:1"))),
                "shop-values",
            ),
            Verdict::Deny,
            Reason::Managed,
        ),
        (
            "helm-controller's side of Flux may write them",
            on(
                req(
                    "UPDATE",
                    HC,
                    Some(values("shop-values", "web:1")),
                    Some(values("shop-values", "web:2")),
                ),
                "shop-values",
            ),
            Verdict::Allow,
            Reason::Agent,
        ),
        (
            "a ConfigMap nobody reads",
            on(
                req(
                    "UPDATE",
                    ANA,
                    Some(values("notes", "a")),
                    Some(values("notes", "b")),
                ),
                "notes",
            ),
            Verdict::Allow,
            Reason::Unmanaged,
        ),
    ];
    for (what, r, verdict, reason) in cases {
        let d = run(&r);
        assert_eq!((d.verdict, d.reason), (verdict, reason), "{what}: {d:?}");
        if verdict == Verdict::Deny {
            let m = d.message.unwrap();
            assert!(
                m.contains("Flux HelmRelease prod/shop applies what it holds"),
                "{what}: {m}"
            );
        }
    }
}

#[test]
fn custody_messages_say_why_and_what_to_do() {
    let git = source("team-x", "evil", json!({}), json!({}));
    let mut r = req("CREATE", ANA, None, Some(git))
        .kind(
            "source.toolkit.fluxcd.io",
            "GitRepository",
            "gitrepositories",
        )
        .ns("team-x");
    r.name = "evil";
    let m = run(&r).message.unwrap();
    assert!(m.starts_with("gitrepository/evil in team-x is a Flux source: it decides what Flux applies, so only Flux may create, change or delete it"), "{m}");
    assert!(
        m.contains("the repository that Kustomization flux-system/flux-system syncs"),
        "{m}"
    );

    let m = run(&req("CREATE", KC, None, Some(owned_by("team-x", "evil"))))
        .message
        .unwrap();
    assert!(
        m.contains("Flux Kustomization team-x/evil does not come from Git"),
        "{m}"
    );
    assert!(
        m.contains("kubectl get kustomizations.kustomize.toolkit.fluxcd.io/evil -n team-x -o yaml"),
        "{m}"
    );

    let impostor = req(
        "UPDATE",
        KC,
        Some(managed()),
        Some(with_image(managed(), "web:2")),
    )
    .groups(&["system:authenticated"]);
    let m = run(&impostor).message.unwrap();
    assert!(
        m.contains("is named like a service account but has not its groups"),
        "{m}"
    );

    let mut with_exception = managed();
    with_exception["metadata"]["annotations"] =
        json!({"gitops-guard.dev/allow-fields": "metadata.labels"});
    let mut stripped = with_exception.clone();
    stripped["metadata"]["labels"] = json!({});
    let m = run(&req("UPDATE", ANA, Some(with_exception), Some(stripped)))
        .message
        .unwrap();
    assert!(
        m.contains("this change also touches: metadata.labels['kustomize.toolkit.fluxcd.io/name']"),
        "{m}"
    );
    assert!(
        m.contains("never covered by allow-fields or break-glass"),
        "{m}"
    );
}

/// [`run_with`] on a cluster of the test's own, optionally with `userInfo.extra` (what the API
/// server adds for a token minted by TokenRequest or bound to a Pod).
fn run_on(r: &Req, cluster: &Cluster, extra: Option<Value>) -> Decision {
    let mut review: Value = serde_json::from_str(&r.review()).unwrap();
    if let Some(extra) = extra {
        review["request"]["userInfo"]["extra"] = extra;
    }
    let body = review.to_string();
    let request = AdmissionRequest::decode(body.as_bytes()).unwrap();
    decide(&request, None, &config(), cluster, now())
}

fn named(mut r: Req, name: &'static str) -> Req {
    r.name = name;
    r
}

/// Security review: every route tried, one case each: holes and wrongful blocks found in review
/// (now closed), and `HOLDS` cases that pin what was checked.
#[test]
fn attacks_found_in_review() {
    let failed: std::cell::RefCell<Vec<String>> = std::cell::RefCell::new(Vec::new());
    let check = |what: &str, d: Decision, want: (Verdict, Reason)| {
        if (d.verdict, d.reason) != want {
            failed.borrow_mut().push(format!(
                "{what}: got {:?}/{:?}, want {:?}/{:?} ({})",
                d.verdict,
                d.reason,
                want.0,
                want.1,
                d.message.as_deref().unwrap_or("").replace('\n', " ")
            ));
        }
    };
    let app_kind = ("argoproj.io", "Application", "applications");
    let on_app = |r: Req| {
        named(
            r.kind(app_kind.0, app_kind.1, app_kind.2).ns("argocd"),
            "hand",
        )
    };

    // Was a hole: Argo CD writes the app's destination namespace into the tracking id of
    // cluster-scoped objects (argo-cd controller/state.go isSelfReferencedObj: "Cluster scoped
    // objects carry the app's destination namespace in the tracking annotation"); owner.rs
    // argo_tracking_app demands id namespace == "" so every Argo-managed ClusterRole,
    // ClusterRoleBinding, CRD, webhook config or Namespace is "unmanaged" and anyone edits it.
    let role = |rules: Value| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "reader", "annotations":
                {"argocd.argoproj.io/tracking-id": "web:rbac.authorization.k8s.io/ClusterRole:prod/reader"}},
            "rules": rules})
    };
    let r = named(
        req(
            "UPDATE",
            ANA,
            Some(role(
                json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
            )),
            Some(role(
                json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
            )),
        )
        .kind("rbac.authorization.k8s.io", "ClusterRole", "clusterroles")
        .ns(""),
        "reader",
    );
    check(
        "Argo-managed ClusterRole (tracking id with destination namespace) widened by a person",
        run(&r),
        (Verdict::Deny, Reason::Managed),
    );
    // Was a hole, same root cause on a Namespace: not `managed`, so its `gitops-guard.dev/enforce:
    // all` and `mode` (from Git) are ignored, and its Pod Security labels are anyone's.
    let argo_ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop",
        "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
        "annotations": {"argocd.argoproj.io/tracking-id": "web:/Namespace:shop/shop",
                        "gitops-guard.dev/enforce": "all"}}});
    let info = crate::owner::namespace_info(&argo_ns, &config());
    if !(info.managed && info.enforce_all) {
        failed.borrow_mut().push(format!(
            "Argo-managed Namespace with destination namespace in its tracking id: {info:?}, want managed and enforce_all"
        ));
    }

    // kube-system is a premise (README, "What the guard protects, and what it assumes"): a token
    // minted there for a controller is Kubernetes itself.
    // HOLDS: the same name without the service-account groups is nobody.
    check(
        "a static-token user named like the garbage collector",
        run(&req(
            "UPDATE",
            "system:serviceaccount:kube-system:generic-garbage-collector",
            Some(managed()),
            Some(with_image(managed(), "evil:1")),
        )
        .groups(&["system:authenticated"])),
        (Verdict::Deny, Reason::Managed),
    );

    // Was a hole: a tenant reconciler account lives in the tenant's namespace, which is no premise
    // (and the default `edit`/`admin` roles grant pods, serviceaccounts/token and impersonate on
    // serviceaccounts there). A token minted for it, or a Pod running as it, is the tenant agent.
    // Flux and Argo CD impersonate with no `extra`; a TokenRequest token carries credential-id,
    // a Pod's token pod-name.
    let tenant_obj = || owned_by("team-a", "apps");
    let r = req(
        "UPDATE",
        TENANT_A,
        Some(tenant_obj()),
        Some(with_image(tenant_obj(), "evil:1")),
    );
    check(
        "a minted token of the tenant reconciler changes the tenant's image",
        run_on(
            &r,
            &cluster(),
            Some(json!({"authentication.kubernetes.io/credential-id": ["JTI=0b7d4c2a"]})),
        ),
        (Verdict::Deny, Reason::Managed),
    );
    check(
        "a Pod running as the tenant reconciler changes the tenant's image",
        run_on(
            &r,
            &cluster(),
            Some(json!({"authentication.kubernetes.io/pod-name": ["shell"],
                        "authentication.kubernetes.io/pod-uid": ["1f1e"]})),
        ),
        (Verdict::Deny, Reason::Managed),
    );
    // HOLDS: the impersonated tenant (no extra) stays the agent.
    check(
        "Flux impersonating the tenant",
        run_on(&r, &cluster(), None),
        (Verdict::Allow, Reason::Agent),
    );

    // Was a hole: adoption launders an exception. A person creates the object before Git adds it
    // (an open PR, a chart upgrade adding a resource), with `gitops-guard.dev/allow: manual`; the
    // agent adopts it (server-side apply keeps other managers' fields); from then on the
    // exception "from Git" lets anyone change it. Same with allow-fields, and with any extra
    // field set under a field manager Flux does not clean up (an extra container).
    let person_entry = json!({"manager": "kubectl-create", "operation": "Update",
        "time": "2026-11-20T08:00:00Z", "fieldsV1": {"f:metadata": {"f:annotations":
            {"f:gitops-guard.dev/allow": {}}}, "f:spec": {"f:replicas": {}}}});
    let mut planted = deployment(
        "prod",
        json!({}),
        json!({"gitops-guard.dev/allow": "manual"}),
        2,
        "web:1",
    );
    planted["metadata"]["managedFields"] = json!([person_entry.clone()]);
    check(
        "a person plants allow: manual on an object nobody manages yet",
        run(&req("CREATE", ANA, None, Some(planted.clone()))),
        (Verdict::Deny, Reason::PlantedException),
    );
    let mut adopted = planted.clone();
    adopted["metadata"]["labels"] = flux_labels("flux-system");
    adopted["metadata"]["managedFields"] = json!([person_entry, {"manager": "kustomize-controller",
        "operation": "Apply", "time": "2026-11-20T09:00:00Z", "fieldsV1": {"f:metadata":
            {"f:labels": {"f:kustomize.toolkit.fluxcd.io/name": {}, "f:kustomize.toolkit.fluxcd.io/namespace": {}}}}}]);
    // HOLDS: the adoption itself is the agent doing its job.
    check(
        "kustomize-controller adopts it",
        run(&req("UPDATE", KC, Some(planted), Some(adopted.clone()))),
        (Verdict::Allow, Reason::Agent),
    );
    // An exception planted before the guard was installed still counts once adopted: see the
    // README (known limits).
    // HOLDS: adding the exception to an object already managed is denied.
    check(
        "a person adds allow: manual to a managed object",
        run(&req(
            "UPDATE",
            ANA,
            Some(managed()),
            Some(with_annotation(
                managed(),
                "gitops-guard.dev/allow",
                "manual",
            )),
        )),
        (Verdict::Deny, Reason::Managed),
    );

    // Was a wrongful block: with Flux multi-tenancy helm-controller builds its Helm storage from
    // the impersonated client (helm-controller internal/action/config.go), so the release Secret
    // sh.helm.release.v1.<name>.v<N> is created by the tenant account with Helm's labels only; in
    // an enforce-all namespace the tenant must count as the agent when its owner (from Git)
    // holds the namespace.
    let mut tenants = cluster();
    tenants.namespaces.insert(
        "team-a".into(),
        NamespaceInfo {
            enforce_all: true,
            managed: true,
            holds_managed: true,
            ..Default::default()
        },
    );
    let release = |user: &'static str| {
        named(
            req(
                "CREATE",
                user,
                None,
                Some(json!({"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
                    "metadata": {"name": "sh.helm.release.v1.web.v1", "namespace": "team-a",
                        "labels": {"owner": "helm", "name": "web", "status": "pending-install", "version": "1"}},
                    "data": {"release": "H4sI"}})),
            )
            .kind("", "Secret", "secrets")
            .ns("team-a"),
            "sh.helm.release.v1.web.v1",
        )
    };
    check(
        "the tenant's helm-controller stores a release in its enforce-all namespace",
        run_on(&release(TENANT_A), &tenants, None),
        (Verdict::Allow, Reason::Agent),
    );
    // HOLDS: another tenant is not that namespace's agent, nor is the tenant's own token.
    check(
        "another tenant writes in that namespace",
        run_on(&release(TENANT_B), &tenants, None),
        (Verdict::Deny, Reason::Managed),
    );
    check(
        "a token of the tenant's own writes in that namespace",
        run_on(
            &release(TENANT_A),
            &tenants,
            Some(json!({"authentication.kubernetes.io/credential-id": ["JTI=1"]})),
        ),
        (Verdict::Deny, Reason::Managed),
    );

    // Inputs the agent reads besides its sources (valuesFrom, substituteFrom) and neighbours that
    // steer a managed object (an HPA) are the next issues' work: see the README (known limits).
    // HOLDS: the direct route is closed.
    let scale = |n: i64| {
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": "web", "namespace": "prod"}, "spec": {"replicas": n}})
    };
    check(
        "kubectl scale of a managed Deployment",
        run_with(
            &req("UPDATE", ANA, Some(scale(2)), Some(scale(50))).sub("scale"),
            Some(&managed()),
            &config(),
        ),
        (Verdict::Deny, Reason::Managed),
    );

    // Was a wrongful block: argocd-server's Sync (UI button, `argocd app sync`) resolves the
    // target revision to a commit SHA (server/application/application.go resolveRevision) and
    // copies spec.syncPolicy.syncOptions into operation.sync.syncOptions. custody::sync_overrides
    // counts both as overrides, so a sync as declared is denied.
    let sha = "3f2a9c1e0b7d4c2a9f8e7d6c5b4a39281706f5e4";
    let declared = json!({"project": "default",
        "source": {"repoURL": "https://git.example/app.git", "targetRevision": "main"},
        "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop"},
        "syncPolicy": {"syncOptions": ["CreateNamespace=true"]}});
    let status = json!({"sync": {"status": "OutOfSync", "revision": sha}});
    let app_old = application(declared.clone(), Value::Null, status.clone());
    let sync = |op: Value| application(declared.clone(), op, status.clone());
    check(
        "argocd-server syncs as declared (revision resolved to the SHA the controller reports)",
        run(&on_app(req(
            "UPDATE",
            ARGO_SERVER,
            Some(app_old.clone()),
            Some(sync(
                json!({"sync": {"revision": sha}, "initiatedBy": {"username": "ana"}}),
            )),
        ))),
        (Verdict::Allow, Reason::Operational),
    );
    check(
        "argocd-server syncs as declared (the declared sync options copied in)",
        run(&on_app(req(
            "UPDATE",
            ARGO_SERVER,
            Some(app_old.clone()),
            Some(sync(
                json!({"sync": {"revision": "main", "syncOptions": ["CreateNamespace=true"]},
                "initiatedBy": {"username": "ana"}}),
            )),
        ))),
        (Verdict::Allow, Reason::Operational),
    );
    // HOLDS: another commit (an unreviewed branch) stays denied, and so do extra options.
    check(
        "a sync of a SHA the controller does not report",
        run(&on_app(req(
            "UPDATE",
            ARGO_SERVER,
            Some(app_old.clone()),
            Some(sync(
                json!({"sync": {"revision": "0000000000000000000000000000000000000bad"}}),
            )),
        ))),
        (Verdict::Deny, Reason::ArgoOperation),
    );
    check(
        "a sync adding Replace=true",
        run(&on_app(req(
            "UPDATE",
            ARGO_SERVER,
            Some(app_old.clone()),
            Some(sync(json!({"sync": {"revision": "main",
                "syncOptions": ["CreateNamespace=true", "Replace=true"]}}))),
        ))),
        (Verdict::Deny, Reason::ArgoOperation),
    );
    // HOLDS: a rollback carries a source: denied.
    check(
        "argocd-server rollback (operation.sync.source)",
        run(&on_app(req(
            "UPDATE",
            ARGO_SERVER,
            Some(app_old.clone()),
            Some(sync(json!({"sync": {"revision": "0000001",
                "source": {"repoURL": "https://git.example/app.git", "targetRevision": "0000001"}}}))),
        ))),
        (Verdict::Deny, Reason::ArgoOperation),
    );

    // Was a wrongful block: argocd-notifications-controller records what it sent in the
    // annotation notified.notifications.argoproj.io on every Application it notifies about;
    // it is no agent, the key is not operational, so every notification write is denied (and
    // re-sent on each reconcile). Argo CD 3.x refresh with a source hydrator also sets
    // argocd.argoproj.io/hydrate next to argocd.argoproj.io/refresh.
    let notified = with_annotation(
        app_old.clone(),
        "notified.notifications.argoproj.io",
        r#"{"on-deployed:[0].y7b5sbwa2Q329JYH755peeq-fBs:slack:deploys":1763726400}"#,
    );
    check(
        "argocd-notifications-controller records a notification",
        run(&on_app(req(
            "UPDATE",
            "system:serviceaccount:argocd:argocd-notifications-controller",
            Some(app_old.clone()),
            Some(notified),
        ))),
        (Verdict::Allow, Reason::Operational),
    );

    // Was a wrongful block: Argo CD impersonation (AppProject destinationServiceAccounts)
    // uses the Application's own namespace when spec.destination.namespace is empty, and the
    // destination cluster's server when the app names it by `name`
    // (argo-cd DeriveServiceAccountToImpersonate); owner::argo_destination_sa uses "" for both,
    // so the account Argo CD really impersonates is nobody's agent.
    let app = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "web", "namespace": "argocd"},
        "spec": {"project": "team", "destination": {"server": "https://kubernetes.default.svc"}}});
    let project = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
        "metadata": {"name": "team", "namespace": "argocd"},
        "spec": {"destinationServiceAccounts": [{"server": "*", "namespace": "*", "defaultServiceAccount": "deployer"}]}});
    let sa = crate::owner::argo_owner_info(&app, Some(&project)).service_account;
    if sa.as_deref() != Some("system:serviceaccount:argocd:deployer") {
        failed.borrow_mut().push(format!(
            "Argo CD destination account of an app with no destination namespace: {sa:?}, want system:serviceaccount:argocd:deployer"
        ));
    }

    // HOLDS: a Pod that would take a managed Service's traffic cannot be created in an
    // enforce-all namespace (outside one it can: see the report).
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-x", "namespace": "locked", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "evil:1"}]}});
    check(
        "a person creates a look-alike Pod in an enforce-all namespace",
        run(&named(
            req("CREATE", ANA, None, Some(pod))
                .kind("", "Pod", "pods")
                .ns("locked"),
            "web-x",
        )),
        (Verdict::Deny, Reason::Managed),
    );
    // HOLDS: Argo CD's controller creating for an Application not from Git is unrooted.
    check(
        "Argo CD creates an object for a hand-made Application",
        run(&req(
            "CREATE",
            ARGO,
            None,
            Some(deployment(
                "prod",
                json!({}),
                json!({"argocd.argoproj.io/tracking-id": "hand:apps/Deployment:prod/web"}),
                1,
                "web:1",
            )),
        )),
        (Verdict::Deny, Reason::Unrooted),
    );
    // HOLDS: allow-fields covering all of metadata still does not cover finalizers.
    let mut fin = managed();
    fin["metadata"]["annotations"] = json!({"gitops-guard.dev/allow-fields": "metadata"});
    fin["metadata"]["finalizers"] = json!(["example.com/keep"]);
    let mut unfin = fin.clone();
    unfin["metadata"]["finalizers"] = json!([]);
    check(
        "allow-fields: metadata and a finalizer removed",
        run(&req("UPDATE", ANA, Some(fin), Some(unfin))),
        (Verdict::Deny, Reason::Managed),
    );
    // HOLDS: a non-member cannot bring a break-glass window in with a new Namespace.
    let mut bg = config();
    bg.break_glass.groups = vec!["sre".into()];
    let windowed = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fresh",
        "annotations": {"gitops-guard.dev/break-glass-until": "2026-11-21T13:00:00Z",
            "gitops-guard.dev/break-glass-reason": "x", "gitops-guard.dev/break-glass-by": "ana"}}});
    let d = run_with(
        &on_namespace(req("CREATE", ANA, None, Some(windowed)), "fresh"),
        None,
        &bg,
    );
    check(
        "a non-member creates a Namespace with a window",
        d,
        (Verdict::Deny, Reason::BreakGlassRefused),
    );

    let failed = failed.into_inner();
    assert!(
        failed.is_empty(),
        "{} attack(s) not answered as they should be:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// API servers before 1.23 send an UPDATE's old object without `metadata.managedFields`
/// (kubernetes/kubernetes#106195): the webhook reads the live object, and the record comes from
/// there.
#[test]
fn old_objects_without_their_record() {
    let stripped = |mut v: Value| {
        v["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        v
    };
    let review = |r: &Req| r.review();
    let needs = |r: &Req| {
        let body = review(r);
        let request = AdmissionRequest::decode(body.as_bytes()).unwrap();
        needs_live_object(&request, &config(), &cluster())
    };
    let restart = restarted(
        json!([flux_entry(), {"manager": "kubectl-rollout", "operation": "Update",
        "time": "2026-11-21T12:00:00Z", "fieldsV1": {"f:spec": {"f:template": {"f:metadata": {"f:annotations": {"f:kubectl.kubernetes.io/restartedAt": {}}}}}}}]),
    );
    let by_ana = req(
        "UPDATE",
        ANA,
        Some(stripped(recorded())),
        Some(restart.clone()),
    );
    assert!(needs(&by_ana), "a person changing a managed object");
    assert!(
        !needs(&req("UPDATE", ANA, Some(recorded()), Some(restart.clone()))),
        "the review has the record"
    );
    assert!(
        !needs(&req(
            "UPDATE",
            KC,
            Some(stripped(recorded())),
            Some(restart.clone())
        )),
        "the agent"
    );
    let plain = deployment("prod", json!({}), json!({}), 1, "web:1");
    assert!(
        !needs(&req(
            "UPDATE",
            ANA,
            Some(plain.clone()),
            Some(with_image(plain, "web:2"))
        )),
        "unmanaged"
    );
    assert!(
        !needs(&req("CREATE", ANA, None, Some(recorded()))),
        "a create"
    );
    assert!(
        needs(
            &req(
                "UPDATE",
                ANA,
                Some(stripped(managed())),
                Some(with_image(stripped(managed()), "web:2"))
            )
            .ns("locked")
        ),
        "enforce: all"
    );

    let run_live = |r: &Req, live: &Value| {
        let body = r.review();
        let request = AdmissionRequest::decode(body.as_bytes()).unwrap();
        let text = live.to_string();
        let live = Object::from_json(&text).unwrap();
        decide(&request, Some(&live), &config(), &cluster(), now())
    };
    let cases: Vec<(&str, Req, Value, Verdict, Reason)> = vec![
        (
            "a rollout restart, the record read live",
            by_ana,
            recorded(),
            Verdict::Allow,
            Reason::Operational,
        ),
        (
            "the record wiped, read live",
            req(
                "UPDATE",
                ANA,
                Some(stripped(recorded())),
                Some(stripped(restart.clone())),
            ),
            recorded(),
            Verdict::Deny,
            Reason::ManagedFields,
        ),
        (
            "the live object is another version",
            req(
                "UPDATE",
                ANA,
                Some(stripped(recorded())),
                Some(restart.clone()),
            ),
            {
                let mut v = recorded();
                v["metadata"]["resourceVersion"] = json!("101");
                v
            },
            Verdict::Deny,
            Reason::ManagedFields,
        ),
    ];
    for (what, r, live, verdict, reason) in cases {
        let d = run_live(&r, &live);
        assert_eq!((d.verdict, d.reason), (verdict, reason), "{what}: {d:?}");
    }
}

/// The test cluster, where one custom kind has no status subresource.
struct NoStatusSubresource(Cluster);

impl Lookup for NoStatusSubresource {
    fn owner(&self, owner: &OwnerRef) -> Option<OwnerInfo> {
        self.0.owner(owner)
    }
    fn namespace(&self, name: &str) -> Option<NamespaceInfo> {
        self.0.namespace(name)
    }
    fn custody(&self, object: &ObjectRef) -> Option<CustodyInfo> {
        self.0.custody(object)
    }
    fn status_is_subresource(&self, group: &str, resource: &str) -> bool {
        (group, resource) != ("example.gitops-guard.dev", "widgets")
    }
}

/// `status` is exempt from the field diff only where the kind has a status subresource.
#[test]
fn status_is_a_field_without_a_subresource() {
    let cr = |kind: &str, phase: &str| {
        json!({"apiVersion": "example.gitops-guard.dev/v1", "kind": kind,
            "metadata": {"name": "w", "namespace": "prod", "labels": flux_labels("flux-system")},
            "spec": {"size": 1}, "status": {"phase": phase}})
    };
    let lookup = NoStatusSubresource(cluster());
    let decide_on = |r: &Req| {
        let body = r.review();
        let request = AdmissionRequest::decode(body.as_bytes()).unwrap();
        decide(&request, None, &config(), &lookup, now())
    };
    let widget = |user| {
        req(
            "UPDATE",
            user,
            Some(cr("Widget", "Pending")),
            Some(cr("Widget", "Ready")),
        )
        .kind("example.gitops-guard.dev", "Widget", "widgets")
    };
    let gadget = req(
        "UPDATE",
        ANA,
        Some(cr("Gadget", "Pending")),
        Some(cr("Gadget", "Ready")),
    )
    .kind("example.gitops-guard.dev", "Gadget", "gadgets");
    let cases = [
        (
            "a person forges a status that is a field",
            decide_on(&widget(ANA)),
            (Verdict::Deny, Reason::Managed),
        ),
        (
            "the agent writes it",
            decide_on(&widget(KC)),
            (Verdict::Allow, Reason::Agent),
        ),
        (
            "a status the API server keeps in a subresource",
            decide_on(&gadget),
            (Verdict::Allow, Reason::Operational),
        ),
    ];
    for (what, d, want) in cases {
        assert_eq!((d.verdict, d.reason), want, "{what}: {d:?}");
    }
}

/// A status write that carries metadata: API servers before 1.22 keep it (a Deployment's
/// annotations and finalizers, a Service's or Namespace's labels and annotations).
#[test]
fn status_writes_change_only_the_status() {
    let status =
        |user, old: Value, new: Value| req("UPDATE", user, Some(old), Some(new)).sub("status");
    let reported = |mut v: Value| {
        v["status"]["readyReplicas"] = json!(2);
        v
    };
    let planted = |v: Value| with_annotation(reported(v), "gitops-guard.dev/allow", "manual");
    let unmanaged = deployment("prod", json!({}), json!({}), 2, "web:1");
    let mut finalized = reported(managed());
    finalized["metadata"]["finalizers"] = json!(["example.com/keep"]);
    let mut namespace = namespace_object("prod", flux_labels("flux-system"));
    let audited = with_annotation(namespace.clone(), "gitops-guard.dev/mode", "audit");
    namespace["status"] = json!({"phase": "Active"});
    let statefulset = |v: Value| {
        let mut v = v;
        v["kind"] = json!("StatefulSet");
        v
    };
    let cases = [
        (
            "a person writes a managed Deployment's status",
            status(ANA, managed(), reported(managed())),
            (Verdict::Allow, Reason::Status),
        ),
        (
            "and plants allow: manual through it",
            status(ANA, managed(), planted(managed())),
            (Verdict::Deny, Reason::StatusWrite),
        ),
        (
            "or a finalizer that blocks the agent's prune",
            status(ANA, managed(), finalized),
            (Verdict::Deny, Reason::StatusWrite),
        ),
        (
            "or plants allow: manual on an object before it is managed",
            status(ANA, unmanaged.clone(), planted(unmanaged.clone())),
            (Verdict::Deny, Reason::StatusWrite),
        ),
        (
            "or softens a namespace from Git to audit mode",
            status(ANA, namespace.clone(), audited.clone())
                .kind("", "Namespace", "namespaces")
                .ns("prod"),
            (Verdict::Deny, Reason::StatusWrite),
        ),
        (
            "the same through a StatefulSet's status (routed for its revisions)",
            status(ANA, statefulset(managed()), statefulset(planted(managed()))).kind(
                "apps",
                "StatefulSet",
                "statefulsets",
            ),
            (Verdict::Deny, Reason::StatusWrite),
        ),
        (
            "the agent writing metadata through a status is judged as the agent",
            status(KC, managed(), planted(managed())),
            (Verdict::Allow, Reason::Agent),
        ),
        (
            "Kubernetes itself is never blocked",
            status(
                "system:serviceaccount:kube-system:deployment-controller",
                managed(),
                planted(managed()),
            ),
            (Verdict::Allow, Reason::System),
        ),
        (
            "a dry run is told",
            status(ANA, managed(), planted(managed())).dry(),
            (Verdict::Warn, Reason::DryRun),
        ),
    ];
    for (what, r, want) in cases {
        let d = run(&r);
        assert_eq!((d.verdict, d.reason), want, "{what}: {d:?}");
    }
    let d = run(&status(ANA, managed(), planted(managed())));
    let message = d.message.unwrap_or_default();
    assert!(
        message.starts_with("deployment/web in prod: a status write may change only the status, and this one also changes metadata.annotations['gitops-guard.dev/allow']")
            && message.ends_with("kubectl edit deployment/web -n prod"),
        "{message}"
    );
}

/// A Namespace's `finalize` write keeps its metadata on every Kubernetes version (only the status
/// is reset), so labels and annotations sent with it count as a change to the Namespace: a person
/// softening a namespace from Git to audit mode through it is refused, while clearing
/// `spec.finalizers` (how a stuck namespace is let go) stays a subresource write.
#[test]
fn a_namespace_finalize_write_changes_only_its_finalizers() {
    let finalize = |user, old: Value, new: Value| {
        on_namespace(
            req("UPDATE", user, Some(old), Some(new)).sub("finalize"),
            "prod",
        )
    };
    let mut namespace = namespace_object("prod", flux_labels("flux-system"));
    namespace["spec"] = json!({"finalizers": ["kubernetes"]});
    namespace["status"] = json!({"phase": "Active"});
    let audited = with_annotation(namespace.clone(), "gitops-guard.dev/mode", "audit");
    let mut released = namespace.clone();
    released["spec"] = json!({"finalizers": []});
    let mut unenforced = namespace_object("team", json!({"gitops-guard.dev/enforce": "all"}));
    unenforced["spec"] = json!({"finalizers": ["kubernetes"]});
    let mut relabelled = unenforced.clone();
    relabelled["metadata"]["labels"] = json!({});
    let cases = [
        (
            "a person puts a namespace from Git into audit mode",
            finalize(ANA, namespace.clone(), audited.clone()),
            (Verdict::Deny, Reason::StatusWrite),
        ),
        (
            "or takes enforce: all off one",
            finalize(ANA, unenforced, relabelled),
            (Verdict::Deny, Reason::StatusWrite),
        ),
        (
            "clearing the finalizers only",
            finalize(ANA, namespace.clone(), released),
            (Verdict::Allow, Reason::Subresource),
        ),
        (
            "the namespace controller",
            finalize(
                "system:serviceaccount:kube-system:namespace-controller",
                namespace.clone(),
                audited.clone(),
            ),
            (Verdict::Allow, Reason::System),
        ),
    ];
    for (what, r, want) in cases {
        let d = run(&r);
        assert_eq!((d.verdict, d.reason), want, "{what}: {d:?}");
    }
    let d = run(&finalize(ANA, namespace, audited));
    let message = d.message.unwrap_or_default();
    assert!(
        message.contains("a finalize write may change only spec.finalizers, and this one also changes metadata.annotations['gitops-guard.dev/mode']")
            && message.ends_with("kubectl edit namespace/prod"),
        "{message}"
    );
}
