//! The one-walk "last commit per path" against real `git log -1 <rev> -- <path>` on real
//! repositories: hand-made histories (renames, merges, reverts) and random histories with branches
//! and merges.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is how it fails

#[path = "support/git.rs"]
mod support;

#[path = "../benches/support/synthetic.rs"]
mod synthetic;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use gix::ObjectId;
use kubectl_gitops::git::{Repo, RepoOrigin};
use support::{commit_all, git, git_last_commit, init, write};

fn walk(dir: &Path, rev: &str, paths: &[&str]) -> Vec<String> {
    let repo = Repo::open(dir, RepoOrigin::Explicit).unwrap();
    let start = ObjectId::from_hex(git(dir, &["rev-parse", rev]).trim().as_bytes()).unwrap();
    let (found, _) = repo.last_commits(start, paths).unwrap();
    found
        .into_iter()
        .map(|c| c.map(|c| c.to_string()).unwrap_or_default())
        .collect()
}

fn exists_at(dir: &Path, rev: &str, path: &str) -> bool {
    let out = std::process::Command::new("git")
        .args(["cat-file", "-t", &format!("{rev}:{path}")])
        .current_dir(dir)
        .output()
        .unwrap();
    out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "blob"
}

/// Every path: the walk agrees with git for files that exist at `rev`, and says "none" for paths
/// that do not (no live object can come from a file that is not there).
fn assert_agrees_with_git(dir: &Path, rev: &str, paths: &[&str]) {
    let got = walk(dir, rev, paths);
    for (path, got) in paths.iter().zip(got) {
        if exists_at(dir, rev, path) {
            assert_eq!(
                got,
                git_last_commit(dir, rev, path),
                "{path} at {rev} in {}",
                dir.display()
            );
        } else {
            assert_eq!(got, "", "{path} does not exist at {rev}");
        }
    }
}

#[test]
fn linear_history_renames_and_reverts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init(dir);
    write(dir, "apps/web/deployment.yaml", "replicas: 1\n");
    write(dir, "apps/web/service.yaml", "port: 80\n");
    write(dir, "apps/old-name.yaml", "kind: ConfigMap\n");
    let c1 = commit_all(dir, "initial", "Ana Ruiz", 1_000);
    write(dir, "apps/web/deployment.yaml", "replicas: 2\n");
    let c2 = commit_all(dir, "web: two replicas", "Li Wei", 2_000);
    git(dir, &["mv", "apps/old-name.yaml", "apps/new-name.yaml"]);
    let c3 = commit_all(dir, "rename", "Ana Ruiz", 3_000);
    write(dir, "apps/web/deployment.yaml", "replicas: 3\n");
    commit_all(dir, "three", "Li Wei", 4_000);
    // Back to the blob of c2: still a change relative to the parent.
    write(dir, "apps/web/deployment.yaml", "replicas: 2\n");
    let c5 = commit_all(dir, "revert to two", "Li Wei", 5_000);
    commit_all(dir, "empty", "CI Bot", 6_000);

    let paths = [
        "apps/web/deployment.yaml",
        "apps/web/service.yaml",
        "apps/new-name.yaml",
        "apps/old-name.yaml",
        "apps/web",
        "missing.yaml",
    ];
    let got = walk(dir, "HEAD", &paths);
    // A rename counts as touching the new path (git log without --follow).
    assert_eq!(
        got,
        vec![
            c5.clone(),
            c1.clone(),
            c3.clone(),
            String::new(),
            String::new(),
            String::new()
        ]
    );
    assert_agrees_with_git(dir, "HEAD", &paths);
    assert_agrees_with_git(dir, &c2, &paths);
    assert_eq!(walk(dir, &c2, &["apps/old-name.yaml"]), vec![c1]);
    // The same path asked twice gets the same answer twice.
    assert_eq!(
        walk(
            dir,
            "HEAD",
            &["apps/web/deployment.yaml", "/apps/web/deployment.yaml"]
        ),
        vec![c5.clone(), c5]
    );
}

