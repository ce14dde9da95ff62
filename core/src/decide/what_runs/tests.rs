//! The descendant and neighbour rules, each as a table, through [`decide`](crate::decide).

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::config::Config;
use crate::decide::{Decision, Lookup, Reason, Verdict, decide};
use crate::exception::Window;
use crate::object::Object;
use crate::owner::{NamespaceInfo, OwnerInfo, OwnerKind, OwnerRef};
use crate::review::AdmissionRequest;
use crate::workload::{self, ControllerRef, Facts, Steered, Target, WORKLOADS};

const ANA: &str = "ana";
const KC: &str = "system:serviceaccount:flux-system:kustomize-controller";
const RS_CONTROLLER: &str = "system:serviceaccount:kube-system:replicaset-controller";
const OPS: &str = "olga";

fn flux() -> Value {
    json!({"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"})
}

fn meta(name: &str, labels: Value, uid: &str, controller: Option<(&str, &str, &str)>) -> Value {
    let mut m =
        json!({"name": name, "namespace": "prod", "labels": labels, "annotations": {}, "uid": uid});
    if let Some((kind, name, uid)) = controller {
        m["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": true}]);
    }
    m
}

/// The cluster: in `prod`, Git's Deployment `web` (allow-fields on `spec.template` nothing), its
/// ReplicaSet `web-7d9f`, Git's Service `web`; an unmanaged Deployment `tool` (`app: tool`),
/// Git's Deployment `api` that lets anyone set its replicas (`allow-fields: spec.replicas`), Git's
/// Rollout `canary` and Git's StatefulSet `db` (`app: db`).
struct Cluster {
    facts: Vec<Facts>,
    namespaces: HashMap<String, NamespaceInfo>,
}

fn kind(k: &str) -> &'static workload::Kind {
    WORKLOADS.iter().find(|w| w.kind == k).unwrap()
}

fn cluster() -> Cluster {
    let config = Config::default();
    let template = |app: &str| {
        json!({"selector": {"matchLabels": {"app": app}},
        "template": {"metadata": {"labels": {"app": app}}}})
    };
    let web = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": meta("web", flux(), "d-web", None), "spec": template("web")});
    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": meta("web-7d9f", json!({"app": "web", "pod-template-hash": "7d9f"}), "rs-web", Some(("Deployment", "web", "d-web"))),
        "spec": {"selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d9f"}},
                 "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "7d9f"}}}}});
    let service = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": meta("web", flux(), "s-web", None), "spec": {"selector": {"app": "web"}}});
    let tool = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": meta("tool", json!({}), "d-tool", None), "spec": template("tool")});
    let mut api = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": meta("api", flux(), "d-api", None), "spec": template("api")});
    api["metadata"]["annotations"] = json!({"gitops-guard.dev/allow-fields": "spec.replicas"});
    let rollout = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": meta("canary", flux(), "r-1", None), "spec": template("rollout")});
    let db = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": meta("db", flux(), "ss-db", None), "spec": template("db")});
    let facts = vec![
        workload::facts(kind("StatefulSet"), &db, &config),
        workload::facts(kind("Deployment"), &web, &config),
        workload::facts(kind("ReplicaSet"), &rs, &config),
        workload::facts(&workload::SERVICE, &service, &config),
        workload::facts(kind("Deployment"), &tool, &config),
        workload::facts(kind("Deployment"), &api, &config),
        workload::facts(kind("Rollout"), &rollout, &config),
    ];
    Cluster {
        facts,
        namespaces: HashMap::new(),
    }
}

impl Lookup for Cluster {
    fn owner(&self, _owner: &OwnerRef) -> Option<OwnerInfo> {
        Some(OwnerInfo {
            revision: Some("main@sha1:3f2a9c1e0b7d".into()),
            service_account: None,
        })
    }
    fn namespace(&self, name: &str) -> Option<NamespaceInfo> {
        self.namespaces.get(name).cloned()
    }
    fn controlled(&self, namespace: &str, controller: &ControllerRef) -> Option<Steered> {
        let by_uid = |uid: &str| self.facts.iter().find(|f| f.uid == uid);
        workload::ancestor(namespace, controller, by_uid, |f| f.owners.clone())
    }
    fn steered(&self, namespace: &str, target: &Target) -> Vec<Steered> {
        let by_uid = |uid: &str| self.facts.iter().find(|f| f.uid == uid);
        let here = self.facts.iter().filter(|f| f.namespace == namespace);
        workload::steered_among(here, target, by_uid, |f| f.owners.clone())
    }
}

