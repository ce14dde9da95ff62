//! Prometheus metrics (OpenMetrics text on the probe port's `/metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    verdict: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error: &'static str,
}

/// An owner cache (its kind, e.g. `HelmRelease`, `Namespace`) or `discovery`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: String,
}

/// Outcome of a reload or an API write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// Requests that got no decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// HTTP 400: not an AdmissionReview.
    Malformed,
    /// HTTP 415.
    UnsupportedMediaType,
    /// An unreadable body (HTTP 400).
    Body,
    /// The object behind a scale request could not be read (answered `allowed: false`, code 500).
    ScaleParent,
    /// Larger than the guard reads (refused with code 413, or HTTP 413 without a uid).
    TooLarge,
    /// Not answered within the request deadline: its body came too slowly, or deciding took too
    /// long (refused with code 504, or HTTP 408 without a uid).
    Timeout,
    /// No slot among the reviews decided at once came free within the request deadline (refused
    /// with code 429).
    Busy,
}

impl RequestError {
    fn as_str(self) -> &'static str {
        match self {
            RequestError::Malformed => "malformed",
            RequestError::UnsupportedMediaType => "unsupported-media-type",
            RequestError::Body => "body",
            RequestError::ScaleParent => "scale-parent",
            RequestError::TooLarge => "too-large",
            RequestError::Timeout => "timeout",
            RequestError::Busy => "busy",
        }
    }
}

/// TLS connections that never became HTTP ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsError {
    /// The handshake did not finish within the handshake timeout.
    Timeout,
    /// `--client-ca` is set and the client presented no certificate, or one the CA did not sign.
    ClientCertificate,
    /// Plain HTTP on the TLS port (answered with an HTTP 400 that says so).
    Plaintext,
    /// Anything else: a protocol version or cipher the guard does not speak (TLS 1.0/1.1), a
    /// malformed hello, the client closing or resetting the connection.
    Failed,
}

impl TlsError {
    fn as_str(self) -> &'static str {
        match self {
            TlsError::Timeout => "timeout",
            TlsError::ClientCertificate => "client-certificate",
            TlsError::Plaintext => "plaintext",
            TlsError::Failed => "failed",
        }
    }
}

/// Counts one in a gauge for as long as it lives.
#[derive(Debug)]
pub struct Held(Gauge);

