//! What runs, not only what is declared, end to end: real kubectl against a real kube-apiserver
//! (v1.20.2) with the guard registered for every resource (and Pods' exec, eviction and debug).
//!
//! There is no kubelet and no controller manager here: the Deployment's ReplicaSet and its Pod are
//! made as Kubernetes' own controllers make them (their service accounts, `ownerReferences` with
//! `controller: true`). Each route around the guard is tried as a person with broad RBAC, beside
//! the legitimate neighbour that must still pass:
//! - beneath: a Pod's image, service account and labels, orphaning it, a hand-made Pod claiming the
//!   ReplicaSet, scaling the ReplicaSet;
//! - beside: `kubectl run` with the labels a managed Service selects, a canary Deployment with
//!   them, an EndpointSlice for the Service, `kubectl autoscale`, a PodDisruptionBudget;
//! - operational: deleting, evicting, exec into a Pod pass and are recorded, each can be turned
//!   off in the guard's config (reloaded while it runs);
//! - a custom resource with a scale subresource (Argo Rollouts' Rollout) is scaled only by the
//!   agent; the Pods beneath Git's Rollout are guarded like a Deployment's, and its controller is
//!   trusted beneath Rollouts only (`workloadControllers`), as KEDA's operator is for the HPA of a
//!   ScaledObject; a VerticalPodAutoscaler or ScaledObject made by hand for Git's Deployment is
//!   denied;
//! - the guard says which kinds GitOps manages in the cluster (`/managed-kinds`);
//! - what Kubernetes' controllers would adopt or build Pods from: a ReplicaSet labelled as the
//!   Deployment selects, one claiming the Deployment's uid under another kind, a ControllerRevision
//!   a StatefulSet would adopt, a StatefulSet's status pointing at another revision, an exception
//!   from Git set by hand on a Pod beneath.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use gitops_guard_tests::{Cluster, KUSTOMIZE_CONTROLLER, Out, User, Webhook};

const KC: &str = KUSTOMIZE_CONTROLLER;
const SHA: &str = "3f2a9c1e0b7d4c2a9f8e7d6c5b4a39281706f5e4";
const DEPLOYMENT_CONTROLLER: &str = "system:serviceaccount:kube-system:deployment-controller";
const REPLICASET_CONTROLLER: &str = "system:serviceaccount:kube-system:replicaset-controller";
const CONFIG: &str = "mode: enforce\n";

struct Env {
    cluster: Cluster,
    webhook: Webhook,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let cluster = Cluster::start();
        cluster.install_crds();
        cluster.install_test_crds();
        cluster.bootstrap();
        cluster.flux_apps(&format!(
            r#"{{"lastAppliedRevision":"main@sha1:{SHA}","inventory":{{"entries":[
                {{"id":"beneath_web_apps_Deployment","v":"v1"}},{{"id":"beside_web_apps_Deployment","v":"v1"}},
                {{"id":"beneath_web__Service","v":"v1"}},{{"id":"rollouts_web_argoproj.io_Rollout","v":"v1"}}]}}}}"#
        ));
        let webhook = Webhook::start(&cluster, CONFIG);
        Env { cluster, webhook }
    })
}

const FLUX_LABELS: &str =
    "kustomize.toolkit.fluxcd.io/name: apps, kustomize.toolkit.fluxcd.io/namespace: flux-system";

fn dev(args: &[&str]) -> Out {
    env().cluster.kubectl(User::Developer, args)
}

fn dev_stdin(args: &[&str], stdin: &str) -> Out {
    env().cluster.kubectl_stdin(User::Developer, args, stdin)
}

fn get(ns: &str, what: &str, path: &str) -> String {
    env()
        .cluster
        .kubectl(
            User::Admin,
            &["get", what, "-n", ns, "-o", &format!("jsonpath={path}")],
        )
        .ok()
        .stdout
        .clone()
}

/// Runs `f` until it gives `Some` (the guard's caches are fed by watches), for up to 20 s.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs the command until the guard denies it (once its caches know the objects); the denial.
fn denied(what: &str, mut run: impl FnMut() -> Out) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = run();
        if let Some(denial) = out.denial() {
            return denial.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for: {what}; last:\n{out}\nwebhook log:\n{}",
            env().webhook.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// In namespace `ns`: Git's Deployment `web` and Service `web` (selecting `app: web`), applied by
/// Flux; the ReplicaSet the deployment controller makes and the Pod the ReplicaSet controller
/// makes, each with its `ownerReferences`. Returns the Pod's name.
fn managed_workload(ns: &str) -> String {
    let cluster = &env().cluster;
    cluster
        .kubectl(User::Admin, &["create", "namespace", ns])
        .ok();
    cluster
        .flux_apply(&format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}, labels: {{app: web, {FLUX_LABELS}}}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: web, image: "ghcr.io/acme/web:1.8.1"}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}, labels: {{{FLUX_LABELS}}}}}
spec: {{selector: {{app: web}}, ports: [{{port: 80, protocol: TCP}}]}}
"#
        ))
        .ok();
    let deployment_uid = get(ns, "deployment/web", "{.metadata.uid}");
    cluster
        .kubectl_as_stdin(
            DEPLOYMENT_CONTROLLER,
            &["create", "-f", "-"],
            &format!(
                r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web-7d9f
  namespace: {ns}
  labels: {{app: web, pod-template-hash: 7d9f}}
  ownerReferences: [{{apiVersion: apps/v1, kind: Deployment, name: web, uid: {deployment_uid}, controller: true, blockOwnerDeletion: true}}]
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web, pod-template-hash: 7d9f}}}}
  template:
    metadata: {{labels: {{app: web, pod-template-hash: 7d9f}}}}
    spec: {{containers: [{{name: web, image: "ghcr.io/acme/web:1.8.1"}}]}}
"#
            ),
        )
        .ok();
    replicaset_pod(ns, "web-7d9f-abcde")
}

/// A Pod of the ReplicaSet `web-7d9f` in `ns`, as the ReplicaSet controller makes it; its name.
fn replicaset_pod(ns: &str, name: &str) -> String {
    let rs_uid = get(ns, "replicaset/web-7d9f", "{.metadata.uid}");
    env()
        .cluster
        .kubectl_as_stdin(
            REPLICASET_CONTROLLER,
            &["create", "-f", "-"],
            &format!(
                r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {ns}
  labels: {{app: web, pod-template-hash: 7d9f}}
  ownerReferences: [{{apiVersion: apps/v1, kind: ReplicaSet, name: web-7d9f, uid: {rs_uid}, controller: true, blockOwnerDeletion: true}}]
spec: {{containers: [{{name: web, image: "ghcr.io/acme/web:1.8.1"}}]}}
"#
            ),
        )
        .ok();
    name.to_string()
}

