//! Fake GitHub, GitLab, Gitea and Forgejo API servers for the forge client tests.
//!
//! Each fake is a small HTTP/1.1 server on 127.0.0.1 that enforces the part of its forge's
//! published API contract the client uses (the contract copies live outside this repository;
//! `scripts/check-forge-fakes.py` checks these fakes against them):
//! the auth header form, method and path, percent-encoded path parameters, documented query
//! parameters, documented request fields with their types and required fields, and the
//! documented answers (201 with a body shaped like the contract's pull request, 401 for a bad
//! token, 404 for an unknown repository, 409/422 when a pull request from the head already
//! exists, 423 for an archived Gitea/Forgejo repository). Bodies come from the canonical
//! fixtures in `tests/fixtures/forge/`. Everything received is recorded; whatever breaks the
//! contract is also listed in `violations()`, which every test checks is empty.
//!
//! With `GITOPS_GUARD_FORGE_RECORD=DIR` set, every exchange is written to DIR as JSON for the
//! contract check.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use kubectl_gitops::forge::ForgeKind;
use serde_json::{Value, json};

/// One request the fake received and what it answered.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    /// Path below the API prefix, exactly as sent (still percent-encoded), without the query.
    pub path: String,
    /// Decoded query parameters in order.
    pub query: Vec<(String, String)>,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    pub status: u16,
    pub response: Value,
}

impl Exchange {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A pull request (merge request) the fake knows.
#[derive(Debug, Clone)]
pub struct Pull {
    pub number: u64,
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
    pub draft: bool,
    pub open: bool,
    /// Logins (GitHub, Gitea, Forgejo) or user ids as strings (GitLab).
    pub reviewers: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct Repo {
    archived: bool,
    branches: Vec<String>,
    pulls: Vec<Pull>,
}

#[derive(Debug, Default)]
struct State {
    token: String,
    repos: BTreeMap<String, Repo>,
    users: BTreeMap<String, u64>,
    next_number: u64,
    stale_lists: usize,
    log: Vec<Exchange>,
    violations: Vec<String>,
}

pub struct FakeForge {
    pub kind: ForgeKind,
    addr: SocketAddr,
    prefix: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    id: usize,
}

static INSTANCES: AtomicUsize = AtomicUsize::new(0);

fn fixtures() -> PathBuf {
    // Also compiled into the end-to-end tests crate (`tests/`), next to `plugin/`.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let own = dir.join("tests/fixtures/forge");
    if own.is_dir() {
        own
    } else {
        dir.join("../plugin/tests/fixtures/forge")
    }
}

fn fixture(kind: ForgeKind, name: &str) -> Value {
    let path = fixtures().join(kind.name()).join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// RFC 3986 strict encoding, the form the client must send path parameters in.
fn strict_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 3 <= b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Documented request fields (name, JSON type) of the create call of each forge.
fn create_fields(kind: ForgeKind) -> &'static [(&'static str, &'static str)] {
    match kind {
        ForgeKind::GitHub => &[
            ("title", "string"),
            ("head", "string"),
            ("head_repo", "string"),
            ("base", "string"),
            ("body", "string"),
            ("maintainer_can_modify", "boolean"),
            ("draft", "boolean"),
            ("issue", "integer"),
        ],
        ForgeKind::Gitea => &[
            ("allow_maintainer_edit", "boolean"),
            ("assignee", "string"),
            ("assignees", "string[]"),
            ("base", "string"),
            ("body", "string"),
            ("due_date", "string"),
            ("head", "string"),
            ("labels", "integer[]"),
            ("milestone", "integer"),
            ("reviewers", "string[]"),
            ("team_reviewers", "string[]"),
            ("title", "string"),
        ],
        ForgeKind::Forgejo => &[
            ("assignee", "string"),
            ("assignees", "string[]"),
            ("base", "string"),
            ("body", "string"),
            ("due_date", "string"),
            ("head", "string"),
            ("labels", "integer[]"),
            ("milestone", "integer"),
            ("title", "string"),
        ],
        ForgeKind::GitLab => &[
            ("title", "string"),
            ("source_branch", "string"),
            ("target_branch", "string"),
            ("target_project_id", "integer"),
            ("assignee_id", "integer"),
            ("assignee_ids", "integer[]"),
            ("reviewer_ids", "integer[]"),
            ("description", "string"),
            ("labels", "string[]"),
            ("add_labels", "string[]"),
            ("remove_labels", "string[]"),
            ("milestone_id", "integer"),
            ("remove_source_branch", "boolean"),
            ("allow_collaboration", "boolean"),
            ("allow_maintainer_to_push", "boolean"),
            ("squash", "boolean"),
            ("merge_after", "string"),
            ("approvals_before_merge", "integer"),
        ],
    }
}

fn required_fields(kind: ForgeKind) -> &'static [&'static str] {
    match kind {
        ForgeKind::GitHub | ForgeKind::Gitea | ForgeKind::Forgejo => &["head", "base", "title"],
        ForgeKind::GitLab => &["title", "source_branch", "target_branch"],
    }
}

/// Documented query parameters of the list call.
fn list_params(kind: ForgeKind) -> &'static [&'static str] {
    match kind {
        ForgeKind::GitHub => &[
            "state",
            "head",
            "base",
            "sort",
            "direction",
            "per_page",
            "page",
        ],
        ForgeKind::Gitea => &[
            "base_branch",
            "state",
            "sort",
            "milestone",
            "labels",
            "poster",
            "page",
            "limit",
        ],
        ForgeKind::Forgejo => &[
            "state",
            "sort",
            "milestone",
            "labels",
            "poster",
            "page",
            "limit",
        ],
        ForgeKind::GitLab => &[
            "author_id",
            "author_username",
            "assignee_id",
            "assignee_username",
            "reviewer_username",
            "labels",
            "milestone",
            "my_reaction_emoji",
            "reviewer_id",
            "state",
            "order_by",
            "sort",
            "with_labels_details",
            "with_merge_status_recheck",
            "created_after",
            "created_before",
            "updated_after",
            "updated_before",
            "view",
            "scope",
            "source_branch",
            "source_project_id",
            "target_branch",
            "search",
            "in",
            "wip",
            "deployed_before",
            "deployed_after",
            "environment",
            "approved",
            "merge_user_id",
            "merge_user_username",
            "approver_ids",
            "approved_by_ids",
            "approved_by_usernames",
            "page",
            "per_page",
            "iids",
        ],
    }
}