impl Held {
    fn new(gauge: &Gauge) -> Held {
        gauge.inc();
        Held(gauge.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// All of the webhook's metrics.
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    duration: Histogram,
    config_reloads: Family<ResultLabels, Counter>,
    cert_reloads: Family<ResultLabels, Counter>,
    events: Family<ResultLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    cache_degraded: Family<CacheLabels, Gauge>,
    watch_errors: Family<CacheLabels, Counter>,
    in_flight: Gauge,
    connections: Gauge,
    tls_errors: Family<ErrorLabels, Counter>,
    denial_log_suppressed: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Request duration buckets, in seconds: 50 µs to 2.5 s.
const BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5,
];

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "gitops_guard_decisions",
            "Admission decisions by verdict (allow, warn, deny) and reason",
            decisions.clone(),
        );
        let duration = Histogram::new(BUCKETS.iter().copied());
        registry.register(
            "gitops_guard_request_duration_seconds",
            "Time from receiving an AdmissionReview to having the answer",
            duration.clone(),
        );
        let config_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "gitops_guard_config_reloads",
            "Config file reloads (a failed one keeps the last good config)",
            config_reloads.clone(),
        );
        let cert_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "gitops_guard_cert_reloads",
            "TLS certificate reloads (a failed one keeps serving the last good certificate)",
            cert_reloads.clone(),
        );
        let events = Family::<ResultLabels, Counter>::default();
        registry.register(
            "gitops_guard_break_glass_events",
            "Kubernetes Events recorded for break-glass changes",
            events.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "gitops_guard_request_errors",
            "Admission requests answered without a decision, by error",
            errors.clone(),
        );
        let cache_degraded = Family::<CacheLabels, Gauge>::default();
        registry.register(
            "gitops_guard_cache_degraded",
            "1 while a cache that synced once cannot watch (decisions come from its last synced state)",
            cache_degraded.clone(),
        );
        let watch_errors = Family::<CacheLabels, Counter>::default();
        registry.register(
            "gitops_guard_cache_watch_errors",
            "Failed lists, watches and discoveries of the owner caches, by cache",
            watch_errors.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "gitops_guard_requests_in_flight",
            "Admission requests received and not answered yet (their body arriving, waiting for a slot, or being decided)",
            in_flight.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "gitops_guard_tls_connections",
            "Open connections on the TLS port that completed their handshake",
            connections.clone(),
        );
        let tls_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "gitops_guard_tls_handshake_errors",
            "Connections on the TLS port refused or lost before their handshake completed, by error",
            tls_errors.clone(),
        );
        let denial_log_suppressed = Counter::default();
        registry.register(
            "gitops_guard_denial_log_suppressed",
            "Repeated identical denials counted instead of logged (one summary line per window says how many)",
            denial_log_suppressed.clone(),
        );
        Metrics {
            registry,
            decisions,
            duration,
            config_reloads,
            cert_reloads,
            events,
            errors,
            cache_degraded,
            watch_errors,
            in_flight,
            connections,
            tls_errors,
            denial_log_suppressed,
        }
    }

    /// An admission request is being handled until the returned value is dropped.
    pub fn request_in_flight(&self) -> Held {
        Held::new(&self.in_flight)
    }

    /// A TLS connection is open until the returned value is dropped.
    pub fn connection_open(&self) -> Held {
        Held::new(&self.connections)
    }

    pub fn tls_error(&self, error: TlsError) {
        self.tls_errors
            .get_or_create(&ErrorLabels {
                error: error.as_str(),
            })
            .inc();
    }

    pub fn decision(&self, verdict: &'static str, reason: &'static str) {
        self.decisions
            .get_or_create(&DecisionLabels { verdict, reason })
            .inc();
    }

    pub fn observe_duration(&self, seconds: f64) {
        self.duration.observe(seconds);
    }

    pub fn config_reload(&self, outcome: Outcome) {
        self.config_reloads
            .get_or_create(&ResultLabels {
                result: outcome.as_str(),
            })
            .inc();
    }

    pub fn cert_reload(&self, outcome: Outcome) {
        self.cert_reloads
            .get_or_create(&ResultLabels {
                result: outcome.as_str(),
            })
            .inc();
    }

    pub fn event(&self, outcome: Outcome) {
        self.events
            .get_or_create(&ResultLabels {
                result: outcome.as_str(),
            })
            .inc();
    }

    /// A repeated denial was counted instead of logged.
    pub fn denial_log_suppressed(&self) {
        self.denial_log_suppressed.inc();
    }

    pub fn request_error(&self, error: RequestError) {
        self.errors
            .get_or_create(&ErrorLabels {
                error: error.as_str(),
            })
            .inc();
    }

    /// Whether the cache `cache` is degraded now (also sets 0, so every cache has a series).
    pub fn cache_degraded(&self, cache: &str, degraded: bool) {
        self.cache_degraded
            .get_or_create(&CacheLabels {
                cache: cache.to_string(),
            })
            .set(i64::from(degraded));
    }

    /// A list, watch or discovery of the cache `cache` failed.
    pub fn watch_error(&self, cache: &str) {
        self.watch_errors
            .get_or_create(&CacheLabels {
                cache: cache.to_string(),
            })
            .inc();
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            // Writing into a String cannot fail; say so in the output if it ever did.
            out = format!("# gitops-guard could not encode its metrics: {e}\n# EOF\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_match_the_contract() {
        let m = Metrics::new();
        m.decision("deny", "managed");
        m.decision("deny", "managed");
        m.observe_duration(0.0002);
        m.config_reload(Outcome::Failure);
        m.cert_reload(Outcome::Success);
        let text = m.encode();
        assert!(
            text.contains(r#"gitops_guard_decisions_total{verdict="deny",reason="managed"} 2"#),
            "{text}"
        );
        assert!(
            text.contains("gitops_guard_request_duration_seconds_count 1"),
            "{text}"
        );
        assert!(text.contains(r#"gitops_guard_config_reloads_total{result="failure"} 1"#));
        assert!(text.contains(r#"gitops_guard_cert_reloads_total{result="success"} 1"#));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn degraded_caches_and_watch_errors_are_exposed() {
        let m = Metrics::new();
        m.cache_degraded("Namespace", false);
        m.cache_degraded("HelmRelease", true);
        m.watch_error("HelmRelease");
        m.watch_error("HelmRelease");
        let text = m.encode();
        for line in [
            r#"gitops_guard_cache_degraded{cache="HelmRelease"} 1"#,
            r#"gitops_guard_cache_degraded{cache="Namespace"} 0"#,
            r#"gitops_guard_cache_watch_errors_total{cache="HelmRelease"} 2"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        m.cache_degraded("HelmRelease", false);
        assert!(
            m.encode()
                .contains(r#"gitops_guard_cache_degraded{cache="HelmRelease"} 0"#)
        );
    }

    #[test]
    fn request_limits_and_tls_errors_are_exposed() {
        let m = Metrics::new();
        let first = m.request_in_flight();
        let second = m.request_in_flight();
        let conn = m.connection_open();
        m.request_error(RequestError::TooLarge);
        m.request_error(RequestError::Busy);
        m.request_error(RequestError::Timeout);
        m.tls_error(TlsError::ClientCertificate);
        drop(first);
        let text = m.encode();
        for line in [
            "gitops_guard_requests_in_flight 1",
            "gitops_guard_tls_connections 1",
            r#"gitops_guard_request_errors_total{error="too-large"} 1"#,
            r#"gitops_guard_request_errors_total{error="busy"} 1"#,
            r#"gitops_guard_request_errors_total{error="timeout"} 1"#,
            r#"gitops_guard_tls_handshake_errors_total{error="client-certificate"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        drop((second, conn));
        let text = m.encode();
        assert!(
            text.contains("gitops_guard_requests_in_flight 0\n"),
            "{text}"
        );
        assert!(text.contains("gitops_guard_tls_connections 0\n"), "{text}");
    }
}
