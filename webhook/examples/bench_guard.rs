//! The guard for `scripts/bench-load`: the real [`Server`] (TLS listener, probe listener,
//! reloaders, logging as the binary sets it up) with a fixed owner lookup instead of watches.
//!
//!     bench_guard DIR LISTEN [text|json]
//!
//! Writes a self-signed certificate and an empty config into DIR, serves `POST /validate` on
//! LISTEN (e.g. `127.0.0.1:8443`) and the probe port on an ephemeral port, prints
//! `listening on ADDR` once bound, and serves until SIGTERM/SIGINT. The runtime is the binary's
//! (multi-threaded, one worker per core the process may run on).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is how it fails

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use gitops_guard_webhook::{
    Cluster, LogFormat, Server, ServerOptions, StaticLookup, logging, server,
};

fn lookup() -> StaticLookup {
    StaticLookup::new().with_kustomization(
        "flux-system",
        "apps",
        "main@sha1:3f2a9c1e8b7d6a5f4e3d2c1b0a99887766554433",
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bench_guard DIR LISTEN [text|json]";
    let dir = PathBuf::from(args.next().ok_or(usage)?);
    let listen: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let format = match args.next().as_deref() {
        None | Some("json") => LogFormat::Json,
        Some("text") => LogFormat::Text,
        Some(other) => return Err(format!("unknown log format {other}; {usage}").into()),
    };
    logging::init(format)?;

    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])?;
    std::fs::create_dir_all(&dir)?;
    let (cert_path, key_path, config_path) = (
        dir.join("tls.crt"),
        dir.join("tls.key"),
        dir.join("config.yaml"),
    );
    std::fs::write(&cert_path, cert.cert.pem())?;
    std::fs::write(&key_path, cert.signing_key.serialize_pem())?;
    std::fs::write(&config_path, "{}\n")?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = Server::start(ServerOptions::new(
            config_path,
            cert_path,
            key_path,
            listen,
            "127.0.0.1:0".parse()?,
            Cluster::Static(Arc::new(lookup())),
        ))
        .await?;
        println!("listening on {}", server.tls_addr());
        server.run_until(server::shutdown_signal()).await?;
        Ok(())
    })
}
