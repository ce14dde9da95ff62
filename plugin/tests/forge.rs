//! Pull-request clients against local fake forges that enforce each forge's API contract
//! (see `forge/fake_forge.rs`), plus remote URL parsing and token lookup with real `git`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is how it fails

#[path = "forge/fake_forge.rs"]
mod fake_forge;

use std::path::Path;

use fake_forge::FakeForge;
use kubectl_gitops::forge::Error;
use kubectl_gitops::forge::{
    self, Credentials, Environment, Forge, ForgeKind, PullRequestOptions, Token, TokenSource,
    compare_url, open_pull_request, parse_remote_url, resolve_token,
};
use serde_json::json;

const TOKEN: &str = "tok_3f2a9c1e8d7b6a5f";
const HEAD: &str = "gitops/scale-web-5";

fn env_creds(var: &str) -> Credentials {
    Credentials {
        token: Token::new(TOKEN),
        source: TokenSource::Env(var.into()),
    }
}

fn opts() -> PullRequestOptions {
    PullRequestOptions {
        title: "Scale deployment/web in shop to 5 replicas".into(),
        body: "Opened by kubectl gitops scale.\n\n- spec.replicas: 3 -> 5".into(),
        head: HEAD.into(),
        base: "main".into(),
        draft: false,
        reviewers: Vec::new(),
    }
}

fn github_fake() -> (FakeForge, Forge) {
    let fake = FakeForge::start(ForgeKind::GitHub, "", TOKEN);
    fake.add_repo("acme/platform", &["main", HEAD]);
    let forge = Forge::from_remote(
        "git@github.com:acme/platform.git",
        None,
        Some(&fake.api_url()),
    )
    .expect("forge");
    (fake, forge)
}

fn gitea_fake(kind: ForgeKind) -> (FakeForge, Forge) {
    let fake = FakeForge::start(kind, "/api/v1", TOKEN);
    fake.add_repo("acme/platform", &["main", HEAD]);
    let forge = Forge::from_remote(
        "https://git.acme.io/acme/platform.git",
        Some(kind),
        Some(&fake.api_url()),
    )
    .expect("forge");
    (fake, forge)
}

fn gitlab_fake() -> (FakeForge, Forge) {
    let fake = FakeForge::start(ForgeKind::GitLab, "/api/v4", TOKEN);
    fake.add_repo("acme/platform/deploy", &["main", HEAD]);
    let forge = Forge::from_remote(
        "git@gitlab.acme.io:acme/platform/deploy.git",
        None,
        Some(&fake.api_url()),
    )
    .expect("forge");
    (fake, forge)
}

// ---------------------------------------------------------------- GitHub

#[test]
fn github_opens_a_pull_request() {
    let (fake, forge) = github_fake();
    let pr = open_pull_request(&forge, &env_creds("GITHUB_TOKEN"), &opts()).expect("open");
    assert_eq!(pr.number, 42);
    assert_eq!(
        pr.url,
        format!("http://{}/acme/platform/pull/42", fake.authority())
    );
    assert!(!pr.reused);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    let list = &reqs[0];
    assert_eq!(
        (list.method.as_str(), list.path.as_str()),
        ("GET", "/repos/acme/platform/pulls")
    );
    assert_eq!(list.query("head"), Some("acme:gitops/scale-web-5"));
    assert_eq!(list.query("state"), Some("open"));
    let create = &reqs[1];
    assert_eq!(
        (create.method.as_str(), create.path.as_str()),
        ("POST", "/repos/acme/platform/pulls")
    );
    assert_eq!(
        create.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(create.header("accept"), Some("application/vnd.github+json"));
    assert_eq!(create.header("x-github-api-version"), Some("2022-11-28"));
    assert_eq!(
        create.body,
        Some(json!({
            "title": "Scale deployment/web in shop to 5 replicas",
            "head": HEAD,
            "base": "main",
            "body": "Opened by kubectl gitops scale.\n\n- spec.replicas: 3 -> 5",
        }))
    );
    let pulls = fake.pulls("acme/platform");
    assert_eq!(pulls.len(), 1);
    assert!(!pulls[0].draft);
    fake.assert_clean();
}

#[test]
fn github_enterprise_uses_the_api_v3_base_url() {
    let fake = FakeForge::start(ForgeKind::GitHub, "/api/v3", TOKEN);
    fake.add_repo("platform-team/manifests", &["main", HEAD]);
    let forge = Forge::from_remote(
        "https://ghe.acme.io/platform-team/manifests",
        Some(ForgeKind::GitHub),
        Some(&fake.api_url()),
    )
    .expect("forge");
    assert_eq!(forge.host, "ghe.acme.io");
    let pr = open_pull_request(&forge, &env_creds("GITHUB_TOKEN"), &opts()).expect("open");
    assert_eq!(pr.number, 42);
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.path.starts_with("/repos/platform-team/manifests/"))
    );
    fake.assert_clean();
}

