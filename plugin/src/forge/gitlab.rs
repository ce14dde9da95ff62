//! GitLab merge requests (gitlab.com and self-managed, API v4).

use serde_json::{Value, json};

use super::Error;
use super::api::{Api, enc};
use super::remote::Forge;
use super::token::{Credentials, TokenSource};
use super::{PullRequest, PullRequestOptions};

const SCOPE: &str = "api scope";

pub(super) fn open(
    forge: &Forge,
    creds: &Credentials,
    opts: &PullRequestOptions,
) -> Result<PullRequest, Error> {
    // Personal/project tokens go in PRIVATE-TOKEN; a credential helper may hold an OAuth token,
    // which only works as a Bearer token (personal tokens work that way too).
    let auth = match creds.source {
        TokenSource::GitCredential => ("Authorization", format!("Bearer {}", creds.token.secret())),
        _ => ("PRIVATE-TOKEN", creds.token.secret().to_string()),
    };
    let api = Api::new(forge, creds, vec![auth])?;
    // The project is addressed by its URL-encoded full path (group/subgroup/name).
    let project = format!("/projects/{}", enc(&forge.full_name()));
    if let Some(pr) = find_open(&api, &project, &opts.head)? {
        return Ok(pr);
    }
    let reviewer_ids = opts
        .reviewers
        .iter()
        .map(|name| user_id(&api, name))
        .collect::<Result<Vec<u64>, Error>>()?;
    let title = if opts.draft && !opts.title.starts_with("Draft:") {
        format!("Draft: {}", opts.title)
    } else {
        opts.title.clone()
    };
    let mut body = json!({
        "title": title,
        "source_branch": opts.head,
        "target_branch": opts.base,
        "description": opts.body,
    });
    if !reviewer_ids.is_empty() {
        body["reviewer_ids"] = json!(reviewer_ids);
    }
    let reply = api.post(&format!("{project}/merge_requests"), &body)?;
    match reply.status {
        201 => reply.pull_request(&reply.body, false),
        // "Another open merge request already exists for this source branch: !N"
        409 => find_open(&api, &project, &opts.head)?.ok_or_else(|| api.error(&reply, SCOPE)),
        _ => Err(api.error(&reply, SCOPE)),
    }
}

fn find_open(api: &Api<'_>, project: &str, head: &str) -> Result<Option<PullRequest>, Error> {
    let reply = api.get(&format!(
        "{project}/merge_requests?state=opened&source_branch={}&per_page=100",
        enc(head)
    ))?;
    if reply.status != 200 {
        return Err(api.error(&reply, SCOPE));
    }
    let Some(items) = reply.body.as_array() else {
        return Err(reply.unexpected("expected a list of merge requests"));
    };
    items
        .iter()
        .find(|m| m.get("source_branch").and_then(Value::as_str) == Some(head))
        .map(|m| reply.pull_request(m, true))
        .transpose()
}

/// GitLab wants reviewers as user ids.
fn user_id(api: &Api<'_>, name: &str) -> Result<u64, Error> {
    let name = name.trim_start_matches('@');
    let reply = api.get(&format!("/users?username={}", enc(name)))?;
    if reply.status != 200 {
        return Err(api.error(&reply, SCOPE));
    }
    reply
        .body
        .as_array()
        .and_then(|users| {
            users.iter().find(|u| {
                u.get("username")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
        })
        .and_then(|u| u.get("id").and_then(Value::as_u64))
        .ok_or_else(|| Error::ReviewerNotFound {
            host: api.forge.host.clone(),
            user: name.to_string(),
        })
}