const WAY_FORWARD: &str = "is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1).\nChange it in Git instead: kubectl gitops edit deployment/web -n ";

#[test]
fn the_pods_beneath_a_managed_deployment_run_what_git_declares() {
    let ns = "beneath";
    let pod = managed_workload(ns);
    let pod_ref = format!("pod/{pod}");

    // kubectl set image on the Pod: denied, naming the Deployment and the way forward.
    let message = denied("set image on the Pod is denied", || {
        dev(&["set", "image", &pod_ref, "-n", ns, "web=evil:1"])
    });
    assert!(
        message.starts_with(&format!(
            "pod/{pod} in {ns} runs what deployment/web declares (its ownerReferences lead there), and only Kubernetes' controllers and the agent change what it runs; this change touches spec.containers"
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!("deployment/web in {ns} {WAY_FORWARD}{ns}")),
        "{message}"
    );
    assert_eq!(
        get(ns, &pod_ref, "{.spec.containers[0].image}"),
        "ghcr.io/acme/web:1.8.1"
    );

    // Relabelling it (out of the Service, or away from its ReplicaSet), or orphaning it first.
    dev(&["label", &pod_ref, "-n", ns, "app=debug", "--overwrite"]).denied();
    dev(&[
        "patch",
        &pod_ref,
        "-n",
        ns,
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/ownerReferences"}]"#,
    ])
    .denied();
    // Its status: the endpoints controller sends the Service's traffic to its podIP.
    let out = env().cluster.patch_status(
        User::Developer,
        "pods",
        ns,
        &pod,
        r#"{"podIP":"203.0.113.7","podIPs":[{"ip":"203.0.113.7"}]}"#,
    );
    assert!(
        out.denied().contains("its status is its kubelet's"),
        "{out}"
    );
    // Kubernetes writes it (the node controller marks the Pods of a lost node not ready).
    env()
        .cluster
        .patch_status_as(
            "system:serviceaccount:kube-system:node-controller",
            "pods",
            ns,
            &pod,
            r#"{"conditions":[{"type":"Ready","status":"False"}]}"#,
        )
        .ok();
    // A hand-made Pod claiming the ReplicaSet as its controller.
    let rs_uid = get(ns, "replicaset/web-7d9f", "{.metadata.uid}");
    let claim = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"claim","namespace":"{ns}","labels":{{"team":"x"}},
            "ownerReferences":[{{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-7d9f","uid":"{rs_uid}","controller":true}}]}},
            "spec":{{"containers":[{{"name":"c","image":"evil:1"}}]}}}}"#
    );
    let message = dev_stdin(&["create", "-f", "-"], &claim)
        .denied()
        .to_string();
    assert!(
        message.contains("only Kubernetes' controllers make the objects beneath deployment/web"),
        "{message}"
    );
    // Scaling or deleting the ReplicaSet by hand.
    dev(&["scale", "replicaset/web-7d9f", "-n", ns, "--replicas=5"]).denied();
    dev(&["delete", "replicaset/web-7d9f", "-n", ns, "--wait=false"]).denied();
    assert_eq!(get(ns, "replicaset/web-7d9f", "{.spec.replicas}"), "1");

    // The legitimate neighbours: an annotation, the controllers, the agent.
    dev(&["annotate", &pod_ref, "-n", ns, "note=looked at it"]).ok();
    env()
        .cluster
        .kubectl_as(
            REPLICASET_CONTROLLER,
            &[
                "label",
                &pod_ref,
                "-n",
                ns,
                "controller-revision=2",
                "--overwrite",
            ],
        )
        .ok();
    env()
        .cluster
        .kubectl_as(
            KC,
            &["annotate", &pod_ref, "-n", ns, "fluxcd.io/note=agent"],
        )
        .ok();
    env()
        .cluster
        .kubectl_as(
            REPLICASET_CONTROLLER,
            &["scale", "replicaset/web-7d9f", "-n", ns, "--replicas=2"],
        )
        .ok();

    // A dry run says what would be denied.
    let out = dev(&[
        "set",
        "image",
        &pod_ref,
        "-n",
        ns,
        "web=evil:1",
        "--dry-run=server",
    ]);
    assert!(
        out.ok()
            .warnings()
            .iter()
            .any(|w| w.starts_with("dry-run only: the real change would be denied: pod/")),
        "{out}"
    );
}

#[test]
fn objects_beside_a_managed_workload_that_would_steer_it_come_from_git() {
    let ns = "beside";
    managed_workload(ns);

    // kubectl run with the labels the managed Service selects: it would receive its traffic.
    let message = denied("kubectl run with the Service's labels is denied", || {
        dev(&[
            "run",
            "evil",
            "-n",
            ns,
            "--image=evil:1",
            "--labels=app=web",
        ])
    });
    assert!(
        message.starts_with(&format!(
            "pod/evil in {ns} carries labels that service/web in {ns}, which is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1) selects: it would receive its traffic"
        )),
        "{message}"
    );
    assert!(
        message.contains("What steers a GitOps-managed object must come from Git too."),
        "{message}"
    );
    // ... while a Pod of its own passes.
    dev(&[
        "run",
        "tool",
        "-n",
        ns,
        "--image=busybox:1",
        "--labels=app=tool",
    ])
    .ok();
    // ... and it cannot be labelled into the Service afterwards.
    dev(&["label", "pod/tool", "-n", ns, "app=web", "--overwrite"]).denied();

    // A canary Deployment whose Pods the managed Service would select.
    let canary = |app: &str| {
        format!(
            r#"{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"name":"canary-{app}","namespace":"{ns}"}},
            "spec":{{"replicas":1,"selector":{{"matchLabels":{{"app":"{app}","track":"canary"}}}},
            "template":{{"metadata":{{"labels":{{"app":"{app}","track":"canary"}}}},"spec":{{"containers":[{{"name":"c","image":"evil:1"}}]}}}}}}}}"#
        )
    };
    let message = dev_stdin(&["create", "-f", "-"], &canary("web"))
        .denied()
        .to_string();
    assert!(
        message.contains("service/web in beside, which is managed by"),
        "{message}"
    );
    dev_stdin(&["create", "-f", "-"], &canary("other")).ok();

    // The Service's endpoints, by hand.
    let slice = format!(
        r#"{{"apiVersion":"discovery.k8s.io/v1beta1","kind":"EndpointSlice","metadata":{{"name":"web-extra","namespace":"{ns}",
            "labels":{{"kubernetes.io/service-name":"web"}}}},"addressType":"IPv4","ports":[{{"port":80}}],
            "endpoints":[{{"addresses":["203.0.113.7"]}}]}}"#
    );
    let message = dev_stdin(&["create", "-f", "-"], &slice)
        .denied()
        .to_string();
    assert!(
        message.contains("sets the endpoints of service/web"),
        "{message}"
    );
    let other_slice = slice.replace(
        r#""kubernetes.io/service-name":"web""#,
        r#""kubernetes.io/service-name":"db""#,
    );
    dev_stdin(&["create", "-f", "-"], &other_slice).ok();

    // kubectl autoscale: the HPA controller would change the managed Deployment's replicas.
    let message = dev(&[
        "autoscale",
        "deployment/web",
        "-n",
        ns,
        "--min=1",
        "--max=1",
    ])
    .denied()
    .to_string();
    assert!(
        message.starts_with(&format!(
            "horizontalpodautoscaler/web in {ns} would change spec.replicas of deployment/web in {ns}, which is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1)"
        )),
        "{message}"
    );
    assert!(
        message.contains("gitops-guard.dev/allow-fields: spec.replicas on deployment/web in Git"),
        "{message}"
    );
    dev(&[
        "autoscale",
        "deployment/canary-other",
        "-n",
        ns,
        "--min=1",
        "--max=2",
    ])
    .ok();

    // A disruption budget over the managed Pods (policy/v1beta1: what 1.20 serves).
    let pdb = |name: &str, app: &str| {
        format!(
            r#"{{"apiVersion":"policy/v1beta1","kind":"PodDisruptionBudget","metadata":{{"name":"{name}","namespace":"{ns}"}},
            "spec":{{"minAvailable":1,"selector":{{"matchLabels":{{"app":"{app}"}}}}}}}}"#
        )
    };
    let message = dev_stdin(&["create", "-f", "-"], &pdb("web", "web"))
        .denied()
        .to_string();
    assert!(
        message.contains("selects the Pods of deployment/web"),
        "{message}"
    );
    dev_stdin(&["create", "-f", "-"], &pdb("other", "other")).ok();

    // From Git, the agent applies an HPA for the Deployment.
    env()
        .cluster
        .flux_apply(&format!(
            r#"
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {{name: web, namespace: {ns}, labels: {{{FLUX_LABELS}}}}}
spec: {{scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}, minReplicas: 2, maxReplicas: 5}}
"#
        ))
        .ok();

    // Git's exception on the Deployment lets people autoscale it.
    env()
        .cluster
        .flux_apply(&format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: api, namespace: {ns}, labels: {{app: api, {FLUX_LABELS}}}, annotations: {{gitops-guard.dev/allow-fields: spec.replicas}}}}
