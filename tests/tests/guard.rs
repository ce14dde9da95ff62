//! The guard end to end: real kubectl against a real kube-apiserver with the webhook registered.
//!
//! One cluster and one webhook serve every test in this file; each test works in namespaces of its
//! own. The agents are played through the API exactly as they act: Flux's kustomize-controller
//! applies server-side with its field manager and labels, status is written through the status
//! subresource. The owners come from Git (kustomize-controller applied them for the bootstrap root
//! Kustomization flux-system/flux-system), so the agents may act for them.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use gitops_guard_tests::{Cluster, KUSTOMIZE_CONTROLLER, NO_TOKEN_HINT, Out, User, Webhook};

const KC: &str = KUSTOMIZE_CONTROLLER;
const ARGO: &str = "system:serviceaccount:argocd:argocd-application-controller";
const ARGO_SERVER: &str = "system:serviceaccount:argocd:argocd-server";
const TENANT_A: &str = "system:serviceaccount:team-a:reconciler";
const TENANT_B: &str = "system:serviceaccount:team-b:reconciler";
const SHA: &str = "3f2a9c1e0b7d4c2a9f8e7d6c5b4a39281706f5e4";

struct Env {
    cluster: Cluster,
    webhook: Webhook,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let cluster = Cluster::start();
        cluster.install_crds();
        // What `flux bootstrap` creates: the roots of custody.
        cluster.bootstrap();
        for ns in ["team-a", "team-b"] {
            cluster.kubectl(User::Admin, &["create", "namespace", ns]).ok();
        }
        // The owners come from Git: kustomize-controller applied them for the root Kustomization,
        // and wrote their status.
        cluster.flux_apps(&format!(r#"{{"lastAppliedRevision":"main@sha1:{SHA}"}}"#));
        cluster.flux_apply(OWNERS).ok();
        cluster
            .kubectl_as(
                ARGO,
                &[
                    "patch",
                    "applications.argoproj.io",
                    "web",
                    "-n",
                    "argocd",
                    "--type=merge",
                    "-p",
                    r#"{"status":{"sync":{"revision":"ffffffffffffffffffffffffffffffffffffffff"},"operationState":{"phase":"Succeeded","syncResult":{"revision":"7d0e51f0a1b2c3d4e5f60718293a4b5c6d7e8f90"}}}}"#,
                ],
            )
            .ok();
        let webhook = Webhook::start(&cluster, "mode: enforce\n");
        Env { cluster, webhook }
    })
}

/// The tenants' owners and sources beside flux-system/apps ([`gitops_guard_tests::APPS`]), as the
/// root Kustomization applies them from Git.
const OWNERS: &str = r#"
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: team-a
  namespace: team-a
  labels: {kustomize.toolkit.fluxcd.io/name: flux-system, kustomize.toolkit.fluxcd.io/namespace: flux-system}
