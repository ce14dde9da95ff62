//! `kubectl gitops audit` end to end: one cluster state, read by the audit as a table, as JSON (checked
//! against docs/audit-schema.json, twice: the same bytes) and as an HTML page rendered by a real
//! headless Chromium (the summary a person sees, a table filtered from the page's address, a
//! screenshot).
//!
//! The state: a real Git repository (two commits at fixed dates) that three Flux Kustomizations
//! apply, as kustomize-controller applies (server-side, its field manager, its labels):
//! - `team` (up to date, its GitRepository verifies commits): a Deployment an HPA scales and a
//!   person restarted (both not drift), one untouched, a ConfigMap a person edited with `kubectl
//!   edit` (drift), an HPA, a ConfigMap its inventory declares that is gone (missing), and a
//!   ConfigMap a person made that no owner declares (a stray);
//! - `shop` (behind its source's revision, no verification): a Deployment scaled under a
//!   break-glass window (opened with `kubectl gitops break-glass`, recorded by the guard);
//! - `legacy` (suspended): a ConfigMap as Git says.
//!
//! `GITOPS_GUARD_WRITE_AUDIT_SAMPLE=1` also writes the report as docs/audit-sample.{json,html}.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use gitops_guard_tests::repo::{git, plugin_binary, short, write};
use gitops_guard_tests::{Cluster, Out, User, Webhook, run_command};

const URL: &str = "https://git.example.com/acme/fleet.git";
const FLUX: &str = "  labels:\n    kustomize.toolkit.fluxcd.io/name: {owner}\n    kustomize.toolkit.fluxcd.io/namespace: flux-system\n";

fn deployment(name: &str, image: &str, meta: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n{meta}spec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: {name}\n        image: {image}\n"
    )
}

fn configmap(name: &str, value: &str, meta: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{meta}data:\n  LOG_LEVEL: {value}\n"
    )
}

fn hpa(meta: &str) -> String {
    format!(
        "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: web\n{meta}spec:\n  scaleTargetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: web\n  minReplicas: 1\n  maxReplicas: 5\n"
    )
}

/// What kustomize-controller applies for `owner` in `ns`: the namespace and its labels.
fn live(ns: &str, owner: &str) -> String {
    format!("  namespace: {ns}\n{}", FLUX.replace("{owner}", owner))
}

/// Commits as `author` at a fixed date (so the hashes are the same every run).
fn commit_at(dir: &Path, author: &str, date: &str, subject: &str) -> String {
    git(dir, &["add", "-A"], &[]);
    let email = format!("{}@example.com", author.to_lowercase().replace(' ', "."));
    let env = [
        ("GIT_AUTHOR_NAME", author.to_string()),
        ("GIT_AUTHOR_EMAIL", email.clone()),
        ("GIT_COMMITTER_NAME", author.to_string()),
        ("GIT_COMMITTER_EMAIL", email),
        ("GIT_AUTHOR_DATE", date.to_string()),
        ("GIT_COMMITTER_DATE", date.to_string()),
    ];
    git(dir, &["commit", "-q", "-m", subject], &env);
    git(dir, &["rev-parse", "HEAD"], &[])
}

fn gitops(cluster: &Cluster, kubeconfig: &Path, cwd: &Path, cache: &Path, args: &[&str]) -> Out {
    let _ = cluster;
    let mut cmd = Command::new(plugin_binary());
    cmd.args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .current_dir(cwd)
        .env("XDG_CACHE_HOME", cache)
        .env("KUBECACHEDIR", cache.join("kube"))
        .env_remove("KUBECONFIG");
    run_command(cmd, None, Duration::from_secs(180))
}