#[test]
fn github_draft_and_reviewers() {
    let (fake, forge) = github_fake();
    fake.add_user("alice", 11);
    fake.add_user("bob", 12);
    let mut o = opts();
    o.draft = true;
    o.reviewers = vec!["alice".into(), "bob".into(), "acme/sre".into()];
    let pr = open_pull_request(&forge, &env_creds("GITHUB_TOKEN"), &o).expect("open");
    let reqs = fake.requests();
    assert_eq!(
        reqs[1].body.as_ref().and_then(|b| b.get("draft")),
        Some(&json!(true))
    );
    let rev = &reqs[2];
    assert_eq!(rev.method, "POST");
    assert_eq!(
        rev.path,
        format!(
            "/repos/acme/platform/pulls/{}/requested_reviewers",
            pr.number
        )
    );
    assert_eq!(
        rev.body,
        Some(json!({"reviewers": ["alice", "bob"], "team_reviewers": ["sre"]}))
    );
    let pulls = fake.pulls("acme/platform");
    assert!(pulls[0].draft);
    assert_eq!(pulls[0].reviewers, ["alice", "bob", "team:sre"]);
    fake.assert_clean();
}

#[test]
fn github_reuses_the_open_pull_request_of_the_branch() {
    let (fake, forge) = github_fake();
    fake.add_open_pull("acme/platform", "gitops/other", "main", "Other change");
    let existing = fake.add_open_pull("acme/platform", HEAD, "main", "Earlier run");
    let pr = open_pull_request(&forge, &env_creds("GITHUB_TOKEN"), &opts()).expect("open");
    assert_eq!(pr.number, existing);
    assert!(pr.reused);
    assert!(
        fake.requests().iter().all(|r| r.method == "GET"),
        "no second pull request"
    );
    assert_eq!(fake.pulls("acme/platform").len(), 2);
    fake.assert_clean();
}

#[test]
fn github_already_exists_answer_reuses_the_pull_request() {
    let (fake, forge) = github_fake();
    let existing = fake.add_open_pull("acme/platform", HEAD, "main", "Opened meanwhile");
    fake.set_stale_lists(1);
    let pr = open_pull_request(&forge, &env_creds("GITHUB_TOKEN"), &opts()).expect("open");
    assert_eq!((pr.number, pr.reused), (existing, true));
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 422, 200]);
    fake.assert_clean();
}

#[test]
fn github_bad_token_is_a_clear_error() {
    let (fake, forge) = github_fake();
    let creds = Credentials {
        token: Token::new("wrong"),
        source: TokenSource::Env("GITHUB_TOKEN".into()),
    };
    let err = open_pull_request(&forge, &creds, &opts()).expect_err("must fail");
    assert_eq!(
        err.to_string(),
        "token rejected by github.com for acme/platform: set GITHUB_TOKEN with repo scope"
    );
    assert_eq!(fake.requests()[0].status, 401);
    fake.assert_clean();
}