#[test]
fn merges_follow_the_parent_git_follows() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init(dir);
    write(dir, "a.yaml", "a0\n");
    write(dir, "b.yaml", "b0\n");
    write(dir, "c.yaml", "c0\n");
    write(dir, "d.yaml", "d0\n");
    commit_all(dir, "base", "A", 1_000);
    git(dir, &["checkout", "-q", "-b", "side"]);
    write(dir, "b.yaml", "b-side\n");
    write(dir, "c.yaml", "c-side\n");
    write(dir, "d.yaml", "d-side\n");
    commit_all(dir, "side changes b c d", "B", 3_000);
    git(dir, &["checkout", "-q", "main"]);
    write(dir, "a.yaml", "a-main\n");
    write(dir, "d.yaml", "d-main\n");
    commit_all(dir, "main changes a d", "A", 2_000);
    // Merge: b from side, c keeps main's (side's newer change discarded), d resolved anew.
    git(
        dir,
        &[
            "merge",
            "-q",
            "--no-commit",
            "--no-ff",
            "-s",
            "ours",
            "side",
        ],
    );
    write(dir, "b.yaml", "b-side\n");
    write(dir, "d.yaml", "d-merged\n");
    git(dir, &["add", "-A"]);
    git(
        dir,
        &[
            "commit",
            "-q",
            "-m",
            "merge side",
            "--date",
            "1700004000 +0000",
        ],
    );
    let paths = ["a.yaml", "b.yaml", "c.yaml", "d.yaml"];
    assert_agrees_with_git(dir, "HEAD", &paths);
    let got = walk(dir, "HEAD", &paths);
    // c: git follows main (TREESAME), so side's later change to c does not count.
    assert_eq!(
        got[2],
        git(dir, &["rev-parse", "main~1~1"]).trim(),
        "c.yaml"
    );
}

/// A tiny deterministic random generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A random history with branches, merges (TREESAME to either side, or resolved anew), deletions,
/// re-additions, renames, blobs that reappear, a file turning into a directory, and equal dates.
fn random_history(dir: &Path, seed: u64) -> Vec<(String, Vec<String>)> {
    const POOL: &[&str] = &[
        "a.yaml",
        "apps/web.yaml",
        "apps/api.yaml",
        "apps/sub/x.yaml",
        "apps/sub/y.yaml",
        "base/k.yaml",
        "base/deep/er/z.yaml",
        "t",
        "t/inner.yaml",
    ];
    let mut rng = Rng(seed);
    let mut stream = String::new();
    // branch name -> (head mark, files)
    let mut branches: BTreeMap<String, (usize, BTreeMap<String, String>)> = BTreeMap::new();
    let mut mark = 0usize;
    let mut time = 1_000_000i64;
    let mut marks_by_branch: Vec<usize> = Vec::new();
    let emit = |stream: &mut String,
                branch: &str,
                from: Option<usize>,
                merge: Option<usize>,
                files: &BTreeMap<String, String>,
                time: i64,
                mark: usize| {
        writeln!(stream, "commit refs/heads/{branch}").unwrap();
        writeln!(stream, "mark :{mark}").unwrap();
        writeln!(stream, "author A <a@example.com> {time} +0000").unwrap();
        writeln!(stream, "committer A <a@example.com> {time} +0000").unwrap();
        let msg = format!("commit {mark}");
        writeln!(stream, "data {}\n{msg}", msg.len()).unwrap();
        if let Some(f) = from {
            writeln!(stream, "from :{f}").unwrap();
        }
        if let Some(m) = merge {
            writeln!(stream, "merge :{m}").unwrap();
        }
        writeln!(stream, "deleteall").unwrap();
        for (p, c) in files {
            writeln!(stream, "M 100644 inline {p}\ndata {}\n{c}", c.len()).unwrap();
        }
        writeln!(stream).unwrap();
    };
    let valid = |files: &BTreeMap<String, String>, path: &str| {
        // "t" cannot be a file and a directory at once.
        let file_over_dir = path == "t" && files.keys().any(|k| k.starts_with("t/"));
        let dir_over_file = path.starts_with("t/") && files.contains_key("t");
        !file_over_dir && !dir_over_file
    };
    mark += 1;
    let mut files = BTreeMap::new();
    for p in &POOL[..6] {
        files.insert(p.to_string(), format!("{p} v0\n"));
    }
    emit(&mut stream, "main", None, None, &files, time, mark);
    marks_by_branch.push(mark);
    branches.insert("main".into(), (mark, files));
    for _ in 0..160 {
        time += rng.below(3) as i64; // equal dates happen
        let names: Vec<String> = branches.keys().cloned().collect();
        let b = names[rng.below(names.len())].clone();
        match rng.below(10) {
            0 | 1 if branches.len() < 4 => {
                let name = format!("side{mark}");
                let state = branches[&b].clone();
                branches.insert(name, state);
            }
            2 | 3 if branches.len() > 1 => {
                let other = names[rng.below(names.len())].clone();
                if other == b {
                    continue;
                }
                let (ours_mark, ours) = branches[&b].clone();
                let (theirs_mark, theirs) = branches[&other].clone();
                let mut merged = BTreeMap::new();
                let keys: std::collections::BTreeSet<&String> =
                    ours.keys().chain(theirs.keys()).collect();
                for k in keys {
                    let pick = match (ours.get(k), theirs.get(k)) {
                        (Some(o), Some(t)) if o == t => Some(o.clone()),
                        (o, t) => match rng.below(3) {
                            0 => o.cloned(),
                            1 => t.cloned(),
                            _ => Some(format!("{k} merged {mark}\n")),
                        },
                    };
                    if let Some(c) = pick
                        && valid(&merged, k)
                    {
                        merged.insert(k.clone(), c);
                    }
                }
                mark += 1;
                emit(
                    &mut stream,
                    &b,
                    Some(ours_mark),
                    Some(theirs_mark),
                    &merged,
                    time,
                    mark,
                );
                marks_by_branch.push(mark);
                branches.insert(b, (mark, merged));
            }
            _ => {
                let (head, mut files) = branches[&b].clone();
                for _ in 0..1 + rng.below(2) {
                    let p = POOL[rng.below(POOL.len())].to_string();
                    match rng.below(6) {
                        0 => {
                            files.remove(&p);
                        }
                        1 => {
                            // rename to another pool path
                            let to = POOL[rng.below(POOL.len())].to_string();
                            if let Some(c) = files.remove(&p)
                                && valid(&files, &to)
                            {
                                files.insert(to, c);
                            }
                        }
                        2 => {
                            // a blob seen before
                            if valid(&files, &p) {
                                files.insert(p.clone(), format!("{p} v0\n"));
                            }
                        }
                        _ => {
                            if valid(&files, &p) {
                                files.insert(p.clone(), format!("{p} v{}\n", rng.below(4)));
                            }
                        }
                    }
                }
                mark += 1;
                emit(&mut stream, &b, Some(head), None, &files, time, mark);
                marks_by_branch.push(mark);
                branches.insert(b, (mark, files));
            }
        }
    }
    stream.push_str("done\n");
    init(dir);
    let marks_file = dir.join("marks");
    let mut child = std::process::Command::new("git")
        .args([
            "fast-import",
            "--quiet",
            "--done",
            &format!("--export-marks={}", marks_file.display()),
        ])
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stream.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let marks = std::fs::read_to_string(&marks_file).unwrap();
    let by_mark: BTreeMap<usize, String> = marks
        .lines()
        .filter_map(|l| {
            let (m, id) = l.split_once(' ')?;
            Some((m.trim_start_matches(':').parse().ok()?, id.to_string()))
        })
        .collect();
    let mut starts: Vec<String> = branches.values().map(|(m, _)| by_mark[m].clone()).collect();
    for _ in 0..6 {
        let m = marks_by_branch[rng.below(marks_by_branch.len())];
        starts.push(by_mark[&m].clone());
    }
    let paths: Vec<String> = POOL.iter().map(|p| p.to_string()).collect();
    starts.into_iter().map(|s| (s, paths.clone())).collect()
}

