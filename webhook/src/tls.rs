//! The serving certificate: rustls (ring, TLS 1.2 and 1.3), reloaded when the files change.
//!
//! A reload swaps the config used for new handshakes; established connections keep theirs, so
//! nothing is dropped. A certificate and key that do not fit together (e.g. one file rewritten
//! before the other) are refused and the last good pair stays in use until the next change.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tracing::{info, warn};

use crate::Error;
use crate::files::{Change, WatchedFiles};
use crate::metrics::{Metrics, Outcome};

/// Builds the server config from PEM text; the error says what is wrong with the pair.
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<ServerConfig, String> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the certificate file is not PEM: {e}"))?;
    if chain.is_empty() {
        return Err("the certificate file holds no CERTIFICATE block".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("the key file holds no usable private key: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and key do not fit together: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Reads and checks the pair at start. Returns the config and the file contents it came from.
pub async fn load(cert: &Path, key: &Path) -> Result<(ServerConfig, Vec<Vec<u8>>), Error> {
    let read = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        async move {
            tokio::fs::read(&path)
                .await
                .map_err(|source| Error::TlsRead { what, path, source })
        }
    };
    let cert_pem = read("certificate", cert).await?;
    let key_pem = read("key", key).await?;
    let config = server_config(&cert_pem, &key_pem).map_err(|why| Error::Tls {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        why,
    })?;
    Ok((config, vec![cert_pem, key_pem]))
}

/// Polls the certificate and key files every `interval` and swaps in a new pair when they change.
pub async fn watch(
    mut files: WatchedFiles,
    rustls: RustlsConfig,
    metrics: Arc<Metrics>,
    interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let paths = files.paths().to_vec();
        match files.poll().await {
            Change::Unchanged => {}
            Change::Unreadable { path, error } => {
                warn!(file = %path.display(), %error, "cannot read the TLS file; still serving the last good certificate");
                metrics.cert_reload(Outcome::Failure);
            }
            Change::Changed(contents) => {
                let (cert, key) = match contents.as_slice() {
                    [cert, key] => (cert, key),
                    _ => continue,
                };
                match server_config(cert, key) {
                    Ok(config) => {
                        rustls.reload_from_config(Arc::new(config));
                        metrics.cert_reload(Outcome::Success);
                        info!(cert = %paths[0].display(), "TLS certificate reloaded");
                    }
                    Err(why) => {
                        warn!(cert = %paths[0].display(), key = %paths[1].display(), %why,
                            "the new TLS certificate cannot be used; still serving the last good one");
                        metrics.cert_reload(Outcome::Failure);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let a = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        assert!(
            server_config(
                a.cert.pem().as_bytes(),
                a.signing_key.serialize_pem().as_bytes()
            )
            .is_ok()
        );
        let err = server_config(
            a.cert.pem().as_bytes(),
            b.signing_key.serialize_pem().as_bytes(),
        )
        .unwrap_err();
        assert!(err.contains("do not fit"), "{err}");
        let err = server_config(b"", a.signing_key.serialize_pem().as_bytes()).unwrap_err();
        assert!(err.contains("no CERTIFICATE"), "{err}");
        let err = server_config(a.cert.pem().as_bytes(), b"nope").unwrap_err();
        assert!(err.contains("private key"), "{err}");
    }
}
