//! The running server: TLS on a real socket, certificate hot reload, config hot reload, drain.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is how it fails

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tower::ServiceExt;

use gitops_guard_webhook::{Cluster, Server, ServerOptions, StaticLookup};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

fn lookup() -> Arc<StaticLookup> {
    Arc::new(StaticLookup::new().with_kustomization(
        "flux-system",
        "apps",
        "main@sha1:3f2a9c1e8b7d6a5f",
    ))
}

struct Cert {
    der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
}

fn self_signed() -> Cert {
    let c =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    Cert {
        der: c.cert.der().clone(),
        cert_pem: c.cert.pem(),
        key_pem: c.signing_key.serialize_pem(),
    }
}

/// A mounted Secret as the kubelet lays it out: `tls.crt -> ..data/tls.crt`,
/// `..data -> ..<timestamp>`; an update writes a new timestamped directory and swaps `..data`.
struct SecretVolume {
    dir: PathBuf,
    generation: u32,
}

impl SecretVolume {
    fn new(dir: &Path, cert: &Cert) -> SecretVolume {
        let mut v = SecretVolume {
            dir: dir.to_path_buf(),
            generation: 0,
        };
        v.update(&cert.cert_pem, &cert.key_pem);
        std::os::unix::fs::symlink("..data/tls.crt", dir.join("tls.crt")).unwrap();
        std::os::unix::fs::symlink("..data/tls.key", dir.join("tls.key")).unwrap();
        v
    }

    fn update(&mut self, cert_pem: &str, key_pem: &str) {
        self.generation += 1;
        let name = format!("..2026_11_21_08_00_0{}", self.generation);
        let data = self.dir.join(&name);
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("tls.crt"), cert_pem).unwrap();
        std::fs::write(data.join("tls.key"), key_pem).unwrap();
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&name, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
    }

    fn cert(&self) -> PathBuf {
        self.dir.join("tls.crt")
    }

    fn key(&self) -> PathBuf {
        self.dir.join("tls.key")
    }
}

fn trusting(cert: &Cert) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// A TLS connection and the certificate the server presented.
async fn connect(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> std::io::Result<(SendRequest<Full<Bytes>>, CertificateDer<'static>)> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await?;
    let peer = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    Ok((sender, peer))
}

/// POSTs the 13 KB UPDATE fixture; returns the HTTP status and the AdmissionReview response.
async fn validate(sender: &mut SendRequest<Full<Bytes>>) -> (StatusCode, Value) {
    sender.ready().await.unwrap();
    let req = Request::post("/validate")
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(fixture("update-13k.json"))))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap();
    (status, v["response"].clone())
}