#[test]
fn github_unknown_repository() {
    let fake = FakeForge::start(ForgeKind::GitHub, "", TOKEN);
    let forge = Forge::from_remote(
        "https://github.com/acme/nope.git",
        None,
        Some(&fake.api_url()),
    )
    .expect("forge");
    let err =
        open_pull_request(&forge, &env_creds("GITHUB_TOKEN"), &opts()).expect_err("must fail");
    assert!(matches!(err, Error::RepoNotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "repository acme/nope not found on github.com (or the token cannot see it): check the git remote URL and the token's access"
    );
    fake.assert_clean();
}

#[test]
fn github_archived_repository() {
    let (fake, forge) = github_fake();
    fake.archive("acme/platform");
    let err =
        open_pull_request(&forge, &env_creds("GITHUB_TOKEN"), &opts()).expect_err("must fail");
    assert!(matches!(err, Error::RepoArchived { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("repository acme/platform on github.com is archived")
    );
    fake.assert_clean();
}

#[test]
fn github_head_branch_not_pushed() {
    let (fake, forge) = github_fake();
    let mut o = opts();
    o.head = "gitops/never-pushed".into();
    let err = open_pull_request(&forge, &env_creds("GITHUB_TOKEN"), &o).expect_err("must fail");
    assert_eq!(
        err.to_string(),
        "branch gitops/never-pushed not found in acme/platform on github.com: push it first (git push -u origin gitops/never-pushed)"
    );
    fake.assert_clean();
}

#[test]
fn github_reviewer_who_is_not_a_collaborator() {
    let (fake, forge) = github_fake();
    let mut o = opts();
    o.reviewers = vec!["mallory".into()];
    let err = open_pull_request(&forge, &env_creds("GITHUB_TOKEN"), &o).expect_err("must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("pull request #42 was opened, but reviewers mallory could not be requested"),
        "{msg}"
    );
    fake.assert_clean();
}

// ---------------------------------------------------------------- GitLab

#[test]
fn gitlab_opens_a_draft_merge_request_in_a_subgroup_with_reviewers() {
    let (fake, forge) = gitlab_fake();
    assert_eq!(forge.kind, ForgeKind::GitLab);
    fake.add_user("alice", 2231);
    let mut o = opts();
    o.draft = true;
    o.reviewers = vec!["@alice".into()];
    let pr = open_pull_request(&forge, &env_creds("GITLAB_TOKEN"), &o).expect("open");
    assert_eq!(pr.number, 42);
    assert_eq!(
        pr.url,
        format!(
            "http://{}/acme/platform/deploy/-/merge_requests/42",
            fake.authority()
        )
    );
    let reqs = fake.requests();
    let paths: Vec<(&str, &str)> = reqs
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        paths,
        [
            ("GET", "/projects/acme%2Fplatform%2Fdeploy/merge_requests"),
            ("GET", "/users"),
            ("POST", "/projects/acme%2Fplatform%2Fdeploy/merge_requests"),
        ]
    );
    assert_eq!(reqs[0].query("source_branch"), Some(HEAD));
    assert_eq!(reqs[0].query("state"), Some("opened"));
    assert_eq!(reqs[1].query("username"), Some("alice"));
    assert_eq!(reqs[2].header("private-token"), Some(TOKEN));
    assert_eq!(
        reqs[2].body,
        Some(json!({
            "title": "Draft: Scale deployment/web in shop to 5 replicas",
            "source_branch": HEAD,
            "target_branch": "main",
            "description": "Opened by kubectl gitops scale.\n\n- spec.replicas: 3 -> 5",
            "reviewer_ids": [2231],
        }))
    );
    let pulls = fake.pulls("acme/platform/deploy");
    assert!(pulls[0].draft);
    assert_eq!(pulls[0].reviewers, ["2231"]);
    fake.assert_clean();
}

#[test]
fn gitlab_reuses_an_open_merge_request_and_handles_the_conflict_answer() {
    let (fake, forge) = gitlab_fake();
    let existing = fake.add_open_pull("acme/platform/deploy", HEAD, "main", "Earlier run");
    let pr = open_pull_request(&forge, &env_creds("GITLAB_TOKEN"), &opts()).expect("open");
    assert_eq!((pr.number, pr.reused), (existing, true));
    assert_eq!(fake.requests().len(), 1);
    fake.set_stale_lists(1);
    let pr = open_pull_request(&forge, &env_creds("GITLAB_TOKEN"), &opts()).expect("open");
    assert_eq!((pr.number, pr.reused), (existing, true));
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 409, 200]);
    assert_eq!(fake.pulls("acme/platform/deploy").len(), 1);
    fake.assert_clean();
}

#[test]
fn gitlab_unknown_reviewer_is_named() {
    let (fake, forge) = gitlab_fake();
    let mut o = opts();
    o.reviewers = vec!["nobody".into()];
    let err = open_pull_request(&forge, &env_creds("GITLAB_TOKEN"), &o).expect_err("must fail");
    assert_eq!(
        err.to_string(),
        "reviewer nobody is not a user on gitlab.acme.io: check the name passed to --reviewer"
    );
    assert!(
        fake.pulls("acme/platform/deploy").is_empty(),
        "nothing opened"
    );
    fake.assert_clean();
}

#[test]
fn gitlab_bad_token_and_unknown_project() {
    let (fake, forge) = gitlab_fake();
    let bad = Credentials {
        token: Token::new("glpat-wrong"),
        source: TokenSource::Env("GITLAB_TOKEN".into()),
    };
    let err = open_pull_request(&forge, &bad, &opts()).expect_err("must fail");
    assert_eq!(
        err.to_string(),
        "token rejected by gitlab.acme.io for acme/platform/deploy: set GITLAB_TOKEN with api scope"
    );
    let other = Forge::from_remote(
        "https://gitlab.acme.io/acme/missing.git",
        None,
        Some(&fake.api_url()),
    )
    .expect("forge");
    let err =
        open_pull_request(&other, &env_creds("GITLAB_TOKEN"), &opts()).expect_err("must fail");
    assert!(matches!(err, Error::RepoNotFound { .. }), "{err:?}");
    fake.assert_clean();
}

// ---------------------------------------------------------------- Gitea / Forgejo

