//! Command line: every flag also has an environment variable (docs/architecture.md).

use std::net::SocketAddr;
use std::path::PathBuf;

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