fn config() -> Config {
    let mut c = Config::default();
    c.break_glass.groups = vec!["sre".into()];
    c
}

/// A request for `resource` (`group`, `kind`), `sub` its subresource.
struct Req {
    op: &'static str,
    user: &'static str,
    groups: Vec<&'static str>,
    group: &'static str,
    kind: &'static str,
    resource: &'static str,
    sub: &'static str,
    name: &'static str,
    old: Option<Value>,
    object: Option<Value>,
    dry_run: bool,
}

fn req(
    op: &'static str,
    user: &'static str,
    what: (&'static str, &'static str, &'static str),
) -> Req {
    let groups = if user.starts_with("system:serviceaccount:") {
        let ns = user.split(':').nth(2).unwrap_or_default();
        let ns_group: &'static str =
            Box::leak(format!("system:serviceaccounts:{ns}").into_boxed_str());
        vec!["system:serviceaccounts", ns_group, "system:authenticated"]
    } else if user == OPS {
        vec!["sre", "system:authenticated"]
    } else {
        vec!["system:authenticated"]
    };
    Req {
        op,
        user,
        groups,
        group: what.0,
        kind: what.1,
        resource: what.2,
        sub: "",
        name: "x",
        old: None,
        object: None,
        dry_run: false,
    }
}

const POD: (&str, &str, &str) = ("", "Pod", "pods");
const RS: (&str, &str, &str) = ("apps", "ReplicaSet", "replicasets");
const DEPLOY: (&str, &str, &str) = ("apps", "Deployment", "deployments");
const HPA: (&str, &str, &str) = (
    "autoscaling",
    "HorizontalPodAutoscaler",
    "horizontalpodautoscalers",
);
const PDB: (&str, &str, &str) = ("policy", "PodDisruptionBudget", "poddisruptionbudgets");
const SLICE: (&str, &str, &str) = ("discovery.k8s.io", "EndpointSlice", "endpointslices");
const ENDPOINTS: (&str, &str, &str) = ("", "Endpoints", "endpoints");

impl Req {
    fn old(mut self, v: Value) -> Req {
        self.old = Some(v);
        self
    }
    fn object(mut self, v: Value) -> Req {
        self.object = Some(v);
        self
    }
    fn sub(mut self, sub: &'static str, name: &'static str) -> Req {
        self.sub = sub;
        self.name = name;
        self
    }
    fn dry(mut self) -> Req {
        self.dry_run = true;
        self
    }
    fn review(&self) -> String {
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "u", "kind": {"group": self.group, "version": "v1", "kind": self.kind},
            "resource": {"group": self.group, "version": "v1", "resource": self.resource},
            "subResource": self.sub, "name": self.name, "namespace": "prod", "operation": self.op,
            "userInfo": {"username": self.user, "groups": self.groups},
            "object": self.object, "oldObject": self.old, "dryRun": self.dry_run}})
        .to_string()
    }
}

fn run_on(r: &Req, cluster: &Cluster, config: &Config, parent: Option<&Value>) -> Decision {
    let body = r.review();
    let request = AdmissionRequest::decode(body.as_bytes()).unwrap();
    let text = parent.map(Value::to_string);
    let parent = text.as_deref().map(|t| Object::from_json(t).unwrap());
    let now = "2026-12-02T12:00:00Z".parse().unwrap();
    decide(&request, parent.as_ref(), config, cluster, now)
}

fn run(r: &Req) -> Decision {
    run_on(r, &cluster(), &config(), None)
}

/// A Pod of the managed Deployment's ReplicaSet.
fn pod(image: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": meta("web-7d9f-abcde", json!({"app": "web", "pod-template-hash": "7d9f"}), "p-1", Some(("ReplicaSet", "web-7d9f", "rs-web"))),
        "spec": {"serviceAccountName": "web", "containers": [{"name": "web", "image": image}]}})
}

fn with(mut v: Value, pointer: &str, value: Value) -> Value {
    *v.pointer_mut(pointer).unwrap() = value;
    v
}

/// A hand-made Pod (no owner) with `labels`.
fn bare_pod(labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta("evil", labels, "p-2", None),
        "spec": {"containers": [{"name": "c", "image": "evil:1"}]}})
}

