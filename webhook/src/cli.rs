//! Command line: every flag also has an environment variable (docs/architecture.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// gitops-guard's validating admission webhook: rejects imperative changes to Flux/Argo CD-managed
/// objects unless they come from the GitOps agent.
#[derive(Debug, Clone, Parser)]
#[command(name = "gitops-guard-webhook", version, about, long_about = None)]
pub struct Args {
    /// The guard's YAML config file (reloaded when it changes).
    #[arg(long, env = "GITOPS_GUARD_CONFIG", value_name = "FILE")]
    pub config: PathBuf,

    /// PEM serving certificate (chain); reloaded when it changes.
    #[arg(long, env = "GITOPS_GUARD_TLS_CERT", value_name = "FILE")]
    pub tls_cert: PathBuf,

    /// PEM private key of the serving certificate; reloaded when it changes.
    #[arg(long, env = "GITOPS_GUARD_TLS_KEY", value_name = "FILE")]
    pub tls_key: PathBuf,

    /// Address of the TLS listener (`POST /validate`).
    #[arg(
        long,
        env = "GITOPS_GUARD_LISTEN",
        value_name = "ADDR:PORT",
        default_value = "0.0.0.0:8443"
    )]
    pub listen: SocketAddr,

    /// Address of the plain-HTTP probe listener (`/healthz`, `/readyz`, `/metrics`).
    #[arg(
        long,
        env = "GITOPS_GUARD_PROBE_LISTEN",
        value_name = "ADDR:PORT",
        default_value = "0.0.0.0:8080"
    )]
    pub probe_listen: SocketAddr,

    /// PEM CA certificate(s): when given, the TLS listener requires a client certificate signed
    /// by one of them (the API server's, from its admission kubeconfig) and refuses the handshake
    /// of any other client. Reloaded with the serving certificate when the file changes; new
    /// connections get the new CA. Without it, any client may connect (protect the port with a
    /// NetworkPolicy).
    #[arg(long, env = "GITOPS_GUARD_CLIENT_CA", value_name = "FILE")]
    pub client_ca: Option<PathBuf>,

    /// The longest an admission request may take, from its headers to its answer; keep it below
    /// the webhook's `timeoutSeconds` (the chart: 3 s), so the API server gets the guard's answer
    /// rather than its own timeout (which a `failurePolicy: Ignore` entry turns into "allowed").
    /// A review not decided by then is refused (`allowed: false`, code 504) with a message to
    /// retry. Its body must also arrive within 2 s (or this, if shorter). Units: ms, s.
    #[arg(long, env = "GITOPS_GUARD_REQUEST_TIMEOUT", value_name = "DURATION",
        default_value = "2500ms", value_parser = parse_positive_duration)]
    pub request_timeout: Duration,

    /// How many reviews are decided at once. A review whose body is in waits for a slot until
    /// the request deadline, then is refused (`allowed: false`, code 429, "retry"). Bodies still
    /// arriving take no slot, so slow clients cannot hold the API server's reviews up.
    #[arg(long, env = "GITOPS_GUARD_MAX_CONCURRENT_REVIEWS", value_name = "N",
        default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_concurrent_reviews: u32,

    /// How long a client has to complete its TLS handshake; then the connection is closed.
    #[arg(long, env = "GITOPS_GUARD_TLS_HANDSHAKE_TIMEOUT", value_name = "DURATION",
        default_value = "2s", value_parser = parse_positive_duration)]
    pub tls_handshake_timeout: Duration,

    /// HTTP/1: how long a client has to send a request's headers (counted from when the
    /// connection is ready for them, so an idle keep-alive connection is closed after this too);
    /// then the connection is closed (slow-loris). `0s`: no limit.
    #[arg(long, env = "GITOPS_GUARD_HEADER_READ_TIMEOUT", value_name = "DURATION",
        default_value = "2s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// A TLS connection on which nothing arrives for this long is closed (a client that opens
    /// one and sends nothing, or an HTTP/2 connection that stopped answering). Keep it above
    /// `--http2-keepalive-interval`: the answers to those pings count. `0s`: never.
    #[arg(long, env = "GITOPS_GUARD_IDLE_TIMEOUT", value_name = "DURATION",
        default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// HTTP/2: requests (streams) one connection may have open at once.
    #[arg(long, env = "GITOPS_GUARD_HTTP2_MAX_CONCURRENT_STREAMS", value_name = "N",
        default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub http2_max_concurrent_streams: u32,

    /// HTTP/2: how often the guard pings an open connection (`0s`: never).
    #[arg(long, env = "GITOPS_GUARD_HTTP2_KEEPALIVE_INTERVAL", value_name = "DURATION",
        default_value = "20s", value_parser = parse_duration)]
    pub http2_keepalive_interval: Duration,

    /// HTTP/2: how long a ping may go unanswered before the connection is closed.
    #[arg(long, env = "GITOPS_GUARD_HTTP2_KEEPALIVE_TIMEOUT", value_name = "DURATION",
        default_value = "10s", value_parser = parse_duration)]
    pub http2_keepalive_timeout: Duration,

    /// On SIGTERM, how long to go on serving (new connections too) while `/readyz` answers 503,
    /// before closing the TLS port and finishing the requests in flight (up to 10 s): the time
    /// the Service needs to stop sending connections to a stopping pod. Keep this plus 10 s
    /// below the pod's `terminationGracePeriodSeconds`. `0s`: close the port at once.
    #[arg(long, env = "GITOPS_GUARD_SHUTDOWN_DELAY", value_name = "DURATION",
        default_value = "5s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,

    /// Kubeconfig to reach the API server (default: in-cluster service account).
    #[arg(long, env = "KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Log line format.
    #[arg(
        long,
        env = "GITOPS_GUARD_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
}

