//! Benchmark (issue 13): `kubectl gitops diff -A` and `kubectl gitops audit -A -o json` over
//! 10,000 objects from 100 Flux Kustomizations against a 100,000-commit repository.
//!
//!     scripts/bench-diff            # builds the release plugin, then runs this
//!
//! The repository is `plugin/benches/support/synthetic.rs` with 100 tenant directories (cached in
//! `$HOME/.cache/gitops-guard/bench-repo-100000-10000-1-t100-packed`), cloned into a temp dir.
//! A local control plane (the test harness's `Cluster`) gets the Flux CRDs, one GitRepository
//! (`file://` the clone, artifact at the tip), 100 Kustomizations `tNN` with path
//! `./tenants/tNN`, status `lastAppliedRevision: main@sha1:<tip>`, Ready, and an inventory of
//! their 100 ConfigMaps each, and the 10,000 ConfigMaps applied server-side as
//! kustomize-controller applies them (the clone's tip content plus Flux's two labels). A person
//! then changes a few of them (`kubectl patch` as the developer), so the diff has work to show.
//!
//! Each command runs once to warm the plugin's discovery cache, then `BENCH_RUNS` (default 5)
//! timed runs with the clone as the working directory; it prints every run, the median and range,
//! and the peak RSS (`/usr/bin/time -f %M`), and checks the answers: object counts, the drifted
//! objects found, exit code 1, and a few objects' last commits against `git log -1`.
//! Sizes: `BENCH_COMMITS`, `BENCH_FILES`, `BENCH_TENANTS`. `BENCH_HOLD=1` sets everything up,
//! prints how to run the plugin against it (for a profiler) and waits for a stop file.

#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark code: a panic is how it fails

#[path = "../../plugin/benches/support/synthetic.rs"]
mod synthetic;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gitops_guard_tests::repo::{git, plugin_binary};
use gitops_guard_tests::{Cluster, User};
use serde_json::Value;

/// The objects a person changes: indexes into the generated files.
const DRIFTED: [usize; 5] = [0, 2_501, 5_002, 7_503, 9_999];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `tenants/t07/apps/app0107/service.yaml` → (`t07`, `app0107-service`).
fn tenant_and_name(path: &str) -> (String, String) {
    let parts: Vec<&str> = path.split('/').collect();
    let kind = parts[4].trim_end_matches(".yaml");
    (parts[1].to_string(), format!("{}-{kind}", parts[3]))
}

