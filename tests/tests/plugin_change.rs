//! `kubectl gitops edit | scale | set image | patch | label | annotate` end to end: the real
//! kubectl runs this build's plugin as the developer `ana` against a real kube-apiserver with the
//! guard registered; the Git side is a bare repository ("origin") and the user's clone, which
//! names the forge URL (`https://github.com/acme/platform.git`) and reaches the bare repository
//! through `url.<file>.insteadOf`, so pushes land there while forge detection sees github.com;
//! `--forge-url` points the API at a local fake forge that enforces the forge's API contract.
//!
//! One cluster and one webhook serve every test of this file; each test has its own namespace,
//! Flux objects, repositories and fake forge.

#[allow(dead_code)]
#[path = "../../plugin/tests/forge/fake_forge.rs"]
mod fake_forge;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use fake_forge::FakeForge;
use gitops_guard_tests::{
    Cluster, FROM_ROOT, KUSTOMIZE_CONTROLLER, Out, User, Webhook, build_path, kubectl_program,
    run_command,
};
use kubectl_gitops::forge::ForgeKind;
use serde_json::Value;

const KC: &str = KUSTOMIZE_CONTROLLER;
const ARGO: &str = "system:serviceaccount:argocd:argocd-application-controller";

/// Who applies the objects of a test.
#[derive(Debug, Clone, Copy)]
enum Agent {
    Flux,
    Argo,
}
const TOKEN: &str = "ghp_e2e0123456789abcdef";
const URL: &str = "https://github.com/acme/platform.git";

struct Env {
    cluster: Cluster,
    _webhook: Webhook,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let cluster = Cluster::start();
        cluster.install_crds();
        // What `flux bootstrap` creates: the roots of custody. Each test's owners come from Git
        // under them (kustomize-controller applies them with the root's labels).
        cluster.bootstrap();
        // The guard denies live edits of managed objects and lets dry-runs through with a
        // warning: the plugin's validation must work with it in place.
        let webhook = Webhook::start(&cluster, "mode: enforce\n");
        Env {
            cluster,
            _webhook: webhook,
        }
    })
}

/// Runs a command (killed after two minutes), with `what` as its description in messages.
fn run(cmd: Command, stdin: Option<&str>, what: String) -> Out {
    let mut out = run_command(cmd, stdin, Duration::from_secs(120));
    out.command = what;
    out
}

fn git(dir: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new("git");
    cmd.args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Platform Team")
        .env("GIT_AUTHOR_EMAIL", "platform@acme.io")
        .env("GIT_COMMITTER_NAME", "Platform Team")
        .env("GIT_COMMITTER_EMAIL", "platform@acme.io");
    let out = run(cmd, None, format!("git {}", args.join(" ")));
    out.ok();
    out.stdout.trim().to_string()
}

const DEPLOYMENT: &str = "\
# The web frontend of the shop. Owned by team payments.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 3 # Black Friday: see OPS-1234
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
          image: ghcr.io/acme/web:1.8.1
          resources:
            limits:
              memory: 512Mi
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
    - port: 80
      targetPort: 8080
      protocol: TCP
";

/// One test's world: a namespace, Flux objects, the bare "origin", the user's clone, a home
/// directory, and a fake forge.
struct Fx {
    tmp: tempfile::TempDir,
    ns: String,
    bare: PathBuf,
    clone: PathBuf,
    home: PathBuf,
    sha: String,
    forge: FakeForge,
}

impl Fx {
    fn start(ns: &str, files: &[(&str, &str)], flux_path: &str, url: &str, forge: ForgeKind) -> Fx {
        Fx::start_as(Agent::Flux, ns, files, flux_path, url, forge)
    }

