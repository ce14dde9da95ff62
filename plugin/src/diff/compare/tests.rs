use super::*;
use serde_json::json;

const AGENT: &str = "kustomize-controller";

fn entry(manager: &str, time: &str, fields: Value) -> Value {
    json!({"manager": manager, "operation": "Update", "time": time, "fieldsV1": fields})
}

/// What Git says: a Deployment with replicas, a labelled template and one container.
fn git() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{
                "name": "web", "image": "nginx:1.25", "args": ["--port", "80"],
                "resources": {"limits": {"memory": "1Gi", "cpu": 1}}
            }]}}
        }
    })
}

/// The live object as the agent applied it (with server defaults, status and metadata).
fn live() -> Value {
    let mut v = git();
    v["metadata"]["uid"] = json!("0b5e");
    v["metadata"]["resourceVersion"] = json!("42");
    v["metadata"]["generation"] = json!(3);
    v["metadata"]["creationTimestamp"] = json!("2026-03-01T00:00:00Z");
    v["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"] = json!("apps");
    v["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "3"});
    v["spec"]["revisionHistoryLimit"] = json!(10);
    v["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] =
        json!({"memory": "1024Mi", "cpu": "1"});
    v["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] =
        json!("/dev/termination-log");
    v["status"] = json!({"replicas": 2, "readyReplicas": 2});
    v["metadata"]["managedFields"] = json!([entry(
        AGENT,
        "2026-03-01T00:00:00Z",
        json!({"f:metadata": {"f:labels": {"f:app": {}, "f:kustomize.toolkit.fluxcd.io/name": {}}},
               "f:spec": {"f:replicas": {}, "f:template": {"f:metadata": {"f:labels": {"f:app": {}}},
                   "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                       ".": {}, "f:name": {}, "f:image": {}, "f:args": {},
                       "f:resources": {"f:limits": {"f:memory": {}, "f:cpu": {}}}}}}}}})
    )]);
    v
}

fn with_manager(v: &mut Value, manager: &str, time: &str, fields: Value) {
    v["metadata"]["managedFields"]
        .as_array_mut()
        .unwrap()
        .push(entry(manager, time, fields));
}

fn run(git: &Value, live: &Value, ex: &Exceptions, autoscaled: bool) -> Vec<FieldDiff> {
    let config = Config::default();
    compare(
        git,
        live,
        &Inputs {
            config: &config,
            exceptions: ex,
            autoscaled,
        },
    )
}

fn fields_of(d: &[FieldDiff]) -> Vec<String> {
    d.iter().map(|d| d.field.clone()).collect()
}

#[test]
fn what_the_agent_applied_with_server_defaults_status_and_metadata_is_no_drift() {
    // Server metadata, status, defaults nobody owns, the agent's label, the revision
    // annotation, and quantities written differently (1Gi/1024Mi, 1/"1").
    assert_eq!(run(&git(), &live(), &Exceptions::default(), false), vec![]);
}

