//! No size or shape of input is a way around the guard: every body gets a bounded, well-formed
//! answer, a review that names its uid is never answered with a bare HTTP error (which a webhook
//! entry with `failurePolicy: Ignore` would turn into "allowed"), and the server keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is how it fails

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tower::ServiceExt;

use gitops_guard_core::Config;
use gitops_guard_webhook::app::{ENVELOPE_PREFIX, MAX_BODY};
use gitops_guard_webhook::{App, Cluster, Server, ServerOptions, StaticLookup};

const UID: &str = "c1a8e0f2-6b7d-4f39-8e21-5d0c9b3a4e71";
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

fn app() -> App {
    App::new(Arc::new(Config::default()), Arc::new(lookup()))
}

fn user(name: &str) -> Value {
    if let Some(ns) = name.strip_prefix("system:serviceaccount:") {
        let ns = ns.split(':').next().unwrap();
        json!({"username": name, "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{ns}"), "system:authenticated"]})
    } else {
        json!({"username": name, "groups": ["developers", "system:authenticated"]})
    }
}

/// An UPDATE of the Flux-managed ConfigMap prod/web-env by `by`, both objects holding `size`
/// characters `<` (the new one one more), encoded as the API server encodes it: its fields in the
/// API server's order (`uid` first), every `<` as the six bytes `\u003c`.
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
        &format!(r#""userInfo":{}"#, user(by)),
        1,
    )
    .replacen(r#""kind":"CreateOptions""#, r#""kind":"UpdateOptions""#, 1);
    assert!(review.contains(r#""operation":"UPDATE""#) && review.contains(by));
    escape_like_the_api_server(review.as_bytes())
}

fn escape_like_the_api_server(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() * 3);
    for &b in json {
        match b {
            b'<' => out.extend_from_slice(br"\u003c"),
            b'>' => out.extend_from_slice(br"\u003e"),
            b'&' => out.extend_from_slice(br"\u0026"),
            _ => out.push(b),
        }
    }
    out
}

async fn send(router: Router, body: Body) -> (StatusCode, Value) {
    let req = Request::post("/validate")
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(120), router.oneshot(req))
        .await
        .expect("no answer within 120 s")
        .unwrap();
    let status = resp.status();
    assert_eq!(
        resp.headers().get(header::CONTENT_TYPE).unwrap(),
        "application/json"
    );
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(body.len() < 64 * 1024, "an answer of {} bytes", body.len());
    (status, serde_json::from_slice(&body).unwrap())
}

/// HTTP 200 and an AdmissionReview; its `response`.
async fn answered(app: &App, body: Body) -> Value {
    let (status, v) = send(app.router(), body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["kind"], "AdmissionReview", "{v}");
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1", "{v}");
    v["response"].clone()
}

/// A refusal addressed to `uid` with `code` inside, whose message contains `needle`.
fn assert_refused(resp: &Value, uid: &str, code: u16, needle: &str) {
    assert_eq!(resp["uid"], uid, "{resp}");
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(resp["status"]["code"], code, "{resp}");
    let message = resp["status"]["message"].as_str().unwrap();
    assert!(message.contains(needle), "{message}");
}

/// The app still decides an ordinary review.
async fn still_serving(app: &App) {
    let resp = answered(app, Body::from(fixture("update-13k.json"))).await;
    assert_eq!(resp["uid"], "4f6d2a1b-9c3e-4e8f-a7b2-1d0c5e6f7a89");
    assert_eq!(resp["status"]["code"], 403, "{resp}");
}

/// A body in chunks, with no size known in advance (like `Transfer-Encoding: chunked`).
fn streamed(bytes: Vec<u8>) -> Body {
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(1 << 20)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Body::from_stream(futures::stream::iter(chunks))
}

