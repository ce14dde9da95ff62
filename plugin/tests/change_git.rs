//! Committing and pushing a change with real git: a bare repository as the remote, a clone that
//! reaches it through an `insteadOf` rule (as a user's clone of a forge repository would), commits
//! made with gix on a branch of their own without touching the work tree, pushes with `git` that
//! never force, and the saved patch that finishes a change by hand.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is how it fails

#[path = "support/git.rs"]
mod support;

use std::path::{Path, PathBuf};

use gix::ObjectId;
use kubectl_gitops::Error;
use kubectl_gitops::change::commit::{self, CommitRepo, NewCommit, Remote, Workspace};
use kubectl_gitops::change::diff::FileChange;
use kubectl_gitops::change::recover;

const URL: &str = "https://github.com/acme/platform.git";
const FILE: &str = "apps/web/deployment.yaml";
const V1: &str = "kind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2 # tuned\n";
const V2: &str = "kind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 6 # tuned\n";

struct Setup {
    _tmp: tempfile::TempDir,
    bare: PathBuf,
    clone: PathBuf,
    main: ObjectId,
}

fn oid(hex: &str) -> ObjectId {
    ObjectId::from_hex(hex.trim().as_bytes()).expect("object id")
}

/// A bare "origin" with one commit on main, and a clone whose `origin` is the forge URL,
/// rewritten to the bare repository by `url.<file>.insteadOf`.
fn setup() -> Setup {
    let tmp = tempfile::tempdir().expect("tempdir");
    let seed = tmp.path().join("seed");
    support::init(&seed);
    support::write(&seed, FILE, V1);
    let main = support::commit_all(&seed, "web", "Ana", 0);
    let bare = tmp.path().join("platform.git");
    support::git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            &seed.display().to_string(),
            &bare.display().to_string(),
        ],
    );
    let clone = tmp.path().join("clone");
    support::init(&clone);
    let rewrite = format!("url.file://{}.insteadOf", bare.display());
    for args in [
        vec!["remote", "add", "origin", URL],
        vec!["config", &rewrite, URL],
        vec!["config", "user.name", "Ana Lopez"],
        vec!["config", "user.email", "ana@acme.io"],
        vec!["fetch", "-q", "origin"],
        vec!["checkout", "-q", "-B", "main", "origin/main"],
    ] {
        support::git(&clone, &args);
    }
    Setup {
        _tmp: tmp,
        bare,
        clone,
        main: oid(&main),
    }
}

fn ws(s: &Setup) -> Workspace {
    Workspace {
        dir: s.clone.clone(),
        remote: commit::remote_for(&s.clone, URL),
    }
}

