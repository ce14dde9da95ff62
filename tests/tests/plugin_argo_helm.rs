//! `kubectl gitops` on Argo CD Applications whose source is a Helm chart kept in Git (the layout
//! of Argo CD's example apps: `helm-guestbook/` with `Chart.yaml`, `values.yaml`, a production
//! values file and templates; `apps/`, an app-of-apps chart whose templates are Applications), end
//! to end: a real Git repository with a bare "origin" and the user's clone, the objects applied as
//! Argo CD's application controller applies what Helm renders (its service account, field manager
//! and tracking id; the rendering is written out here), the Applications' sync status, and the
//! plugin binary run as the developer.
//!
//! `status`/`trace` name the template that renders each object, with the commit that last changed
//! it and the values it reads; an object no template can be told for is said so, never given a
//! file; the change verbs write the values key the template reads, in the value file that sets it
//! (the production file over the chart's defaults), and refuse what the Application sets itself or
//! what a template writes literally. A directory Application beside them resolves as before.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gitops_guard_tests::repo::{cells, commit, git, row, short, write};
use gitops_guard_tests::{Cluster, Out, User, build_path, run_command, target_profile_dir};

const ARGO: &str = "system:serviceaccount:argocd:argocd-application-controller";
const URL: &str = "https://github.com/acme/platform.git";

/// A cluster of its own for each test (the `argocd` namespace is shared by all Applications).
fn cluster() -> Cluster {
    let c = Cluster::start();
    c.install_crds();
    c.kubectl(User::Admin, &["create", "namespace", "argocd"])
        .ok();
    c
}

// ---- the repository ----

const CHART: &str = "apiVersion: v2\nname: helm-guestbook\ndescription: The guestbook, as a chart\nversion: 0.1.0\n";

const VALUES: &str = "\
# Defaults for every release of the guestbook.
replicaCount: 1

image:
  repository: gcr.io/heptio-images/ks-guestbook-demo
  tag: \"0.1\"

service:
  port: 80
";

const VALUES_PROD: &str = "\
# Production: a newer image.
image:
  tag: \"0.2\"
";

const DEPLOYMENT_TEMPLATE: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-guestbook
  labels:
    app: guestbook
spec:
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels:
      app: guestbook
  template:
    metadata:
      labels:
        app: guestbook
    spec:
      containers:
        - name: guestbook
          image: \"{{ .Values.image.repository }}:{{ .Values.image.tag }}\"
          ports:
            - containerPort: 80
";

const SERVICE_TEMPLATE: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}-guestbook
spec:
  ports:
    - port: {{ .Values.service.port }}
      targetPort: 80
      protocol: TCP
  selector:
    app: guestbook
";

const HELPERS: &str = "{{- define \"helm-guestbook.name\" -}}{{ .Chart.Name }}{{- end -}}\n";

/// The app-of-apps chart: its one template is the guestbook Application.
fn child_template(ns: &str) -> String {
    format!(
        "\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: {ns}-guestbook
  namespace: argocd
spec:
  project: default
  source:
    repoURL: {{{{ .Values.repoURL }}}}
    targetRevision: HEAD
    path: helm-guestbook
    helm:
      valueFiles:
        - values-prod.yaml
      parameters:
        - name: service.port
          value: \"8080\"
  destination:
    server: https://kubernetes.default.svc
    namespace: {ns}
"
    )
}

struct Repo {
    /// The user's clone (its origin is the forge URL, reached through `insteadOf`).
    clone: PathBuf,
    home: PathBuf,
    c1: String,
    c2: String,
    c3: String,
}

