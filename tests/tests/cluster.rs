//! The harness against the real kube-apiserver: users, impersonation, CRD fixtures, status
//! subresources, and that no process outlives a cluster.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use gitops_guard_tests::{CUSTODY_GROUPS, Cluster, User, WEBHOOK_NAME, Webhook};

const FLUX_SA: &str = "system:serviceaccount:flux-system:kustomize-controller";

/// The last audit event for a write to `resource/name`.
fn audit_event_for(cluster: &Cluster, resource: &str, name: &str) -> serde_json::Value {
    cluster
        .audit_events()
        .into_iter()
        .rev()
        .find(|e| e["objectRef"]["resource"] == resource && e["objectRef"]["name"] == name)
        .unwrap_or_else(|| panic!("no audit event for {resource}/{name}"))
}

/// A process counts as gone when it has exited (a zombie waiting to be reaped is gone too).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn pids_in(dir: &Path) -> Vec<u32> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            (path.extension()? == "pid").then(|| {
                std::fs::read_to_string(&path)
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap()
            })
        })
        .collect()
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn each_user_is_authenticated_as_documented() {
    let cluster = Cluster::start();
    for (user, namespace) in [
        (User::Admin, "by-admin"),
        (User::Developer, "by-ana"),
        (User::CiBot, "by-ci"),
    ] {
        cluster
            .kubectl(user, &["create", "namespace", namespace])
            .ok();
        let event = audit_event_for(&cluster, "namespaces", namespace);
        assert_eq!(event["user"]["username"], user.name(), "{event}");
        let groups = event["user"]["groups"].as_array().unwrap();
        let group = match user {
            User::Admin => "system:masters",
            User::Developer => "developers",
            User::CiBot => "ci",
        };
        assert!(
            groups.iter().any(|g| g == group),
            "{user:?} lacks group {group}: {event}"
        );
    }
    // Developer and CI bot are cluster-admins: only the guard will stand in their way.
    for user in [User::Developer, User::CiBot] {
        let out = cluster.kubectl(user, &["auth", "can-i", "*", "*", "--all-namespaces"]);
        assert_eq!(out.ok().stdout.trim(), "yes");
    }
    // Kubeconfig files work on their own, e.g. for the webhook's --kubeconfig.
    let direct = Command::new(std::env::var_os("KUBECTL").unwrap_or_else(|| "kubectl".into()))
        .args([
            "--kubeconfig",
            cluster.kubeconfig(User::Developer).to_str().unwrap(),
        ])
        .args(["get", "namespace", "by-ana", "-o", "name"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&direct.stdout).trim(),
        "namespace/by-ana"
    );
    assert!(cluster.server().starts_with("https://127.0.0.1:"));
}

