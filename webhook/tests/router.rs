//! The routers, driven in-process with `oneshot` on AdmissionReview fixtures shaped like what
//! kube-apiserver sends (full metadata, managedFields, last-applied annotations).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is how it fails

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use gitops_guard_core::custody::{CustodyInfo, ObjectRef};
use gitops_guard_core::{Config, OwnerInfo, OwnerKind, OwnerRef};
use gitops_guard_webhook::{App, StaticLookup};

const FLUX_REVISION: &str = "main@sha1:3f2a9c1e8b7d6a5f4e3d2c1b0a99887766554433";
const ARGO_REVISION: &str = "7d0e51f0a1b2c3d4e5f60718293a4b5c6d7e8f90";

/// The fixtures' update changes the image: the way forward is `set image`.
const WEB_DENIED: &str = "deployment/web in prod is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1).\n\
Change it in Git instead: kubectl gitops set image deployment/web web=ghcr.io/acme/web:1.4.3 -n prod\n\
(no forge token? add --no-pr to push a branch only, or --local to commit only)";

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fixture with `edit` applied to its JSON.
fn fixture_with(name: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut review: Value = serde_json::from_slice(&fixture(name)).unwrap();
    edit(&mut review);
    serde_json::to_vec(&review).unwrap()
}

/// `userInfo` of a service account, with the groups the API server gives every real one (without
/// them the name is an impostor's).
fn service_account(username: &str) -> Value {
    let ns = username.split(':').nth(2).unwrap();
    serde_json::json!({
        "username": username,
        "uid": "e2b1c0d9-8f7e-4d6c-b5a4-39281706f5e4",
        "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{ns}"), "system:authenticated"],
    })
}

/// flux-system/apps as `flux bootstrap` layouts have it: applied by the root Kustomization from
/// the root GitRepository, so it traces back to Git.
fn apps_custody() -> (ObjectRef, CustodyInfo) {
    (
        ObjectRef::new("Kustomization", "flux-system", "apps"),
        CustodyInfo {
            owners: vec![OwnerRef {
                kind: OwnerKind::Kustomization,
                namespace: "flux-system".into(),
                name: "flux-system".into(),
            }],
            sources: vec![ObjectRef::new(
                "GitRepository",
                "flux-system",
                "flux-system",
            )],
            namespaces: vec!["flux-system".into(), "prod".into()],
            ..CustodyInfo::default()
        },
    )
}

fn lookup() -> StaticLookup {
    let (apps, apps_info) = apps_custody();
    StaticLookup::new()
        .with_custody(apps, apps_info)
        .with_owner(
            OwnerRef {
                kind: OwnerKind::Kustomization,
                namespace: "flux-system".into(),
                name: "apps".into(),
            },
            OwnerInfo {
                revision: Some(FLUX_REVISION.into()),
                service_account: None,
            },
        )
        .with_owner(
            OwnerRef {
                kind: OwnerKind::Application,
                namespace: "argocd".into(),
                name: "monitoring".into(),
            },
            OwnerInfo {
                revision: Some(ARGO_REVISION.into()),
                service_account: None,
            },
        )
}

fn app_with(config: Config) -> App {
    App::new(Arc::new(config), Arc::new(lookup()))
}

fn app() -> App {
    app_with(Config::default())
}

async fn send(router: Router, req: Request<Body>) -> (StatusCode, Option<String>, Vec<u8>) {
    let resp = router.oneshot(req).await.unwrap();
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string());
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, content_type, body)
}

fn post_json(path: &str, body: Vec<u8>) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap()
}

