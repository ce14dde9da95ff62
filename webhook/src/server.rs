//! Listeners, background tasks and shutdown.
//!
//! The TLS port holds against slow and hostile clients ([`ConnectionLimits`]): a handshake
//! timeout, plain HTTP answered with a 400, HTTP/1 header and HTTP/2 stream limits, an idle
//! timeout; the request deadline and the concurrency limit are the app's
//! ([`crate::app::ReviewLimits`]). At shutdown `/readyz` answers 503 while open requests finish.

mod accept;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use gitops_guard_core::Lookup;
use hyper_util::rt::TokioTimer;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::app::{App, ReviewLimits};
use crate::cache::{Caches, watch};
use crate::cli::Args;
use crate::{Error, cluster, config_file, files, tls};

/// Where owners and namespaces come from.
pub enum Cluster {
    /// Watch caches, scale parents and Events through this client.
    Kube(kube::Client),
    /// A fixed lookup and no API server (tests): no watches, caches count as synced.
    Static(Arc<dyn Lookup + Send + Sync>),
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cluster::Kube(_) => f.write_str("Cluster::Kube"),
            Cluster::Static(_) => f.write_str("Cluster::Static"),
        }
    }
}

/// Limits on the TLS port's connections (flags: see [`crate::cli::Args`]). A zero duration turns
/// the header read and idle timeouts off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From accepting the connection to a completed TLS handshake (`--tls-handshake-timeout`).
    pub tls_handshake_timeout: Duration,
    /// HTTP/1: to receive a request's headers, from when the connection awaits them
    /// (`--header-read-timeout`).
    pub header_read_timeout: Duration,
    /// A connection on which nothing arrives for this long is closed (`--idle-timeout`).
    pub idle_timeout: Duration,
    /// HTTP/2 streams open at once on a connection (`--http2-max-concurrent-streams`).
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2 pings to open connections, `None`: none (`--http2-keepalive-interval`).
    pub http2_keepalive_interval: Option<Duration>,
    /// How long a ping may go unanswered (`--http2-keepalive-timeout`).
    pub http2_keepalive_timeout: Duration,
}

impl Default for ConnectionLimits {
    /// The flags' defaults.
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            tls_handshake_timeout: Duration::from_secs(2),
            header_read_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(60),
            http2_max_concurrent_streams: 100,
            http2_keepalive_interval: Some(Duration::from_secs(20)),
            http2_keepalive_timeout: Duration::from_secs(10),
        }
    }
}

/// How to run the server.
#[derive(Debug)]
pub struct ServerOptions {
    pub config_path: PathBuf,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// Require client certificates signed by this CA (`--client-ca`); reloaded with the
    /// certificate.
    pub client_ca: Option<PathBuf>,
    pub listen: SocketAddr,
    pub probe_listen: SocketAddr,
    pub cluster: Cluster,
    /// How often the config file and the TLS files are checked for changes.
    pub reload_interval: Duration,
    /// How often a CRD that is not installed is looked for again.
    pub crd_recheck_interval: Duration,
    /// How long open connections may finish their requests at shutdown.
    pub drain_timeout: Duration,
    /// At shutdown, how long to go on accepting connections while `/readyz` answers 503, before
    /// draining: the time it takes the Service to stop sending new connections here
    /// (`--shutdown-delay`).
    pub shutdown_delay: Duration,
    /// The request deadline and the concurrency limit.
    pub reviews: ReviewLimits,
    pub connections: ConnectionLimits,
}

impl ServerOptions {
    /// Options with the default intervals (reload 1 s, CRD re-check 10 s, drain 10 s), limits and
    /// no client CA.
    pub fn new(
        config_path: PathBuf,
        tls_cert: PathBuf,
        tls_key: PathBuf,
        listen: SocketAddr,
        probe_listen: SocketAddr,
        cluster: Cluster,
    ) -> ServerOptions {
        ServerOptions {
            config_path,
            tls_cert,
            tls_key,
            client_ca: None,
            listen,
            probe_listen,
            cluster,
            reload_interval: Duration::from_secs(1),
            crd_recheck_interval: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            shutdown_delay: Duration::ZERO,
            reviews: ReviewLimits::default(),
            connections: ConnectionLimits::default(),
        }
    }
}

type ServeTask = JoinHandle<std::io::Result<()>>;