spec:
  selector: {{matchLabels: {{app: api}}}}
  template:
    metadata: {{labels: {{app: api}}}}
    spec: {{containers: [{{name: api, image: "ghcr.io/acme/api:2"}}]}}
"#
        ))
        .ok();
    eventually(
        "an HPA for a Deployment whose replicas Git leaves to people passes",
        || {
            dev(&[
                "autoscale",
                "deployment/api",
                "-n",
                ns,
                "--min=1",
                "--max=3",
            ])
            .success()
            .then_some(())
        },
    );
}

#[test]
fn pod_operations_are_recorded_and_each_can_be_turned_off() {
    let ns = "operate";
    let pod = managed_workload(ns);
    let pod_ref = format!("pod/{pod}");
    let webhook = &env().webhook;
    let eviction = |pod: &str| {
        format!(
            r#"{{"apiVersion":"policy/v1beta1","kind":"Eviction","metadata":{{"name":"{pod}","namespace":"{ns}"}}}}"#
        )
    };
    let evict = |pod: &str| {
        dev_stdin(
            &[
                "create",
                "--raw",
                &format!("/api/v1/namespaces/{ns}/pods/{pod}/eviction"),
                "-f",
                "-",
            ],
            &eviction(pod),
        )
    };
    let recorded = |what: &str, operation: &str| {
        eventually(what, || {
            env()
                .cluster
                .audit_events()
                .iter()
                .any(|e| {
                    e["annotations"]["guard.gitops-guard.dev/operational"] == operation
                        && e["objectRef"]["namespace"] == ns
                })
                .then_some(())
        })
    };

    // Turned off in the guard's config (reloaded while it runs): each is denied for the Pods of
    // managed workloads, and says which setting.
    eventually("the guard knows the Pod's Deployment", || {
        dev(&["label", &pod_ref, "-n", ns, "x=y"])
            .denial()
            .map(|_| ())
    });
    let off = "mode: enforce\noperational:\n  podDelete: false\n  podEviction: false\n  podExec: false\n  podDebug: false\n";
    std::fs::write(webhook.config_path(), off).unwrap();
    let message = denied("exec is denied once podExec is off", || {
        dev(&["exec", &pod, "-n", ns, "--", "true"])
    });
    assert!(message.contains("operational.podExec: false"), "{message}");
    assert!(message.contains("deployment/web"), "{message}");
    let out = evict(&pod);
    assert!(
        out.fails()
            .stderr
            .contains("operational.podEviction: false"),
        "{out}"
    );
    let message = dev(&["delete", &pod_ref, "-n", ns, "--wait=false"])
        .denied()
        .to_string();
    assert!(
        message.contains("operational.podDelete: false"),
        "{message}"
    );
    // A Pod nobody manages: exec still reaches the API server (which has no kubelet to connect to).
    dev(&[
        "run",
        "own",
        "-n",
        ns,
        "--image=busybox:1",
        "--labels=app=own",
    ])
    .ok();
    let exec = dev(&["exec", "own", "-n", ns, "--", "true"]);
    assert!(
        exec.denial().is_none() && !exec.stderr.contains("gitops-guard"),
        "{exec}"
    );

    // The defaults again: exec reaches the API server, eviction and delete pass, each recorded.
    std::fs::write(webhook.config_path(), CONFIG).unwrap();
    eventually("exec passes again", || {
        let exec = dev(&["exec", &pod, "-n", ns, "--", "true"]);
        (exec.denial().is_none() && exec.stderr.contains("does not have a host assigned"))
            .then_some(())
    });
    recorded("pod-exec is recorded in the audit log", "pod-exec");
    let second = replicaset_pod(ns, "web-7d9f-fghij");
    evict(&second).ok();
    recorded("pod-eviction is recorded in the audit log", "pod-eviction");
    dev(&["delete", &pod_ref, "-n", ns, "--wait=false"]).ok();
    eventually("pod-delete is recorded with the Deployment", || {
        env()
            .cluster
            .audit_events()
            .iter()
            .any(|e| {
                e["annotations"]["guard.gitops-guard.dev/operational"] == "pod-delete"
                    && e["annotations"]["guard.gitops-guard.dev/descendant-of"]
                        .as_str()
                        .is_some_and(|d| d.starts_with("deployment/web in operate"))
            })
            .then_some(())
    });
    let metrics = webhook.metrics();
    assert!(
        metrics.contains(r#"gitops_guard_decisions_total{verdict="allow",reason="pod-operation"}"#)
            && metrics.contains(r#"reason="descendant"}"#),
        "{metrics}"
    );
}

#[test]
fn a_custom_resource_with_a_scale_subresource_is_scaled_from_git_only() {
    let ns = "rollouts";
    let cluster = &env().cluster;
    cluster
        .kubectl(User::Admin, &["create", "namespace", ns])
        .ok();
    cluster
        .flux_apply(&format!(
            r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: web, namespace: {ns}, labels: {{{FLUX_LABELS}}}}}
spec: {{replicas: 2, selector: {{matchLabels: {{app: web}}}}}}
"#
        ))
        .ok();
    let message = dev(&[
        "scale",
        "rollouts.argoproj.io/web",
        "-n",
        ns,
        "--replicas=9",
    ])
    .denied()
    .to_string();
    assert!(
        message.starts_with(&format!(
            "rollout/web in {ns} is managed by Flux Kustomization flux-system/apps"
        )),
        "{message}"
    );
    assert_eq!(get(ns, "rollouts.argoproj.io/web", "{.spec.replicas}"), "2");
    // The agent scales it; an unmanaged one anyone may.
    cluster
        .kubectl_as(
            KC,
            &[
                "scale",
                "rollouts.argoproj.io/web",
                "-n",
                ns,
                "--replicas=3",
            ],
        )
        .ok();
    dev_stdin(
        &["create", "-f", "-"],
        &format!(r#"{{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout","metadata":{{"name":"own","namespace":"{ns}"}},"spec":{{"replicas":1}}}}"#),
    )
    .ok();
    dev(&[
        "scale",
        "rollouts.argoproj.io/own",
        "-n",
        ns,
        "--replicas=2",
    ])
    .ok();
}

#[test]
fn the_guard_says_which_kinds_gitops_manages_here() {
    // From the Kustomization's inventory (its status, as kustomize-controller wrote it).
    let kinds = eventually("the inventory reaches the guard's cache", || {
        let body = env().webhook.get("/managed-kinds");
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (!v["kinds"].as_object()?.is_empty()).then_some(v)
    });
    assert_eq!(
        kinds,
        serde_json::json!({"kinds": {"Deployment.apps": 2, "Service": 1, "Rollout.argoproj.io": 1}})
    );
}

const ROLLOUTS_CONTROLLER: &str = "system:serviceaccount:argo-rollouts:argo-rollouts";
const KEDA_OPERATOR: &str = "system:serviceaccount:keda:keda-operator";

#[test]
fn custom_workloads_their_controllers_and_their_autoscalers() {
    let ns = "custom";
    let cluster = &env().cluster;
    managed_workload(ns);
    // From Git: a Rollout and a ScaledObject for the Deployment.
    cluster
        .flux_apply(&format!(
            r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: canary, namespace: {ns}, labels: {{{FLUX_LABELS}}}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: canary}}}}
  template:
    metadata: {{labels: {{app: canary}}}}
    spec: {{containers: [{{name: c, image: "ghcr.io/acme/canary:1"}}]}}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: web, namespace: {ns}, labels: {{{FLUX_LABELS}}}}}