fn hpa(target: &str) -> Value {
    json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": meta("h", json!({}), "h-1", None),
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target}, "minReplicas": 1, "maxReplicas": 1}})
}

fn check(cases: Vec<(&str, Req, Verdict, Reason)>) {
    for (name, r, verdict, reason) in cases {
        let d = run(&r);
        assert_eq!(
            (d.verdict, d.reason),
            (verdict, reason),
            "{name}: {:?}",
            d.message
        );
    }
}

#[test]
fn descendants_run_what_git_declares() {
    use Reason::*;
    use Verdict::*;
    let with_owner = |v: Value, refs: Value| with(v, "/metadata/ownerReferences", refs);
    let mut redirected = pod("web:1");
    redirected["status"] = json!({"podIP": "203.0.113.7"});
    let mut kubelet = req("UPDATE", "system:node:n1", POD)
        .sub("status", "x")
        .old(pod("web:1"))
        .object(redirected.clone());
    kubelet.groups = vec!["system:nodes", "system:authenticated"];
    let tool_pod = |image: &str| {
        let v = with_owner(
            pod(image),
            json!([{"kind": "Deployment", "name": "tool", "uid": "d-tool", "controller": true}]),
        );
        with(v, "/metadata/labels", json!({"app": "tool"}))
    };
    check(vec![
        ("a person sets a Pod's image", req("UPDATE", ANA, POD).old(pod("web:1")).object(pod("evil:1")), Deny, Descendant),
        ("a person changes its service account", req("UPDATE", ANA, POD).old(pod("web:1")).object(with(pod("web:1"), "/spec/serviceAccountName", json!("admin"))), Deny, Descendant),
        ("a person relabels it (leaves or joins a Service)", req("UPDATE", ANA, POD).old(pod("web:1")).object(with(pod("web:1"), "/metadata/labels/app", json!("db"))), Deny, Descendant),
        ("orphaning it first is a change too", req("UPDATE", ANA, POD).old(pod("web:1")).object(with_owner(pod("web:1"), json!([]))), Deny, Descendant),
        ("a person annotates it", req("UPDATE", ANA, POD).old(pod("web:1")).object(with(pod("web:1"), "/metadata/annotations", json!({"note": "x"}))), Allow, Operational),
        ("the kubelet's and controllers' writes", req("UPDATE", RS_CONTROLLER, POD).old(pod("web:1")).object(pod("evil:1")), Allow, System),
        ("the agent", req("UPDATE", KC, POD).old(pod("web:1")).object(pod("web:2")), Allow, Agent),
        ("a person writes a Pod's status (its podIP steers the Service)", req("UPDATE", ANA, POD).sub("status", "x").old(pod("web:1")).object(redirected.clone()), Deny, Descendant),
        ("the kubelet writes it", kubelet, Allow, System),
        ("a person writes the status of a Pod nobody manages", req("UPDATE", ANA, POD).sub("status", "x").old(bare_pod(json!({"app": "tool"}))).object(bare_pod(json!({"app": "tool"}))), Allow, Unmanaged),
        ("a person deletes a Pod: a restart", req("DELETE", ANA, POD).old(pod("web:1")), Allow, PodOperation),
        ("a person makes a Pod claiming the ReplicaSet", req("CREATE", ANA, POD).object(pod("evil:1")), Deny, Descendant),
        ("the ReplicaSet controller makes it", req("CREATE", RS_CONTROLLER, POD).object(pod("web:1")), Allow, System),
        (
            "a person scales the ReplicaSet by hand",
            req("UPDATE", ANA, RS)
                .old(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta("web-7d9f", json!({}), "rs-web", Some(("Deployment", "web", "d-web"))), "spec": {"replicas": 2}}))
                .object(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta("web-7d9f", json!({}), "rs-web", Some(("Deployment", "web", "d-web"))), "spec": {"replicas": 9}})),
            Deny,
            Descendant,
        ),
        (
            "a person deletes the ReplicaSet",
            req("DELETE", ANA, RS).old(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta("web-7d9f", json!({}), "rs-web", Some(("Deployment", "web", "d-web")))})),
            Deny,
            Descendant,
        ),
        ("exec, attach, port-forward: operational", req("CONNECT", ANA, ("", "PodExecOptions", "pods")).sub("exec", "web-7d9f-abcde"), Allow, Connect),
        ("eviction: operational", req("CREATE", ANA, ("", "Eviction", "pods")).sub("eviction", "web-7d9f-abcde"), Allow, Subresource),
        ("a dry run says what would be denied", req("UPDATE", ANA, POD).old(pod("web:1")).object(pod("evil:1")).dry(), Warn, DryRun),
        ("a Pod of an unmanaged Deployment", req("UPDATE", ANA, POD).old(tool_pod("x:1")).object(tool_pod("x:2")), Allow, Unmanaged),
    ]);
}

