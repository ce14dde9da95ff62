//! `kubectl gitops status | trace | blame` for objects a Flux Kustomization applies from an
//! `ExternalArtifact` that an `ArtifactGenerator` (source-watcher, Flux 2.7) copies out of a Git
//! repository: the chain goes Kustomization → ExternalArtifact → ArtifactGenerator → GitRepository,
//! the Kustomization's path in the artifact is mapped back to the Git directory through the copy
//! rules, and the applied commit is the Kustomization's `status.lastAppliedOriginRevision` (its
//! `lastAppliedRevision` is a digest of the artifact's files). Real Git (a clone and its bare
//! remote), real kubectl, the local control plane; the objects are applied as kustomize-controller
//! applies them, the artifacts as source-watcher writes them.
//!
//! What cannot be followed back to one Git file (two sources merged into one directory, no
//! recorded commit) is reported as an incomplete owner naming the rule or the missing field.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use gitops_guard_tests::repo::{cells, commit, git, plugin_binary, row, short, write};
use gitops_guard_tests::{Cluster, KUSTOMIZE_CONTROLLER, Out, User, kubectl_program, run_command};
use serde_json::{Value, json};

const SOURCE_WATCHER: &str = "system:serviceaccount:flux-system:source-watcher";

/// The digest of a made-up artifact tarball (what source-watcher reports as `sha256:<hex>`).
const DIGEST: &str = "d2a84f4b8b650937ec8f73cd8be2c74add5a911ba64df27458ed8229da804a26";
const OTHER_DIGEST: &str = "7c0ffee5ab3d9e1f00c4a5b6e7d8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6";

// ---- helpers (test-local; the harness is shared) ----

/// One control plane for the tests of this file (each has its own namespaces and repositories).
fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let cluster = Cluster::start();
        // Flux's CRDs, among them ExternalArtifact and ArtifactGenerator.
        cluster.install_crds();
        cluster
            .kubectl(User::Admin, &["create", "namespace", "flux-system"])
            .ok();
        cluster
    })
}

/// Runs kubectl-gitops with `--kubeconfig` (admin), in `cwd`, with its cache under `cache`.
fn gitops(cwd: &Path, cache: &Path, args: &[&str]) -> Out {
    let mut cmd = Command::new(plugin_binary());
    cmd.args(args)
        .arg("--kubeconfig")
        .arg(cluster().kubeconfig(User::Admin))
        .current_dir(cwd)
        .env("XDG_CACHE_HOME", cache)
        .env_remove("KUBECONFIG");
    run_command(cmd, None, Duration::from_secs(120))
}

/// A clone `<name>` with a bare remote `<name>.git` as its origin; returns (clone, remote URL).
fn repository(root: &Path, name: &str) -> (PathBuf, String) {
    let dir = root.join(name);
    let bare = root.join(format!("{name}.git"));
    std::fs::create_dir_all(&dir).unwrap();
    git(
        root,
        &["init", "-q", "--bare", "-b", "main", &format!("{name}.git")],
        &[],
    );
    git(&dir, &["init", "-q", "-b", "main"], &[]);
    let url = format!("file://{}", bare.display());
    git(&dir, &["remote", "add", "origin", &url], &[]);
    (dir, url)
}

fn push(dir: &Path) {
    git(dir, &["push", "-q", "origin", "main"], &[]);
}

/// YAML manifests → JSON objects, through kubectl (client-side dry run).
fn to_json(yaml: &str) -> Vec<Value> {
    let out = cluster().kubectl_stdin(
        User::Admin,
        &["create", "--dry-run=client", "-o", "json", "-f", "-"],
        yaml,
    );
    out.ok();
    serde_json::Deserializer::from_str(&out.stdout)
        .into_iter::<Value>()
        .map(|v| v.unwrap())
        .flat_map(|v| match v["kind"].as_str() {
            Some("List") => v["items"].as_array().cloned().unwrap_or_default(),
            _ => vec![v],
        })
        .collect()
}

fn kubectl_kustomize(dir: &Path) -> String {
    let mut cmd = Command::new(kubectl_program());
    cmd.arg("kustomize").arg(dir);
    run_command(cmd, None, Duration::from_secs(60))
        .ok()
        .stdout
        .clone()
}

