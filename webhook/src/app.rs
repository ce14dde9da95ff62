//! The shared state and the two routers.
//!
//! - [`App::router`]: `POST /validate` (served over TLS). Answers every AdmissionReview with a
//!   decision. One it cannot decode, or larger than [`MAX_BODY`], is refused with an
//!   AdmissionReview (`allowed: false`, `status.code` 400 or 413) addressed to the uid read from the
//!   start of the body ([`Envelope::recover`]): a bare HTTP error would let a webhook entry with
//!   `failurePolicy: Ignore` admit it. HTTP errors (with a JSON body `{"error": "..."}`) remain
//!   for bodies with no uid to answer to — 400 malformed, 413 too large, 408 not arrived in time —
//!   and for 415 not JSON, 404 unknown path, 405; the API server then applies the entry's
//!   failurePolicy.
//!
//!   Every request has a deadline ([`ReviewLimits::request_timeout`], below the webhook's
//!   `timeoutSeconds`) and at most [`ReviewLimits::max_concurrent_reviews`] reviews are decided at
//!   once. A review not answered by its deadline — its body too slow, no slot free, or deciding
//!   too slow — is refused with an AdmissionReview for its uid (code 504 or 429, "retry"), for
//!   the same reason: the API server's own timeout would let `Ignore` entries admit it.
//! - [`App::probe_router`]: `GET /healthz`, `/readyz`, `/metrics`, `/version` (plain HTTP, own port).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use gitops_guard_core::review::Envelope;
use gitops_guard_core::{AdmissionRequest, Config, Lookup, Object};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

use crate::cache::Caches;
use crate::cluster::{self, EventTarget, ParentCache, ParentRef};
use crate::handler;
use crate::logging::DenialLog;
use crate::metrics::{self, Held, Metrics, Outcome, RequestError};
use crate::readiness::Readiness;

/// Largest AdmissionReview decided, in bytes.
///
/// An UPDATE's review carries two objects, the old and the new one. etcd stores an object in at
/// most 1.5 MiB (its default `--max-request-bytes`; built-in kinds as protobuf), and the review
/// carries it as JSON in which the API server writes each `<`, `>`, `&` (and control characters and
/// invalid UTF-8) as a six-byte escape (`\u003c`): a stored byte becomes at most six. So a review of
/// objects etcd can store is at most 2 × 1.5 MiB × 6 = 18 MiB plus the envelope (user, options).
/// 32 MiB leaves room for both, and for a new object that a patch made larger than what etcd will
/// then store. Larger reviews are refused (fail closed), as are those of clusters that raise
/// etcd's limit enough to need more.
pub const MAX_BODY: usize = 32 * 1024 * 1024;

/// How long a request body may take to arrive. The API server sends a review at once and waits at
/// most the webhook's `timeoutSeconds` (the chart: 3 s) for the answer; a client that trickles its
/// body (slow-loris) is cut off well before, with an HTTP 408.
pub const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// Reviews larger than this are decoded and decided one at a time (with the record of where their
/// values lie, the largest take up to about 100 MiB); smaller ones side by side. The turn is
/// taken once the body is in, so a client sending slowly holds no one up.
pub const LARGE_BODY: usize = 3 * 1024 * 1024;

/// Reviews larger than this are decoded and decided with [`tokio::task::block_in_place`]: their
/// decision can take milliseconds, and a worker thread busy that long would hold up the tasks
/// queued behind it (another connection, another review's deadline). Smaller ones, decided in
/// tens of microseconds, stay on the worker (handing the worker over costs more than that).
pub const BLOCKING_BODY: usize = 64 * 1024;

/// Of a body declared larger than [`MAX_BODY`], how much is read to find the uid it is answered
/// with (the API server writes it within the first few hundred bytes).
pub const ENVELOPE_PREFIX: usize = 64 * 1024;

/// How much of a body larger than [`MAX_BODY`] is read and dropped before the refusal is sent, so
/// that an HTTP/1.1 client still sending it reads the answer rather than a reset connection (over
/// HTTP/2, as the API server calls webhooks, the stream is simply ended). Past this the
/// connection is closed.
pub const DRAIN_LIMIT: u64 = 256 * 1024 * 1024;