#[test]
fn pod_operations_are_config_choices_and_recorded() {
    let exec = req("CONNECT", ANA, ("", "PodExecOptions", "pods")).sub("exec", "web-7d9f-abcde");
    let evict = req("CREATE", ANA, ("", "Eviction", "pods")).sub("eviction", "web-7d9f-abcde");
    let debug = req("UPDATE", ANA, ("", "EphemeralContainers", "pods"))
        .sub("ephemeralcontainers", "web-7d9f-abcde");
    let delete = req("DELETE", ANA, POD).old(pod("web:1"));
    let bare = bare_pod(json!({"app": "tool"}));
    let managed = pod("web:1");
    let on = config();
    let all_off = {
        let mut c = config();
        c.operational.pod_delete = false;
        c.operational.pod_eviction = false;
        c.operational.pod_exec = false;
        c.operational.pod_debug = false;
        c
    };
    /// Name, request, config, the Pod the guard reads, verdict, the word in the record or denial.
    type Case<'a> = (
        &'a str,
        &'a Req,
        &'a Config,
        Option<&'a Value>,
        Verdict,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "exec allowed and recorded",
            &exec,
            &on,
            None,
            Verdict::Allow,
            "pod-exec",
        ),
        (
            "eviction allowed and recorded",
            &evict,
            &on,
            None,
            Verdict::Allow,
            "pod-eviction",
        ),
        (
            "debug allowed and recorded",
            &debug,
            &on,
            None,
            Verdict::Allow,
            "pod-debug",
        ),
        (
            "delete allowed and recorded",
            &delete,
            &on,
            None,
            Verdict::Allow,
            "pod-delete",
        ),
        (
            "exec off: denied for a managed Pod",
            &exec,
            &all_off,
            Some(&managed),
            Verdict::Deny,
            "podExec",
        ),
        (
            "eviction off",
            &evict,
            &all_off,
            Some(&managed),
            Verdict::Deny,
            "podEviction",
        ),
        (
            "debug off",
            &debug,
            &all_off,
            Some(&managed),
            Verdict::Deny,
            "podDebug",
        ),
        (
            "delete off",
            &delete,
            &all_off,
            None,
            Verdict::Deny,
            "podDelete",
        ),
        (
            "exec off: a Pod nobody manages",
            &exec,
            &all_off,
            Some(&bare),
            Verdict::Allow,
            "",
        ),
        (
            "exec off: the Pod is gone",
            &exec,
            &all_off,
            None,
            Verdict::Allow,
            "",
        ),
    ];
    for (name, r, config, parent, verdict, word) in cases {
        let body = r.review();
        let request = AdmissionRequest::decode(body.as_bytes()).unwrap();
        assert_eq!(
            crate::decide::needs_parent(&request, config),
            !r.sub.is_empty() && !config.operational.pod_exec,
            "{name}: the Pod is read only when the choice is off"
        );
        let d = run_on(r, &cluster(), config, parent);
        assert_eq!(d.verdict, verdict, "{name}: {:?}", d.message);
        match verdict {
            Verdict::Deny => assert!(
                d.message.as_deref().unwrap_or("").contains(word),
                "{name}: {:?}",
                d.message
            ),
            _ if word.is_empty() => {}
            _ => assert!(
                d.audit_annotations
                    .contains(&("operational".into(), word.into())),
                "{name}: {:?}",
                d.audit_annotations
            ),
        }
    }
}