/// The chart, then a change to its Deployment template, then the production values and the
/// app-of-apps template; pushed to a bare "origin" and cloned as the user's clone.
fn repository(root: &Path, ns: &str) -> Repo {
    let seed = root.join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    git(&seed, &["init", "-q", "-b", "main"], &[]);
    write(&seed, "helm-guestbook/Chart.yaml", CHART);
    write(&seed, "helm-guestbook/values.yaml", VALUES);
    write(
        &seed,
        "helm-guestbook/templates/deployment.yaml",
        &DEPLOYMENT_TEMPLATE.replace("          ports:\n            - containerPort: 80\n", ""),
    );
    write(
        &seed,
        "helm-guestbook/templates/service.yaml",
        SERVICE_TEMPLATE,
    );
    write(&seed, "helm-guestbook/templates/_helpers.tpl", HELPERS);
    write(
        &seed,
        "apps/Chart.yaml",
        "apiVersion: v2\nname: apps\nversion: 1.0.0\n",
    );
    write(&seed, "apps/values.yaml", &format!("repoURL: {URL}\n"));
    write(
        &seed,
        "web/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: fast\n",
    );
    let c1 = commit(&seed, "Li Wei", 30 * 86400, "helm-guestbook chart");
    write(
        &seed,
        "helm-guestbook/templates/deployment.yaml",
        DEPLOYMENT_TEMPLATE,
    );
    let c2 = commit(
        &seed,
        "Ana Ruiz",
        3 * 86400 + 60,
        "guestbook: declare its port",
    );
    write(&seed, "helm-guestbook/values-prod.yaml", VALUES_PROD);
    write(&seed, "apps/templates/guestbook.yaml", &child_template(ns));
    let c3 = commit(&seed, "CI Bot", 2 * 3600 + 60, "prod: guestbook 0.2");

    let bare = root.join("platform.git");
    git(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            &seed.display().to_string(),
            &bare.display().to_string(),
        ],
        &[],
    );
    let clone = root.join("platform");
    std::fs::create_dir_all(&clone).unwrap();
    let rewrite = format!("url.file://{}.insteadOf", bare.display());
    for args in [
        vec!["init", "-q", "-b", "main"],
        vec!["remote", "add", "origin", URL],
        vec!["config", &rewrite, URL],
        vec!["config", "user.name", "Ana Lopez"],
        vec!["config", "user.email", "ana@acme.io"],
        vec!["fetch", "-q", "origin"],
        vec!["checkout", "-q", "-B", "main", "origin/main"],
    ] {
        git(&clone, &args, &[]);
    }
    let home = root.join("home");
    std::fs::create_dir_all(home.join("tmp")).unwrap();
    std::fs::write(home.join(".gitconfig"), "").unwrap();
    Repo {
        clone,
        home,
        c1,
        c2,
        c3,
    }
}

/// The Applications as Argo CD holds them (the parent `apps` from the bootstrap, the guestbook
/// as the parent rendered it, a directory Application beside them), synced at `c3`, and what
/// each renders, applied by Argo CD's application controller.
fn deploy(c: &Cluster, ns: &str, repo: &Repo) {
    c.kubectl(User::Admin, &["create", "namespace", ns]).ok();
    let apps = format!("{ns}-apps");
    let guestbook = format!("{ns}-guestbook");
    let web = format!("{ns}-web");
    let parent = format!(
        "apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: {apps}, namespace: argocd}}
spec:
  project: default
  source: {{repoURL: '{URL}', path: apps, targetRevision: HEAD}}
  destination: {{server: 'https://kubernetes.default.svc', namespace: argocd}}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: {web}, namespace: argocd}}
spec:
  project: default
  source: {{repoURL: '{URL}', path: web, targetRevision: HEAD}}
  destination: {{server: 'https://kubernetes.default.svc', namespace: {ns}}}