#[test]
fn random_histories_agree_with_git_log() {
    for seed in 1..=24u64 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(format!("r{seed}"));
        for (start, paths) in random_history(&dir, seed) {
            let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
            assert_agrees_with_git(&dir, &start, &paths);
        }
    }
}

#[test]
fn synthetic_benchmark_repository_agrees_with_git_log() {
    // The benchmark's generator at a small size: the walk must be right before it is fast.
    let tmp = tempfile::tempdir().unwrap();
    let params = synthetic::Params {
        commits: 3_000,
        files: 400,
        seed: 11,
        tenants: synthetic::DEFAULT_TENANTS,
    };
    let dir = tmp.path().join("bench-small");
    synthetic::build(&dir, &params);
    let files = synthetic::file_paths(&params);
    let mut rng = Rng(3);
    let mut sample: Vec<&str> = (0..60)
        .map(|_| files[rng.below(files.len())].as_str())
        .collect();
    sample.sort();
    sample.dedup();
    let got = walk(&dir, "main", &sample);
    for (path, got) in sample.iter().zip(&got) {
        assert_eq!(got, &git_last_commit(&dir, "main", path), "{path}");
    }
    // And all files at once give the same answers as asked in a sample.
    let all: Vec<&str> = files.iter().map(String::as_str).collect();
    let everything = walk(&dir, "main", &all);
    for (path, got) in sample.iter().zip(&got) {
        let i = all.iter().position(|p| p == path).unwrap();
        assert_eq!(&everything[i], got, "{path}");
    }
    assert!(
        everything.iter().all(|c| !c.is_empty()),
        "every generated file exists at main"
    );
}
