//! `kubectl gitops status | trace | blame` end to end: a real Git repository in Flux and Argo CD
//! layouts, real owners with real status on the local control plane, objects applied through the
//! agents' service accounts with their labels and field managers, a later `kubectl edit` by a
//! person (no guard registered) as drift, and the errors for an unreachable repository, a missing
//! commit and an ambiguous file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gitops_guard_tests::repo::{cells, commit, git, plugin_binary, row, short, write};
use gitops_guard_tests::{Cluster, Out, User, kubectl_program, run_command};

const FLUX_KS: &str = "system:serviceaccount:flux-system:kustomize-controller";
const FLUX_HELM: &str = "system:serviceaccount:flux-system:helm-controller";
const ARGO: &str = "system:serviceaccount:argocd:argocd-application-controller";

// ---- helpers (test-local; the harness is shared) ----

/// Runs kubectl-gitops with `--kubeconfig` (admin), in `cwd`, with its cache under `cache`.
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

/// YAML manifests → JSON objects, through kubectl (client-side dry run).
fn to_json(cluster: &Cluster, yaml: &str) -> Vec<serde_json::Value> {
    let out = cluster.kubectl_stdin(
        User::Admin,
        &["create", "--dry-run=client", "-o", "json", "-f", "-"],
        yaml,
    );
    out.ok();
    // Several objects come back one after another.
    serde_json::Deserializer::from_str(&out.stdout)
        .into_iter::<serde_json::Value>()
        .map(|v| v.unwrap())
        .flat_map(|v| match v["kind"].as_str() {
            Some("List") => v["items"].as_array().cloned().unwrap_or_default(),
            _ => vec![v],
        })
        .collect()
}

/// Server-side applies `objects` as an agent (impersonated) with its field manager.
fn apply_as_agent(cluster: &Cluster, agent: &str, manager: &str, objects: &[serde_json::Value]) {
    for o in objects {
        cluster
            .kubectl_as_stdin(
                agent,
                &[
                    "apply",
                    "--server-side",
                    "--force-conflicts",
                    &format!("--field-manager={manager}"),
                    "-f",
                    "-",
                ],
                &o.to_string(),
            )
            .ok();
    }
}

fn label(o: &mut serde_json::Value, key: &str, value: &str) {
    o["metadata"]["labels"][key] = serde_json::Value::String(value.into());
}

/// A person edits an object with `kubectl edit` (the editor is a sed expression).
fn edit_as_developer(cluster: &Cluster, resource: &str, ns: &str, sed: &str) {
    let editor = format!("sed -i {sed}");
    cluster
        .kubectl_with(
            &cluster.kubeconfig(User::Developer),
            &[("KUBE_EDITOR", editor.as_ref())],
            &["edit", resource, "-n", ns],
        )
        .ok();
}

// ---- the fleet repository ----