#[test]
fn neighbours_that_steer_managed_objects() {
    use Reason::*;
    use Verdict::*;
    let pdb = |labels: Value| {
        json!({"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget",
        "metadata": meta("p", json!({}), "pdb", None), "spec": {"selector": {"matchLabels": labels}, "maxUnavailable": 0}})
    };
    let deployment = |app: &str, labels: Value| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": meta("canary", labels, "d-c", None),
        "spec": {"selector": {"matchLabels": {"app": app}}, "template": {"metadata": {"labels": {"app": app}}}}})
    };
    let slice = |service: &str| {
        json!({"apiVersion": "discovery.k8s.io/v1beta1", "kind": "EndpointSlice",
        "metadata": meta("web-evil", json!({"kubernetes.io/service-name": service}), "es", None), "addressType": "IPv4", "endpoints": []})
    };
    check(vec![
        ("kubectl autoscale a managed Deployment", req("CREATE", ANA, HPA).object(hpa("web")), Deny, Neighbour),
        ("an HPA on an unmanaged Deployment", req("CREATE", ANA, HPA).object(hpa("tool")), Allow, Unmanaged),
        ("an HPA where Git allows replicas by hand", req("CREATE", ANA, HPA).object(hpa("api")), Allow, Unmanaged),
        ("moving an HPA onto a managed Deployment", req("UPDATE", ANA, HPA).old(hpa("tool")).object(hpa("web")), Deny, Neighbour),
        ("moving it off", req("UPDATE", ANA, HPA).old(hpa("web")).object(hpa("tool")), Allow, Unmanaged),
        ("deleting a hand-made HPA", req("DELETE", ANA, HPA).old(hpa("web")), Allow, Unmanaged),
        ("the agent applies an HPA without labels", req("CREATE", KC, HPA).object(hpa("web")), Allow, Unmanaged),
        // From Git, it is the agent's own object, under the chain-of-custody rules (no chain here).
        ("the agent applies an HPA from Git", req("CREATE", KC, HPA).object(with(hpa("web"), "/metadata/labels", flux())), Deny, Unrooted),
        ("kubectl run with the Service's labels", req("CREATE", ANA, POD).object(bare_pod(json!({"app": "web"}))), Deny, Neighbour),
        ("kubectl run with other labels", req("CREATE", ANA, POD).object(bare_pod(json!({"app": "tool2"}))), Allow, Unmanaged),
        ("labelling a Pod into the Service", req("UPDATE", ANA, POD).old(bare_pod(json!({}))).object(bare_pod(json!({"app": "web"}))), Deny, Neighbour),
        ("a canary Deployment with the Service's Pod labels", req("CREATE", ANA, DEPLOY).object(deployment("web", json!({}))), Deny, Neighbour),
        ("a Deployment of its own", req("CREATE", ANA, DEPLOY).object(deployment("canary", json!({}))), Allow, Unmanaged),
        ("a PDB over the managed Pods", req("CREATE", ANA, PDB).object(pdb(json!({"app": "web"}))), Deny, Neighbour),
        ("a PDB over other Pods", req("CREATE", ANA, PDB).object(pdb(json!({"app": "tool"}))), Allow, Unmanaged),
        ("an EndpointSlice for the managed Service", req("CREATE", ANA, SLICE).object(slice("web")), Deny, Neighbour),
        ("an EndpointSlice for another Service", req("CREATE", ANA, SLICE).object(slice("db")), Allow, Unmanaged),
        (
            "Endpoints named like the managed Service",
            req("CREATE", ANA, ENDPOINTS).object(json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": meta("web", json!({}), "e", None), "subsets": []})),
            Deny,
            Neighbour,
        ),
        ("a dry run warns", req("CREATE", ANA, HPA).object(hpa("web")).dry(), Warn, DryRun),
    ]);
}

#[test]
fn denials_name_what_is_steered_and_what_to_do() {
    let d = run(&req("CREATE", ANA, HPA).object(hpa("web")));
    let m = d.message.unwrap();
    assert!(m.contains("horizontalpodautoscaler/x in prod would change spec.replicas of deployment/web in prod, which is managed by"), "{m}");
    assert!(
        m.contains("Flux Kustomization flux-system/apps (main@sha1:3f2a9c1)"),
        "{m}"
    );
    assert!(
        m.contains("gitops-guard.dev/allow-fields: spec.replicas on deployment/web"),
        "{m}"
    );
    assert!(
        !m.contains("kubectl delete"),
        "nothing to delete on CREATE: {m}"
    );

    let d = run(&req("UPDATE", ANA, POD)
        .old(pod("web:1"))
        .object(pod("evil:1")));
    let m = d.message.unwrap();
    assert!(
        m.contains("pod/x in prod runs what deployment/web declares"),
        "{m}"
    );
    assert!(m.contains("spec.containers"), "names what changed: {m}");
    assert!(
        m.contains("kubectl gitops edit deployment/web -n prod"),
        "{m}"
    );

    let d = run(&req("CREATE", ANA, POD).object(bare_pod(json!({"app": "web"}))));
    let m = d.message.unwrap();
    assert!(m.contains("selects: it would"), "{m}");
}