fn inventory(ids: &[&str]) -> String {
    ids.iter()
        .map(|id| format!(r#"{{"id": "{id}", "v": "v1"}}"#))
        .collect::<Vec<_>>()
        .join(", ")
}

fn chromium(args: &[&str], profile: &Path) -> Out {
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args);
    run_command(cmd, None, Duration::from_secs(120))
}

/// The text of the element with `id` in a dumped DOM (up to its first `<`).
fn text_of<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let rest = &dom[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap() + start;
    &rest[start..end]
}

/// The `<tr>` rows of the table with `id` in a dumped DOM.
fn rows<'a>(dom: &'a str, id: &str) -> Vec<&'a str> {
    let at = dom
        .find(&format!("<table id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table #{id}"));
    let body = &dom[at..];
    let body = &body[body.find("<tbody>").unwrap()..body.find("</tbody>").unwrap()];
    body.split("<tr").skip(1).collect()
}

#[test]
fn audit_reports_the_cluster_against_git_in_a_table_json_and_a_page() {
    let started = jiff::Timestamp::now();
    let cluster = Cluster::start();
    cluster.install_crds();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("fleet");
    std::fs::create_dir_all(&dir).unwrap();
    git(&dir, &["init", "-q", "-b", "main"], &[]);
    git(&dir, &["remote", "add", "origin", URL], &[]);

    // Git: two commits at fixed dates.
    write(
        &dir,
        "apps/team/web.yaml",
        &deployment("web", "nginx:1.25", ""),
    );
    write(
        &dir,
        "apps/team/api.yaml",
        &deployment("api", "nginx:1.25", ""),
    );
    write(&dir, "apps/team/env.yaml", &configmap("env", "info", ""));
    write(&dir, "apps/team/gone.yaml", &configmap("gone", "info", ""));
    write(&dir, "apps/team/hpa.yaml", &hpa(""));
    write(
        &dir,
        "apps/team/kustomization.yaml",
        "namespace: team\nresources:\n- web.yaml\n- api.yaml\n- env.yaml\n- gone.yaml\n- hpa.yaml\n",
    );
    write(
        &dir,
        "apps/shop/cart.yaml",
        &deployment("cart", "nginx:1.25", ""),
    );
    write(
        &dir,
        "apps/shop/kustomization.yaml",
        "namespace: shop\nresources:\n- cart.yaml\n",
    );
    write(&dir, "apps/legacy/old.yaml", &configmap("old", "warn", ""));
    write(
        &dir,
        "apps/legacy/kustomization.yaml",
        "namespace: legacy\nresources:\n- old.yaml\n",
    );
    let c1 = commit_at(
        &dir,
        "Li Wei",
        "2026-01-05T10:00:00Z",
        "team, shop and legacy",
    );
    write(
        &dir,
        "apps/team/api.yaml",
        &deployment("api", "nginx:1.27", ""),
    );
    write(
        &dir,
        "apps/shop/cart.yaml",
        &deployment("cart", "nginx:1.27", ""),
    );
    let c2 = commit_at(&dir, "Ana Lima", "2026-01-12T09:30:00Z", "nginx 1.27");

    // The owners, and their status as the controllers write it.
    for ns in ["flux-system", "team", "shop", "legacy"] {
        cluster
            .kubectl(User::Admin, &["create", "namespace", ns])
            .ok();
    }
    let ks = |name: &str, source: &str, extra: &str| {
        format!(
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {{name: {name}, namespace: flux-system}}\nspec:\n  interval: 10m\n  prune: true\n  path: ./apps/{name}\n  sourceRef: {{kind: GitRepository, name: {source}}}\n{extra}---\n"
        )
    };
    let owners = format!(
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {{name: fleet, namespace: flux-system}}\nspec: {{url: \"{URL}\", ref: {{branch: main}}, interval: 1m, verify: {{mode: HEAD, secretRef: {{name: pgp-keys}}}}}}\n---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {{name: fleet-shop, namespace: flux-system}}\nspec: {{url: \"{URL}\", ref: {{branch: main}}, interval: 1m}}\n---\n{}{}{}",
        ks("team", "fleet", ""),
        ks("shop", "fleet-shop", ""),
        ks("legacy", "fleet", "  suspend: true\n"),
    );
    cluster
        .kubectl_stdin(User::Admin, &["apply", "-f", "-"], &owners)
        .ok();
    let ready = |rev: &str| {
        format!(
            r#"{{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded", "message": "Applied revision: {rev}", "lastTransitionTime": "2026-01-12T10:00:00Z"}}"#
        )
    };
    let rev = |c: &str| format!("main@sha1:{c}");
    for (name, verified) in [("fleet", true), ("fleet-shop", false)] {
        let verify = if verified {
            format!(
                r#", {{"type": "SourceVerified", "status": "True", "reason": "Succeeded", "message": "verified signature of commit {c2}", "lastTransitionTime": "2026-01-12T10:00:00Z"}}"#
            )
        } else {
            String::new()
        };
        cluster
            .patch_status(
                User::Admin,
                "gitrepositories.source.toolkit.fluxcd.io",
                "flux-system",
                name,
                &format!(
                    r#"{{"artifact": {{"revision": "{}", "path": "x", "url": "http://x", "lastUpdateTime": "2026-01-12T10:00:00Z"}}, "conditions": [{}{verify}]}}"#,
                    rev(&c2),
                    ready(&rev(&c2))
                ),
            )
            .ok();
    }
    for (name, applied, ids) in [
        (
            "team",
            &c2,
            inventory(&[
                "team_web_apps_Deployment",
                "team_api_apps_Deployment",
                "team_env__ConfigMap",
                "team_gone__ConfigMap",
                "team_web_autoscaling_HorizontalPodAutoscaler",
            ]),
        ),
        ("shop", &c1, inventory(&["shop_cart_apps_Deployment"])),
        ("legacy", &c2, inventory(&["legacy_old__ConfigMap"])),
    ] {
        cluster
            .patch_status(
                User::Admin,
                "kustomizations.kustomize.toolkit.fluxcd.io",
                "flux-system",
                name,
                &format!(
                    r#"{{"lastAppliedRevision": "{}", "inventory": {{"entries": [{ids}]}}, "conditions": [{}]}}"#,
                    rev(applied),
                    ready(&rev(applied))
                ),
            )
            .ok();
    }

    // What kustomize-controller applied (shop at c1: cart runs nginx 1.25).
    let applied = [
        deployment("web", "nginx:1.25", &live("team", "team")),
        deployment("api", "nginx:1.27", &live("team", "team")),
        configmap("env", "info", &live("team", "team")),
        hpa(&live("team", "team")),
        deployment("cart", "nginx:1.25", &live("shop", "shop")),
        configmap("old", "warn", &live("legacy", "legacy")),
    ]
    .join("---\n");
    cluster.flux_apply(&applied).ok();

    // Before the guard was installed: the HPA scales web, a person restarts it (neither is
    // drift), a person edits env with `kubectl edit` (drift) and makes a ConfigMap nobody
    // declares (a stray).
    cluster
        .kubectl_as(
            "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
            &["scale", "deployment/web", "-n", "team", "--replicas=4"],
        )
        .ok();
    cluster
        .kubectl(
            User::Developer,
            &["rollout", "restart", "deployment/web", "-n", "team"],
        )
        .ok();
    let editor = std::ffi::OsString::from("sed -i -e s/LOG_LEVEL:.info/LOG_LEVEL:\\ debug/");
    cluster
        .kubectl_with(
            &cluster.kubeconfig(User::Developer),
            &[("KUBE_EDITOR", editor.as_os_str())],
            &["edit", "configmap/env", "-n", "team"],
        )
        .ok();
    cluster
        .kubectl(
            User::Developer,
            &[
                "create",
                "configmap",
                "notes",
                "-n",
                "team",
                "--from-literal=a=b",
            ],
        )
        .ok();

    // The guard, with break-glass for the sre group; sam opens a window on cart and kim scales
    // it under the window (a patch of spec.replicas).
    cluster
        .kubectl(
            User::Admin,
            &[
                "create",
                "clusterrolebinding",
                "sre-admin",
                "--clusterrole=cluster-admin",
                "--group=sre",
            ],
        )
        .ok();
    let _guard = Webhook::start(&cluster, "breakGlass:\n  groups: [sre]\n");
    let sam = cluster.impersonating_kubeconfig("sam", &["sre", "system:authenticated"]);
    gitops(
        &cluster,
        &sam,
        &dir,
        &cache,
        &[
            "break-glass",
            "deployment/cart",
            "-n",
            "shop",
            "--for",
            "1h",
            "--reason",
            "checkout outage",
            "--ticket",
            "INC-42",
        ],
    )
    .ok();
    cluster
        .kubectl_as(
            "kim",
            &[
                "--as-group=sre",
                "--as-group=system:authenticated",
                "patch",
                "deployment/cart",
                "-n",
                "shop",
                "--type=merge",
                "-p",
                r#"{"spec":{"replicas":4}}"#,
            ],
        )
        .ok();
    // The guard records its Event asynchronously.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = cluster.kubectl(
            User::Admin,
            &[
                "get",
                "events",
                "-n",
                "shop",
                "-o",
                "jsonpath={.items[*].reason}",
            ],
        );
        if events.stdout.contains("BreakGlass") {
            break;
        }
        assert!(Instant::now() < deadline, "no BreakGlass Event: {events}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let until = cluster
        .kubectl(
            User::Admin,
            &[
                "get",
                "deployment/cart",
                "-n",
                "shop",
                "-o",
                "jsonpath={.metadata.annotations.gitops-guard\\.dev/break-glass-until}",
            ],
        )
        .ok()
        .stdout
        .clone();
    let admin = cluster.kubeconfig(User::Admin);

    // JSON: the schema, the numbers, and the same bytes twice.
    let out = gitops(
        &cluster,
        &admin,
        &dir,
        &cache,
        &["audit", "-A", "-o", "json"],
    );
    assert_eq!(out.code, 1, "{out}");
    let again = gitops(
        &cluster,
        &admin,
        &dir,
        &cache,
        &["audit", "-A", "-o", "json"],
    );
    assert_eq!(again.code, 1, "{again}");
    assert_eq!(out.stdout, again.stdout, "two reports of one state differ");
    let json_path = tmp.path().join("audit.json");
    std::fs::write(&json_path, &out.stdout).unwrap();
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/audit-schema.json");
    let mut check = Command::new("python3");
    check.args([
        "-c",
        "import json, sys, jsonschema\n\
         schema = json.load(open(sys.argv[1]))\n\
         jsonschema.Draft202012Validator.check_schema(schema)\n\
         jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(json.load(open(sys.argv[2])))\n",
    ]);
    check.arg(&schema).arg(&json_path);
    run_command(check, None, Duration::from_secs(60)).ok();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        report["summary"],
        serde_json::json!({
            "objects": 7, "managed": 6, "inSync": 4, "drifted": 2,
            "driftReasons": {"changed by hand": 1, "changed under break-glass": 1},
            "missing": 1, "strays": 1, "unmanaged": 0, "notCompared": 0, "errors": 0,
            "openExceptions": 1, "owners": 3, "ownersBehind": 1, "ownersSuspended": 1,
            "ownersNotReady": 0, "breakGlassWindows": 1
        }),
        "{}",
        out.stdout
    );
    let window = &report["breakGlass"][0];
    let opened = window["opened"].as_str().unwrap().to_string();
    assert_eq!(
        window["changes"][0]["by"], "kim",
        "the guard's Event: {window}"
    );
    assert_eq!(window["changes"][0]["evidence"], "event");
    assert_eq!(
        window["changes"][1]["by"], "kubectl-patch",
        "managedFields: {window}"
    );
    assert_eq!(window["changes"][1]["evidence"], "managedFields");
    let scaled_at = window["changes"][0]["at"].as_str().unwrap().to_string();
    let patched_at = window["changes"][1]["at"].as_str().unwrap().to_string();
    for t in [&opened, &scaled_at, &patched_at] {
        let t: jiff::Timestamp = t.parse().unwrap();
        assert!(
            t.as_second() >= started.as_second() && t <= jiff::Timestamp::now(),
            "{t} is not a time of this test"
        );
    }
    assert_eq!(
        window["backInGit"],
        serde_json::json!([{"resource": "deployment/cart", "namespace": "shop", "state": "no", "fields": ["spec.replicas"]}])
    );
    let env = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["resource"] == "configmap/env")
        .unwrap();
    assert_eq!(env["fields"][0]["field"], "data.LOG_LEVEL");
    assert_eq!(env["fields"][0]["git"], "info");
    assert_eq!(env["fields"][0]["live"], "debug");
    assert_eq!(env["fields"][0]["manager"], "kubectl-edit");
    assert_eq!(report["coverage"]["installed"], true);
    assert_eq!(report["coverage"]["answering"], "yes");

    // The table, exactly (the coverage section depends on the test cluster's RBAC: its start).
    let out = gitops(&cluster, &admin, &dir, &cache, &["audit", "-A"]);
    assert_eq!(out.code, 1, "{out}");
    let (c1s, c2s) = (short(&c1), short(&c2));
    let expected = format!(
        "GitOps audit of all namespaces (break-glass period: 720h)

SUMMARY
objects:                                   7
managed:                                   6
in the state Git says:                     4
drifted:                                   2 (1 changed by hand, 1 changed under break-glass)
missing (in Git, not in the cluster):      1
strays (unmanaged in guarded namespaces):  1
not compared:                              0
errors:                                    0
open exceptions:                           1
owners:                                    3 (1 behind their source, 1 suspended, 0 not ready)
break-glass windows:                       1 (1 open)
guard:                                     installed, answering: yes; doctor: {fail} fail, {warn} warn, {ok} ok

OWNERS
OWNER                                  SOURCE                                  BRANCH   APPLIED             CURRENT             UP TO DATE   VERIFIED         READY   SUSPENDED   OBJECTS
Flux Kustomization flux-system/legacy  {URL}   main     main@sha1:{c2s}   main@sha1:{c2s}   yes          verified         yes     yes         1
Flux Kustomization flux-system/shop    {URL}   main     main@sha1:{c1s}   main@sha1:{c2s}   no           not configured   yes     no          1
Flux Kustomization flux-system/team    {URL}   main     main@sha1:{c2s}   main@sha1:{c2s}   yes          verified         yes     no          5

OBJECTS
NAMESPACE   RESOURCE                        OWNER                                  STATE     WHY                                                                             FIELDS             FILE                     LAST COMMIT   AUTHOR    DATE                   EXCEPTIONS
legacy      configmap/old                   Flux Kustomization flux-system/legacy  in-sync   -                                                                               -                  apps/legacy/old.yaml     {c1s}       Li Wei    2026-01-05T10:00:00Z   -
shop        deployment/cart                 Flux Kustomization flux-system/shop    drift     changed under break-glass                                                       spec.replicas      apps/shop/cart.yaml      {c1s}       Li Wei    2026-01-05T10:00:00Z   object's break-glass window by sam until {until}
team        configmap/env                   Flux Kustomization flux-system/team    drift     changed by hand                                                                 data.LOG_LEVEL     apps/team/env.yaml       {c1s}       Li Wei    2026-01-05T10:00:00Z   -
team        configmap/gone                  Flux Kustomization flux-system/team    missing   declared by Flux Kustomization flux-system/team, not in the cluster             -                  -                        -             -         -                      -
team        configmap/notes                 -                                      stray     in a namespace GitOps manages, declared by no owner, made by kubectl-create     -                  -                        -             -         -                      -
team        deployment/api                  Flux Kustomization flux-system/team    in-sync   -                                                                               -                  apps/team/api.yaml       {c2s}       Ana Lima  2026-01-12T09:30:00Z   -
team        deployment/web                  Flux Kustomization flux-system/team    in-sync   -                                                                               -                  apps/team/web.yaml       {c1s}       Li Wei    2026-01-05T10:00:00Z   -
team        horizontalpodautoscaler/web     Flux Kustomization flux-system/team    in-sync   -                                                                               -                  apps/team/hpa.yaml       {c1s}       Li Wei    2026-01-05T10:00:00Z   -

EXCEPTIONS IN FORCE
NAMESPACE   RESOURCE          EXCEPTION     DETAIL                                UNTIL
shop        deployment/cart   break-glass   by sam: checkout outage [INC-42]      {until}

BREAK-GLASS WINDOWS
NAMESPACE   ON                BY    REASON            TICKET   OPENED                 UNTIL                  STATE   CHANGES                                             BACK IN GIT
shop        deployment/cart   sam   checkout outage   INC-42   {opened}   {until}   open    kim changed deployment/cart at {scaled_at}; kubectl-patch changed deployment/cart at {patched_at}   deployment/cart: no (spec.replicas)

GUARD COVERAGE
guard: installed (gitops-guard), answering: yes
",
        fail = report["coverage"]["fail"],
        warn = report["coverage"]["warn"],
        ok = report["coverage"]["ok"],
    );
    // Column widths depend on the values: compare cell by cell, line by line.
    let cells = |t: &str| -> Vec<Vec<String>> {
        t.lines()
            .map(|l| {
                l.split("  ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .collect()
    };
    let got = &out.stdout;
    let head_len = expected.lines().count();
    let got_head: String = got
        .lines()
        .take(head_len)
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(cells(&got_head), cells(&expected), "{got}");
    // Padding as kubectl pads: every column of a table starts at one offset.
    assert!(
        got.contains("\nSUMMARY\nobjects:                                   7\n"),
        "{got}"
    );
    // What doctor fails follows, one finding a line, or the line that says there is none.
    let rest: Vec<&str> = got.lines().skip(head_len).collect();
    assert!(
        rest.first() == Some(&"doctor finds nothing that fails.")
            || rest
                .first()
                .is_some_and(|l| l.starts_with("STATUS   CHECK")),
        "{got}"
    );

    // The page: a real browser shows the summary, filters from the address, draws it.
    let html_path = tmp.path().join("audit.html");
    let html = html_path.to_str().unwrap();
    let out = gitops(
        &cluster,
        &admin,
        &dir,
        &cache,
        &["audit", "-A", "-o", "html", "--out", html],
    );
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(out.stdout, "", "--out writes the page, not standard output");
    let page = std::fs::read_to_string(&html_path).unwrap();
    for fetch in ["src=", "href=", "url(", "@import"] {
        assert!(
            !page.contains(fetch),
            "the page may fetch something: {fetch}"
        );
    }
    let sha = kubectl_gitops::audit::sha256_hex(again.stdout.as_bytes());
    let profile = tmp.path().join("chromium");
    let dom = chromium(&["--dump-dom", &format!("file://{html}")], &profile);
    let dom = &dom.ok().stdout;
    assert_eq!(
        text_of(dom, "json-sha256"),
        sha,
        "the page names the JSON's sha256"
    );
    let mut sha_cmd = Command::new("sha256sum");
    sha_cmd.arg(&json_path);
    assert!(
        run_command(sha_cmd, None, Duration::from_secs(10))
            .ok()
            .stdout
            .starts_with(&sha)
    );
    for (stat, value) in [
        ("stat-objects", "7"),
        ("stat-managed", "6"),
        ("stat-in-the-state-Git-says", "4"),
        ("stat-drifted", "2"),
        ("stat-missing-in-Git-not-in-the-cluster", "1"),
        ("stat-strays-unmanaged-in-guarded-namespaces", "1"),
        ("stat-open-exceptions", "1"),
    ] {
        let at = dom
            .find(&format!("id=\"{stat}\""))
            .unwrap_or_else(|| panic!("no {stat}"));
        let value_at = dom[at..].find("class=\"value\">").unwrap() + at + "class=\"value\">".len();
        assert!(
            dom[value_at..].starts_with(&format!("{value}<")),
            "{stat}: {}",
            &dom[at..at + 200]
        );
    }
    assert_eq!(rows(dom, "objects").len(), 8);
    assert_eq!(text_of(dom, "objects-count"), "8 of 8");

    // Filtered from the address: only team's objects, then only what drifted in team.
    let dom = chromium(
        &["--dump-dom", &format!("file://{html}#namespace=team")],
        &profile,
    );
    let dom = &dom.ok().stdout;
    let team = rows(dom, "objects");
    assert_eq!(team.len(), 6, "{team:?}");
    assert!(
        team.iter().all(|r| r.contains("data-namespace=\"team\"")),
        "{team:?}"
    );
    assert_eq!(text_of(dom, "objects-count"), "6 of 8");
    assert!(
        rows(dom, "break-glass").is_empty(),
        "shop's window is filtered out"
    );
    assert!(
        dom.contains("<option value=\"team\" selected") || dom.contains("id=\"filter-namespace\"")
    );
    let dom = chromium(
        &[
            "--dump-dom",
            &format!("file://{html}#namespace=team&state=drift"),
        ],
        &profile,
    );
    let dom = &dom.ok().stdout;
    let drifted = rows(dom, "objects");
    assert_eq!(drifted.len(), 1, "{drifted:?}");
    assert!(drifted[0].contains("configmap/env") && drifted[0].contains("changed by hand"));

    // A screenshot: a page was drawn.
    let png = tmp.path().join("audit.png");
    chromium(
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1400,1800",
            &format!("file://{html}"),
        ],
        &profile,
    )
    .ok();
    let image = std::fs::read(&png).unwrap();
    assert!(image.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        image.len() > 20_000,
        "a near-empty screenshot: {} bytes",
        image.len()
    );

    if std::env::var_os("GITOPS_GUARD_WRITE_AUDIT_SAMPLE").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
        let now = jiff::Timestamp::now().as_second();
        let as_of = jiff::Timestamp::from_second(now).unwrap().to_string();
        for (format, file) in [("json", "audit-sample.json"), ("html", "audit-sample.html")] {
            let path = docs.join(file);
            let path = path.to_str().unwrap();
            let out = gitops(
                &cluster,
                &admin,
                &dir,
                &cache,
                &[
                    "audit", "-A", "-o", format, "--as-of", &as_of, "--out", path,
                ],
            );
            assert_eq!(out.code, 1, "{out}");
        }
    }
}

/// The owners Flux's helm-controller and Argo CD run, as the audit reads them beside the
/// comparison: each HelmRelease with its chart's source and the HelmChart source-controller made
/// for it (two releases of one HelmRepository), each Application with its AppProject (one beside
/// it, one only in Argo CD's namespace).
#[test]
fn helm_releases_and_applications_are_reported_with_their_sources_and_projects() {
    let cluster = Cluster::start();
    cluster.install_crds();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("empty");
    std::fs::create_dir_all(&dir).unwrap();
    for ns in ["flux-system", "apps", "argocd", "team-argocd"] {
        cluster
            .kubectl(User::Admin, &["create", "namespace", ns])
            .ok();
    }
    let apply = |yaml: &str| {
        cluster
            .kubectl_stdin(User::Admin, &["apply", "-f", "-"], yaml)
            .ok();
    };
    apply(
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: charts\n  namespace: flux-system\nspec:\n  url: https://charts.example.com\n  interval: 10m\n",
    );
    for (name, chart_version, installed) in [("web", "1.2.3", "1.2.3"), ("api", "2.0.1", "2.0.0")] {
        apply(&format!(
            "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: {name}\n  namespace: apps\nspec:\n  interval: 10m\n  chart:\n    spec:\n      chart: {name}\n      sourceRef:\n        kind: HelmRepository\n        name: charts\n        namespace: flux-system\n"
        ));
        cluster
            .patch_status(
                User::Admin,
                "helmreleases.helm.toolkit.fluxcd.io",
                "apps",
                name,
                &format!(
                    r#"{{"history":[{{"chartVersion":"{installed}","chartName":"{name}","name":"{name}","namespace":"apps","version":1,"status":"deployed","digest":"sha256:0","firstDeployed":"2026-01-01T00:00:00Z","lastDeployed":"2026-01-01T00:00:00Z"}}],"conditions":[{{"type":"Ready","status":"True","reason":"InstallSucceeded","message":"installed","lastTransitionTime":"2026-01-01T00:00:00Z"}}]}}"#
                ),
            )
            .ok();
        // source-controller's HelmChart for the release: `<namespace>-<name>` beside the source.
        apply(&format!(
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmChart\nmetadata:\n  name: apps-{name}\n  namespace: flux-system\nspec:\n  chart: {name}\n  interval: 10m\n  sourceRef:\n    kind: HelmRepository\n    name: charts\n"
        ));
        cluster
            .patch_status(
                User::Admin,
                "helmcharts.source.toolkit.fluxcd.io",
                "flux-system",
                &format!("apps-{name}"),
                &format!(
                    r#"{{"artifact":{{"revision":"{chart_version}","path":"x","url":"http://x","digest":"sha256:0","lastUpdateTime":"2026-01-01T00:00:00Z"}}}}"#
                ),
            )
            .ok();
    }
    apply(
        "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata:\n  name: signed\n  namespace: argocd\nspec:\n  signatureKeys:\n  - keyID: 4AEE18F83AFDEB23\n",
    );
    for (app, ns) in [("shop", "argocd"), ("tenant", "team-argocd")] {
        apply(&format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {app}\n  namespace: {ns}\nspec:\n  project: signed\n  source:\n    repoURL: {URL}\n    path: apps/{app}\n    targetRevision: main\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {app}\nstatus:\n  sync:\n    status: Synced\n    revision: 3f2a9c1d0e5b7a8c9d0e1f2a3b4c5d6e7f8a9b0c\n  health:\n    status: Healthy\n  operationState:\n    phase: Succeeded\n    syncResult:\n      revision: 3f2a9c1d0e5b7a8c9d0e1f2a3b4c5d6e7f8a9b0c\n"
        ));
    }

    let admin = cluster.kubeconfig(User::Admin);
    let out = gitops(
        &cluster,
        &admin,
        &dir,
        &cache,
        &["audit", "-A", "-o", "json"],
    );
    assert!(out.code == 0 || out.code == 1, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let owner = |name: &str| {
        report["owners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["owner"] == name)
            .unwrap_or_else(|| panic!("no owner {name} in {}", report["owners"]))
            .clone()
    };
    for (name, installed, current, up_to_date) in [
        ("web", "1.2.3", "1.2.3", true),
        ("api", "2.0.0", "2.0.1", false),
    ] {
        let hr = owner(&format!("Flux HelmRelease apps/{name}"));
        assert_eq!(
            (
                &hr["appliedRevision"],
                &hr["currentRevision"],
                &hr["upToDate"],
                &hr["ready"],
                &hr["source"]["url"],
                &hr["source"]["path"],
            ),
            (
                &serde_json::json!(installed),
                &serde_json::json!(current),
                &serde_json::json!(up_to_date),
                &serde_json::json!(true),
                &serde_json::json!("https://charts.example.com"),
                &serde_json::json!(name),
            ),
            "{hr}"
        );
    }
    for app in ["argocd/shop", "team-argocd/tenant"] {
        let a = owner(&format!("Argo CD Application {app}"));
        assert!(
            a["verified"]["detail"]
                .as_str()
                .unwrap()
                .contains("AppProject signed requires commits signed by 1 key(s)"),
            "{a}"
        );
        assert_eq!(a["upToDate"], true, "{a}");
    }
    assert_eq!(report["summary"]["owners"], 4, "{}", report["summary"]);
    assert_eq!(
        report["summary"]["ownersBehind"], 1,
        "{}",
        report["summary"]
    );
}