/// What Kustomization flux-system/`ks` applies: `yaml` in `namespace` (its targetNamespace), with
/// kustomize-controller's labels and field manager.
fn apply_as_kustomize_controller(ks: &str, namespace: &str, yaml: &str) {
    for mut o in to_json(yaml) {
        o["metadata"]["namespace"] = namespace.into();
        o["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"] = ks.into();
        o["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/namespace"] = "flux-system".into();
        cluster()
            .agent_apply(KUSTOMIZE_CONTROLLER, "kustomize-controller", &o.to_string())
            .ok();
    }
}

/// The ExternalArtifact `name` an ArtifactGenerator of the same name made, applied and with its
/// status as source-watcher writes them (`metadata` goes into `status.artifact.metadata`).
fn external_artifact(name: &str, digest: &str, metadata: Value) {
    let ea = json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "ExternalArtifact",
        "metadata": {"name": name, "namespace": "flux-system"},
        "spec": {"sourceRef": {
            "apiVersion": "source.extensions.fluxcd.io/v1beta1",
            "kind": "ArtifactGenerator",
            "name": name,
            "namespace": "flux-system"
        }}
    });
    cluster()
        .agent_apply(SOURCE_WATCHER, "source-watcher", &ea.to_string())
        .ok();
    let path = format!("externalartifact/flux-system/{name}/{digest}.tar.gz");
    let status = json!({
        "artifact": {
            "digest": format!("sha256:{digest}"),
            "lastUpdateTime": "2025-10-01T12:00:00Z",
            "metadata": metadata,
            "path": path,
            "revision": format!("latest@sha256:{digest}"),
            "size": 1024,
            "url": format!("http://source-watcher.flux-system.svc.cluster.local./{path}")
        },
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "Succeeded",
            "message": "Artifact is ready", "observedGeneration": 1,
            "lastTransitionTime": "2025-10-01T12:00:00Z"
        }]
    });
    cluster()
        .patch_status_as(
            SOURCE_WATCHER,
            "externalartifacts.source.toolkit.fluxcd.io",
            "flux-system",
            name,
            &status.to_string(),
        )
        .ok();
}

/// Kustomization flux-system/`name` applying ExternalArtifact `name` at `./` into `namespace`,
/// with `status` as kustomize-controller writes it.
fn kustomization(name: &str, namespace: &str, status: Value) {
    let ks = format!(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {{name: {name}, namespace: flux-system}}
spec:
  interval: 10m
  path: ./
  prune: true
  targetNamespace: {namespace}
  sourceRef: {{kind: ExternalArtifact, name: {name}}}
"
    );
    cluster()
        .kubectl_stdin(User::Admin, &["apply", "-f", "-"], &ks)
        .ok();
    cluster()
        .patch_status_as(
            KUSTOMIZE_CONTROLLER,
            "kustomizations.kustomize.toolkit.fluxcd.io",
            "flux-system",
            name,
            &status.to_string(),
        )
        .ok();
}

fn admin_apply(yaml: &str) {
    cluster()
        .kubectl_stdin(User::Admin, &["apply", "-f", "-"], yaml)
        .ok();
}

// ---- the repository ----

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
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

const KUSTOMIZATION: &str = "resources:\n- deployment.yaml\n- service.yaml\n";

struct Fleet {
    dir: PathBuf,
    url: String,
    c1: String,
    c2: String,
    c3: String,
}

/// `deploy/app/{kustomization,deployment,service}.yaml` beside unrelated files (another app, the
/// cluster's Flux objects): c1 adds everything, c2 changes the deployment, c3 something else.
fn fleet(root: &Path) -> Fleet {
    let (dir, url) = repository(root, "fleet");
    write(&dir, "deploy/app/kustomization.yaml", KUSTOMIZATION);
    write(&dir, "deploy/app/deployment.yaml", DEPLOYMENT);
    write(&dir, "deploy/app/service.yaml", SERVICE);
    // Another app with a Deployment of the same name: outside the artifact, never the answer.
    write(&dir, "deploy/other/deployment.yaml", DEPLOYMENT);
    write(&dir, "README.md", "# fleet\n");
    write(
        &dir,
        "clusters/prod/web.yaml",
        "# the generator, artifact and Kustomization of deploy/app\n",
    );
    let c1 = commit(&dir, "Li Wei", 10 * 86400, "initial fleet");
    write(
        &dir,
        "deploy/app/deployment.yaml",
        &DEPLOYMENT.replace("nginx:1.25", "nginx:1.27"),
    );
    let c2 = commit(&dir, "Ana Ruiz", 2 * 86400 + 60, "web: nginx 1.27");
    write(&dir, "README.md", "# fleet\n\nSee clusters/prod.\n");
    let c3 = commit(
        &dir,
        "CI Bot",
        5 * 3600 + 60,
        "readme: point at clusters/prod",
    );
    push(&dir);
    Fleet {
        dir,
        url,
        c1,
        c2,
        c3,
    }
}