spec: {interval: 1m, url: 'https://github.com/acme/team-a.git', ref: {branch: main}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: team-a
  labels: {kustomize.toolkit.fluxcd.io/name: flux-system, kustomize.toolkit.fluxcd.io/namespace: flux-system}
spec: {interval: 10m, path: ./team-a, prune: true, serviceAccountName: reconciler, sourceRef: {kind: GitRepository, name: team-a}}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: team-b
  namespace: team-b
  labels: {kustomize.toolkit.fluxcd.io/name: flux-system, kustomize.toolkit.fluxcd.io/namespace: flux-system}
spec: {interval: 1m, url: 'https://github.com/acme/team-b.git', ref: {branch: main}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: team-b
  labels: {kustomize.toolkit.fluxcd.io/name: flux-system, kustomize.toolkit.fluxcd.io/namespace: flux-system}
spec: {interval: 10m, path: ./team-b, prune: true, serviceAccountName: reconciler, sourceRef: {kind: GitRepository, name: team-b}}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: web
  namespace: argocd
  labels: {kustomize.toolkit.fluxcd.io/name: flux-system, kustomize.toolkit.fluxcd.io/namespace: flux-system}
spec:
  project: default
  source: {repoURL: 'https://github.com/acme/platform.git', path: web/overlays/prod, targetRevision: main}
  destination: {server: 'https://kubernetes.default.svc', namespace: argo-prod}
"#;

/// A namespace for one test, created by the admin.
fn namespace(name: &str) {
    env()
        .cluster
        .kubectl(User::Admin, &["create", "namespace", name])
        .ok();
}

/// A Deployment as the Flux kustomize-controller applies it (server-side, its field manager,
/// its ownership labels).
fn flux_deployment(ns: &str, name: &str, owner_ns: &str, extra_annotations: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {ns}
  labels:
    app: {name}
    kustomize.toolkit.fluxcd.io/name: apps
    kustomize.toolkit.fluxcd.io/namespace: {owner_ns}
  annotations: {{{extra_annotations}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: web
        image: ghcr.io/acme/web:1.8.1
"#
    )
}

fn agent_apply(as_user: &str, yaml: &str) -> Out {
    env()
        .cluster
        .agent_apply(as_user, "kustomize-controller", yaml)
}

fn dev(args: &[&str]) -> Out {
    env().cluster.kubectl(User::Developer, args)
}

/// The first two lines of the denial of `command` (`edit deployment/web -n prod`) on a Flux-managed
/// object.
fn flux_message(kind_name: &str, ns: &str, command: &str) -> String {
    format!(
        "{kind_name} in {ns} is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1).\nChange it in Git instead: kubectl gitops {command}"
    )
}

/// `kubectl edit` with an editor script that runs `sed_expr` over the file.
fn kubectl_edit(user: User, sed_expr: &str, args: &[&str]) -> Out {
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    let editor: PathBuf = dir.path().join("editor.sh");
    std::fs::write(&editor, format!("#!/bin/sh\nsed -i '{sed_expr}' \"$1\"\n")).unwrap();
    let mut perms = std::fs::metadata(&editor).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&editor, perms).unwrap();
    let mut edit = vec!["edit"];
    edit.extend_from_slice(args);
    let mut out = env.cluster.kubectl_with(
        &env.cluster.kubeconfig(user),
        &[
            ("KUBE_EDITOR", editor.as_os_str()),
            ("TMPDIR", dir.path().as_os_str()),
        ],
        &edit,
    );
    out.command = format!("KUBE_EDITOR='sed -i {sed_expr}' {}", out.command);
    out
}

fn jsonpath(ns: &str, what: &str, path: &str) -> String {
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

/// Retries `f` until it returns true (caches fed by watches take a moment), for up to 20 s.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for: {what}");
}

#[test]
fn human_changes_to_a_flux_object_are_denied_with_the_way_forward() {
    namespace("prod");
    agent_apply(KC, &flux_deployment("prod", "web", "flux-system", "")).ok();
    let managed = "deployment/web in prod is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1).";
    let change = |command: &str| {
        format!("{managed}\nChange it in Git instead: kubectl gitops {command}\n{NO_TOKEN_HINT}")
    };

    // Each denial names the kubectl gitops command that makes the same change through Git.
    let out = kubectl_edit(
        User::Developer,
        "s/web:1.8.1/web:1.8.2/",
        &["deployment/web", "-n", "prod"],
    );
    // (kubectl adds a line of its own: where it kept the rejected edit.)
    let three: Vec<&str> = out.denied().lines().take(3).collect();
    assert_eq!(
        three.join("\n"),
        change("set image deployment/web web=ghcr.io/acme/web:1.8.2 -n prod"),
        "kubectl edit:\n{out}"
    );

    let cases: Vec<(&str, Vec<&str>, String)> = vec![
        (
            "scale",
            vec!["scale", "deployment/web", "-n", "prod", "--replicas=5"],
            change("scale deployment/web --replicas=5 -n prod"),
        ),
        (
            "patch",
            vec![
                "patch",
                "deployment/web",
                "-n",
                "prod",
                "--type=merge",
                "-p",
                r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"evil:1"}]}}}}"#,
            ],
            change("set image deployment/web web=evil:1 -n prod"),
        ),
        (
            "set image",
            vec![
                "set",
                "image",
                "deployment/web",
                "web=ghcr.io/acme/web:9",
                "-n",
                "prod",
            ],
            change("set image deployment/web web=ghcr.io/acme/web:9 -n prod"),
        ),
        (
            "label",
            vec!["label", "deployment/web", "-n", "prod", "team=payments"],
            change("label deployment/web team=payments -n prod"),
        ),
        (
            "annotate",
            vec!["annotate", "deployment/web", "-n", "prod", "note=hi"],
            change("annotate deployment/web note=hi -n prod"),
        ),
        (
            "strip the ownership label",
            vec![
                "label",
                "deployment/web",
                "-n",
                "prod",
                "kustomize.toolkit.fluxcd.io/name-",
            ],
            change("edit deployment/web -n prod"),
        ),
        (
            "delete",
            vec!["delete", "deployment/web", "-n", "prod", "--wait=false"],
            format!(
                "{managed}\nRemove it from Git instead, and the agent prunes it (kubectl gitops trace deployment/web -n prod names its file)"
            ),
        ),
    ];
    for (what, args, want) in cases {
        let out = dev(&args);
        assert_eq!(out.denied(), want, "{what}:\n{out}");
    }
    let msg = change("edit deployment/web -n prod");
    let msg = first_two_lines(&msg);
    // kubectl apply of a changed manifest by a person.
    let changed =
        flux_deployment("prod", "web", "flux-system", "").replace("web:1.8.1", "web:2.0.0");
    let out = env()
        .cluster
        .kubectl_stdin(User::CiBot, &["apply", "-f", "-"], &changed);
    assert_eq!(first_two_lines(out.denied()), msg, "CI apply:\n{out}");

    // Nothing changed.
    assert_eq!(
        jsonpath(
            "prod",
            "deployment/web",
            "{.spec.replicas} {.spec.template.spec.containers[0].image} {.metadata.labels.team}"
        ),
        "2 ghcr.io/acme/web:1.8.1 "
    );

    // The same changes through Flux's own identity pass.
    env()
        .cluster
        .kubectl_as(
            KC,
            &["scale", "deployment/web", "-n", "prod", "--replicas=3"],
        )
        .ok();
    assert_eq!(jsonpath("prod", "deployment/web", "{.spec.replicas}"), "3");
    agent_apply(KC, &changed).ok();
    assert_eq!(
        jsonpath(
            "prod",
            "deployment/web",
            "{.spec.replicas} {.spec.template.spec.containers[0].image}"
        ),
        "2 ghcr.io/acme/web:2.0.0"
    );
}