fn type_ok(v: &Value, ty: &str) -> bool {
    match ty {
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "string[]" => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        "integer[]" => v
            .as_array()
            .is_some_and(|a| a.iter().all(|x| x.is_i64() || x.is_u64())),
        _ => false,
    }
}

impl FakeForge {
    /// Starts a fake serving its API under `prefix` (`""` like api.github.com, `/api/v3`,
    /// `/api/v4`, `/api/v1`). The valid token is `token`.
    pub fn start(kind: ForgeKind, prefix: &str, token: &str) -> FakeForge {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake forge");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State {
            token: token.to_string(),
            next_number: 41,
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let server = Server {
            kind,
            prefix: prefix.to_string(),
            web: format!("http://{addr}"),
            state: state.clone(),
        };
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    server.serve(stream);
                }
            }
        });
        FakeForge {
            kind,
            addr,
            prefix: prefix.to_string(),
            state,
            stop,
            thread: Some(thread),
            id: INSTANCES.fetch_add(1, Ordering::SeqCst),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The API base URL to give the client.
    pub fn api_url(&self) -> String {
        format!("http://{}{}", self.addr, self.prefix)
    }

    /// `127.0.0.1:PORT`, the host the client names in messages.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    pub fn add_repo(&self, full_name: &str, branches: &[&str]) {
        self.lock().repos.insert(
            full_name.to_string(),
            Repo {
                branches: branches.iter().map(|b| b.to_string()).collect(),
                ..Repo::default()
            },
        );
    }

    pub fn archive(&self, full_name: &str) {
        if let Some(r) = self.lock().repos.get_mut(full_name) {
            r.archived = true;
        }
    }

    pub fn add_user(&self, login: &str, id: u64) {
        self.lock().users.insert(login.to_string(), id);
    }

    /// An open pull request that already exists.
    pub fn add_open_pull(&self, full_name: &str, head: &str, base: &str, title: &str) -> u64 {
        let mut st = self.lock();
        st.next_number += 1;
        let number = st.next_number;
        if let Some(r) = st.repos.get_mut(full_name) {
            r.pulls.push(Pull {
                number,
                head: head.to_string(),
                base: base.to_string(),
                title: title.to_string(),
                body: String::new(),
                draft: false,
                open: true,
                reviewers: Vec::new(),
            });
        }
        number
    }

    /// The next `n` list calls answer as if no pull request were open (another client created
    /// one in between, so the create call meets the "already exists" answer).
    pub fn set_stale_lists(&self, n: usize) {
        self.lock().stale_lists = n;
    }

    pub fn requests(&self) -> Vec<Exchange> {
        self.lock().log.clone()
    }

    pub fn pulls(&self, full_name: &str) -> Vec<Pull> {
        self.lock()
            .repos
            .get(full_name)
            .map(|r| r.pulls.clone())
            .unwrap_or_default()
    }

    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// Panics when the client broke the contract anywhere.
    pub fn assert_clean(&self) {
        let v = self.violations();
        assert!(
            v.is_empty(),
            "{} fake saw contract violations:\n{}",
            self.kind,
            v.join("\n")
        );
    }

    fn write_recordings(&self) {
        let Some(dir) = std::env::var_os("GITOPS_GUARD_FORGE_RECORD") else {
            return;
        };
        let dir = PathBuf::from(dir);
        let _ = std::fs::create_dir_all(&dir);
        let test = std::thread::current()
            .name()
            .unwrap_or("test")
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        for (i, ex) in self.lock().log.iter().enumerate() {
            let query: serde_json::Map<String, Value> = ex
                .query
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            let record = json!({
                "forge": self.kind.name(),
                "test": test,
                "method": ex.method,
                "path": ex.path,
                "query": query,
                "request": ex.body,
                "status": ex.status,
                "response": ex.response,
            });
            let name = format!(
                "{}-{test}-{}-{}-{i:03}.json",
                self.kind.name(),
                std::process::id(),
                self.id
            );
            let _ = std::fs::write(dir.join(name), record.to_string());
        }
    }
}

