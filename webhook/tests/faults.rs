//! Faults under load: while clients send reviews continuously — over HTTP/1.1 and HTTP/2, and
//! retrying on connection errors with a backoff as the API server's webhook client does — the
//! serving certificate is rotated, the server is shut down with requests in flight, and two
//! servers behind one address are restarted one after the other. No request fails, and the
//! metrics and readiness say what happened.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is how it fails

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

use gitops_guard_webhook::{App, Cluster, Server, ServerOptions, StaticLookup};

const UID: &str = "4f6d2a1b-9c3e-4e8f-a7b2-1d0c5e6f7a89";

fn review_body() -> Bytes {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/update-13k.json");
    Bytes::from(std::fs::read(path).unwrap())
}

fn lookup() -> Arc<StaticLookup> {
    Arc::new(StaticLookup::new().with_kustomization(
        "flux-system",
        "apps",
        "main@sha1:3f2a9c1e8b7d6a5f",
    ))
}

/// A CA (the webhook configuration's `caBundle`) and serving certificates it signs.
struct Pki {
    ca: CertificateDer<'static>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "gitops-guard test CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = params.self_signed(&key).unwrap();
        Pki {
            ca: ca.der().clone(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A serving certificate for `localhost`: (DER, cert PEM, key PEM).
    fn serving(&self) -> (CertificateDer<'static>, String, String) {
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.der().clone(), cert.pem(), key.serialize_pem())
    }

    /// A client that trusts the CA, speaking HTTP/2 or HTTP/1.1.
    fn client(&self, h2: bool) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![if h2 {
            b"h2".to_vec()
        } else {
            b"http/1.1".to_vec()
        }];
        TlsConnector::from(Arc::new(config))
    }
}

/// A mounted Secret as the kubelet lays it out (`tls.crt -> ..data/tls.crt`); an update writes
/// a new directory and swaps the `..data` link.
struct SecretVolume {
    dir: PathBuf,
    generation: u32,
}

impl SecretVolume {
    fn new(dir: &Path, cert_pem: &str, key_pem: &str) -> SecretVolume {
        let mut v = SecretVolume {
            dir: dir.to_path_buf(),
            generation: 0,
        };
        v.update(cert_pem, key_pem);
        std::os::unix::fs::symlink("..data/tls.crt", dir.join("tls.crt")).unwrap();
        std::os::unix::fs::symlink("..data/tls.key", dir.join("tls.key")).unwrap();
        v
    }

    fn update(&mut self, cert_pem: &str, key_pem: &str) {
        self.generation += 1;
        let name = format!("..2026_12_02_08_00_0{}", self.generation);
        let data = self.dir.join(&name);
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("tls.crt"), cert_pem).unwrap();
        std::fs::write(data.join("tls.key"), key_pem).unwrap();
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&name, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
    }
}

/// Starts a guard on `listen` serving the certificate in `dir` (a `SecretVolume`).
async fn start(dir: &Path, listen: SocketAddr) -> Server {
    start_with_delay(dir, listen, Duration::ZERO).await
}

/// [`start`] with a shutdown delay.
async fn start_with_delay(dir: &Path, listen: SocketAddr, delay: Duration) -> Server {
    let config = dir.join("config.yaml");
    std::fs::write(&config, "").unwrap();
    let probe = "127.0.0.1:0".parse().unwrap();
    let mut o = ServerOptions::new(
        config,
        dir.join("tls.crt"),
        dir.join("tls.key"),
        listen,
        probe,
        Cluster::Static(lookup()),
    );
    o.reload_interval = Duration::from_millis(100);
    o.shutdown_delay = delay;
    Server::start(o).await.unwrap()
}