fn first_two_lines(s: &str) -> String {
    s.lines().take(2).collect::<Vec<_>>().join("\n")
}

#[test]
fn argo_cd_objects_and_the_argo_cd_ui() {
    namespace("argo-prod");
    let cm = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: web-env
  namespace: argo-prod
  annotations:
    argocd.argoproj.io/tracking-id: "web:/ConfigMap:argo-prod/web-env"
data: {FEATURE_X: "off"}
"#;
    env()
        .cluster
        .kubectl_as_stdin(
            ARGO,
            &[
                "apply",
                "--server-side",
                "--field-manager=argocd-controller",
                "-f",
                "-",
            ],
            cm,
        )
        .ok();
    let msg = "configmap/web-env in argo-prod is managed by Argo CD Application argocd/web (7d0e51f).\nChange it in Git instead: kubectl gitops edit configmap/web-env -n argo-prod";
    let patch = [
        "patch",
        "configmap/web-env",
        "-n",
        "argo-prod",
        "--type=merge",
        "-p",
        r#"{"data":{"FEATURE_X":"on"}}"#,
    ];
    assert_eq!(first_two_lines(dev(&patch).denied()), msg);
    // argocd-server is how UI and CLI edits arrive: a human path.
    let out = env().cluster.kubectl_as(ARGO_SERVER, &patch);
    assert_eq!(first_two_lines(out.denied()), msg, "{out}");
    // Argo CD's application controller is the agent.
    env().cluster.kubectl_as(ARGO, &patch).ok();
    assert_eq!(
        jsonpath("argo-prod", "configmap/web-env", "{.data.FEATURE_X}"),
        "on"
    );
    // A sync or refresh from the UI is operational, not configuration.
    env()
        .cluster
        .kubectl_as(
            ARGO_SERVER,
            &[
                "annotate",
                "applications.argoproj.io/web",
                "-n",
                "argocd",
                "argocd.argoproj.io/refresh=hard",
            ],
        )
        .ok();
}