#[test]
fn admin_impersonates_service_accounts_and_users() {
    let cluster = Cluster::start();
    cluster
        .kubectl(User::Admin, &["create", "namespace", "prod"])
        .ok();

    // A user without bindings: RBAC's error names the impersonated user.
    let out = cluster.kubectl_as("bob", &["get", "configmaps", "-n", "prod"]);
    assert!(
        out.fails()
            .stderr
            .contains(r#"User "bob" cannot list resource "configmaps""#),
        "{out}"
    );

    // Service accounts (here: Flux's kustomize-controller) may change anything, as in real clusters.
    let out = cluster.kubectl_as(
        FLUX_SA,
        &["auth", "can-i", "patch", "deployments", "-n", "prod"],
    );
    assert_eq!(out.ok().stdout.trim(), "yes");
    cluster
        .kubectl_as_stdin(
            FLUX_SA,
            &["apply", "--server-side", "--field-manager=kustomize-controller", "-f", "-"],
            "{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"settings\", \"namespace\": \"prod\"}}",
        )
        .ok();
    // The apiserver (and so an admission webhook) sees the service account with its groups.
    let event = audit_event_for(&cluster, "configmaps", "settings");
    assert_eq!(event["user"]["username"], "admin", "{event}");
    assert_eq!(event["impersonatedUser"]["username"], FLUX_SA, "{event}");
    let groups = event["impersonatedUser"]["groups"].as_array().unwrap();
    assert!(
        groups
            .iter()
            .any(|g| g == "system:serviceaccounts:flux-system"),
        "{event}"
    );
}

#[test]
fn crd_fixtures_install_with_upstream_names_and_subresources() {
    let cluster = Cluster::start();
    cluster.install_crds();
    for namespace in ["flux-system", "argocd"] {
        cluster
            .kubectl(User::Admin, &["create", "namespace", namespace])
            .ok();
    }

    // A status in the manifest is dropped: Kustomization has a status subresource.
    let kustomization = r#"
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: apps, namespace: flux-system}
spec: {interval: 10m, path: ./apps, prune: true, sourceRef: {kind: GitRepository, name: flux-system}}
status: {lastAppliedRevision: "main@sha1:0000000000000000000000000000000000000000"}
"#;
    cluster
        .kubectl_stdin(User::Admin, &["apply", "-f", "-"], kustomization)
        .ok();
    let ks = cluster.kubectl(
        User::Admin,
        &["get", "ks", "apps", "-n", "flux-system", "-o", "json"],
    );
    assert!(ks.ok().json().get("status").is_none(), "{ks}");

    // ... and is set through the subresource, as kustomize-controller does.
    let revision = "main@sha1:3f2a9c1d0e5b7a8c9f1e2d3c4b5a69788796a5b4";
    let patch = format!(
        r#"{{"lastAppliedRevision": "{revision}", "conditions": [{{"type": "Ready", "status": "True"}}]}}"#
    );
    cluster
        .patch_status(User::Admin, "kustomizations", "flux-system", "apps", &patch)
        .ok();
    let ks = cluster
        .kubectl(
            User::Admin,
            &["get", "ks", "apps", "-n", "flux-system", "-o", "json"],
        )
        .json();
    assert_eq!(ks["status"]["lastAppliedRevision"], revision);
    assert_eq!(ks["status"]["conditions"][0]["type"], "Ready");
    assert_eq!(ks["spec"]["path"], "./apps", "spec untouched");

    // Argo CD's Application has no status subresource: status is written with the object.
    let application = r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: web, namespace: argocd}
spec:
  project: default
  source: {repoURL: "https://git.example.com/apps.git", path: web, targetRevision: main}
  destination: {server: "https://kubernetes.default.svc", namespace: prod}
status: {sync: {status: Synced, revision: 3f2a9c1d0e5b7a8c9f1e2d3c4b5a69788796a5b4}}
"#;
    cluster
        .kubectl_stdin(User::Admin, &["apply", "-f", "-"], application)
        .ok();
    let app = cluster
        .kubectl(
            User::Admin,
            &["get", "app", "web", "-n", "argocd", "-o", "json"],
        )
        .json();
    assert_eq!(app["status"]["sync"]["status"], "Synced");

    // Every fixture answers to its upstream short names.
    for short in [
        "ks", "hr", "gitrepo", "ocirepo", "helmrepo", "hc", "buckets", "ea", "ag", "imgrepo",
        "imgpol", "iua", "app", "appset", "appproj",
    ] {
        cluster
            .kubectl(User::Admin, &["get", short, "--all-namespaces"])
            .ok();
    }
    let versions = cluster.kubectl(User::Admin, &["api-versions"]);
    for group_version in [
        "kustomize.toolkit.fluxcd.io/v1",
        "helm.toolkit.fluxcd.io/v2",
        "source.toolkit.fluxcd.io/v1",
        "source.extensions.fluxcd.io/v1beta1",
        "image.toolkit.fluxcd.io/v1",
        "argoproj.io/v1alpha1",
    ] {
        assert!(
            versions.ok().stdout.lines().any(|l| l == group_version),
            "{group_version} missing:\n{versions}"
        );
    }
}