impl Drop for FakeForge {
    fn drop(&mut self) {
        self.write_recordings();
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Server {
    kind: ForgeKind,
    prefix: String,
    web: String,
    state: Arc<Mutex<State>>,
}

struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    raw_body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut raw_body = vec![0; len];
    reader.read_exact(&mut raw_body).ok()?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.clone(), String::new()),
    };
    let query = query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect();
    Some(Request {
        method,
        path,
        query,
        headers,
        raw_body,
    })
}

/// What a handler answers.
struct Answer {
    status: u16,
    body: Value,
}

fn answer(status: u16, body: Value) -> Answer {
    Answer { status, body }
}

impl Server {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn violation(&self, what: String) {
        self.lock().violations.push(what);
    }

    fn serve(&self, mut stream: TcpStream) {
        let Some(req) = read_request(&mut stream) else {
            return;
        };
        let body = if req.raw_body.is_empty() {
            None
        } else {
            match serde_json::from_slice::<Value>(&req.raw_body) {
                Ok(v) => Some(v),
                Err(e) => {
                    self.violation(format!(
                        "{} {}: body is not JSON: {e}",
                        req.method, req.path
                    ));
                    Some(Value::String(
                        String::from_utf8_lossy(&req.raw_body).into_owned(),
                    ))
                }
            }
        };
        let rel = req.path.strip_prefix(&self.prefix).map(str::to_string);
        let ans = match &rel {
            Some(rel) => self.route(&req, rel, body.as_ref()),
            None => {
                self.violation(format!(
                    "{} {} is outside the API prefix {}",
                    req.method, req.path, self.prefix
                ));
                answer(404, fixture(self.kind, "error-not-found.json"))
            }
        };
        self.lock().log.push(Exchange {
            method: req.method.clone(),
            path: rel.unwrap_or(req.path.clone()),
            query: req.query.clone(),
            headers: req.headers.clone(),
            body,
            status: ans.status,
            response: ans.body.clone(),
        });
        let text = ans.body.to_string();
        let reason = match ans.status {
            200 => "OK",
            201 => "Created",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            409 => "Conflict",
            422 => "Unprocessable Entity",
            423 => "Locked",
            _ => "Other",
        };
        let _ = write!(
            stream,
            "HTTP/1.1 {} {reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
            ans.status,
            text.len()
        );
        let _ = stream.flush();
    }