"
    );
    c.kubectl_stdin(User::Admin, &["apply", "-f", "-"], &parent)
        .ok();
    // The parent renders the guestbook Application (its template, with its values).
    let child = child_template(ns)
        .replace("{{ .Values.repoURL }}", URL)
        .replace(
            "  name: ",
            &format!(
                "  annotations:\n    argocd.argoproj.io/tracking-id: '{apps}:argoproj.io/Application:argocd/{guestbook}'\n  name: "
            ),
        );
    argo_apply(c, &child);
    for app in [&apps, &guestbook, &web] {
        let status = format!(
            r#"{{"status":{{"sync":{{"status":"Synced","revision":"{c3}"}},"operationState":{{"phase":"Succeeded","syncResult":{{"revision":"{c3}"}}}}}}}}"#,
            c3 = repo.c3
        );
        c.kubectl_as(
            ARGO,
            &[
                "patch",
                "applications.argoproj.io",
                app,
                "-n",
                "argocd",
                "--type=merge",
                "-p",
                &status,
            ],
        )
        .ok();
    }
    // What Helm renders for release `<ns>-guestbook` with values.yaml, values-prod.yaml and the
    // parameter service.port=8080.
    let track = |group_kind: &str, name: &str| {
        format!("argocd.argoproj.io/tracking-id: '{guestbook}:{group_kind}:{ns}/{name}'")
    };
    let rendered = format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {guestbook}-guestbook
  namespace: {ns}
  labels:
    app: guestbook
  annotations:
    {}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: guestbook
  template:
    metadata:
      labels:
        app: guestbook
    spec:
      containers:
        - name: guestbook
          image: \"gcr.io/heptio-images/ks-guestbook-demo:0.2\"
          ports:
            - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: {guestbook}-guestbook
  namespace: {ns}
  annotations:
    {}
spec:
  ports:
    - port: 8080
      targetPort: 80
      protocol: TCP
  selector:
    app: guestbook
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {guestbook}-extra
  namespace: {ns}
  annotations:
    {}
data:
  note: made by hand, tracked to the guestbook
",
        track("apps/Deployment", &format!("{guestbook}-guestbook")),
        track("/Service", &format!("{guestbook}-guestbook")),
        track("/ConfigMap", &format!("{guestbook}-extra")),
    );
    argo_apply(c, &rendered);
    argo_apply(
        c,
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {ns}\n  annotations:\n    argocd.argoproj.io/tracking-id: '{web}:/ConfigMap:{ns}/settings'\ndata:\n  mode: fast\n"
        ),
    );
}

/// Applied as Argo CD's application controller: server-side, field manager argocd-controller.
fn argo_apply(c: &Cluster, yaml: &str) {
    c.kubectl_as_stdin(
        ARGO,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=argocd-controller",
            "-f",
            "-",
        ],
        yaml,
    )
    .ok();
}

/// `kubectl-gitops ARGS` as the developer, in the clone, with nothing from this process's
/// environment but PATH.
fn gitops(c: &Cluster, repo: &Repo, args: &[&str]) -> Out {
    gitops_with(c, repo, args, &[])
}