    fn start_as(
        agent: Agent,
        ns: &str,
        files: &[(&str, &str)],
        flux_path: &str,
        url: &str,
        forge: ForgeKind,
    ) -> Fx {
        let env = env();
        let tmp = tempfile::tempdir().expect("tempdir");
        let seed = tmp.path().join("seed");
        std::fs::create_dir_all(&seed).expect("mkdir");
        git(&seed, &["init", "-q", "-b", "main"]);
        for (path, text) in files {
            let p = seed.join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        git(&seed, &["add", "-A"]);
        git(&seed, &["commit", "-q", "-m", "platform"]);
        let sha = git(&seed, &["rev-parse", "HEAD"]);
        let bare = tmp.path().join("platform.git");
        git(
            tmp.path(),
            &[
                "clone",
                "-q",
                "--bare",
                &seed.display().to_string(),
                &bare.display().to_string(),
            ],
        );
        let clone = tmp.path().join("platform");
        std::fs::create_dir_all(&clone).expect("mkdir");
        let rewrite = format!("url.file://{}.insteadOf", bare.display());
        for args in [
            vec!["init", "-q", "-b", "main"],
            vec!["remote", "add", "origin", url],
            vec!["config", &rewrite, url],
            vec!["config", "user.name", "Ana Lopez"],
            vec!["config", "user.email", "ana@acme.io"],
            vec!["fetch", "-q", "origin"],
            vec!["checkout", "-q", "-B", "main", "origin/main"],
        ] {
            git(&clone, &args);
        }
        let home = tmp.path().join("home");
        std::fs::create_dir_all(home.join("tmp")).expect("mkdir");
        std::fs::write(home.join(".gitconfig"), "").expect("gitconfig");

        let c = &env.cluster;
        c.kubectl(User::Admin, &["create", "namespace", ns]).ok();
        match agent {
            Agent::Flux => {
                let owners = format!(
                    "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {{name: {ns}, namespace: flux-system, labels: {FROM_ROOT}}}\nspec: {{interval: 1m, url: '{url}', ref: {{branch: main}}}}\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {{name: {ns}, namespace: flux-system, labels: {FROM_ROOT}}}\nspec: {{interval: 10m, path: ./{flux_path}, prune: true, targetNamespace: {ns}, sourceRef: {{kind: GitRepository, name: {ns}}}}}\n"
                );
                c.flux_apply(&owners).ok();
                c.patch_status_as(
                    KC,
                    "kustomizations",
                    "flux-system",
                    ns,
                    &format!(r#"{{"lastAppliedRevision":"main@sha1:{sha}"}}"#),
                )
                .ok();
            }
            Agent::Argo => {
                let app = format!(
                    "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: {ns}, namespace: argocd, labels: {FROM_ROOT}}}\nspec:\n  project: default\n  source: {{repoURL: '{url}', path: {flux_path}, targetRevision: HEAD}}\n  destination: {{server: 'https://kubernetes.default.svc', namespace: {ns}}}\n"
                );
                c.flux_apply(&app).ok();
                // Argo CD's application controller records what it synced (no status
                // subresource: a plain patch).
                let status = format!(
                    r#"{{"status":{{"operationState":{{"phase":"Succeeded","syncResult":{{"revision":"{sha}"}}}}}}}}"#
                );
                c.kubectl_as(
                    ARGO,
                    &[
                        "patch",
                        "applications.argoproj.io",
                        ns,
                        "-n",
                        "argocd",
                        "--type=merge",
                        "-p",
                        &status,
                    ],
                )
                .ok();
            }
        }
        // What Flux applies: the build of the path, with its ownership labels, server-side as
        // kustomize-controller.
        // (Flux builds a path without a kustomization file from all its manifests.)
        let dir = clone.join(flux_path);
        let built = if dir.join("kustomization.yaml").exists() {
            let mut cmd = Command::new(kubectl_program());
            cmd.args(["kustomize", &dir.display().to_string()]);
            let out = run(cmd, None, format!("kubectl kustomize {flux_path}"));
            out.ok();
            out.stdout
        } else {
            let mut docs = Vec::new();
            for e in std::fs::read_dir(&dir).expect("read dir") {
                let p = e.expect("entry").path();
                if p.extension().is_some_and(|x| x == "yaml") {
                    docs.push(std::fs::read_to_string(p).expect("manifest"));
                }
            }
            docs.join("\n---\n").replace("\r\n", "\n")
        };
        // (`label --local` / `annotate --local` print several objects without separators: one
        // document at a time.)
        let (verb, marks, manager, who) = match agent {
            Agent::Flux => (
                "label",
                vec![
                    format!("kustomize.toolkit.fluxcd.io/name={ns}"),
                    "kustomize.toolkit.fluxcd.io/namespace=flux-system".to_string(),
                ],
                "kustomize-controller",
                KC,
            ),
            Agent::Argo => (
                "annotate",
                vec![format!(
                    "argocd.argoproj.io/tracking-id={ns}:apps/Deployment:{ns}/web"
                )],
                "argocd-controller",
                ARGO,
            ),
        };
        let mut labelled = Vec::new();
        for doc in built
            .split("\n---\n")
            .filter(|d| d.contains("kind: Deployment"))
        {
            let mut args = vec![verb, "--local", "-f", "-", "-o", "yaml"];
            args.extend(marks.iter().map(String::as_str));
            let out = c.kubectl_stdin(User::Admin, &args, doc);
            out.ok();
            labelled.push(out.stdout.clone());
        }
        let labelled = labelled.join("---\n");
        let field_manager = format!("--field-manager={manager}");
        c.kubectl_as_stdin(
            who,
            &[
                "apply",
                "--server-side",
                &field_manager,
                "-n",
                ns,
                "-f",
                "-",
            ],
            &labelled,
        )
        .ok();

        let prefix = match forge {
            ForgeKind::GitHub => "",
            ForgeKind::GitLab => "/api/v4",
            ForgeKind::Gitea | ForgeKind::Forgejo => "/api/v1",
        };
        let forge = FakeForge::start(forge, prefix, TOKEN);
        forge.add_repo("acme/platform", &["main"]);
        Fx {
            tmp,
            ns: ns.to_string(),
            bare,
            clone,
            home,
            sha,
            forge,
        }
    }

    /// `kubectl gitops ARGS -n NS` as ana, in the clone, with `vars` set (and nothing else from
    /// this process's environment but PATH).
    fn gitops(&self, args: &[&str], vars: &[(&str, &str)]) -> Out {
        self.gitops_in(&self.clone, args, vars)
    }

    /// The same, run in `cwd`.
    fn gitops_in(&self, cwd: &Path, args: &[&str], vars: &[(&str, &str)]) -> Out {
        let env = env();
        let mut cmd = Command::new(kubectl_program());
        cmd.arg("gitops").args(args).args(["-n", &self.ns]);
        cmd.env_clear()
            .env("PATH", build_path())
            .env("HOME", &self.home)
            .env("TMPDIR", self.home.join("tmp"))
            .env("XDG_CACHE_HOME", self.home.join(".cache"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("KUBECONFIG", env.cluster.kubeconfig(User::Developer))
            .env("KUBECACHEDIR", self.home.join(".kube/cache"))
            .current_dir(cwd);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let what = format!(
            "{} kubectl gitops {} -n {}",
            vars.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            args.join(" "),
            self.ns
        );
        run(cmd, None, what)
    }

    /// The same with the token and the fake forge's API URL.
    fn gitops_pr(&self, args: &[&str], vars: &[(&str, &str)]) -> Out {
        let api = self.forge.api_url();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--forge-url", api.as_str()]);
        let mut v: Vec<(&str, &str)> = vec![
            ("GITHUB_TOKEN", TOKEN),
            ("GITEA_TOKEN", TOKEN),
            ("GITLAB_TOKEN", TOKEN),
        ];
        v.extend_from_slice(vars);
        self.gitops(&all, &v)
    }

    /// An editor script that runs `sed_expr` over the file it is given.
    fn editor(&self, name: &str, sed_expr: &str) -> String {
        let p = self.tmp.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\nsed -i '{sed_expr}' \"$1\"\n")).expect("editor");
        let mut perms = std::fs::metadata(&p).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&p, perms).expect("chmod");
        p.display().to_string()
    }

    fn bare_git(&self, args: &[&str]) -> String {
        git(&self.bare, args)
    }

    fn branches_in_bare(&self) -> Vec<String> {
        self.bare_git(&["for-each-ref", "--format=%(refname:short)", "refs/heads"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn live(&self) -> Value {
        env()
            .cluster
            .kubectl(
                User::Admin,
                &["get", "deployment", "web", "-n", &self.ns, "-o", "json"],
            )
            .ok()
            .json()
    }
}

/// Removed and added lines of `git diff A B` in a repository.
fn diff_lines(dir: &Path, a: &str, b: &str) -> (Vec<String>, Vec<String>) {
    let d = git(dir, &["diff", "--unified=0", a, b]);
    let removed = d
        .lines()
        .filter(|l| l.starts_with('-') && !l.starts_with("---"))
        .map(|l| l[1..].to_string())
        .collect();
    let added = d
        .lines()
        .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
        .map(|l| l[1..].to_string())
        .collect();
    (removed, added)
}

#[test]
fn edit_proposes_a_pull_request_and_the_live_object_stays() {
    let fx = Fx::start(
        "change-edit",
        &[("apps/web/deployment.yaml", DEPLOYMENT)],
        "apps/web",
        URL,
        ForgeKind::GitHub,
    );
    let branch = "gitops/ana/deployment-web-e2e";
    fx.forge.add_repo("acme/platform", &["main", branch]);
    let before = fx.live();
    let editor = fx.editor("memory.sh", "s/memory: 512Mi/memory: 768Mi/");
    let out = fx.gitops_pr(
        &["edit", "deployment/web", "--branch", branch],
        &[("KUBE_EDITOR", &editor)],
    );
    out.ok();
    let pr_url = format!("http://{}/acme/platform/pull/42", fx.forge.authority());
    assert_eq!(
        out.stdout,
        format!(
            "Validated against the cluster (server-side dry-run as you): ok\nPushed branch {branch} to origin\nOpened pull request #42: \"deployment/web (change-edit): edit via kubectl gitops\"\n{pr_url}\n"
        ),
        "{out}"
    );

    // The commit: one line of one file, on a branch of its own, by Ana, naming the object, the
    // change and the live revision.
    assert_eq!(
        fx.branches_in_bare(),
        ["gitops/ana/deployment-web-e2e", "main"]
    );
    let (removed, added) = diff_lines(&fx.bare, "main", branch);
    assert_eq!(removed, ["              memory: 512Mi"]);
    assert_eq!(added, ["              memory: 768Mi"]);
    assert_eq!(
        fx.bare_git(&["diff", "--name-only", "main", branch]),
        "apps/web/deployment.yaml"
    );
    assert_eq!(fx.bare_git(&["rev-parse", &format!("{branch}^")]), fx.sha);
    let log = fx.bare_git(&["log", "-1", "--format=%an <%ae>%n%B", branch]);
    assert!(log.starts_with("Ana Lopez <ana@acme.io>\ndeployment/web (change-edit): edit spec.template.spec.containers[0].resources.limits.memory\n"), "{log}");
    assert!(
        log.contains("- spec.template.spec.containers[0].resources.limits.memory: 512Mi → 768Mi"),
        "{log}"
    );
    assert!(
        log.contains(&format!("Based on live revision: main@sha1:{}", fx.sha)),
        "{log}"
    );
    assert!(
        log.contains("Owner: Flux Kustomization flux-system/change-edit"),
        "{log}"
    );

    // The pull request the forge received.
    let pulls = fx.forge.pulls("acme/platform");
    assert_eq!(pulls.len(), 1);
    let pr = &pulls[0];
    assert_eq!(
        (pr.head.as_str(), pr.base.as_str(), pr.draft),
        (branch, "main", false)
    );
    assert_eq!(
        pr.title,
        "deployment/web (change-edit): edit via kubectl gitops"
    );
    assert!(
        pr.body
            .contains("| Owner | Flux Kustomization flux-system/change-edit |"),
        "{}",
        pr.body
    );
    assert!(
        pr.body
            .contains(&format!("| Applied revision | `main@sha1:{}` |", fx.sha)),
        "{}",
        pr.body
    );
    assert!(
        pr.body
            .contains("-              memory: 512Mi\n+              memory: 768Mi\n"),
        "{}",
        pr.body
    );
    let create = fx
        .forge
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .expect("create call");
    assert_eq!(
        create.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    fx.forge.assert_clean();

    // The live object did not change; the clone's checkout neither.
    let after = fx.live();
    assert_eq!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert_eq!(
        after["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"],
        "512Mi"
    );
    assert_eq!(git(&fx.clone, &["symbolic-ref", "--short", "HEAD"]), "main");
    assert_eq!(git(&fx.clone, &["status", "--porcelain"]), "");

    // The validation was a dry-run update by ana, let through by the guard.
    let dry_runs: Vec<Value> = env()
        .cluster
        .audit_events()
        .into_iter()
        .filter(|e| {
            e["user"]["username"] == "ana"
                && e["stage"] == "ResponseComplete"
                && e["verb"] == "update"
                && e["objectRef"]["namespace"] == "change-edit"
                && e["requestURI"]
                    .as_str()
                    .is_some_and(|u| u.contains("dryRun=All"))
        })
        .collect();
    assert!(
        !dry_runs.is_empty(),
        "no dry-run update by ana in the audit log"
    );
    assert!(
        dry_runs.iter().all(|e| e["responseStatus"]["code"] == 200),
        "{dry_runs:?}"
    );
}

#[test]
fn the_kubectl_verbs_and_their_flags() {
    let fx = Fx::start(
        "change-verbs",
        &[("apps/web/deployment.yaml", DEPLOYMENT)],
        "apps/web",
        URL,
        ForgeKind::GitHub,
    );
    let team = "gitops/ana/team-labels";
    fx.forge
        .add_repo("acme/platform", &["main", team, "release"]);
    fx.forge.add_user("bob", 7);

    // --dry-run: the diff, nothing else.
    let out = fx.gitops_pr(
        &["scale", "deployment/web", "--replicas=6", "--dry-run"],
        &[],
    );
    out.ok();
    assert!(
        out.stdout
            .starts_with("diff --git a/apps/web/deployment.yaml b/apps/web/deployment.yaml\n"),
        "{out}"
    );
    assert!(out.stdout.contains("-  replicas: 3 # Black Friday: see OPS-1234\n+  replicas: 6 # Black Friday: see OPS-1234\n"), "{out}");
    assert_eq!(fx.branches_in_bare(), ["main"]);
    assert_eq!(git(&fx.clone, &["branch", "--list", "gitops/*"]), "");
    assert!(fx.forge.requests().is_empty());

    // kubectl's own flags and checks.
    let out = fx.gitops_pr(
        &[
            "scale",
            "deployment/web",
            "--replicas=6",
            "--current-replicas=2",
            "--dry-run",
        ],
        &[],
    );
    out.fails();
    assert_eq!(
        out.stderr, "error: Expected replicas to be 2, was 3\n",
        "{out}"
    );
    let patch_file = fx.tmp.path().join("replicas.json");
    std::fs::write(
        &patch_file,
        r#"[{"op": "replace", "path": "/spec/replicas", "value": 7}]"#,
    )
    .expect("patch file");
    let out = fx.gitops_pr(
        &[
            "patch",
            "deployment/web",
            "--type",
            "json",
            "--patch-file",
            &patch_file.display().to_string(),
            "--dry-run",
        ],
        &[],
    );
    out.ok();
    assert!(
        out.stdout
            .contains("+  replicas: 7 # Black Friday: see OPS-1234\n"),
        "{out}"
    );
    let out = fx.gitops_pr(&["label", "deployment/web", "app=api", "--dry-run"], &[]);
    out.fails();
    assert_eq!(
        out.stderr, "error: 'app' already has a value (web), and --overwrite is false\n",
        "{out}"
    );
    let out = fx.gitops_pr(
        &[
            "label",
            "deployment/web",
            "app=api",
            "--overwrite",
            "--dry-run",
        ],
        &[],
    );
    out.ok();
    assert!(
        out.stdout.contains("-    app: web\n+    app: api\n"),
        "{out}"
    );
    assert!(fx.forge.requests().is_empty());

    // --local: a commit on a local branch, nothing pushed.
    let out = fx.gitops_pr(
        &[
            "set",
            "image",
            "deployment/web",
            "web=ghcr.io/acme/web:1.8.2",
            "--local",
            "--branch",
            "gitops/ana/web-182",
        ],
        &[],
    );
    out.ok();
    assert!(out.stdout.contains("Committed "), "{out}");
    assert!(
        out.stdout.contains("on branch gitops/ana/web-182 in "),
        "{out}"
    );
    assert!(out.stdout.contains("(not pushed: --local)"), "{out}");
    let (removed, added) = diff_lines(&fx.clone, "main", "gitops/ana/web-182");
    assert_eq!(
        (removed, added),
        (
            vec!["          image: ghcr.io/acme/web:1.8.1".to_string()],
            vec!["          image: ghcr.io/acme/web:1.8.2".to_string()]
        )
    );
    assert_eq!(fx.branches_in_bare(), ["main"]);
    assert!(fx.forge.requests().is_empty());

    // --no-pr with the default branch name: pushed, and the compare URL to open it by hand.
    let patch = r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","resources":{"limits":{"cpu":"500m"}}}]}}}}"#;
    let out = fx.gitops_pr(
        &[
            "patch",
            "deployment/web",
            "--type",
            "strategic",
            "-p",
            patch,
            "--no-pr",
        ],
        &[],
    );
    out.ok();
    let pushed = out
        .stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("Pushed branch ")
                .and_then(|l| l.strip_suffix(" to origin"))
        })
        .unwrap_or_else(|| panic!("no push line:\n{out}"))
        .to_string();
    assert!(
        pushed.starts_with("gitops/ana/deployment-web-2"),
        "{pushed}"
    );
    assert_eq!(
        pushed.len(),
        "gitops/ana/deployment-web-20261121-1403".len(),
        "{pushed}"
    );
    assert!(
        out.stdout.contains(&format!(
            "Open a pull request: https://github.com/acme/platform/compare/main...{pushed}\n"
        )),
        "{out}"
    );
    let (_, added) = diff_lines(&fx.bare, "main", &pushed);
    assert_eq!(added, ["              cpu: 500m"]);
    assert!(fx.forge.requests().is_empty());

    // A pull request with every option.
    let out = fx.gitops_pr(
        &[
            "label",
            "deployment/web",
            "team=payments",
            "--branch",
            team,
            "--draft",
            "--title",
            "Label web for payments",
            "-m",
            "Team labels for cost reports\n\nTicket FIN-77",
            "--reviewer",
            "bob",
        ],
        &[],
    );
    out.ok();
    assert!(
        out.stdout
            .contains("Opened pull request #42: \"Label web for payments\""),
        "{out}"
    );
    let pr = fx
        .forge
        .pulls("acme/platform")
        .into_iter()
        .next()
        .expect("pull");
    assert!(pr.draft);
    assert_eq!(pr.reviewers, ["bob"]);
    assert!(
        pr.body
            .starts_with("Team labels for cost reports\n\nTicket FIN-77\n\n"),
        "{}",
        pr.body
    );
    assert_eq!(
        fx.bare_git(&["log", "-1", "--format=%s", team]),
        "Team labels for cost reports"
    );
    let (_, added) = diff_lines(&fx.bare, "main", team);
    assert_eq!(added, ["    team: payments"]);

    // Another change on the same branch: a commit on top, the open pull request reused.
    let out = fx.gitops_pr(
        &[
            "annotate",
            "deployment/web",
            "acme.io/cost-center=4711",
            "--branch",
            team,
        ],
        &[],
    );
    out.ok();
    assert!(
        out.stdout
            .contains("Pull request #42 from gitops/ana/team-labels was already open"),
        "{out}"
    );
    assert_eq!(fx.forge.pulls("acme/platform").len(), 1);
    assert_eq!(
        fx.bare_git(&["rev-list", "--count", &format!("main..{team}")]),
        "2"
    );
    let text = fx.bare_git(&["show", &format!("{team}:apps/web/deployment.yaml")]);
    assert!(
        text.contains("    team: payments\n") && text.contains("acme.io/cost-center: \"4711\""),
        "{text}"
    );

    // --base: the pull request goes into another branch (with a warning).
    git(
        &fx.clone,
        &["push", "-q", "origin", "main:refs/heads/release"],
    );
    fx.forge.add_repo(
        "acme/platform",
        &["main", team, "release", "gitops/ana/release-scale"],
    );
    let out = fx.gitops_pr(
        &[
            "scale",
            "deployment/web",
            "--replicas",
            "4",
            "--base",
            "release",
            "--branch",
            "gitops/ana/release-scale",
        ],
        &[],
    );
    out.ok();
    assert!(out.stderr.contains("Warning: the pull request goes into release, but Flux Kustomization flux-system/change-verbs follows main"), "{out}");
    let pulls = fx.forge.pulls("acme/platform");
    assert!(
        pulls
            .iter()
            .any(|p| p.head == "gitops/ana/release-scale" && p.base == "release"),
        "{pulls:?}"
    );
    fx.forge.assert_clean();
    // Nothing of this touched the live object.
    assert_eq!(fx.live()["spec"]["replicas"], 3);
}

const BASE_KUSTOMIZATION: &str = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml
";

const BASE_DEPLOYMENT: &str = "\
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
          image: ghcr.io/acme/web:1.8.0
          resources:
            limits:
              memory: 256Mi
";

const PROD_KUSTOMIZATION: &str = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../base
patches:
  - path: memory.yaml
images:
  - name: ghcr.io/acme/web
    newTag: 1.8.1
";

const PROD_MEMORY: &str = "\
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
              memory: 512Mi # prod needs more
";

#[test]
fn overlays_are_changed_where_the_field_is_set_on_gitea() {
    let url = "https://git.acme.io/acme/platform.git";
    let fx = Fx::start(
        "change-overlay",
        &[
            ("apps/base/kustomization.yaml", BASE_KUSTOMIZATION),
            ("apps/base/deployment.yaml", BASE_DEPLOYMENT),
            ("apps/prod/kustomization.yaml", PROD_KUSTOMIZATION),
            ("apps/prod/memory.yaml", PROD_MEMORY),
        ],
        "apps/prod",
        url,
        ForgeKind::Gitea,
    );
    fx.forge.add_repo(
        "acme/platform",
        &["main", "gitops/ana/memory", "gitops/ana/image"],
    );
    let editor = fx.editor("memory.sh", "s/memory: 512Mi/memory: 768Mi/");
    let out = fx.gitops_pr(
        &[
            "edit",
            "deploy/web",
            "--branch",
            "gitops/ana/memory",
            "--forge",
            "gitea",
        ],
        &[("KUBE_EDITOR", &editor)],
    );
    out.ok();
    assert!(out.stdout.contains("Opened pull request #42"), "{out}");
    assert_eq!(
        fx.bare_git(&["diff", "--name-only", "main", "gitops/ana/memory"]),
        "apps/prod/memory.yaml"
    );
    let (removed, added) = diff_lines(&fx.bare, "main", "gitops/ana/memory");
    assert_eq!(
        (removed, added),
        (
            vec!["              memory: 512Mi # prod needs more".to_string()],
            vec!["              memory: 768Mi # prod needs more".to_string()]
        )
    );

    let out = fx.gitops_pr(
        &[
            "set",
            "image",
            "deployments.apps/web",
            "web=ghcr.io/acme/web:1.9.0",
            "--branch",
            "gitops/ana/image",
            "--forge",
            "gitea",
        ],
        &[],
    );
    out.ok();
    assert_eq!(
        fx.bare_git(&["diff", "--name-only", "main", "gitops/ana/image"]),
        "apps/prod/kustomization.yaml"
    );
    let (removed, added) = diff_lines(&fx.bare, "main", "gitops/ana/image");
    assert_eq!(removed, ["    newTag: 1.8.1"]);
    assert_eq!(added, ["    newTag: 1.9.0"]);
    let pulls = fx.forge.pulls("acme/platform");
    assert_eq!(pulls.len(), 2);
    assert!(
        fx.forge
            .requests()
            .iter()
            .all(|r| r.path.starts_with("/repos/acme/platform")),
        "{:?}",
        fx.forge.requests()
    );
    fx.forge.assert_clean();
}

#[test]
fn a_gitlab_remote_opens_a_merge_request() {
    let fx = Fx::start(
        "change-gitlab",
        &[("apps/web/deployment.yaml", DEPLOYMENT)],
        "apps/web",
        "https://gitlab.com/acme/platform.git",
        ForgeKind::GitLab,
    );
    fx.forge
        .add_repo("acme/platform", &["main", "gitops/ana/mr"]);
    // No GITLAB_TOKEN: the token comes from the clone's git credential helper.
    let helper = format!("!f() {{ echo username=oauth2; echo password={TOKEN}; }}; f");
    git(
        &fx.clone,
        &["config", "credential.https://gitlab.com.helper", &helper],
    );
    let api = fx.forge.api_url();
    let out = fx.gitops(
        &[
            "scale",
            "deployment/web",
            "--replicas=5",
            "--branch",
            "gitops/ana/mr",
            "--forge-url",
            &api,
        ],
        &[],
    );
    out.ok();
    assert!(out.stdout.contains("Opened pull request #"), "{out}");
    let mr = fx
        .forge
        .pulls("acme/platform")
        .into_iter()
        .next()
        .expect("merge request");
    assert_eq!(
        (mr.head.as_str(), mr.base.as_str()),
        ("gitops/ana/mr", "main")
    );
    fx.forge.assert_clean();
}

#[test]
fn nothing_changed_is_cancelled_like_kubectl() {
    let fx = Fx::start(
        "change-noop",
        &[("apps/web/deployment.yaml", DEPLOYMENT)],
        "apps/web",
        URL,
        ForgeKind::GitHub,
    );
    let out = fx.gitops_pr(&["edit", "deployment/web"], &[("KUBE_EDITOR", "true")]);
    out.ok();
    assert_eq!(out.stdout, "Edit cancelled, no changes made.\n", "{out}");
    let out = fx.gitops_pr(&["scale", "deployment", "web", "--replicas=3"], &[]);
    out.ok();
    assert_eq!(out.stdout, "Edit cancelled, no changes made.\n", "{out}");
    // A comment-only edit changes no field either.
    let editor = fx.editor("comment.sh", "s/# Black Friday: see OPS-1234/# noted/");
    let out = fx.gitops_pr(&["edit", "deployment/web"], &[("KUBE_EDITOR", &editor)]);
    out.ok();
    assert_eq!(out.stdout, "Edit cancelled, no changes made.\n", "{out}");
    assert_eq!(fx.branches_in_bare(), ["main"]);
    assert_eq!(git(&fx.clone, &["branch", "--list", "gitops/*"]), "");
    assert!(fx.forge.requests().is_empty());
}

/// The path in "A copy of your changes has been stored to "PATH"".
fn stored_copy(out: &Out) -> PathBuf {
    let text = format!("{}{}", out.stdout, out.stderr);
    let at = text
        .find("has been stored to \"")
        .unwrap_or_else(|| panic!("no saved copy named:\n{out}"));
    let rest = &text[at + "has been stored to \"".len()..];
    PathBuf::from(&rest[..rest.find('"').expect("closing quote")])
}

#[test]
fn failures_say_what_happened_and_keep_the_work() {
    let fx = Fx::start(
        "change-fail",
        &[("apps/web/deployment.yaml", DEPLOYMENT)],
        "apps/web",
        URL,
        ForgeKind::GitHub,
    );
    fx.forge
        .add_repo("acme/platform", &["main", "gitops/ana/pushed"]);

    // The API server refuses the change: nothing is committed; the change is saved.
    let out = fx.gitops_pr(
        &[
            "patch",
            "deployment/web",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"replicas":-1}}"#,
            "--branch",
            "gitops/ana/invalid",
        ],
        &[],
    );
    out.fails();
    assert!(out.stderr.contains("server-side dry-run as you"), "{out}");
    assert!(out.stderr.contains("spec.replicas"), "{out}");
    assert!(
        out.stderr
            .contains("Nothing was committed, pushed or opened."),
        "{out}"
    );
    let saved = stored_copy(&out);
    assert!(
        std::fs::read_to_string(&saved)
            .expect("saved patch")
            .contains("+  replicas: -1")
    );
    assert_eq!(git(&fx.clone, &["branch", "--list", "gitops/*"]), "");

    // An invalid edit reopens the editor with the error; saved again unchanged, it is given up
    // and the edited text kept.
    let editor = fx.editor("rename.sh", "s/^  name: web$/  name: web2/");
    let out = fx.gitops_pr(&["edit", "deployment/web"], &[("KUBE_EDITOR", &editor)]);
    out.fails();
    assert!(
        out.stderr
            .contains("Edit cancelled, no valid changes were saved."),
        "{out}"
    );
    let kept = std::fs::read_to_string(stored_copy(&out)).expect("kept edit");
    // kubectl edit's header, what the document is and where it comes from, then the error.
    assert!(
        kept.starts_with(
            "# Please edit the object below. Lines beginning with a '#' will be ignored,\n"
        ),
        "{kept}"
    );
    assert!(
        kept.contains(&format!(
            "# This is deployment/web from apps/web/deployment.yaml at main@{} ({URL}).\n",
            &fx.sha[..7]
        )),
        "{kept}"
    );
    assert!(kept.contains("# * the edited object must stay deployment/web in change-fail: metadata.name changed from web to web2"), "{kept}");
    assert!(kept.contains("  name: web2\n"), "{kept}");

    // Never the agent's branch.
    let out = fx.gitops_pr(
        &[
            "scale",
            "deployment/web",
            "--replicas=4",
            "--branch",
            "main",
        ],
        &[],
    );
    out.fails();
    assert!(
        out.stderr.contains(
            "refusing to commit on main: Flux Kustomization flux-system/change-fail follows it"
        ),
        "{out}"
    );

    // No token: said before anything is changed (nobody edits in vain: the editor never runs).
    let out = fx.gitops(
        &[
            "edit",
            "deployment/web",
            "--branch",
            "gitops/ana/no-token",
            "--forge-url",
            &fx.forge.api_url(),
        ],
        &[("KUBE_EDITOR", "false")],
    );
    out.fails();
    assert_eq!(
        out.stderr,
        "error: no token for github.com: set GITHUB_TOKEN or GH_TOKEN, or configure a git credential helper for https://github.com\n",
        "{out}"
    );
    assert_eq!(out.stdout, "", "{out}");
    assert_eq!(
        git(&fx.clone, &["branch", "--list", "gitops/ana/no-token"]),
        ""
    );
    assert_eq!(fx.live()["spec"]["replicas"], 3);
}

#[test]
fn without_a_git_identity_nothing_is_committed() {
    let fx = Fx::start(
        "change-ident",
        &[("apps/web/deployment.yaml", DEPLOYMENT)],
        "apps/web",
        URL,
        ForgeKind::GitHub,
    );
    git(&fx.clone, &["config", "--unset", "user.name"]);
    git(&fx.clone, &["config", "--unset", "user.email"]);
    let out = fx.gitops(
        &[
            "scale",
            "deployment/web",
            "--replicas=4",
            "--local",
            "--branch",
            "gitops/x",
        ],
        &[],
    );
    out.fails();
    assert_eq!(
        out.stderr,
        format!(
            "error: git does not know who you are in {}: run git config --global user.name \"Your Name\" and git config --global user.email you@example.com\n",
            fx.clone.display()
        ),
        "{out}"
    );
    assert_eq!(git(&fx.clone, &["branch", "--list", "gitops/x"]), "");
    // --dry-run needs no identity.
    fx.gitops(
        &["scale", "deployment/web", "--replicas=4", "--dry-run"],
        &[],
    )
    .ok();
}

const CHART_DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: {{ .Values.replicaCount }}
  template:
    spec:
      containers:
        - name: web
          image: \"{{ .Values.image.repository }}:{{ .Values.image.tag }}\"
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
";

#[test]
fn helm_release_objects_name_the_values_key() {
    let fx = Fx::start(
        "change-helm",
        &[
            ("apps/web/deployment.yaml", DEPLOYMENT),
            (
                "charts/web/Chart.yaml",
                "apiVersion: v2\nname: web\nversion: 1.0.0\n",
            ),
            ("charts/web/templates/deployment.yaml", CHART_DEPLOYMENT),
        ],
        "apps/web",
        URL,
        ForgeKind::GitHub,
    );
    // A Deployment installed by a HelmRelease whose chart is in the same repository.
    let ns = &fx.ns;
    let c = &env().cluster;
    let hr = format!(
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {{name: web, namespace: {ns}, labels: {FROM_ROOT}}}\nspec:\n  interval: 10m\n  chart:\n    spec:\n      chart: ./charts/web\n      sourceRef: {{kind: GitRepository, name: {ns}, namespace: flux-system}}\n  values:\n    replicaCount: 2\n"
    );
    c.flux_apply(&hr).ok();
    // A HelmRelease has no scale subresource: no replicas to scale, and nothing is written.
    let out = fx.gitops_pr(&["scale", "helmrelease/web", "--replicas=3"], &[]);
    out.fails();
    assert_eq!(
        out.stderr,
        format!(
            "error: helmrelease/web has no scale subresource, so there are no replicas to scale (kubectl scale refuses it too); change what sets them instead: kubectl gitops edit helmrelease/web -n {ns}\n"
        ),
        "{out}"
    );
    let live = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: {ns}\n  labels: {{helm.toolkit.fluxcd.io/name: web, helm.toolkit.fluxcd.io/namespace: {ns}}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: api}}}}\n  template:\n    metadata: {{labels: {{app: api}}}}\n    spec:\n      containers: [{{name: web, image: 'ghcr.io/acme/web:1.0'}}]\n"
    );
    c.kubectl_as_stdin(
        "system:serviceaccount:flux-system:helm-controller",
        &[
            "apply",
            "--server-side",
            "--field-manager=helm-controller",
            "-f",
            "-",
        ],
        &live,
    )
    .ok();
    let out = fx.gitops_pr(&["scale", "deployment/api", "--replicas=6"], &[]);
    out.fails();
    assert!(
        out.stderr.contains(&format!(
            "deployment/api in {ns} is rendered by Flux HelmRelease {ns}/web"
        )),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("spec.replicas comes from the values key replicaCount"),
        "{out}"
    );
    assert!(out.stderr.contains(&format!("kubectl gitops patch helmrelease/web -n {ns} --type merge -p '{{\"spec\":{{\"values\":{{\"replicaCount\":6}}}}}}'")), "{out}");
    let out = fx.gitops_pr(
        &["set", "image", "deployment/api", "web=ghcr.io/acme/web:2.0"],
        &[],
    );
    out.fails();
    assert!(
        out.stderr
            .contains("comes from the values keys image.repository and image.tag"),
        "{out}"
    );
    assert!(
        out.stderr
            .contains(r#""image":{"repository":"ghcr.io/acme/web","tag":"2.0"}"#),
        "{out}"
    );
    assert_eq!(fx.branches_in_bare(), ["main"]);
    assert!(fx.forge.requests().is_empty());
}

