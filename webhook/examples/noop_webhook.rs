//! The baseline for `scripts/bench-load`: a webhook that admits everything, with the guard's TLS
//! setup (`tls::server_config`: rustls with ring, TLS 1.3 and 1.2, ALPN h2 and http/1.1, an
//! rcgen P-256 certificate) on axum + axum-server and the binary's runtime. It reads the whole
//! body, takes the uid from its start (as the guard's refusals do) and answers `allowed: true`.
//!
//!     noop_webhook LISTEN
//!
//! Prints `listening on ADDR` once bound; serves until SIGTERM/SIGINT.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is how it fails

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use axum_server::tls_rustls::RustlsConfig;
use gitops_guard_core::review::Envelope;
use gitops_guard_webhook::{server, tls};

async fn validate(body: Bytes) -> impl IntoResponse {
    let (api_version, uid) = match Envelope::recover(&body) {
        Some(e) => (e.api_version, e.uid),
        None => ("admission.k8s.io/v1".to_string(), String::new()),
    };
    let answer = serde_json::json!({
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "response": {"uid": uid, "allowed": true},
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(&answer).unwrap_or_default(),
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen: SocketAddr = std::env::args()
        .nth(1)
        .ok_or("usage: noop_webhook LISTEN")?
        .parse()?;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])?;
    let config = tls::server_config(
        cert.cert.pem().as_bytes(),
        cert.signing_key.serialize_pem().as_bytes(),
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = std::net::TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let router = Router::new().route("/validate", post(validate));
        let handle = axum_server::Handle::new();
        let serve =
            axum_server::from_tcp_rustls(listener, RustlsConfig::from_config(Arc::new(config)))?
                .handle(handle.clone())
                .serve(router.into_make_service());
        println!("listening on {addr}");
        tokio::select! {
            r = serve => r?,
            _ = server::shutdown_signal() => handle.shutdown(),
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