    fn authorized(&self, req: &Request) -> bool {
        let token = self.lock().token.clone();
        let auth = req.header("authorization");
        match self.kind {
            ForgeKind::GitHub => {
                auth == Some(&format!("Bearer {token}")) || auth == Some(&format!("token {token}"))
            }
            ForgeKind::GitLab => {
                req.header("private-token") == Some(&token)
                    || auth == Some(&format!("Bearer {token}"))
            }
            ForgeKind::Gitea | ForgeKind::Forgejo => auth == Some(&format!("token {token}")),
        }
    }

    fn unauthorized(&self) -> Answer {
        let name = match self.kind {
            ForgeKind::GitHub => "error-bad-credentials.json",
            _ => "error-unauthorized.json",
        };
        answer(401, fixture(self.kind, name))
    }

    fn not_found(&self) -> Answer {
        answer(404, fixture(self.kind, "error-not-found.json"))
    }

    /// Checks that every path parameter is strictly percent-encoded and returns them decoded.
    fn params(&self, req: &Request, raw: &[&str]) -> Vec<String> {
        raw.iter()
            .map(|seg| {
                let decoded = decode(seg);
                if strict_encode(&decoded) != *seg {
                    self.violation(format!(
                        "{} {}: path parameter {seg:?} is not percent-encoded as {:?}",
                        req.method,
                        req.path,
                        strict_encode(&decoded)
                    ));
                }
                decoded
            })
            .collect()
    }

    fn check_query(&self, req: &Request, allowed: &[&str]) {
        for (k, _) in &req.query {
            if !allowed.contains(&k.as_str()) {
                self.violation(format!(
                    "{} {}: query parameter {k} is not documented",
                    req.method, req.path
                ));
            }
        }
    }

    fn route(&self, req: &Request, rel: &str, body: Option<&Value>) -> Answer {
        let segs: Vec<&str> = rel.trim_start_matches('/').split('/').collect();
        let m = req.method.as_str();
        if m == "POST"
            && !req
                .header("content-type")
                .is_some_and(|c| c.starts_with("application/json"))
        {
            self.violation(format!(
                "POST {}: Content-Type is not application/json",
                req.path
            ));
        }
        let route = match (self.kind, m, segs.as_slice()) {
            (ForgeKind::GitLab, "GET", ["users"]) => Route::Users,
            (ForgeKind::GitLab, "GET", ["projects", id, "merge_requests"]) => {
                Route::List(self.params(req, &[id])[0].clone())
            }
            (ForgeKind::GitLab, "POST", ["projects", id, "merge_requests"]) => {
                Route::Create(self.params(req, &[id])[0].clone())
            }
            (ForgeKind::GitLab, _, _) => Route::Unknown,
            (_, "GET", ["repos", o, r]) if self.kind != ForgeKind::GitHub => {
                let p = self.params(req, &[o, r]);
                Route::Repo(format!("{}/{}", p[0], p[1]))
            }
            (_, "GET", ["repos", o, r, "pulls"]) => {
                let p = self.params(req, &[o, r]);
                Route::List(format!("{}/{}", p[0], p[1]))
            }
            (_, "POST", ["repos", o, r, "pulls"]) => {
                let p = self.params(req, &[o, r]);
                Route::Create(format!("{}/{}", p[0], p[1]))
            }
            (_, "POST", ["repos", o, r, "pulls", n, "requested_reviewers"]) => {
                let p = self.params(req, &[o, r]);
                match n.parse() {
                    Ok(n) => Route::Reviewers(format!("{}/{}", p[0], p[1]), n),
                    Err(_) => Route::Unknown,
                }
            }
            _ => Route::Unknown,
        };
        if let Route::Unknown = route {
            self.violation(format!("{m} {rel} is not an operation the client may call"));
            return self.not_found();
        }
        if !self.authorized(req) {
            return self.unauthorized();
        }
        match route {
            Route::Users => self.users(req),
            Route::Repo(full) => self.repo(&full),
            Route::List(full) => self.list(req, &full),
            Route::Create(full) => self.create(req, &full, body),
            Route::Reviewers(full, n) => self.reviewers(req, &full, n, body),
            Route::Unknown => self.not_found(),
        }
    }

    fn repo(&self, full: &str) -> Answer {
        if !self.lock().repos.contains_key(full) {
            return self.not_found();
        }
        let mut v = fixture(self.kind, "repository.json");
        let (owner, name) = full.rsplit_once('/').unwrap_or(("", full));
        v["full_name"] = json!(full);
        v["name"] = json!(name);
        v["owner"]["login"] = json!(owner);
        v["html_url"] = json!(format!("{}/{full}", self.web));
        answer(200, v)
    }