#[test]
fn changes_start_from_the_newest_tip_and_say_when_the_file_moved() {
    let fx = Fx::start(
        "change-tip",
        &[("apps/web/deployment.yaml", DEPLOYMENT)],
        "apps/web",
        URL,
        ForgeKind::GitHub,
    );
    // Someone merged a change to the file after Flux applied the first commit.
    git(&fx.clone, &["checkout", "-q", "-b", "other", "origin/main"]);
    let file = fx.clone.join("apps/web/deployment.yaml");
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(
        &file,
        text.replace("Owned by team payments.", "Owned by team checkout."),
    )
    .expect("write");
    git(&fx.clone, &["commit", "-q", "-am", "new owners"]);
    git(&fx.clone, &["push", "-q", "origin", "other:main"]);
    git(&fx.clone, &["checkout", "-q", "main"]);
    let tip = fx.bare_git(&["rev-parse", "main"]);
    assert_ne!(tip, fx.sha);

    let out = fx.gitops_pr(
        &[
            "scale",
            "deployment/web",
            "--replicas=4",
            "--branch",
            "gitops/ana/tip",
            "--no-pr",
        ],
        &[],
    );
    out.ok();
    assert!(
        out.stderr.contains(&format!(
            "Warning: apps/web/deployment.yaml changed on main since the revision Flux Kustomization flux-system/change-tip applied (main@{})",
            &fx.sha[..7]
        )),
        "{out}"
    );
    assert_eq!(fx.bare_git(&["rev-parse", "gitops/ana/tip^"]), tip);
    let (removed, added) = diff_lines(&fx.bare, "main", "gitops/ana/tip");
    assert_eq!(removed, ["  replicas: 3 # Black Friday: see OPS-1234"]);
    assert_eq!(added, ["  replicas: 4 # Black Friday: see OPS-1234"]);
    let text = fx.bare_git(&["show", "gitops/ana/tip:apps/web/deployment.yaml"]);
    assert!(text.contains("Owned by team checkout."), "{text}");
    // The commit names the revision the live object came from.
    let body = fx.bare_git(&["log", "-1", "--format=%B", "gitops/ana/tip"]);
    assert!(
        body.contains(&format!("Based on live revision: main@sha1:{}", fx.sha)),
        "{body}"
    );
}

