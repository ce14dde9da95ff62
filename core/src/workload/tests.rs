use std::collections::HashMap;

use serde_json::json;

use super::*;
use crate::owner::OwnerKind;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn selectors_select_as_kubernetes_does() {
    let web = labels(&[("app", "web"), ("tier", "front")]);
    let none = labels(&[]);
    let ls = |v: serde_json::Value| Selector::of_label_selector(Some(&v), false);
    let cases: &[(&str, Selector, &BTreeMap<String, String>, bool)] = &[
        (
            "service map",
            Selector::of_map(Some(&json!({"app": "web"}))),
            &web,
            true,
        ),
        (
            "service map, other value",
            Selector::of_map(Some(&json!({"app": "db"}))),
            &web,
            false,
        ),
        (
            "empty service selector selects nothing",
            Selector::of_map(Some(&json!({}))),
            &web,
            false,
        ),
        (
            "missing selector selects nothing",
            Selector::of_map(None),
            &web,
            false,
        ),
        (
            "matchLabels",
            ls(json!({"matchLabels": {"app": "web"}})),
            &web,
            true,
        ),
        (
            "In",
            ls(
                json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["api", "web"]}]}),
            ),
            &web,
            true,
        ),
        (
            "NotIn",
            ls(
                json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}),
            ),
            &web,
            false,
        ),
        (
            "NotIn, key absent",
            ls(json!({"matchExpressions": [{"key": "x", "operator": "NotIn", "values": ["web"]}]})),
            &web,
            true,
        ),
        (
            "Exists",
            ls(json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]})),
            &web,
            true,
        ),
        (
            "DoesNotExist",
            ls(json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]})),
            &web,
            false,
        ),
        (
            "unknown operator selects nothing",
            ls(json!({"matchExpressions": [{"key": "app", "operator": "Like"}]})),
            &web,
            false,
        ),
        (
            "both must hold",
            ls(
                json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["back"]}]}),
            ),
            &web,
            false,
        ),
        (
            "empty LabelSelector selects nothing",
            ls(json!({})),
            &web,
            false,
        ),
        (
            "empty policy/v1 selector selects everything",
            Selector::of_label_selector(Some(&json!({})), true),
            &web,
            true,
        ),
        (
            "no labels, no match",
            ls(json!({"matchLabels": {"app": "web"}})),
            &none,
            false,
        ),
    ];
    for (name, selector, pod, want) in cases {
        assert_eq!(selector.matches(pod), *want, "{name}");
    }
}

#[test]
fn the_controller_is_the_reference_marked_controller() {
    let cases = [
        ("none", json!(null), None),
        ("not a list", json!({"kind": "ReplicaSet"}), None),
        (
            "only a non-controller owner",
            json!([{"kind": "ConfigMap", "name": "c", "uid": "1"}]),
            None,
        ),
        (
            "the controller among owners",
            json!([{"kind": "ConfigMap", "name": "c", "uid": "1"}, {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "2", "controller": true}]),
            Some(("apps", "ReplicaSet", "web-1", "2")),
        ),
        (
            "a controller without uid counts for nothing",
            json!([{"kind": "ReplicaSet", "name": "web-1", "controller": true}]),
            None,
        ),
    ];
    for (name, refs, want) in cases {
        let got = controller_of(&refs);
        let want = want.map(|(g, k, n, u)| ControllerRef {
            group: g.into(),
            kind: k.into(),
            name: n.into(),
            uid: u.into(),
        });
        assert_eq!(got, want, "{name}");
    }
}

fn object(
    api_version: &str,
    kind: &str,
    name: &str,
    labels: serde_json::Value,
) -> serde_json::Value {
    json!({"apiVersion": api_version, "kind": kind,
        "metadata": {"name": name, "namespace": "prod", "labels": labels}})
}

