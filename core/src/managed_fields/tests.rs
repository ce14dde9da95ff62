//! What the API server does to managedFields by itself, and rewrites, as a table.

use serde_json::{Value, json};

use super::*;

fn now() -> jiff::Timestamp {
    "2026-11-21T12:00:00Z".parse().unwrap()
}

fn entry(manager: &str, op: &str, time: &str, fields: Value) -> Value {
    json!({"manager": manager, "operation": op, "apiVersion": "apps/v1", "time": time,
           "fieldsType": "FieldsV1", "fieldsV1": fields})
}

fn flux() -> Value {
    entry(
        "kustomize-controller",
        "Apply",
        "2026-11-20T09:00:00Z",
        json!({"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}}}}}}}),
    )
}

fn object(replicas: i64, annotation: Option<&str>, managed: Vec<Value>) -> Value {
    let mut v = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web"}, "managedFields": managed},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "web", "image": "web:1"}]}}}});
    if let Some(a) = annotation {
        v["metadata"]["annotations"] = json!({"reconcile.fluxcd.io/requestedAt": a});
    }
    v
}

#[test]
fn rewrites_table() {
    let annotate = entry(
        "kubectl-annotate",
        "Update",
        "2026-11-21T12:00:00Z",
        json!({"f:metadata": {"f:annotations": {"f:reconcile.fluxcd.io/requestedAt": {}}}}),
    );
    let scaled = entry(
        "kubectl-scale",
        "Update",
        "2026-11-21T11:59:30Z",
        json!({"f:spec": {"f:replicas": {}}}),
    );
    let mut flux_without_replicas = flux();
    flux_without_replicas["fieldsV1"]["f:spec"]
        .as_object_mut()
        .unwrap()
        .remove("f:replicas");
    let mut flux_grown = flux();
    flux_grown["fieldsV1"]["f:metadata"]["f:annotations"] =
        json!({"f:reconcile.fluxcd.io/requestedAt": {}});
    let mut flux_grown_now = flux_grown.clone();
    flux_grown_now["time"] = json!("2026-11-21T12:00:00Z");
    let old_annotate = entry(
        "kubectl-annotate",
        "Update",
        "2026-11-01T00:00:00Z",
        json!({"f:metadata": {"f:annotations": {"f:reconcile.fluxcd.io/requestedAt": {}}}}),
    );
    let cases: Vec<(&str, Value, Value, Option<&str>)> = vec![
        (
            "nothing changes",
            object(2, None, vec![flux()]),
            object(2, None, vec![flux()]),
            None,
        ),
        (
            "a new manager's entry, dated now",
            object(2, None, vec![flux()]),
            object(2, Some("1"), vec![flux(), annotate.clone()]),
            None,
        ),
        (
            "a value taken over from the agent",
            object(2, None, vec![flux()]),
            object(3, None, vec![flux_without_replicas.clone(), scaled.clone()]),
            None,
        ),
        (
            "an entry dropped when its only field was taken over",
            object(2, Some("1"), vec![flux(), old_annotate.clone()]),
            object(
                2,
                Some("2"),
                vec![flux(), {
                    let mut e = old_annotate.clone();
                    e["manager"] = json!("flux-client-side-apply");
                    e["time"] = json!("2026-11-21T12:00:00Z");
                    e
                }],
            ),
            None,
        ),
        (
            "every entry cleared",
            object(2, Some("1"), vec![flux()]),
            object(2, Some("2"), vec![annotate.clone()]),
            Some("kustomize-controller no longer owns"),
        ),
        (
            "the agent's record cleared alone",
            object(2, None, vec![flux()]),
            object(2, None, vec![]),
            Some("kustomize-controller no longer owns"),
        ),
        (
            "the agent's entry takes a hand change, keeping its old date",
            object(2, Some("1"), vec![flux(), old_annotate.clone()]),
            object(2, Some("1"), vec![flux_grown.clone()]),
            Some("dated 2026-11-20"),
        ),
        (
            "the agent's entry takes a hand change, dated now",
            object(2, Some("1"), vec![flux(), old_annotate.clone()]),
            object(2, Some("1"), vec![flux_grown_now]),
            Some("no longer owns metadata.annotations.reconcile.fluxcd.io/requestedAt"),
        ),
        (
            "two entries touched at once",
            object(2, None, vec![flux()]),
            object(
                3,
                Some("1"),
                vec![flux_without_replicas, scaled, annotate.clone()],
            ),
            Some("one request changes one manager's entry"),
        ),
        (
            "an entry dated in the past",
            object(2, None, vec![flux()]),
            object(2, Some("1"), vec![flux(), old_annotate]),
            Some("not now"),
        ),
        (
            "unreadable",
            object(2, None, vec![flux()]),
            {
                let mut v = object(2, None, vec![]);
                v["metadata"]["managedFields"] = json!("nonsense");
                v
            },
            Some("cannot be read"),
        ),
    ];
    for (what, old, new, want) in cases {
        let (old, new) = (old.to_string(), new.to_string());
        let (old, new) = (
            Object::from_json(&old).unwrap(),
            Object::from_json(&new).unwrap(),
        );
        let got = rewrite(&old, record_of(&old), &new, now());
        match want {
            None => assert_eq!(got, None, "{what}"),
            Some(needle) => {
                let why = got.unwrap_or_else(|| panic!("{what}: not caught"));
                assert!(why.contains(needle), "{what}: {why}");
            }
        }
    }
}

#[test]
fn deep_field_sets_are_bounded() {
    let mut fields = json!({});
    for _ in 0..(MAX_DEPTH + 5) {
        fields = json!({"f:a": fields});
    }
    assert_eq!(leaves(&fields), None);
    let mut shallow = json!({});
    for _ in 0..5 {
        shallow = json!({"f:a": shallow});
    }
    assert_eq!(leaves(&shallow).unwrap().len(), 1);
}

/// Values nested past serde_json's 128 levels beside the fields the record names are read from
/// the scanned document: a take-over is told from a rewrite all the same.
#[test]
fn deep_values_beside_the_record() {
    let mut deep = json!("leaf");
    for _ in 0..300 {
        deep = json!({"d": deep});
    }
    let object = |replicas: i64, managed: Vec<Value>| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "prod", "managedFields": managed},
            "spec": {"replicas": replicas, "deep": deep.clone()}})
    };
    let flux = entry(
        "kustomize-controller",
        "Apply",
        "2026-11-20T09:00:00Z",
        json!({"f:spec": {"f:replicas": {}, "f:deep": {}}}),
    );
    let flux_without = entry(
        "kustomize-controller",
        "Apply",
        "2026-11-20T09:00:00Z",
        json!({"f:spec": {"f:deep": {}}}),
    );
    let scaled = entry(
        "kubectl-scale",
        "Update",
        "2026-11-21T12:00:00Z",
        json!({"f:spec": {"f:replicas": {}}}),
    );
    let cases = [
        (
            "replicas taken over",
            object(2, vec![flux.clone()]),
            object(3, vec![flux_without.clone(), scaled.clone()]),
            false,
        ),
        (
            "replicas dropped from the record while unchanged",
            object(2, vec![flux.clone()]),
            object(2, vec![flux_without, scaled]),
            true,
        ),
    ];
    for (what, old, new, caught) in cases {
        let (old, new) = (old.to_string(), new.to_string());
        let (old, new) = (
            Object::from_json(&old).unwrap(),
            Object::from_json(&new).unwrap(),
        );
        assert_eq!(
            rewrite(&old, record_of(&old), &new, now()).is_some(),
            caught,
            "{what}"
        );
    }
}