#[test]
fn gitea_opens_a_wip_pull_request_with_reviewers_in_the_create_call() {
    let (fake, forge) = gitea_fake(ForgeKind::Gitea);
    fake.add_user("alice", 5);
    let mut o = opts();
    o.draft = true;
    o.reviewers = vec!["alice".into()];
    let pr = open_pull_request(&forge, &env_creds("GITEA_TOKEN"), &o).expect("open");
    assert_eq!(
        pr.url,
        format!("http://{}/acme/platform/pulls/42", fake.authority())
    );
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].query("state"), Some("open"));
    let create = &reqs[1];
    assert_eq!(
        create.header("authorization"),
        Some(format!("token {TOKEN}").as_str())
    );
    assert_eq!(
        create.body,
        Some(json!({
            "title": "WIP: Scale deployment/web in shop to 5 replicas",
            "head": HEAD,
            "base": "main",
            "body": "Opened by kubectl gitops scale.\n\n- spec.replicas: 3 -> 5",
            "reviewers": ["alice"],
        }))
    );
    assert_eq!(fake.pulls("acme/platform")[0].reviewers, ["alice"]);
    fake.assert_clean();
}

#[test]
fn forgejo_requests_reviewers_after_creating() {
    let (fake, forge) = gitea_fake(ForgeKind::Forgejo);
    fake.add_user("alice", 5);
    let mut o = opts();
    o.reviewers = vec!["alice".into()];
    let pr = open_pull_request(&forge, &env_creds("FORGEJO_TOKEN"), &o).expect("open");
    let reqs = fake.requests();
    let calls: Vec<(&str, &str)> = reqs
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("GET", "/repos/acme/platform/pulls"),
            ("POST", "/repos/acme/platform/pulls"),
            ("POST", "/repos/acme/platform/pulls/42/requested_reviewers"),
        ]
    );
    assert!(
        reqs[1]
            .body
            .as_ref()
            .is_some_and(|b| b.get("reviewers").is_none())
    );
    assert_eq!(reqs[2].body, Some(json!({"reviewers": ["alice"]})));
    assert_eq!(pr.number, 42);
    fake.assert_clean();
}

#[test]
fn gitea_conflict_answer_reuses_the_pull_request() {
    for kind in [ForgeKind::Gitea, ForgeKind::Forgejo] {
        let (fake, forge) = gitea_fake(kind);
        let existing = fake.add_open_pull("acme/platform", HEAD, "main", "Opened meanwhile");
        fake.set_stale_lists(1);
        let pr = open_pull_request(&forge, &env_creds("GITEA_TOKEN"), &opts()).expect("open");
        assert_eq!((pr.number, pr.reused), (existing, true), "{kind}");
        let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [200, 409, 200], "{kind}");
        fake.assert_clean();
    }
}

#[test]
fn gitea_finds_the_open_pull_request_on_a_later_page() {
    let (fake, forge) = gitea_fake(ForgeKind::Gitea);
    for i in 0..60 {
        fake.add_open_pull("acme/platform", &format!("feature/{i}"), "main", "Other");
    }
    let existing = fake.add_open_pull("acme/platform", HEAD, "main", "Earlier run");
    let pr = open_pull_request(&forge, &env_creds("GITEA_TOKEN"), &opts()).expect("open");
    assert_eq!((pr.number, pr.reused), (existing, true));
    let reqs = fake.requests();
    let pages: Vec<Option<&str>> = reqs.iter().map(|r| r.query("page")).collect();
    assert_eq!(pages, [Some("1"), Some("2")]);
    fake.assert_clean();
}

#[test]
fn gitea_archived_repository_is_423() {
    for kind in [ForgeKind::Gitea, ForgeKind::Forgejo] {
        let (fake, forge) = gitea_fake(kind);
        fake.archive("acme/platform");
        let err =
            open_pull_request(&forge, &env_creds("GITEA_TOKEN"), &opts()).expect_err("must fail");
        assert_eq!(
            err.to_string(),
            "repository acme/platform on git.acme.io is archived (read-only): unarchive it, or change the manifest where it lives now"
        );
        assert_eq!(fake.requests().last().map(|r| r.status), Some(423));
        fake.assert_clean();
    }
}

#[test]
fn gitea_missing_branch_and_unknown_repository_are_told_apart() {
    let (fake, forge) = gitea_fake(ForgeKind::Forgejo);
    let mut o = opts();
    o.head = "gitops/not-pushed".into();
    let err = open_pull_request(&forge, &env_creds("FORGEJO_TOKEN"), &o).expect_err("must fail");
    assert!(
        matches!(&err, Error::BranchNotFound { branch, .. } if branch == "gitops/not-pushed"),
        "{err:?}"
    );
    let gone = Forge::from_remote(
        "https://git.acme.io/acme/gone.git",
        Some(ForgeKind::Forgejo),
        Some(&fake.api_url()),
    )
    .expect("forge");
    let err =
        open_pull_request(&gone, &env_creds("FORGEJO_TOKEN"), &opts()).expect_err("must fail");
    assert!(matches!(err, Error::RepoNotFound { .. }), "{err:?}");
    fake.assert_clean();
}