#[test]
fn break_glass_and_audit_mode_cover_what_runs() {
    let mut cluster = cluster();
    let window = Window {
        by: "olga".into(),
        until: "2026-12-02T13:00:00Z".into(),
        reason: "incident".into(),
        ticket: None,
        opened: Some("2026-12-02T11:30:00Z".into()),
    };
    cluster.namespaces.insert(
        "prod".into(),
        NamespaceInfo {
            break_glass: Some(window),
            ..Default::default()
        },
    );
    let image = req("UPDATE", OPS, POD)
        .old(pod("web:1"))
        .object(pod("fix:1"));
    let d = run_on(&image, &cluster, &config(), None);
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Warn, Reason::BreakGlass),
        "{:?}",
        d.message
    );
    let autoscale = req("CREATE", OPS, HPA).object(hpa("web"));
    let d = run_on(&autoscale, &cluster, &config(), None);
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Warn, Reason::BreakGlass),
        "{:?}",
        d.message
    );
    // Not a member of the break-glass group: denied all the same.
    let d = run_on(
        &req("CREATE", ANA, HPA).object(hpa("web")),
        &cluster,
        &config(),
        None,
    );
    assert_eq!(d.verdict, Verdict::Deny);

    let mut audit = config();
    audit.mode = crate::config::Mode::Audit;
    let d = run_on(
        &req("CREATE", ANA, HPA).object(hpa("web")),
        &self::cluster(),
        &audit,
        None,
    );
    assert_eq!((d.verdict, d.reason), (Verdict::Warn, Reason::Audit));
    let d = run_on(
        &req("UPDATE", ANA, POD)
            .old(pod("web:1"))
            .object(pod("evil:1")),
        &self::cluster(),
        &audit,
        None,
    );
    assert_eq!((d.verdict, d.reason), (Verdict::Warn, Reason::Audit));
}

#[test]
fn enforce_all_namespaces_keep_pod_restarts() {
    let mut cluster = cluster();
    cluster.namespaces.insert(
        "prod".into(),
        NamespaceInfo {
            enforce_all: true,
            managed: true,
            ..Default::default()
        },
    );
    let d = run_on(
        &req("DELETE", ANA, POD).old(pod("web:1")),
        &cluster,
        &config(),
        None,
    );
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Allow, Reason::PodOperation)
    );
    let d = run_on(
        &req("CREATE", ANA, POD).object(bare_pod(json!({"app": "x"}))),
        &cluster,
        &config(),
        None,
    );
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Deny, Reason::Managed),
        "a bare Pod is managed by the namespace"
    );
    let _ = OwnerKind::Namespace;
}

const ROLLOUTS: &str = "system:serviceaccount:argo-rollouts:argo-rollouts";
const KEDA: &str = "system:serviceaccount:keda:keda-operator";