#[test]
fn each_drift_kind_is_reported_with_its_manager() {
    let t = "2026-03-10T11:00:00Z";
    type Case = (&'static str, fn(&mut Value), &'static str, Change);
    let cases: Vec<Case> = vec![
        (
            "value drift by a person",
            |v| {
                v["spec"]["replicas"] = json!(5);
                with_manager(
                    v,
                    "kubectl-edit",
                    "2026-03-10T11:00:00Z",
                    json!({"f:spec": {"f:replicas": {}}}),
                );
            },
            "spec.replicas",
            Change::Changed {
                git: json!(2),
                live: json!(5),
            },
        ),
        (
            "an image in a list item matched by name",
            |v| {
                v["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27");
                with_manager(
                    v,
                    "kubectl-set",
                    "2026-03-10T11:00:00Z",
                    json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {"f:image": {}}}}}}}),
                );
            },
            "spec.template.spec.containers[0].image",
            Change::Changed {
                git: json!("nginx:1.25"),
                live: json!("nginx:1.27"),
            },
        ),
        (
            "a label added by hand",
            |v| {
                v["metadata"]["labels"]["team"] = json!("blue");
                with_manager(
                    v,
                    "kubectl-label",
                    "2026-03-10T11:00:00Z",
                    json!({"f:metadata": {"f:labels": {"f:team": {}}}}),
                );
            },
            "metadata.labels.team",
            Change::Added {
                live: json!("blue"),
            },
        ),
        (
            "a field Git sets that the live object lacks",
            |v| {
                v["metadata"]["labels"]
                    .as_object_mut()
                    .unwrap()
                    .remove("app");
            },
            "metadata.labels.app",
            Change::Missing { git: json!("web") },
        ),
        (
            "a quantity that really differs",
            |v| {
                v["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] =
                    json!("2Gi");
                with_manager(
                    v,
                    "kubectl-edit",
                    "2026-03-10T11:00:00Z",
                    json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {"f:resources": {"f:limits": {"f:memory": {}}}}}}}}}),
                );
            },
            "spec.template.spec.containers[0].resources.limits.memory",
            Change::Changed {
                git: json!("1Gi"),
                live: json!("2Gi"),
            },
        ),
        (
            "an atomic list that differs",
            |v| {
                v["spec"]["template"]["spec"]["containers"][0]["args"] =
                    json!(["--port", "81", "-v"]);
                with_manager(
                    v,
                    "kubectl-edit",
                    "2026-03-10T11:00:00Z",
                    json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {"f:args": {}}}}}}}),
                );
            },
            "spec.template.spec.containers[0].args",
            Change::Changed {
                git: json!(["--port", "80"]),
                live: json!(["--port", "81", "-v"]),
            },
        ),
    ];
    for (what, change, field, want) in cases {
        let mut l = live();
        change(&mut l);
        let d = run(&git(), &l, &Exceptions::default(), false);
        assert_eq!(fields_of(&d), vec![field.to_string()], "{what}: {d:?}");
        assert_eq!(d[0].change, want, "{what}");
        if !matches!(want, Change::Missing { .. }) {
            assert!(
                d[0].manager
                    .as_deref()
                    .is_some_and(|m| m.starts_with("kubectl-")),
                "{what}: {d:?}"
            );
            assert_eq!(d[0].time, Some(t.parse().unwrap()), "{what}");
        }
        assert_eq!(d[0].allowed_by, None, "{what}");
    }
}

#[test]
fn each_not_drift_rule_keeps_its_field_out() {
    // Each case: a live change that its rule recognises; the same change is drift in a place
    // the rule does not cover, so the test fails without the rule.
    let t = "2026-03-10T11:00:00Z";
    // A rollout restart: an operational annotation (decide::is_operational).
    let mut l = live();
    l["spec"]["template"]["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/restartedAt": t});
    with_manager(
        &mut l,
        "kubectl-rollout",
        t,
        json!({"f:spec": {"f:template": {"f:metadata": {"f:annotations": {"f:kubectl.kubernetes.io/restartedAt": {}}}}}}),
    );
    assert_eq!(run(&git(), &l, &Exceptions::default(), false), vec![]);
    let mut strict = Config::default();
    strict.operational.rollout_restart = false;
    let ex = Exceptions::default();
    let d = compare(
        &git(),
        &l,
        &Inputs {
            config: &strict,
            exceptions: &ex,
            autoscaled: false,
        },
    );
    assert_eq!(
        fields_of(&d),
        ["spec.template.metadata.annotations['kubectl.kubernetes.io/restartedAt']"]
    );

    // Replicas an HPA owns: not drift when an autoscaler targets the object, drift otherwise.
    let mut l = live();
    l["spec"]["replicas"] = json!(7);
    with_manager(
        &mut l,
        "kube-controller-manager",
        t,
        json!({"f:spec": {"f:replicas": {}}}),
    );
    assert_eq!(run(&git(), &l, &Exceptions::default(), true), vec![]);
    assert_eq!(
        fields_of(&run(&git(), &l, &Exceptions::default(), false)),
        ["spec.replicas"]
    );

    // A field Git does not set that a controller wrote, or nobody (a default): not drift; the
    // same field written by a person is.
    let mut l = live();
    l["spec"]["paused"] = json!(true);
    with_manager(
        &mut l,
        "kube-controller-manager",
        t,
        json!({"f:spec": {"f:paused": {}}}),
    );
    assert_eq!(run(&git(), &l, &Exceptions::default(), false), vec![]);
    with_manager(
        &mut l,
        "kubectl-patch",
        t,
        json!({"f:spec": {"f:paused": {}}}),
    );
    assert_eq!(
        fields_of(&run(&git(), &l, &Exceptions::default(), false)),
        ["spec.paused"]
    );

    // The agents' and Kubernetes' own labels and annotations, whoever wrote them; the same key
    // elsewhere is drift.
    let mut l = live();
    l["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"] =
        json!("web:apps/Deployment:prod/web");
    l["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!("9");
    with_manager(
        &mut l,
        "kubectl-annotate",
        t,
        json!({"f:metadata": {"f:annotations": {
        "f:argocd.argoproj.io/tracking-id": {}, "f:deployment.kubernetes.io/revision": {}}}}),
    );
    assert_eq!(run(&git(), &l, &Exceptions::default(), false), vec![]);
    assert!(skipped(&[
        Seg::Key("metadata".into()),
        Seg::Key("labels".into()),
        Seg::Key("kustomize.toolkit.fluxcd.io/name".into())
    ]));
    assert!(!skipped(&[
        Seg::Key("spec".into()),
        Seg::Key("labels".into()),
        Seg::Key("deployment.kubernetes.io/revision".into())
    ]));
    // A break-glass window's record is the guard's, reported as an exception, not drift; an
    // allowance Git delivers is compared like any annotation.
    let ann = |k: &str| {
        [
            Seg::Key("metadata".into()),
            Seg::Key("annotations".into()),
            Seg::Key(k.into()),
        ]
    };
    assert!(skipped(&ann("gitops-guard.dev/break-glass-until")));
    assert!(skipped(&ann("gitops-guard.dev/break-glass-by")));
    assert!(!skipped(&ann("gitops-guard.dev/allow-fields")));

    // Server metadata and status: left out even when they differ from a (strange) Git document.
    let mut g = git();
    g["metadata"]["generation"] = json!(1);
    g["status"] = json!({"replicas": 0});
    assert_eq!(run(&g, &live(), &Exceptions::default(), false), vec![]);

    // Quantities and numbers written differently; a real difference is drift (above).
    for (git_v, live_v, same) in [
        (json!("1Gi"), json!("1024Mi"), true),
        (json!(0.5), json!("500m"), true),
        (json!(1), json!("1"), true),
        (json!("1k"), json!("1000"), true),
        (json!("1Gi"), json!("1G"), false),
    ] {
        let path = [Seg::Key("limits".into()), Seg::Key("memory".into())];
        assert_eq!(
            same_value(&path, &git_v, &live_v),
            same,
            "{git_v} vs {live_v}"
        );
    }
    // Not a quantity field: "1k" and "1000" differ.
    assert!(!same_value(
        &[Seg::Key("data".into()), Seg::Key("x".into())],
        &json!("1k"),
        &json!("1000")
    ));

    // An empty value Git writes, which the API server drops.
    let mut g = git();
    g["spec"]["template"]["spec"]["containers"][0]["env"] = json!([]);
    g["spec"]["strategy"] = json!({});
    assert_eq!(run(&g, &live(), &Exceptions::default(), false), vec![]);
}

