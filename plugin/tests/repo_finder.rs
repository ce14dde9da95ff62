//! Finding the repository behind a source URL: `--repo` and working-directory clones matched by
//! remote, the gix clone cache, fetching a missing commit, and the errors when that fails.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is how it fails

#[path = "support/git.rs"]
mod support;

use kubectl_gitops::git::Error;
use kubectl_gitops::git::{RepoFinder, RepoOrigin, remotes_naming};
use support::{commit_all, git, init, write};

fn upstream(root: &std::path::Path) -> (std::path::PathBuf, String) {
    let dir = root.join("upstream");
    init(&dir);
    write(
        &dir,
        "apps/web.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n",
    );
    let c = commit_all(&dir, "first", "Ana Ruiz", 1_000);
    (dir, c)
}

#[test]
fn clones_matched_by_remote_win_over_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let (up, first) = upstream(tmp.path());
    // A working clone whose origin is the GitHub URL a source names.
    let work = tmp.path().join("work");
    git(
        tmp.path(),
        &["clone", "-q", up.to_str().unwrap(), work.to_str().unwrap()],
    );
    git(
        &work,
        &[
            "remote",
            "set-url",
            "origin",
            "git@github.com:Example/Fleet.git",
        ],
    );
    let nested = work.join("apps");
    let cache = tmp.path().join("cache");
    let mut finder = RepoFinder::new(&[], Some(&nested), cache.clone()).unwrap();
    finder.announce = false;
    let found = finder
        .open(
            "https://github.com/example/fleet",
            Some(&first),
            "Flux Kustomization flux-system/apps",
        )
        .unwrap();
    assert_eq!(found.repo.origin, RepoOrigin::WorkingDirectory);
    assert_eq!(found.commit.map(|c| c.to_string()), Some(first.clone()));
    // An abbreviated commit resolves too.
    let found = finder
        .open("https://github.com/example/fleet", Some(&first[..10]), "x")
        .unwrap();
    assert_eq!(found.commit.map(|c| c.to_string()), Some(first.clone()));
    assert!(!cache.exists(), "nothing was cloned");

    // --repo: matched by remote, and a single --repo is used even when no remote matches.
    let mut finder = RepoFinder::new(std::slice::from_ref(&work), None, cache.clone()).unwrap();
    finder.announce = false;
    let found = finder
        .open(
            "ssh://git@gitlab.example.com/other/repo.git",
            Some(&first),
            "x",
        )
        .unwrap();
    assert_eq!(found.repo.origin, RepoOrigin::Explicit);
    let err = RepoFinder::new(&[tmp.path().join("nope")], None, cache)
        .err()
        .unwrap();
    let err = kubectl_gitops::Error::from(err).report();
    assert!(err.contains("--repo takes the path of a clone"), "{err}");
}

#[test]
fn the_cache_clones_once_and_fetches_missing_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let (up, first) = upstream(tmp.path());
    let url = format!("file://{}", up.display());
    let cache = tmp.path().join("cache");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();

    let mut finder = RepoFinder::new(&[], Some(&outside), cache.clone()).unwrap();
    finder.announce = false;
    let found = finder.open(&url, Some(&first), "owner").unwrap();
    assert_eq!(found.repo.origin, RepoOrigin::Cache);
    assert!(
        found.repo.dir.starts_with(&cache),
        "{}",
        found.repo.dir.display()
    );
    assert_eq!(found.commit.map(|c| c.to_string()), Some(first.clone()));

    // A new upstream commit: a new run finds the cache, sees the commit missing, fetches it.
    write(
        &up,
        "apps/web.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web2\n",
    );
    let second = commit_all(&up, "second", "Li Wei", 2_000);
    let mut finder = RepoFinder::new(&[], Some(&outside), cache.clone()).unwrap();
    finder.announce = false;
    let found = finder.open(&url, Some(&second), "owner").unwrap();
    assert_eq!(found.commit.map(|c| c.to_string()), Some(second));
    let (found_commits, _) = found
        .repo
        .last_commits(found.commit.unwrap(), &["apps/web.yaml"])
        .unwrap();
    let head = git(&up, &["rev-parse", "HEAD"]).trim().to_string();
    assert_eq!(found_commits[0].map(|c| c.to_string()), Some(head));

    // A commit that exists nowhere: fetched for, then reported.
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let err = finder
        .open(&url, Some(missing), "Flux Kustomization flux-system/apps")
        .err()
        .unwrap();
    assert!(matches!(err, Error::CommitMissing { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "commit {missing} applied by Flux Kustomization flux-system/apps is not in {url} (fetched just now)"
        )),
        "{err}"
    );

    // A repository that cannot be reached.
    let err = finder
        .open(
            &format!("file://{}/does-not-exist", tmp.path().display()),
            Some(missing),
            "owner",
        )
        .err()
        .unwrap();
    assert!(matches!(err, Error::RepoUnreachable { .. }), "{err}");
    let err = kubectl_gitops::Error::from(err).report();
    assert!(
        err.ends_with("; run kubectl gitops inside a clone of it, or pass --repo PATH"),
        "{err}"
    );
    let err = finder
        .open("not a url at all", None, "owner")
        .err()
        .unwrap();
    assert!(err.to_string().contains("this is not a Git URL"), "{err}");
}

#[test]
fn insteadof_mirror_rules_are_followed_both_ways_by_reading_and_by_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let (up, first) = upstream(tmp.path());
    let cache = tmp.path().join("cache");
    let source = "https://github.com/example/fleet";
    let mirror_rule = |work: &std::path::Path| {
        git(
            work,
            &[
                "config",
                "url.git@mirror.corp.example:mirrors/.insteadOf",
                "https://github.com/example/",
            ],
        );
    };
    // Origin as the source names it, fetched through the mirror (git applies the rule).
    // Origin cloned from the mirror itself, while the source names GitHub.
    for (dir, origin) in [
        ("as-named", "https://github.com/example/fleet"),
        ("from-mirror", "git@mirror.corp.example:mirrors/fleet.git"),
    ] {
        let work = tmp.path().join(dir);
        git(
            tmp.path(),
            &["clone", "-q", up.to_str().unwrap(), work.to_str().unwrap()],
        );
        git(&work, &["remote", "set-url", "origin", origin]);
        git(&work, &["remote", "add", "upstream", up.to_str().unwrap()]);
        mirror_rule(&work);
        let mut finder = RepoFinder::new(&[], Some(&work), cache.clone()).unwrap();
        finder.announce = false;
        let found = finder
            .open(source, Some(&first), "Flux Kustomization flux-system/apps")
            .unwrap_or_else(|e| panic!("{dir}: {e}"));
        assert_eq!(found.repo.origin, RepoOrigin::WorkingDirectory, "{dir}");
        // `edit` pushes to the same remote.
        assert_eq!(remotes_naming(&work, source), ["origin"], "{dir}");
        // Another repository on the same host is not this clone.
        assert!(
            remotes_naming(&work, "https://github.com/example/other").is_empty(),
            "{dir}"
        );
    }
    assert!(!cache.exists(), "nothing was cloned");
}