/// The GitRepository flux-system/`name` for `url`, following main.
fn git_repository(name: &str, url: &str) {
    admin_apply(&format!(
        "apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {{name: {name}, namespace: flux-system}}
spec: {{url: \"{url}\", ref: {{branch: main}}, interval: 1m}}
"
    ));
}

#[test]
fn objects_from_an_artifact_generator_resolve_to_the_git_file_and_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fleet(tmp.path());
    let cache = tmp.path().join("cache");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    cluster()
        .kubectl(User::Admin, &["create", "namespace", "web"])
        .ok();
    git_repository("fleet", &f.url);
    admin_apply(
        "apiVersion: source.extensions.fluxcd.io/v1beta1
kind: ArtifactGenerator
metadata: {name: web, namespace: flux-system}
spec:
  sources:
  - {alias: repo, kind: GitRepository, name: fleet}
  artifacts:
  - name: web
    originRevision: '@repo'
    copy:
    - {from: '@repo/deploy/app/**', to: '@artifact/'}
",
    );
    let origin = format!("main@sha1:{}", f.c3);
    external_artifact(
        "web",
        DIGEST,
        json!({"org.opencontainers.image.revision": origin}),
    );
    kustomization(
        "web",
        "web",
        json!({
            "lastAppliedRevision": format!("latest@sha256:{DIGEST}"),
            "lastAttemptedRevision": format!("latest@sha256:{DIGEST}"),
            "lastAppliedOriginRevision": origin,
        }),
    );
    apply_as_kustomize_controller("web", "web", &kubectl_kustomize(&f.dir.join("deploy/app")));

    // ---- status, from outside any clone: the cache clone of the bare remote ----
    let out = gitops(&elsewhere, &cache, &["status", "-n", "web"]);
    assert_eq!(out.code, 0, "{out}");
    let rev = format!("main@{}", short(&f.c3));
    assert_eq!(
        cells(&out.stdout)[1..],
        [
            row([
                "deployment/web",
                "Kustomization flux-system/web",
                &rev,
                "deploy/app/deployment.yaml",
                short(&f.c2),
                "Ana Ruiz",
                "2d",
                "web: nginx 1.27",
                "-"
            ]),
            row([
                "service/web",
                "Kustomization flux-system/web",
                &rev,
                "deploy/app/service.yaml",
                short(&f.c1),
                "Li Wei",
                "10d",
                "initial fleet",
                "-"
            ]),
        ],
        "{out}"
    );

    // -o json: the Git source and path behind the artifact, the origin revision as the applied one.
    let out = gitops(
        &elsewhere,
        &cache,
        &["status", "deploy/web", "-n", "web", "-o", "json"],
    );
    assert_eq!(out.code, 0, "{out}");
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    let web = &json["items"][0];
    assert_eq!(
        web["source"],
        json!({"kind": "GitRepository", "namespace": "flux-system", "name": "fleet",
               "url": f.url, "reference": "main", "path": "deploy/app"})
    );
    assert_eq!(web["revision"]["raw"], origin.as_str());
    assert_eq!(web["appliedCommit"], f.c3.as_str());
    assert_eq!(web["repositoryOrigin"], "cache");

    // ---- trace, in the clone: Kustomization → ExternalArtifact → ArtifactGenerator → Git ----
    let out = gitops(&f.dir, &cache, &["trace", "deployment/web", "-n", "web"]);
    assert_eq!(out.code, 0, "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let step = |depth: usize, text: &str| format!("{}└─ {text}", "   ".repeat(depth));
    let digest = format!("latest@sha256:{}", &DIGEST[..7]);
    assert_eq!(
        lines[..6],
        [
            "deployment/web in web".to_string(),
            step(
                0,
                &format!(
                    "Kustomization flux-system/web: path ./, applied {digest} from main@sha1:{}",
                    short(&f.c3)
                )
            ),
            step(
                1,
                &format!(
                    "ExternalArtifact flux-system/web: made by ArtifactGenerator flux-system/web, revision {digest}"
                )
            ),
            step(
                2,
                "ArtifactGenerator flux-system/web: artifact web: ./ is ./deploy/app of @repo, by copy rule 1 (\"@repo/deploy/app/**\" → \"@artifact/\")"
            ),
            step(
                3,
                &format!("GitRepository flux-system/fleet: {} (main)", f.url)
            ),
            step(
                4,
                &format!(
                    "repository {} (working directory)",
                    f.dir.canonicalize().unwrap().display()
                )
            ),
        ],
        "{out}"
    );
    assert!(
        lines[6].starts_with(&step(5, &format!("applied commit {} ", short(&f.c3))))
            && lines[6].ends_with("CI Bot: readme: point at clusters/prod"),
        "{out}"
    );
    assert_eq!(
        lines[7],
        step(
            6,
            "file deploy/app/deployment.yaml (document 1, lines 1-17)"
        ),
        "{out}"
    );
    assert!(
        lines[8].starts_with(&step(
            7,
            &format!(
                "last changed in {} by Ana Ruiz <ana.ruiz@example.com>, 2d ago (",
                short(&f.c2)
            )
        )) && lines[8].ends_with("): web: nginx 1.27"),
        "{out}"
    );

    // ---- blame: the image line from c2, the rest from c1 ----
    let out = gitops(
        &f.dir,
        &cache,
        &["blame", "deploy/web", "-n", "web", "-o", "json"],
    );
    assert_eq!(out.code, 0, "{out}");
    let blame: Value = serde_json::from_str(&out.stdout).unwrap();
    let line = |text: &str| {
        blame["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["text"].as_str().unwrap().trim().trim_start_matches("- ") == text)
            .unwrap_or_else(|| panic!("no line {text:?} in {}", out.stdout))
            .clone()
    };
    assert_eq!(line("image: nginx:1.27")["commit"]["id"], f.c2.as_str());
    assert_eq!(line("replicas: 2")["commit"]["id"], f.c1.as_str());

    // ---- a change goes to the Git file the artifact copied, on the branch the source follows ----
    let out = gitops(
        &f.dir,
        &cache,
        &[
            "scale",
            "deployment/web",
            "-n",
            "web",
            "--replicas=4",
            "--dry-run",
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout
            .contains("--- a/deploy/app/deployment.yaml\n+++ b/deploy/app/deployment.yaml\n")
            && out.stdout.contains("-  replicas: 2\n+  replicas: 4\n"),
        "{out}"
    );
    assert!(!out.stdout.contains("deploy/other"), "{out}");
}

/// The neighbours that must not be silently wrong: two sources copied into the same directory of
/// the artifact (no one Git directory is what Flux applied: the rule is named), and an artifact
/// whose Git commit nothing records (what is missing is named). Both rows say "owner incomplete";
/// the exit code is 1, as for any object whose chain stops short.
#[test]
fn merged_sources_and_unrecorded_commits_are_said_plainly() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fleet(tmp.path());
    let (config, config_url) = repository(tmp.path(), "config");
    write(
        &config,
        "env/prod/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: fast\n",
    );
    let config_head = commit(&config, "Sam Okafor", 3600, "prod settings");
    push(&config);
    let cache = tmp.path().join("cache");
    cluster()
        .kubectl(User::Admin, &["create", "namespace", "neighbours"])
        .ok();
    git_repository("fleet-n", &f.url);
    git_repository("config-n", &config_url);
    admin_apply(
        "apiVersion: source.extensions.fluxcd.io/v1beta1
kind: ArtifactGenerator
metadata: {name: merged, namespace: flux-system}
spec:
  sources:
  - {alias: repo, kind: GitRepository, name: fleet-n}
  - {alias: config, kind: GitRepository, name: config-n}
  artifacts:
  - name: merged
    originRevision: '@repo'
    copy:
    - {from: '@repo/deploy/app/**', to: '@artifact/'}
    - {from: '@config/env/prod/**', to: '@artifact/'}
---
apiVersion: source.extensions.fluxcd.io/v1beta1
kind: ArtifactGenerator
metadata: {name: unrecorded, namespace: flux-system}
spec:
  sources:
  - {alias: repo, kind: GitRepository, name: fleet-n}
  artifacts:
  - name: unrecorded
    copy:
    - {from: '@repo/deploy/app/service.yaml', to: '@artifact/api/'}
",
    );
    let origin = format!("main@sha1:{}", f.c3);
    external_artifact(
        "merged",
        DIGEST,
        json!({"org.opencontainers.image.revision": origin}),
    );
    kustomization(
        "merged",
        "neighbours",
        json!({
            "lastAppliedRevision": format!("latest@sha256:{DIGEST}"),
            "lastAppliedOriginRevision": origin,
        }),
    );
    let mut applied = kubectl_kustomize(&f.dir.join("deploy/app"));
    applied.push_str("---\n");
    applied.push_str(&std::fs::read_to_string(config.join("env/prod/settings.yaml")).unwrap());
    apply_as_kustomize_controller("merged", "neighbours", &applied);
    // No originRevision, so no origin revision anywhere: only the artifact's digest is recorded.
    external_artifact("unrecorded", OTHER_DIGEST, json!({}));
    cluster()
        .kubectl_stdin(
            User::Admin,
            &["apply", "-f", "-"],
            "apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: unrecorded, namespace: flux-system}
spec:
  interval: 10m
  path: ./api
  prune: true
  targetNamespace: neighbours
  nameSuffix: -api
  sourceRef: {kind: ExternalArtifact, name: unrecorded}
",
        )
        .ok();
    cluster()
        .patch_status_as(
            KUSTOMIZE_CONTROLLER,
            "kustomizations.kustomize.toolkit.fluxcd.io",
            "flux-system",
            "unrecorded",
            &json!({"lastAppliedRevision": format!("latest@sha256:{OTHER_DIGEST}")}).to_string(),
        )
        .ok();
    apply_as_kustomize_controller(
        "unrecorded",
        "neighbours",
        &SERVICE.replace("name: web\n", "name: web-api\n"),
    );

    let out = gitops(tmp.path(), &cache, &["status", "-n", "neighbours"]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(
        cells(&out.stdout)[1..],
        [
            row([
                "configmap/settings",
                "Kustomization flux-system/merged",
                "(owner incomplete)"
            ]),
            row([
                "deployment/web",
                "Kustomization flux-system/merged",
                "(owner incomplete)"
            ]),
            row([
                "service/web",
                "Kustomization flux-system/merged",
                "(owner incomplete)"
            ]),
            row([
                "service/web-api",
                "Kustomization flux-system/unrecorded",
                "(owner incomplete)"
            ]),
        ],
        "{out}"
    );
    let merged = "Flux Kustomization flux-system/merged: ArtifactGenerator flux-system/merged, artifact merged: copy rule 1 (\"@repo/deploy/app/**\" → \"@artifact/\") and copy rule 2 (\"@config/env/prod/**\" → \"@artifact/\") both put files into ./, from @repo and from @config: what Flux applied there is merged from two sources, so no one Git directory holds it";
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(
        errors,
        [
            format!("error: configmap/settings in neighbours: {merged}"),
            format!("error: deployment/web in neighbours: {merged}"),
            format!("error: service/web in neighbours: {merged}"),
            format!(
                "error: service/web-api in neighbours: Flux Kustomization flux-system/unrecorded: it applied the artifact latest@sha256:{}, a digest of the copied files, and no Git commit is recorded with it: no status.lastAppliedOriginRevision, and the ExternalArtifact's status.artifact.metadata has no org.opencontainers.image.revision either (set originRevision: \"@repo\" on ArtifactGenerator flux-system/unrecorded, artifact unrecorded)",
                &OTHER_DIGEST[..7]
            ),
        ],
        "{out}"
    );
    // The config repository's commit is never offered as the answer.
    assert!(!out.stdout.contains(short(&config_head)), "{out}");

    // trace shows the chain up to the generator whose rule stops it, then why.
    let out = gitops(
        tmp.path(),
        &cache,
        &["trace", "deployment/web", "-n", "neighbours"],
    );
    assert_eq!(out.code, 1, "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[3], "      └─ ArtifactGenerator flux-system/merged: artifact merged",
        "{out}"
    );
    assert_eq!(lines[4], format!("         ✗ {merged}"), "{out}");
    // The single-file copy itself maps back (./api is ./deploy/app for service.yaml): the chain
    // reaches the GitRepository and stops at the missing commit.
    let out = gitops(
        tmp.path(),
        &cache,
        &["trace", "service/web-api", "-n", "neighbours"],
    );
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stdout.contains(
            "ArtifactGenerator flux-system/unrecorded: artifact unrecorded: ./api is ./deploy/app of @repo, by copy rule 1 (\"@repo/deploy/app/service.yaml\" → \"@artifact/api/\")"
        ),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!(
            "└─ GitRepository flux-system/fleet-n: {} (main)",
            f.url
        )),
        "{out}"
    );
}