#[test]
fn controllers_of_custom_workloads_are_trusted_beneath_their_kind_only() {
    use Reason::*;
    use Verdict::*;
    let beneath = |kind: &str, name: &str, uid: &str| {
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "x", "namespace": "prod", "uid": "new",
                "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": kind, "name": name, "uid": uid, "controller": true}]},
            "spec": {"replicas": 1}})
    };
    let keda_hpa = |owner: Option<&str>| {
        let mut v = hpa("web");
        if let Some(uid) = owner {
            v["metadata"]["ownerReferences"] = json!([{"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "web", "uid": uid, "controller": true}]);
        }
        v
    };
    let mut impostor = req("CREATE", ROLLOUTS, RS).object(beneath("Rollout", "canary", "r-1"));
    impostor.groups = vec!["system:authenticated"];
    check(vec![
        (
            "Argo Rollouts makes a ReplicaSet beneath Git's Rollout",
            req("CREATE", ROLLOUTS, RS).object(beneath("Rollout", "canary", "r-1")),
            Allow,
            WorkloadController,
        ),
        (
            "a person does",
            req("CREATE", ANA, RS).object(beneath("Rollout", "canary", "r-1")),
            Deny,
            Descendant,
        ),
        ("a user named like its account", impostor, Deny, Descendant),
        (
            "Argo Rollouts under a Deployment: not its kind",
            req("UPDATE", ROLLOUTS, POD)
                .old(pod("web:1"))
                .object(pod("evil:1")),
            Deny,
            Descendant,
        ),
        (
            "KEDA makes the HPA of a ScaledObject",
            req("CREATE", KEDA, HPA).object(keda_hpa(Some("so-1"))),
            Allow,
            WorkloadController,
        ),
        (
            "KEDA makes an HPA of nothing",
            req("CREATE", KEDA, HPA).object(keda_hpa(None)),
            Deny,
            Neighbour,
        ),
        (
            "a person's HPA claiming a ScaledObject",
            req("CREATE", ANA, HPA).object(keda_hpa(Some("so-1"))),
            Deny,
            Neighbour,
        ),
        (
            "a person's HPA on Git's Rollout",
            req("CREATE", ANA, HPA).object(with(
                hpa("canary"),
                "/spec/scaleTargetRef/kind",
                json!("Rollout"),
            )),
            Deny,
            Neighbour,
        ),
    ]);
}

/// Routes found attacking the rules: what Kubernetes' controllers would adopt or build Pods from,
/// which no rule saw.
#[test]
fn what_kubernetes_would_adopt_or_build_from_comes_from_git() {
    use Reason::*;
    use Verdict::*;
    // A ReplicaSet whose own labels (not its Pod template's) the Deployment selects: with no
    // controller, the deployment controller adopts it and runs its Pods as the Deployment's.
    let rs = |labels: Value, owner: Option<Value>| {
        let mut m = meta("evil", labels, "rs-evil", None);
        if let Some(o) = owner {
            m["ownerReferences"] = o;
        }
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": m,
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "evil"}},
                "template": {"metadata": {"labels": {"app": "evil"}}, "spec": {"containers": [{"name": "c", "image": "evil:1"}]}}}})
    };
    let revision = |labels: Value, owner: Option<(&str, &str, &str)>| {
        json!({"apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": meta("db-6c4b", labels, "cr-1", owner), "revision": 9,
            "data": {"spec": {"template": {"spec": {"containers": [{"name": "db", "image": "evil:1"}]}}}}})
    };
    const CR: (&str, &str, &str) = ("apps", "ControllerRevision", "controllerrevisions");
    let set_status = |status: Value| {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta("db", flux(), "ss-db", None),
            "spec": {"selector": {"matchLabels": {"app": "db"}}}, "status": status})
    };
    let steady = json!({"replicas": 3, "readyReplicas": 3, "currentReplicas": 3, "updatedReplicas": 3,
        "currentRevision": "db-5f7d", "updateRevision": "db-5f7d", "collisionCount": 0});
    let with_status = |key: &str, value: Value| {
        let mut s = steady.clone();
        s[key] = value;
        set_status(s)
    };
    let sts_status = |user: &'static str, key: &str, value: Value| {
        req("UPDATE", user, ("apps", "StatefulSet", "statefulsets"))
            .sub("status", "db")
            .old(set_status(steady.clone()))
            .object(with_status(key, value))
    };
    let mut own_sts = set_status(steady.clone());
    own_sts["metadata"] = meta("mine", json!({}), "ss-mine", None);
    let mut own_sts_moved = own_sts.clone();
    own_sts_moved["status"]["currentRevision"] = json!("mine-1");
    check(vec![
        ("a hand-made ReplicaSet with the Deployment's labels", req("CREATE", ANA, RS).object(rs(json!({"app": "web"}), None)), Deny, Neighbour),
        ("orphaned into them later", req("UPDATE", ANA, RS).old(rs(json!({}), None)).object(rs(json!({"app": "web"}), None)), Deny, Neighbour),
        ("with labels of its own", req("CREATE", ANA, RS).object(rs(json!({"app": "evil"}), None)), Allow, Unmanaged),
        (
            "with a controller of its own: not adopted",
            req("CREATE", ANA, RS).object(rs(json!({"app": "web"}), Some(json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "tool", "uid": "d-tool", "controller": true}])))),
            Allow,
            Unmanaged,
        ),
        (
            "claiming the Deployment's uid under another kind (controllers claim by uid)",
            req("CREATE", ANA, RS).object(rs(json!({"app": "web"}), Some(json!([{"apiVersion": "example.com/v1", "kind": "Foo", "name": "web", "uid": "d-web", "controller": true}])))),
            Deny,
            Descendant,
        ),
        ("a ControllerRevision the StatefulSet would adopt", req("CREATE", ANA, CR).object(revision(json!({"app": "db"}), None)), Deny, Neighbour),
        ("one claiming it", req("CREATE", ANA, CR).object(revision(json!({}), Some(("StatefulSet", "db", "ss-db")))), Deny, Descendant),
        ("deleting its revision", req("DELETE", ANA, CR).old(revision(json!({"app": "db"}), Some(("StatefulSet", "db", "ss-db")))), Deny, Descendant),
        ("the StatefulSet controller makes it", req("CREATE", "system:serviceaccount:kube-system:statefulset-controller", CR).object(revision(json!({"app": "db"}), Some(("StatefulSet", "db", "ss-db")))), Allow, System),
        ("a revision of nothing managed", req("CREATE", ANA, CR).object(revision(json!({"app": "other"}), None)), Allow, Unmanaged),
        ("a person points the StatefulSet's status at another revision", sts_status(ANA, "currentRevision", json!("db-6c4b")), Deny, RevisionStatus),
        ("or makes every Pod come from the current one", sts_status(ANA, "currentReplicas", json!(0)), Deny, RevisionStatus),
        ("a person writes the rest of its status", sts_status(ANA, "readyReplicas", json!(1)), Allow, Status),
        ("the StatefulSet controller writes it", sts_status("system:serviceaccount:kube-system:statefulset-controller", "currentRevision", json!("db-6c4b")), Allow, System),
        ("the agent", sts_status(KC, "currentRevision", json!("db-6c4b")), Allow, Agent),
        ("a dry run warns", sts_status(ANA, "currentRevision", json!("db-6c4b")).dry(), Warn, DryRun),
        (
            "a StatefulSet nobody manages",
            req("UPDATE", ANA, ("apps", "StatefulSet", "statefulsets")).sub("status", "mine").old(own_sts).object(own_sts_moved),
            Allow,
            Status,
        ),
        (
            "an exception from Git set by hand on a Pod beneath the Deployment",
            req("UPDATE", ANA, POD).old(pod("web:1")).object(with(pod("web:1"), "/metadata/annotations", json!({"gitops-guard.dev/allow": "manual"}))),
            Deny,
            Descendant,
        ),
    ]);
    let d = run(&sts_status(ANA, "currentRevision", json!("db-6c4b")));
    let m = d.message.unwrap();
    assert!(
        m.starts_with("statefulset/db in prod: this status write changes status.currentRevision, which the StatefulSet controller builds Pods from"),
        "{m}"
    );
    assert!(
        m.contains("kubectl gitops edit statefulset/db -n prod"),
        "{m}"
    );
    let d = run(&req("CREATE", ANA, RS).object(rs(json!({"app": "web"}), None)));
    let m = d.message.unwrap();
    assert!(
        m.starts_with("replicaset/x in prod carries labels that deployment/web in prod, which is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1) selects, and no controller: deployment/web would adopt it as its own and run its Pods."),
        "{m}"
    );
}