spec: {{scaleTargetRef: {{name: web}}, triggers: [{{type: cron, metadata: {{timezone: UTC, start: "0 8 * * *", end: "0 18 * * *", desiredReplicas: "3"}}}}]}}
"#
        ))
        .ok();
    let rollout_uid = get(ns, "rollouts.argoproj.io/canary", "{.metadata.uid}");

    // Argo Rollouts' controller makes the ReplicaSet beneath Git's Rollout; the ReplicaSet
    // controller its Pod.
    let rs = format!(
        r#"{{"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{{"name":"canary-6b8d","namespace":"{ns}",
            "labels":{{"app":"canary","rollouts-pod-template-hash":"6b8d"}},
            "ownerReferences":[{{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout","name":"canary","uid":"{rollout_uid}","controller":true}}]}},
            "spec":{{"replicas":1,"selector":{{"matchLabels":{{"app":"canary","rollouts-pod-template-hash":"6b8d"}}}},
            "template":{{"metadata":{{"labels":{{"app":"canary","rollouts-pod-template-hash":"6b8d"}}}},"spec":{{"containers":[{{"name":"c","image":"ghcr.io/acme/canary:1"}}]}}}}}}}}"#
    );
    // Until the guard's cache has the Rollout, a ReplicaSet claiming it is nobody's descendant.
    eventually("the guard knows Git's Rollout", || {
        let out = dev_stdin(&["create", "-f", "-", "--dry-run=server"], &rs);
        out.warnings()
            .iter()
            .any(|w| w.contains("runs what rollout/canary declares"))
            .then_some(())
    });
    cluster
        .kubectl_as_stdin(ROLLOUTS_CONTROLLER, &["create", "-f", "-"], &rs)
        .ok();
    let rs_uid = get(ns, "replicaset/canary-6b8d", "{.metadata.uid}");
    cluster
        .kubectl_as_stdin(
            REPLICASET_CONTROLLER,
            &["create", "-f", "-"],
            &format!(
                r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"canary-6b8d-x1","namespace":"{ns}",
                    "labels":{{"app":"canary","rollouts-pod-template-hash":"6b8d"}},
                    "ownerReferences":[{{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"canary-6b8d","uid":"{rs_uid}","controller":true}}]}},
                    "spec":{{"containers":[{{"name":"c","image":"ghcr.io/acme/canary:1"}}]}}}}"#
            ),
        )
        .ok();
    // A person changes what it runs: denied, naming the Rollout.
    let message = denied("set image beneath the Rollout is denied", || {
        dev(&["set", "image", "pod/canary-6b8d-x1", "-n", ns, "c=evil:1"])
    });
    assert!(
        message.contains("runs what rollout/canary declares"),
        "{message}"
    );
    dev(&["scale", "replicaset/canary-6b8d", "-n", ns, "--replicas=4"]).denied();
    // Its controller scales its ReplicaSet and labels its Pods (ephemeral metadata) ...
    cluster
        .kubectl_as(
            ROLLOUTS_CONTROLLER,
            &["scale", "replicaset/canary-6b8d", "-n", ns, "--replicas=2"],
        )
        .ok();
    cluster
        .kubectl_as(
            ROLLOUTS_CONTROLLER,
            &["label", "pod/canary-6b8d-x1", "-n", ns, "role=canary"],
        )
        .ok();
    // ... but is trusted beneath Rollouts only: not for the Deployment's Pods or the Deployment.
    cluster
        .kubectl_as(
            ROLLOUTS_CONTROLLER,
            &["label", "pod/web-7d9f-abcde", "-n", ns, "role=x"],
        )
        .denied();
    cluster
        .kubectl_as(
            ROLLOUTS_CONTROLLER,
            &["scale", "deployment/web", "-n", ns, "--replicas=7"],
        )
        .denied();
    // An HPA on Git's Rollout (kubectl autoscale knows only built-in kinds): denied like a
    // Deployment's.
    let hpa = format!(
        r#"{{"apiVersion":"autoscaling/v1","kind":"HorizontalPodAutoscaler","metadata":{{"name":"canary","namespace":"{ns}"}},
            "spec":{{"scaleTargetRef":{{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout","name":"canary"}},"minReplicas":1,"maxReplicas":1}}}}"#
    );
    let message = dev_stdin(&["create", "-f", "-"], &hpa).denied().to_string();
    assert!(
        message.contains("would change spec.replicas of rollout/canary"),
        "{message}"
    );

    // A VPA or a KEDA ScaledObject made by hand for Git's Deployment.
    let vpa = format!(
        r#"{{"apiVersion":"autoscaling.k8s.io/v1","kind":"VerticalPodAutoscaler","metadata":{{"name":"web","namespace":"{ns}"}},
            "spec":{{"targetRef":{{"apiVersion":"apps/v1","kind":"Deployment","name":"web"}},"updatePolicy":{{"updateMode":"Auto"}}}}}}"#
    );
    let message = dev_stdin(&["create", "-f", "-"], &vpa).denied().to_string();
    assert!(
        message.contains("would change the Pods of deployment/web"),
        "{message}"
    );
    let scaled = format!(
        r#"{{"apiVersion":"keda.sh/v1alpha1","kind":"ScaledObject","metadata":{{"name":"mine","namespace":"{ns}"}},
            "spec":{{"scaleTargetRef":{{"name":"web"}},"maxReplicaCount":1,"triggers":[]}}}}"#
    );
    let message = dev_stdin(&["create", "-f", "-"], &scaled)
        .denied()
        .to_string();
    assert!(
        message.contains("would change spec.replicas of deployment/web"),
        "{message}"
    );

    // KEDA's operator makes the HPA of Git's ScaledObject; not one of its own.
    let so_uid = get(ns, "scaledobjects.keda.sh/web", "{.metadata.uid}");
    let keda_hpa = |owner: &str| {
        format!(
            r#"{{"apiVersion":"autoscaling/v1","kind":"HorizontalPodAutoscaler","metadata":{{"name":"keda-hpa-web{}","namespace":"{ns}"{owner}}},
                "spec":{{"scaleTargetRef":{{"apiVersion":"apps/v1","kind":"Deployment","name":"web"}},"minReplicas":1,"maxReplicas":3}}}}"#,
            if owner.is_empty() { "-2" } else { "" }
        )
    };
    let owned = format!(
        r#","ownerReferences":[{{"apiVersion":"keda.sh/v1alpha1","kind":"ScaledObject","name":"web","uid":"{so_uid}","controller":true}}]"#
    );
    cluster
        .kubectl_as_stdin(KEDA_OPERATOR, &["create", "-f", "-"], &keda_hpa(&owned))
        .ok();
    cluster
        .kubectl_as_stdin(KEDA_OPERATOR, &["create", "-f", "-"], &keda_hpa(""))
        .denied();
}