/// A running webhook: the TLS listener, the probe listener and the background tasks.
#[derive(Debug)]
pub struct Server {
    app: App,
    tls_addr: SocketAddr,
    probe_addr: SocketAddr,
    tls_handle: Handle<SocketAddr>,
    tls_task: ServeTask,
    probe_task: ServeTask,
    probe_stop: oneshot::Sender<()>,
    background: Vec<JoinHandle<()>>,
    drain_timeout: Duration,
    shutdown_delay: Duration,
}

impl Server {
    /// Loads the config and the certificate, binds both listeners and starts the watches and
    /// reloaders. Returns once the listeners are bound; `/readyz` turns 200 when the caches synced.
    pub async fn start(opts: ServerOptions) -> Result<Server, Error> {
        let (config, config_bytes) = config_file::load(&opts.config_path).await?;
        let (tls_config, tls_bytes) =
            tls::load(&opts.tls_cert, &opts.tls_key, opts.client_ca.as_deref()).await?;

        // Bind both listeners before starting anything, so a taken port leaves nothing running.
        let probe_bind_error = |source| Error::Bind {
            what: "probe listener (--probe-listen)",
            addr: opts.probe_listen,
            source,
        };
        let probe_listener = tokio::net::TcpListener::bind(opts.probe_listen)
            .await
            .map_err(probe_bind_error)?;
        let probe_addr = probe_listener.local_addr().map_err(probe_bind_error)?;
        let tls_bind_error = |source| Error::Bind {
            what: "TLS listener (--listen)",
            addr: opts.listen,
            source,
        };
        let listener = std::net::TcpListener::bind(opts.listen).map_err(tls_bind_error)?;
        listener.set_nonblocking(true).map_err(tls_bind_error)?;
        let tls_addr = listener.local_addr().map_err(tls_bind_error)?;
        let rustls = RustlsConfig::from_config(Arc::new(tls_config));
        let tls_handle = Handle::new();
        let tls_server = axum_server::from_tcp(listener)
            .map_err(tls_bind_error)?
            .handle(tls_handle.clone());

        let config = Arc::new(config);
        let mut background = Vec::new();
        let app = match opts.cluster {
            Cluster::Kube(client) => {
                let caches = Arc::new(Caches::new(config.clone()));
                let app = App::with_cluster(config, caches.clone(), client.clone());
                background.extend(watch::spawn_all(
                    client,
                    caches,
                    app.readiness().clone(),
                    app.metrics().clone(),
                    opts.crd_recheck_interval,
                ));
                app
            }
            Cluster::Static(lookup) => App::new(config, lookup),
        };
        let app = app.with_limits(opts.reviews);

        let limits = opts.connections;
        let on = |d: Duration| (!d.is_zero()).then_some(d);
        let mut tls_server = tls_server.acceptor(accept::Acceptor::new(
            rustls.clone(),
            app.metrics().clone(),
            limits.tls_handshake_timeout,
            on(limits.idle_timeout),
        ));
        let http = tls_server.http_builder();
        if let Some(timeout) = on(limits.header_read_timeout) {
            http.http1()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout);
        }
        http.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.http2_max_concurrent_streams)
            .keep_alive_interval(limits.http2_keepalive_interval.and_then(on))
            .keep_alive_timeout(limits.http2_keepalive_timeout);

        let (probe_stop, probe_stopped) = oneshot::channel::<()>();
        let probe_router = app.probe_router();
        let probe_task = tokio::spawn(async move {
            axum::serve(probe_listener, probe_router)
                .with_graceful_shutdown(async {
                    let _ = probe_stopped.await;
                })
                .await
        });
        let router = app.router();
        let tls_task = tokio::spawn(tls_server.serve(router.into_make_service()));
        app.readiness().set_tls_bound();

        background.push(tokio::spawn(tls::watch(
            files::WatchedFiles::new(
                tls::files(&opts.tls_cert, &opts.tls_key, opts.client_ca.as_deref()),
                tls_bytes,
            ),
            rustls,
            app.metrics().clone(),
            opts.reload_interval,
        )));
        background.push(tokio::spawn(config_file::watch(
            files::WatchedFiles::new(vec![opts.config_path.clone()], vec![config_bytes]),
            app.clone(),
            opts.reload_interval,
        )));

        Ok(Server {
            app,
            tls_addr,
            probe_addr,
            tls_handle,
            tls_task,
            probe_task,
            probe_stop,
            background,
            drain_timeout: opts.drain_timeout,
            shutdown_delay: opts.shutdown_delay,
        })
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    /// The bound TLS address (useful with port 0).
    pub fn tls_addr(&self) -> SocketAddr {
        self.tls_addr
    }

    /// The bound probe address.
    pub fn probe_addr(&self) -> SocketAddr {
        self.probe_addr
    }

    /// Serves until `signal` completes, then drains; an error if a listener fails before.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> Result<(), Error> {
        let failed = tokio::select! {
            _ = signal => None,
            r = &mut self.tls_task => Some(("TLS", r)),
            r = &mut self.probe_task => Some(("probe", r)),
        };
        let Some((what, result)) = failed else {
            return self.shutdown().await;
        };
        self.app.readiness().set_stopping();
        for task in &self.background {
            task.abort();
        }
        self.tls_handle.shutdown();
        let _ = self.probe_stop.send(());
        let source = match result {
            Ok(Ok(())) => std::io::Error::other("stopped unexpectedly"),
            Ok(Err(e)) => e,
            Err(e) => std::io::Error::other(e.to_string()),
        };
        Err(Error::Serve { what, source })
    }

    /// `/readyz` answers 503 ("shutting down") from now on; after the shutdown delay (still
    /// serving), stops accepting connections and lets open ones finish (up to the drain
    /// timeout): every request received is answered; idle connections are closed (a client
    /// retries elsewhere). Then the probe port closes too.
    pub async fn shutdown(self) -> Result<(), Error> {
        self.app.readiness().set_stopping();
        if !self.shutdown_delay.is_zero() {
            info!(
                delay_ms = self.shutdown_delay.as_millis(),
                "not ready; still serving until the Service stops sending connections here"
            );
            tokio::time::sleep(self.shutdown_delay).await;
        }
        for task in &self.background {
            task.abort();
        }
        self.tls_handle.graceful_shutdown(Some(self.drain_timeout));
        let tls = self.tls_task.await;
        let _ = self.probe_stop.send(());
        let join =
            |what: &'static str, r: Result<std::io::Result<()>, tokio::task::JoinError>| match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(source)) => Err(Error::Serve { what, source }),
                Err(e) => Err(Error::Serve {
                    what,
                    source: std::io::Error::other(e.to_string()),
                }),
            };
        let tls = join("TLS", tls);
        let probe = join("probe", self.probe_task.await);
        tls.and(probe)
    }
}