#[test]
fn flux_tenants_are_agents_for_their_own_objects_only() {
    agent_apply(TENANT_A, &flux_deployment("team-a", "api", "team-a", "")).ok();
    env()
        .cluster
        .kubectl_as(
            TENANT_A,
            &["scale", "deployment/api", "-n", "team-a", "--replicas=4"],
        )
        .ok();
    let out = env().cluster.kubectl_as(
        TENANT_B,
        &["scale", "deployment/api", "-n", "team-a", "--replicas=1"],
    );
    assert_eq!(
        first_two_lines(out.denied()),
        "deployment/api in team-a is managed by Flux Kustomization team-a/apps.\nChange it in Git instead: kubectl gitops scale deployment/api --replicas=1 -n team-a",
        "{out}"
    );
    // Creating an object that claims another tenant's ownership is forgery.
    let out = agent_apply(TENANT_B, &flux_deployment("team-b", "stolen", "team-a", ""));
    assert!(
        out.denied()
            .contains("managed by Flux Kustomization team-a/apps"),
        "{out}"
    );
    assert_eq!(
        jsonpath("team-a", "deployment/api", "{.spec.replicas}"),
        "4"
    );
}

#[test]
fn dry_runs_pass_with_a_warning() {
    namespace("dry");
    agent_apply(KC, &flux_deployment("dry", "web", "flux-system", "")).ok();
    let msg = format!(
        "{} {NO_TOKEN_HINT}",
        flux_message(
            "deployment/web",
            "dry",
            "scale deployment/web --replicas=9 -n dry"
        )
    )
    .replace('\n', " ");
    let out = dev(&[
        "scale",
        "deployment/web",
        "-n",
        "dry",
        "--replicas=9",
        "--dry-run=server",
    ]);
    out.ok();
    assert_eq!(
        out.warnings(),
        vec![format!("dry-run only: the real change would be denied: {msg}").as_str()],
        "{out}"
    );
    // kubectl diff: a server-side dry-run apply; exit code 1 means "there are differences".
    let changed =
        flux_deployment("dry", "web", "flux-system", "").replace("web:1.8.1", "web:1.9.0");
    let out = env().cluster.kubectl_stdin(
        User::Developer,
        &[
            "diff",
            "--server-side",
            "--force-conflicts",
            "--field-manager=ana",
            "-f",
            "-",
        ],
        &changed,
    );
    assert_eq!(out.code, 1, "kubectl diff shows the difference:\n{out}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with('+') && l.trim_end().ends_with("image: ghcr.io/acme/web:1.9.0")),
        "{out}"
    );
    assert!(out.denial().is_none(), "{out}");
    assert_eq!(jsonpath("dry", "deployment/web", "{.spec.replicas}"), "2");
}

