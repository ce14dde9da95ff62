//! Benchmark: map 10,000 objects (one per manifest file) to the last commit that touched their
//! file, in a synthetic repository of 100,000 commits and 10,000 manifests; compare with running
//! `git log -1 --format=%H <rev> -- <file>` once per object, and measure the walk's peak memory.
//!
//!     cargo bench -p kubectl-gitops --bench last_commits
//!
//! The repository is generated once with `git fast-import` (see `support/synthetic.rs`) and cached
//! in `$HOME/.cache/gitops-guard/bench-repo-<commits>-<files>-<seed>-packed`. Sizes can be changed with
//! `BENCH_COMMITS`, `BENCH_FILES` and `BENCH_GIT_SAMPLE` (how many objects the `git log` baseline
//! runs for; its total is extrapolated to all objects, and its answers are checked against the walk).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is how it fails

#[path = "support/synthetic.rs"]
mod synthetic;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::Criterion;
use gix::ObjectId;
use kubectl_gitops::git::{Repo, RepoOrigin};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn head(dir: &Path) -> ObjectId {
    let out = Command::new("git")
        .args(["rev-parse", "main"])
        .current_dir(dir)
        .output()
        .expect("git rev-parse");
    ObjectId::from_hex(String::from_utf8_lossy(&out.stdout).trim().as_bytes()).expect("commit id")
}

fn walk(dir: &Path, start: ObjectId, paths: &[String]) -> Vec<Option<ObjectId>> {
    let repo = Repo::open(dir, RepoOrigin::Cache).expect("open repository");
    let (found, _) = repo.last_commits(start, paths).expect("walk");
    found
}

/// Peak resident memory (VmHWM) in KiB, after resetting it when `reset` is set.
fn peak_rss_kib(reset: bool) -> Option<u64> {
    if reset {
        std::fs::write("/proc/self/clear_refs", "5").ok()?;
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn main() {
    let params = synthetic::Params {
        commits: env_usize("BENCH_COMMITS", 100_000),
        files: env_usize("BENCH_FILES", 10_000),
        seed: 1,
        tenants: synthetic::DEFAULT_TENANTS,
    };
    let sample = env_usize("BENCH_GIT_SAMPLE", 200);
    let only_walk = std::env::var_os("BENCH_ONLY_WALK").is_some();
    let t = Instant::now();
    let dir = match std::env::var_os("BENCH_REPO") {
        Some(d) => std::path::PathBuf::from(d),
        None => synthetic::cached(&params),
    };
    eprintln!(
        "repository: {} ({} commits, {} files; ready in {:.1?})",
        dir.display(),
        params.commits,
        params.files,
        t.elapsed()
    );
    let start = head(&dir);
    let paths = synthetic::file_paths(&params);

    // One measured run: time, peak memory, and the answers.
    let before = peak_rss_kib(false).unwrap_or(0);
    let reset = peak_rss_kib(true).is_some();
    let t = Instant::now();
    let repo = Repo::open(&dir, RepoOrigin::Cache).expect("open repository");
    let (found, stats) = repo.last_commits(start, &paths).expect("walk");
    let walk_time = t.elapsed();
    let peak = peak_rss_kib(false).unwrap_or(0);
    drop(repo);
    assert!(
        found.iter().all(Option::is_some),
        "every file has a last commit"
    );
    if only_walk {
        println!(
            "walk {walk_time:.3?}, {} commits, {} trees, {} read ahead, peak RSS {:.1} MiB",
            stats.commits,
            stats.trees,
            stats.prefetched,
            peak as f64 / 1024.0
        );
        return;
    }

    // The baseline: `git log -1` per object, for an evenly spread sample; extrapolated.
    let step = (paths.len() / sample.max(1)).max(1);
    let picked: Vec<usize> = (0..paths.len()).step_by(step).take(sample).collect();
    let t = Instant::now();
    for &i in &picked {
        let out = Command::new("git")
            .args(["log", "-1", "--format=%H", "main", "--", &paths[i]])
            .current_dir(&dir)
            .output()
            .expect("git log");
        let git = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let ours = found[i].map(|c| c.to_string()).unwrap_or_default();
        assert_eq!(git, ours, "git and the walk disagree on {}", paths[i]);
    }
    let git_sample = t.elapsed();
    let per_object = git_sample / picked.len().max(1) as u32;
    let git_total = per_object * paths.len() as u32;
    let speedup = git_total.as_secs_f64() / walk_time.as_secs_f64();

    println!();
    println!("objects (files)                 {}", paths.len());
    println!("commits in history              {}", params.commits);
    println!("commits read by the walk        {}", stats.commits);
    println!("trees read by the walk          {}", stats.trees);
    println!("objects read ahead (2nd thread) {}", stats.prefetched);
    println!("walk, all objects               {walk_time:.3?}");
    println!(
        "git log -1 per object           {per_object:.2?} each, {} objects sampled in {git_sample:.2?}",
        picked.len()
    );
    println!("git log -1, all objects (extrapolated) {:.1?}", git_total);
    println!("speed-up                        {speedup:.0}x");
    if reset {
        println!(
            "peak RSS during the walk        {:.1} MiB (process before: {:.1} MiB)",
            peak as f64 / 1024.0,
            before as f64 / 1024.0
        );
    } else {
        println!("peak RSS: /proc/self/clear_refs not writable, not measured");
    }
    println!();

    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20));
    c.bench_function(
        &format!(
            "last_commits/{}_objects/{}_commits",
            paths.len(),
            params.commits
        ),
        |b| b.iter(|| walk(&dir, start, &paths)),
    );
    c.final_summary();
}