/// SIGTERM (Kubernetes stopping the pod) or SIGINT.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    info!("shutting down: draining open connections");
}

/// The binary: check the files, connect to the API server, serve until SIGTERM/SIGINT.
pub async fn run(args: Args) -> Result<(), Error> {
    // kube's client and the TLS listener both use rustls with ring; install it process-wide once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The files are checked before anything else: mistakes there are the common ones.
    config_file::load(&args.config).await?;
    tls::load(&args.tls_cert, &args.tls_key, args.client_ca.as_deref()).await?;
    let client = cluster::client(args.kubeconfig.as_deref()).await?;
    let mut options = ServerOptions::new(
        args.config,
        args.tls_cert,
        args.tls_key,
        args.listen,
        args.probe_listen,
        Cluster::Kube(client),
    );
    options.client_ca = args.client_ca;
    options.shutdown_delay = args.shutdown_delay;
    options.reviews = ReviewLimits {
        request_timeout: args.request_timeout,
        max_concurrent_reviews: usize::try_from(args.max_concurrent_reviews).unwrap_or(usize::MAX),
    };
    options.connections = ConnectionLimits {
        tls_handshake_timeout: args.tls_handshake_timeout,
        header_read_timeout: args.header_read_timeout,
        idle_timeout: args.idle_timeout,
        http2_max_concurrent_streams: args.http2_max_concurrent_streams,
        http2_keepalive_interval: Some(args.http2_keepalive_interval),
        http2_keepalive_timeout: args.http2_keepalive_timeout,
    };
    let client_auth = options.client_ca.is_some();
    let server = Server::start(options).await?;
    info!(
        version = env!("CARGO_PKG_VERSION"),
        listen = %server.tls_addr(),
        probe_listen = %server.probe_addr(),
        client_auth,
        "gitops-guard webhook started"
    );
    server.run_until(shutdown_signal()).await?;
    info!("stopped");
    Ok(())
}
