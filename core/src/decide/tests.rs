//! Every rule of [`decide`] as a table.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::*;
use crate::owner::OwnerKind;

struct Cluster {
    owners: HashMap<OwnerRef, OwnerInfo>,
    namespaces: HashMap<String, NamespaceInfo>,
}

impl Lookup for Cluster {
    fn owner(&self, owner: &OwnerRef) -> Option<OwnerInfo> {
        self.owners.get(owner).cloned()
    }
    fn namespace(&self, name: &str) -> Option<NamespaceInfo> {
        self.namespaces.get(name).cloned()
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
            }),
            ..Default::default()
        },
    );
    Cluster { owners, namespaces }
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
    Req {
        op,
        group: "apps",
        kind: "Deployment",
        resource: "deployments",
        sub: "",
        ns: "prod",
        name: "web",
        user,
        groups: vec!["system:authenticated"],
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
    run_with(r, None, &Config::default())
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

const DENY_WEB: &str = "deployment/web in prod is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1).\nChange it in Git instead: kubectl gitops edit deployment/web -n prod";

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
    let d = run(&req(
        "UPDATE",
        ANA,
        Some(managed()),
        Some(with_image(managed(), "web:2")),
    ));
    assert_eq!(d.message.as_deref(), Some(DENY_WEB));
    assert_eq!(
        d.owner,
        Some(oref(OwnerKind::Kustomization, "flux-system", "apps"))
    );

    let d = run(&req(
        "UPDATE",
        ARGO_SERVER,
        Some(argo_managed()),
        Some(with_replicas(argo_managed(), 5)),
    ));
    assert_eq!(
        d.message.as_deref(),
        Some(
            "deployment/web in prod is managed by Argo CD Application argocd/web (7d0e51f).\nChange it in Git instead: kubectl gitops edit deployment/web -n prod"
        )
    );

    // An owner the cache does not know (yet): still denied, no revision.
    let unknown = deployment(
        "prod",
        json!({"helm.toolkit.fluxcd.io/name": "web", "helm.toolkit.fluxcd.io/namespace": "prod"}),
        json!({}),
        1,
        "x",
    );
    let d = run(&req("DELETE", ANA, Some(unknown), None));
    assert_eq!(
        d.message.as_deref(),
        Some(
            "deployment/web in prod is managed by Flux HelmRelease prod/web.\nChange it in Git instead: kubectl gitops edit deployment/web -n prod"
        )
    );

    // A Namespace: the API server sends its own name as the request namespace.
    let ns = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "prod", "labels": flux_labels("flux-system")}});
    let mut r = req(
        "UPDATE",
        ANA,
        Some(ns.clone()),
        Some(with_annotation(ns, "note", "x")),
    )
    .kind("", "Namespace", "namespaces");
    r.name = "prod";
    assert_eq!(
        run(&r).message.as_deref(),
        Some(
            "namespace/prod is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1).\nChange it in Git instead: kubectl gitops edit namespace/prod"
        )
    );

    // Cluster-scoped objects have no namespace in the message or the command.
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "viewer", "labels": flux_labels("flux-system")}, "rules": []});
    let mut r = req("DELETE", ANA, Some(role), None)
        .kind("rbac.authorization.k8s.io", "ClusterRole", "clusterroles")
        .ns("");
    r.name = "viewer";
    assert_eq!(
        run(&r).message.as_deref(),
        Some(
            "clusterrole/viewer is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1).\nChange it in Git instead: kubectl gitops edit clusterrole/viewer"
        )
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
            "deployment/web in locked is managed by namespace locked (gitops-guard.dev/enforce: all).\nChange it in Git instead: kubectl gitops edit deployment/web -n locked"
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

    let defaults = Config::default();
    let mut no_ops = Config::default();
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
    let d = run_with(&r, Some(&managed()), &Config::default());
    assert_eq!((d.verdict, d.reason), (Verdict::Deny, Reason::Managed));
    assert_eq!(d.message.as_deref(), Some(DENY_WEB));

    let d = run_with(
        &r,
        Some(&deployment("prod", json!({}), json!({}), 2, "x")),
        &Config::default(),
    );
    assert_eq!((d.verdict, d.reason), (Verdict::Allow, Reason::Unmanaged));
    let d = run_with(&r, None, &Config::default());
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
        run_with(&hpa, Some(&managed()), &Config::default()).reason,
        Reason::System
    );

    let allow = with_annotation(managed(), "gitops-guard.dev/allow-fields", "spec.replicas");
    let d = run_with(&r, Some(&allow), &Config::default());
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
        Some(format!("{DENY_WEB}\nOnly spec.replicas may be changed by hand here (gitops-guard.dev/allow-fields); this change also touches: spec.template.spec.containers[0].image").as_str())
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
    let mut cfg = Config::default();
    cfg.break_glass.groups = vec!["sre".into()];
    cfg.break_glass.max_duration = jiff::SignedDuration::from_hours(2);
    let window = |v: Value, until: &str, reason: &str, by: &str| {
        let mut v = with_annotation(v, "gitops-guard.dev/break-glass-until", until);
        v = with_annotation(v, "gitops-guard.dev/break-glass-reason", reason);
        with_annotation(v, "gitops-guard.dev/break-glass-by", by)
    };
    let open = window(managed(), "2026-11-21T13:00:00Z", "db outage", "sam");
    let expired = window(managed(), "2026-11-21T11:59:00Z", "db outage", "sam");
    let sre = &["sre", "system:authenticated"][..];
    let cases: Vec<(&str, Req, Verdict, Reason)> = vec![
        (
            "a member opens a window",
            req("UPDATE", "sam", Some(managed()), Some(open.clone())).groups(sre),
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
    let mut cfg = Config::default();
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