    fn pull_json(&self, full: &str, p: &Pull, simple: bool) -> Value {
        let owner = full.split('/').next().unwrap_or_default();
        match self.kind {
            ForgeKind::GitHub => {
                let mut v = fixture(
                    self.kind,
                    if simple {
                        "pull-request-simple.json"
                    } else {
                        "pull-request.json"
                    },
                );
                v["number"] = json!(p.number);
                v["id"] = json!(1_785_200_000 + p.number);
                v["title"] = json!(p.title);
                v["body"] = json!(p.body);
                v["state"] = json!(if p.open { "open" } else { "closed" });
                v["draft"] = json!(p.draft);
                v["html_url"] = json!(format!("{}/{full}/pull/{}", self.web, p.number));
                v["_links"]["html"]["href"] = v["html_url"].clone();
                v["head"]["ref"] = json!(p.head);
                v["head"]["label"] = json!(format!("{owner}:{}", p.head));
                v["base"]["ref"] = json!(p.base);
                v["base"]["label"] = json!(format!("{owner}:{}", p.base));
                v
            }
            ForgeKind::Gitea | ForgeKind::Forgejo => {
                let mut v = fixture(self.kind, "pull-request.json");
                v["number"] = json!(p.number);
                v["id"] = json!(1300 + p.number);
                v["title"] = json!(p.title);
                v["body"] = json!(p.body);
                v["state"] = json!(if p.open { "open" } else { "closed" });
                v["html_url"] = json!(format!("{}/{full}/pulls/{}", self.web, p.number));
                v["head"]["ref"] = json!(p.head);
                v["head"]["label"] = json!(p.head);
                v["head"]["repo"]["full_name"] = json!(full);
                v["base"]["ref"] = json!(p.base);
                v["base"]["label"] = json!(p.base);
                v["base"]["repo"]["full_name"] = json!(full);
                v
            }
            ForgeKind::GitLab => {
                let mut v = fixture(self.kind, "merge-request.json");
                v["iid"] = json!(p.number);
                v["id"] = json!(300_000 + p.number);
                v["title"] = json!(p.title);
                v["description"] = json!(p.body);
                v["state"] = json!(if p.open { "opened" } else { "closed" });
                v["draft"] = json!(p.draft);
                v["work_in_progress"] = json!(p.draft);
                v["source_branch"] = json!(p.head);
                v["target_branch"] = json!(p.base);
                v["reference"] = json!(format!("!{}", p.number));
                v["references"]["short"] = json!(format!("!{}", p.number));
                v["references"]["relative"] = json!(format!("!{}", p.number));
                v["references"]["full"] = json!(format!("{full}!{}", p.number));
                v["web_url"] = json!(format!("{}/{full}/-/merge_requests/{}", self.web, p.number));
                v
            }
        }
    }