#[test]
fn dropping_a_cluster_stops_all_its_processes_and_removes_its_dir() {
    let cluster = Cluster::start();
    let dir = cluster.dir().to_path_buf();
    let pids = pids_in(&dir);
    assert_eq!(
        pids.len(),
        3,
        "etcd, kube-apiserver and the watchdog: {pids:?}"
    );
    assert!(pids.iter().all(|pid| running(*pid)));
    drop(cluster);
    let left: Vec<_> = pids.iter().filter(|pid| running(**pid)).collect();
    assert!(left.is_empty(), "still running after drop: {left:?}");
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[test]
fn the_watchdog_stops_a_cluster_whose_owner_died() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().join("cluster");
    // Killed on drop too, so that a failing assertion below still lets the watchdog clean up.
    struct Owner(std::process::Child);
    impl Drop for Owner {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut owner = Owner(
        Command::new("sleep")
            .arg("600")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/local-cluster.sh");
    let up = Command::new("bash")
        .arg(&script)
        .arg("up")
        .arg(&dir)
        .env("GG_CLUSTER_OWNER_PID", owner.0.id().to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "up failed: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert!(
        up.stdout.is_empty(),
        "up prints nothing: {}",
        String::from_utf8_lossy(&up.stdout)
    );
    let pids = pids_in(&dir);
    assert!(pids.iter().all(|pid| running(*pid)));

    owner.0.kill().unwrap();
    owner.0.wait().unwrap();
    wait_for(
        "the watchdog to stop the cluster",
        Duration::from_secs(30),
        || !dir.exists() && pids.iter().all(|pid| !running(*pid)),
    );
}

#[test]
fn up_refuses_a_dir_in_use_and_down_refuses_foreign_dirs() {
    let cluster = Cluster::start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/local-cluster.sh");
    let up = Command::new("bash")
        .arg(&script)
        .arg("up")
        .arg(cluster.dir())
        .output()
        .unwrap();
    assert!(!up.status.success());
    assert!(
        String::from_utf8_lossy(&up.stderr).contains("is not empty"),
        "{up:?}"
    );
    cluster
        .kubectl(User::Admin, &["get", "--raw", "/readyz"])
        .ok();

    let foreign = tempfile::tempdir().unwrap();
    std::fs::write(foreign.path().join("precious"), "keep me").unwrap();
    let down = Command::new("bash")
        .arg(&script)
        .arg("down")
        .arg(foreign.path())
        .output()
        .unwrap();
    assert!(!down.status.success());
    assert!(foreign.path().join("precious").exists());
}

#[test]
fn a_registered_webhook_fails_closed_until_dropped() {
    let cluster = Cluster::start();
    cluster.install_crds();
    cluster
        .kubectl(User::Admin, &["create", "namespace", "apps"])
        .ok();
    let webhook = Webhook::start(&cluster, "mode: enforce\n");
    let registration = cluster
        .kubectl(
            User::Admin,
            &[
                "get",
                "validatingwebhookconfiguration",
                "gitops-guard",
                "-o",
                "json",
            ],
        )
        .json();
    let hook = &registration["webhooks"][0];
    assert_eq!(hook["name"], WEBHOOK_NAME);
    assert_eq!(
        hook["clientConfig"]["url"],
        format!("https://127.0.0.1:{}/validate", webhook.port())
    );
    assert_eq!(
        hook["rules"][0]["resources"],
        serde_json::json!(["*", "*/scale", "*/status"])
    );
    // Status writes go to the guard (on 1.20 they carry metadata too), and so do the owners' and
    // sources' status.
    assert_eq!(
        hook["rules"][1]["resources"],
        serde_json::json!(["*/status"])
    );
    assert_eq!(
        hook["rules"][1]["apiGroups"],
        serde_json::json!(CUSTODY_GROUPS)
    );
    // No namespace is left out by a label (before 1.21 anyone may set kubernetes.io/metadata.name):
    // the guard itself leaves kube-system alone, by name.
    assert_eq!(hook["namespaceSelector"], serde_json::json!({}), "{hook}");
    assert_eq!(hook["failurePolicy"], "Fail");
    assert!(webhook.get("/healthz").len() < 1000);

    // With the webhook process gone, the apiserver (which already calls it) refuses writes —
    // in kube-system too: the registration excludes no namespace (the guard does, by name).
    let killed = Command::new("kill")
        .args(["-KILL", &webhook.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = cluster.kubectl(
        User::Developer,
        &["create", "configmap", "c1", "-n", "apps"],
    );
    assert!(
        out.fails()
            .stderr
            .contains(&format!("failed calling webhook \"{WEBHOOK_NAME}\"")),
        "{out}"
    );
    let out = cluster.kubectl(
        User::Developer,
        &["create", "configmap", "c1", "-n", "kube-system"],
    );
    assert!(
        out.fails()
            .stderr
            .contains(&format!("failed calling webhook \"{WEBHOOK_NAME}\"")),
        "{out}"
    );

    // Dropping it deregisters it, and the apiserver has let go of it when drop returns.
    drop(webhook);
    cluster
        .kubectl(
            User::Developer,
            &["create", "configmap", "c2", "-n", "apps"],
        )
        .ok();
    let left = cluster.kubectl(
        User::Admin,
        &["get", "validatingwebhookconfigurations", "-o", "name"],
    );
    assert_eq!(left.ok().stdout.trim(), "", "registrations left behind");
}