/// The request deadline and the concurrency limit (`--request-timeout`,
/// `--max-concurrent-reviews`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewLimits {
    /// From a request's headers to its answer. The body has [`BODY_DEADLINE`] of it.
    pub request_timeout: Duration,
    /// Reviews decoded and decided at once (their bodies in); others wait for a slot until the
    /// deadline.
    pub max_concurrent_reviews: usize,
}

/// Below the chart's `timeoutSeconds: 3`, with room for the answer to travel.
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(2500);

/// Reviews decided at once. Deciding takes microseconds; the slots are held longer only while a
/// live object is read from the API server (up to 1 s).
pub const MAX_CONCURRENT_REVIEWS: usize = 64;

impl Default for ReviewLimits {
    fn default() -> ReviewLimits {
        ReviewLimits {
            request_timeout: REQUEST_TIMEOUT,
            max_concurrent_reviews: MAX_CONCURRENT_REVIEWS,
        }
    }
}

struct Inner {
    config: ArcSwap<Config>,
    lookup: Arc<dyn Lookup + Send + Sync>,
    caches: Option<Arc<Caches>>,
    client: Option<kube::Client>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    parents: ParentCache,
    /// One permit: the review larger than [`LARGE_BODY`] being decoded and decided.
    large: Arc<Semaphore>,
    /// Counts repeated denials instead of logging each.
    denials: Arc<DenialLog>,
    limits: ReviewLimits,
    /// [`ReviewLimits::max_concurrent_reviews`] permits: the reviews being decided.
    reviews: Semaphore,
}

/// The webhook's state; cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("client", &self.inner.client.is_some())
            .finish_non_exhaustive()
    }
}

impl App {
    /// An app deciding with a fixed [`Lookup`] and no API server: scale requests are answered
    /// with an error (their parent cannot be read) and no Events are recorded.
    pub fn new(config: Arc<Config>, lookup: Arc<dyn Lookup + Send + Sync>) -> App {
        App::build(config, lookup, None, None)
    }

    /// An app backed by the watch caches and the API server.
    pub fn with_cluster(config: Arc<Config>, caches: Arc<Caches>, client: kube::Client) -> App {
        App::build(config, caches.clone(), Some(caches), Some(client))
    }

    fn build(
        config: Arc<Config>,
        lookup: Arc<dyn Lookup + Send + Sync>,
        caches: Option<Arc<Caches>>,
        client: Option<kube::Client>,
    ) -> App {
        App {
            inner: Arc::new(Inner {
                config: ArcSwap::new(config),
                lookup,
                caches,
                client,
                metrics: Arc::new(Metrics::new()),
                readiness: Arc::new(Readiness::new()),
                parents: ParentCache::new(),
                large: Arc::new(Semaphore::new(1)),
                denials: Arc::new(DenialLog::default()),
                limits: ReviewLimits::default(),
                reviews: Semaphore::new(MAX_CONCURRENT_REVIEWS),
            }),
        }
    }

    /// This app (its config, lookup, caches, client, metrics and readiness) with other limits.
    pub fn with_limits(&self, limits: ReviewLimits) -> App {
        let i = &self.inner;
        App {
            inner: Arc::new(Inner {
                config: ArcSwap::new(i.config.load_full()),
                lookup: i.lookup.clone(),
                caches: i.caches.clone(),
                client: i.client.clone(),
                metrics: i.metrics.clone(),
                readiness: i.readiness.clone(),
                parents: ParentCache::new(),
                large: i.large.clone(),
                denials: i.denials.clone(),
                limits,
                reviews: Semaphore::new(limits.max_concurrent_reviews.max(1)),
            }),
        }
    }

    pub fn limits(&self) -> ReviewLimits {
        self.inner.limits
    }

    /// The config in effect.
    pub fn config(&self) -> Arc<Config> {
        self.inner.config.load_full()
    }