/// GET on the plain-HTTP probe port.
async fn probe(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get(path)
        .header(header::HOST, "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn options(config: PathBuf, cert: PathBuf, key: PathBuf) -> ServerOptions {
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut o = ServerOptions::new(config, cert, key, local, local, Cluster::Static(lookup()));
    o.reload_interval = Duration::from_millis(100);
    o.drain_timeout = Duration::from_secs(2);
    o
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_to_new_connections_without_dropping_open_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "").unwrap();
    let secret_dir = dir.path().join("tls");
    std::fs::create_dir(&secret_dir).unwrap();
    let (a, b) = (self_signed(), self_signed());
    let mut secret = SecretVolume::new(&secret_dir, &a);

    let server = Server::start(options(config, secret.cert(), secret.key()))
        .await
        .unwrap();
    let (tls, probes) = (server.tls_addr(), server.probe_addr());
    let (status, body) = probe(probes, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A client that trusts only A talks to the server and keeps the connection open.
    let (mut kept, peer) = connect(tls, &trusting(&a)).await.unwrap();
    assert_eq!(peer, a.der);
    let (status, resp) = validate(&mut kept).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resp["allowed"], false);
    assert!(
        connect(tls, &trusting(&b)).await.is_err(),
        "B is not served yet"
    );

    // cert-manager renews: the Secret volume swaps to B.
    secret.update(&b.cert_pem, &b.key_pem);
    eventually("new connections to present B", || async {
        connect(tls, &trusting(&b)).await.is_ok()
    })
    .await;
    let (mut fresh, peer) = connect(tls, &trusting(&b)).await.unwrap();
    assert_eq!(peer, b.der);
    assert_eq!(validate(&mut fresh).await.0, StatusCode::OK);
    assert!(
        connect(tls, &trusting(&a)).await.is_err(),
        "new connections must not get A any more"
    );
    // The connection opened under A still works.
    let (status, resp) = validate(&mut kept).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resp["uid"], "4f6d2a1b-9c3e-4e8f-a7b2-1d0c5e6f7a89");

    // A certificate with someone else's key is refused; B stays in service.
    let c = self_signed();
    secret.update(&c.cert_pem, &b.key_pem);
    eventually("the failed reload to be counted", || async {
        probe(probes, "/metrics")
            .await
            .1
            .contains(r#"gitops_guard_cert_reloads_total{result="failure"} 1"#)
    })
    .await;
    let (mut again, peer) = connect(tls, &trusting(&b)).await.unwrap();
    assert_eq!(peer, b.der);
    assert_eq!(validate(&mut again).await.0, StatusCode::OK);

    let metrics = probe(probes, "/metrics").await.1;
    assert!(
        metrics.contains(r#"gitops_guard_cert_reloads_total{result="success"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"gitops_guard_decisions_total{verdict="deny",reason="managed"} 4"#),
        "{metrics}"
    );

    drop((kept, fresh, again));
    server.shutdown().await.unwrap();
    assert!(
        TcpStream::connect(tls).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_on_reload_keeps_the_last_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let write = |text: &str| {
        let tmp = dir.path().join("config.yaml.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.path().join("config.yaml")).unwrap();
    };
    write("mode: audit\n");
    let cert = self_signed();
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_path, &cert.cert_pem).unwrap();
    std::fs::write(&key_path, &cert.key_pem).unwrap();
    let server = Server::start(options(config.clone(), cert_path, key_path))
        .await
        .unwrap();
    let app = server.app().clone();

    let decide = || {
        let router = app.router();
        async move {
            let req = Request::post("/validate")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(fixture("update-13k.json")))
                .unwrap();
            let resp = router.oneshot(req).await.unwrap();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice::<Value>(&body).unwrap()["response"].clone()
        }
    };
    let metrics = || async { probe(server.probe_addr(), "/metrics").await.1 };

    let resp = decide().await;
    assert_eq!(resp["allowed"], true, "audit mode allows: {resp}");
    assert!(
        resp["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("audit mode:")
    );

    // A typo: unknown key. Refused, counted, and audit mode stays in effect.
    write("mode: enforce\nbreakglass:\n  groups: [sre]\n");
    eventually("the failed reload to be counted", || async {
        metrics()
            .await
            .contains(r#"gitops_guard_config_reloads_total{result="failure"} 1"#)
    })
    .await;
    assert_eq!(decide().await["allowed"], true, "still audit mode");
    assert_eq!(app.config().mode, gitops_guard_core::Mode::Audit);

    // The file disappears for a while (a botched rollout): still the last good config.
    std::fs::remove_file(&config).unwrap();
    eventually("the unreadable file to be counted", || async {
        metrics()
            .await
            .contains(r#"gitops_guard_config_reloads_total{result="failure"} 2"#)
    })
    .await;
    assert_eq!(decide().await["allowed"], true, "still audit mode");

    // Fixed: enforce mode takes effect.
    write("mode: enforce\n");
    eventually("the good reload to be counted", || async {
        metrics()
            .await
            .contains(r#"gitops_guard_config_reloads_total{result="success"} 1"#)
    })
    .await;
    let resp = decide().await;
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(resp["status"]["code"], 403);

    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn start_refuses_bad_files_and_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let cert = self_signed();
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_path, &cert.cert_pem).unwrap();
    std::fs::write(&key_path, &cert.key_pem).unwrap();

    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "mode: loose\n").unwrap();
    let err = Server::start(options(config.clone(), cert_path.clone(), key_path.clone()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&config.display().to_string()), "{err}");
    assert!(err.contains("mode"), "{err}");

    std::fs::write(&config, "").unwrap();
    let other = self_signed();
    std::fs::write(&key_path, &other.key_pem).unwrap();
    let err = Server::start(options(config.clone(), cert_path.clone(), key_path.clone()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("do not fit together"), "{err}");
    assert!(err.contains(&key_path.display().to_string()), "{err}");

    let missing = dir.path().join("nope.crt");
    let err = Server::start(options(config.clone(), missing.clone(), key_path.clone()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&missing.display().to_string()), "{err}");

    // A taken port.
    std::fs::write(&key_path, &cert.key_pem).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut opts = options(config, cert_path, key_path);
    opts.listen = taken.local_addr().unwrap();
    let err = Server::start(opts).await.unwrap_err().to_string();
    assert!(err.contains("--listen"), "{err}");
    assert!(
        err.contains(&taken.local_addr().unwrap().to_string()),
        "{err}"
    );
}

/// A CA and a client certificate it signed (as the API server's admission kubeconfig holds).
struct ClientPki {
    ca_pem: String,
    cert: CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
}

fn client_pki(name: &str) -> ClientPki {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} CA"));
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    ClientPki {
        ca_pem: ca.pem(),
        cert: cert.der().clone(),
        key: rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    }
}

/// A client that trusts `server` and presents `client`'s certificate (or none).
fn presenting(server: &Cert, client: Option<&ClientPki>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.der.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(c) => builder
            .with_client_auth_cert(vec![c.cert.clone()], c.key.clone_key())
            .unwrap(),
    };
    TlsConnector::from(Arc::new(config))
}

/// One review on a new connection: its HTTP status, or why it failed (with TLS 1.3 the client
/// learns that its certificate was refused only when it reads).
async fn try_review(addr: SocketAddr, connector: &TlsConnector) -> Result<StatusCode, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = Request::post("/validate")
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(fixture("update-13k.json"))))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .map_err(|_| "no answer within 10 s".to_string())?
        .map_err(|e| format!("request: {e}"))?;
    Ok(resp.status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_client_ca_only_clients_it_signed_are_answered_and_a_new_ca_applies() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "").unwrap();
    let serving = self_signed();
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_path, &serving.cert_pem).unwrap();
    std::fs::write(&key_path, &serving.key_pem).unwrap();
    let (old, new) = (client_pki("kube-apiserver"), client_pki("kube-apiserver"));
    let ca_path = dir.path().join("client-ca.crt");
    let write_ca = |pem: &str| {
        let tmp = dir.path().join("client-ca.crt.tmp");
        std::fs::write(&tmp, pem).unwrap();
        std::fs::rename(&tmp, &ca_path).unwrap();
    };
    write_ca(&old.ca_pem);

    let mut opts = options(config, cert_path, key_path);
    opts.client_ca = Some(ca_path.clone());
    let server = Server::start(opts).await.unwrap();
    let (tls, probes) = (server.tls_addr(), server.probe_addr());

    let anonymous = presenting(&serving, None);
    let (by_old, by_new) = (
        presenting(&serving, Some(&old)),
        presenting(&serving, Some(&new)),
    );
    assert_eq!(try_review(tls, &by_old).await, Ok(StatusCode::OK));
    let err = try_review(tls, &anonymous).await.unwrap_err();
    assert!(!err.is_empty());
    let err = try_review(tls, &by_new).await.unwrap_err();
    assert!(!err.is_empty());
    // A connection made under the old CA stays open across the change.
    let (mut kept, _) = connect(tls, &by_old).await.unwrap();
    assert_eq!(validate(&mut kept).await.0, StatusCode::OK);

    // The API server's client certificate is reissued by another CA: the file changes.
    write_ca(&new.ca_pem);
    eventually("the new client CA to apply", || async {
        try_review(tls, &by_new).await == Ok(StatusCode::OK)
    })
    .await;
    assert!(try_review(tls, &by_old).await.is_err());
    assert!(try_review(tls, &anonymous).await.is_err());
    assert_eq!(validate(&mut kept).await.0, StatusCode::OK);

    // A client CA file that holds no certificate is refused; the last good one stays.
    write_ca("not a certificate\n");
    eventually("the failed reload to be counted", || async {
        probe(probes, "/metrics")
            .await
            .1
            .contains(r#"gitops_guard_cert_reloads_total{result="failure"} 1"#)
    })
    .await;
    assert_eq!(try_review(tls, &by_new).await, Ok(StatusCode::OK));

    let metrics = probe(probes, "/metrics").await.1;
    assert!(
        metrics.contains(r#"gitops_guard_cert_reloads_total{result="success"} 1"#),
        "{metrics}"
    );
    let refused = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                r#"gitops_guard_tls_handshake_errors_total{error="client-certificate"} "#,
            )
        })
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    assert!(refused >= 4, "{metrics}");
    drop(kept);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn start_refuses_a_client_ca_without_a_certificate_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "").unwrap();
    let serving = self_signed();
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_path, &serving.cert_pem).unwrap();
    std::fs::write(&key_path, &serving.key_pem).unwrap();
    let ca_path = dir.path().join("client-ca.crt");
    std::fs::write(&ca_path, &serving.key_pem).unwrap();
    let mut opts = options(config, cert_path, key_path);
    opts.client_ca = Some(ca_path.clone());
    let err = Server::start(opts).await.unwrap_err().to_string();
    assert!(err.contains("client CA file holds no CERTIFICATE"), "{err}");
    assert!(err.contains(&ca_path.display().to_string()), "{err}");
}