const STATEFULSET_CONTROLLER: &str = "system:serviceaccount:kube-system:statefulset-controller";

#[test]
fn what_kubernetes_would_adopt_or_build_pods_from_comes_from_git() {
    let ns = "adopt";
    let cluster = &env().cluster;
    let pod = managed_workload(ns);

    // A ReplicaSet whose own labels the Deployment selects (its Pods' labels are its own): with no
    // controller, the deployment controller would adopt it and run its Pods as the Deployment's.
    let rs = |name: &str, labels: &str, owner: &str| {
        format!(
            r#"{{"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{{"name":"{name}","namespace":"{ns}","labels":{labels}{owner}}},
            "spec":{{"replicas":1,"selector":{{"matchLabels":{{"run":"{name}"}}}},
            "template":{{"metadata":{{"labels":{{"run":"{name}"}}}},"spec":{{"containers":[{{"name":"c","image":"evil:1"}}]}}}}}}}}"#
        )
    };
    let message = denied("a ReplicaSet the Deployment would adopt is denied", || {
        dev_stdin(&["create", "-f", "-"], &rs("stray", r#"{"app":"web"}"#, ""))
    });
    assert!(
        message.starts_with(&format!(
            "replicaset/stray in {ns} carries labels that deployment/web in {ns}, which is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1) selects, and no controller: deployment/web would adopt it as its own and run its Pods."
        )),
        "{message}"
    );
    // Claiming the Deployment's uid under another kind: controllers claim by uid alone.
    let deployment_uid = get(ns, "deployment/web", "{.metadata.uid}");
    let claim = format!(
        r#","ownerReferences":[{{"apiVersion":"example.com/v1","kind":"Foo","name":"web","uid":"{deployment_uid}","controller":true}}]"#
    );
    let message = dev_stdin(
        &["create", "-f", "-"],
        &rs("claim", r#"{"app":"web"}"#, &claim),
    )
    .denied()
    .to_string();
    assert!(
        message.contains("runs what deployment/web declares"),
        "{message}"
    );
    // The legitimate neighbour: a ReplicaSet of its own.
    dev_stdin(&["create", "-f", "-"], &rs("mine", r#"{"app":"mine"}"#, "")).ok();

    // Git's StatefulSet, and the revision its controller made for it.
    cluster
        .flux_apply(&format!(
            r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db, namespace: {ns}, labels: {{app: db, {FLUX_LABELS}}}}}
spec:
  serviceName: db
  replicas: 1
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec: {{containers: [{{name: db, image: "ghcr.io/acme/db:5"}}]}}
"#
        ))
        .ok();
    let sts_uid = get(ns, "statefulset/db", "{.metadata.uid}");
    let revision = |name: &str, labels: &str, owner: &str| {
        format!(
            r#"{{"apiVersion":"apps/v1","kind":"ControllerRevision","metadata":{{"name":"{name}","namespace":"{ns}","labels":{labels}{owner}}},
            "revision":1,"data":{{"spec":{{"template":{{"$patch":"replace","metadata":{{"labels":{{"app":"db"}}}},"spec":{{"containers":[{{"name":"db","image":"ghcr.io/acme/db:5"}}]}}}}}}}}}}"#
        )
    };
    let owned = format!(
        r#","ownerReferences":[{{"apiVersion":"apps/v1","kind":"StatefulSet","name":"db","uid":"{sts_uid}","controller":true,"blockOwnerDeletion":true}}]"#
    );
    cluster
        .kubectl_as_stdin(
            STATEFULSET_CONTROLLER,
            &["create", "-f", "-"],
            &revision(
                "db-5f7d",
                r#"{"app":"db","controller.kubernetes.io/hash":"5f7d"}"#,
                &owned,
            ),
        )
        .ok();
    cluster
        .patch_status_as(
            STATEFULSET_CONTROLLER,
            "statefulsets.apps",
            ns,
            "db",
            r#"{"replicas":1,"currentReplicas":1,"updatedReplicas":1,"currentRevision":"db-5f7d","updateRevision":"db-5f7d","collisionCount":0}"#,
        )
        .ok();
    // A revision made by hand that the StatefulSet would adopt, then its status pointed at it:
    // the StatefulSet controller would make the next Pod from it.
    let message = denied("a revision the StatefulSet would adopt is denied", || {
        dev_stdin(
            &["create", "-f", "-"],
            &revision("db-6c4b", r#"{"app":"db"}"#, ""),
        )
    });
    assert!(
        message.contains("no controller: statefulset/db would adopt it as its own (a StatefulSet builds Pods from the revision its status names)"),
        "{message}"
    );
    let out = env().cluster.patch_status(
        User::Developer,
        "statefulsets.apps",
        ns,
        "db",
        r#"{"currentRevision":"db-6c4b"}"#,
    );
    assert!(
        out.denied().starts_with(&format!(
            "statefulset/db in {ns}: this status write changes status.currentRevision, which the StatefulSet controller builds Pods from"
        )),
        "{out}"
    );
    assert_eq!(
        get(ns, "statefulset/db", "{.status.currentRevision}"),
        "db-5f7d"
    );
    // Its own revision cannot be replaced either.
    dev(&[
        "delete",
        "controllerrevision/db-5f7d",
        "-n",
        ns,
        "--wait=false",
    ])
    .denied();
    // The legitimate neighbours: a revision of nothing Git manages; the rest of the status.
    dev_stdin(
        &["create", "-f", "-"],
        &revision("other-1", r#"{"app":"other"}"#, ""),
    )
    .ok();
    env()
        .cluster
        .patch_status(
            User::Developer,
            "statefulsets.apps",
            ns,
            "db",
            r#"{"readyReplicas":1}"#,
        )
        .ok();

    // An exception from Git, set by hand on a Pod beneath the Deployment.
    let message = dev(&[
        "annotate",
        &format!("pod/{pod}"),
        "-n",
        ns,
        "gitops-guard.dev/allow=manual",
    ])
    .denied()
    .to_string();
    assert!(
        message.contains("this change touches metadata.annotations['gitops-guard.dev/allow']"),
        "{message}"
    );
}

const CERT_MANAGER: &str = "system:serviceaccount:cert-manager:cert-manager";
const NGINX: &str = "system:serviceaccount:ingress-nginx:ingress-nginx";
const METALLB: &str = "system:serviceaccount:metallb-system:controller";

/// An Ingress `name` in `ns` for `host` (`""`: a rule without a host, the catch-all) and `path`,
/// in `api_version` (`networking.k8s.io/v1`, `networking.k8s.io/v1beta1`,
/// `extensions/v1beta1`), with `metadata` extra (`labels: …`).
fn ingress(
    ns: &str,
    name: &str,
    api_version: &str,
    host: &str,
    path: &str,
    metadata: &str,
) -> String {
    let backend = if api_version == "networking.k8s.io/v1" {
        "{service: {name: web, port: {number: 80}}}, pathType: Prefix"
    } else {
        "{serviceName: web, servicePort: 80}"
    };
    let host = if host.is_empty() {
        String::new()
    } else {
        format!("host: \"{host}\"\n    ")
    };
    format!(
        r#"
apiVersion: {api_version}
kind: Ingress
metadata: {{name: {name}, namespace: {ns}{metadata}}}
spec:
  rules:
  - {host}http: {{paths: [{{path: "{path}", backend: {backend}}}]}}
"#
    )
}

/// Ingress controllers merge Ingresses by host, in every namespace: a hand-made Ingress that
/// claims the host of one from Git steers part of its traffic (and external-dns and cert-manager
/// act on it). Denied in every API version Kubernetes 1.20 serves, beside the legitimate
/// neighbours: another host, cert-manager's HTTP-01 solver beneath a Challenge, deleting.
#[test]
fn a_handmade_ingress_may_not_claim_a_managed_ingress_host() {
    let cluster = &env().cluster;
    for ns in ["hosts", "hosts-team"] {
        cluster
            .kubectl(User::Admin, &["create", "namespace", ns])
            .ok();
    }
    cluster
        .flux_apply(&ingress(
            "hosts",
            "web",
            "networking.k8s.io/v1",
            "app.example.com",
            "/",
            &format!(", labels: {{{FLUX_LABELS}}}"),
        ))
        .ok();
    let create = |yaml: String| dev_stdin(&["create", "-f", "-"], &yaml);

    // Another path on the managed host, from another namespace: denied, naming the managed one.
    let message = denied("an Ingress on the managed host is denied", || {
        create(ingress(
            "hosts-team",
            "admin",
            "networking.k8s.io/v1",
            "app.example.com",
            "/admin",
            "",
        ))
    });
    assert!(
        message.starts_with("ingress/admin in hosts-team claims the host app.example.com, which ingress/web in hosts serves, managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1)"),
        "{message}"
    );
    assert!(
        message.contains(
            "Add the Ingress to Git beside ingress/web (kubectl gitops status ingress/web -n hosts"
        ),
        "{message}"
    );
    // A wildcard over it, and the older API versions.
    let message = create(ingress(
        "hosts-team",
        "wild",
        "networking.k8s.io/v1",
        "*.example.com",
        "/",
        "",
    ))
    .denied()
    .to_string();
    assert!(
        message.contains("claims the host *.example.com (overlapping app.example.com)"),
        "{message}"
    );
    for (name, version) in [
        ("beta", "networking.k8s.io/v1beta1"),
        ("ext", "extensions/v1beta1"),
    ] {
        let message = create(ingress(
            "hosts-team",
            name,
            version,
            "app.example.com",
            "/x",
            "",
        ))
        .denied()
        .to_string();
        assert!(
            message.contains("which ingress/web in hosts serves"),
            "{version}: {message}"
        );
    }
    assert!(
        !cluster
            .kubectl(
                User::Admin,
                &["get", "ingress", "-n", "hosts-team", "-o", "name"]
            )
            .ok()
            .stdout
            .contains("ingress"),
        "nothing was created"
    );

    // The legitimate neighbour: a host no Ingress from Git serves. Moving it onto the managed
    // host is denied; deleting it passes.
    create(ingress(
        "hosts-team",
        "shop",
        "networking.k8s.io/v1",
        "shop.example.com",
        "/",
        "",
    ))
    .ok();
    let message = dev(&[
        "patch",
        "ingress/shop",
        "-n",
        "hosts-team",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/rules/0/host","value":"app.example.com"}]"#,
    ])
    .denied()
    .to_string();
    assert!(
        message.contains("or remove it: kubectl delete ingress/shop -n hosts-team"),
        "{message}"
    );
    assert_eq!(
        get("hosts-team", "ingress/shop", "{.spec.rules[0].host}"),
        "shop.example.com"
    );
    dev(&["annotate", "ingress/shop", "-n", "hosts-team", "note=mine"]).ok();

    // cert-manager's HTTP-01 solver for the managed host, beneath a Challenge
    // (workloadControllers); a person's Ingress claiming a Challenge is not.
    let solver = ingress(
        "hosts",
        "cm-acme-http-solver-x1",
        "networking.k8s.io/v1",
        "app.example.com",
        "/.well-known/acme-challenge/t0k3n",
        ", ownerReferences: [{apiVersion: acme.cert-manager.io/v1, kind: Challenge, name: web-tls-1, uid: 0b6c3c1e-5d1f-4c51-9d52-0c8f3e0b7a11, controller: true}]",
    );
    create(solver.replace("x1", "x2")).denied();
    cluster
        .kubectl_as_stdin(CERT_MANAGER, &["create", "-f", "-"], &solver)
        .ok();
    dev(&["delete", "ingress/shop", "-n", "hosts-team"]).ok();
}

/// An Ingress from Git that is the catch-all (a rule without a host, or a default backend) takes
/// what no host claims: a hand-made catch-all elsewhere overlaps it and is denied, in either form;
/// a hand-made Ingress for a host takes nothing from it and passes.
#[test]
fn a_handmade_catch_all_ingress_may_not_overlap_a_managed_one() {
    let cluster = &env().cluster;
    for ns in ["catchall", "catchall-team"] {
        cluster
            .kubectl(User::Admin, &["create", "namespace", ns])
            .ok();
    }
    let no_host = |ns: &str, name: &str, metadata: &str| {
        ingress(ns, name, "networking.k8s.io/v1", "", "/", metadata)
    };
    cluster
        .flux_apply(&no_host(
            "catchall",
            "web",
            &format!(", labels: {{{FLUX_LABELS}}}"),
        ))
        .ok();
    let create = |yaml: String| dev_stdin(&["create", "-f", "-"], &yaml);

    let message = denied("a rule without a host beside a managed catch-all", || {
        create(no_host("catchall-team", "grab", ""))
    });
    assert!(
        message.contains("the default backend (no host)")
            && message.contains("ingress/web in catchall"),
        "{message}"
    );
    let default_backend = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: fallback, namespace: catchall-team}\nspec:\n  defaultBackend: {service: {name: web, port: {number: 80}}}\n";
    let message = create(default_backend.to_string()).denied().to_string();
    assert!(
        message.contains("the default backend (no host)"),
        "{message}"
    );

    // The legitimate neighbour: a host of its own takes nothing from the catch-all.
    create(ingress(
        "catchall-team",
        "blog",
        "networking.k8s.io/v1",
        "blog.example.com",
        "/",
        "",
    ))
    .ok();
    dev(&["delete", "ingress/blog", "-n", "catchall-team"]).ok();
}

/// `status.loadBalancer` of a Service or Ingress from Git is where its traffic arrives
/// (external-dns publishes it): only Kubernetes, the agent and the controllers in
/// `loadBalancerControllers` write it; a person writing it is denied, an unmanaged Service's stays
/// free.
#[test]
fn the_load_balancer_status_of_managed_services_and_ingresses() {
    let cluster = &env().cluster;
    let ns = "lb";
    cluster
        .kubectl(User::Admin, &["create", "namespace", ns])
        .ok();
    cluster
        .flux_apply(&format!(
            r#"
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}, labels: {{{FLUX_LABELS}}}}}
spec: {{type: LoadBalancer, selector: {{app: web}}, ports: [{{port: 80, protocol: TCP}}]}}
---{ingress}"#,
            ingress = ingress(
                ns,
                "web",
                "networking.k8s.io/v1",
                "lb.example.com",
                "/",
                &format!(", labels: {{{FLUX_LABELS}}}")
            ),
        ))
        .ok();
    cluster
        .kubectl(
            User::Admin,
            &[
                "create",
                "service",
                "loadbalancer",
                "tool",
                "-n",
                ns,
                "--tcp=80:80",
            ],
        )
        .ok();
    let address = |ip: &str| format!(r#"{{"loadBalancer":{{"ingress":[{{"ip":"{ip}"}}]}}}}"#);

    // MetalLB's controller gives the Service its address, ingress-nginx the Ingress its own.
    cluster
        .patch_status_as(METALLB, "services", ns, "web", &address("192.0.2.10"))
        .ok();
    cluster
        .patch_status_as(
            NGINX,
            "ingresses.networking.k8s.io",
            ns,
            "web",
            &address("192.0.2.20"),
        )
        .ok();
    // Kubernetes' service controller too.
    cluster
        .patch_status_as(
            "system:serviceaccount:kube-system:service-controller",
            "services",
            ns,
            "web",
            &address("192.0.2.11"),
        )
        .ok();

    // A person points them elsewhere: denied, naming the owner and the config key.
    let out = cluster.patch_status(
        User::Developer,
        "services",
        ns,
        "web",
        &address("203.0.113.7"),
    );
    let message = out.denied();
    assert!(
        message.starts_with("service/web in lb: this status write changes status.loadBalancer"),
        "{message}"
    );
    assert!(
        message.contains("service/web in lb is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1)"),
        "{message}"
    );
    assert!(
        message.contains("loadBalancerControllers (kind Service)"),
        "{message}"
    );
    let out = cluster.patch_status(
        User::Developer,
        "ingresses.networking.k8s.io",
        ns,
        "web",
        &address("203.0.113.7"),
    );
    assert!(out.denied().contains("ingress/web in lb"), "{out}");
    // MetalLB's controller is not trusted for Ingresses.
    cluster
        .patch_status_as(
            METALLB,
            "ingresses.networking.k8s.io",
            ns,
            "web",
            &address("203.0.113.7"),
        )
        .denied();
    assert_eq!(
        get(ns, "service/web", "{.status.loadBalancer.ingress[0].ip}"),
        "192.0.2.11"
    );
    assert_eq!(
        get(ns, "ingress/web", "{.status.loadBalancer.ingress[0].ip}"),
        "192.0.2.20"
    );

    // The legitimate neighbour: a Service nobody manages.
    cluster
        .patch_status(
            User::Developer,
            "services",
            ns,
            "tool",
            &address("203.0.113.8"),
        )
        .ok();
    assert_eq!(
        get(ns, "service/tool", "{.status.loadBalancer.ingress[0].ip}"),
        "203.0.113.8"
    );
}

