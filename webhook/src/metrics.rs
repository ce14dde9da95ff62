//! Prometheus metrics (OpenMetrics text on the probe port's `/metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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
    /// HTTP 413 or an unreadable body.
    Body,
    /// The object behind a scale request could not be read (answered `allowed: false`, code 500).
    ScaleParent,
}

impl RequestError {
    fn as_str(self) -> &'static str {
        match self {
            RequestError::Malformed => "malformed",
            RequestError::UnsupportedMediaType => "unsupported-media-type",
            RequestError::Body => "body",
            RequestError::ScaleParent => "scale-parent",
        }
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
        Metrics {
            registry,
            decisions,
            duration,
            config_reloads,
            cert_reloads,
            events,
            errors,
        }
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

    pub fn request_error(&self, error: RequestError) {
        self.errors
            .get_or_create(&ErrorLabels {
                error: error.as_str(),
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
}