#[tokio::test]
async fn a_10_mb_review_of_a_managed_configmap_is_decided() {
    let a = app();
    // ~850,000 `<` per object: 5 MB each in the review, 10 MB in all.
    let human = big_update("ana", 850_000);
    assert!(
        human.len() > 10_000_000 && human.len() < MAX_BODY,
        "{}",
        human.len()
    );
    let resp = answered(&a, Body::from(human)).await;
    assert_eq!(resp["uid"], UID);
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(resp["status"]["code"], 403);
    assert_eq!(
        resp["status"]["message"],
        "configmap/web-env in prod is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1).\n\
         Change it in Git instead: kubectl gitops edit configmap/web-env -n prod\n\
         (no forge token? add --no-pr to push a branch only, or --local to commit only)"
    );
    // The agent is never blocked by an object's size, also streamed.
    let resp = answered(&a, Body::from(big_update(KC, 830_000))).await;
    assert_eq!(resp["allowed"], true, "{resp}");
    let resp = answered(&a, streamed(big_update(KC, 830_000))).await;
    assert_eq!(resp["allowed"], true, "{resp}");
    // The real worst case: two objects of 1.5 MiB, every byte escaped.
    let resp = answered(&a, Body::from(big_update(KC, 3 << 19))).await;
    assert_eq!(resp["allowed"], true, "{resp}");
    still_serving(&a).await;
}

#[tokio::test]
async fn large_reviews_side_by_side_are_all_decided() {
    let a = app();
    let bodies = [("ana", false), (KC, true), ("ana", false), (KC, true)];
    let answers = futures::future::join_all(bodies.iter().map(|(by, _)| {
        let a = a.clone();
        async move { answered(&a, streamed(big_update(by, 700_000))).await }
    }))
    .await;
    for ((by, allowed), resp) in bodies.iter().zip(answers) {
        assert_eq!(resp["allowed"], *allowed, "{by}: {resp}");
    }
    still_serving(&a).await;
}