struct Fleet {
    dir: PathBuf,
    c1: String,
    c2: String,
    c3: String,
    c4: String,
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

const SERVICE: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - port: 80
    protocol: TCP
";

const MISC: &str = "\
# settings and the service account, in one file
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: web
";

const HELMRELEASE: &str = "\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: podinfo
spec:
  interval: 10m
  chart:
    spec:
      chart: podinfo
      version: 6.5.0
      sourceRef:
        kind: HelmRepository
        name: podinfo
";

const ENV: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-env
data:
  LOG_LEVEL: info
  FEATURE_FLAGS: \"a,b\"
";

/// base + prod overlay (namePrefix, namespace) for Flux, a plain directory for Argo CD, a
/// HelmRelease, a multi-document file that is later renamed; origin remote on GitHub.
fn fleet(root: &Path) -> Fleet {
    let dir = root.join("fleet");
    std::fs::create_dir_all(&dir).unwrap();
    git(&dir, &["init", "-q", "-b", "main"], &[]);
    git(
        &dir,
        &[
            "remote",
            "add",
            "origin",
            "https://github.com/example/fleet.git",
        ],
        &[],
    );
    write(&dir, "apps/base/web/deployment.yaml", DEPLOYMENT);
    write(&dir, "apps/base/web/service.yaml", SERVICE);
    write(
        &dir,
        "apps/base/web/kustomization.yaml",
        "resources:\n- deployment.yaml\n- service.yaml\n",
    );
    write(&dir, "apps/prod/misc.yaml", MISC);
    write(&dir, "apps/prod/helmrelease.yaml", HELMRELEASE);
    write(
        &dir,
        "apps/prod/kustomization.yaml",
        "namePrefix: prod-\nnamespace: prod\nresources:\n- ../base/web\n- misc.yaml\n- helmrelease.yaml\n",
    );
    write(
        &dir,
        "web/overlays/prod/env.yaml",
        &ENV.replace("\"a,b\"", "\"a\""),
    );
    let c1 = commit(&dir, "Li Wei", 41 * 86400, "initial fleet");
    write(
        &dir,
        "apps/base/web/deployment.yaml",
        &DEPLOYMENT.replace("256Mi", "512Mi"),
    );
    let c2 = commit(
        &dir,
        "Ana Ruiz",
        3 * 86400 + 60,
        "web: raise memory to 512Mi",
    );
    write(&dir, "web/overlays/prod/env.yaml", ENV);
    let c3 = commit(&dir, "CI Bot", 2 * 3600 + 60, "bump feature flags");
    git(
        &dir,
        &["mv", "apps/prod/misc.yaml", "apps/prod/extras.yaml"],
        &[],
    );
    write(
        &dir,
        "apps/prod/kustomization.yaml",
        "namePrefix: prod-\nnamespace: prod\nresources:\n- ../base/web\n- extras.yaml\n- helmrelease.yaml\n",
    );
    let c4 = commit(
        &dir,
        "Sam Okafor",
        5 * 3600 + 60,
        "prod: rename misc to extras",
    );
    Fleet {
        dir,
        c1,
        c2,
        c3,
        c4,
    }
}

fn kubectl_kustomize(dir: &Path) -> String {
    let mut cmd = Command::new(kubectl_program());
    cmd.arg("kustomize").arg(dir);
    run_command(cmd, None, Duration::from_secs(60))
        .ok()
        .stdout
        .clone()
}

/// Everything on the cluster: owners with status, objects applied by the agents, an unmanaged
/// secret, and a person's edit.
fn deploy(cluster: &Cluster, f: &Fleet) {
    cluster.install_crds();
    for ns in ["prod", "flux-system", "argocd"] {
        cluster
            .kubectl(User::Admin, &["create", "namespace", ns])
            .ok();
    }
    let url = format!("file://{}", f.dir.display());
    let owners = format!(
        "apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {{name: fleet, namespace: flux-system}}
spec: {{url: \"{url}\", ref: {{branch: main}}, interval: 1m}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {{name: apps, namespace: flux-system}}
spec: {{path: ./apps/prod, sourceRef: {{kind: GitRepository, name: fleet}}, interval: 10m, prune: true}}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: web, namespace: argocd}}
spec:
  project: default
  source: {{repoURL: \"https://github.com/example/fleet.git\", path: web/overlays/prod, targetRevision: main}}
  destination: {{server: \"https://kubernetes.default.svc\", namespace: prod}}
"
    );
    cluster
        .kubectl_stdin(User::Admin, &["apply", "-f", "-"], &owners)
        .ok();
    cluster
        .patch_status(
            User::Admin,
            "kustomizations.kustomize.toolkit.fluxcd.io",
            "flux-system",
            "apps",
            &format!(r#"{{"lastAppliedRevision": "main@sha1:{}"}}"#, f.c4),
        )
        .ok();
    // Argo CD: deployed c3; Git has moved on to c4 (sync.revision), which is not what runs.
    let app_status = format!(
        r#"{{"status": {{"sync": {{"status": "OutOfSync", "revision": "{}"}}, "operationState": {{"phase": "Succeeded", "syncResult": {{"revision": "{}"}}}}, "history": [{{"id": 1, "revision": "{}"}}]}}}}"#,
        f.c4, f.c3, f.c1
    );
    cluster
        .kubectl(
            User::Admin,
            &[
                "patch",
                "applications.argoproj.io",
                "web",
                "-n",
                "argocd",
                "--type=merge",
                "-p",
                &app_status,
            ],
        )
        .ok();

    // Flux applies what the overlay builds, with its labels and field manager.
    let mut objects = to_json(cluster, &kubectl_kustomize(&f.dir.join("apps/prod")));
    for o in &mut objects {
        label(o, "kustomize.toolkit.fluxcd.io/name", "apps");
        label(o, "kustomize.toolkit.fluxcd.io/namespace", "flux-system");
    }
    apply_as_agent(cluster, FLUX_KS, "kustomize-controller", &objects);
    cluster
        .patch_status(
            User::Admin,
            "helmreleases.helm.toolkit.fluxcd.io",
            "prod",
            "prod-podinfo",
            r#"{"history": [{"chartName": "podinfo", "chartVersion": "6.5.0", "status": "deployed"}]}"#,
        )
        .ok();
    // What the HelmRelease installed.
    let mut installed = to_json(
        cluster,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: podinfo\n  namespace: prod\ndata:\n  color: blue\n",
    );
    for o in &mut installed {
        label(o, "helm.toolkit.fluxcd.io/name", "prod-podinfo");
        label(o, "helm.toolkit.fluxcd.io/namespace", "prod");
    }
    apply_as_agent(cluster, FLUX_HELM, "helm-controller", &installed);
    // Argo CD applies the directory with its tracking annotation.
    let mut argo = to_json(cluster, ENV);
    for o in &mut argo {
        o["metadata"]["namespace"] = "prod".into();
        o["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"] =
            "web:/ConfigMap:prod/web-env".into();
    }
    apply_as_agent(cluster, ARGO, "argocd-controller", &argo);
    cluster
        .kubectl(
            User::Admin,
            &[
                "create",
                "secret",
                "generic",
                "manual",
                "-n",
                "prod",
                "--from-literal=token=x",
            ],
        )
        .ok();
    // A person changes the log level by hand.
    edit_as_developer(cluster, "configmap/web-env", "prod", "s/info/debug/");
}

#[test]
fn status_trace_and_blame_show_the_commit_behind_each_object() {
    let cluster = Cluster::start();
    let tmp = tempfile::tempdir().unwrap();
    let f = fleet(tmp.path());
    deploy(&cluster, &f);
    let cache = tmp.path().join("cache");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();

    // ---- status, run inside the clone: both sources resolve to it ----
    let out = gitops(&cluster, &f.dir, &cache, &["status", "-n", "prod", "--all"]);
    assert_eq!(out.code, 0, "{out}");
    let table = cells(&out.stdout);
    assert_eq!(
        out.stdout
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        vec![
            "RESOURCE", "OWNER", "REVISION", "FILE", "COMMIT", "AUTHOR", "AGE", "SUBJECT", "DRIFT"
        ]
    );
    let rev = format!("main@{}", short(&f.c4));
    let mut rows = table[1..].to_vec();
    // The drift cell carries a time in seconds: check its shape, then compare the rest exactly.
    let web_env = rows
        .iter_mut()
        .find(|r| r[0] == "configmap/web-env")
        .expect("web-env row");
    let drift = web_env.pop().unwrap();
    assert!(
        drift.starts_with("kubectl-edit ") && drift.ends_with("s ago"),
        "{drift}"
    );
    web_env.push("kubectl-edit".into());
    assert_eq!(
        rows,
        vec![
            row([
                "configmap/podinfo",
                "HelmRelease prod/prod-podinfo",
                &rev,
                "apps/prod/helmrelease.yaml",
                short(&f.c1),
                "Li Wei",
                "41d",
                "initial fleet",
                "-"
            ]),
            row([
                "configmap/prod-settings",
                "Kustomization flux-system/apps",
                &rev,
                "apps/prod/extras.yaml",
                short(&f.c4),
                "Sam Okafor",
                "5h",
                "prod: rename misc to extras",
                "-"
            ]),
            row([
                "configmap/web-env",
                "Application argocd/web",
                short(&f.c3),
                "web/overlays/prod/env.yaml",
                short(&f.c3),
                "CI Bot",
                "2h",
                "bump feature flags",
                "kubectl-edit"
            ]),
            row([
                "deployment/prod-web",
                "Kustomization flux-system/apps",
                &rev,
                "apps/base/web/deployment.yaml",
                short(&f.c2),
                "Ana Ruiz",
                "3d",
                "web: raise memory to 512Mi",
                "-"
            ]),
            row([
                "helmrelease/prod-podinfo",
                "Kustomization flux-system/apps",
                &rev,
                "apps/prod/helmrelease.yaml",
                short(&f.c1),
                "Li Wei",
                "41d",
                "initial fleet",
                "-"
            ]),
            row(["secret/manual", "(unmanaged)"]),
            row([
                "service/prod-web",
                "Kustomization flux-system/apps",
                &rev,
                "apps/base/web/service.yaml",
                short(&f.c1),
                "Li Wei",
                "41d",
                "initial fleet",
                "-"
            ]),
            row([
                "serviceaccount/prod-web",
                "Kustomization flux-system/apps",
                &rev,
                "apps/prod/extras.yaml",
                short(&f.c4),
                "Sam Okafor",
                "5h",
                "prod: rename misc to extras",
                "-"
            ]),
        ]
    );

    // Without --all the unmanaged secret is left out; -o json carries the same facts.
    let out = gitops(
        &cluster,
        &f.dir,
        &cache,
        &["status", "-n", "prod", "-o", "json"],
    );
    assert_eq!(out.code, 0, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let items = json["items"].as_array().unwrap();
    assert_eq!(items.len(), 7);
    let settings = items
        .iter()
        .find(|i| i["object"]["name"] == "prod-settings")
        .unwrap();
    assert_eq!(settings["file"], "apps/prod/extras.yaml");
    assert_eq!(settings["document"], 0);
    assert_eq!(settings["lines"], serde_json::json!([2, 7]));
    let sa = items
        .iter()
        .find(|i| i["object"]["kind"] == "ServiceAccount")
        .unwrap();
    assert_eq!(
        (sa["document"].clone(), sa["lines"].clone()),
        (serde_json::json!(1), serde_json::json!([9, 12]))
    );
    assert_eq!(sa["appliedCommit"], f.c4.as_str());
    assert_eq!(sa["repositoryOrigin"], "working-directory");
    let podinfo = items
        .iter()
        .find(|i| i["object"]["name"] == "podinfo")
        .unwrap();
    assert_eq!(podinfo["chart"], "podinfo@6.5.0");
    let env = items
        .iter()
        .find(|i| i["object"]["name"] == "web-env")
        .unwrap();
    assert_eq!(
        env["revision"]["commit"],
        f.c3.as_str(),
        "the deployed revision, not status.sync.revision"
    );
    assert_eq!(env["drift"][0]["field"], "data.LOG_LEVEL");
    assert_eq!(env["drift"][0]["manager"], "kubectl-edit");
    assert_eq!(
        env["link"],
        format!(
            "https://github.com/example/fleet/blob/{}/web/overlays/prod/env.yaml",
            f.c3
        )
        .as_str()
    );

    // Selecting by TYPE and TYPE/NAME, with kubectl's short names.
    let out = gitops(
        &cluster,
        &f.dir,
        &cache,
        &["status", "deploy", "cm/web-env", "-n", "prod"],
    );
    assert_eq!(out.code, 0, "{out}");
    let names: Vec<String> = cells(&out.stdout)[1..]
        .iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(names, vec!["configmap/web-env", "deployment/prod-web"]);

    // A name that does not exist is said after the rows of those that do (exit status 1), as
    // `kubectl get` does; it does not hide them.
    let out = gitops(
        &cluster,
        &f.dir,
        &cache,
        &["status", "cm/web-env", "deploy/nope", "-n", "prod"],
    );
    assert_eq!(out.code, 1, "{out}");
    let names: Vec<String> = cells(&out.stdout)[1..]
        .iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(names, vec!["configmap/web-env"], "{out}");
    assert!(
        out.stderr
            .contains("error: deployment/nope in prod not found"),
        "{out}"
    );

    // ---- trace: the whole chain, with a link for the GitHub source ----
    let out = gitops(
        &cluster,
        &f.dir,
        &cache,
        &["trace", "configmap/web-env", "-n", "prod"],
    );
    assert_eq!(out.code, 0, "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let fleet_dir = f.dir.canonicalize().unwrap();
    assert_eq!(lines[0], "configmap/web-env in prod");
    assert_eq!(
        lines[1],
        format!(
            "└─ Application argocd/web: https://github.com/example/fleet.git (main), path ./web/overlays/prod, deployed {}",
            short(&f.c3)
        )
    );
    assert_eq!(
        lines[2],
        format!(
            "   └─ repository {} (working directory)",
            fleet_dir.display()
        )
    );
    assert!(
        lines[3].starts_with(&format!("      └─ applied commit {} ", short(&f.c3))),
        "{}",
        lines[3]
    );
    assert!(
        lines[3].ends_with("CI Bot: bump feature flags"),
        "{}",
        lines[3]
    );
    assert_eq!(
        lines[4],
        "         └─ file web/overlays/prod/env.yaml (document 1, lines 1-7)"
    );
    assert!(
        lines[5].starts_with(&format!(
            "            └─ last changed in {} by CI Bot <ci.bot@example.com>, 2h ago (",
            short(&f.c3)
        )),
        "{}",
        lines[5]
    );
    assert!(lines[5].ends_with("): bump feature flags"), "{}", lines[5]);
    assert_eq!(
        lines[6].trim(),
        format!(
            "https://github.com/example/fleet/blob/{}/web/overlays/prod/env.yaml",
            f.c3
        )
    );
    assert!(lines[7].starts_with("drift: kubectl-edit "), "{}", lines[7]);
    assert!(
        lines[7].contains("(data.LOG_LEVEL; see kubectl gitops blame configmap/web-env -n prod)"),
        "{}",
        lines[7]
    );

    // An object a HelmRelease installed, traced from outside any clone: the cache clone is made.
    let out = gitops(
        &cluster,
        &elsewhere,
        &cache,
        &["trace", "cm", "podinfo", "-n", "prod"],
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stderr.contains("kubectl-gitops: cloning file://"),
        "{out}"
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[1],
        "└─ HelmRelease prod/prod-podinfo: chart podinfo@6.5.0"
    );
    assert_eq!(
        lines[2],
        format!(
            "   └─ Kustomization flux-system/apps: path ./apps/prod, applied main@sha1:{}",
            short(&f.c4)
        )
    );
    assert_eq!(
        lines[3],
        format!(
            "      └─ GitRepository flux-system/fleet: file://{} (main)",
            f.dir.display()
        )
    );
    assert!(
        lines[4].contains("kubectl-gitops/file_") && lines[4].ends_with(".git (cache)"),
        "{}",
        lines[4]
    );
    assert_eq!(
        lines[6],
        "               └─ file apps/prod/helmrelease.yaml (document 1, lines 1-13), the HelmRelease that installs chart podinfo@6.5.0"
    );
    assert!(
        lines[7].contains(&format!("last changed in {} by Li Wei", short(&f.c1))),
        "{}",
        lines[7]
    );

    // ---- blame: Git lines, the agent's additions, and the drifted field ----
    let out = gitops(
        &cluster,
        &f.dir,
        &cache,
        &["blame", "configmap/web-env", "-n", "prod"],
    );
    assert_eq!(out.code, 0, "{out}");
    let annotated: Vec<(String, String)> = out
        .stdout
        .lines()
        .filter(|l| l.contains(" │ "))
        .map(|l| {
            let (note, text) = l.split_once(" │ ").unwrap();
            (note.trim().to_string(), text.to_string())
        })
        .collect();
    let c1 = short(&f.c1);
    let c3 = short(&f.c3);
    let texts: Vec<&str> = annotated.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        vec![
            "apiVersion: v1",
            "data:",
            "  FEATURE_FLAGS: a,b",
            "  LOG_LEVEL: debug",
            "kind: ConfigMap",
            "metadata:",
            "  annotations:",
            "    argocd.argoproj.io/tracking-id: web:/ConfigMap:prod/web-env",
            "  name: web-env",
            "  namespace: prod",
        ]
    );
    let note = |text: &str| annotated.iter().find(|(_, t)| t == text).unwrap().0.clone();
    assert!(
        note("apiVersion: v1").starts_with(&format!("{c1} Li Wei")),
        "{}",
        note("apiVersion: v1")
    );
    assert!(
        note("  FEATURE_FLAGS: a,b").starts_with(&format!("{c3} CI Bot")),
        "{}",
        note("  FEATURE_FLAGS: a,b")
    );
    assert!(
        note("  FEATURE_FLAGS: a,b").ends_with("2h"),
        "{}",
        note("  FEATURE_FLAGS: a,b")
    );
    let edited = note("  LOG_LEVEL: debug");
    assert!(
        edited.starts_with("kubectl-edit ") && edited.ends_with(" ago (drift)"),
        "{edited}"
    );
    assert!(
        note("    argocd.argoproj.io/tracking-id: web:/ConfigMap:prod/web-env")
            .starts_with("argocd-controller ")
    );
    assert_eq!(note("  namespace: prod"), "(namespace)");
    assert!(
        out.stdout
            .contains("\n1 field not from Git: data.LOG_LEVEL (kubectl-edit "),
        "{out}"
    );

    // The Flux deployment: the memory line from c2, the rest from c1, prefix from the overlay.
    let out = gitops(
        &cluster,
        &f.dir,
        &cache,
        &["blame", "deploy/prod-web", "-n", "prod", "-o", "json"],
    );
    assert_eq!(out.code, 0, "{out}");
    let blame: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let line = |text: &str| {
        blame["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["text"].as_str().unwrap().trim() == text)
            .unwrap_or_else(|| panic!("no line {text:?} in {}", out.stdout))
            .clone()
    };
    assert_eq!(line("memory: 512Mi")["commit"]["id"], f.c2.as_str());
    assert_eq!(line("memory: 512Mi")["fileLine"], 22);
    assert_eq!(line("replicas: 2")["commit"]["id"], f.c1.as_str());
    assert_eq!(line("name: prod-web")["by"], "git");
    assert_eq!(
        line("kustomize.toolkit.fluxcd.io/name: apps")["manager"],
        "kustomize-controller"
    );
    assert!(
        blame["lines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["drift"] == false)
    );
    assert!(!out.stdout.contains("managedFields") && !out.stdout.contains("\"status:"));
}

#[test]
fn unreachable_repositories_missing_commits_and_ambiguous_files_are_said_plainly() {
    let cluster = Cluster::start();
    cluster.install_crds();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    std::fs::create_dir_all(&dir).unwrap();
    git(&dir, &["init", "-q", "-b", "main"], &[]);
    write(
        &dir,
        "dups/one.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\ndata: {a: b}\n",
    );
    write(
        &dir,
        "dups/two.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\ndata: {a: b}\n",
    );
    let head = commit(&dir, "Ana Ruiz", 3600, "two copies");
    for ns in ["prod", "flux-system"] {
        cluster
            .kubectl(User::Admin, &["create", "namespace", ns])
            .ok();
    }
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let sources = format!(
        "apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {{name: local, namespace: flux-system}}
spec: {{url: \"file://{dir}\", ref: {{branch: main}}, interval: 1m}}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {{name: offline, namespace: flux-system}}
spec: {{url: \"https://127.0.0.1:9/example/offline.git\", ref: {{branch: main}}, interval: 1m}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {{name: dups, namespace: flux-system}}
spec: {{path: ./dups, targetNamespace: prod, sourceRef: {{kind: GitRepository, name: local}}, interval: 10m, prune: true}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {{name: gone, namespace: flux-system}}
spec: {{path: ./, sourceRef: {{kind: GitRepository, name: local}}, interval: 10m, prune: true}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {{name: offline, namespace: flux-system}}
spec: {{path: ./, sourceRef: {{kind: GitRepository, name: offline}}, interval: 10m, prune: true}}
",
        dir = dir.display()
    );
    cluster
        .kubectl_stdin(User::Admin, &["apply", "-f", "-"], &sources)
        .ok();
    for (ks, rev) in [
        ("dups", head.clone()),
        ("gone", missing.to_string()),
        ("offline", missing.to_string()),
    ] {
        cluster
            .patch_status(
                User::Admin,
                "kustomizations.kustomize.toolkit.fluxcd.io",
                "flux-system",
                ks,
                &format!(r#"{{"lastAppliedRevision": "main@sha1:{rev}"}}"#),
            )
            .ok();
    }
    for (name, ks) in [("dup", "dups"), ("stale", "gone"), ("remote", "offline")] {
        let mut objs = to_json(
            &cluster,
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: prod\ndata: {{a: b}}\n"
            ),
        );
        for o in &mut objs {
            label(o, "kustomize.toolkit.fluxcd.io/name", ks);
            label(o, "kustomize.toolkit.fluxcd.io/namespace", "flux-system");
        }
        apply_as_agent(&cluster, FLUX_KS, "kustomize-controller", &objs);
    }
    let cache = tmp.path().join("cache");
    let cwd = tmp.path();

    let out = gitops(&cluster, cwd, &cache, &["status", "-n", "prod"]);
    assert_eq!(out.code, 1, "{out}");
    let rows = cells(&out.stdout);
    let file_of = |name: &str| {
        rows.iter()
            .find(|r| r[0] == format!("configmap/{name}"))
            .unwrap()[3]
            .clone()
    };
    assert_eq!(file_of("dup"), "(ambiguous file)");
    assert_eq!(file_of("stale"), "(commit missing)");
    assert_eq!(file_of("remote"), "(repo unreachable)");
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 3, "{out}");
    assert!(
        errors.contains(&format!(
            "error: configmap/dup in prod: 2 manifests at {} could define it: dups/one.yaml, dups/two.yaml; set originAnnotations (kustomize buildMetadata) so the file is recorded on the object",
            short(&head)
        ).as_str()),
        "{out}"
    );
    assert!(
        errors.contains(&format!(
            "error: configmap/stale in prod: commit {missing} applied by Flux Kustomization flux-system/gone is not in file://{} (fetched just now): it was probably force-pushed away or never pushed; reconcile Flux Kustomization flux-system/gone and try again",
            dir.display()
        ).as_str()),
        "{out}"
    );
    let unreachable = errors
        .iter()
        .find(|e| e.contains("configmap/remote"))
        .unwrap();
    assert!(
        unreachable.starts_with("error: configmap/remote in prod: cannot reach the Git repository https://127.0.0.1:9/example/offline.git: "),
        "{unreachable}"
    );
    assert!(
        unreachable.ends_with("; run kubectl gitops inside a clone of it, or pass --repo PATH"),
        "{unreachable}"
    );

    // The same through trace: exit 1, the chain up to where it stops, then why.
    let out = gitops(
        &cluster,
        cwd,
        &cache,
        &["trace", "configmap/stale", "-n", "prod"],
    );
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stdout
            .contains("└─ Kustomization flux-system/gone: path ./, applied main@sha1:0123456"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("✗ commit 0123456789abcdef0123456789abcdef01234567 applied by"),
        "{out}"
    );

    // A new commit the cache clone does not have yet is fetched: the ambiguity is gone.
    git(&dir, &["rm", "-q", "dups/two.yaml"], &[]);
    let fixed = commit(&dir, "Li Wei", 60, "drop the copy");
    cluster
        .patch_status(
            User::Admin,
            "kustomizations.kustomize.toolkit.fluxcd.io",
            "flux-system",
            "dups",
            &format!(r#"{{"lastAppliedRevision": "main@sha1:{fixed}"}}"#),
        )
        .ok();
    let out = gitops(
        &cluster,
        cwd,
        &cache,
        &["status", "configmap/dup", "-n", "prod"],
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stderr.contains("kubectl-gitops: fetching file://"),
        "{out}"
    );
    assert_eq!(
        cells(&out.stdout)[1],
        row([
            "configmap/dup",
            "Kustomization flux-system/dups",
            &format!("main@{}", short(&fixed)),
            "dups/one.yaml",
            short(&head),
            "Ana Ruiz",
            "60m",
            "two copies",
            "-"
        ])
    );

    // Usage errors: exit 1 with kubectl's wording; help and completion exit 0.
    let out = gitops(
        &cluster,
        cwd,
        &cache,
        &["trace", "nosuchtype/x", "-n", "prod"],
    );
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(
        out.stderr.trim(),
        "error: the server doesn't have a resource type \"nosuchtype\" (see kubectl api-resources)"
    );
    let out = gitops(
        &cluster,
        cwd,
        &cache,
        &["trace", "secret/none", "-n", "prod"],
    );
    assert_eq!(
        (out.code, out.stderr.trim()),
        (1, "error: secret/none in prod not found"),
        "{out}"
    );
    cluster
        .kubectl(
            User::Admin,
            &["create", "secret", "generic", "mine", "-n", "prod"],
        )
        .ok();
    let out = gitops(
        &cluster,
        cwd,
        &cache,
        &["trace", "secret/mine", "-n", "prod"],
    );
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr
            .contains("secret/mine in prod is not managed by Flux or Argo CD"),
        "{out}"
    );
    let out = gitops(&cluster, cwd, &cache, &["status", "--help"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains("Examples:")
            && out
                .stdout
                .contains("kubectl gitops status -A --all -o json"),
        "{out}"
    );
    let out = gitops(&cluster, cwd, &cache, &["completion", "bash"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("kubectl-gitops"), "{out}");
}

/// Kinds a group serves only in a version it does not prefer are listed and resolve like any
/// other: Flux's Alerts and Providers are notification.toolkit.fluxcd.io/v1beta3 while the group
/// prefers v1 (its Receivers). `status` once left them out with exit code 0, and `status alerts`
/// said the type does not exist.
#[test]
fn kinds_served_only_in_a_version_the_group_does_not_prefer_are_listed() {
    let cluster = Cluster::start();
    cluster.install_crds();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    cluster
        .kubectl(User::Admin, &["create", "namespace", "alerts"])
        .ok();
    let labels = r#"{"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}"#;
    let objects: Vec<serde_json::Value> = [
        ("notification.toolkit.fluxcd.io/v1beta3", "Provider", "slack", r#"{"type": "slack", "channel": "ops"}"#),
        ("notification.toolkit.fluxcd.io/v1beta3", "Alert", "on-call", r#"{"providerRef": {"name": "slack"}, "eventSources": [{"kind": "Kustomization", "name": "*"}]}"#),
        ("notification.toolkit.fluxcd.io/v1", "Receiver", "github", r#"{"type": "github", "resources": [{"kind": "GitRepository", "name": "flux-system"}], "secretRef": {"name": "token"}}"#),
    ]
    .iter()
    .map(|(api_version, kind, name, spec)| {
        serde_json::json!({"apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "namespace": "alerts", "labels": serde_json::from_str::<serde_json::Value>(labels).unwrap()},
            "spec": serde_json::from_str::<serde_json::Value>(spec).unwrap()})
    })
    .collect();
    apply_as_agent(&cluster, FLUX_KS, "kustomize-controller", &objects);

    let out = gitops(&cluster, tmp.path(), &cache, &["status", "-n", "alerts"]);
    // (Their owner is not on this cluster: each row says so, exit code 1; the rows are the point.)
    assert!(
        out.stderr
            .lines()
            .all(|l| l.ends_with("Flux Kustomization flux-system/apps: it does not exist")),
        "{out}"
    );
    let listed: Vec<String> = cells(&out.stdout)[1..]
        .iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(
        listed,
        ["alert/on-call", "provider/slack", "receiver/github"],
        "{out}"
    );
    for (what, want) in [
        ("alerts", "alert/on-call"),
        ("alert/on-call", "alert/on-call"),
        ("providers.notification.toolkit.fluxcd.io", "provider/slack"),
        (
            "provider.v1beta3.notification.toolkit.fluxcd.io/slack",
            "provider/slack",
        ),
    ] {
        let out = gitops(
            &cluster,
            tmp.path(),
            &cache,
            &["status", what, "-n", "alerts"],
        );
        assert!(!out.stderr.contains("resource type"), "{what}: {out}");
        assert_eq!(cells(&out.stdout)[1][0], want, "{what}: {out}");
    }
}

/// Discovery is kept between runs (as kubectl keeps its own), and a kind added since — even in a
/// group version the server already served — is seen at once: the cache holds only while the
/// server lists the same group versions and the same CRDs.
#[test]
fn discovery_is_kept_between_runs_and_a_new_kind_is_seen_at_once() {
    let cluster = Cluster::start();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let crd = |plural: &str, kind: &str| {
        format!(
            "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: {plural}.example.com}}
spec:
  group: example.com
  scope: Namespaced
  names: {{plural: {plural}, singular: {singular}, kind: {kind}}}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}
",
            singular = kind.to_lowercase()
        )
    };
    let install = |plural: &str, kind: &str| {
        cluster
            .kubectl_stdin(User::Admin, &["apply", "-f", "-"], &crd(plural, kind))
            .ok();
        cluster
            .kubectl(
                User::Admin,
                &[
                    "wait",
                    "--for=condition=established",
                    &format!("crd/{plural}.example.com"),
                ],
            )
            .ok();
    };
    install("gadgets", "Gadget");
    cluster
        .kubectl(User::Admin, &["create", "namespace", "cached"])
        .ok();
    let fetched = || -> serde_json::Value {
        let dir = cache.join("kube/kubectl-gitops/discovery");
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
        v["fetched"].clone()
    };
    let out = gitops(&cluster, tmp.path(), &cache, &["status", "-n", "cached"]);
    assert_eq!(out.code, 0, "{out}");
    let first = fetched();
    let out = gitops(&cluster, tmp.path(), &cache, &["status", "-n", "cached"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(fetched(), first, "the second run uses the kept discovery");

    // A new kind in example.com/v1, which the server already served, with a managed object.
    install("widgets", "Widget");
    let widget = serde_json::json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1", "namespace": "cached", "labels": {
            "kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}}});
    apply_as_agent(&cluster, FLUX_KS, "kustomize-controller", &[widget]);
    let out = gitops(&cluster, tmp.path(), &cache, &["status", "-n", "cached"]);
    let listed: Vec<String> = cells(&out.stdout)[1..]
        .iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(listed, ["widget/w1"], "{out}");
    assert_ne!(fetched(), first, "discovered again");
    let out = gitops(
        &cluster,
        tmp.path(),
        &cache,
        &["status", "widgets", "-n", "cached"],
    );
    assert!(!out.stderr.contains("resource type"), "{out}");
}

/// Namespaces `name` and flux-system, a GitRepository `name` for `dir` and a Kustomization
/// `name` with `spec` (indented YAML lines: path and more) that applied `commit`.
fn flux_owner(cluster: &Cluster, name: &str, dir: &Path, spec: &str, commit: &str) {
    for ns in [name, "flux-system"] {
        cluster
            .kubectl(User::Admin, &["create", "namespace", ns])
            .ok();
    }
    let owners = format!(
        "apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {{name: {name}, namespace: flux-system}}
spec: {{url: \"file://{}\", ref: {{branch: main}}, interval: 1m}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {{name: {name}, namespace: flux-system}}
spec:
  sourceRef: {{kind: GitRepository, name: {name}}}
  interval: 10m
  prune: true
{spec}",
        dir.display()
    );
    cluster
        .kubectl_stdin(User::Admin, &["apply", "-f", "-"], &owners)
        .ok();
    cluster
        .patch_status(
            User::Admin,
            "kustomizations.kustomize.toolkit.fluxcd.io",
            "flux-system",
            name,
            &format!(r#"{{"lastAppliedRevision": "main@sha1:{commit}"}}"#),
        )
        .ok();
}

/// A value an overlay sets (a patch file, an `images` entry) is blamed on that overlay's file and
/// the commit that last changed it, not on the agent that applied it nor on the base document.
#[test]
fn blame_names_the_overlay_file_and_commit_that_set_a_value() {
    let cluster = Cluster::start();
    cluster.install_crds();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("overlays");
    std::fs::create_dir_all(&dir).unwrap();
    git(&dir, &["init", "-q", "-b", "main"], &[]);
    write(&dir, "apps/base/deployment.yaml", DEPLOYMENT);
    write(
        &dir,
        "apps/base/kustomization.yaml",
        "resources:\n- deployment.yaml\n",
    );
    let memory = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        resources:\n          limits:\n            memory: 384Mi\n";
    write(&dir, "apps/prod/memory.yaml", memory);
    let prod = "namespace: ovl\nresources:\n- ../base\npatches:\n- path: memory.yaml\nimages:\n- name: nginx\n  newTag: \"1.26\"\n";
    write(&dir, "apps/prod/kustomization.yaml", prod);
    let c1 = commit(&dir, "Li Wei", 9 * 86400, "web: base and prod overlay");
    write(
        &dir,
        "apps/prod/memory.yaml",
        &memory.replace("384Mi", "512Mi"),
    );
    let c2 = commit(&dir, "Bo Chen", 5 * 86400, "prod: more memory");
    write(
        &dir,
        "apps/prod/kustomization.yaml",
        &prod.replace("1.26", "1.27"),
    );
    let c3 = commit(&dir, "Cy Diaz", 2 * 86400, "prod: nginx 1.27");

    flux_owner(&cluster, "ovl", &dir, "  path: ./apps/prod\n", &c3);
    let mut objects = to_json(&cluster, &kubectl_kustomize(&dir.join("apps/prod")));
    for o in &mut objects {
        label(o, "kustomize.toolkit.fluxcd.io/name", "ovl");
        label(o, "kustomize.toolkit.fluxcd.io/namespace", "flux-system");
    }
    apply_as_agent(&cluster, FLUX_KS, "kustomize-controller", &objects);

    let out = gitops(
        &cluster,
        &dir,
        &cache,
        &["blame", "deployment/web", "-n", "ovl", "-o", "json"],
    );
    assert_eq!(out.code, 0, "{out}");
    let blame: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let line = |text: &str| {
        blame["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["text"].as_str().unwrap().trim() == text)
            .unwrap_or_else(|| panic!("no line {text:?} in {}", out.stdout))
            .clone()
    };
    let memory = line("memory: 512Mi");
    assert_eq!(memory["by"], "overlay", "{memory}");
    assert_eq!(memory["what"], "apps/prod/memory.yaml");
    assert_eq!(memory["commit"]["id"], c2.as_str());
    let image = line("- image: nginx:1.27");
    assert_eq!(image["by"], "overlay", "{image}");
    assert_eq!(image["what"], "apps/prod/kustomization.yaml (images[0])");
    assert_eq!(image["commit"]["id"], c3.as_str());
    // What the base document sets is still the base's, line by line.
    let replicas = line("replicas: 2");
    assert_eq!(replicas["by"], "git");
    assert_eq!(replicas["commit"]["id"], c1.as_str());
    assert!(
        blame["lines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["drift"] == false),
        "{}",
        out.stdout
    );
    // status names the overlays beside the document, and the newest commit among them all;
    // trace says which overlay set what, with each one's last change.
    let out = gitops(&cluster, &dir, &cache, &["status", "-n", "ovl"]);
    assert_eq!(out.code, 0, "{out}");
    let rows = cells(&out.stdout);
    let web = rows
        .iter()
        .find(|r| r[0] == "deployment/web")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(
        web[3], "apps/base/deployment.yaml + 2 overlay files",
        "{out}"
    );
    assert_eq!(web[4], short(&c3), "{out}");
    let out = gitops(
        &cluster,
        &dir,
        &cache,
        &["trace", "deployment/web", "-n", "ovl"],
    );
    assert_eq!(out.code, 0, "{out}");
    let patched: Vec<&str> = out
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("+ patched by"))
        .collect();
    assert_eq!(
        patched,
        [
            format!(
                "+ patched by apps/prod/memory.yaml (patch), last changed in {} by Bo Chen, 5d ago: prod: more memory",
                short(&c2)
            ),
            format!(
                "+ patched by apps/prod/kustomization.yaml (images[0]), last changed in {} by Cy Diaz, 2d ago: prod: nginx 1.27",
                short(&c3)
            ),
        ],
        "{out}"
    );
    let json = gitops(
        &cluster,
        &dir,
        &cache,
        &["status", "-n", "ovl", "-o", "json"],
    );
    let items: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let web = items["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["object"]["kind"] == "Deployment")
        .unwrap();
    assert_eq!(
        web["patchedBy"][0]["file"], "apps/prod/memory.yaml",
        "{json}"
    );
    assert_eq!(web["patchedBy"][0]["commit"]["id"], c2.as_str(), "{json}");

    // The text form names the overlay and its commit.
    let out = gitops(
        &cluster,
        &dir,
        &cache,
        &["blame", "deployment/web", "-n", "ovl"],
    );
    assert_eq!(out.code, 0, "{out}");
    let memory_line = out
        .stdout
        .lines()
        .find(|l| l.ends_with("memory: 512Mi"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        memory_line.starts_with(&format!("{} Bo Chen", short(&c2)))
            && memory_line.contains("apps/prod/memory.yaml"),
        "{memory_line}"
    );
}

/// What the Flux Kustomization itself sets after the build (its `spec.patches`, `spec.images`,
/// a `postBuild` variable) is blamed on it, not on the agent; a person's later change to such a
/// field is still drift.
#[test]
fn blame_names_what_the_flux_kustomization_sets_after_the_build() {
    let cluster = Cluster::start();
    cluster.install_crds();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("flux-sets");
    std::fs::create_dir_all(&dir).unwrap();
    git(&dir, &["init", "-q", "-b", "main"], &[]);
    let doc = DEPLOYMENT.replace(
        "  labels:\n    app: web\nspec:",
        "  labels:\n    app: web\n  annotations:\n    team: ${TEAM:=payments}\nspec:",
    );
    write(&dir, "apps/web/deployment.yaml", &doc);
    let c1 = commit(&dir, "Li Wei", 3 * 86400, "web");
    flux_owner(
        &cluster,
        "fs",
        &dir,
        "  path: ./apps/web
  targetNamespace: fs
  patches:
    - target: {kind: Deployment, name: web}
      patch: |
        - op: replace
          path: /spec/replicas
          value: 5
  images:
    - name: nginx
      newTag: \"1.27\"
  postBuild:
    substitute: {TEAM: billing}
",
        &c1,
    );
    // What kustomize-controller applies: the build with the Kustomization's own changes.
    let built = doc
        .replace("${TEAM:=payments}", "billing")
        .replace("replicas: 2", "replicas: 5")
        .replace("nginx:1.25", "nginx:1.27");
    let mut objects = to_json(&cluster, &built);
    for o in &mut objects {
        o["metadata"]["namespace"] = "fs".into();
        label(o, "kustomize.toolkit.fluxcd.io/name", "fs");
        label(o, "kustomize.toolkit.fluxcd.io/namespace", "flux-system");
    }
    apply_as_agent(&cluster, FLUX_KS, "kustomize-controller", &objects);

    let blame = |cluster: &Cluster| -> serde_json::Value {
        let out = gitops(
            cluster,
            &dir,
            &cache,
            &["blame", "deployment/web", "-n", "fs", "-o", "json"],
        );
        assert_eq!(out.code, 0, "{out}");
        serde_json::from_str(&out.stdout).unwrap()
    };
    let line = |b: &serde_json::Value, text: &str| {
        b["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["text"].as_str().unwrap().trim() == text)
            .unwrap_or_else(|| panic!("no line {text:?} in {b}"))
            .clone()
    };
    let b = blame(&cluster);
    for (text, what) in [
        (
            "replicas: 5",
            "spec.patches[0] of kustomization/fs -n flux-system",
        ),
        (
            "- image: nginx:1.27",
            "spec.images[0] of kustomization/fs -n flux-system",
        ),
        (
            "team: billing",
            "the postBuild variable ${TEAM} of kustomization/fs -n flux-system (from its spec.postBuild.substitute)",
        ),
    ] {
        let l = line(&b, text);
        assert_eq!(l["by"], "owner", "{l}");
        assert_eq!(l["what"], what, "{l}");
        assert_eq!(l["drift"], false, "{l}");
    }
    assert_eq!(line(&b, "memory: 256Mi")["commit"]["id"], c1.as_str());

    // A person changes it by hand: that is drift, whatever Flux's patch says. (A patch, not
    // `kubectl scale`: before 1.22 the API server records no managedFields for /scale.)
    cluster
        .kubectl(
            User::Admin,
            &[
                "patch",
                "deployment/web",
                "-n",
                "fs",
                "--type=merge",
                "-p",
                r#"{"spec":{"replicas":7}}"#,
            ],
        )
        .ok();
    let b = blame(&cluster);
    let replicas = line(&b, "replicas: 7");
    assert_eq!(replicas["by"], "manager", "{replicas}");
    assert_eq!(replicas["drift"], true, "{replicas}");
}