    /// Puts a new config in effect (and derives the caches again).
    pub fn set_config(&self, config: Arc<Config>) {
        self.inner.config.store(config.clone());
        if let Some(caches) = &self.inner.caches {
            caches.set_config(config);
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    pub fn readiness(&self) -> &Arc<Readiness> {
        &self.inner.readiness
    }

    /// The TLS-side router: `POST /validate`, and `GET /version` (what `kubectl gitops version`
    /// reads through the API server's service proxy, which reaches only this port).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/validate", post(validate))
            .route("/version", get(version))
            .method_not_allowed_fallback(method_not_allowed)
            .fallback(not_found)
            .with_state(self.clone())
    }

    /// The probe-side router: `GET /healthz`, `/readyz`, `/metrics`, `/managed-kinds`, `/version`.
    pub fn probe_router(&self) -> Router {
        Router::new()
            .route("/healthz", get(healthz))
            .route("/version", get(version))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics_text))
            .route("/managed-kinds", get(managed_kinds))
            .method_not_allowed_fallback(method_not_allowed)
            .fallback(not_found)
            .with_state(self.clone())
    }

    /// The parent object of a scale request, as JSON text (`None`: it does not exist).
    async fn scale_parent(
        &self,
        key: &ParentRef,
        ttl: Duration,
    ) -> Result<Option<Arc<str>>, String> {
        if let Some(hit) = self.inner.parents.get(key, ttl) {
            return Ok(hit);
        }
        let client = self
            .inner
            .client
            .as_ref()
            .ok_or_else(|| "the webhook has no Kubernetes API client".to_string())?;
        let fetched = cluster::fetch_parent(client, key)
            .await?
            .map(Arc::<str>::from);
        self.inner.parents.put(key.clone(), fetched.clone(), ttl);
        Ok(fetched)
    }

    fn record_event(&self, target: EventTarget, text: &str, now: jiff::Timestamp) {
        let Some(client) = self.inner.client.clone() else {
            debug!(message = %text, "no API client: break-glass Event not recorded");
            return;
        };
        let event = cluster::break_glass_event(&target, text, now);
        let metrics = self.inner.metrics.clone();
        tokio::spawn(async move {
            match cluster::record_event(client, event).await {
                Ok(()) => metrics.event(Outcome::Success),
                Err(e) => {
                    metrics.event(Outcome::Failure);
                    warn!(
                        kind = %target.kind,
                        namespace = %target.namespace,
                        name = %target.name,
                        error = %e,
                        "cannot record the break-glass Event (the change itself was admitted)"
                    );
                }
            }
        });
    }
}

/// `{"error": "..."}` with a status code.
pub fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": message.into() });
    (status, axum::Json(body)).into_response()
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// The body of an AdmissionReview request: JSON, at most [`MAX_BODY`] bytes. Rejections are
/// responses: a refusal addressed to the review's uid for a body too large or too slow, else JSON
/// errors.
pub struct ReviewBody {
    pub bytes: Bytes,
    /// When the request's headers were in: its deadline counts from here.
    pub arrived: tokio::time::Instant,
    /// Counted in `gitops_guard_requests_in_flight` until the answer is made.
    _in_flight: Held,
}

/// A body as it arrives: a body that comes in one chunk (most do) is kept as it came, without a
/// copy; one in several chunks is copied into one buffer.
#[derive(Default)]
struct Buffer {
    first: Option<Bytes>,
    joined: Vec<u8>,
}

impl Buffer {
    fn as_slice(&self) -> &[u8] {
        match &self.first {
            Some(first) => first,
            None => &self.joined,
        }
    }

    fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Appends a whole chunk; `expect` is the size the body is expected to reach.
    fn push(&mut self, chunk: Bytes, expect: usize) {
        if self.first.is_none() && self.joined.is_empty() {
            self.first = Some(chunk);
            return;
        }
        self.push_slice(&chunk, expect);
    }

    /// Appends part of a chunk (copied).
    fn push_slice(&mut self, part: &[u8], expect: usize) {
        if let Some(first) = self.first.take() {
            self.joined.reserve(expect.max(first.len() + part.len()));
            self.joined.extend_from_slice(&first);
        }
        self.joined.extend_from_slice(part);
    }

    fn into_bytes(self) -> Bytes {
        match self.first {
            Some(first) => first,
            None => Bytes::from(self.joined),
        }
    }
}

/// What reading a body found (the bytes are in the buffer it was given).
enum Read {
    Whole,
    /// Larger than [`MAX_BODY`]: the buffer holds its start; its size when the client said it.
    TooLarge {
        size: Option<u64>,
    },
}