#[test]
fn gitea_bad_token() {
    let (fake, forge) = gitea_fake(ForgeKind::Gitea);
    let creds = Credentials {
        token: Token::new("nope"),
        source: TokenSource::GitCredential,
    };
    let err = open_pull_request(&forge, &creds, &opts()).expect_err("must fail");
    assert_eq!(
        err.to_string(),
        "token rejected by git.acme.io for acme/platform: the token from git's credential helper was refused; set GITEA_TOKEN with write:repository scope"
    );
    fake.assert_clean();
}

// ---------------------------------------------------------------- escaping

#[test]
fn owner_repo_group_and_branch_names_are_escaped() {
    let head = "gitops/web+canary#2-ü";
    // Gitea: owner and repository are path segments of their own.
    let (fake, _) = gitea_fake(ForgeKind::Gitea);
    fake.add_repo("team.ops/platform.v2", &["main", head]);
    let forge = Forge::from_remote(
        "git@git.acme.io:team.ops/platform.v2.git",
        Some(ForgeKind::Gitea),
        Some(&fake.api_url()),
    )
    .expect("forge");
    let mut o = opts();
    o.head = head.into();
    open_pull_request(&forge, &env_creds("GITEA_TOKEN"), &o).expect("open");
    let reqs = fake.requests();
    assert_eq!(reqs[1].path, "/repos/team.ops/platform.v2/pulls");
    assert_eq!(
        reqs[1].body.as_ref().and_then(|b| b.get("head")),
        Some(&json!(head))
    );
    fake.assert_clean();
    // GitLab: the whole project path is one encoded id; the branch is an encoded query value.
    let fake = FakeForge::start(ForgeKind::GitLab, "/api/v4", TOKEN);
    fake.add_repo("acme/sub-group.x/deploy_1", &["main"]);
    let forge = Forge::from_remote(
        "https://gitlab.com/acme/sub-group.x/deploy_1.git",
        None,
        Some(&fake.api_url()),
    )
    .expect("forge");
    open_pull_request(&forge, &env_creds("GITLAB_TOKEN"), &o).expect("open");
    let reqs = fake.requests();
    assert_eq!(
        reqs[0].path,
        "/projects/acme%2Fsub-group.x%2Fdeploy_1/merge_requests"
    );
    assert_eq!(reqs[0].query("source_branch"), Some(head));
    fake.assert_clean();
    // GitHub: the head filter is owner:branch, encoded as one query value.
    let fake = FakeForge::start(ForgeKind::GitHub, "", TOKEN);
    fake.add_repo("acme/platform", &["main", head]);
    let forge = Forge::from_remote(
        "https://github.com/acme/platform",
        None,
        Some(&fake.api_url()),
    )
    .expect("forge");
    open_pull_request(&forge, &env_creds("GITHUB_TOKEN"), &o).expect("open");
    assert_eq!(
        fake.requests()[0].query("head"),
        Some(format!("acme:{head}").as_str())
    );
    fake.assert_clean();
}

// ---------------------------------------------------------------- remotes, URLs