#[tokio::test]
async fn a_50_mb_review_is_refused_with_an_admission_review_not_an_http_error() {
    let a = app();
    let body = big_update("ana", 4_200_000);
    assert!(body.len() > 50_000_000, "{}", body.len());
    // Its size known up front (Content-Length): only the start is kept.
    let resp = answered(&a, Body::from(body.clone())).await;
    assert_refused(
        &resp,
        UID,
        413,
        &format!("{} bytes, more than the 32 MiB", body.len()),
    );
    assert_eq!(resp["status"]["reason"], "RequestEntityTooLarge");
    assert!(
        resp["status"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot tell whether the object is GitOps-managed")
    );
    // Its size unknown until it ends: read up to the limit, the rest dropped.
    let resp = answered(&a, streamed(body.clone())).await;
    assert_refused(&resp, UID, 413, "more than the 32 MiB");
    // The agent too: a review this large holds objects etcd cannot store.
    let kc = big_update(KC, 4_200_000);
    let resp = answered(&a, Body::from(kc)).await;
    assert_refused(&resp, UID, 413, "more than the 32 MiB");
    still_serving(&a).await;
}

#[tokio::test]
async fn oversized_bodies_without_a_uid_are_http_413() {
    let a = app();
    for body in [
        vec![b' '; MAX_BODY + 1],
        [
            br#"{"kind":"AdmissionReview","request":{"object":"#.as_slice(),
            &vec![b'['; MAX_BODY],
        ]
        .concat(),
        // The uid past what is read of a body declared too large.
        [
            br#"{"request":{"x":""#.as_slice(),
            &vec![b'a'; ENVELOPE_PREFIX],
            br#"","uid":"late"}}"#,
            &vec![b' '; MAX_BODY],
        ]
        .concat(),
    ] {
        let (status, v) = send(a.router(), Body::from(body)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
        assert!(v["error"].as_str().unwrap().contains("32 MiB"), "{v}");
    }
    still_serving(&a).await;
}

/// The 13 KB UPDATE fixture with `edit` applied to its text.
fn update_text(edit: impl FnOnce(String) -> String) -> Vec<u8> {
    edit(String::from_utf8(fixture("update-13k.json")).unwrap()).into_bytes()
}

#[tokio::test]
async fn undecodable_reviews_with_a_uid_are_refused_with_code_400() {
    const U: &str = "4f6d2a1b-9c3e-4e8f-a7b2-1d0c5e6f7a89";
    let a = app();
    let full = fixture("update-13k.json");
    let mut not_utf8 = full.clone();
    let at = full.windows(9).position(|w| w == br#""image":""#).unwrap();
    not_utf8[at + 9] = 0xff;
    let uid_end = full
        .windows(U.len())
        .position(|w| w == U.as_bytes())
        .unwrap()
        + U.len()
        + 1;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", full[..full.len() / 2].to_vec(), "EOF"),
        ("cut right after the uid", full[..uid_end].to_vec(), "EOF"),
        ("not UTF-8 inside the object", not_utf8, "cannot decode"),
        (
            "a duplicate key",
            update_text(|t| {
                t.replacen(
                    r#""kind":"AdmissionReview""#,
                    r#""kind":"AdmissionReview","kind":"AdmissionReview""#,
                    1,
                )
            }),
            "duplicate field `kind`",
        ),
        (
            "a second uid",
            update_text(|t| {
                t.replacen(
                    &format!(r#""uid":"{U}""#),
                    &format!(r#""uid":"{U}","uid":"other""#),
                    1,
                )
            }),
            "duplicate field `uid`",
        ),
        (
            "a wrong apiVersion",
            update_text(|t| t.replacen("admission.k8s.io/v1", "admission.k8s.io/v2", 1)),
            "is not admission.k8s.io/v1",
        ),
        (
            "an unknown operation",
            update_text(|t| t.replacen(r#""operation":"UPDATE""#, r#""operation":"PATCH""#, 1)),
            "unknown variant",
        ),
        (
            "labels that are not strings",
            update_text(|t| t.replacen(r#""labels":{"#, r#""labels":{"n":1,"#, 1)),
            "metadata.labels",
        ),
        (
            "a million open brackets",
            update_text(|t| {
                let cut = t.find(r#""object":"#).unwrap() + 9;
                format!("{}{}", &t[..cut], "[".repeat(1_000_000))
            }),
            "cannot decode",
        ),
        (
            "brackets that do not match, 200,000 deep",
            update_text(|t| {
                t.replacen(
                    r#""spec":{"#,
                    &format!(
                        r#""deep":{}{},"spec":{{"#,
                        "[".repeat(200_000),
                        "}".repeat(200_000)
                    ),
                    1,
                )
            }),
            "cannot decode",
        ),
    ];
    for (what, body, needle) in cases {
        let resp = answered(&a, Body::from(body)).await;
        assert_refused(&resp, U, 400, needle);
        assert!(
            resp["status"]["message"].as_str().unwrap().starts_with(
                "gitops-guard refuses this request: it cannot decode its AdmissionReview"
            ),
            "{what}: {resp}"
        );
        assert_eq!(resp["status"]["reason"], "BadRequest", "{what}");
    }
    still_serving(&a).await;
}

#[tokio::test]
async fn bodies_without_a_uid_are_http_400() {
    let a = app();
    let bodies: Vec<Vec<u8>> = vec![
        update_text(|t| t.replacen(r#""uid":"4f6d2a1b-9c3e-4e8f-a7b2-1d0c5e6f7a89","#, "", 1)),
        update_text(|t| {
            t.replacen(
                r#""uid":"4f6d2a1b-9c3e-4e8f-a7b2-1d0c5e6f7a89""#,
                r#""uid":"""#,
                1,
            )
        }),
        update_text(|t| {
            t.replacen(
                r#""uid":"4f6d2a1b-9c3e-4e8f-a7b2-1d0c5e6f7a89""#,
                r#""uid":7"#,
                1,
            )
        }),
        update_text(|t| t.replacen(r#""kind":"AdmissionReview""#, r#""kind":"Pod""#, 1)),
        fixture("update-13k.json")[..60].to_vec(),
        b"[]".to_vec(),
        vec![0xff; 100],
        Vec::new(),
    ];
    for body in bodies {
        let (status, v) = send(a.router(), Body::from(body.clone())).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{}: {v}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        );
        assert!(v["error"].is_string(), "{v}");
    }
    still_serving(&a).await;
}

/// A person's UPDATE of a Flux-managed Widget with `allow-fields: {allowed}`, changing a leaf
/// 100,000 levels deep in `spec.deep`.
fn deep_update(allowed: &str) -> Vec<u8> {
    let depth = 100_000;
    let object = |leaf: &str| {
        format!(
            r#"{{"apiVersion":"example.com/v1","kind":"Widget","metadata":{{"name":"w","namespace":"prod","labels":{{"kustomize.toolkit.fluxcd.io/name":"apps","kustomize.toolkit.fluxcd.io/namespace":"flux-system"}},"annotations":{{"gitops-guard.dev/allow-fields":"{allowed}"}},"managedFields":[{{"manager":"kustomize-controller","operation":"Apply","apiVersion":"example.com/v1","time":"2026-11-20T09:14:02Z","fieldsType":"FieldsV1","fieldsV1":{{"f:spec":{{"f:sibling":{{}}}}}}}}]}},"spec":{{"sibling":1,"deep":{}{leaf}{}}}}}"#,
            r#"{"a":"#.repeat(depth),
            "}".repeat(depth)
        )
    };
    format!(
        r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{{"uid":"deep","kind":{{"group":"example.com","version":"v1","kind":"Widget"}},"resource":{{"group":"example.com","version":"v1","resource":"widgets"}},"name":"w","namespace":"prod","operation":"UPDATE","userInfo":{{"username":"ana","groups":["developers"]}},"object":{},"oldObject":{}}}}}"#,
        object("2"),
        object("1")
    )
    .into_bytes()
}

#[tokio::test]
async fn a_change_100000_levels_deep_is_decided() {
    let a = app();
    let resp = answered(&a, Body::from(deep_update("spec.sibling"))).await;
    assert_eq!(resp["uid"], "deep");
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(resp["status"]["code"], 403);
    let message = resp["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("this change also touches: spec.deep.a.a.a") && message.len() < 2000,
        "{message}"
    );
    let resp = answered(&a, Body::from(deep_update("spec.deep"))).await;
    assert_eq!(resp["allowed"], true, "{resp}");
    still_serving(&a).await;
}

/// Over a real TLS socket and HTTP/1.1: a body past the limit is read to its end before the
/// refusal, so the client reads the answer, and the connection goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_a_socket_an_oversized_review_is_answered_and_the_connection_kept() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_path, key_path, config) = (
        dir.path().join("tls.crt"),
        dir.path().join("tls.key"),
        dir.path().join("config.yaml"),
    );
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    std::fs::write(&config, "").unwrap();
    let local = "127.0.0.1:0".parse().unwrap();
    let options = ServerOptions::new(
        config,
        cert_path,
        key_path,
        local,
        local,
        Cluster::Static(Arc::new(lookup())),
    );
    let server = Server::start(options).await.unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(server.tls_addr())
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    for (body, code) in [
        (big_update("ana", 4_200_000), 413),
        (fixture("update-13k.json"), 403),
        (big_update(KC, 830_000), 0),
    ] {
        sender.ready().await.unwrap();
        let req = Request::post("/validate")
            .header(header::HOST, "localhost")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: Value = serde_json::from_slice(&body).unwrap();
        if code == 0 {
            assert_eq!(v["response"]["allowed"], true, "{v}");
        } else {
            assert_eq!(v["response"]["status"]["code"], code, "{v}");
        }
    }
    server.shutdown().await.unwrap();
}