/// GET on the plain-HTTP probe port; `None` when it does not answer.
async fn probe(addr: SocketAddr, path: &str) -> Option<(StatusCode, String)> {
    let tcp = TcpStream::connect(addr).await.ok()?;
    let (mut sender, conn) = http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp))
        .await
        .ok()?;
    tokio::spawn(conn);
    let req = Request::get(path)
        .header(header::HOST, "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.ok()?;
    let status = resp.status();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of a metric line (its name and labels as written), 0 when absent.
fn metric(app: &App, series: &str) -> u64 {
    let text = app.metrics().encode();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

fn decisions(app: &App) -> u64 {
    metric(
        app,
        r#"gitops_guard_decisions_total{verdict="deny",reason="managed"}"#,
    )
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    async fn send(&mut self, req: Request<Full<Bytes>>) -> hyper::Result<Response<Incoming>> {
        match self {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
        }
    }
}

/// Why a review got no decision.
#[derive(Debug)]
enum Failure {
    /// Only connection errors, until the retries ran out: the request was never read.
    Unsent(String),
    /// An answer that is not the decision.
    Wrong(String),
}

/// A client like the API server's webhook client: one connection kept open (HTTP/2 or
/// HTTP/1.1 keep-alive), a new one every `reconnect_every` reviews, and on a connection error
/// (refused, reset, closed) a retry on a new connection after a backoff (50 ms, doubling, at
/// most 1 s, 8 attempts).
struct ApiClient {
    addr: SocketAddr,
    connector: TlsConnector,
    h2: bool,
    reconnect_every: usize,
    sender: Option<Sender>,
    used: usize,
    retries: usize,
    /// The serving certificate of each connection made.
    served: Vec<CertificateDer<'static>>,
}

impl ApiClient {
    fn new(addr: SocketAddr, pki: &Pki, h2: bool, reconnect_every: usize) -> ApiClient {
        ApiClient {
            addr,
            connector: pki.client(h2),
            h2,
            reconnect_every,
            sender: None,
            used: 0,
            retries: 0,
            served: Vec::new(),
        }
    }

    async fn connect(&mut self) -> Result<Sender, String> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let name = ServerName::try_from("localhost").unwrap();
        let tls = self
            .connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        if let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
            self.served.push(cert.clone());
        }
        let io = TokioIo::new(tls);
        if self.h2 {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| format!("h2 handshake: {e}"))?;
            tokio::spawn(conn);
            Ok(Sender::H2(sender))
        } else {
            let (sender, conn) = http1::handshake(io)
                .await
                .map_err(|e| format!("h1 handshake: {e}"))?;
            tokio::spawn(conn);
            Ok(Sender::H1(sender))
        }
    }

    /// One attempt: the answer's status and body, or a connection error.
    async fn attempt(&mut self, body: &Bytes) -> Result<(StatusCode, Bytes), String> {
        if self.used >= self.reconnect_every {
            self.sender = None;
            self.used = 0;
        }
        let mut sender = match self.sender.take() {
            Some(s) => s,
            None => self.connect().await?,
        };
        let req = Request::post("/validate")
            .header(header::HOST, "localhost")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))
            .unwrap();
        let resp = sender.send(req).await.map_err(|e| format!("send: {e}"))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("read: {e}"))?
            .to_bytes();
        self.sender = Some(sender);
        self.used += 1;
        Ok((status, bytes))
    }

    /// A review, retried on connection errors; the decision.
    async fn review(&mut self, body: &Bytes) -> Result<Value, Failure> {
        let mut backoff = Duration::from_millis(50);
        let mut last = String::new();
        for attempt in 0..8 {
            if attempt > 0 {
                self.retries += 1;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            match self.attempt(body).await {
                Err(e) => last = e,
                Ok((status, bytes)) => {
                    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    let decided = status == StatusCode::OK
                        && v["response"]["uid"] == UID
                        && v["response"]["status"]["code"] == 403;
                    return if decided {
                        Ok(v)
                    } else {
                        Err(Failure::Wrong(format!("{status}: {v}")))
                    };
                }
            }
        }
        Err(Failure::Unsent(last))
    }
}