    fn list(&self, req: &Request, full: &str) -> Answer {
        self.check_query(req, list_params(self.kind));
        let mut st = self.lock();
        let Some(repo) = st.repos.get(full).cloned() else {
            drop(st);
            return self.not_found();
        };
        if st.stale_lists > 0 {
            st.stale_lists -= 1;
            return answer(200, json!([]));
        }
        drop(st);
        let q = |k: &str| {
            req.query
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        let state = q("state");
        let want_open = match self.kind {
            ForgeKind::GitLab => state.as_deref().is_none_or(|s| s == "opened" || s == "all"),
            _ => state.as_deref().is_none_or(|s| s == "open" || s == "all"),
        };
        let mut items: Vec<&Pull> = repo
            .pulls
            .iter()
            .filter(|p| p.open == want_open || state.as_deref() == Some("all"))
            .collect();
        match self.kind {
            ForgeKind::GitHub => {
                if let Some(head) = q("head") {
                    match head.split_once(':') {
                        Some((_, branch)) => items.retain(|p| p.head == branch),
                        None => self.violation(format!(
                            "GET {}: head must be user:branch, got {head:?}",
                            req.path
                        )),
                    }
                }
            }
            ForgeKind::GitLab => {
                if let Some(src) = q("source_branch") {
                    items.retain(|p| p.head == src);
                }
            }
            ForgeKind::Gitea | ForgeKind::Forgejo => {
                let limit: usize = q("limit").and_then(|l| l.parse().ok()).unwrap_or(30).max(1);
                let page: usize = q("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
                items = items
                    .into_iter()
                    .skip((page - 1) * limit)
                    .take(limit)
                    .collect();
            }
        }
        let list: Vec<Value> = items
            .iter()
            .map(|p| self.pull_json(full, p, true))
            .collect();
        answer(200, Value::Array(list))
    }

    /// Checks a create body against the documented fields; returns an error answer if broken.
    fn check_body(
        &self,
        req: &Request,
        body: Option<&Value>,
    ) -> Result<serde_json::Map<String, Value>, Answer> {
        let fields = create_fields(self.kind);
        let Some(Value::Object(obj)) = body else {
            self.violation(format!("POST {}: body is not a JSON object", req.path));
            return Err(self.invalid("body", "missing_field"));
        };
        for (k, v) in obj {
            match fields.iter().find(|(n, _)| n == k) {
                None => {
                    self.violation(format!(
                        "POST {}: field {k} is not documented for {}",
                        req.path, self.kind
                    ));
                    return Err(self.invalid(k, "invalid"));
                }
                Some((_, ty)) if !type_ok(v, ty) => {
                    self.violation(format!(
                        "POST {}: field {k} must be {ty}, got {v}",
                        req.path
                    ));
                    return Err(self.invalid(k, "invalid"));
                }
                _ => {}
            }
        }
        for k in required_fields(self.kind) {
            if obj
                .get(*k)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                self.violation(format!("POST {}: required field {k} is missing", req.path));
                return Err(self.invalid(k, "missing_field"));
            }
        }
        Ok(obj.clone())
    }

    fn invalid(&self, field: &str, code: &str) -> Answer {
        match self.kind {
            ForgeKind::GitHub => {
                let mut v = fixture(self.kind, "error-missing-field.json");
                v["errors"][0]["field"] = json!(field);
                v["errors"][0]["code"] = json!(code);
                answer(422, v)
            }
            ForgeKind::GitLab => answer(400, json!({ "error": format!("{field} is {code}") })),
            _ => {
                let mut v = fixture(self.kind, "error-validation.json");
                v["message"] = json!(format!("[{field}]: {code}"));
                answer(422, v)
            }
        }
    }

    fn create(&self, req: &Request, full: &str, body: Option<&Value>) -> Answer {
        self.check_query(req, &[]);
        let obj = match self.check_body(req, body) {
            Ok(o) => o,
            Err(a) => return a,
        };
        let s = |k: &str| {
            obj.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (head, base, text) = match self.kind {
            ForgeKind::GitLab => (s("source_branch"), s("target_branch"), s("description")),
            _ => (s("head"), s("base"), s("body")),
        };
        let title = s("title");
        let mut st = self.lock();
        let users = st.users.clone();
        let Some(repo) = st.repos.get_mut(full) else {
            drop(st);
            return self.not_found();
        };
        if repo.archived {
            return match self.kind {
                ForgeKind::GitHub => answer(403, fixture(self.kind, "error-archived.json")),
                _ => answer(423, fixture(self.kind, "error-archived.json")),
            };
        }
        if let Some(existing) = repo.pulls.iter().find(|p| p.open && p.head == head) {
            let number = existing.number;
            let owner = full.split('/').next().unwrap_or_default();
            let mut v = fixture(self.kind, "error-already-exists.json");
            return match self.kind {
                ForgeKind::GitHub => {
                    v["errors"][0]["message"] =
                        json!(format!("A pull request already exists for {owner}:{head}."));
                    answer(422, v)
                }
                ForgeKind::GitLab => {
                    v["message"][0] = json!(format!(
                        "Another open merge request already exists for this source branch: !{number}"
                    ));
                    answer(409, v)
                }
                _ => answer(409, v),
            };
        }
        if self.kind != ForgeKind::GitLab {
            for (field, branch) in [("head", &head), ("base", &base)] {
                if !repo.branches.contains(branch) {
                    return match self.kind {
                        ForgeKind::GitHub => {
                            let mut v = fixture(self.kind, "error-invalid-head.json");
                            v["errors"][0]["field"] = json!(field);
                            answer(422, v)
                        }
                        _ => answer(404, fixture(self.kind, "error-not-found.json")),
                    };
                }
            }
        }
        let mut reviewers = Vec::new();
        if let Some(Value::Array(list)) = obj.get("reviewers") {
            for r in list.iter().filter_map(Value::as_str) {
                if !users.contains_key(r) {
                    let mut v = fixture(self.kind, "error-validation.json");
                    v["message"] = json!(format!("reviewer {r} does not exist"));
                    return answer(422, v);
                }
                reviewers.push(r.to_string());
            }
        }
        if let Some(Value::Array(ids)) = obj.get("reviewer_ids") {
            reviewers.extend(ids.iter().map(|i| i.to_string()));
        }
        let draft = match self.kind {
            ForgeKind::GitHub => obj.get("draft").and_then(Value::as_bool).unwrap_or(false),
            ForgeKind::GitLab => title.starts_with("Draft:"),
            _ => title.starts_with("WIP:"),
        };
        st.next_number += 1;
        let pull = Pull {
            number: st.next_number,
            head,
            base,
            title,
            body: text,
            draft,
            open: true,
            reviewers,
        };
        if let Some(repo) = st.repos.get_mut(full) {
            repo.pulls.push(pull.clone());
        }
        drop(st);
        answer(201, self.pull_json(full, &pull, false))
    }

    fn reviewers(&self, req: &Request, full: &str, number: u64, body: Option<&Value>) -> Answer {
        self.check_query(req, &[]);
        let allowed: &[&str] = match self.kind {
            ForgeKind::GitHub => &["reviewers", "team_reviewers"],
            _ => &["reviewers", "team_reviewers"],
        };
        let Some(Value::Object(obj)) = body else {
            self.violation(format!("POST {}: body is not a JSON object", req.path));
            return self.invalid("reviewers", "missing_field");
        };
        for (k, v) in obj {
            if !allowed.contains(&k.as_str()) || !type_ok(v, "string[]") {
                self.violation(format!(
                    "POST {}: field {k} = {v} is not documented",
                    req.path
                ));
                return self.invalid(k, "invalid");
            }
        }
        let mut st = self.lock();
        let users = st.users.clone();
        let Some(pull) = st
            .repos
            .get_mut(full)
            .and_then(|r| r.pulls.iter_mut().find(|p| p.number == number))
        else {
            drop(st);
            return self.not_found();
        };
        for r in obj
            .get("reviewers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = r.as_str().unwrap_or_default();
            if !users.contains_key(r) {
                return match self.kind {
                    ForgeKind::GitHub => {
                        let mut v = fixture(self.kind, "error-missing-field.json");
                        v["errors"] = json!([]);
                        v["message"] = json!(
                            "Reviews may only be requested from collaborators. One or more of the users or teams you specified is not a collaborator of the acme/platform repository."
                        );
                        answer(422, v)
                    }
                    _ => {
                        let mut v = fixture(self.kind, "error-validation.json");
                        v["message"] = json!(format!("reviewer {r} does not exist"));
                        answer(422, v)
                    }
                };
            }
            pull.reviewers.push(r.to_string());
        }
        for t in obj
            .get("team_reviewers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            pull.reviewers
                .push(format!("team:{}", t.as_str().unwrap_or_default()));
        }
        let pull = pull.clone();
        drop(st);
        match self.kind {
            ForgeKind::GitHub => answer(201, self.pull_json(full, &pull, false)),
            _ => answer(201, json!([])),
        }
    }

    fn users(&self, req: &Request) -> Answer {
        self.check_query(req, &["username", "search", "active", "page", "per_page"]);
        let name = req
            .query
            .iter()
            .find(|(k, _)| k == "username")
            .map(|(_, v)| v.clone());
        let users = self.lock().users.clone();
        let list: Vec<Value> = users
            .iter()
            .filter(|(login, _)| {
                name.as_deref()
                    .is_none_or(|n| n.eq_ignore_ascii_case(login))
            })
            .map(|(login, id)| {
                let mut v = fixture(self.kind, "user.json");
                v["id"] = json!(id);
                v["username"] = json!(login);
                v["name"] = json!(login);
                v["web_url"] = json!(format!("{}/{login}", self.web));
                v
            })
            .collect();
        answer(200, Value::Array(list))
    }
}

enum Route {
    Users,
    Repo(String),
    List(String),
    Create(String),
    Reviewers(String, u64),
    Unknown,
}
