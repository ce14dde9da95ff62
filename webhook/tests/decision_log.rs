//! The log line of a decision. Its own test binary: tracing caches per-callsite interest, so a
//! capturing subscriber must not share the process with tests that log without one.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is how it fails

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use http::{Request, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use gitops_guard_core::{Config, OwnerInfo, OwnerKind, OwnerRef};
use gitops_guard_webhook::logging::DENIAL_LOG_WINDOW;
use gitops_guard_webhook::{App, StaticLookup};

/// A `MakeWriter` collecting log output.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

async fn post(app: &App, body: Vec<u8>) {
    let req = Request::post("/validate")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap();
    let resp = app.router().oneshot(req).await.unwrap();
    assert!(resp.status().is_success());
    resp.into_body().collect().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn each_denial_is_logged_with_who_what_and_why() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_max_level(tracing::Level::INFO)
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let lookup = StaticLookup::new().with_owner(
        OwnerRef {
            kind: OwnerKind::Kustomization,
            namespace: "flux-system".into(),
            name: "apps".into(),
        },
        OwnerInfo {
            revision: Some("main@sha1:3f2a9c1e8b7d".into()),
            service_account: None,
        },
    );
    let app = App::new(Arc::new(Config::default()), Arc::new(lookup));
    let body =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/update-13k.json"))
            .unwrap();
    post(&app, body.clone()).await;
    // Allowed requests are logged at debug only.
    let mut agent: Value = serde_json::from_slice(&body).unwrap();
    agent["request"]["userInfo"] = serde_json::json!({
        "username": "system:serviceaccount:flux-system:kustomize-controller",
        "groups": ["system:serviceaccounts", "system:serviceaccounts:flux-system", "system:authenticated"],
    });
    post(&app, serde_json::to_vec(&agent).unwrap()).await;

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    let line = &lines[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["message"], "admission decision");
    assert_eq!(line["uid"], "4f6d2a1b-9c3e-4e8f-a7b2-1d0c5e6f7a89");
    assert_eq!(line["operation"], "UPDATE");
    assert_eq!(line["kind"], "Deployment");
    assert_eq!(line["namespace"], "prod");
    assert_eq!(line["name"], "web");
    assert_eq!(line["user"], "ana");
    assert_eq!(line["verdict"], "deny");
    assert_eq!(line["reason"], "managed");
    assert_eq!(line["owner"], "Flux Kustomization flux-system/apps");
    assert_eq!(
        line["detail"],
        "deployment/web in prod is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1). \
         Change it in Git instead: kubectl gitops set image deployment/web web=ghcr.io/acme/web:1.4.3 -n prod \
         (no forge token? add --no-pr to push a branch only, or --local to commit only)"
    );
}

fn app() -> App {
    let lookup = StaticLookup::new().with_owner(
        OwnerRef {
            kind: OwnerKind::Kustomization,
            namespace: "flux-system".into(),
            name: "apps".into(),
        },
        OwnerInfo {
            revision: Some("main@sha1:3f2a9c1e8b7d".into()),
            service_account: None,
        },
    );
    App::new(Arc::new(Config::default()), Arc::new(lookup))
}

fn json_lines(logs: &Captured) -> Vec<Value> {
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_storm_of_identical_denials_is_logged_once_and_summarised() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_max_level(tracing::Level::INFO)
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = app();
    let body =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/update-13k.json"))
            .unwrap();
    for _ in 0..1000 {
        post(&app, body.clone()).await;
    }
    // Another person's denial of the same change is another denial: logged in full.
    let mut bob: Value = serde_json::from_slice(&body).unwrap();
    bob["request"]["userInfo"]["username"] = "bob".into();
    post(&app, serde_json::to_vec(&bob).unwrap()).await;

    let lines = json_lines(&logs);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["user"], "ana");
    assert_eq!(lines[0]["reason"], "managed");
    assert_eq!(lines[1]["user"], "bob");
    let metrics = app.metrics().encode();
    assert!(
        metrics.contains("gitops_guard_denial_log_suppressed_total 999\n"),
        "{metrics}"
    );
    // Every denial is still counted as a decision.
    assert!(
        metrics.contains(r#"gitops_guard_decisions_total{verdict="deny",reason="managed"} 1001"#),
        "{metrics}"
    );

    // When the window ends, one line says how many were not logged.
    tokio::time::advance(DENIAL_LOG_WINDOW + Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let lines = json_lines(&logs);
    assert_eq!(lines.len(), 3, "{lines:?}");
    let summary = &lines[2];
    assert_eq!(summary["level"], "INFO");
    assert_eq!(
        summary["message"],
        "repeated admission decisions not logged"
    );
    assert_eq!(summary["user"], "ana");
    assert_eq!(summary["kind"], "Deployment");
    assert_eq!(summary["namespace"], "prod");
    assert_eq!(summary["name"], "web");
    assert_eq!(summary["verdict"], "deny");
    assert_eq!(summary["reason"], "managed");
    assert_eq!(summary["repeats"], 999);

    // A new window: the next denial is logged in full again.
    post(&app, body.clone()).await;
    let lines = json_lines(&logs);
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[3]["message"], "admission decision");
    assert_eq!(lines[3]["user"], "ana");
}
