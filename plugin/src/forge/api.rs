//! A small JSON-over-HTTPS client for the forges' REST APIs (ureq, rustls).

use std::time::Duration;

use serde_json::Value;

use super::Error;
use super::PullRequest;
use super::remote::{Forge, check_url};
use super::token::{Credentials, TokenSource};

/// Percent-encodes everything but RFC 3986 unreserved characters (for one path segment or one
/// query value).
pub(crate) fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Like [`enc`] but keeps `/` (for paths such as `group/subgroup` or `feature/x` in web URLs).
pub(crate) fn enc_path(s: &str) -> String {
    s.split('/').map(enc).collect::<Vec<_>>().join("/")
}

/// One answer of the API.
pub(crate) struct Reply {
    pub status: u16,
    pub body: Value,
    pub url: String,
}

impl Reply {
    /// The human-readable message of an error answer.
    pub(crate) fn message(&self) -> String {
        let mut parts = Vec::new();
        match self.body.get("message") {
            Some(Value::String(s)) => parts.push(s.clone()),
            Some(Value::Array(a)) => {
                parts.extend(a.iter().filter_map(Value::as_str).map(str::to_string))
            }
            Some(Value::Object(m)) => parts.push(Value::Object(m.clone()).to_string()),
            _ => {}
        }
        if let Some(Value::Array(errors)) = self.body.get("errors") {
            for e in errors {
                match e {
                    Value::String(s) => parts.push(s.clone()),
                    Value::Object(_) => {
                        if let Some(m) = e.get("message").and_then(Value::as_str) {
                            parts.push(m.to_string());
                        } else if let (Some(f), Some(c)) = (
                            e.get("field").and_then(Value::as_str),
                            e.get("code").and_then(Value::as_str),
                        ) {
                            parts.push(format!("{f} is {c}"));
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(s) = self.body.get("error").and_then(Value::as_str) {
            parts.push(s.to_string());
        }
        if parts.is_empty() {
            match &self.body {
                Value::String(s) if !s.trim().is_empty() => {
                    parts.push(s.chars().take(300).collect())
                }
                _ => parts.push(format!("HTTP {}", self.status)),
            }
        }
        parts.join("; ")
    }

    /// Reads a created or listed pull request.
    pub(crate) fn pull_request(&self, item: &Value, reused: bool) -> Result<PullRequest, Error> {
        let number = item
            .get("number")
            .or_else(|| item.get("iid"))
            .and_then(Value::as_u64);
        let url = item
            .get("html_url")
            .or_else(|| item.get("web_url"))
            .and_then(Value::as_str);
        match (number, url) {
            (Some(number), Some(url)) => Ok(PullRequest {
                number,
                url: url.to_string(),
                reused,
            }),
            _ => Err(Error::ForgeResponse {
                url: self.url.clone(),
                status: self.status,
                message: "the pull request in the answer has no number or web URL".into(),
            }),
        }
    }

    pub(crate) fn unexpected(&self, what: &str) -> Error {
        Error::ForgeResponse {
            url: self.url.clone(),
            status: self.status,
            message: format!("{what}: {}", self.message()),
        }
    }
}

/// A client for one forge with one set of credentials.
pub(crate) struct Api<'f> {
    agent: ureq::Agent,
    pub forge: &'f Forge,
    pub creds: &'f Credentials,
    headers: Vec<(&'static str, String)>,
}

impl<'f> Api<'f> {
    pub(crate) fn new(
        forge: &'f Forge,
        creds: &'f Credentials,
        headers: Vec<(&'static str, String)>,
    ) -> Result<Self, Error> {
        check_url(&forge.api_url)?;
        // The operating system's trust store (and its corporate CAs), as kubectl and git use.
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let config = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .user_agent(concat!("kubectl-gitops/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Api {
            agent: config.into(),
            forge,
            creds,
            headers,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.forge.api_url)
    }

    /// The forge's own Accept value, or JSON.
    fn accept(&self) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("accept"))
            .map_or("application/json", |(_, v)| v.as_str())
    }

    fn extra_headers(&self) -> impl Iterator<Item = &(&'static str, String)> {
        self.headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("accept"))
    }

    pub(crate) fn get(&self, path: &str) -> Result<Reply, Error> {
        let url = self.url(path);
        let mut req = self.agent.get(&url).header("Accept", self.accept());
        for (k, v) in self.extra_headers() {
            req = req.header(*k, v.as_str());
        }
        finish(url, req.call())
    }

    pub(crate) fn post(&self, path: &str, body: &Value) -> Result<Reply, Error> {
        let url = self.url(path);
        let mut req = self
            .agent
            .post(&url)
            .header("Accept", self.accept())
            .header("Content-Type", "application/json");
        for (k, v) in self.extra_headers() {
            req = req.header(*k, v.as_str());
        }
        finish(url, req.send(body.to_string()))
    }

    /// The environment variable to suggest in messages about the token.
    pub(crate) fn token_var(&self) -> String {
        match &self.creds.source {
            TokenSource::Env(v) => v.clone(),
            _ => self.forge.kind.token_vars()[0].to_string(),
        }
    }

    /// The usual errors any call can get: a refused token, a missing or archived repository.
    pub(crate) fn error(&self, reply: &Reply, scope: &str) -> Error {
        let host = self.forge.host.clone();
        let repo = self.forge.full_name();
        let message = reply.message();
        let from_helper = matches!(self.creds.source, TokenSource::GitCredential);
        let var = self.token_var();
        let advice = if from_helper {
            format!("the token from git's credential helper was refused; set {var} with {scope}")
        } else {
            format!("set {var} with {scope}")
        };
        match reply.status {
            401 => Error::TokenRejected {
                host,
                repo,
                hint: advice,
            },
            403 if message.to_ascii_lowercase().contains("archived") => {
                Error::RepoArchived { host, repo }
            }
            403 => Error::TokenRejected {
                host: host.clone(),
                repo,
                hint: format!("{advice} ({host} said: {message})"),
            },
            404 => Error::RepoNotFound { host, repo },
            423 => Error::RepoArchived { host, repo },
            status => Error::ForgeRejected {
                host,
                repo,
                status,
                message,
            },
        }
    }
}

fn finish(
    url: String,
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Reply, Error> {
    let mut response = result.map_err(|source| Error::Network {
        url: url.clone(),
        source,
    })?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(16 * 1024 * 1024)
        .read_to_string()
        .map_err(|source| Error::NetworkRead {
            url: url.clone(),
            source,
        })?;
    let body = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Ok(Reply { status, body, url })
}
