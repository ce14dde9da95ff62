//! Finding the token for a forge: an environment variable, else `git credential fill`.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::Error;
use super::remote::Forge;

/// A secret token. It is never printed: `Debug` shows `Token(***)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(secret: impl Into<String>) -> Self {
        Token(secret.into())
    }

    pub(crate) fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// Where a token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// An environment variable (its name).
    Env(String),
    /// `git credential fill` (a credential helper).
    GitCredential,
    /// Given directly by the caller.
    Explicit,
}

/// A token and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub token: Token,
    pub source: TokenSource,
}

impl Credentials {
    pub fn explicit(token: impl Into<String>) -> Self {
        Credentials {
            token: Token::new(token),
            source: TokenSource::Explicit,
        }
    }
}

/// The environment token lookup runs in: variables (also passed to `git`) and the working
/// directory (a repository's own credential settings apply there).
#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
}

impl Environment {
    /// This process's environment.
    pub fn from_process() -> Self {
        Environment {
            vars: std::env::vars().collect(),
            cwd: None,
        }
    }

    /// Exactly these variables (nothing inherited).
    pub fn from_vars<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Environment {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            cwd: None,
        }
    }

    /// Runs `git` in this directory (a checkout of the repository).
    pub fn in_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }
}

/// The token for a forge: the first of its environment variables that is set (`GITHUB_TOKEN`,
/// `GH_TOKEN`; `GITLAB_TOKEN`; `GITEA_TOKEN`; `FORGEJO_TOKEN`, `GITEA_TOKEN`), else the password
/// `git credential fill` returns for the forge's host (without prompting on the terminal).
pub fn resolve_token(forge: &Forge, env: &Environment) -> Result<Credentials, Error> {
    for var in forge.kind.token_vars() {
        if let Some(v) = env.var(var) {
            return Ok(Credentials {
                token: Token::new(v.trim()),
                source: TokenSource::Env((*var).to_string()),
            });
        }
    }
    let protocol = if forge.web_url.starts_with("http://") {
        "http"
    } else {
        "https"
    };
    match git_credential_fill(protocol, &forge.host, env)? {
        Some(token) => Ok(Credentials {
            token: Token::new(token),
            source: TokenSource::GitCredential,
        }),
        None => Err(Error::NoToken {
            host: forge.host.clone(),
            vars: forge.kind.token_vars().join(" or "),
        }),
    }
}

/// Asks git's credential helpers for the password of `protocol://host`. `None` when no helper
/// has one.
fn git_credential_fill(
    protocol: &str,
    host: &str,
    env: &Environment,
) -> Result<Option<String>, Error> {
    let fail = |step: &'static str, source: std::io::Error| Error::GitCredential {
        host: host.to_string(),
        step,
        source,
    };
    let mut cmd = Command::new("git");
    cmd.args(["credential", "fill"])
        .env_clear()
        .envs(&env.vars)
        // Never ask on the terminal; a missing credential is reported instead.
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = &env.cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(|e| fail("cannot run git", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(format!("protocol={protocol}\nhost={host}\n\n").as_bytes())
            .map_err(|e| fail("cannot talk to git", e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail("cannot run git", e))?;
    if !out.status.success() {
        // No helper had it and prompting is off: git says "could not read Username/Password".
        return Ok(None);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok(stdout
        .lines()
        .find_map(|l| l.strip_prefix("password="))
        .map(str::to_string)
        .filter(|p| !p.is_empty()))
}
