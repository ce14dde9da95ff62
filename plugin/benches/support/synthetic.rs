//! A synthetic GitOps repository for the benchmark (and, small, for tests): `files` manifests laid
//! out as `tenants/tNN/apps/appNNN/<kind>.yaml` (10 per app, app `a` in tenant `a % tenants`), one commit adding them all, then
//! `commits - 1` more commits on `main`, most changing 1-3 manifests of a few busy apps, some
//! touching quiet ones, and every ~25 commits a short side branch merged back with a merge commit.
//! About 10% of the files are never changed after the first commit, so finding their last commit
//! walks the whole history (the worst case). Built with `git fast-import`, then repacked with
//! `git repack -a -d -f` as a server would pack it for a clone.

#![allow(dead_code)]

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What to generate; the same parameters always give the same repository.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub commits: usize,
    pub files: usize,
    pub seed: u64,
    /// Tenant directories `tenants/t00` ... (app `a` lives in `a % tenants`); 20 unless a
    /// benchmark needs more owner paths (the cache key names any other number).
    pub tenants: usize,
}

/// The tenant directories of the original layout (and of the cached repositories' old names).
pub const DEFAULT_TENANTS: usize = 20;

const KINDS: [&str; 10] = [
    "deployment",
    "service",
    "configmap",
    "hpa",
    "ingress",
    "serviceaccount",
    "role",
    "rolebinding",
    "pdb",
    "networkpolicy",
];

/// The generated file paths, in a fixed order.
pub fn file_paths(p: &Params) -> Vec<String> {
    (0..p.files)
        .map(|i| {
            let app = i / KINDS.len();
            format!(
                "tenants/t{:02}/apps/app{:04}/{}.yaml",
                app % p.tenants.max(1),
                app,
                KINDS[i % KINDS.len()]
            )
        })
        .collect()
}

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

fn manifest(path: &str, version: u64) -> String {
    let name = path.rsplit('/').nth(1).unwrap_or("app");
    let kind = path
        .rsplit('/')
        .next()
        .unwrap_or("x")
        .trim_end_matches(".yaml");
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}-{kind}\n  namespace: tenant\ndata:\n  revision: \"{version}\"\n"
    )
}

/// Picks a file to change: 80% from the busy 5% of apps, 20% from the other files except the
/// frozen last 10%.
fn pick(rng: &mut Rng, files: usize) -> usize {
    let frozen_from = files - files / 10;
    let busy = (files / 20).max(1);
    if rng.below(10) < 8 {
        rng.below(busy)
    } else {
        busy + rng.below((frozen_from - busy).max(1))
    }
}

/// Builds the repository at `dir` (a new bare repository).
pub fn build(dir: &Path, p: &Params) {
    std::fs::create_dir_all(dir).expect("create repository dir");
    let ok = Command::new("git")
        .args(["init", "-q", "--bare", "-b", "main"])
        .current_dir(dir)
        .status()
        .expect("run git init");
    assert!(ok.success(), "git init failed in {}", dir.display());
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet", "--done"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("run git fast-import");
    {
        let stdin = child.stdin.take().expect("stdin");
        let mut out = BufWriter::with_capacity(1 << 20, stdin);
        generate(&mut out, p).expect("write fast-import stream");
        out.flush().expect("flush");
    }
    let status = child.wait().expect("wait for fast-import");
    assert!(
        status.success(),
        "git fast-import failed in {}",
        dir.display()
    );
    // A clone gets a pack made by `git pack-objects` (what a server sends), not fast-import's
    // pack with its long forward delta chains: repack so reads cost what they cost in a clone.
    let ok = Command::new("git")
        .args(["repack", "-a", "-d", "-f", "-q"])
        .current_dir(dir)
        .status()
        .expect("run git repack");
    assert!(ok.success(), "git repack failed in {}", dir.display());
}