#[test]
fn unmanaged_objects_and_forged_ownership() {
    namespace("misc");
    // Unmanaged: anything goes.
    dev(&[
        "create",
        "configmap",
        "manual",
        "-n",
        "misc",
        "--from-literal=a=1",
    ])
    .ok();
    dev(&["label", "configmap/manual", "-n", "misc", "team=x"]).ok();
    dev(&["delete", "configmap/manual", "-n", "misc"]).ok();
    // Forged ownership labels on create.
    let forged = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: forged\n  namespace: misc\n  labels:\n    kustomize.toolkit.fluxcd.io/name: apps\n    kustomize.toolkit.fluxcd.io/namespace: flux-system\n";
    let out = env()
        .cluster
        .kubectl_stdin(User::Developer, &["create", "-f", "-"], forged);
    assert_eq!(
        out.denied(),
        "configmap/forged in misc is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1).\nAdd it to Git instead: put its manifest where Flux Kustomization flux-system/apps applies from (kubectl gitops trace kustomization/apps -n flux-system names its source and path), commit and push"
    );
    // Adding ownership labels to an existing object by hand.
    dev(&["create", "configmap", "plain", "-n", "misc"]).ok();
    let out = dev(&[
        "label",
        "configmap/plain",
        "-n",
        "misc",
        "kustomize.toolkit.fluxcd.io/name=apps",
        "kustomize.toolkit.fluxcd.io/namespace=flux-system",
    ]);
    assert_eq!(
        first_two_lines(out.denied()),
        flux_message("configmap/plain", "misc", "edit configmap/plain -n misc")
    );
}

#[test]
fn kubernetes_itself_is_never_blocked() {
    namespace("k8s");
    agent_apply(KC, &flux_deployment("k8s", "web", "flux-system", "")).ok();
    // Status writes (what the deployment controller does) pass, even from a person.
    env()
        .cluster
        .patch_status(
            User::Developer,
            "deployments.apps",
            "k8s",
            "web",
            r#"{"observedGeneration":1,"replicas":2}"#,
        )
        .ok();
    // Operational changes pass: kubectl rollout restart.
    dev(&["rollout", "restart", "deployment/web", "-n", "k8s"]).ok();
    // Kubernetes' own controllers (per-controller service accounts) pass.
    env()
        .cluster
        .kubectl_as(
            "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
            &["scale", "deployment/web", "-n", "k8s", "--replicas=6"],
        )
        .ok();
    // A managed object inside a namespace that is being deleted may be deleted by anyone.
    namespace("doomed");
    agent_apply(KC, &flux_deployment("doomed", "web", "flux-system", "")).ok();
    assert_eq!(
        first_two_lines(
            dev(&["delete", "deployment/web", "-n", "doomed", "--wait=false"]).denied()
        ),
        "deployment/web in doomed is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1).\nRemove it from Git instead, and the agent prunes it (kubectl gitops trace deployment/web -n doomed names its file)"
    );
    env()
        .cluster
        .kubectl(
            User::Admin,
            &["delete", "namespace", "doomed", "--wait=false"],
        )
        .ok();
    // No namespace controller runs here, so the namespace stays Terminating.
    eventually("the guard sees namespace doomed terminating", || {
        dev(&["delete", "deployment/web", "-n", "doomed", "--wait=false"]).success()
    });
}

#[test]
fn flux_reconcile_and_suspend_are_operational() {
    let ks = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: child\n  namespace: flux-system\n  labels:\n    kustomize.toolkit.fluxcd.io/name: apps\n    kustomize.toolkit.fluxcd.io/namespace: flux-system\nspec: {interval: 10m, path: ./child, prune: true, suspend: false, sourceRef: {kind: GitRepository, name: flux-system}}\n";
    agent_apply(KC, ks).ok();
    let kind = "kustomizations.kustomize.toolkit.fluxcd.io/child";
    dev(&[
        "annotate",
        "--overwrite",
        kind,
        "-n",
        "flux-system",
        "reconcile.fluxcd.io/requestedAt=2026-11-21T12:00:00Z",
    ])
    .ok();
    dev(&[
        "patch",
        kind,
        "-n",
        "flux-system",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ])
    .ok();
    let out = dev(&[
        "patch",
        kind,
        "-n",
        "flux-system",
        "--type=merge",
        "-p",
        r#"{"spec":{"path":"./elsewhere"}}"#,
    ]);
    assert!(
        out.denied().starts_with(
            "kustomization/child in flux-system is managed by Flux Kustomization flux-system/apps"
        ),
        "{out}"
    );
}

