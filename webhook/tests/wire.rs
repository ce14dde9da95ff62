//! Bad input over the wire: a real `Server` on real TCP + TLS sockets. Every hostile client gets
//! a bounded answer (or a bounded close), and a normal review on another connection is decided
//! meanwhile and after. (The same bodies through the router alone: `hostile.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is how it fails

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use gitops_guard_core::custody::{CustodyInfo, Kind, ObjectRef};
use gitops_guard_core::{Lookup, NamespaceInfo, OwnerInfo, OwnerRef};
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use gitops_guard_webhook::app::{BLOCKING_BODY, LARGE_BODY};
use gitops_guard_webhook::{Cluster, ReviewLimits, Server, ServerOptions, StaticLookup};

/// The 13 KB fixture's uid.
const U: &str = "4f6d2a1b-9c3e-4e8f-a7b2-1d0c5e6f7a89";
/// The uid of the reviews made from the 2 KB fixture.
const BIG_UID: &str = "c1a8e0f2-6b7d-4f39-8e21-5d0c9b3a4e71";
const KC: &str = "system:serviceaccount:flux-system:kustomize-controller";

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn lookup() -> StaticLookup {
    StaticLookup::new().with_kustomization(
        "flux-system",
        "apps",
        "main@sha1:3f2a9c1e8b7d6a5f4e3d2c1b0a99887766554433",
    )
}

/// The 13 KB UPDATE fixture with `edit` applied to its text.
fn update_text(edit: impl FnOnce(String) -> String) -> Vec<u8> {
    edit(String::from_utf8(fixture("update-13k.json")).unwrap()).into_bytes()
}