/// A duration with its unit: `2500ms`, `2s`, `1.5s`, `0s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(format!(
            "`{text}` has no unit: write it in ms or s (e.g. 2500ms, 2s)"
        ));
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of ms or s (e.g. 2500ms, 2s)"))?;
    Duration::try_from_secs_f64(value * scale)
        .map_err(|_| format!("`{text}` is not a duration of zero or more (e.g. 2500ms, 2s)"))
}

/// A duration ([`parse_duration`]) of more than zero.
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err(format!("`{text}` must be more than zero")),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_parse_and_have_defaults() {
        Args::command().debug_assert();
        let a = Args::try_parse_from([
            "gitops-guard-webhook",
            "--config",
            "/etc/gg/config.yaml",
            "--tls-cert",
            "/tls/tls.crt",
            "--tls-key",
            "/tls/tls.key",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(a.config, PathBuf::from("/etc/gg/config.yaml"));
        assert_eq!(a.log_format, LogFormat::Json);
        // Defaults apply unless the environment sets them (the test runner does not).
        if std::env::var_os("GITOPS_GUARD_LISTEN").is_none() {
            assert_eq!(a.listen.to_string(), "0.0.0.0:8443");
        }
        if std::env::var_os("GITOPS_GUARD_PROBE_LISTEN").is_none() {
            assert_eq!(a.probe_listen.to_string(), "0.0.0.0:8080");
        }
        if std::env::var_os("GITOPS_GUARD_REQUEST_TIMEOUT").is_none() {
            assert_eq!(a.request_timeout, Duration::from_millis(2500));
        }
        assert_eq!(a.client_ca, None);
    }

    #[test]
    fn limits_take_durations_with_units() {
        let a = Args::try_parse_from([
            "gitops-guard-webhook",
            "--config",
            "c",
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
            "--client-ca",
            "/etc/gg/client-ca.crt",
            "--request-timeout",
            "1.5s",
            "--max-concurrent-reviews",
            "8",
            "--tls-handshake-timeout",
            "500ms",
            "--http2-keepalive-interval",
            "0s",
        ])
        .unwrap();
        assert_eq!(a.client_ca, Some(PathBuf::from("/etc/gg/client-ca.crt")));
        assert_eq!(a.request_timeout, Duration::from_millis(1500));
        assert_eq!(a.max_concurrent_reviews, 8);
        assert_eq!(a.tls_handshake_timeout, Duration::from_millis(500));
        assert_eq!(a.http2_keepalive_interval, Duration::ZERO);
        for (flag, value) in [
            ("--request-timeout", "2500"),
            ("--request-timeout", "-1s"),
            ("--tls-handshake-timeout", "0ms"),
            ("--max-concurrent-reviews", "0"),
        ] {
            let err = Args::try_parse_from([
                "gitops-guard-webhook",
                "--config",
                "c",
                "--tls-cert",
                "c",
                "--tls-key",
                "k",
                &format!("{flag}={value}"),
            ])
            .unwrap_err()
            .to_string();
            assert!(err.contains(flag), "{flag} {value}: {err}");
        }
    }

    #[test]
    fn a_bad_listen_address_is_refused() {
        let err = Args::try_parse_from([
            "gitops-guard-webhook",
            "--config",
            "c",
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
            "--listen",
            "localhost",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("--listen"), "{err}");
    }
}
