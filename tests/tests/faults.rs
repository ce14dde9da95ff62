//! The owner caches hold, and their faults show, end to end (real kubectl, a real kube-apiserver
//! v1.20.2, the webhook registered with `failurePolicy: Fail`).
//!
//! - The webhook's own connection to the API server is lost (its kubeconfig points at a TCP proxy
//!   here, which is cut): `/readyz` stays 200 and names every degraded cache with why, the metric
//!   says so, a person's change to a managed object is still denied and the agent's still allowed
//!   (the API server still calls the webhook; decisions come from the last synced caches). The
//!   proxy restored, the caches catch up with what changed meanwhile and nothing is degraded.
//! - HelmReleases whose values are nested 200 and 5,000 levels deep (past serde_json's limit of
//!   128, which used to fail the whole list) exist before the webhook starts: it becomes ready,
//!   and the objects they own are guarded; one created later reaches the cache by its watch event.

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use gitops_guard_tests::{Cluster, FROM_ROOT, Out, User, Webhook};
use serde_json::Value;

const HC: &str = "system:serviceaccount:flux-system:helm-controller";

/// A TCP proxy in front of the API server that can be cut (its connections closed, new ones
/// closed as they arrive) and restored.
struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (accepting, held) = (open.clone(), connections.clone());
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let mut streams = held.lock().unwrap();
                if !accepting.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                streams.push(client.try_clone().unwrap());
                streams.push(server.try_clone().unwrap());
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Proxy {
            port,
            open,
            connections,
        }
    }

    fn cut(&self) {
        let mut streams = self.connections.lock().unwrap();
        self.open.store(false, Ordering::SeqCst);
        for stream in streams.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// The admin kubeconfig with its server replaced by the proxy's address (same IP, so the API
/// server's certificate still matches).
fn kubeconfig_through(cluster: &Cluster, proxy: &Proxy) -> std::path::PathBuf {
    let admin = std::fs::read_to_string(cluster.kubeconfig(User::Admin)).unwrap();
    let server = cluster.server();
    assert!(admin.contains(&server), "{admin}");
    let text = admin.replace(&server, &format!("https://127.0.0.1:{}", proxy.port));
    let path = cluster.dir().join("through-proxy.kubeconfig");
    std::fs::write(&path, text).unwrap();
    path
}

fn upstream(cluster: &Cluster) -> SocketAddr {
    let server = cluster.server();
    server
        .strip_prefix("https://")
        .unwrap_or(&server)
        .parse()
        .unwrap_or_else(|e| panic!("{server}: {e}"))
}

/// Waits (polling) until `check` returns `Some`, at most `timeout`; panics with `what` and the
/// last state otherwise.
fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: not within {timeout:?}; last:\n{last}")
            }
            Err(_) => thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// `/readyz` (answered 200, else `Webhook::get` panics): the degraded caches' lines.
fn degraded(webhook: &Webhook) -> (Value, Vec<String>) {
    let body: Value = serde_json::from_str(&webhook.get("/readyz")).unwrap();
    let lines = body["degraded"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    (body, lines)
}

fn metric_line(webhook: &Webhook, prefix: &str) -> Option<String> {
    webhook
        .metrics()
        .lines()
        .find(|l| l.starts_with(prefix))
        .map(str::to_string)
}

const HELM_DEGRADED: &str = "the HelmRelease (helm.toolkit.fluxcd.io/v2) cache is degraded";

fn helm_release(ns: &str, name: &str, values: &str) -> String {
    format!(
        r#"{{"apiVersion":"helm.toolkit.fluxcd.io/v2","kind":"HelmRelease","metadata":{{"name":"{name}","namespace":"{ns}","labels":{labels}}},"spec":{{"interval":"10m","chart":{{"spec":{{"chart":"web","sourceRef":{{"kind":"HelmRepository","name":"charts"}}}}}},"values":{values}}}}}"#,
        labels = serde_json::to_string(&from_root()).unwrap(),
    )
}

/// The HelmRepository `charts` the releases read, from Git (a release traces back only if its
/// source does).
fn charts(ns: &str) -> String {
    format!(
        r#"{{"apiVersion":"source.toolkit.fluxcd.io/v1","kind":"HelmRepository","metadata":{{"name":"charts","namespace":"{ns}","labels":{labels}}},"spec":{{"interval":"1h","url":"https://charts.example.com"}}}}"#,
        labels = serde_json::to_string(&from_root()).unwrap(),
    )
}

fn from_root() -> Value {
    let yaml = FROM_ROOT.trim_matches(|c| c == '{' || c == '}');
    let map: serde_json::Map<String, Value> = yaml
        .split(',')
        .filter_map(|kv| kv.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), Value::from(v.trim())))
        .collect();
    Value::Object(map)
}

/// A ConfigMap helm-controller installs for HelmRelease `ns/release`.
fn owned_configmap(ns: &str, name: &str, release: &str, level: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","namespace":"{ns}","labels":{{"helm.toolkit.fluxcd.io/name":"{release}","helm.toolkit.fluxcd.io/namespace":"{ns}"}}}},"data":{{"LOG_LEVEL":"{level}"}}}}"#
    )
}

