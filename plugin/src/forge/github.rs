//! GitHub and GitHub Enterprise Server pull requests.

use serde_json::{Value, json};

use super::Error;
use super::api::{Api, Reply, enc};
use super::remote::Forge;
use super::token::Credentials;
use super::{PullRequest, PullRequestOptions};

const SCOPE: &str = "repo scope";

pub(super) fn open(
    forge: &Forge,
    creds: &Credentials,
    opts: &PullRequestOptions,
) -> Result<PullRequest, Error> {
    let api = Api::new(
        forge,
        creds,
        vec![
            ("Authorization", format!("Bearer {}", creds.token.secret())),
            ("Accept", "application/vnd.github+json".into()),
            ("X-GitHub-Api-Version", "2022-11-28".into()),
        ],
    )?;
    let repo_path = format!("/repos/{}/{}", enc(&forge.owner), enc(&forge.repo));
    if let Some(pr) = find_open(&api, &repo_path, &opts.head)? {
        return Ok(pr);
    }
    let mut body = json!({
        "title": opts.title,
        "head": opts.head,
        "base": opts.base,
        "body": opts.body,
    });
    if opts.draft {
        body["draft"] = Value::Bool(true);
    }
    let reply = api.post(&format!("{repo_path}/pulls"), &body)?;
    match reply.status {
        201 => {
            let pr = reply.pull_request(&reply.body, false)?;
            request_reviewers(&api, &repo_path, pr.number, &opts.reviewers)?;
            Ok(pr)
        }
        422 if already_exists(&reply) => {
            find_open(&api, &repo_path, &opts.head)?.ok_or_else(|| api.error(&reply, SCOPE))
        }
        422 if invalid_field(&reply, "head") => Err(Error::BranchNotFound {
            host: forge.host.clone(),
            repo: forge.full_name(),
            branch: opts.head.clone(),
        }),
        422 if invalid_field(&reply, "base") => Err(Error::BranchNotFound {
            host: forge.host.clone(),
            repo: forge.full_name(),
            branch: opts.base.clone(),
        }),
        _ => Err(api.error(&reply, SCOPE)),
    }
}

/// GitHub answers 422 "A pull request already exists for owner:branch." to a duplicate.
fn already_exists(reply: &Reply) -> bool {
    reply
        .message()
        .to_ascii_lowercase()
        .contains("already exists")
}

fn invalid_field(reply: &Reply, field: &str) -> bool {
    reply
        .body
        .get("errors")
        .and_then(Value::as_array)
        .is_some_and(|errors| {
            errors.iter().any(|e| {
                e.get("field").and_then(Value::as_str) == Some(field)
                    && e.get("code").and_then(Value::as_str) == Some("invalid")
            })
        })
}

/// The open pull request from `head` (a branch of the repository itself), if there is one.
fn find_open(api: &Api<'_>, repo_path: &str, head: &str) -> Result<Option<PullRequest>, Error> {
    // The head filter is `owner:branch`, where owner is the user or organization.
    let user = api.forge.owner.split('/').next().unwrap_or_default();
    let reply = api.get(&format!(
        "{repo_path}/pulls?state=open&head={}&per_page=100",
        enc(&format!("{user}:{head}"))
    ))?;
    if reply.status != 200 {
        return Err(api.error(&reply, SCOPE));
    }
    let Some(items) = reply.body.as_array() else {
        return Err(reply.unexpected("expected a list of pull requests"));
    };
    items
        .iter()
        .find(|p| p.pointer("/head/ref").and_then(Value::as_str) == Some(head))
        .map(|p| reply.pull_request(p, true))
        .transpose()
}

/// Asks for reviews: users by login, teams as `org/team`.
fn request_reviewers(
    api: &Api<'_>,
    repo_path: &str,
    number: u64,
    reviewers: &[String],
) -> Result<(), Error> {
    if reviewers.is_empty() {
        return Ok(());
    }
    let (teams, users): (Vec<&String>, Vec<&String>) =
        reviewers.iter().partition(|r| r.contains('/'));
    let teams: Vec<&str> = teams
        .iter()
        .filter_map(|t| t.rsplit_once('/').map(|(_, slug)| slug))
        .collect();
    let mut body = json!({ "reviewers": users });
    if !teams.is_empty() {
        body["team_reviewers"] = json!(teams);
    }
    let reply = api.post(
        &format!("{repo_path}/pulls/{number}/requested_reviewers"),
        &body,
    )?;
    match reply.status {
        200 | 201 => Ok(()),
        422 => Err(Error::ForgeRejected {
            host: api.forge.host.clone(),
            repo: api.forge.full_name(),
            status: 422,
            message: format!(
                "pull request #{number} was opened, but reviewers {} could not be requested: {}",
                reviewers.join(", "),
                reply.message()
            ),
        }),
        _ => Err(api.error(&reply, SCOPE)),
    }
}
