//! Git repositories and plugin output in the tests: run git with a clean config, write files,
//! commit as an author at an age, read `kubectl gitops` tables, find the built plugin.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cluster::target_profile_dir;

/// `target/<profile>/kubectl-gitops`, next to the test executable's `deps` directory.
pub fn plugin_binary() -> PathBuf {
    let bin = target_profile_dir().join("kubectl-gitops");
    assert!(
        bin.exists(),
        "{} does not exist: build it first (`cargo build --workspace --bins`, as scripts/test-all does)",
        bin.display()
    );
    bin
}

/// Runs git in `dir` with no system or global config (and `env` on top); its trimmed stdout.
pub fn git(dir: &Path, args: &[&str], env: &[(&str, String)]) -> String {
    let mut cmd = Command::new("git");
    cmd.args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com");
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Bounded like every command the tests run: nothing hangs.
    let out = crate::command::run(cmd, None, std::time::Duration::from_secs(60));
    assert!(out.success(), "git {args:?}: {out}");
    out.stdout.trim().to_string()
}

/// Writes `text` at `path` under `dir`, creating directories.
pub fn write(dir: &Path, path: &str, text: &str) {
    let p = dir.join(path);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    }
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Commits everything as `author`, `age_secs` ago; returns the full hash.
pub fn commit(dir: &Path, author: &str, age_secs: i64, subject: &str) -> String {
    git(dir, &["add", "-A"], &[]);
    let date = format!("{} +0000", now() - age_secs);
    let email = format!("{}@example.com", author.to_lowercase().replace(' ', "."));
    let env = [
        ("GIT_AUTHOR_NAME", author.to_string()),
        ("GIT_AUTHOR_EMAIL", email),
        ("GIT_AUTHOR_DATE", date.clone()),
        ("GIT_COMMITTER_DATE", date),
    ];
    git(dir, &["commit", "-q", "-m", subject], &env);
    git(dir, &["rev-parse", "HEAD"], &[])
}

/// The seven-character form of a commit hash.
pub fn short(sha: &str) -> &str {
    &sha[..7]
}

/// Table rows as cells (columns are separated by at least three spaces).
pub fn cells(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

/// A row of cells, for comparing with [`cells`].
pub fn row<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}
