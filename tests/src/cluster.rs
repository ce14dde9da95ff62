//! A local control plane (`scripts/local-cluster.sh`) and kubectl against it.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::command::{Out, run};

/// How long one kubectl invocation may take before it is killed (and the test fails).
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(120);
/// `up` may have to build kube-apiserver first (about 15 minutes on 2 cores).
/// Starts of a local cluster tried when a port it picked was taken meanwhile.
const UP_ATTEMPTS: u32 = 3;
const UP_TIMEOUT: Duration = Duration::from_secs(45 * 60);
const DOWN_TIMEOUT: Duration = Duration::from_secs(60);

/// The users of the local cluster (tokens in `DIR/tokens.csv`, kubeconfigs in `DIR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum User {
    /// `admin`, group `system:masters`.
    Admin,
    /// A human developer: `ana`, group `developers`, bound to `cluster-admin`.
    Developer,
    /// A CI pipeline: `ci-bot`, group `ci`, bound to `cluster-admin`.
    CiBot,
}

impl User {
    /// The username the apiserver sees.
    pub fn name(self) -> &'static str {
        match self {
            User::Admin => "admin",
            User::Developer => "ana",
            User::CiBot => "ci-bot",
        }
    }

    fn kubeconfig_file(self) -> &'static str {
        match self {
            User::Admin => "admin.kubeconfig",
            User::Developer => "developer.kubeconfig",
            User::CiBot => "ci-bot.kubeconfig",
        }
    }
}