/// A duration for messages, as the flags take it: `2s`, `2500ms`.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A refusal the API server should retry: the guard was busy or slow, not the request wrong.
/// `code` 429 (`TooManyRequests`) or 504 (`Timeout`).
fn retry_later(api_version: &str, uid: &str, code: u16, message: &str) -> Response {
    json_response(
        StatusCode::OK,
        handler::error_response(api_version, uid, code, message),
    )
}

const MIB: usize = 1024 * 1024;

impl FromRequest<App> for ReviewBody {
    type Rejection = Response;

    async fn from_request(req: Request, app: &App) -> Result<ReviewBody, Response> {
        let arrived = tokio::time::Instant::now();
        let in_flight = app.inner.metrics.request_in_flight();
        if !is_json(req.headers()) {
            app.inner
                .metrics
                .request_error(RequestError::UnsupportedMediaType);
            let got = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_string();
            return Err(json_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("expected Content-Type: application/json (an AdmissionReview), got {got}"),
            ));
        }
        let deadline = BODY_DEADLINE.min(app.inner.limits.request_timeout);
        let mut buffer = Buffer::default();
        let read = tokio::time::timeout(deadline, read_body(req.into_body(), &mut buffer)).await;
        let bytes = buffer.into_bytes();
        let Ok(read) = read else {
            app.inner.metrics.request_error(RequestError::Timeout);
            let waited = seconds(deadline);
            // What came may name the uid: then refuse it (fail closed), else an HTTP error.
            let Some(envelope) = Envelope::recover(&bytes) else {
                warn!(
                    received = bytes.len(),
                    "a request body did not arrive within the deadline: HTTP 408"
                );
                return Err(json_error(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("the request body did not arrive within {waited}"),
                ));
            };
            warn!(uid = %envelope.uid, received = bytes.len(),
                "an AdmissionReview's body did not arrive within the deadline; refusing it (code 504)");
            return Err(retry_later(
                &envelope.api_version,
                &envelope.uid,
                504,
                &format!(
                    "gitops-guard refuses this request: its AdmissionReview did not arrive within {waited} \
                     (the network or the API server was slow), so it cannot tell whether the object is GitOps-managed. Retry"
                ),
            ));
        };
        match read {
            Ok(Read::Whole) => Ok(ReviewBody {
                bytes,
                arrived,
                _in_flight: in_flight,
            }),
            Ok(Read::TooLarge { size }) => {
                let start = bytes;
                app.inner.metrics.request_error(RequestError::TooLarge);
                let size = match size {
                    Some(n) => format!("{n} bytes"),
                    None => format!("more than {MAX_BODY} bytes"),
                };
                let limit = MAX_BODY / MIB;
                let Some(envelope) = Envelope::recover(&start) else {
                    warn!(size = %size, "refused an oversized request body without a uid: HTTP 413");
                    return Err(json_error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!(
                            "the body is {size}, more than the {limit} MiB an AdmissionReview may take, and names no request.uid to answer"
                        ),
                    ));
                };
                warn!(uid = %envelope.uid, size = %size, "refused an AdmissionReview larger than the guard reads (code 413)");
                let message = format!(
                    "gitops-guard refuses this request: its AdmissionReview is {size}, more than the {limit} MiB the guard reads \
                     (objects that etcd can store make far smaller reviews), so it cannot tell whether the object is GitOps-managed"
                );
                Err(json_response(
                    StatusCode::OK,
                    handler::error_response(&envelope.api_version, &envelope.uid, 413, &message),
                ))
            }
            Err(e) => {
                app.inner.metrics.request_error(RequestError::Body);
                Err(json_error(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the request body: {e}"),
                ))
            }
        }
    }
}