#[test]
fn remote_urls_are_parsed() {
    // url, scheme, host, port, owner, repository
    type Row = (
        &'static str,
        &'static str,
        &'static str,
        Option<u16>,
        &'static str,
        &'static str,
    );
    let table: &[Row] = &[
        (
            "https://github.com/acme/platform.git",
            "https",
            "github.com",
            None,
            "acme",
            "platform",
        ),
        (
            "https://github.com/acme/platform",
            "https",
            "github.com",
            None,
            "acme",
            "platform",
        ),
        (
            "https://github.com/acme/platform/",
            "https",
            "github.com",
            None,
            "acme",
            "platform",
        ),
        (
            "https://x-access-token:ghp_secret@github.com/acme/platform.git",
            "https",
            "github.com",
            None,
            "acme",
            "platform",
        ),
        (
            "git@github.com:acme/platform.git",
            "ssh",
            "github.com",
            None,
            "acme",
            "platform",
        ),
        (
            "github.com:acme/platform",
            "ssh",
            "github.com",
            None,
            "acme",
            "platform",
        ),
        (
            "ssh://git@github.com/acme/platform.git",
            "ssh",
            "github.com",
            None,
            "acme",
            "platform",
        ),
        (
            "ssh://git@git.acme.io:2222/acme/platform.git",
            "ssh",
            "git.acme.io",
            None,
            "acme",
            "platform",
        ),
        (
            "git+ssh://git@git.acme.io/acme/platform.git",
            "ssh",
            "git.acme.io",
            None,
            "acme",
            "platform",
        ),
        (
            "https://gitlab.com/acme/platform/deploy.git",
            "https",
            "gitlab.com",
            None,
            "acme/platform",
            "deploy",
        ),
        (
            "git@gitlab.com:acme/platform/deploy.git",
            "ssh",
            "gitlab.com",
            None,
            "acme/platform",
            "deploy",
        ),
        (
            "http://localhost:3000/acme/platform.git",
            "http",
            "localhost",
            Some(3000),
            "acme",
            "platform",
        ),
        (
            "https://Git.Acme.IO:8443/acme/platform",
            "https",
            "git.acme.io",
            Some(8443),
            "acme",
            "platform",
        ),
        (
            "git://git.acme.io/acme/platform.git",
            "git",
            "git.acme.io",
            None,
            "acme",
            "platform",
        ),
    ];
    for (url, scheme, host, port, owner, repo) in table {
        let r = parse_remote_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(
            (
                r.scheme.as_str(),
                r.host.as_str(),
                r.port,
                r.owner.as_str(),
                r.repo.as_str()
            ),
            (*scheme, *host, *port, *owner, *repo),
            "{url}"
        );
    }
    for bad in [
        "/srv/git/platform.git",
        "./platform",
        "https://github.com/platform",
        "C:/repos/x",
        "ftp://host/a/b",
    ] {
        assert!(parse_remote_url(bad).is_err(), "{bad} should not parse");
    }
    let err = parse_remote_url("https://user:s3cret@github.com/only-one").expect_err("bad");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

#[test]
fn forges_and_api_urls_are_detected() {
    // remote, --forge, --forge-url, kind, API URL, web URL, host
    type Row = (
        &'static str,
        Option<ForgeKind>,
        Option<&'static str>,
        ForgeKind,
        &'static str,
        &'static str,
        &'static str,
    );
    let table: &[Row] = &[
        (
            "git@github.com:acme/platform.git",
            None,
            None,
            ForgeKind::GitHub,
            "https://api.github.com",
            "https://github.com",
            "github.com",
        ),
        (
            "git@ghe.acme.io:acme/platform.git",
            Some(ForgeKind::GitHub),
            None,
            ForgeKind::GitHub,
            "https://ghe.acme.io/api/v3",
            "https://ghe.acme.io",
            "ghe.acme.io",
        ),
        (
            "https://github.acme.io/acme/platform",
            None,
            None,
            ForgeKind::GitHub,
            "https://github.acme.io/api/v3",
            "https://github.acme.io",
            "github.acme.io",
        ),
        (
            "https://code.acme.io/acme/platform",
            None,
            Some("https://code.acme.io/api/v3/"),
            ForgeKind::GitHub,
            "https://code.acme.io/api/v3",
            "https://code.acme.io",
            "code.acme.io",
        ),
        (
            "https://gitlab.com/acme/platform/deploy.git",
            None,
            None,
            ForgeKind::GitLab,
            "https://gitlab.com/api/v4",
            "https://gitlab.com",
            "gitlab.com",
        ),
        (
            "git@scm.acme.io:acme/deploy.git",
            None,
            Some("https://scm.acme.io/gitlab/api/v4"),
            ForgeKind::GitLab,
            "https://scm.acme.io/gitlab/api/v4",
            "https://scm.acme.io/gitlab",
            "scm.acme.io",
        ),
        (
            "https://codeberg.org/acme/platform.git",
            None,
            None,
            ForgeKind::Forgejo,
            "https://codeberg.org/api/v1",
            "https://codeberg.org",
            "codeberg.org",
        ),
        (
            "https://git.acme.io:8443/acme/platform.git",
            Some(ForgeKind::Gitea),
            None,
            ForgeKind::Gitea,
            "https://git.acme.io:8443/api/v1",
            "https://git.acme.io:8443",
            "git.acme.io:8443",
        ),
        (
            "ssh://git@git.acme.io:2222/acme/platform.git",
            Some(ForgeKind::Forgejo),
            None,
            ForgeKind::Forgejo,
            "https://git.acme.io/api/v1",
            "https://git.acme.io",
            "git.acme.io",
        ),
    ];
    for (remote, kind, api, want_kind, want_api, want_web, want_host) in table {
        let f = Forge::from_remote(remote, *kind, *api).unwrap_or_else(|e| panic!("{remote}: {e}"));
        assert_eq!(
            (
                f.kind,
                f.api_url.as_str(),
                f.web_url.as_str(),
                f.host.as_str()
            ),
            (*want_kind, *want_api, *want_web, *want_host),
            "{remote}"
        );
    }
    let err =
        Forge::from_remote("git@git.acme.io:acme/platform.git", None, None).expect_err("unknown");
    assert_eq!(
        err.to_string(),
        "cannot tell which forge serves git.acme.io: pass --forge github|gitlab|gitea|forgejo (and --forge-url with the API URL if it is not at the usual place)"
    );
    assert_eq!(
        "Forgejo".parse::<ForgeKind>().ok(),
        Some(ForgeKind::Forgejo)
    );
    assert_eq!(
        "bitbucket"
            .parse::<ForgeKind>()
            .expect_err("unknown")
            .to_string(),
        "unknown forge \"bitbucket\": use github, gitlab, gitea or forgejo"
    );
}

#[test]
fn compare_urls_for_no_pr() {
    let gh = Forge::from_remote("git@github.com:acme/platform.git", None, None).expect("forge");
    assert_eq!(
        compare_url(&gh, "main", "gitops/scale-web-5"),
        "https://github.com/acme/platform/compare/main...gitops/scale-web-5"
    );
    let gl = Forge::from_remote("https://gitlab.com/acme/platform/deploy.git", None, None)
        .expect("forge");
    assert_eq!(
        compare_url(&gl, "main", "gitops/scale web"),
        "https://gitlab.com/acme/platform/deploy/-/merge_requests/new?merge_request[source_branch]=gitops%2Fscale%20web&merge_request[target_branch]=main"
    );
    let gt = Forge::from_remote(
        "https://git.acme.io/acme/platform",
        Some(ForgeKind::Gitea),
        None,
    )
    .expect("forge");
    assert_eq!(
        compare_url(&gt, "release/1.2", "gitops/x"),
        "https://git.acme.io/acme/platform/compare/release/1.2...gitops/x"
    );
}

// ---------------------------------------------------------------- tokens

fn forge_for(kind: ForgeKind) -> Forge {
    Forge::from_remote("https://git.acme.io/acme/platform.git", Some(kind), None).expect("forge")
}

/// An environment with PATH (to find git) but no global or system git configuration.
fn git_env(home: &Path, extra: &[(&str, &str)]) -> Environment {
    let mut vars = vec![
        (
            "PATH".to_string(),
            std::env::var("PATH").unwrap_or_default(),
        ),
        ("HOME".to_string(), home.display().to_string()),
        ("GIT_CONFIG_NOSYSTEM".to_string(), "1".to_string()),
        (
            "GIT_CONFIG_GLOBAL".to_string(),
            home.join(".gitconfig").display().to_string(),
        ),
    ];
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Environment::from_vars(vars)
}

#[test]
fn tokens_come_from_the_forge_environment_variables_first() {
    let home = tempfile::tempdir().expect("tmp");
    // forge, environment, token, variable it came from
    type Case = (
        ForgeKind,
        &'static [(&'static str, &'static str)],
        &'static str,
        &'static str,
    );
    let cases: &[Case] = &[
        (
            ForgeKind::GitHub,
            &[("GITHUB_TOKEN", "a"), ("GH_TOKEN", "b")],
            "a",
            "GITHUB_TOKEN",
        ),
        (ForgeKind::GitHub, &[("GH_TOKEN", "b")], "b", "GH_TOKEN"),
        (
            ForgeKind::GitLab,
            &[("GITLAB_TOKEN", "c"), ("GITHUB_TOKEN", "x")],
            "c",
            "GITLAB_TOKEN",
        ),
        (
            ForgeKind::Gitea,
            &[("GITEA_TOKEN", "d")],
            "d",
            "GITEA_TOKEN",
        ),
        (
            ForgeKind::Forgejo,
            &[("FORGEJO_TOKEN", "e"), ("GITEA_TOKEN", "d")],
            "e",
            "FORGEJO_TOKEN",
        ),
        (
            ForgeKind::Forgejo,
            &[("GITEA_TOKEN", " d\n")],
            "d",
            "GITEA_TOKEN",
        ),
    ];
    for (kind, vars, want, var) in cases {
        let creds = resolve_token(&forge_for(*kind), &git_env(home.path(), vars)).expect("token");
        assert_eq!(creds.token, Token::new(*want), "{kind}");
        assert_eq!(creds.source, TokenSource::Env(var.to_string()), "{kind}");
    }
}

#[test]
fn token_from_git_credential_fill_is_used_with_the_forge() {
    let home = tempfile::tempdir().expect("tmp");
    let (fake, forge) = gitlab_fake();
    // A real credential helper: answers only for the forge's host.
    let helper = home.path().join("helper.sh");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\ntest \"$1\" = get || exit 0\nwhile read -r line; do case \"$line\" in host=*) host=\"${{line#host=}}\";; protocol=*) proto=\"${{line#protocol=}}\";; esac; done\nif [ \"$proto\" = https ] && [ \"$host\" = gitlab.acme.io ]; then echo username=oauth2; echo password={TOKEN}; fi\n"
        ),
    )
    .expect("helper");
    let status = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&helper)
        .status()
        .expect("chmod");
    assert!(status.success());
    let env = git_env(home.path(), &[]);
    let status = std::process::Command::new("git")
        .args(["config", "--file"])
        .arg(home.path().join(".gitconfig"))
        .arg("credential.helper")
        .arg(&helper)
        .status()
        .expect("git config");
    assert!(status.success());
    let creds = resolve_token(&forge, &env).expect("token from helper");
    assert_eq!(creds.source, TokenSource::GitCredential);
    assert_eq!(creds.token, Token::new(TOKEN));
    // A helper token is sent as a Bearer token (it may be an OAuth token).
    let pr = open_pull_request(&forge, &creds, &opts()).expect("open");
    assert_eq!(pr.number, 42);
    let reqs = fake.requests();
    assert_eq!(
        reqs[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(reqs[0].header("private-token"), None);
    fake.assert_clean();
    // Another host: the helper has nothing, and git must not prompt.
    let err = resolve_token(&forge_for(ForgeKind::Gitea), &env).expect_err("no token");
    assert_eq!(
        err.to_string(),
        "no token for git.acme.io: set GITEA_TOKEN, or configure a git credential helper for https://git.acme.io"
    );
}

#[test]
fn no_token_anywhere_says_what_to_set() {
    let home = tempfile::tempdir().expect("tmp");
    let err = resolve_token(
        &Forge::from_remote("git@github.com:acme/platform.git", None, None).expect("forge"),
        &git_env(home.path(), &[]),
    )
    .expect_err("no token");
    assert_eq!(
        err.to_string(),
        "no token for github.com: set GITHUB_TOKEN or GH_TOKEN, or configure a git credential helper for https://github.com"
    );
}

#[test]
fn the_token_is_never_printed() {
    let creds = env_creds("GITHUB_TOKEN");
    assert!(!format!("{creds:?}").contains(TOKEN));
    let (fake, forge) = github_fake();
    fake.archive("acme/platform");
    let bad = Credentials {
        token: Token::new("ghp_leakcheck"),
        source: TokenSource::Env("GITHUB_TOKEN".into()),
    };
    for c in [&creds, &bad] {
        let err = open_pull_request(&forge, c, &opts()).expect_err("must fail");
        let text = format!("{err} {err:?}");
        assert!(
            !text.contains(TOKEN) && !text.contains("ghp_leakcheck"),
            "{text}"
        );
    }
}

// ---------------------------------------------------------------- transport

#[test]
fn network_errors_name_the_url() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let forge = Forge::from_remote(
        "https://git.acme.io/acme/platform",
        Some(ForgeKind::Gitea),
        Some(&api),
    )
    .expect("forge");
    let err = open_pull_request(&forge, &env_creds("GITEA_TOKEN"), &opts()).expect_err("must fail");
    // What the user reads: the URL, why (the transport's error, kept as the source), what to do.
    let msg = kubectl_gitops::Error::from(err).report();
    assert!(
        msg.starts_with(&format!(
            "cannot reach {api}/repos/acme/platform/pulls?state=open&page=1&limit=50: "
        )),
        "{msg}"
    );
    assert!(
        msg.ends_with("; check the network, a proxy (HTTPS_PROXY) or --forge-url"),
        "{msg}"
    );
}