#[test]
fn what_each_kind_steers() {
    let read = |v: &serde_json::Value| {
        let text = v.to_string();
        let o = Object::from_json(&text).unwrap();
        let group = o.group().to_string();
        let kind = o.kind.clone();
        let spec = v.get("spec").cloned().unwrap_or(Value::Null);
        steers(&group, &kind, &o, &spec)
    };
    let workload = |kind: &str, name: &str, field| Target::Workload {
        kind: kind.into(),
        name: name.into(),
        field,
    };
    let with_spec = |mut v: serde_json::Value, spec: serde_json::Value| {
        v["spec"] = spec;
        v
    };
    let cases = [
        (
            "HPA",
            with_spec(
                object(
                    "autoscaling/v2beta2",
                    "HorizontalPodAutoscaler",
                    "h",
                    json!({}),
                ),
                json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}),
            ),
            Some(workload("Deployment", "web", Some("spec.replicas"))),
        ),
        (
            "KEDA ScaledObject defaults to a Deployment",
            with_spec(
                object("keda.sh/v1alpha1", "ScaledObject", "s", json!({})),
                json!({"scaleTargetRef": {"name": "web"}}),
            ),
            Some(workload("Deployment", "web", Some("spec.replicas"))),
        ),
        (
            "VPA",
            with_spec(
                object(
                    "autoscaling.k8s.io/v1",
                    "VerticalPodAutoscaler",
                    "v",
                    json!({}),
                ),
                json!({"targetRef": {"kind": "StatefulSet", "name": "db"}}),
            ),
            Some(workload("StatefulSet", "db", None)),
        ),
        (
            "an HPA without a target steers nothing",
            object("autoscaling/v1", "HorizontalPodAutoscaler", "h", json!({})),
            None,
        ),
        (
            "Pod: its labels",
            object("v1", "Pod", "evil", json!({"app": "web"})),
            Some(Target::Pods(labels(&[("app", "web")]))),
        ),
        (
            "Deployment: its template's labels",
            with_spec(
                object("apps/v1", "Deployment", "evil", json!({"x": "y"})),
                json!({"template": {"metadata": {"labels": {"app": "web"}}}}),
            ),
            Some(Target::Pods(labels(&[("app", "web")]))),
        ),
        (
            "CronJob: its job template's Pod labels",
            with_spec(
                object("batch/v1beta1", "CronJob", "evil", json!({})),
                json!({"jobTemplate": {"spec": {"template": {"metadata": {"labels": {"app": "web"}}}}}}),
            ),
            Some(Target::Pods(labels(&[("app", "web")]))),
        ),
        (
            "EndpointSlice: the Service it names",
            object(
                "discovery.k8s.io/v1beta1",
                "EndpointSlice",
                "web-x",
                json!({"kubernetes.io/service-name": "web"}),
            ),
            Some(Target::Service("web".into())),
        ),
        (
            "an EndpointSlice of no Service",
            object(
                "discovery.k8s.io/v1beta1",
                "EndpointSlice",
                "web-x",
                json!({}),
            ),
            None,
        ),
        (
            "Endpoints: the Service of its name",
            object("v1", "Endpoints", "web", json!({})),
            Some(Target::Service("web".into())),
        ),
        (
            "ConfigMap steers nothing",
            object("v1", "ConfigMap", "c", json!({})),
            None,
        ),
        (
            "a Service steers nothing",
            object("v1", "Service", "s", json!({})),
            None,
        ),
    ];
    for (name, v, want) in cases {
        assert_eq!(read(&v), want, "{name}");
    }
    let pdb = with_spec(
        object("policy/v1", "PodDisruptionBudget", "p", json!({})),
        json!({"selector": {}}),
    );
    let Some(Target::Selected(s)) = read(&pdb) else {
        panic!("a PDB steers what it selects")
    };
    assert!(
        s.matches(&labels(&[("app", "web")])),
        "policy/v1: {{}} selects every Pod"
    );
    let pdb = with_spec(
        object("policy/v1beta1", "PodDisruptionBudget", "p", json!({})),
        json!({"selector": {}}),
    );
    let Some(Target::Selected(s)) = read(&pdb) else {
        panic!("a PDB steers what it selects")
    };
    assert!(
        !s.matches(&labels(&[("app", "web")])),
        "policy/v1beta1: {{}} selects none"
    );
}

/// A namespace's workloads: a managed Deployment `web`, its ReplicaSet, a Service, a managed Job.
struct Namespace {
    facts: Vec<Facts>,
}

