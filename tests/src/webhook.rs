//! The `gitops-guard-webhook` binary, running and registered with a local cluster.

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, Kubectl, User, target_profile_dir};
use crate::http;
use crate::pki;

/// The webhook name the apiserver shows in denials.
pub const WEBHOOK_NAME: &str = "guard.gitops-guard.dev";
/// Name of the ValidatingWebhookConfiguration the harness registers.
const CONFIGURATION: &str = "gitops-guard";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
const PROBE_WEBHOOK: &str = "probe.gitops-guard.dev";
/// How many times [`Webhook::start`] starts the binary when its ports were taken.
pub const START_ATTEMPTS: u32 = 3;

/// Why a started webhook did not become ready.
#[derive(Debug)]
struct NotReady {
    /// It exited (rather than not answering in time).
    exited: bool,
    message: String,
}

/// The API groups of the GitOps owner and source kinds (Flux and Argo CD), whose status
/// subresource is routed to the guard too (as the chart's `gitops-guard.custodyGroups`).
pub const CUSTODY_GROUPS: [&str; 6] = [
    "source.toolkit.fluxcd.io",
    "source.extensions.fluxcd.io",
    "kustomize.toolkit.fluxcd.io",
    "helm.toolkit.fluxcd.io",
    "image.toolkit.fluxcd.io",
    "argoproj.io",
];

/// A running `gitops-guard-webhook`, registered as ValidatingWebhookConfiguration `gitops-guard`
/// (webhook `guard.gitops-guard.dev`, every group/version, resources `*`, `*/scale` and `*/status`
/// (the chart routes the status of objects with ownership labels and of the GitOps owner and source
/// groups ([`CUSTODY_GROUPS`]); no controller writes status in the test cluster), CREATE/UPDATE/DELETE,
/// the Pod subresources and a StatefulSet's status, as the chart's neighbours entry routes them, and a
/// Namespace's `finalize` (which keeps its metadata), as the chart routes it,
/// failurePolicy Fail, timeout 5 s). Like the Helm chart on Kubernetes 1.20, it excludes no
/// namespace by label (`kubernetes.io/metadata.name` is an ordinary label before 1.21): the guard
/// leaves kube-system alone by name (config `excludedNamespaces`). Dropping it deregisters it (and
/// waits until the apiserver stops calling it), then kills it.
///
/// One at a time per cluster: they share the configuration's name.
#[derive(Debug)]
pub struct Webhook {
    child: Child,
    kubectl: Kubectl,
    dir: PathBuf,
    pid_file: PathBuf,
    port: u16,
    probe_port: u16,
    ca_cert: PathBuf,
    ca_key: PathBuf,
}

fn webhook_binary() -> PathBuf {
    let bin = target_profile_dir().join("gitops-guard-webhook");
    if !bin.is_file() {
        panic!(
            "{} does not exist: run `cargo build --workspace --bins` first (scripts/test-all does)",
            bin.display()
        );
    }
    bin
}