/// Reads a body of at most [`MAX_BODY`] bytes into `bytes`; of a larger one, only the start. A
/// body declared larger is not buffered past [`ENVELOPE_PREFIX`]. What arrived stays in `bytes`
/// when the read is cut short.
async fn read_body(body: Body, bytes: &mut Buffer) -> Result<Read, axum::Error> {
    let hint = body.size_hint();
    let declared = hint.exact();
    let oversized = hint.lower() > MAX_BODY as u64;
    let keep = if oversized { ENVELOPE_PREFIX } else { MAX_BODY };
    let expect = usize::try_from(hint.lower())
        .unwrap_or(usize::MAX)
        .min(keep);
    let mut stream = body.into_data_stream();
    let mut total: u64 = 0;
    let mut too_large = false;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        total = total.saturating_add(chunk.len() as u64);
        too_large |= total > MAX_BODY as u64;
        if too_large || oversized {
            let room = keep.saturating_sub(bytes.len()).min(chunk.len());
            bytes.push_slice(chunk.get(..room).unwrap_or_default(), expect);
            if too_large || bytes.len() >= keep {
                break;
            }
            continue;
        }
        bytes.push(chunk, expect);
    }
    if !(too_large || oversized) {
        return Ok(Read::Whole);
    }
    // Read the rest (up to a point) and drop it, then answer.
    let mut complete = !too_large && bytes.len() < keep;
    while !complete && total < DRAIN_LIMIT {
        match stream.next().await {
            Some(Ok(chunk)) => total = total.saturating_add(chunk.len() as u64),
            Some(Err(_)) => break,
            None => complete = true,
        }
    }
    Ok(Read::TooLarge {
        size: declared.or(complete.then_some(total)),
    })
}

/// `POST /validate`: waits for a slot among the reviews decided at once, then decides, both
/// within the request's deadline; past it, refuses the review (it names its uid: the body is in).
async fn validate(State(app): State<App>, review: ReviewBody) -> Response {
    let deadline = review.arrived + app.inner.limits.request_timeout;
    let body: &[u8] = &review.bytes;
    let late = |error: RequestError, code: u16, why: &str| {
        app.inner.metrics.request_error(error);
        let Some(envelope) = Envelope::recover(body) else {
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("gitops-guard {why}; retry"),
            );
        };
        warn!(uid = %envelope.uid, code, "{why}; refusing the review");
        retry_later(
            &envelope.api_version,
            &envelope.uid,
            code,
            &format!(
                "gitops-guard refuses this request: it {why}, so it did not decide whether the object is GitOps-managed. Retry"
            ),
        )
    };
    let limit = seconds(app.inner.limits.request_timeout);
    // The semaphore is never closed; were it, go on without a slot rather than fail.
    let Ok(_slot) = tokio::time::timeout_at(deadline, app.inner.reviews.acquire()).await else {
        return late(
            RequestError::Busy,
            429,
            &format!(
                "is busy: no slot among the reviews it decides at once came free within {limit}"
            ),
        );
    };
    match tokio::time::timeout_at(deadline, decide(&app, body)).await {
        Ok(response) => response,
        Err(_) => late(
            RequestError::Timeout,
            504,
            &format!("could not decide within {limit}"),
        ),
    }
}

