//! Shared server state: the services, filled in once loading finishes (until then the server
//! answers `/healthz` but not `/readyz`), the request limits and the shutdown signal.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};

use governor::{DefaultKeyedRateLimiter, Quota};
use kefu_kb::Knowledge;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

use crate::accounts::Accounts;
use crate::analytics::Analytics;
use crate::conversation::Conversations;
use crate::jobs::Jobs;
use crate::training::Training;

/// Everything that needs the model and the databases.
pub struct Services {
    pub knowledge: Arc<Knowledge>,
    pub accounts: Accounts,
    pub conversations: Arc<Conversations>,
    pub analytics: Analytics,
    pub training: Training,
    /// Event webhook endpoints.
    pub webhooks: crate::webhooks::Webhooks,
    /// Retention, erasure and the audit log.
    pub privacy: crate::privacy::Privacy,
    /// Uploads, their limits and their signed links.
    pub attachments: crate::attachments::Attachments,
    /// The API channel and WeChat Official Accounts.
    pub channels: Arc<crate::channels::Channels>,
    /// The rules file and LLM settings shared with the other nodes (PostgreSQL only).
    pub settings: Option<Arc<crate::shared_settings::SharedSettings>>,
}

/// Request and connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections_per_ip: u32,
    pub frames_per_second: u32,
    pub sessions_per_minute: u32,
    /// Largest file the admin API accepts for a knowledge base, in bytes.
    pub max_upload_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections_per_ip: 256,
            frames_per_second: 20,
            sessions_per_minute: 120,
            max_upload_bytes: 20 * 1024 * 1024,
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    services: Arc<OnceLock<Arc<Services>>>,
    pub limits: Limits,
    /// Per-client budget for visitor sessions.
    pub session_limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Per-client budget for agent logins (its own bucket: visitors never lock agents out).
    pub login_limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Per-client budget for staff knowledge-base queries (its own bucket: a console testing
    /// questions never uses up the visitors' sessions behind the same address).
    pub query_limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Staff knowledge-base queries running at once (one: visitors' bot replies come first).
    pub staff_queries: Arc<tokio::sync::Semaphore>,
    /// Background jobs started over the admin API.
    pub jobs: Jobs,
    /// Proxies whose `X-Forwarded-For` / `Forwarded` headers name the real client.
    trusted_proxies: Arc<Vec<IpAddr>>,
    connections: Arc<Mutex<HashMap<IpAddr, u32>>>,
    pub metrics: Option<PrometheusHandle>,
    shutdown: watch::Receiver<bool>,
    shutdown_tx: Arc<watch::Sender<bool>>,
}

impl AppState {
    pub fn new(limits: Limits, metrics: Option<PrometheusHandle>) -> Self {
        let per_minute =
            NonZeroU32::new(limits.sessions_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let (shutdown_tx, shutdown) = watch::channel(false);
        Self {
            services: Arc::new(OnceLock::new()),
            limits,
            session_limiter: Arc::new(DefaultKeyedRateLimiter::keyed(Quota::per_minute(
                per_minute,
            ))),
            login_limiter: Arc::new(DefaultKeyedRateLimiter::keyed(Quota::per_minute(
                per_minute,
            ))),
            query_limiter: Arc::new(DefaultKeyedRateLimiter::keyed(Quota::per_minute(
                per_minute,
            ))),
            staff_queries: Arc::new(tokio::sync::Semaphore::new(1)),
            jobs: Jobs::default(),
            trusted_proxies: Arc::new(Vec::new()),
            connections: Arc::new(Mutex::new(HashMap::new())),
            metrics,
            shutdown,
            shutdown_tx: Arc::new(shutdown_tx),
        }
    }

    /// Trusts these proxies' forwarding headers (see `client_ip`).
    pub fn with_trusted_proxies(mut self, proxies: Vec<IpAddr>) -> Self {
        self.trusted_proxies = Arc::new(proxies);
        self
    }

    /// The client's address: the TCP peer, or, when the peer is a trusted proxy, the nearest
    /// untrusted address its `X-Forwarded-For` (or `Forwarded: for=`) chain names.
    pub fn client_ip(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        crate::http::forwarded::client_ip(peer, headers, &self.trusted_proxies)
    }

    /// Marks the server ready.
    pub fn set_ready(&self, services: Arc<Services>) {
        let _ = self.services.set(services);
    }

    /// The services, once loaded.
    pub fn services(&self) -> Option<&Arc<Services>> {
        self.services.get()
    }

    pub fn knowledge(&self) -> Option<&Arc<Knowledge>> {
        self.services.get().map(|s| &s.knowledge)
    }

    /// Tells every WebSocket session to close (graceful shutdown).
    pub fn begin_shutdown(&self) {
        let _ = self.shutdown_tx.send(true);
    }

    /// Resolves when shutdown begins.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// Counts a new connection from `ip`; `None` when the IP is at its limit.
    pub fn open_connection(&self, ip: IpAddr) -> Option<ConnectionSlot> {
        let mut map = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= self.limits.max_connections_per_ip {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            ip,
            connections: Arc::clone(&self.connections),
        })
    }
}

/// One counted connection; released on drop.
pub struct ConnectionSlot {
    ip: IpAddr,
    connections: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut map = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}
