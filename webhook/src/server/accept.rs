//! Accepting a connection on the TLS port: plain HTTP answered with a 400 that says so, the TLS
//! handshake within its timeout (counted by why when it fails), and a connection on which nothing
//! arrives for the idle timeout closed.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tracing::debug;

use crate::metrics::{Held, Metrics, TlsError};

/// What a plain-HTTP request on the TLS port gets, rather than a TLS alert it cannot read.
const PLAINTEXT_ANSWER: &[u8] = b"HTTP/1.0 400 Bad Request\r\n\
Content-Type: application/json\r\n\
Connection: close\r\n\
\r\n\
{\"error\":\"this port speaks HTTPS (TLS 1.2 or 1.3); the request came in plain HTTP\"}\n";

/// The TLS port's acceptor (see the module doc).
#[derive(Clone)]
pub(crate) struct Acceptor {
    config: RustlsConfig,
    metrics: Arc<Metrics>,
    handshake_timeout: Duration,
    idle_timeout: Option<Duration>,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl Acceptor {
    pub(crate) fn new(
        config: RustlsConfig,
        metrics: Arc<Metrics>,
        handshake_timeout: Duration,
        idle_timeout: Option<Duration>,
    ) -> Acceptor {
        Acceptor {
            config,
            metrics,
            handshake_timeout,
            idle_timeout,
        }
    }
}

/// Why a handshake failed, for the metric.
fn classify(error: &io::Error) -> TlsError {
    if error.kind() == io::ErrorKind::TimedOut {
        return TlsError::Timeout;
    }
    match error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::NoCertificatesPresented | rustls::Error::InvalidCertificate(_)) => {
            TlsError::ClientCertificate
        }
        _ => TlsError::Failed,
    }
}

/// Answers a plain-HTTP request with [`PLAINTEXT_ANSWER`], then reads what the client still
/// sends until it closes (at most `within`), so the answer is not lost to a reset.
async fn refuse_plaintext(mut tcp: TcpStream, within: Duration) {
    let _ = tokio::time::timeout(within, async {
        tcp.write_all(PLAINTEXT_ANSWER).await?;
        tcp.shutdown().await?;
        let mut sink = [0u8; 4096];
        while tcp.read(&mut sink).await? > 0 {}
        Ok::<(), io::Error>(())
    })
    .await;
}

type Accepted<S> = io::Result<(Idle<<RustlsAcceptor as Accept<TcpStream, S>>::Stream>, S)>;

impl<S> Accept<TcpStream, S> for Acceptor
where
    S: Send + 'static,
{
    type Stream = Idle<<RustlsAcceptor as Accept<TcpStream, S>>::Stream>;
    type Service = S;
    type Future = Pin<Box<dyn Future<Output = Accepted<S>> + Send>>;

    fn accept(&self, tcp: TcpStream, service: S) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let started = Instant::now();
            let _ = tcp.set_nodelay(true);
            let fail = |error: TlsError, e: io::Error| {
                this.metrics.tls_error(error);
                debug!(error = %e, "a connection on the TLS port failed before its handshake completed");
                Err(e)
            };
            // A TLS connection starts with a handshake record (0x16); plain HTTP with a method.
            let mut first = [0u8; 1];
            match tokio::time::timeout(this.handshake_timeout, tcp.peek(&mut first)).await {
                Err(_) => {
                    return fail(
                        TlsError::Timeout,
                        io::Error::new(io::ErrorKind::TimedOut, "no TLS handshake began in time"),
                    );
                }
                Ok(Err(e)) => return fail(TlsError::Failed, e),
                Ok(Ok(0)) => {
                    return fail(
                        TlsError::Failed,
                        io::Error::new(io::ErrorKind::UnexpectedEof, "closed before a handshake"),
                    );
                }
                Ok(Ok(_)) if first[0].is_ascii_alphabetic() => {
                    this.metrics.tls_error(TlsError::Plaintext);
                    debug!("plain HTTP on the TLS port: answered 400");
                    refuse_plaintext(tcp, this.handshake_timeout).await;
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "plain HTTP on the TLS port",
                    ));
                }
                Ok(Ok(_)) => {}
            }
            let left = this.handshake_timeout.saturating_sub(started.elapsed());
            let tls = RustlsAcceptor::new(this.config.clone()).handshake_timeout(left);
            match tls.accept(tcp, service).await {
                Ok((stream, service)) => {
                    let open = this.metrics.connection_open();
                    Ok((Idle::new(stream, this.idle_timeout, open), service))
                }
                Err(e) => fail(classify(&e), e),
            }
        })
    }
}

/// A stream whose reads fail with `TimedOut` once nothing has arrived for the idle timeout
/// (while a read is waiting); counted in `gitops_guard_tls_connections` while open.
pub(crate) struct Idle<S> {
    inner: S,
    timeout: Option<Duration>,
    last: Instant,
    timer: Pin<Box<Sleep>>,
    _open: Held,
}

impl<S> Idle<S> {
    fn new(inner: S, timeout: Option<Duration>, open: Held) -> Idle<S> {
        let last = Instant::now();
        let due = last + timeout.unwrap_or(Duration::ZERO);
        Idle {
            inner,
            timeout,
            last,
            timer: Box::pin(tokio::time::sleep_until(due)),
            _open: open,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Idle<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.last = Instant::now();
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                let Some(timeout) = this.timeout else {
                    return Poll::Pending;
                };
                let due = this.last + timeout;
                if this.timer.deadline() != due {
                    this.timer.as_mut().reset(due);
                }
                match this.timer.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("nothing arrived for {} ms", timeout.as_millis()),
                    ))),
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Idle<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