fn generate(out: &mut impl Write, p: &Params) -> std::io::Result<()> {
    let paths = file_paths(p);
    let mut rng = Rng(p.seed.max(1));
    let mut version = vec![0u64; p.files];
    let mut mark = 0usize;
    let mut time = 1_600_000_000i64;
    let authors = ["Ana Ruiz", "Li Wei", "CI Bot", "Sam Okafor", "Mia Keller"];
    let commit = |out: &mut dyn Write,
                  branch: &str,
                  from: Option<usize>,
                  merge: Option<usize>,
                  changes: &[(usize, u64)],
                  time: i64,
                  mark: usize,
                  author: &str|
     -> std::io::Result<()> {
        writeln!(out, "commit refs/heads/{branch}")?;
        writeln!(out, "mark :{mark}")?;
        let email = author.to_lowercase().replace(' ', ".");
        writeln!(out, "author {author} <{email}@example.com> {time} +0000")?;
        writeln!(out, "committer {author} <{email}@example.com> {time} +0000")?;
        let msg = match changes.first() {
            Some((f, v)) if changes.len() == 1 => format!("{}: revision {v}", paths[*f]),
            _ => format!("update {} manifests", changes.len()),
        };
        writeln!(out, "data {}\n{msg}", msg.len())?;
        if let Some(f) = from {
            writeln!(out, "from :{f}")?;
        }
        if let Some(m) = merge {
            writeln!(out, "merge :{m}")?;
        }
        for (f, v) in changes {
            let body = manifest(&paths[*f], *v);
            writeln!(
                out,
                "M 100644 inline {}\ndata {}\n{body}",
                paths[*f],
                body.len()
            )?;
        }
        writeln!(out)
    };
    mark += 1;
    let all: Vec<(usize, u64)> = (0..p.files).map(|f| (f, 0)).collect();
    commit(out, "main", None, None, &all, time, mark, "Ana Ruiz")?;
    let mut main_head = mark;
    let mut made = 1usize;
    while made < p.commits {
        time += 60;
        if made.is_multiple_of(25) && p.commits - made > 6 {
            // A short side branch, then a merge commit bringing it in.
            let side_len = 2 + rng.below(3);
            let mut side_head = main_head;
            let mut side_changes: Vec<(usize, u64)> = Vec::new();
            for _ in 0..side_len {
                let f = pick(&mut rng, p.files);
                version[f] += 1;
                let change = [(f, version[f])];
                mark += 1;
                commit(
                    out,
                    "side",
                    Some(side_head),
                    None,
                    &change,
                    time,
                    mark,
                    authors[rng.below(authors.len())],
                )?;
                side_changes.retain(|(g, _)| *g != f);
                side_changes.push((f, version[f]));
                side_head = mark;
                made += 1;
                time += 30;
            }
            // Main moves on meanwhile.
            let f = pick(&mut rng, p.files);
            version[f] += 1;
            mark += 1;
            commit(
                out,
                "main",
                Some(main_head),
                None,
                &[(f, version[f])],
                time,
                mark,
                authors[rng.below(authors.len())],
            )?;
            main_head = mark;
            made += 1;
            time += 30;
            // The merge takes the side's versions (a later main change to the same file loses).
            mark += 1;
            commit(
                out,
                "main",
                Some(main_head),
                Some(side_head),
                &side_changes,
                time,
                mark,
                "CI Bot",
            )?;
            main_head = mark;
            made += 1;
            continue;
        }
        let n = 1 + rng.below(3);
        let mut changes = Vec::with_capacity(n);
        for _ in 0..n {
            let f = pick(&mut rng, p.files);
            if changes.iter().any(|(g, _)| *g == f) {
                continue;
            }
            version[f] += 1;
            changes.push((f, version[f]));
        }
        mark += 1;
        commit(
            out,
            "main",
            Some(main_head),
            None,
            &changes,
            time,
            mark,
            authors[rng.below(authors.len())],
        )?;
        main_head = mark;
        made += 1;
    }
    writeln!(out, "done")
}

/// The repository for `p` in `$HOME/.cache/gitops-guard/bench-repo-<commits>-<files>-<seed>-packed`
/// (`...-<seed>-t<tenants>-packed` when `tenants` is not [`DEFAULT_TENANTS`]), built on first use.
pub fn cached(p: &Params) -> PathBuf {
    let base = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(".cache/gitops-guard");
    let tenants = if p.tenants == DEFAULT_TENANTS {
        String::new()
    } else {
        format!("-t{}", p.tenants)
    };
    let dir = base.join(format!(
        "bench-repo-{}-{}-{}{tenants}-packed",
        p.commits, p.files, p.seed
    ));
    if dir.join("refs/heads/main").exists() || dir.join("packed-refs").exists() {
        return dir;
    }
    let tmp = base.join(format!(".bench-repo-build-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    build(&tmp, p);
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    dir
}