fn new_commit(parent: ObjectId, branch: &str, was: Option<ObjectId>) -> NewCommit {
    NewCommit {
        files: vec![(FILE.into(), V2.into())],
        message:
            "deployment/web (prod): scale to 6 replicas\n\nBased on live revision: main@sha1:abc\n"
                .into(),
        parent,
        branch: branch.into(),
        branch_was: was,
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    support::git(dir, args).trim().to_string()
}

#[test]
fn the_forge_remote_is_found_and_reached_through_insteadof() {
    let s = setup();
    let w = ws(&s);
    assert_eq!(w.remote, Remote::Named("origin".into()));
    assert_eq!(commit::remote_default_branch(&w).expect("HEAD"), "main");
    let tips = commit::remote_tips(&w, &["main", "gitops/none"]).expect("ls-remote");
    assert_eq!(tips.get("main"), Some(&s.main));
    assert!(!tips.contains_key("gitops/none"));
    // A clone without a matching remote pushes to the URL itself.
    let other = commit::remote_for(&s.clone, "https://github.com/acme/other.git");
    assert_eq!(
        other,
        Remote::Url("https://github.com/acme/other.git".into())
    );
}

#[test]
fn a_commit_goes_on_its_own_branch_and_leaves_the_work_tree_alone() {
    let s = setup();
    let repo = CommitRepo::open(&s.clone).expect("open");
    assert_eq!(repo.user_slug(), "ana");
    let id = repo
        .commit(&new_commit(
            s.main,
            "gitops/ana/deployment-web-20261121-1403",
            None,
        ))
        .expect("commit");
    let branch = "gitops/ana/deployment-web-20261121-1403";
    assert_eq!(oid(&git(&s.clone, &["rev-parse", branch])), id);
    assert_eq!(
        git(&s.clone, &["rev-parse", &format!("{branch}^")]),
        s.main.to_string()
    );
    assert_eq!(
        git(&s.clone, &["show", &format!("{branch}:{FILE}")]),
        V2.trim_end()
    );
    assert_eq!(
        git(
            &s.clone,
            &["log", "-1", "--format=%an <%ae>|%cn|%s", branch]
        ),
        "Ana Lopez <ana@acme.io>|Ana Lopez|deployment/web (prod): scale to 6 replicas"
    );
    // HEAD, index and work tree are as they were.
    assert_eq!(git(&s.clone, &["symbolic-ref", "HEAD"]), "refs/heads/main");
    assert_eq!(git(&s.clone, &["status", "--porcelain"]), "");
    assert_eq!(std::fs::read_to_string(s.clone.join(FILE)).unwrap(), V1);
    // Only the one file changed.
    assert_eq!(
        git(&s.clone, &["diff", "--name-only", "main", branch]),
        FILE
    );
    assert_eq!(
        repo.read_file(id, FILE).unwrap().as_deref(),
        Some(V2.as_bytes())
    );
}

#[test]
fn a_branch_moves_only_from_where_it_was() {
    let s = setup();
    let repo = CommitRepo::open(&s.clone).expect("open");
    let first = repo
        .commit(&new_commit(s.main, "gitops/ana/x", None))
        .expect("first");
    // It exists now: creating it again fails, so does moving it from elsewhere.
    let mut again = new_commit(s.main, "gitops/ana/x", None);
    again.message = "another change\n".into();
    assert!(repo.commit(&again).is_err());
    assert_eq!(repo.local_branch("gitops/ana/x"), Some(first));
    assert!(
        repo.commit(&new_commit(first, "gitops/ana/x", Some(s.main)))
            .is_err()
    );
    let second = repo
        .commit(&new_commit(first, "gitops/ana/x", Some(first)))
        .expect("on top");
    assert_eq!(repo.local_branch("gitops/ana/x"), Some(second));
    assert!(repo.is_ancestor(first, second));
    assert!(!repo.is_ancestor(second, first));
}

#[test]
fn push_creates_the_branch_on_the_remote_and_never_forces() {
    let s = setup();
    let w = ws(&s);
    let repo = CommitRepo::open(&s.clone).expect("open");
    let id = repo
        .commit(&new_commit(s.main, "gitops/ana/web", None))
        .expect("commit");
    commit::push(&w, "gitops/ana/web").expect("push");
    assert_eq!(
        oid(&git(&s.bare, &["rev-parse", "refs/heads/gitops/ana/web"])),
        id
    );
    assert_eq!(
        git(&s.bare, &["rev-parse", "refs/heads/main"]),
        s.main.to_string()
    );

    // Someone else pushed to the branch meanwhile: a commit that does not build on theirs is
    // refused by the remote, and theirs stays.
    let other = s.bare.parent().unwrap().join("other");
    support::git(
        s.bare.parent().unwrap(),
        &[
            "clone",
            "-q",
            &s.bare.display().to_string(),
            &other.display().to_string(),
        ],
    );
    support::git(&other, &["checkout", "-q", "gitops/ana/web"]);
    support::write(&other, "README.md", "theirs\n");
    let theirs = support::commit_all(&other, "theirs", "Bob", 1);
    support::git(&other, &["push", "-q", "origin", "gitops/ana/web"]);
    let mine = repo
        .commit(&new_commit(id, "gitops/ana/web", Some(id)))
        .expect("local commit");
    let err = commit::push(&w, "gitops/ana/web").expect_err("a non-fast-forward push must fail");
    assert!(
        matches!(
            err,
            Error::Git(kubectl_gitops::git::Error::GitCommand { .. })
        ),
        "{err}"
    );
    assert_eq!(
        git(&s.bare, &["rev-parse", "refs/heads/gitops/ana/web"]),
        theirs
    );
    assert_ne!(theirs, mine.to_string());
}

#[test]
fn fetch_brings_the_newest_tip() {
    let s = setup();
    // The remote moves on after the clone was made.
    let other = s.bare.parent().unwrap().join("other");
    support::git(
        s.bare.parent().unwrap(),
        &[
            "clone",
            "-q",
            &s.bare.display().to_string(),
            &other.display().to_string(),
        ],
    );
    support::write(&other, "apps/web/service.yaml", "kind: Service\n");
    let newer = support::commit_all(&other, "service", "Bob", 2);
    support::git(&other, &["push", "-q", "origin", "main"]);
    let w = ws(&s);
    let tips = commit::remote_tips(&w, &["main"]).unwrap();
    assert_eq!(tips.get("main"), Some(&oid(&newer)));
    assert!(!CommitRepo::open(&s.clone).unwrap().has_commit(oid(&newer)));
    commit::fetch(&w, &["main"]).expect("fetch");
    assert!(CommitRepo::open(&s.clone).unwrap().has_commit(oid(&newer)));
}

#[test]
fn the_saved_patch_finishes_the_change_with_git_apply() {
    let s = setup();
    let files = [FileChange {
        path: FILE.into(),
        old: V1.into(),
        new: V2.into(),
    }];
    let saved = recover::save("deployment/web", &files, None).expect("save");
    support::git(&s.clone, &["apply", &saved.patch.display().to_string()]);
    assert_eq!(std::fs::read_to_string(s.clone.join(FILE)).unwrap(), V2);
    assert_eq!(
        std::fs::read_to_string(saved.dir.join("files").join(FILE)).unwrap(),
        V2
    );
    std::fs::remove_dir_all(&saved.dir).unwrap();
}