#[test]
fn audit_mode_namespace_warns_and_annotates() {
    // The namespace's mode comes from Git: the agent applied it.
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: audited\n  labels:\n    kustomize.toolkit.fluxcd.io/name: apps\n    kustomize.toolkit.fluxcd.io/namespace: flux-system\n  annotations:\n    gitops-guard.dev/mode: audit\n";
    agent_apply(KC, ns).ok();
    agent_apply(KC, &flux_deployment("audited", "web", "flux-system", "")).ok();
    let msg = format!(
        "{} {NO_TOKEN_HINT}",
        flux_message(
            "deployment/web",
            "audited",
            "scale deployment/web --replicas=4 -n audited"
        )
    )
    .replace('\n', " ");
    let mut out = None;
    eventually(
        "the namespace's audit mode reaches the guard's cache",
        || {
            let o = dev(&["scale", "deployment/web", "-n", "audited", "--replicas=4"]);
            let ok = o.success();
            out = Some(o);
            ok
        },
    );
    let out = out.unwrap();
    assert_eq!(
        out.warnings(),
        vec![format!("audit mode: this change would be denied: {msg}").as_str()],
        "{out}"
    );
    assert_eq!(
        jsonpath("audited", "deployment/web", "{.spec.replicas}"),
        "4"
    );
    eventually(
        "the audit annotation is in the apiserver's audit log",
        || {
            env().cluster.audit_events().iter().any(|e| {
                e["annotations"]["guard.gitops-guard.dev/decision"] == "would-deny"
                    && e["objectRef"]["namespace"] == "audited"
            })
        },
    );
    // The Namespace object itself is audited too: a hand edit of it passes with the warning.
    let out = dev(&[
        "annotate",
        "--overwrite",
        "namespace/audited",
        "note=hand-made",
    ]);
    assert!(out.warnings().iter().any(|w| w.starts_with("audit mode: this change would be denied: namespace/audited is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1). Change it in Git instead: kubectl gitops annotate namespace/audited note=hand-made")), "{out}");
}

#[test]
fn metrics_count_decisions() {
    namespace("metrics");
    agent_apply(KC, &flux_deployment("metrics", "web", "flux-system", "")).ok();
    dev(&["scale", "deployment/web", "-n", "metrics", "--replicas=3"]).fails();
    let metrics = env().webhook.metrics();
    let denied = metrics
        .lines()
        .find(|l| {
            l.starts_with("gitops_guard_decisions_total")
                && l.contains("verdict=\"deny\"")
                && l.contains("reason=\"managed\"")
        })
        .unwrap_or_else(|| panic!("no deny counter in:\n{metrics}"));
    let n: f64 = denied.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 1.0, "{denied}");
    assert!(
        metrics.contains("gitops_guard_request_duration_seconds_bucket"),
        "{metrics}"
    );
}

#[test]
fn a_certificate_rotated_while_requests_flow_loses_none() {
    namespace("rotate");
    let before = env().webhook.served_cert_fingerprint();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flow = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut results = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || i < 10 {
                let name = format!("cm-{i}");
                results.push(dev(&[
                    "create",
                    "configmap",
                    &name,
                    "-n",
                    "rotate",
                    "--from-literal=i=x",
                ]));
                i += 1;
            }
            results
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let rotated = env().webhook.rotate_cert();
    assert_ne!(rotated, before);
    eventually("the webhook serves the new certificate", || {
        env().webhook.served_cert_fingerprint() == rotated
    });
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let results = flow.join().unwrap();
    assert!(results.len() >= 10);
    for out in &results {
        out.ok();
    }
}