impl Namespace {
    fn new() -> Namespace {
        let config = Config::default();
        let flux = json!({"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"});
        let flux_labels = flux.clone();
        let mut deployment = object("apps/v1", "Deployment", "web", flux.clone());
        deployment["metadata"]["uid"] = json!("d-1");
        deployment["metadata"]["annotations"] =
            json!({"gitops-guard.dev/allow-fields": "spec.replicas"});
        deployment["spec"] = json!({"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}}});
        let mut rs = object("apps/v1", "ReplicaSet", "web-7d9f", json!({"app": "web"}));
        rs["metadata"]["uid"] = json!("rs-1");
        rs["metadata"]["ownerReferences"] =
            json!([{"kind": "Deployment", "name": "web", "uid": "d-1", "controller": true}]);
        rs["spec"] = json!({"selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d9f"}},
            "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "7d9f"}}}});
        let mut service = object("v1", "Service", "web", flux);
        service["spec"] = json!({"selector": {"app": "web"}});
        let mut own = object("apps/v1", "Deployment", "tool", json!({}));
        own["metadata"]["uid"] = json!("d-2");
        own["spec"] = json!({"selector": {"matchLabels": {"app": "tool"}},
            "template": {"metadata": {"labels": {"app": "tool"}}}});
        // Git's Job whose selector is of `NotIn` alone: it selects Pods without labels too.
        let mut job = object("batch/v1", "Job", "batch", flux_labels.clone());
        job["metadata"]["uid"] = json!("j-1");
        job["spec"] = json!({"selector": {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web", "tool", "tool2"]}]}});
        // A cycle: two ReplicaSets naming each other.
        let mut a = object("apps/v1", "ReplicaSet", "a", json!({}));
        a["metadata"]["uid"] = json!("a");
        a["metadata"]["ownerReferences"] =
            json!([{"kind": "ReplicaSet", "name": "b", "uid": "b", "controller": true}]);
        let mut b = a.clone();
        b["metadata"]["uid"] = json!("b");
        b["metadata"]["ownerReferences"] =
            json!([{"kind": "ReplicaSet", "name": "a", "uid": "a", "controller": true}]);
        let kind = |k: &str| WORKLOADS.iter().find(|w| w.kind == k).unwrap();
        Namespace {
            facts: vec![
                facts(kind("Deployment"), &deployment, &config),
                facts(kind("ReplicaSet"), &rs, &config),
                facts(&SERVICE, &service, &config),
                facts(kind("Deployment"), &own, &config),
                facts(kind("ReplicaSet"), &a, &config),
                facts(kind("ReplicaSet"), &b, &config),
                facts(kind("Job"), &job, &config),
            ],
        }
    }

    fn by_uid(&self) -> HashMap<&str, &Facts> {
        self.facts.iter().map(|f| (f.uid.as_str(), f)).collect()
    }
}

fn managed(f: &Facts) -> Vec<OwnerRef> {
    f.owners.clone()
}

#[test]
fn chains_lead_to_the_managed_workload() {
    let ns = Namespace::new();
    let index = ns.by_uid();
    let by_uid = |uid: &str| index.get(uid).copied();
    let cref = |kind: &str, uid: &str| ControllerRef {
        group: "apps".into(),
        kind: kind.into(),
        name: String::new(),
        uid: uid.into(),
    };
    let cases = [
        (
            "a Pod's ReplicaSet leads to its Deployment",
            "prod",
            cref("ReplicaSet", "rs-1"),
            Some("deployment/web"),
        ),
        (
            "the Deployment itself",
            "prod",
            cref("Deployment", "d-1"),
            Some("deployment/web"),
        ),
        (
            "a kind that is not the uid's leads there too: controllers claim by uid alone",
            "prod",
            cref("StatefulSet", "rs-1"),
            Some("deployment/web"),
        ),
        (
            "another namespace leads nowhere",
            "dev",
            cref("ReplicaSet", "rs-1"),
            None,
        ),
        (
            "an unmanaged Deployment",
            "prod",
            cref("Deployment", "d-2"),
            None,
        ),
        ("an unknown uid", "prod", cref("ReplicaSet", "zz"), None),
        ("a cycle ends", "prod", cref("ReplicaSet", "a"), None),
    ];
    for (name, namespace, start, want) in cases {
        let got = ancestor(namespace, &start, by_uid, managed);
        assert_eq!(
            got.as_ref().map(ToString::to_string).as_deref(),
            want,
            "{name}"
        );
        if let Some(s) = got {
            assert_eq!(s.owners[0].kind, OwnerKind::Kustomization);
            assert!(s.exceptions.contains_key("gitops-guard.dev/allow-fields"));
        }
    }
}

#[test]
fn targets_find_the_managed_objects_they_steer() {
    let ns = Namespace::new();
    let index = ns.by_uid();
    let by_uid = |uid: &str| index.get(uid).copied();
    let names = |t: Target| -> Vec<String> {
        steered_among(ns.facts.iter(), &t, by_uid, managed)
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let workload = |kind: &str, name: &str| Target::Workload {
        kind: kind.into(),
        name: name.into(),
        field: None,
    };
    let cases: Vec<(&str, Target, Vec<&str>)> = vec![
        (
            "an HPA on the managed Deployment",
            workload("Deployment", "web"),
            vec!["deployment/web"],
        ),
        (
            "an HPA on the ReplicaSet, by name: not managed itself",
            workload("ReplicaSet", "web-7d9f"),
            vec!["deployment/web"],
        ),
        (
            "an HPA on an unmanaged Deployment",
            workload("Deployment", "tool"),
            vec![],
        ),
        (
            "an HPA naming a Service kind",
            workload("Service", "web"),
            vec![],
        ),
        (
            "a Pod with the Service's and the ReplicaSet's labels",
            Target::Pods(labels(&[("app", "web"), ("pod-template-hash", "7d9f")])),
            vec!["service/web", "deployment/web"],
        ),
        (
            "a Pod only the Service selects",
            Target::Pods(labels(&[("app", "web")])),
            vec!["service/web", "deployment/web"],
        ),
        (
            "a Pod nobody selects",
            Target::Pods(labels(&[("app", "tool2")])),
            vec![],
        ),
        (
            "a Pod without labels: a selector of NotIn alone selects it",
            Target::Pods(labels(&[])),
            vec!["job/batch"],
        ),
        (
            "a ReplicaSet without a controller, labelled as the Deployment selects",
            Target::Adopted {
                kind: "ReplicaSet",
                labels: labels(&[("app", "web")]),
            },
            vec!["deployment/web"],
        ),
        (
            "a ControllerRevision so labelled: no StatefulSet or DaemonSet adopts it here",
            Target::Adopted {
                kind: "ControllerRevision",
                labels: labels(&[("app", "web")]),
            },
            vec![],
        ),
        (
            "a PDB selecting the Deployment's Pods",
            Target::Selected(Selector::of_label_selector(
                Some(&json!({"matchLabels": {"app": "web"}})),
                false,
            )),
            vec!["deployment/web"],
        ),
        (
            "endpoints of the managed Service",
            Target::Service("web".into()),
            vec!["service/web"],
        ),
        (
            "endpoints of another Service",
            Target::Service("db".into()),
            vec![],
        ),
    ];
    for (name, target, want) in cases {
        assert_eq!(names(target), want, "{name}");
    }
}

#[test]
fn selector_text_selects_as_labels_parse_does() {
    let web = labels(&[("app", "web"), ("tier", "front"), ("replicas", "3")]);
    let cases: &[(&str, bool)] = &[
        ("", true),
        ("app=web", true),
        ("app==web", true),
        ("app = web , tier", true),
        ("app!=web", false),
        ("app!=db", true),
        ("missing!=x", true),
        ("!missing", true),
        ("!app", false),
        ("app in (web, api)", true),
        ("app in (api)", false),
        ("app notin (api,db)", true),
        ("app notin (web)", false),
        ("missing notin (web)", true),
        ("missing in (web)", false),
        ("tier,app in (web)", true),
        ("replicas>2", true),
        ("replicas<3", false),
        ("app>2", false),
        ("app=", false),
        ("example.com/app", false),
    ];
    for (text, want) in cases {
        let selector = Selector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(selector.matches(&web), *want, "{text:?}");
    }
    let empty_value = labels(&[("app", "")]);
    assert!(Selector::parse("app=").unwrap().matches(&empty_value));
    assert!(
        Selector::parse("app in (web,)")
            .unwrap()
            .matches(&empty_value)
    );
}

#[test]
fn selector_text_that_kubernetes_refuses_is_an_error_that_says_why() {
    let cases: &[(&str, &str)] = &[
        ("app in ()", "empty"),
        ("app in web", "parentheses"),
        ("app in (web", "not closed"),
        ("app web", "operator"),
        ("app=web,", "comma must be followed"),
        (",app", "start with a key"),
        ("!", "followed by a key"),
        ("replicas>x", "integer"),
        ("app=we b", "separated by commas"),
        ("-app=web", "not a valid key"),
        ("app=we/b", "not a valid value"),
        ("Example.com/app=web", "not a valid key"),
    ];
    for (text, why) in cases {
        let err = Selector::parse(text).expect_err(text);
        assert!(
            err.to_string().contains(why) && err.to_string().contains(text),
            "{text}: {err}"
        );
    }
}