pub(crate) fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The cargo target profile directory this test executable was built into (`target/debug`), where
/// `cargo build --workspace --bins` puts `gitops-guard-webhook` and `kubectl-gitops`.
pub fn target_profile_dir() -> PathBuf {
    let exe =
        std::env::current_exe().unwrap_or_else(|e| panic!("cannot find the test executable: {e}"));
    let dir = exe.parent().unwrap_or(Path::new("."));
    // Test executables live in target/<profile>/deps; binaries in target/<profile>.
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// `$PATH` with the target profile dir first, so `kubectl gitops` runs this build's plugin.
pub fn build_path() -> OsString {
    let mut path = vec![target_profile_dir()];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(path).unwrap_or_else(|e| panic!("cannot build PATH: {e}"))
}

/// The kubectl to run: `$KUBECTL` or `kubectl` on PATH.
pub fn kubectl_program() -> OsString {
    std::env::var_os("KUBECTL").unwrap_or_else(|| "kubectl".into())
}

/// Minor version of the kubectl client (`32` for v1.32.4).
fn kubectl_minor() -> u32 {
    static MINOR: OnceLock<u32> = OnceLock::new();
    *MINOR.get_or_init(|| {
        let mut cmd = Command::new(kubectl_program());
        cmd.args(["version", "--client", "-o", "json"]);
        let out = run(cmd, None, KUBECTL_TIMEOUT);
        out.ok();
        let minor = out.json()["clientVersion"]["minor"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        minor
            .trim_end_matches('+')
            .parse()
            .unwrap_or_else(|e| panic!("cannot read kubectl's minor version {minor:?}: {e}\n{out}"))
    })
}

/// Runs kubectl against one cluster directory. Shared by [`Cluster`] and the webhook handle.
#[derive(Debug, Clone)]
pub(crate) struct Kubectl {
    dir: PathBuf,
}

impl Kubectl {
    pub(crate) fn run<S: AsRef<OsStr>>(&self, user: User, args: &[S], stdin: Option<&str>) -> Out {
        self.run_with(&self.dir.join(user.kubeconfig_file()), &[], args, stdin)
    }

    /// kubectl with `kubeconfig` and extra environment `vars`.
    pub(crate) fn run_with<S: AsRef<OsStr>>(
        &self,
        kubeconfig: &Path,
        vars: &[(&str, &OsStr)],
        args: &[S],
        stdin: Option<&str>,
    ) -> Out {
        let mut cmd = Command::new(kubectl_program());
        // The kubeconfig comes from the environment, not `--kubeconfig`: kubectl refuses flags in
        // front of a plugin name, and plugins (`kubectl gitops ...`) read KUBECONFIG too.
        // `kubectl gitops` finds kubectl-gitops from this build first.
        cmd.args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("KUBECACHEDIR", self.dir.join("kubectl-cache"))
            .env("PATH", build_path());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        run(cmd, stdin, KUBECTL_TIMEOUT)
    }
}

/// A running etcd + kube-apiserver (v1.20.2) on loopback ports, state in a temp dir. Dropping it
/// stops every process of it (`local-cluster.sh down`).
#[derive(Debug)]
pub struct Cluster {
    kubectl: Kubectl,
    // `down` removes the directory; this only cleans up if `up` failed.
    _tmp: tempfile::TempDir,
}

impl Cluster {
    /// Runs `scripts/local-cluster.sh up` in a fresh temp dir (about 4 s; builds kube-apiserver
    /// first if it is not cached yet). Panics with the script's output if the cluster does not come up.
    ///
    /// The script picks free ports by binding and releasing them; a test running beside it may
    /// take one before etcd or kube-apiserver binds it. Such a start ("address already in use") is
    /// tried again in a fresh dir with fresh ports, up to [`UP_ATTEMPTS`] times.
    pub fn start() -> Cluster {
        let mut attempt = 1;
        loop {
            let tmp = tempfile::Builder::new()
                .prefix("gitops-guard-cluster.")
                .tempdir()
                .unwrap_or_else(|e| panic!("cannot create a temp dir for the cluster: {e}"));
            // `up` takes the empty dir; `down` removes it (so even the watchdog leaves nothing behind).
            let dir = tmp.path().to_path_buf();
            let script = repo_root().join("scripts/local-cluster.sh");
            let mut cmd = Command::new("bash");
            cmd.arg(&script)
                .arg("up")
                .arg(&dir)
                .env("GG_CLUSTER_OWNER_PID", std::process::id().to_string())
                .env("KUBECTL", kubectl_program());
            let out = run(cmd, None, UP_TIMEOUT);
            if out.success() {
                return Cluster {
                    kubectl: Kubectl { dir },
                    _tmp: tmp,
                };
            }
            if attempt >= UP_ATTEMPTS || !out.to_string().contains("address already in use") {
                panic!("the local cluster did not start:\n{out}");
            }
            let mut down = Command::new("bash");
            down.arg(&script).arg("down").arg(&dir);
            run(down, None, UP_TIMEOUT);
            attempt += 1;
        }
    }

    /// The cluster directory (`DIR` of `local-cluster.sh`).
    /// A kubeconfig acting as `user` in `groups` (the admin's token, impersonating), written
    /// beside the cluster's own.
    pub fn impersonating_kubeconfig(&self, user: &str, groups: &[&str]) -> PathBuf {
        let admin = std::fs::read_to_string(self.kubeconfig(User::Admin))
            .unwrap_or_else(|e| panic!("cannot read the admin kubeconfig: {e}"));
        let token_line = admin
            .lines()
            .find(|l| l.trim_start().starts_with("token:"))
            .unwrap_or_else(|| panic!("the admin kubeconfig has no token"));
        let indent = &token_line[..token_line.len() - token_line.trim_start().len()];
        let text = admin.replace(
            token_line,
            &format!(
                "{token_line}\n{indent}as: {user}\n{indent}as-groups: [{}]",
                groups.join(", ")
            ),
        );
        let first = groups.first().copied().unwrap_or("nogroup");
        let path = self.dir().join(format!("{user}-{first}.kubeconfig"));
        std::fs::write(&path, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    pub fn dir(&self) -> &Path {
        &self.kubectl.dir
    }

    pub fn kubeconfig(&self, user: User) -> PathBuf {
        self.dir().join(user.kubeconfig_file())
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.dir().join("pki/ca.crt")
    }

    pub fn ca_key(&self) -> PathBuf {
        self.dir().join("pki/ca.key")
    }

    /// `https://127.0.0.1:PORT` of the apiserver.
    pub fn server(&self) -> String {
        let env = std::fs::read_to_string(self.dir().join("env"))
            .unwrap_or_else(|e| panic!("cannot read {}/env: {e}", self.dir().display()));
        env.lines()
            .find_map(|line| line.strip_prefix("export GG_APISERVER="))
            .unwrap_or_else(|| panic!("no GG_APISERVER in {}/env", self.dir().display()))
            .to_owned()
    }

    pub(crate) fn kubectl_handle(&self) -> Kubectl {
        self.kubectl.clone()
    }

    /// Runs the real kubectl as `user` (KUBECONFIG set to the user's kubeconfig; the build's
    /// target dir first on PATH so `kubectl gitops` runs this checkout's plugin).
    pub fn kubectl(&self, user: User, args: &[&str]) -> Out {
        self.kubectl.run(user, args, None)
    }

    /// Like [`Cluster::kubectl`], with `stdin` as standard input (`apply -f -`).
    pub fn kubectl_stdin(&self, user: User, args: &[&str], stdin: &str) -> Out {
        self.kubectl.run(user, args, Some(stdin))
    }

    /// kubectl (or `kubectl gitops`) with another kubeconfig (e.g. one that impersonates) and extra
    /// environment variables (`KUBE_EDITOR`, `TMPDIR`, tokens).
    pub fn kubectl_with(&self, kubeconfig: &Path, vars: &[(&str, &OsStr)], args: &[&str]) -> Out {
        self.kubectl.run_with(kubeconfig, vars, args, None)
    }

    /// Like [`Cluster::kubectl_with`], with `stdin` as standard input.
    pub fn kubectl_with_stdin(
        &self,
        kubeconfig: &Path,
        vars: &[(&str, &OsStr)],
        args: &[&str],
        stdin: &str,
    ) -> Out {
        self.kubectl.run_with(kubeconfig, vars, args, Some(stdin))
    }

    /// A kubeconfig that authenticates with a client certificate for `common_name` in the
    /// `groups` (its organisations), signed by the cluster CA: how a user the apiserver knows only
    /// by certificate reaches it. Written to `DIR/<file_name>.kubeconfig` (key and certificate
    /// beside it).
    pub fn cert_kubeconfig(&self, file_name: &str, common_name: &str, groups: &[&str]) -> PathBuf {
        let dir = self.dir().join("client-certs");
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let (cert, key) = (
            dir.join(format!("{file_name}.crt")),
            dir.join(format!("{file_name}.key")),
        );
        crate::pki::issue_client_cert(
            &self.ca_cert(),
            &self.ca_key(),
            common_name,
            groups,
            &cert,
            &key,
        );
        let read = |p: &Path| {
            std::fs::read(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
        };
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {file_name}\n  user:\n    client-certificate-data: {crt}\n    client-key-data: {key}\ncontexts:\n- name: {file_name}@local\n  context:\n    cluster: local\n    user: {file_name}\ncurrent-context: {file_name}@local\n",
            server = self.server(),
            ca = crate::pki::base64(&read(&self.ca_cert())),
            crt = crate::pki::base64(&read(&cert)),
            key = crate::pki::base64(&read(&key)),
        );
        let path = self.dir().join(format!("{file_name}.kubeconfig"));
        std::fs::write(&path, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// kubectl as the admin impersonating `impersonate` (`--as=...`, e.g.
    /// `system:serviceaccount:flux-system:kustomize-controller`). Every service account is bound to
    /// cluster-admin, so only the guard can stop them.
    pub fn kubectl_as(&self, impersonate: &str, args: &[&str]) -> Out {
        self.kubectl
            .run(User::Admin, &with_as(impersonate, args), None)
    }

    /// Like [`Cluster::kubectl_as`], with `stdin` as standard input.
    pub fn kubectl_as_stdin(&self, impersonate: &str, args: &[&str], stdin: &str) -> Out {
        self.kubectl
            .run(User::Admin, &with_as(impersonate, args), Some(stdin))
    }

    /// Applies the CRDs in `tests/fixtures/crds` (Flux sources, Kustomization, HelmRelease, image
    /// automation, ArtifactGenerator, notification Alert/Provider/Receiver; Argo CD Application, ApplicationSet, AppProject: minimal
    /// copies of the upstream CRDs, see `scripts/check-crd-fixtures.py`) and waits until they are
    /// Established.
    pub fn install_crds(&self) {
        self.install_crds_except(&[]);
    }

    /// Like [`Cluster::install_crds`], leaving out the fixture files named in `skip` (e.g.
    /// `flux-imageupdateautomation.yaml`), so the controller of a left-out kind counts as not
    /// installed.
    pub fn install_crds_except(&self, skip: &[&str]) {
        let dir = repo_root().join("tests/fixtures/crds");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let name = path.file_name()?.to_str()?.to_owned();
                (name.ends_with(".yaml") && !skip.contains(&name.as_str()))
                    .then(|| path.to_str().map(str::to_owned))
                    .flatten()
            })
            .collect();
        files.sort();
        for name in skip {
            if !dir.join(name).is_file() {
                panic!(
                    "install_crds_except: no fixture {name} in {}",
                    dir.display()
                );
            }
        }
        self.establish_crds(&files);
    }

    /// The made-up kinds of `tests/fixtures/test-crds` (Widgets keep `status` as an ordinary
    /// field, Gadgets have a status subresource), installed and established.
    pub fn install_test_crds(&self) {
        let dir = repo_root().join("tests/fixtures/test-crds");
        let dir = dir
            .to_str()
            .unwrap_or_else(|| panic!("{} is not UTF-8", dir.display()))
            .to_owned();
        self.establish_crds(&[dir]);
    }

    /// Applies CRD files (or directories) as the admin and waits until they are established.
    fn establish_crds(&self, files: &[String]) {
        let mut apply = vec!["apply"];
        let mut wait = vec!["wait", "--for=condition=established", "--timeout=60s"];
        for file in files {
            apply.extend(["-f", file.as_str()]);
            wait.extend(["-f", file.as_str()]);
        }
        self.kubectl(User::Admin, &apply).ok();
        self.kubectl(User::Admin, &wait).ok();
    }

    /// Merges `patch` (a JSON merge patch of the status, e.g. `{"lastAppliedRevision": "main@sha1:..."}`)
    /// into the status subresource of `resource/name` in `namespace` as `user` — what a controller
    /// does; a plain apply or edit ignores `status` on resources with a status subresource.
    /// `resource` is the plural resource name, optionally with its group (`kustomizations`,
    /// `kustomizations.kustomize.toolkit.fluxcd.io`). Uses `kubectl patch --subresource=status`
    /// with kubectl >= 1.24, otherwise GET + `kubectl replace --raw .../status`.
    pub fn patch_status(
        &self,
        user: User,
        resource: &str,
        namespace: &str,
        name: &str,
        patch: &str,
    ) -> Out {
        self.patch_status_with(
            &|args, stdin| self.kubectl.run(user, args, stdin),
            resource,
            namespace,
            name,
            patch,
        )
    }

    /// Like [`Cluster::patch_status`], as the admin impersonating `impersonate` (a controller's
    /// service account, e.g. `system:serviceaccount:flux-system:kustomize-controller`).
    pub fn patch_status_as(
        &self,
        impersonate: &str,
        resource: &str,
        namespace: &str,
        name: &str,
        patch: &str,
    ) -> Out {
        self.patch_status_with(
            &|args, stdin| {
                self.kubectl
                    .run(User::Admin, &with_as(impersonate, args), stdin)
            },
            resource,
            namespace,
            name,
            patch,
        )
    }

    fn patch_status_with(
        &self,
        kubectl: &dyn Fn(&[&str], Option<&str>) -> Out,
        resource: &str,
        namespace: &str,
        name: &str,
        patch: &str,
    ) -> Out {
        let status: serde_json::Value = serde_json::from_str(patch)
            .unwrap_or_else(|e| panic!("status patch is not JSON ({e}): {patch}"));
        if kubectl_minor() >= 24 {
            let patch = serde_json::json!({ "status": status }).to_string();
            return kubectl(
                &[
                    "patch",
                    resource,
                    name,
                    "-n",
                    namespace,
                    "--subresource=status",
                    "--type=merge",
                    "-p",
                    &patch,
                ],
                None,
            );
        }
        let get = kubectl(
            &["get", resource, name, "-n", namespace, "-o", "json"],
            None,
        );
        if !get.success() {
            return get;
        }
        let mut object = get.json();
        let api_version = object["apiVersion"].as_str().unwrap_or_default().to_owned();
        let api = if api_version.contains('/') {
            "apis"
        } else {
            "api"
        };
        let plural = resource.split('.').next().unwrap_or(resource);
        let path = format!("/{api}/{api_version}/namespaces/{namespace}/{plural}/{name}/status");
        merge_patch(&mut object["status"], &status);
        kubectl(
            &["replace", "--raw", &path, "-f", "-"],
            Some(&object.to_string()),
        )
    }

    /// The apiserver's audit log so far (`DIR/audit.log`: level Metadata, writes only), one JSON
    /// event per entry. Webhook audit annotations show up as
    /// `annotations["guard.gitops-guard.dev/<key>"]`.
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        let path = self.dir().join("audit.log");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut cmd = Command::new("bash");
        cmd.arg(repo_root().join("scripts/local-cluster.sh"))
            .arg("down")
            .arg(self.dir());
        let out = run(cmd, None, DOWN_TIMEOUT);
        if !out.success() {
            // No panic in drop (it may run while unwinding); the watchdog still stops it.
            eprintln!("gitops-guard-tests: stopping the local cluster failed:\n{out}");
        }
    }
}

/// `args` with `--as=<user>` added before a `--` (or at the end), so it also reaches plugins.
fn with_as(impersonate: &str, args: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let at = args.iter().position(|a| *a == "--").unwrap_or(args.len());
    all.insert(at, format!("--as={impersonate}"));
    all
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    let serde_json::Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = serde_json::Value::Object(serde_json::Map::new());
    }
    if let serde_json::Value::Object(map) = target {
        for (key, value) in fields {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_patch(
                    map.entry(key.clone()).or_insert(serde_json::Value::Null),
                    value,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn impersonation_goes_before_a_double_dash() {
        assert_eq!(
            with_as("bob", &["get", "pods"]),
            ["get", "pods", "--as=bob"]
        );
        assert_eq!(
            with_as("bob", &["exec", "p", "--", "ls", "-l"]),
            ["exec", "p", "--as=bob", "--", "ls", "-l"]
        );
    }

    #[test]
    fn merge_patch_follows_rfc7386() {
        let mut target = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut target, &json!({"a": "z", "c": {"f": null}, "n": [1]}));
        assert_eq!(target, json!({"a": "z", "c": {"d": "e"}, "n": [1]}));
        let mut missing = serde_json::Value::Null;
        merge_patch(&mut missing, &json!({"x": 1}));
        assert_eq!(missing, json!({"x": 1}));
    }
}