/// POSTs a review to /validate, expects HTTP 200, returns `response`.
async fn review(app: &App, body: Vec<u8>) -> Value {
    let (status, content_type, body) = send(app.router(), post_json("/validate", body)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    v["response"].clone()
}

async fn metrics(app: &App) -> String {
    let req = Request::get("/metrics").body(Body::empty()).unwrap();
    let (status, content_type, body) = send(app.probe_router(), req).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    String::from_utf8(body).unwrap()
}

#[tokio::test]
async fn a_human_editing_a_flux_deployment_is_denied_with_the_exact_message() {
    let resp = review(&app(), fixture("update-13k.json")).await;
    assert_eq!(resp["uid"], "4f6d2a1b-9c3e-4e8f-a7b2-1d0c5e6f7a89");
    assert_eq!(resp["allowed"], false);
    assert_eq!(resp["status"]["code"], 403);
    assert_eq!(resp["status"]["message"], WEB_DENIED);
}

#[tokio::test]
async fn the_flux_controller_making_the_same_change_is_allowed() {
    let body = fixture_with("update-13k.json", |r| {
        r["request"]["userInfo"] =
            service_account("system:serviceaccount:flux-system:kustomize-controller");
    });
    let resp = review(&app(), body).await;
    assert_eq!(resp["allowed"], true, "{resp}");
    assert!(resp.get("status").is_none(), "{resp}");
    assert!(resp.get("warnings").is_none(), "{resp}");
}

#[tokio::test]
async fn a_dry_run_is_allowed_with_a_warning_saying_what_would_happen() {
    let body = fixture_with("update-13k.json", |r| r["request"]["dryRun"] = true.into());
    let resp = review(&app(), body).await;
    assert_eq!(resp["allowed"], true, "{resp}");
    assert_eq!(
        resp["warnings"],
        serde_json::json!([format!(
            "dry-run only: the real change would be denied: {}",
            WEB_DENIED.replace('\n', " ")
        )])
    );
}

#[tokio::test]
async fn audit_mode_allows_with_a_warning_and_an_audit_annotation() {
    let config = Config {
        mode: gitops_guard_core::Mode::Audit,
        ..Config::default()
    };
    let resp = review(&app_with(config), fixture("update-13k.json")).await;
    assert_eq!(resp["allowed"], true, "{resp}");
    assert_eq!(
        resp["warnings"][0],
        format!(
            "audit mode: this change would be denied: {}",
            WEB_DENIED.replace('\n', " ")
        )
    );
    assert_eq!(resp["auditAnnotations"]["decision"], "would-deny");
}

#[tokio::test]
async fn creating_an_object_with_flux_labels_by_hand_is_denied() {
    let resp = review(&app(), fixture("create-2k.json")).await;
    assert_eq!(resp["uid"], "c1a8e0f2-6b7d-4f39-8e21-5d0c9b3a4e71");
    assert_eq!(resp["allowed"], false);
    assert_eq!(
        resp["status"]["message"],
        "configmap/web-env in prod is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1).\n\
         Add it to Git instead: put its manifest where Flux Kustomization flux-system/apps applies from \
         (kubectl gitops trace kustomization/apps -n flux-system names its source and path), commit and push"
    );
}

#[tokio::test]
async fn the_flux_controller_creates_only_for_owners_that_trace_back_to_git() {
    let body = fixture_with("create-2k.json", |r| {
        r["request"]["userInfo"] =
            service_account("system:serviceaccount:flux-system:kustomize-controller");
    });
    let resp = review(&app(), body.clone()).await;
    assert_eq!(resp["allowed"], true, "{resp}");
    // flux-system/apps made by hand (no owner): the controller must not create for it.
    let (apps, info) = apps_custody();
    let hand_made = CustodyInfo {
        owners: vec![],
        ..info
    };
    let app = App::new(
        Arc::new(Config::default()),
        Arc::new(lookup().with_custody(apps, hand_made)),
    );
    let resp = review(&app, body).await;
    assert_eq!(resp["allowed"], false, "{resp}");
    let message = resp["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("Flux Kustomization flux-system/apps does not come from Git"),
        "{message}"
    );
}

#[tokio::test]
async fn editing_an_argo_cd_configmap_by_hand_is_denied() {
    let resp = review(&app(), fixture("update-48k.json")).await;
    assert_eq!(resp["allowed"], false);
    assert_eq!(
        resp["status"]["message"],
        "configmap/grafana-dashboards in monitoring is managed by Argo CD Application argocd/monitoring (7d0e51f).\n\
         Change it in Git instead: kubectl gitops edit configmap/grafana-dashboards -n monitoring\n\
         (no forge token? add --no-pr to push a branch only, or --local to commit only)"
    );
    // The Argo CD application controller may make it.
    let body = fixture_with("update-48k.json", |r| {
        r["request"]["userInfo"] =
            service_account("system:serviceaccount:argocd:argocd-application-controller");
    });
    assert_eq!(review(&app(), body).await["allowed"], true);
}

#[tokio::test]
async fn a_malformed_review_is_refused_with_its_uid_or_a_400_with_a_json_error() {
    // A truncated review names its uid: refused with an AdmissionReview (a bare HTTP error would
    // let an entry with failurePolicy Ignore admit it).
    let resp = review(&app(), fixture("malformed.json")).await;
    assert_eq!(resp["uid"], "4f6d2a1b-9c3e-4e8f-a7b2-1d0c5e6f7a89");
    assert_eq!(resp["allowed"], false);
    assert_eq!(resp["status"]["code"], 400);
    let message = resp["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("gitops-guard refuses this request: it cannot decode its AdmissionReview (malformed AdmissionReview: EOF"),
        "{message}"
    );

    // Without a uid there is no one to answer: HTTP 400.
    let (status, content_type, body) = send(
        app().router(),
        post_json("/validate", fixture("malformed.json")[..50].to_vec()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let v: Value = serde_json::from_slice(&body).unwrap();
    let error = v["error"].as_str().unwrap();
    assert!(error.starts_with("malformed AdmissionReview"), "{error}");
    assert!(error.contains("EOF"), "{error}");

    for junk in [
        &b""[..],
        b"null",
        b"[1,2]",
        b"{\"kind\":\"Pod\"}",
        &[0xff, 0xfe, 0x00],
    ] {
        let (status, _, body) = send(app().router(), post_json("/validate", junk.to_vec())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{junk:?}");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert!(v["error"].is_string(), "{junk:?}: {v}");
    }
}

#[tokio::test]
async fn http_errors_are_json_too() {
    let a = app();
    let not_json = Request::post("/validate")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(fixture("update-13k.json")))
        .unwrap();
    let (status, _, body) = send(a.router(), not_json).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(v["error"].as_str().unwrap().contains("text/plain"), "{v}");

    // A charset parameter is fine.
    let with_charset = Request::post("/validate")
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(fixture("update-13k.json")))
        .unwrap();
    assert_eq!(send(a.router(), with_charset).await.0, StatusCode::OK);

    let (status, _, body) = send(a.router(), post_json("/mutate", b"{}".to_vec())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(serde_json::from_slice::<Value>(&body).unwrap()["error"].is_string());

    let get = Request::get("/validate").body(Body::empty()).unwrap();
    let (status, _, body) = send(a.router(), get).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(serde_json::from_slice::<Value>(&body).unwrap()["error"].is_string());

    let huge = vec![b' '; gitops_guard_webhook::app::MAX_BODY + 1];
    let (status, _, body) = send(a.router(), post_json("/validate", huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(serde_json::from_slice::<Value>(&body).unwrap()["error"].is_string());
}

#[tokio::test]
async fn metrics_count_decisions_and_errors() {
    let a = app();
    let before = metrics(&a).await;
    assert!(
        !before.contains("gitops_guard_decisions_total{"),
        "{before}"
    );
    review(&a, fixture("update-13k.json")).await;
    review(&a, fixture("update-13k.json")).await;
    review(
        &a,
        fixture_with("update-13k.json", |r| r["request"]["dryRun"] = true.into()),
    )
    .await;
    review(
        &a,
        fixture_with("create-2k.json", |r| {
            r["request"]["object"]["metadata"]["labels"] = serde_json::json!({"app": "web"});
        }),
    )
    .await;
    send(
        a.router(),
        post_json("/validate", fixture("malformed.json")),
    )
    .await;
    let after = metrics(&a).await;
    for line in [
        r#"gitops_guard_decisions_total{verdict="deny",reason="managed"} 2"#,
        r#"gitops_guard_decisions_total{verdict="warn",reason="dry-run"} 1"#,
        r#"gitops_guard_decisions_total{verdict="allow",reason="unmanaged"} 1"#,
        r#"gitops_guard_request_errors_total{error="malformed"} 1"#,
        "gitops_guard_request_duration_seconds_count 4",
    ] {
        assert!(
            after.lines().any(|l| l == line),
            "missing {line:?} in\n{after}"
        );
    }
}

#[tokio::test]
async fn scale_requests_whose_parent_cannot_be_read_are_refused_with_code_500() {
    let scale = |user: &str| {
        let user = user.to_string();
        fixture_with("update-13k.json", move |r| {
            let req = &mut r["request"];
            req["kind"] = serde_json::json!({"group":"autoscaling","version":"v1","kind":"Scale"});
            req["subResource"] = "scale".into();
            req["userInfo"] = if user.starts_with("system:serviceaccount:") {
                service_account(&user)
            } else {
                serde_json::json!({"username": user, "groups": ["developers", "system:authenticated"]})
            };
            let scale = |n: u32| {
                serde_json::json!({"kind":"Scale","apiVersion":"autoscaling/v1",
                "metadata":{"name":"web","namespace":"prod","uid":"8f2b6c1d-3e4a-4b5c-9d6e-7f8091a2b3c4","resourceVersion":"1843302","creationTimestamp":"2026-09-02T11:20:45Z"},
                "spec":{"replicas":n},"status":{"replicas":3,"selector":"app.kubernetes.io/name=web"}})
            };
            req["object"] = scale(5);
            req["oldObject"] = scale(3);
        })
    };
    // This app has no API server to read deployments/web from.
    let resp = review(&app(), scale("ana")).await;
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(resp["status"]["code"], 500);
    let message = resp["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("deployments.apps/web in prod, the object behind this scale request"),
        "{message}"
    );
    // Kubernetes' own controllers (the HPA) are decided without reading the parent.
    let resp = review(
        &app(),
        scale("system:serviceaccount:kube-system:horizontal-pod-autoscaler"),
    )
    .await;
    assert_eq!(resp["allowed"], true, "{resp}");
}

#[tokio::test]
async fn probes_answer_on_their_own_router() {
    let a = app();
    let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    let (status, _, body) = send(a.probe_router(), get("/healthz")).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));

    // No TLS listener in this test: not ready, and the body says why.
    let (status, content_type, body) = send(a.probe_router(), get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["ready"], false);
    assert_eq!(v["missing"][0], "the TLS listener is not bound yet");

    a.readiness().set_tls_bound();
    let (status, _, body) = send(a.probe_router(), get("/readyz")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["ready"],
        true
    );

    // /validate is not served on the probe port, nor probes on the TLS port.
    assert_eq!(
        send(
            a.probe_router(),
            post_json("/validate", fixture("update-13k.json"))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(a.router(), get("/healthz")).await.0,
        StatusCode::NOT_FOUND
    );
}

/// `GET /version` answers on both listeners (the API server's service proxy reaches only the TLS
/// one) with this build's version, and is the only GET the TLS side serves.
#[tokio::test]
async fn both_routers_say_which_version_runs() {
    let a = app();
    for router in [a.router(), a.probe_router()] {
        let (status, content_type, body) = send(
            router,
            Request::get("/version").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        assert_eq!(content_type.as_deref(), Some("application/json"));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(v["commit"].as_str(), option_env!("GITOPS_GUARD_COMMIT"));
    }
    let (status, _, _) = send(a.router(), post_json("/version", b"{}".to_vec())).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

/// A body that trickles in (slow-loris) is cut off at the deadline, with an answer.
#[tokio::test(start_paused = true)]
async fn a_body_that_never_finishes_is_cut_off() {
    let first: Result<Vec<u8>, std::io::Error> = Ok(b"{\"apiVersion\":".to_vec());
    let stalled = futures::StreamExt::chain(
        futures::stream::once(async move { first }),
        futures::stream::pending(),
    );
    let req = Request::post("/validate")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stalled))
        .unwrap();
    let (status, _, body) = send(app().router(), req).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains("did not arrive within 2s"), "{body}");
}
