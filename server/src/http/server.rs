//! The accept loop: HTTP/1.1 over hyper with a header-read timeout (slow or silent clients are
//! closed), a cap on open connections in total (WebSocket sessions included; beyond it new
//! connections wait in the backlog instead of exhausting file descriptors), back-off on accept
//! errors, and a shutdown that drains within a bounded time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

/// Limits of the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Most open connections (HTTP and WebSocket together).
    pub max_connections: usize,
    /// A client must send a whole request head this soon after connecting or after its previous
    /// request (idle keep-alive connections close after it too).
    pub header_read_timeout: Duration,
    /// Largest request head (request line + headers), in bytes.
    pub max_header_bytes: usize,
    /// How long shutdown waits for open requests and sessions before closing them.
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_connections: 20_000,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

impl ServeOptions {
    /// Caps `max_connections` below the process's open-file limit, keeping headroom for the
    /// databases, model files and logs.
    pub fn within_fd_limit(mut self) -> Self {
        if let Some(limit) = open_file_limit() {
            let usable = limit.saturating_sub(FD_HEADROOM).max(16);
            if usable < self.max_connections {
                tracing::info!(
                    open_file_limit = limit,
                    max_connections = usable,
                    "connection cap lowered to fit the open-file limit (raise it with ulimit -n)"
                );
                self.max_connections = usable;
            }
        }
        self
    }
}

/// File descriptors kept free for everything that is not a client connection.
const FD_HEADROOM: usize = 128;

/// The connection's share of the global cap. A WebSocket upgrade takes it over from the HTTP
/// connection (see `take`), so a session counts for as long as it stays open.
#[derive(Clone, Default)]
pub struct ConnectionPermit(Arc<Mutex<Option<OwnedSemaphorePermit>>>);

impl ConnectionPermit {
    /// Moves the permit out (the WebSocket session keeps it).
    pub fn take(&self) -> Option<OwnedSemaphorePermit> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains: `on_shutdown` runs (it
/// tells WebSocket sessions to close), connections finish their current request, and after
/// `drain_timeout` whatever is still open is dropped.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_shutdown: impl FnOnce() + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(options.max_connections));
    let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_buf_size(options.max_header_bytes.max(8192))
        .keep_alive(true);
    let builder = Arc::new(builder);
    let mut accept_backoff = Duration::from_millis(5);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => {
                    accept_backoff = Duration::from_millis(5);
                    c
                }
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: wait a little
                    // (longer each time) instead of spinning, and keep serving.
                    if !is_connection_error(&e) {
                        tracing::warn!(error = %e, "accept failed; backing off");
                        tokio::time::sleep(accept_backoff).await;
                        accept_backoff = (accept_backoff * 2).min(Duration::from_secs(1));
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let slot = ConnectionPermit(Arc::new(Mutex::new(Some(permit))));
        let per_request = slot.clone();
        let service = app
            .clone()
            .map_request(move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut()
                    .insert(ConnectInfo::<std::net::SocketAddr>(peer));
                req.extensions_mut().insert(per_request.clone());
                req
            });
        let service = TowerToHyperService::new(service);
        let builder = Arc::clone(&builder);
        let mut drain = drain_rx.clone();
        tokio::spawn(async move {
            let conn = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                }
                () = async { let _ = drain.wait_for(|d| *d).await.map(|_| ()); } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    on_shutdown();
    let _ = drain_tx.send(true);
    let all = u32::try_from(options.max_connections).unwrap_or(u32::MAX);
    match tokio::time::timeout(options.drain_timeout, permits.acquire_many(all)).await {
        Ok(_) => tracing::info!("all connections drained"),
        Err(_) => tracing::warn!(
            open = options.max_connections - permits.available_permits(),
            "drain timeout: closing the connections still open"
        ),
    }
    Ok(())
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}

/// The soft limit on open files; `None` where unknown or unlimited.
fn open_file_limit() -> Option<usize> {
    metrics_process::collector::collect()
        .max_fds
        .filter(|&n| n > 0)
        .and_then(|n| usize::try_from(n).ok())
}