#[test]
fn a_crlf_file_keeps_its_line_endings() {
    let crlf = DEPLOYMENT.replace('\n', "\r\n");
    let fx = Fx::start(
        "change-crlf",
        &[("apps/web/deployment.yaml", &crlf)],
        "apps/web",
        URL,
        ForgeKind::GitHub,
    );
    let editor = fx.editor("memory.sh", "s/memory: 512Mi/memory: 1Gi/");
    let out = fx.gitops_pr(
        &[
            "edit",
            "deployment/web",
            "--local",
            "--branch",
            "gitops/ana/crlf",
        ],
        &[("KUBE_EDITOR", &editor)],
    );
    out.ok();
    let new = git(
        &fx.clone,
        &[
            "cat-file",
            "blob",
            "gitops/ana/crlf:apps/web/deployment.yaml",
        ],
    );
    let old = git(
        &fx.clone,
        &["cat-file", "blob", "main:apps/web/deployment.yaml"],
    );
    // (`git` output is trimmed: the last line lost its line break.)
    let (old, new): (Vec<&str>, Vec<&str>) = (old.split('\n').collect(), new.split('\n').collect());
    assert_eq!(new.len(), old.len());
    let changed: Vec<(&str, &str)> = old
        .iter()
        .zip(&new)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| (*a, *b))
        .collect();
    assert_eq!(
        changed,
        [(
            "              memory: 512Mi\r",
            "              memory: 1Gi\r"
        )]
    );
    assert!(
        new[..new.len() - 1].iter().all(|l| l.ends_with('\r')),
        "every line keeps its CR"
    );
}