/// An UPDATE of the Flux-managed ConfigMap prod/web-env by `by`, both objects holding `size`
/// characters `<`, escaped as the API server escapes them (`\u003c`, six bytes each).
fn big_update(by: &str, size: usize) -> Vec<u8> {
    let review = String::from_utf8(fixture("create-2k.json")).unwrap();
    let start = review.find(r#""object":"#).unwrap() + r#""object":"#.len();
    let end = review.find(r#","oldObject":null"#).unwrap();
    let object = &review[start..end];
    let with_big = |n: usize| {
        object.replacen(
            r#""data":{"#,
            &format!(r#""data":{{"BIG":"{}","#, "<".repeat(n)),
            1,
        )
    };
    let groups = if by == KC {
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:flux-system",
            "system:authenticated"
        ])
    } else {
        json!(["developers", "system:authenticated"])
    };
    let review = format!(
        r#"{}{},"oldObject":{}{}"#,
        &review[..start],
        with_big(size + 1),
        with_big(size),
        &review[end + r#","oldObject":null"#.len()..]
    )
    .replacen(r#""operation":"CREATE""#, r#""operation":"UPDATE""#, 1)
    .replacen(
        r#""userInfo":{"username":"ana","uid":"5b0c1f7e-2d4a-4c1b-9a57-0e6f0f4d8c21","groups":["developers","system:authenticated"]}"#,
        &format!(r#""userInfo":{}"#, json!({"username": by, "groups": groups})),
        1,
    )
    .replacen(r#""kind":"CreateOptions""#, r#""kind":"UpdateOptions""#, 1);
    assert!(review.contains(r#""operation":"UPDATE""#) && review.contains(by));
    let mut out = Vec::with_capacity(review.len() * 3);
    for b in review.bytes() {
        match b {
            b'<' => out.extend_from_slice(br"\u003c"),
            _ => out.push(b),
        }
    }
    out
}

struct Guard {
    server: Server,
    connector: TlsConnector,
    _dir: tempfile::TempDir,
}

impl Guard {
    async fn start(lookup: Arc<dyn Lookup + Send + Sync>, reviews: ReviewLimits) -> Guard {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert_path, key_path, config) = (
            dir.path().join("tls.crt"),
            dir.path().join("tls.key"),
            dir.path().join("config.yaml"),
        );
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
        std::fs::write(&config, "").unwrap();
        let local = "127.0.0.1:0".parse().unwrap();
        let mut options = ServerOptions::new(
            config,
            cert_path,
            key_path,
            local,
            local,
            Cluster::Static(lookup),
        );
        options.reviews = reviews;
        let server = Server::start(options).await.unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.cert.der().clone()).unwrap();
        let client = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Guard {
            server,
            connector: TlsConnector::from(Arc::new(client)),
            _dir: dir,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.tls_addr()
    }

    async fn tls(&self) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr()).await.unwrap();
        self.connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap()
    }

    async fn h1(&self) -> SendRequest<Full<Bytes>> {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(self.tls().await))
            .await
            .unwrap();
        tokio::spawn(conn);
        sender
    }

    fn metrics(&self) -> String {
        self.server.app().metrics().encode()
    }

    /// Decides the 13 KB fixture on a new connection.
    async fn decides(&self) {
        let (status, v) = post(&mut self.h1().await, fixture("update-13k.json")).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_decided(&v, U);
    }
}

/// POSTs `body` as an AdmissionReview: the HTTP status and the JSON answer.
async fn post(sender: &mut SendRequest<Full<Bytes>>, body: Vec<u8>) -> (StatusCode, Value) {
    sender.ready().await.unwrap();
    let req = Request::post("/validate")
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

/// The 13 KB fixture's decision: Ana's change to a managed Deployment is denied.
fn assert_decided(v: &Value, uid: &str) {
    assert_eq!(v["response"]["uid"], uid, "{v}");
    assert_eq!(v["response"]["allowed"], false, "{v}");
    assert_eq!(v["response"]["status"]["code"], 403, "{v}");
}

/// A refusal for `uid` with `code`, whose message contains `needle`.
fn assert_refused(v: &Value, uid: &str, code: u16, needle: &str) {
    let resp = &v["response"];
    assert_eq!(v["kind"], "AdmissionReview", "{v}");
    assert_eq!(resp["uid"], uid, "{v}");
    assert_eq!(resp["allowed"], false, "{v}");
    assert_eq!(resp["status"]["code"], code, "{v}");
    let message = resp["status"]["message"].as_str().unwrap();
    assert!(message.contains(needle), "{message}");
}

/// Sends normal reviews on its own keep-alive connection until stopped; counts the decided ones
/// and says what else it got.
struct Witness {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(usize, Vec<String>)>,
}

impl Witness {
    async fn start(guard: &Guard) -> Witness {
        let stop = Arc::new(AtomicBool::new(false));
        let mut sender = guard.h1().await;
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let (mut decided, mut wrong) = (0, Vec::new());
            while !flag.load(Ordering::Relaxed) {
                let (status, v) = post(&mut sender, fixture("update-13k.json")).await;
                if status == StatusCode::OK && v["response"]["status"]["code"] == 403 {
                    decided += 1;
                } else {
                    wrong.push(format!("{status}: {v}"));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (decided, wrong)
        });
        Witness { stop, task }
    }

    /// Stops it; asserts it had every review decided, at least `min` of them.
    async fn finish(self, min: usize) {
        self.stop.store(true, Ordering::Relaxed);
        let (decided, wrong) = self.task.await.unwrap();
        assert!(wrong.is_empty(), "the witness got: {wrong:?}");
        assert!(
            decided >= min,
            "the witness had only {decided} reviews decided"
        );
    }
}

/// The request deadline for the tests whose point is not the deadline: long, so that a loaded
/// machine does not turn the witness's reviews into timeouts. (The body deadline stays 2 s.)
fn patient() -> ReviewLimits {
    ReviewLimits {
        request_timeout: Duration::from_secs(20),
        ..ReviewLimits::default()
    }
}

/// What a raw HTTP/1.1 exchange got: the status and body, or `None` when the server closed
/// the connection without an answer.
async fn read_answer<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Option<(u16, Value)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0);
        if buf.len() >= end + 4 + length {
            let status = head[9..12].parse().unwrap();
            let body =
                serde_json::from_slice(&buf[end + 4..end + 4 + length]).unwrap_or(Value::Null);
            return Some((status, body));
        }
    }
    assert!(buf.is_empty(), "{}", String::from_utf8_lossy(&buf));
    None
}

fn request_head(length: usize) -> Vec<u8> {
    format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    .into_bytes()
}

enum Expect {
    /// HTTP 200, the review decided: allowed or not.
    Decided(bool),
    /// HTTP 200, refused for the uid with this code and message part.
    Refused(&'static str, u16, &'static str),
    /// An HTTP error with `{"error": ...}`.
    Http(StatusCode),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_bodies_get_bounded_answers_while_another_connection_is_served() {
    let guard = Guard::start(Arc::new(lookup()), patient()).await;
    let witness = Witness::start(&guard).await;

    let full = fixture("update-13k.json");
    let mut not_utf8 = full.clone();
    let at = full.windows(9).position(|w| w == br#""image":""#).unwrap();
    not_utf8[at + 9] = 0xff;
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        ("empty", Vec::new(), Expect::Http(StatusCode::BAD_REQUEST)),
        (
            "10 MB, decided",
            big_update("ana", 850_000),
            Expect::Decided(false),
        ),
        (
            "10 MB from the agent, decided",
            big_update(KC, 830_000),
            Expect::Decided(true),
        ),
        (
            "50 MB",
            big_update("ana", 4_200_000),
            Expect::Refused(BIG_UID, 413, "more than the 32 MiB"),
        ),
        (
            "a million open brackets",
            update_text(|t| {
                let cut = t.find(r#""object":"#).unwrap() + 9;
                format!("{}{}", &t[..cut], "[".repeat(1_000_000))
            }),
            Expect::Refused(U, 400, "cannot decode"),
        ),
        (
            "200,000 levels of objects",
            update_text(|t| {
                t.replacen(
                    r#""spec":{"#,
                    &format!(
                        r#""deep":{}1{},"spec":{{"#,
                        r#"{"a":"#.repeat(200_000),
                        "}".repeat(200_000)
                    ),
                    1,
                )
            }),
            Expect::Decided(false),
        ),
        (
            "not UTF-8",
            not_utf8,
            Expect::Refused(U, 400, "cannot decode"),
        ),
        (
            "a duplicate key",
            update_text(|t| {
                t.replacen(
                    r#""kind":"AdmissionReview""#,
                    r#""kind":"AdmissionReview","kind":"AdmissionReview""#,
                    1,
                )
            }),
            Expect::Refused(U, 400, "duplicate field `kind`"),
        ),
        (
            "a wrong apiVersion",
            update_text(|t| t.replacen("admission.k8s.io/v1", "admission.k8s.io/v2", 1)),
            Expect::Refused(U, 400, "is not admission.k8s.io/v1"),
        ),
        (
            "no uid",
            update_text(|t| t.replacen(&format!(r#""uid":"{U}","#), "", 1)),
            Expect::Http(StatusCode::BAD_REQUEST),
        ),
        (
            "truncated",
            full[..full.len() / 2].to_vec(),
            Expect::Refused(U, 400, "EOF"),
        ),
    ];
    for (what, body, expect) in cases {
        let started = Instant::now();
        let mut sender = guard.h1().await;
        let (status, v) = tokio::time::timeout(Duration::from_secs(120), post(&mut sender, body))
            .await
            .unwrap_or_else(|_| panic!("{what}: no answer within 120 s"));
        match expect {
            Expect::Decided(allowed) => {
                assert_eq!(status, StatusCode::OK, "{what}: {v}");
                assert_eq!(v["response"]["allowed"], allowed, "{what}: {v}");
                if !allowed {
                    assert_eq!(v["response"]["status"]["code"], 403, "{what}: {v}");
                }
            }
            Expect::Refused(uid, code, needle) => {
                assert_eq!(status, StatusCode::OK, "{what}: {v}");
                assert_refused(&v, uid, code, needle);
            }
            Expect::Http(want) => {
                assert_eq!(status, want, "{what}: {v}");
                assert!(v["error"].is_string(), "{what}: {v}");
            }
        }
        eprintln!("{what}: answered in {:?}", started.elapsed());
    }

    // A body that stops half-way with the connection left open: refused for its uid once the
    // body deadline (2 s) passes, not left hanging.
    let started = Instant::now();
    let mut tls = guard.tls().await;
    tls.write_all(&request_head(full.len())).await.unwrap();
    tls.write_all(&full[..full.len() / 2]).await.unwrap();
    let (status, v) = tokio::time::timeout(Duration::from_secs(30), read_answer(&mut tls))
        .await
        .expect("no answer within 30 s")
        .expect("closed without an answer");
    assert_eq!(status, 200, "{v}");
    assert_refused(&v, U, 504, "did not arrive within 2s");
    assert!(started.elapsed() >= Duration::from_secs(2));

    guard.decides().await;
    witness.finish(5).await;
    let metrics = guard.metrics();
    for line in [
        r#"gitops_guard_request_errors_total{error="too-large"} 1"#,
        r#"gitops_guard_request_errors_total{error="timeout"} 1"#,
        "gitops_guard_requests_in_flight 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }
    guard.server.shutdown().await.unwrap();
}

/// A TLS 1.0-only ClientHello: record version 3.1, client version 3.1, two TLS 1.0 cipher
/// suites, no extensions (so no `supported_versions`).
fn tls10_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x01];
    body.extend_from_slice(&[0x5a; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0x00, 0x04, 0x00, 0x2f, 0x00, 0x35]); // AES-128/256-CBC-SHA
    body.extend_from_slice(&[0x01, 0x00]); // compression: null
    let mut handshake = vec![0x01, 0x00, 0x00, u8::try_from(body.len()).unwrap()];
    handshake.extend_from_slice(&body);
    let mut record = vec![
        0x16,
        0x03,
        0x01,
        0x00,
        u8::try_from(handshake.len()).unwrap(),
    ];
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plain_http_and_tls_1_0_on_the_tls_port_are_refused_at_once() {
    let guard = Guard::start(Arc::new(lookup()), patient()).await;
    let witness = Witness::start(&guard).await;

    // Plain HTTP: an HTTP answer that says what is wrong, then the connection closes.
    let started = Instant::now();
    let mut tcp = TcpStream::connect(guard.addr()).await.unwrap();
    let body = fixture("update-13k.json");
    tcp.write_all(&request_head(body.len())).await.unwrap();
    tcp.write_all(&body).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer))
        .await
        .expect("not closed within 10 s")
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.0 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(answer.contains("this port speaks HTTPS"), "{answer}");
    eprintln!("plain HTTP: answered in {:?}", started.elapsed());

    // TLS 1.0: a fatal alert (rustls speaks only 1.2 and 1.3: handshake_failure), then the close.
    let started = Instant::now();
    let mut tcp = TcpStream::connect(guard.addr()).await.unwrap();
    tcp.write_all(&tls10_client_hello()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer))
        .await
        .expect("not closed within 10 s")
        .unwrap();
    match answer.as_slice() {
        [0x15, 0x03, _, 0x00, 0x02, 0x02, 40 | 70] => {}
        _ => panic!("not one fatal alert: {answer:02x?}"),
    }
    eprintln!("TLS 1.0: refused in {:?}", started.elapsed());

    guard.decides().await;
    witness.finish(1).await;
    let metrics = guard.metrics();
    for line in [
        r#"gitops_guard_tls_handshake_errors_total{error="plaintext"} 1"#,
        r#"gitops_guard_tls_handshake_errors_total{error="failed"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }
    guard.server.shutdown().await.unwrap();
}

/// How a slow-loris connection ended.
#[derive(Debug, PartialEq)]
enum Ended {
    /// The server closed it without an answer.
    Closed,
    /// The server answered (status, the refusal's code or the error).
    Answered(u16, Value),
}

/// Opens a TLS connection and sends `first` at once, then `rest` one byte every `pause`, while
/// reading what the server sends; returns how it ended.
async fn trickle(
    tls: TlsStream<TcpStream>,
    first: Vec<u8>,
    rest: Vec<u8>,
    pause: Duration,
) -> Ended {
    let (mut reader, mut writer) = tokio::io::split(tls);
    let writing = async move {
        let _ = writer.write_all(&first).await;
        for byte in rest {
            if writer.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(pause).await;
        }
        // Keep the connection open: only the server may end it.
        std::future::pending::<()>().await;
    };
    tokio::select! {
        answer = read_answer(&mut reader) => match answer {
            None => Ended::Closed,
            Some((status, v)) => Ended::Answered(status, v),
        },
        () = writing => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_slow_loris_connections_are_cut_off_and_do_not_hold_the_guard_up() {
    let guard = Arc::new(Guard::start(Arc::new(lookup()), patient()).await);
    let witness = Witness::start(&guard).await;
    let body = fixture("update-13k.json");
    let head = request_head(body.len());
    let pause = Duration::from_millis(100);
    let started = Instant::now();
    let ended = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let guard = guard.clone();
        let (head, body, ended) = (head.clone(), body.clone(), ended.clone());
        tasks.push(tokio::spawn(async move {
            let (kind, result) = match i % 4 {
                // Headers one byte at a time: closed after the header read timeout (2 s).
                0 => (
                    "headers",
                    trickle(guard.tls().await, Vec::new(), head, pause).await,
                ),
                // The body one byte at a time, from its start: HTTP 408 after the body
                // deadline (2 s), no uid to answer.
                1 => ("body", trickle(guard.tls().await, head, body, pause).await),
                // The body's first 1,000 bytes (with the uid), then one byte at a time: refused
                // for that uid after the body deadline.
                2 => {
                    let first = [head, body[..1000].to_vec()].concat();
                    let rest = body[1000..].to_vec();
                    (
                        "body after the uid",
                        trickle(guard.tls().await, first, rest, pause).await,
                    )
                }
                // A TCP connection that never starts its TLS handshake: closed after the
                // handshake timeout (2 s).
                _ => {
                    let mut tcp = TcpStream::connect(guard.addr()).await.unwrap();
                    let mut buf = Vec::new();
                    let n = tcp.read_to_end(&mut buf).await.unwrap_or(0);
                    assert_eq!(n, 0);
                    ("no handshake", Ended::Closed)
                }
            };
            ended.fetch_add(1, Ordering::Relaxed);
            (kind, result)
        }));
    }
    // Meanwhile: decided, on new connections too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    guard.decides().await;

    let all = tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(tasks))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "only {} of 200 slow connections ended within 60 s",
                ended.load(Ordering::Relaxed)
            )
        });
    let took = started.elapsed();
    for result in all {
        match result.unwrap() {
            ("headers" | "no handshake", ended) => assert_eq!(ended, Ended::Closed),
            ("body", Ended::Answered(status, v)) => {
                assert_eq!(status, 408, "{v}");
                assert!(
                    v["error"].as_str().unwrap().contains("did not arrive"),
                    "{v}"
                );
            }
            ("body after the uid", Ended::Answered(status, v)) => {
                assert_eq!(status, 200, "{v}");
                assert_refused(&v, U, 504, "did not arrive within 2s");
            }
            (kind, ended) => panic!("{kind}: {ended:?}"),
        }
    }
    eprintln!("200 slow connections ended within {took:?}");

    guard.decides().await;
    witness.finish(5).await;
    let metrics = guard.metrics();
    for line in [
        r#"gitops_guard_request_errors_total{error="timeout"} 100"#,
        r#"gitops_guard_tls_handshake_errors_total{error="timeout"} 50"#,
        "gitops_guard_requests_in_flight 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }
    match Arc::try_unwrap(guard) {
        Ok(guard) => guard.server.shutdown().await.unwrap(),
        Err(_) => panic!("the guard is still shared"),
    }
}

/// A lookup that takes `delay` to answer for an owner (a stand-in for a decision that is slow:
/// the thread is busy, as with a huge object, so the tests give it bodies over
/// [`BLOCKING_BODY`]).
struct Slow {
    inner: StaticLookup,
    delay: Duration,
}

impl Lookup for Slow {
    fn owner(&self, owner: &OwnerRef) -> Option<OwnerInfo> {
        std::thread::sleep(self.delay);
        self.inner.owner(owner)
    }
    fn namespace(&self, name: &str) -> Option<NamespaceInfo> {
        self.inner.namespace(name)
    }
    fn custody(&self, object: &ObjectRef) -> Option<CustodyInfo> {
        self.inner.custody(object)
    }
    fn serves(&self, kind: &Kind) -> bool {
        self.inner.serves(kind)
    }
    fn holders(&self, namespace: &str) -> Vec<ObjectRef> {
        self.inner.holders(namespace)
    }
    fn readers(&self, input: &ObjectRef) -> Vec<ObjectRef> {
        self.inner.readers(input)
    }
    fn status_is_subresource(&self, group: &str, resource: &str) -> bool {
        self.inner.status_is_subresource(group, resource)
    }
}

fn with_uid(body: &[u8], from: &str, to: &str) -> Vec<u8> {
    String::from_utf8(body.to_vec())
        .unwrap()
        .replacen(from, to, 1)
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_review_not_decided_by_its_deadline_is_refused_for_its_uid_with_retry() {
    let slow = || {
        Arc::new(Slow {
            inner: lookup(),
            delay: Duration::from_secs(3),
        })
    };
    let deadline = Duration::from_secs(1);

    // One slot: a second review waits for it until its deadline, then is refused as busy; the
    // first is decided (late: its thread was busy).
    let guard = Guard::start(
        slow(),
        ReviewLimits {
            request_timeout: deadline,
            max_concurrent_reviews: 1,
        },
    )
    .await;
    // Reviews over BLOCKING_BODY (as every review that is slow to decide is) leave the worker
    // free for the other connection's review while they are decided.
    let medium = big_update("ana", 100_000);
    assert!(medium.len() > BLOCKING_BODY && medium.len() < LARGE_BODY);
    let [a, b] = two_at_once(
        &guard,
        [medium.clone(), with_uid(&medium, BIG_UID, "second")],
    )
    .await;
    let (decided, refused) = one_refused(a, b);
    assert_decided(&decided, decided["response"]["uid"].as_str().unwrap());
    let uid = refused["response"]["uid"].as_str().unwrap();
    assert_refused(&refused, uid, 429, "is busy: no slot");
    assert_eq!(
        refused["response"]["status"]["reason"], "TooManyRequests",
        "{refused}"
    );
    assert!(
        refused["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .ends_with("Retry"),
        "{refused}"
    );
    let metrics = guard.metrics();
    assert!(
        metrics.contains(r#"gitops_guard_request_errors_total{error="busy"} 1"#),
        "{metrics}"
    );
    guard.server.shutdown().await.unwrap();

    // Two slots, two reviews over 3 MiB (decided one at a time): the second waits for its turn
    // past its deadline and is refused with code 504.
    let guard = Guard::start(
        slow(),
        ReviewLimits {
            request_timeout: deadline,
            max_concurrent_reviews: 2,
        },
    )
    .await;
    let big = big_update("ana", 300_000);
    assert!(big.len() > 3 << 20);
    let [a, b] = two_at_once(&guard, [big.clone(), with_uid(&big, BIG_UID, "late")]).await;
    let (decided, refused) = one_refused(a, b);
    assert_eq!(decided["response"]["status"]["code"], 403, "{decided}");
    let uid = refused["response"]["uid"].as_str().unwrap();
    assert_refused(&refused, uid, 504, "could not decide within 1s");
    assert_eq!(
        refused["response"]["status"]["reason"], "Timeout",
        "{refused}"
    );
    let metrics = guard.metrics();
    assert!(
        metrics.contains(r#"gitops_guard_request_errors_total{error="timeout"} 1"#),
        "{metrics}"
    );
    guard.server.shutdown().await.unwrap();
}

/// Sends both bodies on two connections, the second 500 ms after the first; both answers, each
/// within a bound.
async fn two_at_once(guard: &Guard, [a, b]: [Vec<u8>; 2]) -> [Value; 2] {
    let mut first = guard.h1().await;
    let mut second = guard.h1().await;
    let first = tokio::spawn(async move { post(&mut first, a).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = tokio::spawn(async move { post(&mut second, b).await });
    let mut answers = Vec::new();
    for task in [first, second] {
        let (status, v) = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("no answer within 60 s")
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{v}");
        answers.push(v);
    }
    answers.try_into().unwrap()
}

/// Of two answers, the one decided and the one refused (which came first is up to the machine).
fn one_refused(a: Value, b: Value) -> (Value, Value) {
    let refused = |v: &Value| v["response"]["status"]["code"] != 403;
    assert!(refused(&a) != refused(&b), "{a}\n{b}");
    if refused(&a) { (b, a) } else { (a, b) }
}
