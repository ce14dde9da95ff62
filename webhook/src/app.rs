//! The shared state and the two routers.
//!
//! - [`App::router`]: `POST /validate` (served over TLS). Answers every AdmissionReview with a
//!   decision; HTTP errors (with a JSON body `{"error": "..."}`) only for requests that are not
//!   AdmissionReviews: 400 malformed, 413 too large, 415 not JSON, 404 unknown path, 405.
//! - [`App::probe_router`]: `GET /healthz`, `/readyz`, `/metrics` (plain HTTP, own port).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use gitops_guard_core::{AdmissionRequest, Config, Lookup, Object};
use tracing::{debug, warn};

use crate::cache::Caches;
use crate::cluster::{self, EventTarget, ParentCache, ParentRef};
use crate::handler;
use crate::metrics::{self, Metrics, Outcome, RequestError};
use crate::readiness::Readiness;

/// Largest AdmissionReview accepted. The API server's largest object is about 1.5 MiB of JSON, and
/// an UPDATE carries two of them.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

struct Inner {
    config: ArcSwap<Config>,
    lookup: Arc<dyn Lookup + Send + Sync>,
    caches: Option<Arc<Caches>>,
    client: Option<kube::Client>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    parents: ParentCache,
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
            }),
        }
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

    /// The TLS-side router: `POST /validate`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/validate", post(validate))
            .method_not_allowed_fallback(method_not_allowed)
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(self.clone())
    }

    /// The probe-side router: `GET /healthz`, `/readyz`, `/metrics`.
    pub fn probe_router(&self) -> Router {
        Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics_text))
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

/// The body of an AdmissionReview request: JSON, at most [`MAX_BODY`] bytes. Rejections are JSON.
pub struct ReviewBody(pub Bytes);

impl FromRequest<App> for ReviewBody {
    type Rejection = Response;

    async fn from_request(req: Request, app: &App) -> Result<ReviewBody, Response> {
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
        Bytes::from_request(req, app)
            .await
            .map(ReviewBody)
            .map_err(|rejection| {
                app.inner.metrics.request_error(RequestError::Body);
                json_error(rejection.status(), rejection.body_text())
            })
    }
}

async fn validate(State(app): State<App>, ReviewBody(body): ReviewBody) -> Response {
    let started = Instant::now();
    let metrics = app.inner.metrics.clone();
    let req = match AdmissionRequest::decode(&body) {
        Ok(req) => req,
        Err(e) => {
            metrics.request_error(RequestError::Malformed);
            debug!(error = %e, "rejected a malformed AdmissionReview");
            return json_error(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let config = app.config();

    // The object as the API server has it, when the review does not say enough: the parent of a
    // scale request (briefly cached: the HPA and `kubectl scale` ask often), or, on API servers
    // before 1.23, the object an UPDATE changes, for the managedFields record the review leaves
    // out (never cached: it must be the very version the request changes).
    let why = if handler::needs_scale_parent(&req, &config) {
        Some(("the object behind this scale request", true))
    } else if handler::needs_live_object(&req, &config, &*app.inner.lookup) {
        Some(("the object as it is now, for its managedFields", false))
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
    let answer = handler::answer(&req, parent.as_ref(), &config, &*app.inner.lookup, now);
    let decision = &answer.decision;
    metrics.decision(decision.verdict.as_str(), decision.reason.as_str());
    handler::log_decision(&req, decision);
    if let Some(text) = decision.event.as_deref()
        && !req.dry_run
    {
        app.record_event(EventTarget::of(&req, parent.as_ref()), text, now);
    }
    metrics.observe_duration(started.elapsed().as_secs_f64());
    json_response(StatusCode::OK, answer.body)
}

async fn healthz() -> Response {
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({"status": "ok"})),
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