#[test]
fn argo_cd_applications_follow_their_target_revision() {
    let fx = Fx::start_as(
        Agent::Argo,
        "change-argo",
        &[("apps/web/deployment.yaml", DEPLOYMENT)],
        "apps/web",
        URL,
        ForgeKind::GitHub,
    );
    fx.forge
        .add_repo("acme/platform", &["main", "gitops/ana/argo"]);
    // targetRevision HEAD: the remote's default branch.
    let out = fx.gitops_pr(
        &[
            "scale",
            "deployment/web",
            "--replicas=5",
            "--branch",
            "gitops/ana/argo",
        ],
        &[],
    );
    out.ok();
    assert!(
        out.stdout.contains(
            "Opened pull request #42: \"deployment/web (change-argo): scale via kubectl gitops\""
        ),
        "{out}"
    );
    let pr = fx
        .forge
        .pulls("acme/platform")
        .into_iter()
        .next()
        .expect("pull");
    assert_eq!(pr.base, "main");
    assert!(
        pr.body
            .contains("| Owner | Argo CD Application argocd/change-argo |"),
        "{}",
        pr.body
    );
    let (removed, added) = diff_lines(&fx.bare, "main", "gitops/ana/argo");
    assert_eq!(removed.len(), 1);
    assert_eq!(added, ["  replicas: 5 # Black Friday: see OPS-1234"]);
    let body = fx.bare_git(&["log", "-1", "--format=%B", "gitops/ana/argo"]);
    assert!(
        body.contains(&format!("Based on live revision: {}", fx.sha)),
        "{body}"
    );
    fx.forge.assert_clean();
}