#[test]
fn tokens_are_not_sent_over_plain_http_to_other_hosts() {
    let forge = Forge::from_remote(
        "https://git.acme.io/acme/platform",
        Some(ForgeKind::Gitea),
        Some("http://git.acme.io/api/v1"),
    );
    let err = forge.expect_err("refused");
    assert_eq!(
        err.to_string(),
        "refusing to send a token to http://git.acme.io/api/v1 over plain http; use an https URL (plain http is only allowed for localhost)"
    );
}

#[test]
fn options_are_checked_before_any_call() {
    let forge = Forge::from_remote("git@github.com:acme/platform.git", None, None).expect("forge");
    let mut o = opts();
    o.base = HEAD.into();
    let err =
        forge::open_pull_request(&forge, &env_creds("GITHUB_TOKEN"), &o).expect_err("same branch");
    assert!(
        err.to_string()
            .contains("the head and base branch are both gitops/scale-web-5"),
        "{err}"
    );
}

#[test]
fn tls_failures_are_network_errors_naming_the_url() {
    // The fake speaks plain HTTP, so a TLS handshake with it fails: the rustls client (with the
    // platform's trust store) reports that instead of sending anything.
    let (fake, _) = github_fake();
    let api = format!("https://{}", fake.authority());
    let forge =
        Forge::from_remote("git@github.com:acme/platform.git", None, Some(&api)).expect("forge");
    let err =
        open_pull_request(&forge, &env_creds("GITHUB_TOKEN"), &opts()).expect_err("must fail");
    assert!(matches!(err, Error::Network { .. }), "{err:?}");
    let msg = kubectl_gitops::error::chain(&err);
    assert!(
        msg.starts_with(&format!(
            "cannot reach {api}/repos/acme/platform/pulls?state=open"
        )) && msg.len() > err.to_string().len(),
        "{msg}"
    );
    assert!(
        fake.requests().is_empty(),
        "nothing readable reached the server"
    );
}
