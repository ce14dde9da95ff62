//! `kubectl gitops diff` end to end: a real Git repository (a base and a prod overlay), a Flux
//! Kustomization with its own `spec.patches` and an inventory, the objects applied as
//! kustomize-controller applies them, then a person's changes (scale, label, a stray object), a
//! rollout restart, and an object Git declares that is not there.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use gitops_guard_tests::repo::{commit, git, plugin_binary, short, write};
use gitops_guard_tests::{Cluster, Out, User, kubectl_program, run_command};

fn gitops(cluster: &Cluster, cwd: &Path, cache: &Path, args: &[&str]) -> Out {
    let mut cmd = Command::new(plugin_binary());
    cmd.args(args)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig(User::Admin))
        .current_dir(cwd)
        .env("XDG_CACHE_HOME", cache)
        .env("KUBECACHEDIR", cache.join("kube"))
        .env_remove("KUBECONFIG");
    run_command(cmd, None, Duration::from_secs(120))
}

fn kubectl_kustomize(dir: &Path) -> String {
    let mut cmd = Command::new(kubectl_program());
    cmd.arg("kustomize").arg(dir);
    run_command(cmd, None, Duration::from_secs(60))
        .ok()
        .stdout
        .clone()
}

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.25
        resources:
          limits:
            memory: 256Mi
";

const CONFIGMAP: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: env
data:
  LOG_LEVEL: info
";

const MEMORY: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
      - name: web
        resources:
          limits:
            memory: 1Gi
";

