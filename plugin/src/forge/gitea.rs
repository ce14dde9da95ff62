//! Gitea and Forgejo pull requests (API v1; Forgejo is a Gitea fork with the same calls, except
//! that its create call has no `reviewers` field).

use serde_json::{Value, json};

use super::Error;
use super::api::{Api, enc};
use super::remote::{Forge, ForgeKind};
use super::token::Credentials;
use super::{PullRequest, PullRequestOptions};

const SCOPE: &str = "write:repository scope";
const PAGE: usize = 50;

pub(super) fn open(
    forge: &Forge,
    creds: &Credentials,
    opts: &PullRequestOptions,
) -> Result<PullRequest, Error> {
    let api = Api::new(
        forge,
        creds,
        vec![("Authorization", format!("token {}", creds.token.secret()))],
    )?;
    let repo_path = format!("/repos/{}/{}", enc(&forge.owner), enc(&forge.repo));
    if let Some(pr) = find_open(&api, &repo_path, &opts.head)? {
        return Ok(pr);
    }
    // Gitea and Forgejo mark drafts by a title prefix.
    let title = if opts.draft && !opts.title.starts_with("WIP:") {
        format!("WIP: {}", opts.title)
    } else {
        opts.title.clone()
    };
    let mut body = json!({
        "title": title,
        "head": opts.head,
        "base": opts.base,
        "body": opts.body,
    });
    let reviewers_in_body = forge.kind == ForgeKind::Gitea && !opts.reviewers.is_empty();
    if reviewers_in_body {
        body["reviewers"] = json!(opts.reviewers);
    }
    let reply = api.post(&format!("{repo_path}/pulls"), &body)?;
    match reply.status {
        201 => {
            let pr = reply.pull_request(&reply.body, false)?;
            if !reviewers_in_body && !opts.reviewers.is_empty() {
                request_reviewers(&api, &repo_path, pr.number, &opts.reviewers)?;
            }
            Ok(pr)
        }
        // "pull request already exists for these targets"
        409 => find_open(&api, &repo_path, &opts.head)?.ok_or_else(|| api.error(&reply, SCOPE)),
        // Not found: the repository, or one of the branches.
        404 => {
            let repo = api.get(&repo_path)?;
            if repo.status == 200 {
                Err(Error::BranchNotFound {
                    host: forge.host.clone(),
                    repo: forge.full_name(),
                    branch: opts.head.clone(),
                })
            } else {
                Err(api.error(&reply, SCOPE))
            }
        }
        _ => Err(api.error(&reply, SCOPE)),
    }
}

/// The open pull request whose head is `head` in this repository (the list cannot be filtered
/// by head, so it is read page by page).
fn find_open(api: &Api<'_>, repo_path: &str, head: &str) -> Result<Option<PullRequest>, Error> {
    let full = api.forge.full_name();
    for page in 1..=40 {
        let reply = api.get(&format!(
            "{repo_path}/pulls?state=open&page={page}&limit={PAGE}"
        ))?;
        if reply.status != 200 {
            return Err(api.error(&reply, SCOPE));
        }
        let Some(items) = reply.body.as_array() else {
            return Err(reply.unexpected("expected a list of pull requests"));
        };
        let found = items.iter().find(|p| {
            p.pointer("/head/ref").and_then(Value::as_str) == Some(head)
                && p.pointer("/head/repo/full_name")
                    .and_then(Value::as_str)
                    .is_none_or(|n| n.eq_ignore_ascii_case(&full))
        });
        if let Some(p) = found {
            return reply.pull_request(p, true).map(Some);
        }
        if items.len() < PAGE {
            break;
        }
    }
    Ok(None)
}

fn request_reviewers(
    api: &Api<'_>,
    repo_path: &str,
    number: u64,
    reviewers: &[String],
) -> Result<(), Error> {
    let reply = api.post(
        &format!("{repo_path}/pulls/{number}/requested_reviewers"),
        &json!({ "reviewers": reviewers }),
    )?;
    match reply.status {
        200 | 201 => Ok(()),
        404 | 422 => Err(Error::ForgeRejected {
            host: api.forge.host.clone(),
            repo: api.forge.full_name(),
            status: reply.status,
            message: format!(
                "pull request #{number} was opened, but reviewers {} could not be requested: {}",
                reviewers.join(", "),
                reply.message()
            ),
        }),
        _ => Err(api.error(&reply, SCOPE)),
    }
}