#[test]
fn outside_a_clone_the_cache_clone_is_used() {
    let fx = Fx::start(
        "change-cache",
        &[("apps/web/deployment.yaml", DEPLOYMENT)],
        "apps/web",
        URL,
        ForgeKind::GitHub,
    );
    // The source names the bare repository itself (a file:// URL, no forge), and the command
    // runs in a directory that is no clone: the clone in $XDG_CACHE_HOME is made and used.
    let url = format!("file://{}", fx.bare.display());
    let patch = format!(r#"{{"spec":{{"url":"{url}"}}}}"#);
    // (The source comes from Git: Flux applies the change.)
    env()
        .cluster
        .kubectl_as(
            KC,
            &[
                "patch",
                "gitrepositories.source.toolkit.fluxcd.io",
                "change-cache",
                "-n",
                "flux-system",
                "--type=merge",
                "-p",
                &patch,
            ],
        )
        .ok();
    std::fs::write(
        fx.home.join(".gitconfig"),
        "[user]\n\tname = Ana Lopez\n\temail = ana@acme.io\n",
    )
    .expect("gitconfig");
    let out = fx.gitops_in(
        &fx.home,
        &[
            "scale",
            "deployment/web",
            "--replicas=2",
            "--no-pr",
            "--branch",
            "gitops/ana/cache",
        ],
        &[],
    );
    out.ok();
    assert!(out.stderr.contains("kubectl-gitops: cloning"), "{out}");
    assert!(
        out.stdout
            .contains("Pushed branch gitops/ana/cache to origin"),
        "{out}"
    );
    assert!(fx.home.join(".cache/kubectl-gitops").is_dir());
    let (_, added) = diff_lines(&fx.bare, "main", "gitops/ana/cache");
    assert_eq!(added, ["  replicas: 2 # Black Friday: see OPS-1234"]);
    assert_eq!(
        fx.bare_git(&["log", "-1", "--format=%an", "gitops/ana/cache"]),
        "Ana Lopez"
    );
}

/// The Flux Kustomization of the fixture's `apps/web`, with more of its spec after the usual
/// fields.
fn flux_owner_of_apps_web(ns: &str, more_spec: &str) -> String {
    format!(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {{name: {ns}, namespace: flux-system, labels: {FROM_ROOT}}}
spec:
  interval: 10m
  path: ./apps/web
  prune: true
  targetNamespace: {ns}
  sourceRef: {{kind: GitRepository, name: {ns}}}
{more_spec}"
    )
}

/// What Flux does to every object after building the path (the Kustomization's own
/// `spec.patches`, `spec.images` and `postBuild` variables) is not changed in the manifests,
/// where it would be overridden (or would replace a variable every cluster shares): the change
/// is refused, naming where the value comes from. Fields Flux leaves alone change as before.
#[test]
fn what_flux_sets_after_the_build_is_refused_in_the_manifests() {
    let with_variable = DEPLOYMENT.replacen(
        "  labels:\n    app: web\n",
        "  labels:\n    app: web\n  annotations:\n    team: ${TEAM:=payments}\n",
        1,
    );
    let fx = Fx::start(
        "change-overrides",
        &[("apps/web/deployment.yaml", &with_variable)],
        "apps/web",
        URL,
        ForgeKind::GitHub,
    );
    let ns = &fx.ns;
    let c = &env().cluster;
    let owner = flux_owner_of_apps_web(
        ns,
        "  patches:
    - target: {kind: Deployment, name: web}
      patch: |
        - op: replace
          path: /spec/replicas
          value: 4
  images:
    - name: ghcr.io/acme/web
      newTag: 2.0.0
  postBuild:
    substitute: {REGION: eu}
    substituteFrom:
      - kind: ConfigMap
        name: cluster-vars
",
    );
    c.flux_apply(&owner).ok();

    let out = fx.gitops_pr(&["scale", "deployment/web", "--replicas=6"], &[]);
    out.fails();
    assert!(
        out.stderr.contains(&format!(
            "cannot change spec.replicas of deployment/web in {ns} in apps/web/deployment.yaml: its value comes from spec.patches[0] of the Flux Kustomization it comes from"
        )) && out.stderr.contains(&format!(
            "To change it, change the patch: kubectl gitops edit kustomization/{ns} -n flux-system"
        )),
        "{out}"
    );
    let out = fx.gitops_pr(
        &[
            "set",
            "image",
            "deployment/web",
            "web=ghcr.io/acme/web:1.9.0",
        ],
        &[],
    );
    out.fails();
    assert!(
        out.stderr
            .contains("spec.images[0] (name: ghcr.io/acme/web) of the Flux Kustomization"),
        "{out}"
    );
    let out = fx.gitops_pr(
        &["annotate", "deployment/web", "team=billing", "--overwrite"],
        &[],
    );
    out.fails();
    assert!(
        out.stderr.contains(
            "the postBuild variable ${TEAM} (written \"${TEAM:=payments}\" in Git; its value comes from its spec.postBuild.substitute, ConfigMap flux-system/cluster-vars)"
        ),
        "{out}"
    );
    // Nothing was written, pushed or proposed.
    assert_eq!(fx.branches_in_bare(), ["main"]);
    assert!(fx.forge.requests().is_empty());

    // A field Flux leaves alone changes in the manifests as before.
    let out = fx.gitops_pr(
        &["label", "deployment/web", "tier=frontend", "--dry-run"],
        &[],
    );
    out.ok();
    assert!(out.stdout.contains("+    tier: frontend\n"), "{out}");
}

/// Flux hands `spec.patches` targets to kustomize, which reads `group`/`version`/`kind`/`name`/
/// `namespace` as anchored regular expressions and the selectors as Kubernetes label selectors,
/// set-based ones included; an object without a namespace is in `default`. A patch selected only
/// that way still overrides the manifests, so the change is refused; a patch whose target does not
/// select the object leaves its fields alone; a target kustomize refuses is reported, not skipped.
#[test]
fn flux_patch_targets_select_as_kustomize_does() {
    let fx = Fx::start(
        "change-targets",
        &[("apps/web/deployment.yaml", DEPLOYMENT)],
        "apps/web",
        URL,
        ForgeKind::GitHub,
    );
    let ns = &fx.ns;
    let c = &env().cluster;
    let owner = |patches: &str| flux_owner_of_apps_web(ns, &format!("  patches:\n{patches}"));
    let patches = "    - target: {kind: Deploy.*, labelSelector: 'app in (web,api),!canary'}
      patch: |
        - op: replace
          path: /spec/replicas
          value: 4
    - target: {name: 'we[a-z]', namespace: default}
      patch: |
        - op: add
          path: /metadata/annotations
          value: {owner: shop}
    - target: {kind: Deployment, labelSelector: 'app notin (web)'}
      patch: |
        - op: add
          path: /metadata/labels/tier
          value: backend
";
    c.flux_apply(&owner(patches)).ok();

    let out = fx.gitops_pr(&["scale", "deployment/web", "--replicas=6"], &[]);
    out.fails();
    assert!(
        out.stderr.contains(&format!(
            "cannot change spec.replicas of deployment/web in {ns} in apps/web/deployment.yaml: its value comes from spec.patches[0] of the Flux Kustomization it comes from"
        )),
        "{out}"
    );
    let out = fx.gitops_pr(
        &["annotate", "deployment/web", "owner=ops", "--overwrite"],
        &[],
    );
    out.fails();
    assert!(
        out.stderr
            .contains("its value comes from spec.patches[1] of the Flux Kustomization"),
        "{out}"
    );
    assert_eq!(fx.branches_in_bare(), ["main"]);
    assert!(fx.forge.requests().is_empty());
    // `app notin (web)` does not select web: its label is the manifests' to change.
    let out = fx.gitops_pr(
        &["label", "deployment/web", "tier=frontend", "--dry-run"],
        &[],
    );
    out.ok();
    assert!(out.stdout.contains("+    tier: frontend\n"), "{out}");

    // A target kustomize cannot read: Flux builds nothing, and the change says why.
    let broken = "    - target: {kind: Deployment, name: 'web-('}
      patch: |
        - op: replace
          path: /spec/replicas
          value: 4
";
    c.flux_apply(&owner(broken)).ok();
    let out = fx.gitops_pr(
        &["label", "deployment/web", "tier=frontend", "--dry-run"],
        &[],
    );
    out.fails();
    assert!(
        out.stderr.contains(&format!(
            "kustomization/{ns} -n flux-system: spec.patches[0] does not apply: its target's name is not valid"
        )) && out.stderr.contains("so kustomize cannot build it"),
        "{out}"
    );
}

/// A field only a base sets, when another overlay builds that base too: the change is written in
/// the object's own overlay (the other environment does not change), and `--in-base` writes it
/// in the base, saying what else it reaches.
#[test]
fn a_shared_base_is_not_changed_for_other_environments_unless_asked() {
    const STAGING: &str = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../base
";
    let fx = Fx::start(
        "change-shared",
        &[
            ("apps/base/kustomization.yaml", BASE_KUSTOMIZATION),
            ("apps/base/deployment.yaml", BASE_DEPLOYMENT),
            ("apps/prod/kustomization.yaml", PROD_KUSTOMIZATION),
            ("apps/prod/memory.yaml", PROD_MEMORY),
            ("apps/staging/kustomization.yaml", STAGING),
        ],
        "apps/prod",
        URL,
        ForgeKind::GitHub,
    );
    let branch = "gitops/ana/prod-replicas";
    let out = fx.gitops_pr(
        &[
            "scale",
            "deployment/web",
            "--replicas=6",
            "--local",
            "--branch",
            branch,
        ],
        &[],
    );
    out.ok();
    assert!(
        out.stderr.contains(
            "note: spec.replicas is set in apps/base/deployment.yaml (also built by apps/staging); the change is written in apps/prod/kustomization.yaml, for this overlay only (--in-base changes the shared place for all of them)"
        ),
        "{out}"
    );
    assert_eq!(
        git(&fx.clone, &["diff", "--name-only", "main", branch]),
        "apps/prod/kustomization.yaml"
    );
    let (removed, added) = diff_lines(&fx.clone, "main", branch);
    assert!(removed.is_empty(), "{removed:?}");
    assert_eq!(
        added,
        [
            "  - target:",
            "      kind: Deployment",
            "      name: web",
            "    patch: |",
            "      - op: replace",
            "        path: /spec/replicas",
            "        value: 6",
        ]
    );
    // What Flux would build for each environment, from that branch.
    git(&fx.clone, &["checkout", "-q", branch]);
    let build = |overlay: &str| {
        let mut cmd = Command::new(kubectl_program());
        cmd.args(["kustomize", &fx.clone.join(overlay).display().to_string()]);
        let out = run(cmd, None, format!("kubectl kustomize {overlay}"));
        out.ok();
        out.stdout.clone()
    };
    assert!(build("apps/prod").contains("replicas: 6"));
    assert!(build("apps/staging").contains("replicas: 2"));
    git(&fx.clone, &["checkout", "-q", "main"]);

    // --in-base: the base, and what else it reaches.
    let out = fx.gitops_pr(
        &[
            "scale",
            "deployment/web",
            "--replicas=6",
            "--in-base",
            "--dry-run",
        ],
        &[],
    );
    out.ok();
    assert!(
        out.stdout
            .starts_with("diff --git a/apps/base/deployment.yaml b/apps/base/deployment.yaml\n"),
        "{out}"
    );
    assert!(
        out.stderr.contains(
            "note: apps/base/deployment.yaml is also built by apps/staging: the change to spec.replicas reaches them too (--in-base)"
        ),
        "{out}"
    );
}

/// A base another owner on the cluster builds directly (a second Flux Kustomization with the
/// base's path, from the same repository) is shared with it, though no overlay in the repository
/// says so: the change goes in the object's own overlay, and the other owner is named.
#[test]
fn a_base_another_owner_applies_is_not_changed_for_one() {
    let fx = Fx::start(
        "change-other-owner",
        &[
            ("apps/base/kustomization.yaml", BASE_KUSTOMIZATION),
            ("apps/base/deployment.yaml", BASE_DEPLOYMENT),
            ("apps/prod/kustomization.yaml", PROD_KUSTOMIZATION),
            ("apps/prod/memory.yaml", PROD_MEMORY),
        ],
        "apps/prod",
        URL,
        ForgeKind::GitHub,
    );
    let ns = &fx.ns;
    let other = format!(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {{name: {ns}-base, namespace: flux-system, labels: {FROM_ROOT}}}\nspec: {{interval: 10m, path: ./apps/base, prune: true, targetNamespace: {ns}-dev, sourceRef: {{kind: GitRepository, name: {ns}}}}}\n"
    );
    env().cluster.flux_apply(&other).ok();
    let out = fx.gitops_pr(
        &["scale", "deployment/web", "--replicas=6", "--dry-run"],
        &[],
    );
    out.ok();
    assert!(
        out.stdout.starts_with(
            "diff --git a/apps/prod/kustomization.yaml b/apps/prod/kustomization.yaml\n"
        ),
        "{out}"
    );
    assert!(
        out.stderr.contains(&format!(
            "note: spec.replicas is set in apps/base/deployment.yaml (also built by Flux Kustomization flux-system/{ns}-base)"
        )),
        "{out}"
    );
}