/// A Git exception reaches what runs beneath its workload, nothing else: a person who points a
/// managed object's `ownerReferences` at a workload whose `allow: manual` came from Git (the
/// namespace's sandbox) does not borrow that exception. Denied with the change and without it,
/// beside the legitimate neighbours: the agent setting the same reference, and a hand-made Pod
/// beneath the sandbox changed by hand.
#[test]
fn an_owner_reference_does_not_lend_a_workloads_exception_to_a_managed_object() {
    let cluster = &env().cluster;
    let ns = "borrow";
    cluster
        .kubectl(User::Admin, &["create", "namespace", ns])
        .ok();
    let config_map = |value: &str, owner: &str| {
        format!(
            r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: app-config, namespace: {ns}, labels: {{{FLUX_LABELS}}}{owner}}}
data: {{DATABASE_URL: "{value}"}}
"#
        )
    };
    cluster
        .flux_apply(&format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: sandbox
  namespace: {ns}
  labels: {{app: sandbox, {FLUX_LABELS}}}
  annotations: {{gitops-guard.dev/allow: manual}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: sandbox}}}}
  template:
    metadata: {{labels: {{app: sandbox}}}}
    spec: {{containers: [{{name: sandbox, image: "ghcr.io/acme/sandbox:1"}}]}}