/// Decodes, decides and answers a review whose body is in.
async fn decide(app: &App, body: &[u8]) -> Response {
    let started = Instant::now();
    let metrics = app.inner.metrics.clone();
    // Held until the answer is made: the decoded request borrows the body and its tape.
    let _turn: Option<OwnedSemaphorePermit> = if body.len() > LARGE_BODY {
        // The semaphore is never closed; were it, go on without a turn rather than fail.
        app.inner.large.clone().acquire_owned().await.ok()
    } else {
        None
    };
    let blocking = body.len() > BLOCKING_BODY;
    let req = match off_the_worker(blocking, || AdmissionRequest::decode(body)) {
        Ok(req) => req,
        Err(e) => {
            metrics.request_error(RequestError::Malformed);
            // Fail closed: what cannot be read could be a GitOps-managed object.
            let Some(envelope) = Envelope::recover(body) else {
                debug!(error = %e, "rejected a malformed AdmissionReview without a uid: HTTP 400");
                return json_error(StatusCode::BAD_REQUEST, e.to_string());
            };
            warn!(uid = %envelope.uid, error = %e, "refused an AdmissionReview the guard cannot decode (code 400)");
            let message = format!(
                "gitops-guard refuses this request: it cannot decode its AdmissionReview ({e}), so it cannot tell whether the object is GitOps-managed"
            );
            return json_response(
                StatusCode::OK,
                handler::error_response(&envelope.api_version, &envelope.uid, 400, &message),
            );
        }
    };
    let config = app.config();

    // The object as the API server has it, when the review does not say enough: the parent of a
    // scale request (briefly cached: the HPA and `kubectl scale` ask often), or, on API servers
    // before 1.23, the object an UPDATE changes, for the managedFields record the review leaves
    // out (never cached: it must be the very version the request changes).
    let why = if handler::needs_parent(&req, &config) {
        Some((
            format!("the object behind this {} request", req.sub_resource),
            true,
        ))
    } else if handler::needs_live_object(&req, &config, &*app.inner.lookup) {
        Some((
            "the object as it is now, for its managedFields".to_string(),
            false,
        ))
    } else {
        None
    };
    let parent_text: Option<Arc<str>> = match why {
        None => None,
        Some((what, cached)) => {
            let key = ParentRef::of(&req);
            let ttl = if cached {
                Duration::from_secs(config.scale_parent_cache_seconds)
            } else {
                Duration::ZERO
            };
            match app.scale_parent(&key, ttl).await {
                Ok(text) => text,
                Err(e) => {
                    metrics.request_error(RequestError::ScaleParent);
                    let message = format!(
                        "gitops-guard cannot read {key}, {what}, to decide: {e}. \
                         The request is refused; retry, and check that the webhook can get {} from the API server",
                        key.resource
                    );
                    warn!(uid = %req.uid, user = %req.user.username, error = %e, object = %key,
                        "live object lookup failed; refusing with code 500");
                    metrics.observe_duration(started.elapsed().as_secs_f64());
                    return json_response(
                        StatusCode::OK,
                        handler::error_response(&req.api_version, &req.uid, 500, &message),
                    );
                }
            }
        }
    };
    let parent = match parent_text.as_deref().map(Object::from_json).transpose() {
        Ok(parent) => parent,
        Err(e) => {
            metrics.request_error(RequestError::ScaleParent);
            let message = format!(
                "gitops-guard cannot understand {}, the live object it read to decide: {e}",
                ParentRef::of(&req)
            );
            return json_response(
                StatusCode::OK,
                handler::error_response(&req.api_version, &req.uid, 500, &message),
            );
        }
    };

    let now = jiff::Timestamp::now();
    let answer = off_the_worker(blocking, || {
        handler::answer(&req, parent.as_ref(), &config, &*app.inner.lookup, now)
    });
    let decision = &answer.decision;
    metrics.decision(decision.verdict.as_str(), decision.reason.as_str());
    handler::log_decision(&req, decision, &app.inner.denials, &metrics);
    if let Some(text) = decision.event.as_deref()
        && !req.dry_run
    {
        app.record_event(EventTarget::of(&req, parent.as_ref()), text, now);
    }
    metrics.observe_duration(started.elapsed().as_secs_f64());
    json_response(StatusCode::OK, answer.body)
}

/// Runs `work` (synchronous) off the worker thread when `blocking` and the runtime has other
/// workers to hand this one's queued tasks to; in place otherwise.
fn off_the_worker<R>(blocking: bool, work: impl FnOnce() -> R) -> R {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if blocking && multi_thread {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

async fn healthz() -> Response {
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({"status": "ok"})),
    )
        .into_response()
}

/// `{"version": "0.1.0", "commit": "<git sha>"|null}`: the build (`crate::VERSION`, `crate::COMMIT`).
async fn version() -> Response {
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({"version": crate::VERSION, "commit": crate::COMMIT})),
    )
        .into_response()
}

async fn readyz(State(app): State<App>) -> Response {
    let report = app.inner.readiness.report();
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report)).into_response()
}

/// The kinds GitOps manages in this cluster, as the caches know them: `{"kinds": {"Deployment.apps":
/// 3, ...}}` (what `kubectl gitops doctor` compares with the webhook rules).
async fn managed_kinds(State(app): State<App>) -> Response {
    let kinds = app
        .inner
        .caches
        .as_ref()
        .map(|c| c.managed_kinds())
        .unwrap_or_default();
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({ "kinds": kinds })),
    )
        .into_response()
}

async fn metrics_text(State(app): State<App>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        app.inner.metrics.encode(),
    )
        .into_response()
}

async fn not_found(method: Method, uri: Uri) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}