struct Timed {
    wall: Duration,
    peak_kib: u64,
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the plugin under `/usr/bin/time -f %M` (peak RSS in KiB on stderr's last line).
fn run_plugin(clone: &Path, cache: &Path, kubeconfig: &Path, args: &[&str]) -> Timed {
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-f")
        .arg("maxrss-kib %M")
        .arg(plugin_binary())
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .current_dir(clone)
        .env("XDG_CACHE_HOME", cache)
        .env("KUBECACHEDIR", cache.join("kube"))
        .env_remove("KUBECONFIG");
    let t = Instant::now();
    let out = cmd
        .output()
        .expect("run kubectl-gitops under /usr/bin/time");
    let wall = t.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let peak_kib = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("maxrss-kib "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Timed {
        wall,
        peak_kib,
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Runs one command warm-up + `runs` times, checks each answer, prints the figures.
fn measure(
    label: &str,
    runs: usize,
    go: &dyn Fn() -> Timed,
    check: &dyn Fn(&Timed),
) -> (Duration, u64) {
    let first = go();
    check(&first);
    eprintln!(
        "{label}: first run (discovery cache cold) {}, peak RSS {:.1} MiB",
        secs(first.wall),
        first.peak_kib as f64 / 1024.0
    );
    let mut walls = Vec::new();
    let mut peak = 0;
    for i in 0..runs {
        let t = go();
        check(&t);
        eprintln!(
            "{label}: run {} {}, peak RSS {:.1} MiB",
            i + 1,
            secs(t.wall),
            t.peak_kib as f64 / 1024.0
        );
        peak = peak.max(t.peak_kib);
        walls.push(t.wall);
    }
    let min = *walls.iter().min().unwrap();
    let max = *walls.iter().max().unwrap();
    let med = median(walls);
    println!(
        "{label:<28} median {} (range {} - {}, {runs} runs), peak RSS {:.1} MiB",
        secs(med),
        secs(min),
        secs(max),
        peak as f64 / 1024.0
    );
    (med, peak)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let params = synthetic::Params {
        commits: env_usize("BENCH_COMMITS", 100_000),
        files: env_usize("BENCH_FILES", 10_000),
        seed: 1,
        tenants: env_usize("BENCH_TENANTS", 100),
    };
    let runs = env_usize("BENCH_RUNS", 5).max(1);
    let t = Instant::now();
    let bare = synthetic::cached(&params);
    eprintln!(
        "repository: {} ({} commits, {} files, {} tenants; ready in {})",
        bare.display(),
        params.commits,
        params.files,
        params.tenants,
        secs(t.elapsed())
    );
    let tmp = tempfile::tempdir().expect("temp dir");
    let clone = tmp.path().join("fleet");
    let cache = tmp.path().join("cache");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            bare.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
        &[],
    );
    let tip = git(&clone, &["rev-parse", "HEAD"], &[]);
    let paths = synthetic::file_paths(&params);

    let t = Instant::now();
    let cluster = Cluster::start();
    cluster.install_crds();
    for ns in ["flux-system", "tenant"] {
        cluster
            .kubectl(User::Admin, &["create", "namespace", ns])
            .ok();
    }
    eprintln!("cluster up in {}", secs(t.elapsed()));

    // The owners: one source, one Kustomization per tenant directory.
    let t = Instant::now();
    let mut owners = format!(
        "apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {{name: fleet, namespace: flux-system}}
spec: {{url: \"file://{}\", ref: {{branch: main}}, interval: 1m}}
",
        clone.display()
    );
    for n in 0..params.tenants {
        owners.push_str(&format!(
            "---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {{name: t{n:02}, namespace: flux-system}}
spec: {{sourceRef: {{kind: GitRepository, name: fleet}}, interval: 10m, prune: true, path: ./tenants/t{n:02}}}
"
        ));
    }
    cluster
        .kubectl_stdin(User::Admin, &["apply", "-f", "-"], &owners)
        .ok();
    let revision = format!("main@sha1:{tip}");
    cluster
        .patch_status(
            User::Admin,
            "gitrepositories.source.toolkit.fluxcd.io",
            "flux-system",
            "fleet",
            &serde_json::json!({
                "artifact": {"revision": revision, "path": "x", "url": "http://x", "lastUpdateTime": "2026-01-01T00:00:00Z", "digest": "sha256:0"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded", "message": format!("stored artifact for revision '{revision}'"), "lastTransitionTime": "2026-01-01T00:00:00Z"}]
            })
            .to_string(),
        )
        .ok();
    let mut by_tenant: Vec<Vec<usize>> = vec![Vec::new(); params.tenants];
    for (i, p) in paths.iter().enumerate() {
        let (tenant, _) = tenant_and_name(p);
        let n: usize = tenant[1..].parse().unwrap();
        by_tenant[n].push(i);
    }
    for (n, files) in by_tenant.iter().enumerate() {
        let entries: Vec<Value> = files
            .iter()
            .map(|&i| {
                let (_, name) = tenant_and_name(&paths[i]);
                serde_json::json!({"id": format!("tenant_{name}__ConfigMap"), "v": "v1"})
            })
            .collect();
        cluster
            .patch_status(
                User::Admin,
                "kustomizations.kustomize.toolkit.fluxcd.io",
                "flux-system",
                &format!("t{n:02}"),
                &serde_json::json!({
                    "lastAppliedRevision": revision,
                    "lastAttemptedRevision": revision,
                    "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded", "message": format!("Applied revision: {revision}"), "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                    "inventory": {"entries": entries}
                })
                .to_string(),
            )
            .ok();
    }
    eprintln!(
        "{} owners with status in {}",
        params.tenants,
        secs(t.elapsed())
    );

    // The objects, as kustomize-controller applies them: one server-side apply per tenant, two
    // at a time.
    let t = Instant::now();
    let next = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let n = {
                        let mut g = next.lock().unwrap();
                        let n = *g;
                        *g += 1;
                        n
                    };
                    if n >= params.tenants {
                        break;
                    }
                    let mut docs = String::new();
                    for &i in &by_tenant[n] {
                        let text = std::fs::read_to_string(clone.join(&paths[i])).unwrap();
                        let labelled = text.replacen(
                            "metadata:\n",
                            &format!(
                                "metadata:\n  labels:\n    kustomize.toolkit.fluxcd.io/name: t{n:02}\n    kustomize.toolkit.fluxcd.io/namespace: flux-system\n"
                            ),
                            1,
                        );
                        docs.push_str("---\n");
                        docs.push_str(&labelled);
                    }
                    if docs.is_empty() {
                        continue;
                    }
                    cluster.flux_apply(&docs).ok();
                }
            });
        }
    });
    eprintln!("{} objects applied in {}", paths.len(), secs(t.elapsed()));
    // A person's changes.
    let drifted: Vec<String> = DRIFTED
        .iter()
        .filter(|&&i| i < paths.len())
        .map(|&i| tenant_and_name(&paths[i]).1)
        .collect();
    for name in &drifted {
        cluster
            .kubectl(
                User::Developer,
                &[
                    "patch",
                    "configmap",
                    name,
                    "-n",
                    "tenant",
                    "--type=merge",
                    "-p",
                    r#"{"data":{"revision":"changed by hand"}}"#,
                ],
            )
            .ok();
    }

    let objects = paths.len();
    let in_sync = objects - drifted.len();
    let kubeconfig = cluster.kubeconfig(User::Admin);
    if std::env::var_os("BENCH_HOLD").is_some() {
        // For profiling by hand: keep the cluster up until the stop file exists.
        let stop = tmp.path().join("stop");
        println!(
            "holding: cd {} && {} diff -A --kubeconfig {} (XDG_CACHE_HOME={}); touch {} to stop",
            clone.display(),
            plugin_binary().display(),
            kubeconfig.display(),
            cache.display(),
            stop.display()
        );
        while !stop.exists() {
            std::thread::sleep(Duration::from_secs(1));
        }
        return;
    }
    let load_before = load_average();
    println!();
    println!(
        "{objects} objects, {} owners, {} commits; plugin {}",
        params.tenants,
        params.commits,
        plugin_binary().display()
    );
    println!("load average before: {load_before}");

    let diff_summary = format!(
        "{objects} objects: {in_sync} in sync, {} drifted, 0 missing, 0 strays, 0 not compared, 0 errors",
        drifted.len()
    );
    let check_diff = |t: &Timed| {
        assert_eq!(t.code, 1, "diff -A exit code\n{}", t.stderr);
        let last = t.stdout.lines().last().unwrap_or_default();
        assert_eq!(last, diff_summary, "diff -A summary\n{}", t.stderr);
        let headers: Vec<&str> = t
            .stdout
            .lines()
            .filter(|l| l.starts_with("+++ live/"))
            .collect();
        assert_eq!(headers.len(), drifted.len(), "{headers:?}");
        for name in &drifted {
            assert!(
                headers.iter().any(|h| h.ends_with(&format!("/{name}"))),
                "{name} not in the diff: {headers:?}"
            );
        }
        assert!(t.stdout.contains("changed by hand"), "the drifted value");
    };
    let diff = || run_plugin(&clone, &cache, &kubeconfig, &["diff", "-A"]);
    let (diff_median, _) = measure("kubectl gitops diff -A", runs, &diff, &check_diff);

    // A few last commits, checked against git.
    let sample: Vec<usize> = [1usize, 3_333, 9_998]
        .into_iter()
        .filter(|&i| i < paths.len())
        .collect();
    let expected: Vec<(String, String)> = sample
        .iter()
        .map(|&i| {
            (
                tenant_and_name(&paths[i]).1,
                git(
                    &clone,
                    &["log", "-1", "--format=%H", "HEAD", "--", &paths[i]],
                    &[],
                ),
            )
        })
        .collect();
    let check_audit = |t: &Timed| {
        assert_eq!(t.code, 1, "audit -A exit code\n{}", t.stderr);
        let report: Value = serde_json::from_str(&t.stdout).expect("audit JSON");
        let s = &report["summary"];
        assert_eq!(s["managed"], objects, "{s}");
        assert_eq!(s["inSync"], in_sync, "{s}");
        assert_eq!(s["drifted"], drifted.len(), "{s}");
        assert_eq!(s["missing"], 0, "{s}");
        assert_eq!(s["strays"], 0, "{s}");
        assert_eq!(s["errors"], 0, "{s}");
        assert_eq!(s["owners"], params.tenants, "{s}");
        assert_eq!(s["ownersBehind"], 0, "{s}");
        let items = report["objects"].as_array().expect("objects");
        let found: Vec<&str> = items
            .iter()
            .filter(|o| o["state"] == "drift")
            .filter_map(|o| o["name"].as_str())
            .collect();
        let mut want: Vec<&str> = drifted.iter().map(String::as_str).collect();
        want.sort();
        let mut got = found.clone();
        got.sort();
        assert_eq!(got, want, "drifted objects in the audit");
        for (name, commit) in &expected {
            let o = items
                .iter()
                .find(|o| o["name"] == name.as_str())
                .unwrap_or_else(|| panic!("{name} not in the audit"));
            assert_eq!(
                o["lastCommit"]["id"],
                commit.as_str(),
                "last commit of {name}"
            );
        }
    };
    let audit = || run_plugin(&clone, &cache, &kubeconfig, &["audit", "-A", "-o", "json"]);
    let (audit_median, _) = measure(
        "kubectl gitops audit -A -o json",
        runs,
        &audit,
        &check_audit,
    );
    println!("load average after: {}", load_average());
    let target = Duration::from_secs(5);
    for (what, m) in [("diff -A", diff_median), ("audit -A", audit_median)] {
        println!(
            "{what}: median {} — target under 5 s {}",
            secs(m),
            if m < target { "met" } else { "NOT met" }
        );
    }
    drop(cluster);
    let _: PathBuf = clone;
}