/// In an `enforce: all` namespace a ReplicaSet is managed too; what steers it is judged by its
/// Deployment, whose exceptions come from Git (the ReplicaSet's annotations are anyone's).
#[test]
fn a_replicaset_is_steered_through_its_deployment() {
    let mut cluster = cluster();
    for f in cluster.facts.iter_mut().filter(|f| f.uid == "rs-web") {
        f.owners = vec![OwnerRef {
            kind: OwnerKind::Namespace,
            namespace: "prod".into(),
            name: "prod".into(),
        }];
        f.exceptions = [(
            "gitops-guard.dev/allow-fields".to_string(),
            "spec.replicas".to_string(),
        )]
        .into();
    }
    let hpa_on_rs = with(
        with(
            hpa("web-7d9f"),
            "/spec/scaleTargetRef/kind",
            json!("ReplicaSet"),
        ),
        "/metadata/name",
        json!("h"),
    );
    let d = run_on(
        &req("CREATE", ANA, HPA).object(hpa_on_rs),
        &cluster,
        &config(),
        None,
    );
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Deny, Reason::Neighbour),
        "{:?}",
        d.message
    );
    assert!(
        d.message
            .as_deref()
            .unwrap_or_default()
            .contains("spec.replicas of deployment/web in prod"),
        "{:?}",
        d.message
    );
}