fn helm_apply(cluster: &Cluster, manifest: &str) -> Out {
    cluster.agent_apply(HC, "helm-controller", manifest)
}

fn chart_status(cluster: &Cluster, ns: &str, name: &str, version: &str) {
    cluster
        .patch_status_as(
            HC,
            "helmreleases",
            ns,
            name,
            &format!(r#"{{"history":[{{"chartName":"web","chartVersion":"{version}"}}]}}"#),
        )
        .ok();
}

fn managed_message(ns: &str, cm: &str, release: &str, revision: &str) -> String {
    format!(
        "configmap/{cm} in {ns} is managed by Flux HelmRelease {ns}/{release} ({revision}).\nIt is rendered by Helm from Flux HelmRelease {ns}/{release}: change the release's values in Git instead: kubectl gitops edit helmrelease/{release} -n {ns}"
    )
}

fn first_two_lines(s: &str) -> String {
    s.lines().take(2).collect::<Vec<_>>().join("\n")
}

/// A person (ana) deletes `configmap/cm`: the denial's first two lines.
fn person_deletes(cluster: &Cluster, ns: &str, cm: &str) -> String {
    let out = cluster.kubectl(
        User::Developer,
        &[
            "delete",
            &format!("configmap/{cm}"),
            "-n",
            ns,
            "--wait=false",
        ],
    );
    first_two_lines(out.denied())
}

#[test]
fn losing_the_api_server_degrades_the_caches_visibly_and_decisions_go_on() {
    let cluster = Cluster::start();
    cluster.install_crds();
    cluster.bootstrap();
    cluster
        .kubectl(User::Admin, &["create", "namespace", "apps"])
        .ok();
    cluster.flux_apply(&charts("apps")).ok();
    cluster
        .flux_apply(&helm_release("apps", "web", r#"{"replicas":2}"#))
        .ok();
    chart_status(&cluster, "apps", "web", "1.2.3");
    helm_apply(
        &cluster,
        &owned_configmap("apps", "web-config", "web", "info"),
    )
    .ok();

    let proxy = Proxy::start(upstream(&cluster));
    let kubeconfig = kubeconfig_through(&cluster, &proxy);
    let webhook = Webhook::start_with_kubeconfig(&cluster, "mode: enforce\n", &kubeconfig, &[]);
    let (body, lines) = degraded(&webhook);
    assert_eq!(body["ready"], true, "{body}");
    assert!(lines.is_empty(), "{body}");
    assert_eq!(
        metric_line(
            &webhook,
            r#"gitops_guard_cache_degraded{cache="HelmRelease"}"#
        )
        .as_deref(),
        Some(r#"gitops_guard_cache_degraded{cache="HelmRelease"} 0"#)
    );
    assert_eq!(
        person_deletes(&cluster, "apps", "web-config"),
        managed_message("apps", "web-config", "web", "chart web@1.2.3")
    );

    proxy.cut();
    // Still ready (200), and saying which caches are degraded and why.
    let lines = eventually(
        "the HelmRelease cache reported degraded",
        Duration::from_secs(30),
        || {
            let (body, lines) = degraded(&webhook);
            match lines.iter().find(|l| l.starts_with(HELM_DEGRADED)) {
                Some(_) if body["ready"] == true => Ok(lines),
                _ => Err(body.to_string()),
            }
        },
    );
    let helm = lines.iter().find(|l| l.starts_with(HELM_DEGRADED)).unwrap();
    let why = helm
        .split_once("): ")
        .map(|(_, why)| why)
        .unwrap_or_default();
    let why = why.to_lowercase();
    assert!(
        why.contains("watch") && (why.contains("connect") || why.contains("closed")),
        "why: {helm}"
    );
    for kind in [
        "Namespace (v1)",
        "Kustomization (kustomize.toolkit.fluxcd.io/v1)",
    ] {
        eventually(&format!("{kind} degraded"), Duration::from_secs(30), || {
            let (body, lines) = degraded(&webhook);
            lines
                .iter()
                .any(|l| l.starts_with(&format!("the {kind} cache is degraded")))
                .then_some(())
                .ok_or_else(|| body.to_string())
        });
    }
    assert_eq!(
        metric_line(
            &webhook,
            r#"gitops_guard_cache_degraded{cache="HelmRelease"}"#
        )
        .as_deref(),
        Some(r#"gitops_guard_cache_degraded{cache="HelmRelease"} 1"#)
    );
    let errors = metric_line(
        &webhook,
        r#"gitops_guard_cache_watch_errors_total{cache="HelmRelease"}"#,
    )
    .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
    assert!(errors.is_some_and(|n| n >= 1), "{errors:?}");

    // Decisions go on from the last synced state: a person's delete is denied as before, and
    // their edit too (the webhook cannot read the live object now: denied, naming it); the
    // agent's change is allowed.
    assert_eq!(
        person_deletes(&cluster, "apps", "web-config"),
        managed_message("apps", "web-config", "web", "chart web@1.2.3")
    );
    let out = cluster.kubectl(
        User::Developer,
        &["label", "configmap/web-config", "-n", "apps", "team=x"],
    );
    assert!(out.denied().contains("web-config"), "{out}");
    helm_apply(
        &cluster,
        &owned_configmap("apps", "web-config", "web", "debug"),
    )
    .ok();
    // A new release while the webhook cannot watch: the cache learns it once restored.
    chart_status(&cluster, "apps", "web", "1.3.0");
    let (body, _) = degraded(&webhook);
    assert_eq!(body["ready"], true, "{body}");

    proxy.restore();
    eventually(
        "nothing degraded after the proxy is restored",
        Duration::from_secs(90),
        || {
            let (body, lines) = degraded(&webhook);
            lines
                .is_empty()
                .then_some(())
                .ok_or_else(|| body.to_string())
        },
    );
    eventually("the metric cleared", Duration::from_secs(5), || {
        let line = metric_line(
            &webhook,
            r#"gitops_guard_cache_degraded{cache="HelmRelease"}"#,
        );
        (line.as_deref() == Some(r#"gitops_guard_cache_degraded{cache="HelmRelease"} 0"#))
            .then_some(())
            .ok_or_else(|| format!("{line:?}"))
    });
    // What changed meanwhile reached the cache.
    eventually(
        "the new release in the denial",
        Duration::from_secs(10),
        || {
            let message = person_deletes(&cluster, "apps", "web-config");
            (message == managed_message("apps", "web-config", "web", "chart web@1.3.0"))
                .then_some(())
                .ok_or(message)
        },
    );
    cluster
        .kubectl(
            User::Admin,
            &[
                "get",
                "configmap/web-config",
                "-n",
                "apps",
                "-o",
                "jsonpath={.data.LOG_LEVEL}",
            ],
        )
        .ok();
    assert!(!webhook.log().contains("panicked"), "{}", webhook.log());
}

/// Lists nested `depth` deep around `1`, as Helm values `{"deep": ...}` (lists: v1.20's
/// managedFields bookkeeping takes time exponential in the depth of nested maps).
fn deep_values(depth: usize) -> String {
    format!(r#"{{"deep":{}1{}}}"#, "[".repeat(depth), "]".repeat(depth))
}

#[test]
fn owners_with_deeply_nested_values_neither_stop_the_caches_nor_the_guard() {
    let cluster = Cluster::start();
    cluster.install_crds();
    cluster.bootstrap();
    cluster
        .kubectl(User::Admin, &["create", "namespace", "deep"])
        .ok();
    cluster.flux_apply(&charts("deep")).ok();
    for (name, depth) in [("web", 200), ("big", 5_000)] {
        cluster
            .flux_apply(&helm_release("deep", name, &deep_values(depth)))
            .ok();
        chart_status(&cluster, "deep", name, "1.0.0");
    }
    let depth = cluster
        .kubectl(
            User::Admin,
            &["get", "helmrelease/big", "-n", "deep", "-o", "json"],
        )
        .ok()
        .stdout
        .matches('[')
        .count();
    assert!(depth >= 5_000, "the API server kept {depth} levels");

    // It becomes ready (its HelmRelease cache syncs) ...
    let webhook = Webhook::start(&cluster, "mode: enforce\n");
    // ... and holds both releases: their agent may install objects for them (only for owners that
    // trace back to a root, which needs the owner cached), and a person may not change those.
    for release in ["web", "big"] {
        let cm = format!("{release}-config");
        helm_apply(&cluster, &owned_configmap("deep", &cm, release, "info")).ok();
        assert_eq!(
            person_deletes(&cluster, "deep", &cm),
            managed_message("deep", &cm, release, "chart web@1.0.0")
        );
    }
    // One created while the webhook runs reaches the cache by its watch event.
    cluster
        .flux_apply(&helm_release("deep", "late", &deep_values(5_000)))
        .ok();
    eventually("the late release cached", Duration::from_secs(20), || {
        let out = helm_apply(
            &cluster,
            &owned_configmap("deep", "late-config", "late", "info"),
        );
        out.success().then_some(()).ok_or_else(|| out.to_string())
    });
    chart_status(&cluster, "deep", "late", "2.0.0");
    eventually(
        "the late release's revision cached",
        Duration::from_secs(10),
        || {
            let message = person_deletes(&cluster, "deep", "late-config");
            (message == managed_message("deep", "late-config", "late", "chart web@2.0.0"))
                .then_some(())
                .ok_or(message)
        },
    );

    let (body, lines) = degraded(&webhook);
    assert!(body["ready"] == true && lines.is_empty(), "{body}");
    assert_eq!(
        metric_line(
            &webhook,
            r#"gitops_guard_cache_watch_errors_total{cache="HelmRelease"}"#
        ),
        None,
        "{}",
        webhook.log()
    );
    assert!(!webhook.log().contains("panicked"), "{}", webhook.log());
}