fn inventory(entries: &[&str]) -> String {
    let list: Vec<String> = entries
        .iter()
        .map(|id| format!(r#"{{"id": "{id}", "v": "v1"}}"#))
        .collect();
    format!(r#"{{"inventory": {{"entries": [{}]}}}}"#, list.join(", "))
}

#[test]
fn diff_shows_what_differs_from_git_and_who_changed_it() {
    let cluster = Cluster::start();
    cluster.install_crds();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("fleet");
    std::fs::create_dir_all(&dir).unwrap();
    git(&dir, &["init", "-q", "-b", "main"], &[]);
    write(&dir, "apps/base/deployment.yaml", DEPLOYMENT);
    write(&dir, "apps/base/configmap.yaml", CONFIGMAP);
    write(
        &dir,
        "apps/base/kustomization.yaml",
        "resources:\n- deployment.yaml\n- configmap.yaml\n",
    );
    write(&dir, "apps/prod/memory.yaml", MEMORY);
    write(
        &dir,
        "apps/prod/kustomization.yaml",
        "namespace: dd\nresources:\n- ../base\npatches:\n- path: memory.yaml\n",
    );
    let c1 = commit(&dir, "Li Wei", 3 * 86400, "web and its prod overlay");

    for ns in ["dd", "flux-system"] {
        cluster
            .kubectl(User::Admin, &["create", "namespace", ns])
            .ok();
    }
    let owners = format!(
        "apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {{name: dd, namespace: flux-system}}
spec: {{url: \"file://{}\", ref: {{branch: main}}, interval: 1m}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {{name: dd, namespace: flux-system}}
spec:
  sourceRef: {{kind: GitRepository, name: dd}}
  interval: 10m
  prune: true
  path: ./apps/prod
  patches:
    - target: {{kind: Deployment, name: web}}
      patch: |
        - op: replace
          path: /spec/replicas
          value: 3
",
        dir.display()
    );
    cluster
        .kubectl_stdin(User::Admin, &["apply", "-f", "-"], &owners)
        .ok();
    let set_status = |entries: &[&str]| {
        let inv = inventory(entries);
        let status = format!(
            r#"{{"lastAppliedRevision": "main@sha1:{c1}", {}"#,
            inv.trim_start_matches('{')
        );
        cluster
            .patch_status(
                User::Admin,
                "kustomizations.kustomize.toolkit.fluxcd.io",
                "flux-system",
                "dd",
                &status,
            )
            .ok();
    };
    set_status(&["dd_web_apps_Deployment", "dd_env__ConfigMap"]);
    // What kustomize-controller applies: the build, with the Kustomization's own patch.
    let built = kubectl_kustomize(&dir.join("apps/prod")).replace("replicas: 2", "replicas: 3");
    let labelled = built.replace(
        "  labels:\n    app: web\n  name: web",
        "  labels:\n    app: web\n    kustomize.toolkit.fluxcd.io/name: dd\n    kustomize.toolkit.fluxcd.io/namespace: flux-system\n  name: web",
    )
    .replace(
        "kind: ConfigMap\nmetadata:\n",
        "kind: ConfigMap\nmetadata:\n  labels:\n    kustomize.toolkit.fluxcd.io/name: dd\n    kustomize.toolkit.fluxcd.io/namespace: flux-system\n",
    );
    assert!(
        labelled.contains("replicas: 3") && labelled.contains("memory: 1Gi"),
        "{labelled}"
    );
    cluster.flux_apply(&labelled).ok();

    // Clean: the overlay's memory and the Kustomization's replicas are Git's; defaults, status
    // and metadata are not drift.
    let out = gitops(&cluster, &dir, &cache, &["diff", "-n", "dd"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        out.stdout,
        "2 objects: 2 in sync, 0 drifted, 0 missing, 0 strays, 0 not compared, 0 errors\n",
        "{out}"
    );

    // A rollout restart is not drift.
    cluster
        .kubectl(
            User::Developer,
            &["rollout", "restart", "deployment/web", "-n", "dd"],
        )
        .ok();
    let out = gitops(&cluster, &dir, &cache, &["diff", "-n", "dd"]);
    assert_eq!(out.code, 0, "{out}");

    // A person scales it and labels it: drift, with who did it.
    cluster
        .kubectl(
            User::Developer,
            &["scale", "deployment/web", "-n", "dd", "--replicas=5"],
        )
        .ok();
    cluster
        .kubectl(
            User::Developer,
            &["label", "deployment/web", "-n", "dd", "team=blue"],
        )
        .ok();
    let out = gitops(
        &cluster,
        &dir,
        &cache,
        &["diff", "deployment/web", "-n", "dd"],
    );
    assert_eq!(out.code, 1, "{out}");
    let text = &out.stdout;
    assert!(
        text.starts_with(&format!(
            "--- git/apps/base/deployment.yaml@{}\n+++ live/deployment/web\n",
            short(&c1)
        )),
        "{out}"
    );
    for line in ["-  replicas: 3\n", "+  replicas: 5\n", "+    team: blue\n"] {
        assert!(text.contains(line), "{line:?} in {out}");
    }
    assert!(
        !text.contains("restartedAt") && !text.contains("memory"),
        "{out}"
    );
    assert!(
        text.contains("# metadata.labels.team: added by kubectl-label at "),
        "{out}"
    );
    assert!(
        text.ends_with(
            "1 objects: 0 in sync, 1 drifted, 0 missing, 0 strays, 0 not compared, 0 errors\n"
        ),
        "{out}"
    );

    // JSON for CI: the same fields, with managers.
    let out = gitops(&cluster, &dir, &cache, &["diff", "-n", "dd", "-o", "json"]);
    assert_eq!(out.code, 1, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["summary"]["drifted"], 1, "{report}");
    assert_eq!(report["summary"]["inSync"], 1, "{report}");
    let web = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["object"]["kind"] == "Deployment")
        .unwrap();
    assert_eq!(web["state"], "drift");
    assert_eq!(web["owner"], "Flux Kustomization flux-system/dd");
    assert_eq!(web["commit"], c1.as_str());
    let field = |name: &str| {
        web["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == name)
            .unwrap_or_else(|| panic!("no {name} in {web}"))
            .clone()
    };
    let replicas = field("spec.replicas");
    assert_eq!(replicas["type"], "changed");
    assert_eq!(replicas["git"], 3);
    assert_eq!(replicas["live"], 5);
    // Before 1.22 the API server records no field manager for /scale: the record still names
    // the agent. A patch is recorded, and named.
    assert_eq!(replicas["manager"], "kustomize-controller");
    cluster
        .kubectl(
            User::Developer,
            &[
                "patch",
                "deployment/web",
                "-n",
                "dd",
                "--type=merge",
                "-p",
                r#"{"spec":{"replicas":6}}"#,
            ],
        )
        .ok();
    let out = gitops(
        &cluster,
        &dir,
        &cache,
        &["diff", "deployment/web", "-n", "dd"],
    );
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stdout.contains("+  replicas: 6\n"), "{out}");
    assert!(
        out.stdout
            .contains("# spec.replicas: changed by kubectl-patch at "),
        "{out}"
    );
    let team = field("metadata.labels.team");
    assert_eq!(team["type"], "added");
    assert_eq!(team["manager"], "kubectl-label");

    // An object Git declares that is not there, and one a person made that nobody declares.
    set_status(&[
        "dd_web_apps_Deployment",
        "dd_env__ConfigMap",
        "dd_gone__ConfigMap",
    ]);
    cluster
        .kubectl(
            User::Developer,
            &[
                "create",
                "configmap",
                "handmade",
                "-n",
                "dd",
                "--from-literal=a=b",
            ],
        )
        .ok();
    let out = gitops(&cluster, &dir, &cache, &["diff", "-n", "dd"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stdout.contains("# missing configmap/gone in dd: declared by Flux Kustomization flux-system/dd, not in the cluster\n"),
        "{out}"
    );
    assert!(
        out.stdout.contains("# stray configmap/handmade in dd: in a namespace GitOps manages, declared by no owner, made by kubectl-create\n"),
        "{out}"
    );
    assert!(
        out.stdout.ends_with(
            "4 objects: 1 in sync, 1 drifted, 1 missing, 1 strays, 0 not compared, 0 errors\n"
        ),
        "{out}"
    );

    // A hand-made object nested deeper than the JSON reader goes (a HelmRelease's values can be)
    // does not make every object of its type vanish from the answer: diff names it and stops.
    // (Lists: v1.20's managedFields bookkeeping takes time exponential in the depth of maps.)
    let values = format!(r#"{{"a":{}1{}}}"#, "[".repeat(130), "]".repeat(130));
    let deep = format!(
        r#"{{"apiVersion":"helm.toolkit.fluxcd.io/v2","kind":"HelmRelease","metadata":{{"name":"deep","namespace":"dd"}},"spec":{{"interval":"10m","chart":{{"spec":{{"chart":"x","sourceRef":{{"kind":"HelmRepository","name":"x"}}}}}},"values":{values}}}}}"#
    );
    cluster
        .kubectl_stdin(User::Developer, &["create", "-f", "-"], &deep)
        .ok();
    let out = gitops(&cluster, &dir, &cache, &["diff", "-n", "dd"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains("cannot read helmrelease/deep in dd: recursion limit exceeded"),
        "{out}"
    );
    assert!(
        out.stderr.contains("kubectl gitops does not answer for helmreleases without it. Look at it: kubectl get helmrelease/deep -n dd -o yaml"),
        "{out}"
    );
    cluster
        .kubectl(User::Admin, &["delete", "helmrelease/deep", "-n", "dd"])
        .ok();
    let out = gitops(&cluster, &dir, &cache, &["diff", "-n", "dd"]);
    assert_eq!(out.code, 1, "{out}");

    // Across all namespaces, owners, namespaces and autoscalers come from the one listing of
    // the cluster; those a controller made (an operator's Kustomization, KEDA's autoscaler)
    // count there as they do in one namespace.
    cluster
        .kubectl(
            User::Admin,
            &[
                "patch",
                "kustomization/dd",
                "-n",
                "flux-system",
                "--type=merge",
                "-p",
                r#"{"metadata":{"ownerReferences":[{"apiVersion":"fluxcd.controlplane.io/v1","kind":"ResourceSet","name":"tenants","uid":"6c3f4b2e-0000-4000-8000-000000000001","controller":true}]}}"#,
            ],
        )
        .ok();
    let one = gitops(&cluster, &dir, &cache, &["diff", "-n", "dd"]);
    let all = gitops(&cluster, &dir, &cache, &["diff", "-A"]);
    assert_eq!((all.code, &all.stdout), (one.code, &one.stdout), "{all}");
    assert!(
        all.stdout.contains("# missing configmap/gone in dd: declared by Flux Kustomization flux-system/dd, not in the cluster\n")
            && all.stdout.contains("+  replicas: 6\n"),
        "{all}"
    );
    let keda_hpa = "apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata:
  name: keda-hpa-web
  namespace: dd
  ownerReferences:
  - {apiVersion: keda.sh/v1alpha1, kind: ScaledObject, name: web, uid: 6c3f4b2e-0000-4000-8000-000000000002, controller: true}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 10
";
    cluster
        .kubectl_stdin(User::Admin, &["create", "-f", "-"], keda_hpa)
        .ok();
    let one = gitops(&cluster, &dir, &cache, &["diff", "-n", "dd"]);
    let all = gitops(&cluster, &dir, &cache, &["diff", "-A"]);
    assert_eq!((all.code, &all.stdout), (one.code, &one.stdout), "{all}");
    assert!(
        !all.stdout.contains("replicas") && all.stdout.contains("+    team: blue\n"),
        "{all}"
    );
}