fn read_log(path: &Path) -> String {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

impl Webhook {
    /// Writes `config_yaml` as the config file, issues a serving cert for 127.0.0.1 signed by the
    /// cluster CA, starts the binary (`--kubeconfig` = admin, listeners on free loopback ports),
    /// waits for `/readyz`, registers it and waits until the apiserver calls it.
    ///
    /// Install CRDs first ([`Cluster::install_crds`]) if the webhook's caches need them to sync.
    pub fn start(cluster: &Cluster, config_yaml: &str) -> Webhook {
        Webhook::start_with_args(cluster, config_yaml, &[])
    }

    /// [`Webhook::start`] with more command-line arguments for the binary (e.g. `--client-ca`).
    pub fn start_with_args(cluster: &Cluster, config_yaml: &str, args: &[&OsStr]) -> Webhook {
        Webhook::start_with_kubeconfig(cluster, config_yaml, &cluster.kubeconfig(User::Admin), args)
    }

    /// [`Webhook::start_with_args`] with the webhook's own `--kubeconfig` (e.g. one whose server is
    /// a proxy in front of the API server, to cut its watches); it is registered as before.
    ///
    /// The ports are picked by binding and releasing them; a process running beside the test
    /// may take one first. Such a start (the binary exits with "Address already in use") is
    /// tried again with fresh ports, up to [`START_ATTEMPTS`] times.
    pub fn start_with_kubeconfig(
        cluster: &Cluster,
        config_yaml: &str,
        kubeconfig: &Path,
        args: &[&OsStr],
    ) -> Webhook {
        let mut attempt = 1;
        loop {
            let mut webhook = Webhook::spawn(cluster, config_yaml, kubeconfig, args);
            match webhook.wait_ready() {
                Ok(()) => {
                    webhook.register();
                    return webhook;
                }
                Err(NotReady { exited, message })
                    if exited
                        && attempt < START_ATTEMPTS
                        && message.contains("Address already in use") =>
                {
                    attempt += 1;
                }
                Err(NotReady { message, .. }) => panic!("{message}"),
            }
        }
    }

    /// Starts the binary on fresh ports (not waiting for it, not registering it).
    fn spawn(cluster: &Cluster, config_yaml: &str, kubeconfig: &Path, args: &[&OsStr]) -> Webhook {
        let bin = webhook_binary();
        let [port, probe_port] = http::free_ports::<2>();
        let dir = cluster.dir().join(format!("webhook-{probe_port}"));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let config = dir.join("config.yaml");
        std::fs::write(&config, config_yaml)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
        pki::issue_serving_cert(&cluster.ca_cert(), &cluster.ca_key(), &cert, &key);

        let log_path = dir.join("webhook.log");
        let log = File::create(&log_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
        let log_too = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot reopen {}: {e}", log_path.display()));
        let mut cmd = Command::new(&bin);
        cmd.arg("--config")
            .arg(&config)
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--probe-listen")
            .arg(format!("127.0.0.1:{probe_port}"))
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--log-format")
            .arg("text")
            .args(args);
        for var in [
            "GITOPS_GUARD_CONFIG",
            "GITOPS_GUARD_TLS_CERT",
            "GITOPS_GUARD_TLS_KEY",
            "GITOPS_GUARD_LISTEN",
            "GITOPS_GUARD_PROBE_LISTEN",
            "GITOPS_GUARD_LOG_FORMAT",
            "KUBECONFIG",
        ] {
            cmd.env_remove(var);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_too)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        // local-cluster.sh down stops it too, should this process die without dropping it.
        let pid_file = cluster.dir().join(format!("webhook-{probe_port}.pid"));
        let _ = std::fs::write(&pid_file, child.id().to_string());

        Webhook {
            child,
            kubectl: cluster.kubectl_handle(),
            dir,
            pid_file,
            port,
            probe_port,
            ca_cert: cluster.ca_cert(),
            ca_key: cluster.ca_key(),
        }
    }

    /// Path of the config file (rewrite it to test reloading).
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.yaml")
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("tls.crt")
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.join("tls.key")
    }

    /// The TLS listener's port (`https://127.0.0.1:PORT/validate`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The plain-HTTP probe port (`/healthz`, `/readyz`, `/metrics`).
    pub fn probe_port(&self) -> u16 {
        self.probe_port
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the webhook wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        read_log(&self.dir.join("webhook.log"))
    }

    /// `GET /metrics` on the probe port (Prometheus text); panics unless it answers 200.
    pub fn metrics(&self) -> String {
        self.get("/metrics")
    }

    /// `GET path` on the probe port: the body; panics unless it answers 200.
    pub fn get(&self, path: &str) -> String {
        match http::get(self.probe_port, path) {
            Ok(r) if r.status == 200 => r.body,
            Ok(r) => panic!(
                "GET {path} on the webhook's probe port: HTTP {}\n{}",
                r.status, r.body
            ),
            Err(e) => panic!(
                "GET {path} on the webhook's probe port: {e}\nwebhook log:\n{}",
                self.log()
            ),
        }
    }

    /// Issues a fresh key + certificate (same CA) over the files the webhook was started with
    /// (each replaced atomically by rename, key first). Returns the new certificate's SHA-256
    /// fingerprint; compare with [`Webhook::served_cert_fingerprint`].
    pub fn rotate_cert(&self) -> String {
        pki::issue_serving_cert(
            &self.ca_cert,
            &self.ca_key,
            &self.cert_path(),
            &self.key_path(),
        );
        let pem = std::fs::read_to_string(self.cert_path())
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", self.cert_path().display()));
        pki::fingerprint(&pem)
    }

    /// SHA-256 fingerprint of the certificate the TLS listener presents right now.
    pub fn served_cert_fingerprint(&self) -> String {
        pki::fingerprint(&pki::served_cert(self.port))
    }

    /// Exit status if the process has exited.
    pub fn try_exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn wait_ready(&mut self) -> Result<(), NotReady> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.try_exit_status() {
                return Err(NotReady {
                    exited: true,
                    message: format!(
                        "gitops-guard-webhook exited ({status}) before it was ready; its log:\n{}",
                        self.log()
                    ),
                });
            }
            let last = match http::get(self.probe_port, "/readyz") {
                Ok(r) if r.status == 200 => return Ok(()),
                Ok(r) => format!("HTTP {}: {}", r.status, r.body.trim()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(NotReady {
                    exited: false,
                    message: format!(
                        "gitops-guard-webhook not ready after {READY_TIMEOUT:?} (last /readyz: {last}); its log:\n{}",
                        self.log()
                    ),
                });
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn ca_bundle(&self) -> String {
        let ca = std::fs::read(&self.ca_cert)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", self.ca_cert.display()));
        pki::base64(&ca)
    }

    fn register(&self) {
        let yaml = format!(
            r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: {CONFIGURATION}
webhooks:
- name: {WEBHOOK_NAME}
  clientConfig:
    url: https://127.0.0.1:{port}/validate
    caBundle: {ca}
  rules:
  - apiGroups: ["*"]
    apiVersions: ["*"]
    resources: ["*", "*/scale", "*/status"]
    operations: [CREATE, UPDATE, DELETE]
    scope: "*"
  - apiGroups: [{custody}]
    apiVersions: ["*"]
    resources: ["*/status"]
    operations: [CREATE, UPDATE, DELETE]
    scope: Namespaced
  - apiGroups: [""]
    apiVersions: ["*"]
    resources: ["namespaces/finalize"]
    operations: [UPDATE]
  - apiGroups: [""]
    apiVersions: ["*"]
    resources: ["pods/exec", "pods/attach", "pods/portforward"]
    operations: [CONNECT]
  - apiGroups: [""]
    apiVersions: ["*"]
    resources: ["pods/eviction", "pods/ephemeralcontainers", "pods/status"]
    operations: [CREATE, UPDATE]
  - apiGroups: [apps]
    apiVersions: ["*"]
    resources: ["statefulsets/status"]
    operations: [UPDATE]
  sideEffects: NoneOnDryRun
  admissionReviewVersions: [v1]
  failurePolicy: Fail
  timeoutSeconds: 5
"#,
            port = self.port,
            ca = self.ca_bundle(),
            custody = CUSTODY_GROUPS.join(", "),
        );
        self.kubectl
            .run(User::Admin, &["apply", "-f", "-"], Some(&yaml))
            .ok();
        if let Err(e) = sync_webhook_configurations(&self.kubectl, &self.ca_bundle()) {
            panic!("{e}\nwebhook log:\n{}", self.log());
        }
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let deleted = self.kubectl.run(
            User::Admin,
            &[
                "delete",
                "validatingwebhookconfiguration",
                CONFIGURATION,
                "--ignore-not-found",
                "--request-timeout=10s",
            ],
            None,
        );
        // If the cluster is already gone there is nothing to wait for.
        if deleted.success()
            && let Err(e) = sync_webhook_configurations(&self.kubectl, &self.ca_bundle())
        {
            eprintln!("gitops-guard-tests: {e}");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// Waits until the apiserver acts on every ValidatingWebhookConfiguration change made so far: the
/// apiserver loads them asynchronously, in order. A throw-away configuration whose webhook cannot be
/// reached rejects labelled dry-run ConfigMaps in kube-system once it is loaded — and then so is
/// every change before it.
///
/// The guard is registered for kube-system too (no label exclusion, see [`Webhook`]), so a probe
/// may reach both webhooks. The guard allows it (kube-system is excluded by name, and the probe is
/// an unmanaged ConfigMap), so only the unreachable webhook refuses it. Should the guard be gone
/// (killed) while still registered, its failure may be the one reported; the loop then goes on
/// until the probe webhook's own failure shows, and since configurations load in order, that
/// still means every earlier change (the guard's removal included) is in effect.
fn sync_webhook_configurations(kubectl: &Kubectl, ca_bundle: &str) -> Result<(), String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let token = format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let name = format!("gitops-guard-harness-sync-{token}");
    let configuration = format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: {name}
webhooks:
- name: {PROBE_WEBHOOK}
  clientConfig:
    url: https://127.0.0.1:1/unreachable
    caBundle: {ca_bundle}
  rules:
  - apiGroups: [""]
    apiVersions: [v1]
    resources: [configmaps]
    operations: [CREATE]
  objectSelector:
    matchLabels: {{gitops-guard.dev/harness-sync: "{token}"}}
  sideEffects: None
  admissionReviewVersions: [v1]
  failurePolicy: Fail
  timeoutSeconds: 1
"#
    );
    let probe = format!(
        r#"{{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": "harness-sync-{token}",
          "namespace": "kube-system", "labels": {{"gitops-guard.dev/harness-sync": "{token}"}}}}}}"#
    );
    let created = kubectl.run(User::Admin, &["create", "-f", "-"], Some(&configuration));
    if !created.success() {
        return Err(format!(
            "cannot create the sync webhook configuration:\n{created}"
        ));
    }
    let deadline = Instant::now() + SYNC_TIMEOUT;
    let result = loop {
        let out = kubectl.run(
            User::Admin,
            &["create", "--dry-run=server", "-f", "-"],
            Some(&probe),
        );
        if !out.success() && out.stderr.contains(PROBE_WEBHOOK) {
            break Ok(());
        }
        if Instant::now() >= deadline {
            break Err(format!(
                "the apiserver did not load webhook configuration changes within {SYNC_TIMEOUT:?}:\n{out}"
            ));
        }
        thread::sleep(Duration::from_millis(50));
    };
    // Only ever matches the labelled probe, so it need not be gone before we go on.
    let _ = kubectl.run(
        User::Admin,
        &[
            "delete",
            "validatingwebhookconfiguration",
            &name,
            "--wait=false",
            "--ignore-not-found",
        ],
        None,
    );
    result
}
