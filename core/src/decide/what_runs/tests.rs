//! The descendant and neighbour rules, each as a table, through [`decide`](crate::decide).

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::config::Config;
use crate::decide::{Decision, Lookup, Reason, Verdict, decide};
use crate::exception::Window;
use crate::ingress;
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
    /// Ingresses, in any namespace ([`ingresses`]).
    ingresses: Vec<ingress::Facts>,
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
        ingresses: ingresses(),
    }
}

/// An Ingress `name` in `ns` with `labels` and `spec`.
fn ingress_object(ns: &str, name: &str, labels: Value, spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": ns, "uid": format!("i-{ns}-{name}"), "labels": labels, "annotations": {}},
        "spec": spec})
}

fn rule(host: &str, path: &str) -> Value {
    json!({"host": host, "http": {"paths": [{"path": path, "pathType": "Prefix",
        "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}})
}

/// Git's Ingresses: `prod/web` (`app.example.com`), `shop/store` (`*.shop.example.com`),
/// `edge/fallback` (the default backend), `prod/open` (`open.example.com`, `allow: manual` from
/// Git); and a hand-made one, `prod/tool` (`tool.example.com`).
fn ingresses() -> Vec<ingress::Facts> {
    let config = Config::default();
    let mut open = ingress_object(
        "prod",
        "open",
        flux(),
        json!({"rules": [rule("open.example.com", "/")]}),
    );
    open["metadata"]["annotations"] = json!({"gitops-guard.dev/allow": "manual"});
    [
        ingress_object(
            "prod",
            "web",
            flux(),
            json!({"rules": [rule("app.example.com", "/")]}),
        ),
        ingress_object(
            "shop",
            "store",
            flux(),
            json!({"rules": [rule("*.shop.example.com", "/")]}),
        ),
        ingress_object(
            "edge",
            "fallback",
            flux(),
            json!({"defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}}),
        ),
        open,
        ingress_object(
            "prod",
            "tool",
            json!({}),
            json!({"rules": [rule("tool.example.com", "/")]}),
        ),
    ]
    .iter()
    .map(|v| ingress::facts(v, &config))
    .collect()
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
    fn claims(&self, this: (&str, &str), hosts: &[ingress::Host]) -> Vec<ingress::Claim> {
        ingress::claims_among(self.ingresses.iter(), this, hosts, |f| f.owners.clone())
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
const ING: (&str, &str, &str) = ("networking.k8s.io", "Ingress", "ingresses");
const EXT_ING: (&str, &str, &str) = ("extensions", "Ingress", "ingresses");
const CERT_MANAGER: &str = "system:serviceaccount:cert-manager:cert-manager";

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

/// A hand-made Ingress in `prod` with `spec`.
fn handmade_ingress(spec: Value) -> Value {
    ingress_object("prod", "x", json!({}), spec)
}

#[test]
fn a_handmade_ingress_may_not_claim_a_managed_ingress_host() {
    use Reason::*;
    use Verdict::*;
    let on = |host: &str, path: &str| handmade_ingress(json!({"rules": [rule(host, path)]}));
    let solver = |uid: &str| {
        let mut v = on("app.example.com", "/.well-known/acme-challenge/t0k3n");
        v["metadata"]["ownerReferences"] = json!([{"apiVersion": "acme.cert-manager.io/v1", "kind": "Challenge", "name": "c", "uid": uid, "controller": true}]);
        v
    };
    let v1beta1 = json!({"apiVersion": "extensions/v1beta1", "kind": "Ingress",
        "metadata": {"name": "x", "namespace": "prod", "labels": {}},
        "spec": {"rules": [{"host": "app.example.com", "http": {"paths": [{"path": "/admin", "backend": {"serviceName": "evil", "servicePort": 80}}]}}]}});
    let mut impostor = req("CREATE", CERT_MANAGER, ING).object(solver("ch-1"));
    impostor.groups = vec!["system:authenticated"];
    check(vec![
        ("the managed host, another path", req("CREATE", ANA, ING).object(on("app.example.com", "/admin")), Deny, Neighbour),
        ("the managed host, the same path", req("CREATE", ANA, ING).object(on("app.example.com", "/")), Deny, Neighbour),
        ("the host in other letters, with a trailing dot", req("CREATE", ANA, ING).object(on("APP.Example.com.", "/")), Deny, Neighbour),
        ("a wildcard over the managed host", req("CREATE", ANA, ING).object(on("*.example.com", "/")), Deny, Neighbour),
        ("a host under a managed wildcard, in another namespace", req("CREATE", ANA, ING).object(on("cart.shop.example.com", "/")), Deny, Neighbour),
        ("a host two labels under a managed wildcard", req("CREATE", ANA, ING).object(on("a.cart.shop.example.com", "/")), Allow, Unmanaged),
        ("only its TLS section names the managed host", req("CREATE", ANA, ING).object(handmade_ingress(json!({"rules": [rule("other.example.com", "/")], "tls": [{"hosts": ["app.example.com"], "secretName": "evil"}]}))), Deny, Neighbour),
        ("a rule without a host beside a managed default backend", req("CREATE", ANA, ING).object(on("", "/")), Deny, Neighbour),
        ("a default backend beside a managed one", req("CREATE", ANA, ING).object(handmade_ingress(json!({"defaultBackend": {"service": {"name": "evil", "port": {"number": 80}}}}))), Deny, Neighbour),
        ("extensions/v1beta1, as kubectl of 1.20 may send it", req("CREATE", ANA, EXT_ING).object(v1beta1), Deny, Neighbour),
        ("moving a hand-made Ingress onto the managed host", req("UPDATE", ANA, ING).old(on("other.example.com", "/")).object(on("app.example.com", "/")), Deny, Neighbour),
        ("moving it off", req("UPDATE", ANA, ING).old(on("app.example.com", "/")).object(on("other.example.com", "/")), Allow, Unmanaged),
        ("deleting it", req("DELETE", ANA, ING).old(on("app.example.com", "/")), Allow, Unmanaged),
        ("a host nobody's Ingress from Git serves", req("CREATE", ANA, ING).object(on("other.example.com", "/")), Allow, Unmanaged),
        ("the host of a hand-made Ingress", req("CREATE", ANA, ING).object(on("tool.example.com", "/")), Allow, Unmanaged),
        ("a host Git opens to people (allow: manual on its Ingress)", req("CREATE", ANA, ING).object(on("open.example.com", "/x")), Allow, Unmanaged),
        ("no host at all, no default backend", req("CREATE", ANA, ING).object(handmade_ingress(json!({}))), Allow, Unmanaged),
        ("the agent of the managed Ingress", req("CREATE", KC, ING).object(on("app.example.com", "/")), Allow, Unmanaged),
        ("cert-manager's HTTP-01 solver beneath a Challenge", req("CREATE", CERT_MANAGER, ING).object(solver("ch-1")), Allow, WorkloadController),
        ("a user named like cert-manager's account", impostor, Deny, Neighbour),
        ("a person's Ingress claiming a Challenge", req("CREATE", ANA, ING).object(solver("ch-1")), Deny, Neighbour),
        ("a dry run warns", req("CREATE", ANA, ING).object(on("app.example.com", "/")).dry(), Warn, DryRun),
        (
            "a person changes the managed Ingress itself",
            req("UPDATE", ANA, ING)
                .old(ingress_object("prod", "web", flux(), json!({"rules": [rule("app.example.com", "/")]})))
                .object(ingress_object("prod", "web", flux(), json!({"rules": [rule("app.example.com", "/evil")]}))),
            Deny,
            Managed,
        ),
    ]);

    let d = run(&req("CREATE", ANA, ING).object(on("*.example.com", "/")));
    let m = d.message.unwrap();
    assert!(
        m.starts_with("ingress/x in prod claims the host *.example.com (overlapping app.example.com), which ingress/web in prod serves, managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1)"),
        "{m}"
    );
    assert!(
        m.contains("kubectl gitops status ingress/web -n prod"),
        "{m}"
    );
    let d = run(&req("UPDATE", ANA, ING)
        .old(on("app.example.com", "/"))
        .object(on("cart.shop.example.com", "/")));
    let m = d.message.unwrap();
    assert!(m.contains("which ingress/store in shop serves"), "{m}");
    assert!(
        m.contains("or remove it: kubectl delete ingress/x -n prod"),
        "{m}"
    );
    let d = run(&req("CREATE", ANA, ING).object(on("", "/")));
    let m = d.message.unwrap();
    assert!(
        m.contains("claims the default backend (no host), which ingress/fallback in edge serves"),
        "{m}"
    );
}

#[test]
fn load_balancer_status_of_managed_services_and_ingresses() {
    use Reason::*;
    use Verdict::*;
    const SVC: (&str, &str, &str) = ("", "Service", "services");
    const METALLB: &str = "system:serviceaccount:metallb-system:controller";
    const NGINX: &str = "system:serviceaccount:ingress-nginx:ingress-nginx";
    const SERVICE_CONTROLLER: &str = "system:serviceaccount:kube-system:service-controller";
    let service = |labels: Value, ip: Option<&str>| {
        let mut v = json!({"apiVersion": "v1", "kind": "Service", "metadata": meta("web", labels, "s-web", None),
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"}}, "status": {"loadBalancer": {}}});
        if let Some(ip) = ip {
            v["status"]["loadBalancer"] = json!({"ingress": [{"ip": ip}]});
        }
        v
    };
    let ingress = |labels: Value, ip: Option<&str>| {
        let mut v = ingress_object(
            "prod",
            "web",
            labels,
            json!({"rules": [rule("app.example.com", "/")]}),
        );
        v["status"] = json!({"loadBalancer": {}});
        if let Some(ip) = ip {
            v["status"]["loadBalancer"] = json!({"ingress": [{"ip": ip}]});
        }
        v
    };
    let status = |user: &'static str, what, old: Value, new: Value| {
        req("UPDATE", user, what)
            .sub("status", "web")
            .old(old)
            .object(new)
    };
    let mut other_condition = service(flux(), Some("192.0.2.1"));
    other_condition["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    let mut allowed = service(flux(), None);
    allowed["metadata"]["annotations"] = json!({"gitops-guard.dev/allow": "manual"});
    let mut allowed_after = allowed.clone();
    allowed_after["status"]["loadBalancer"] = json!({"ingress": [{"ip": "203.0.113.9"}]});
    let mut impostor = status(
        METALLB,
        SVC,
        service(flux(), None),
        service(flux(), Some("203.0.113.9")),
    );
    impostor.groups = vec!["system:authenticated"];
    check(vec![
        (
            "a person points a managed Service's load balancer elsewhere",
            status(
                ANA,
                SVC,
                service(flux(), Some("192.0.2.1")),
                service(flux(), Some("203.0.113.9")),
            ),
            Deny,
            LoadBalancerStatus,
        ),
        (
            "a person gives one an address",
            status(
                ANA,
                SVC,
                service(flux(), None),
                service(flux(), Some("203.0.113.9")),
            ),
            Deny,
            LoadBalancerStatus,
        ),
        (
            "a person clears it",
            status(
                ANA,
                SVC,
                service(flux(), Some("192.0.2.1")),
                service(flux(), None),
            ),
            Deny,
            LoadBalancerStatus,
        ),
        (
            "a person changes other status of it",
            status(
                ANA,
                SVC,
                service(flux(), Some("192.0.2.1")),
                other_condition,
            ),
            Allow,
            Status,
        ),
        (
            "Kubernetes' service controller",
            status(
                SERVICE_CONTROLLER,
                SVC,
                service(flux(), None),
                service(flux(), Some("192.0.2.1")),
            ),
            Allow,
            System,
        ),
        (
            "MetalLB's controller (loadBalancerControllers)",
            status(
                METALLB,
                SVC,
                service(flux(), None),
                service(flux(), Some("192.0.2.1")),
            ),
            Allow,
            WorkloadController,
        ),
        (
            "a user named like MetalLB's account",
            impostor,
            Deny,
            LoadBalancerStatus,
        ),
        (
            "an ingress controller writes a Service's: not its kind",
            status(
                NGINX,
                SVC,
                service(flux(), None),
                service(flux(), Some("192.0.2.1")),
            ),
            Deny,
            LoadBalancerStatus,
        ),
        (
            "the agent",
            status(
                KC,
                SVC,
                service(flux(), None),
                service(flux(), Some("192.0.2.1")),
            ),
            Allow,
            Agent,
        ),
        (
            "a Service nobody manages",
            status(
                ANA,
                SVC,
                service(json!({}), None),
                service(json!({}), Some("203.0.113.9")),
            ),
            Allow,
            Status,
        ),
        (
            "a Service Git opens to people (allow: manual)",
            status(ANA, SVC, allowed, allowed_after),
            Allow,
            AllowManual,
        ),
        (
            "a person points a managed Ingress's address elsewhere",
            status(
                ANA,
                ING,
                ingress(flux(), Some("192.0.2.1")),
                ingress(flux(), Some("203.0.113.9")),
            ),
            Deny,
            LoadBalancerStatus,
        ),
        (
            "the same through extensions/v1beta1",
            status(
                ANA,
                EXT_ING,
                ingress(flux(), None),
                ingress(flux(), Some("203.0.113.9")),
            ),
            Deny,
            LoadBalancerStatus,
        ),
        (
            "ingress-nginx writes a managed Ingress's",
            status(
                NGINX,
                ING,
                ingress(flux(), None),
                ingress(flux(), Some("192.0.2.1")),
            ),
            Allow,
            WorkloadController,
        ),
        (
            "ingress-nginx through extensions/v1beta1",
            status(
                NGINX,
                EXT_ING,
                ingress(flux(), None),
                ingress(flux(), Some("192.0.2.1")),
            ),
            Allow,
            WorkloadController,
        ),
        (
            "MetalLB writes an Ingress's: not its kind",
            status(
                METALLB,
                ING,
                ingress(flux(), None),
                ingress(flux(), Some("192.0.2.1")),
            ),
            Deny,
            LoadBalancerStatus,
        ),
        (
            "an Ingress nobody manages",
            status(
                ANA,
                ING,
                ingress(json!({}), None),
                ingress(json!({}), Some("203.0.113.9")),
            ),
            Allow,
            Status,
        ),
        (
            "a dry run warns",
            status(
                ANA,
                SVC,
                service(flux(), None),
                service(flux(), Some("203.0.113.9")),
            )
            .dry(),
            Warn,
            DryRun,
        ),
    ]);
    // In an `enforce: all` namespace (from Git) every Service is managed.
    let mut cluster = cluster();
    cluster.namespaces.insert(
        "prod".into(),
        NamespaceInfo {
            enforce_all: true,
            ..NamespaceInfo::default()
        },
    );
    let r = status(
        ANA,
        SVC,
        service(json!({}), None),
        service(json!({}), Some("203.0.113.9")),
    );
    assert_eq!(
        run_on(&r, &cluster, &config(), None).reason,
        LoadBalancerStatus
    );

    let d = run(&status(
        ANA,
        SVC,
        service(flux(), None),
        service(flux(), Some("203.0.113.9")),
    ));
    let m = d.message.unwrap();
    assert!(
        m.starts_with("service/web in prod: this status write changes status.loadBalancer"),
        "{m}"
    );
    assert!(m.contains("service/web in prod is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1)"), "{m}");
    assert!(m.contains("loadBalancerControllers (kind Service)"), "{m}");
}

/// A person points a managed object's `ownerReferences` at another managed workload, one whose
/// `allow: manual` came from Git (`sandbox`): the object stays Git's, decided by its own owners,
/// and the workload's exception does not reach it. Objects that were beneath the workload before
/// keep its allowances; the agent may still set the reference.
#[test]
fn pointing_a_managed_object_at_a_workload_does_not_borrow_its_exception() {
    use Reason::*;
    use Verdict::*;
    let config = config();
    let mut cl = cluster();
    let mut sandbox = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": meta("sandbox", flux(), "d-sandbox", None),
        "spec": {"selector": {"matchLabels": {"app": "sandbox"}},
                 "template": {"metadata": {"labels": {"app": "sandbox"}}}}});
    sandbox["metadata"]["annotations"] = json!({"gitops-guard.dev/allow": "manual"});
    cl.facts
        .push(workload::facts(kind("Deployment"), &sandbox, &config));
    // `ownerReferences` naming the sandbox as controller (`meta`'s last argument).
    let sandbox_ref = ("Deployment", "sandbox", "d-sandbox");
    let cm = |value: &str, owner| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": meta("app-config", flux(), "cm-1", owner),
            "data": {"DATABASE_URL": value}})
    };
    let web = |image: &str, owner| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": meta("web", flux(), "d-web", owner),
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": image}]}}}})
    };
    const CM: (&str, &str, &str) = ("", "ConfigMap", "configmaps");
    let (db, evil) = (
        "postgres://db.prod:5432/app",
        "postgres://evil.example.com/app",
    );
    let hand_made_pod = |image: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": meta("evil", json!({"app": "sandbox"}), "p-2", Some(sandbox_ref)),
            "spec": {"containers": [{"name": "c", "image": image}]}})
    };
    let cases = vec![
        (
            "a managed ConfigMap pointed at sandbox while changed",
            req("UPDATE", ANA, CM)
                .sub("", "app-config")
                .old(cm(db, None))
                .object(cm(evil, Some(sandbox_ref))),
            Deny,
            Managed,
        ),
        (
            "a managed ConfigMap only pointed at sandbox",
            req("UPDATE", ANA, CM)
                .sub("", "app-config")
                .old(cm(db, None))
                .object(cm(db, Some(sandbox_ref))),
            Deny,
            Managed,
        ),
        (
            "a managed Deployment pointed at sandbox with a new image",
            req("UPDATE", ANA, DEPLOY)
                .sub("", "web")
                .old(web("web:1", None))
                .object(web("evil:latest", Some(sandbox_ref))),
            Deny,
            Managed,
        ),
        (
            "the agent setting the reference",
            req("UPDATE", KC, CM)
                .sub("", "app-config")
                .old(cm(db, None))
                .object(cm(db, Some(sandbox_ref))),
            Allow,
            Agent,
        ),
        (
            "a hand-made Pod already beneath sandbox, changed by hand",
            req("UPDATE", ANA, POD)
                .sub("", "evil")
                .old(hand_made_pod("tool:1"))
                .object(hand_made_pod("tool:2")),
            Allow,
            AllowManual,
        ),
    ];
    for (name, r, verdict, reason) in cases {
        let d = run_on(&r, &cl, &config, None);
        assert_eq!(
            (d.verdict, d.reason),
            (verdict, reason),
            "{name}: {:?}",
            d.message
        );
    }
}