/// What the clients of a [`Load`] saw.
#[derive(Debug, Default)]
struct Report {
    decided: usize,
    retries: usize,
    /// Connection errors only, after the stop was given (the server was going away).
    unsent_after_stop: usize,
    failed: Vec<String>,
    served: Vec<CertificateDer<'static>>,
}

/// Clients sending reviews back to back until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    decided: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<(ApiClient, Report)>>,
}

impl Load {
    /// `clients` clients (every other one over HTTP/2) to `addr`.
    fn start(addr: SocketAddr, pki: &Pki, clients: usize, reconnect_every: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let decided = Arc::new(AtomicUsize::new(0));
        let body = review_body();
        let tasks = (0..clients)
            .map(|i| {
                let mut client = ApiClient::new(addr, pki, i % 2 == 1, reconnect_every);
                let (stop, decided, body) = (stop.clone(), decided.clone(), body.clone());
                tokio::spawn(async move {
                    let mut report = Report::default();
                    while !stop.load(Ordering::Relaxed) {
                        match client.review(&body).await {
                            Ok(_) => {
                                report.decided += 1;
                                decided.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(Failure::Unsent(_)) if stop.load(Ordering::Relaxed) => {
                                report.unsent_after_stop += 1;
                            }
                            Err(Failure::Unsent(e)) => report.failed.push(format!("unsent: {e}")),
                            Err(Failure::Wrong(e)) => report.failed.push(format!("wrong: {e}")),
                        }
                    }
                    (client, report)
                })
            })
            .collect();
        Load {
            stop,
            decided,
            tasks,
        }
    }

    /// Reviews decided so far.
    fn decided(&self) -> usize {
        self.decided.load(Ordering::Relaxed)
    }

    /// Waits until `more` more reviews are decided.
    async fn decides(&self, more: usize) {
        let target = self.decided() + more;
        eventually(&format!("{more} more reviews decided"), || async {
            self.decided() >= target
        })
        .await;
    }

    fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    async fn finish(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = Report::default();
        for task in self.tasks {
            let (client, report) = task.await.unwrap();
            total.decided += report.decided;
            total.retries += client.retries;
            total.unsent_after_stop += report.unsent_after_stop;
            total.failed.extend(report.failed);
            total.served.extend(client.served);
        }
        total
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_certificate_rotated_under_load_fails_no_request() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let (a, a_cert, a_key) = pki.serving();
    let (b, b_cert, b_key) = pki.serving();
    let mut secret = SecretVolume::new(dir.path(), &a_cert, &a_key);
    let server = start(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let app = server.app().clone();

    let load = Load::start(server.tls_addr(), &pki, 4, 10);
    load.decides(100).await;
    // cert-manager renews: the Secret volume swaps to B.
    secret.update(&b_cert, &b_key);
    let served_b = || async {
        let mut c = ApiClient::new(server.tls_addr(), &pki, false, 1);
        c.connect().await.is_ok() && c.served.first() == Some(&b)
    };
    eventually("new connections to get B", served_b).await;
    load.decides(100).await;
    let report = load.finish().await;

    eprintln!(
        "rotation: {} decided, {} retries, {} connections",
        report.decided,
        report.retries,
        report.served.len()
    );
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.unsent_after_stop, 0);
    assert!(report.served.contains(&a) && report.served.contains(&b));
    assert_eq!(
        metric(&app, r#"gitops_guard_cert_reloads_total{result="success"}"#),
        1
    );
    assert_eq!(
        metric(&app, r#"gitops_guard_cert_reloads_total{result="failure"}"#),
        0
    );
    // Every decision made reached its client: none was lost with a connection.
    assert_eq!(decisions(&app), report.decided as u64);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shutdown_answers_every_request_in_flight_and_readiness_says_it_is_stopping() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = pki.serving();
    let _secret = SecretVolume::new(dir.path(), &cert, &key);
    let server = start(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let (app, tls, probes) = (server.app().clone(), server.tls_addr(), server.probe_addr());
    assert_eq!(probe(probes, "/readyz").await.unwrap().0, StatusCode::OK);

    let load = Load::start(tls, &pki, 4, usize::MAX);
    load.decides(100).await;

    // Requests in flight: the server has begun reading their body (it said `100 Continue`),
    // half of which is in.
    let body = review_body();
    let head = format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut in_flight = Vec::new();
    for _ in 0..8 {
        let tcp = TcpStream::connect(tls).await.unwrap();
        let mut stream = pki
            .client(false)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut continued = Vec::new();
        while !continued.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            let n = tokio::io::AsyncReadExt::read(&mut stream, &mut byte)
                .await
                .unwrap();
            assert_eq!(n, 1, "{}", String::from_utf8_lossy(&continued));
            continued.push(byte[0]);
        }
        assert!(continued.starts_with(b"HTTP/1.1 100 Continue\r\n"));
        stream.write_all(&body[..body.len() / 2]).await.unwrap();
        stream.flush().await.unwrap();
        in_flight.push(stream);
    }
    assert!(metric(&app, "gitops_guard_requests_in_flight") >= 8);

    // SIGTERM: the clients stop sending new reviews as the server stops.
    let stop = load.stop_flag();
    stop.store(true, Ordering::Relaxed);
    let stopping = tokio::spawn(server.shutdown());
    // While the requests finish: not ready (taken out of the Service), new connections refused.
    eventually("/readyz to say the webhook is stopping", || async {
        matches!(probe(probes, "/readyz").await,
            Some((StatusCode::SERVICE_UNAVAILABLE, body)) if body.contains("shutting down"))
    })
    .await;
    eventually("the TLS port to refuse new connections", || async {
        TcpStream::connect(tls).await.is_err()
    })
    .await;
    assert!(
        !stopping.is_finished(),
        "the drain waits for the requests in flight"
    );

    // The rest of their bodies: each is decided.
    let mut answered = 0;
    for mut stream in in_flight {
        stream.write_all(&body[body.len() / 2..]).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(
            Duration::from_secs(20),
            tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut answer),
        )
        .await
        .expect("no answer within 20 s")
        .ok();
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        let json = &text[text.find("\r\n\r\n").unwrap() + 4..];
        let v: Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["response"]["uid"], UID, "{v}");
        assert_eq!(v["response"]["status"]["code"], 403, "{v}");
        answered += 1;
    }
    tokio::time::timeout(Duration::from_secs(20), stopping)
        .await
        .expect("the drain did not end within 20 s")
        .unwrap()
        .unwrap();
    let report = load.finish().await;
    eprintln!(
        "shutdown: {} decided under load, {answered} in flight answered, {} not sent after the stop",
        report.decided, report.unsent_after_stop
    );
    assert_eq!(answered, 8);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(decisions(&app), (report.decided + answered) as u64);
    assert_eq!(metric(&app, "gitops_guard_requests_in_flight"), 0);
    assert!(
        probe(probes, "/readyz").await.is_none(),
        "the probe port is closed"
    );
    let readiness = app.readiness().report();
    assert!(!readiness.ready);
    assert!(
        readiness
            .missing
            .iter()
            .any(|m| m.contains("shutting down"))
    );
}

/// A Service: forwards each new connection to the first backend that accepts it, starting
/// from the next one each time (round robin).
async fn service(backends: Vec<SocketAddr>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                continue;
            };
            let (backends, next) = (backends.clone(), next.clone());
            tokio::spawn(async move {
                let start = next.fetch_add(1, Ordering::Relaxed);
                for i in 0..backends.len() {
                    let backend = backends[(start + i) % backends.len()];
                    if let Ok(mut server) = TcpStream::connect(backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        return;
                    }
                }
                // None is up: the client sees the connection closed, and retries.
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_of_two_guards_behind_one_address_fails_no_request() {
    let pki = Pki::new();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let (_, cert, key) = pki.serving();
    let _secrets: Vec<_> = dirs
        .iter()
        .map(|d| SecretVolume::new(d.path(), &cert, &key))
        .collect();
    let local = "127.0.0.1:0".parse().unwrap();
    let mut servers = vec![
        start(dirs[0].path(), local).await,
        start(dirs[1].path(), local).await,
    ];
    let ports: Vec<SocketAddr> = servers.iter().map(Server::tls_addr).collect();
    let address = service(ports.clone()).await;
    let apps = Arc::new(Mutex::new(
        servers.iter().map(|s| s.app().clone()).collect::<Vec<_>>(),
    ));

    let load = Load::start(address, &pki, 4, 10);
    load.decides(100).await;
    for (i, port) in ports.iter().enumerate() {
        // The pod gets SIGTERM; a new one comes up on its address.
        let old = servers.remove(0);
        let old_app = old.app().clone();
        old.shutdown().await.unwrap();
        assert!(!old_app.readiness().report().ready);
        load.decides(50).await;
        let new = start(dirs[i].path(), *port).await;
        let new_app = new.app().clone();
        apps.lock().unwrap().push(new_app.clone());
        eventually("the new guard to be ready", || async {
            probe(new.probe_addr(), "/readyz")
                .await
                .is_some_and(|(s, _)| s == StatusCode::OK)
        })
        .await;
        servers.push(new);
        eventually("the new guard to decide reviews", || async {
            decisions(&new_app) >= 20
        })
        .await;
    }
    load.decides(100).await;
    let report = load.finish().await;
    for server in servers {
        server.shutdown().await.unwrap();
    }

    let per_server: Vec<u64> = apps.lock().unwrap().iter().map(decisions).collect();
    eprintln!(
        "rolling restart: {} decided ({per_server:?} per guard), {} retries",
        report.decided, report.retries
    );
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.unsent_after_stop, 0);
    assert!(per_server.iter().all(|&n| n > 0), "{per_server:?}");
    // Every decision reached its client once: none lost as a guard went away.
    assert_eq!(per_server.iter().sum::<u64>(), report.decided as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn during_the_shutdown_delay_the_guard_is_not_ready_and_still_serves() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = pki.serving();
    let _secret = SecretVolume::new(dir.path(), &cert, &key);
    let delay = Duration::from_secs(3);
    let server = start_with_delay(dir.path(), "127.0.0.1:0".parse().unwrap(), delay).await;
    let (app, tls, probes) = (server.app().clone(), server.tls_addr(), server.probe_addr());

    let load = Load::start(tls, &pki, 2, 10);
    load.decides(50).await;
    let started = Instant::now();
    let stopping = tokio::spawn(server.shutdown());
    eventually("/readyz to say the webhook is stopping", || async {
        matches!(probe(probes, "/readyz").await,
            Some((StatusCode::SERVICE_UNAVAILABLE, body)) if body.contains("shutting down"))
    })
    .await;
    // Not ready, yet still serving: open connections and new ones, for clients (kube-proxy)
    // that have not seen the pod leave the Service yet.
    load.decides(50).await;
    let mut late = ApiClient::new(tls, &pki, false, 1);
    let review = late.review(&review_body()).await;
    assert!(review.is_ok(), "{review:?}");
    assert!(
        started.elapsed() < delay,
        "the delay was over before the checks ({:?}): too slow a machine for this test",
        started.elapsed()
    );
    // Then the port closes.
    load.stop_flag().store(true, Ordering::Relaxed);
    tokio::time::timeout(Duration::from_secs(30), stopping)
        .await
        .expect("the shutdown did not end within 30 s")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() >= delay);
    assert!(TcpStream::connect(tls).await.is_err());
    let report = load.finish().await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(decisions(&app), (report.decided + 1) as u64);
}