---{}"#,
            config_map("postgres://db:5432/app", "")
        ))
        .ok();
    let uid = get(ns, "deployment/sandbox", "{.metadata.uid}");
    let beneath = format!(
        r#"[{{"apiVersion":"apps/v1","kind":"Deployment","name":"sandbox","uid":"{uid}","controller":true}}]"#
    );
    let patch = |data: &str| {
        format!(
            r#"{{"metadata":{{"ownerReferences":{beneath}}},"data":{{"DATABASE_URL":"{data}"}}}}"#
        )
    };
    let patch_cm = |body: &str| {
        dev(&[
            "patch",
            "configmap/app-config",
            "-n",
            ns,
            "--type=merge",
            "-p",
            body,
        ])
    };

    // The reference with a change, and the reference alone: the ConfigMap stays Git's.
    for (what, body) in [
        ("with a change", patch("postgres://evil.example.com/app")),
        ("alone", patch("postgres://db:5432/app")),
    ] {
        let message = denied(&format!("the borrowed exception {what}"), || {
            patch_cm(&body)
        });
        assert!(
            message.contains(
                "configmap/app-config in borrow is managed by Flux Kustomization flux-system/apps"
            ),
            "{what}: {message}"
        );
    }
    assert_eq!(
        get(ns, "configmap/app-config", "{.data.DATABASE_URL}"),
        "postgres://db:5432/app"
    );
    assert_eq!(
        get(ns, "configmap/app-config", "{.metadata.ownerReferences}"),
        ""
    );

    // The agent may set it (Git says so).
    cluster
        .flux_apply(&config_map(
            "postgres://db:5432/app",
            &format!(", ownerReferences: {beneath}"),
        ))
        .ok();
    assert!(get(ns, "configmap/app-config", "{.metadata.ownerReferences}").contains(&uid));

    // What really runs beneath the sandbox keeps its exception: a hand-made Pod there.
    let pod = |image: &str| {
        format!(
            r#"
apiVersion: v1
kind: Pod
metadata:
  name: scratch
  namespace: {ns}
  labels: {{app: sandbox}}
  ownerReferences: [{{apiVersion: apps/v1, kind: Deployment, name: sandbox, uid: {uid}, controller: true}}]
spec: {{containers: [{{name: scratch, image: "{image}"}}]}}
"#
        )
    };
    eventually("a hand-made Pod beneath the sandbox is created", || {
        dev_stdin(&["create", "-f", "-"], &pod("busybox:1.36"))
            .success()
            .then_some(())
    });
    dev(&["label", "pod/scratch", "-n", ns, "debug=true"]).ok();
}