#[test]
fn exceptions_and_break_glass_windows_say_what_allowed_a_change() {
    let mut l = live();
    l["spec"]["replicas"] = json!(5);
    with_manager(
        &mut l,
        "kubectl-scale",
        "2026-03-10T11:00:00Z",
        json!({"f:spec": {"f:replicas": {}}}),
    );
    let config = Config::default();

    l["metadata"]["annotations"]["gitops-guard.dev/allow-fields"] = json!("spec.replicas");
    let d = run(&git(), &l, &Exceptions::of(&l, None, &config), false);
    assert_eq!(
        d[0].allowed_by.as_deref(),
        Some("gitops-guard.dev/allow-fields: spec.replicas")
    );

    // A window on the namespace, opened before the change and ending after it.
    l["metadata"]["annotations"] = json!({});
    let ns = json!({"metadata": {"name": "prod", "annotations": {
        "gitops-guard.dev/break-glass-until": "2026-03-10T12:00:00Z",
        "gitops-guard.dev/break-glass-reason": "registry outage",
        "gitops-guard.dev/break-glass-by": "ana",
        "gitops-guard.dev/break-glass-ticket": "INC-7"},
        "managedFields": [entry("kubectl-annotate", "2026-03-10T10:30:00Z",
            json!({"f:metadata": {"f:annotations": {"f:gitops-guard.dev/break-glass-until": {}}}}))]}});
    let d = run(&git(), &l, &Exceptions::of(&l, Some(&ns), &config), false);
    assert_eq!(
        d[0].allowed_by.as_deref(),
        Some(
            "the namespace's break-glass window (opened by ana until 2026-03-10T12:00:00Z: registry outage, ticket INC-7)"
        )
    );
    // A change after the window ended is not covered by it.
    let mut later = l.clone();
    later["metadata"]["managedFields"][1]["time"] = json!("2026-03-10T13:00:00Z");
    let d = run(
        &git(),
        &later,
        &Exceptions::of(&later, Some(&ns), &config),
        false,
    );
    assert_eq!(d[0].allowed_by, None);
}
