//! The serving certificate: rustls (ring, TLS 1.2 and 1.3), reloaded when the files change;
//! and, with `--client-ca`, the CA whose client certificates (the API server's) are required.
//!
//! A reload swaps the config used for new handshakes; established connections keep theirs, so
//! nothing is dropped. A certificate and key that do not fit together (e.g. one file rewritten
//! before the other), or a client CA file holding no usable certificate, are refused and the last
//! good set stays in use until the next change.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tracing::{info, warn};

use crate::Error;
use crate::files::{Change, WatchedFiles};
use crate::metrics::{Metrics, Outcome};

/// Builds the server config from PEM text, with no client authentication; the error says what
/// is wrong with the pair.
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<ServerConfig, String> {
    server_config_with_client_ca(cert_pem, key_pem, None)
}

/// [`server_config`], and with `client_ca` (PEM), a client must present a certificate that one of
/// its CAs signed; the error says what is wrong with the pair or the client CA.
pub fn server_config_with_client_ca(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca: Option<&[u8]>,
) -> Result<ServerConfig, String> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the certificate file is not PEM: {e}"))?;
    if chain.is_empty() {
        return Err("the certificate file holds no CERTIFICATE block".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("the key file holds no usable private key: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("the client CA file is not PEM: {e}"))?;
                roots.add(cert).map_err(|e| {
                    format!("the client CA file holds an unusable certificate: {e}")
                })?;
            }
            if roots.is_empty() {
                return Err("the client CA file holds no CERTIFICATE block".into());
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("the client CA cannot verify certificates: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and key do not fit together: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Reads and checks the pair (and the client CA) at start. Returns the config and the file
/// contents it came from, in the order of [`files`].
pub async fn load(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<(ServerConfig, Vec<Vec<u8>>), Error> {
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
    let ca_pem = match client_ca {
        Some(path) => Some(read("client CA", path).await?),
        None => None,
    };
    let config =
        server_config_with_client_ca(&cert_pem, &key_pem, ca_pem.as_deref()).map_err(|why| {
            Error::Tls {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                why: match client_ca {
                    Some(ca) if why.contains("client CA") => format!("{why} ({})", ca.display()),
                    _ => why,
                },
            }
        })?;
    let mut contents = vec![cert_pem, key_pem];
    contents.extend(ca_pem);
    Ok((config, contents))
}

/// The files [`watch`] polls: the certificate, the key and, when given, the client CA.
pub fn files(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Vec<std::path::PathBuf> {
    let mut paths = vec![cert.to_path_buf(), key.to_path_buf()];
    paths.extend(client_ca.map(Path::to_path_buf));
    paths
}

/// Polls the certificate, key (and client CA) files every `interval` and swaps in a new config
/// when they change.
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
                let (cert, key, ca) = match contents.as_slice() {
                    [cert, key] => (cert, key, None),
                    [cert, key, ca] => (cert, key, Some(ca.as_slice())),
                    _ => continue,
                };
                match server_config_with_client_ca(cert, key, ca) {
                    Ok(config) => {
                        rustls.reload_from_config(Arc::new(config));
                        metrics.cert_reload(Outcome::Success);
                        info!(cert = %paths[0].display(), "TLS certificate reloaded");
                    }
                    Err(why) => {
                        warn!(cert = %paths[0].display(), key = %paths[1].display(),
                            client_ca = %paths.get(2).map(|p| p.display().to_string()).unwrap_or_default(), %why,
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
                a.signing_key.serialize_pem().as_bytes(),
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

    #[test]
    fn a_client_ca_without_a_certificate_is_refused() {
        let a = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert, key) = (a.cert.pem(), a.signing_key.serialize_pem());
        let with =
            |ca: &[u8]| server_config_with_client_ca(cert.as_bytes(), key.as_bytes(), Some(ca));
        assert!(with(cert.as_bytes()).is_ok());
        let err = with(key.as_bytes()).unwrap_err();
        assert!(err.contains("client CA file holds no CERTIFICATE"), "{err}");
        let err = with(b"").unwrap_err();
        assert!(err.contains("client CA"), "{err}");
    }
}
