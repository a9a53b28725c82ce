//! Serves the router on a listener with the limits a daemon facing the
//! network needs and `axum::serve` does not set (it has no timer, so hyper's
//! header timeout never runs): a cap on open connections, a deadline for
//! each request's headers, which also closes a keep-alive connection left
//! idle that long, and a deadline for its body ([`BodyTimeout`], applied by
//! the JSON extractor). Without them a client that opens connections and
//! sends a byte now and then holds file descriptors until the daemon can
//! accept no one else.
//!
//! On shutdown it stops accepting, lets each connection finish the request
//! it is serving, closes the idle ones, and returns when all have closed.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use crate::tls::PeerAddr;

/// How much of an unfinished request head (request line and headers) hyper
/// buffers before it answers 431 and closes the connection. A head that
/// arrives in one large read can overshoot it (by up to about as much
/// again), so it bounds memory rather than fixing a size. hyper's default,
/// about 400 KB, would let the connection cap's 1 024 clients pin some
/// 400 MB between them; no client of the appliance sends more than a few
/// hundred bytes of headers.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// What one client may hold of the daemon.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections served at once; further ones wait in the kernel's
    /// accept queue until one closes.
    pub max_connections: usize,
    /// For a request's headers to arrive, counted from when the connection
    /// is ready for the request (so also an idle keep-alive's lifetime).
    pub header_timeout: Duration,
    /// For a request's body to arrive once its headers have.
    pub body_timeout: Duration,
}

/// The header and body deadlines when the configuration gives none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The body deadline, carried to the extractor on each request.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub Duration);

/// Counts a connection as open for as long as it lives.
struct OpenConnection(Arc<AtomicUsize>);

impl OpenConnection {
    fn new(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self(open.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains.
/// `open` counts the connections being served (for `/metrics`).
pub async fn serve<L>(
    mut listener: L,
    router: Router,
    limits: ConnectionLimits,
    open: Arc<AtomicUsize>,
    shutdown: impl Future<Output = ()>,
) where
    L: Listener<Addr = SocketAddr>,
{
    let slots = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let permits = Arc::new(Semaphore::new(slots as usize));
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let mut stopping = stopping.clone();
        let counted = OpenConnection::new(&open);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                let extensions = req.extensions_mut();
                extensions.insert(ConnectInfo(PeerAddr(peer)));
                extensions.insert(BodyTimeout(limits.body_timeout));
                router.clone().oneshot(req.map(Body::new))
            });
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(MAX_HEAD_BYTES);
            let mut conn = pin!(builder.serve_connection(TokioIo::new(io), service));
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                _ = stopping.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(counted);
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a permit until it has closed.
    let _ = permits.acquire_many(slots).await;
}