/// The same with `vars` set.
fn gitops_with(c: &Cluster, repo: &Repo, args: &[&str], vars: &[(&str, &str)]) -> Out {
    let bin = target_profile_dir().join("kubectl-gitops");
    assert!(
        bin.exists(),
        "{} does not exist: build it first (`cargo build --workspace --bins`)",
        bin.display()
    );
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env_clear()
        .env("PATH", build_path())
        .env("HOME", &repo.home)
        .env("TMPDIR", repo.home.join("tmp"))
        .env("XDG_CACHE_HOME", repo.home.join(".cache"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("KUBECONFIG", c.kubeconfig(User::Developer))
        .current_dir(&repo.clone);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut out = run_command(cmd, None, Duration::from_secs(120));
    out.command = format!("kubectl-gitops {}", args.join(" "));
    out
}

#[test]
fn helm_chart_objects_resolve_to_the_template_that_renders_them() {
    let c = &cluster();
    let ns = "argo-helm-status";
    let tmp = tempfile::tempdir().unwrap();
    let repo = repository(tmp.path(), ns);
    deploy(c, ns, &repo);
    let gb = format!("{ns}-guestbook");
    let rev = short(&repo.c3).to_string();

    // ---- status: each object names its template, with the commit that last changed it ----
    let deploy_res = format!("deployment/{gb}-guestbook");
    let service_res = format!("service/{gb}-guestbook");
    let out = gitops(
        c,
        &repo,
        &[
            "status",
            &deploy_res,
            &service_res,
            "configmap/settings",
            "-n",
            ns,
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    let owner = format!("Application argocd/{gb}");
    let web_owner = format!("Application argocd/{ns}-web");
    assert_eq!(
        cells(&out.stdout)[1..],
        [
            row([
                "configmap/settings",
                &web_owner,
                &rev,
                "web/settings.yaml",
                short(&repo.c1),
                "Li Wei",
                "30d",
                "helm-guestbook chart",
                "-"
            ]),
            row([
                &deploy_res,
                &owner,
                &rev,
                "helm-guestbook/templates/deployment.yaml",
                short(&repo.c2),
                "Ana Ruiz",
                "3d",
                "guestbook: declare its port",
                "-"
            ]),
            row([
                &service_res,
                &owner,
                &rev,
                "helm-guestbook/templates/service.yaml",
                short(&repo.c1),
                "Li Wei",
                "30d",
                "helm-guestbook chart",
                "-"
            ]),
        ],
        "{out}"
    );

    // Wide: the chart, as for a HelmRelease's objects; JSON: the values too.
    let out = gitops(c, &repo, &["status", &deploy_res, "-n", ns, "-o", "wide"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        cells(&out.stdout)[1].last().map(String::as_str),
        Some("helm-guestbook@0.1.0"),
        "{out}"
    );
    let out = gitops(c, &repo, &["status", &deploy_res, "-n", ns, "-o", "json"]);
    assert_eq!(out.code, 0, "{out}");
    let item = out.json()["items"][0].clone();
    assert_eq!(item["chart"], "helm-guestbook@0.1.0");
    assert_eq!(
        item["values"],
        serde_json::json!([
            "helm-guestbook/values.yaml",
            "helm-guestbook/values-prod.yaml",
            "helm.parameters"
        ])
    );
    assert_eq!(item["document"], 0);
    assert_eq!(item["lines"], serde_json::json!([1, 21]));
    assert_eq!(item["appliedCommit"], repo.c3.as_str());
    assert_eq!(
        item["link"],
        format!(
            "https://github.com/acme/platform/blob/{}/helm-guestbook/templates/deployment.yaml",
            repo.c2
        )
        .as_str()
    );

    // ---- an object no template renders: said, never given a file ----
    let extra = format!("configmap/{gb}-extra");
    let out = gitops(c, &repo, &["status", &extra, &service_res, "-n", ns]);
    assert_eq!(out.code, 1, "{out}");
    let rows = cells(&out.stdout);
    assert_eq!(
        rows[1],
        row([
            &extra,
            &owner,
            &rev,
            "(rendered by the Helm chart helm-guestbook)"
        ]),
        "{out}"
    );
    assert_eq!(rows[2][3], "helm-guestbook/templates/service.yaml");
    assert_eq!(
        out.stderr.trim(),
        format!(
            "error: {extra} in {ns} is rendered by Argo CD Application argocd/{gb} from the Helm chart helm-guestbook (helm-guestbook@0.1.0) at {rev}, but which of its templates renders it cannot be told: no template of the chart renders a ConfigMap named like {gb}-extra"
        ),
        "{out}"
    );

    // ---- trace: the chain, then the template, the chart and its values ----
    let out = gitops(c, &repo, &["trace", &deploy_res, "-n", ns]);
    assert_eq!(out.code, 0, "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[1],
        format!("└─ Application argocd/{gb}: {URL} (HEAD), path ./helm-guestbook, deployed {rev}")
    );
    assert_eq!(
        lines[4],
        "         └─ file helm-guestbook/templates/deployment.yaml (document 1, lines 1-21), the template of chart helm-guestbook@0.1.0 that renders it; values from helm-guestbook/values.yaml, helm-guestbook/values-prod.yaml, helm.parameters",
        "{out}"
    );
    assert!(
        lines[5].contains(&format!("last changed in {} by Ana Ruiz", short(&repo.c2))),
        "{out}"
    );

    // ---- blame: the template at the applied revision; the live lines by field manager ----
    let out = gitops(c, &repo, &["blame", &deploy_res, "-n", ns]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains(&format!(
            "# helm-guestbook/templates/deployment.yaml (document 1) at {rev}\n# rendered by this template of the Helm chart helm-guestbook@0.1.0"
        )),
        "{out}"
    );

    // ---- app of apps: the child Application is the parent chart's template ----
    let out = gitops(c, &repo, &["status", "-n", "argocd"]);
    assert_eq!(out.code, 0, "{out}");
    let child = format!("application/{gb}");
    let parent_owner = format!("Application argocd/{ns}-apps");
    let child_row = cells(&out.stdout)
        .into_iter()
        .find(|r| r[0] == child)
        .unwrap_or_else(|| panic!("no row for {child}:\n{out}"));
    assert_eq!(
        child_row,
        row([
            &child,
            &parent_owner,
            &rev,
            "apps/templates/guestbook.yaml",
            short(&repo.c3),
            "CI Bot",
            "2h",
            "prod: guestbook 0.2",
            "-"
        ]),
        "{out}"
    );
}

#[test]
fn changes_write_the_values_the_application_gives_the_chart() {
    let c = &cluster();
    let ns = "argo-helm-change";
    let tmp = tempfile::tempdir().unwrap();
    let repo = repository(tmp.path(), ns);
    deploy(c, ns, &repo);
    let gb = format!("{ns}-guestbook");
    let deploy_res = format!("deployment/{gb}-guestbook");

    // replicaCount is set only in the chart's values.yaml: changed there.
    let out = gitops(
        c,
        &repo,
        &["scale", &deploy_res, "--replicas=5", "-n", ns, "--dry-run"],
    );
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        out.stdout,
        "\
diff --git a/helm-guestbook/values.yaml b/helm-guestbook/values.yaml
--- a/helm-guestbook/values.yaml
+++ b/helm-guestbook/values.yaml
@@ -1,5 +1,5 @@
 # Defaults for every release of the guestbook.
-replicaCount: 1
+replicaCount: 5
 
 image:
   repository: gcr.io/heptio-images/ks-guestbook-demo
",
        "{out}"
    );
    assert!(
        out.stderr.contains(
            "spec.replicas comes from the values key replicaCount: written in helm-guestbook/values.yaml"
        ),
        "{out}"
    );
    assert!(
        out.stderr.contains("Note: helm-guestbook/values.yaml holds the chart's defaults: every Application that renders ./helm-guestbook without its own replicaCount changes too"),
        "{out}"
    );

    // `edit` opens the object as it runs; a changed field is written the same way.
    let editor = repo.home.join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/replicas: 1/replicas: 3/' \"$1\"\n",
    )
    .unwrap();
    let mut perms = std::fs::metadata(&editor).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&editor, perms).unwrap();
    let out = gitops_with(
        c,
        &repo,
        &["edit", &deploy_res, "-n", ns, "--dry-run"],
        &[("KUBE_EDITOR", &editor.display().to_string())],
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains("-replicaCount: 1\n+replicaCount: 3\n"),
        "{out}"
    );

    // image.tag is overridden in values-prod.yaml: changed there (the repository is the same and
    // is not written), committed on a local branch.
    let out = gitops(
        c,
        &repo,
        &[
            "set",
            "image",
            &deploy_res,
            "guestbook=gcr.io/heptio-images/ks-guestbook-demo:0.3",
            "-n",
            ns,
            "--local",
            "--branch",
            "gitops/ana/guestbook-0.3",
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout
            .contains("Validated against the cluster (server-side dry-run as you): ok"),
        "{out}"
    );
    assert!(
        out.stderr.contains(
            "spec.template.spec.containers[0].image comes from the values key image.tag: written in helm-guestbook/values-prod.yaml"
        ),
        "{out}"
    );
    let diff = git(
        &repo.clone,
        &["diff", "--unified=0", "main", "gitops/ana/guestbook-0.3"],
        &[],
    );
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| l.starts_with(['-', '+']) && !l.starts_with("---") && !l.starts_with("+++"))
        .collect();
    assert_eq!(changed, ["-  tag: \"0.2\"", "+  tag: \"0.3\""], "{diff}");
    assert!(
        diff.contains("+++ b/helm-guestbook/values-prod.yaml"),
        "{diff}"
    );
    let body = git(
        &repo.clone,
        &["log", "-1", "--format=%B", "gitops/ana/guestbook-0.3"],
        &[],
    );
    assert!(
        body.contains(&format!("Owner: Argo CD Application argocd/{gb}")),
        "{body}"
    );

    // A value the Application sets itself (helm.parameters): refused, pointing at the
    // Application; nothing is written.
    let out = gitops(
        c,
        &repo,
        &[
            "patch",
            &format!("service/{gb}-guestbook"),
            "-n",
            ns,
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/spec/ports/0/port","value":9090}]"#,
            "--dry-run",
        ],
    );
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(out.stdout, "", "{out}");
    assert!(
        out.stderr.contains(&format!(
            "spec.ports[0].port comes from the values key service.port, which Application argocd/{gb} sets in spec.source.helm.parameters (over the value files); change it there: kubectl gitops edit application/{gb} -n argocd"
        )),
        "{out}"
    );

    // A field the template writes literally: refused, naming the template and its line.
    let out = gitops(
        c,
        &repo,
        &["label", &deploy_res, "team=payments", "-n", ns, "--dry-run"],
    );
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(out.stdout, "", "{out}");
    assert!(
        out.stderr.contains(&format!(
            "error: cannot change {deploy_res} in {ns}: Argo CD Application argocd/{gb} renders it from the Helm chart ./helm-guestbook (helm-guestbook@0.1.0), and\n  metadata.labels.team: no values key sets it; helm-guestbook/templates/deployment.yaml writes metadata.labels literally at line 5 (`labels:`)\nNothing was changed."
        )),
        "{out}"
    );

    // The app-of-apps child: its repoURL comes from the parent chart's values.yaml.
    let out = gitops(
        c,
        &repo,
        &[
            "patch",
            &format!("application/{gb}"),
            "-n",
            "argocd",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"source":{"repoURL":"https://github.com/acme/platform-next.git"}}}"#,
            "--dry-run",
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains(
            "--- a/apps/values.yaml\n+++ b/apps/values.yaml\n@@ -1 +1 @@\n-repoURL: https://github.com/acme/platform.git\n+repoURL: https://github.com/acme/platform-next.git\n"
        ),
        "{out}"
    );

    // The directory Application beside them: its file, as before.
    let out = gitops(
        c,
        &repo,
        &[
            "patch",
            "configmap/settings",
            "-n",
            ns,
            "--type",
            "merge",
            "-p",
            r#"{"data":{"mode":"slow"}}"#,
            "--dry-run",
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout
            .contains("--- a/web/settings.yaml\n+++ b/web/settings.yaml\n"),
        "{out}"
    );
    assert!(
        out.stdout.contains("-  mode: fast\n+  mode: slow\n"),
        "{out}"
    );
    assert_eq!(
        git(
            &repo.clone,
            &["branch", "--list", "--format=%(refname:short)"],
            &[]
        ),
        "gitops/ana/guestbook-0.3\nmain"
    );
}
