//! The HTTP layer: one router built by `app`, and `run` serving it until shutdown.

pub mod admin;
pub mod admin_eval;
pub mod admin_hours;
pub mod admin_kb;
pub mod admin_keys;
pub mod admin_llm;
pub mod admin_privacy;
pub mod admin_rules;
pub mod admin_training;
pub mod admin_webhooks;
pub mod agent;
pub mod attachments;
pub mod auth;
pub mod channels;
pub mod error;
mod extract;
pub mod forwarded;
pub mod kb;
pub mod openapi;
mod pages;
pub mod server;
pub mod visitor;
mod widget;
pub mod ws;

use std::future::Future;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::HeaderValue;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use tokio::net::TcpListener;

pub use error::ApiError;
pub use server::ServeOptions;

use crate::state::AppState;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole HTTP API.
pub fn app(state: AppState) -> Router {
    // Probes and metrics are polled constantly (a 503 from /readyz during start-up is expected):
    // they stay out of the request log.
    let probes = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    Router::new()
        .route("/v1/kb/query", post(kb::query))
        .route("/v1/ws", get(ws::upgrade))
        .merge(cross_origin_routes())
        .route("/v1/agent/login", post(agent::login))
        .route("/v1/agent/logout", post(agent::logout))
        .route("/v1/agent/agents", get(agent::agents))
        .route("/v1/agent/canned", get(agent::canned))
        .route("/v1/agent/conversations", get(agent::list))
        .route("/v1/agent/conversations/{id}", get(agent::transcript))
        .route("/v1/agent/conversations/{id}/claim", post(agent::claim))
        .route(
            "/v1/agent/conversations/{id}/messages",
            post(agent::send_message),
        )
        .route(
            "/v1/agent/conversations/{id}/handback",
            post(agent::hand_back),
        )
        .route("/v1/agent/conversations/{id}/resolve", post(agent::resolve))
        .route(
            "/v1/agent/conversations/{id}/transfer",
            post(agent::transfer),
        )
        .route(
            "/v1/agent/conversations/{id}/suggestions",
            get(agent::suggestions),
        )
        .route("/v1/admin/login", post(admin::login))
        .route("/v1/admin/kbs", get(admin_kb::list))
        .route(
            "/v1/admin/kbs/{kb}",
            get(admin_kb::get).delete(admin_kb::delete),
        )
        .route(
            "/v1/admin/kbs/{kb}/documents",
            post(admin_kb::upload).layer(DefaultBodyLimit::max(state.limits.max_upload_bytes)),
        )
        .route(
            "/v1/admin/kbs/{kb}/entries",
            get(admin_kb::entries).post(admin_kb::create_entry),
        )
        .route(
            "/v1/admin/kbs/{kb}/entries/{id}",
            get(admin_kb::entry)
                .put(admin_kb::update_entry)
                .delete(admin_kb::delete_entry),
        )
        .route(
            "/v1/admin/kbs/{kb}/thresholds",
            put(admin_kb::set_thresholds),
        )
        .route("/v1/admin/kbs/{kb}/mode", put(admin_kb::set_mode))
        .route("/v1/admin/kbs/{kb}/ask", post(admin_kb::ask))
        .route(
            "/v1/admin/kbs/{kb}/eval",
            post(admin_eval::eval).layer(DefaultBodyLimit::max(state.limits.max_upload_bytes)),
        )
        .route("/v1/admin/analytics", get(admin::analytics))
        .route(
            "/v1/admin/training/history",
            post(admin_training::upload_history)
                .layer(DefaultBodyLimit::max(state.limits.max_upload_bytes)),
        )
        .route("/v1/admin/training/mine", post(admin_training::mine))
        .route(
            "/v1/admin/rules",
            get(admin_rules::get).put(admin_rules::replace),
        )
        .route("/v1/admin/rules/validate", post(admin_rules::validate))
        .route(
            "/v1/admin/keys",
            get(admin_keys::list).post(admin_keys::create),
        )
        .route("/v1/admin/keys/{name}/revoke", post(admin_keys::revoke))
        .route(
            "/v1/admin/webhooks",
            get(admin_webhooks::list).post(admin_webhooks::create),
        )
        .route(
            "/v1/admin/webhooks/{id}",
            axum::routing::delete(admin_webhooks::remove),
        )
        .route(
            "/v1/admin/webhooks/{id}/rotate",
            post(admin_webhooks::rotate),
        )
        .route(
            "/v1/admin/webhooks/{id}/enable",
            post(admin_webhooks::enable),
        )
        .route(
            "/v1/admin/webhooks/{id}/deliveries",
            get(admin_webhooks::deliveries),
        )
        .route(
            "/v1/admin/llm",
            get(admin_llm::settings)
                .put(admin_llm::replace)
                .delete(admin_llm::clear),
        )
        .route("/v1/admin/llm/test", post(admin_llm::test))
        .route("/v1/admin/intents", get(admin_training::intents))
        .route(
            "/v1/admin/intents/train",
            post(admin_training::train_intents)
                .layer(DefaultBodyLimit::max(state.limits.max_upload_bytes)),
        )
        .route(
            "/v1/admin/intents/{version}/activate",
            post(admin_training::activate_intents),
        )
        .route(
            "/v1/admin/intents/rollback",
            post(admin_training::rollback_intents),
        )
        .route(
            "/v1/admin/training/proposals",
            get(admin_training::proposals),
        )
        .route(
            "/v1/admin/training/proposals/{id}",
            put(admin_training::edit),
        )
        .route(
            "/v1/admin/training/proposals/{id}/conversations",
            get(admin_training::examples),
        )
        .route(
            "/v1/admin/training/proposals/{id}/approve",
            post(admin_training::approve),
        )
        .route(
            "/v1/admin/training/proposals/{id}/reject",
            post(admin_training::reject),
        )
        .route("/v1/admin/jobs", get(admin_kb::jobs))
        .route("/v1/admin/jobs/{id}", get(admin_kb::job))
        .route(
            "/v1/admin/sites",
            get(admin::sites).post(admin::create_site),
        )
        .route(
            "/v1/admin/agents",
            get(admin::agents).post(admin::create_agent),
        )
        .route("/v1/admin/agents/{name}/revoke", post(admin::revoke_agent))
        .route("/v1/admin/conversations", get(admin::conversations))
        .route("/v1/admin/conversations/{id}", get(admin::transcript))
        .route("/v1/admin/visitors/erase", post(admin_privacy::erase))
        .route(
            "/v1/admin/sites/{key}/retention",
            get(admin_privacy::get_retention).put(admin_privacy::set_retention),
        )
        .route("/v1/admin/audit", get(admin_privacy::audit))
        .route(
            "/v1/admin/sites/{key}/hours",
            get(admin_hours::get)
                .put(admin_hours::set)
                .delete(admin_hours::remove),
        )
        .route(
            "/v1/admin/sites/{key}/attachments",
            get(attachments::get_limits).put(attachments::set_limits),
        )
        .route(
            "/v1/channels/api/{site_key}/messages",
            post(channels::api_message),
        )
        .route(
            "/v1/channels/api/{site_key}/handoff",
            post(channels::api_handoff),
        )
        .route(
            "/v1/channels/wechat/{site_key}",
            get(channels::wechat_verify).post(channels::wechat_message),
        )
        .route("/v1/openapi.json", get(openapi::document))
        .route("/docs/api", get(pages::api_reference))
        .route("/docs/api.js", get(pages::api_reference_script))
        .route("/admin", get(pages::admin))
        .route("/admin.js", get(pages::admin_script))
        .route("/console", get(pages::console))
        .route("/demo", get(pages::demo))
        .route("/console.js", get(pages::console_script))
        .route("/demo.js", get(pages::demo_script))
        .route("/", get(widget::shop))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .merge(probes)
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(
            tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        )
        .with_state(state)
}

/// What a page on another origin uses: the visitor REST endpoints and the widget's files. CORS
/// lets any origin call them (no cookies are involved: visitor tokens travel in headers); which
/// origins may actually chat is decided per site by its allow-list, when a session is created and
/// at the WebSocket's `hello`.
fn cross_origin_routes() -> Router<AppState> {
    use axum::http::{header, Method};
    use tower_http::cors::{Any, CorsLayer};
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .max_age(std::time::Duration::from_secs(3600));
    Router::new()
        .route("/v1/visitor/sessions", post(visitor::create_session))
        .route(
            "/v1/visitor/conversations",
            post(visitor::create_conversation),
        )
        .route("/v1/conversations/{id}/messages", get(visitor::messages))
        .route("/v1/conversations/{id}/rating", post(visitor::rate))
        .route(
            "/v1/conversations/{id}/attachments",
            post(attachments::upload),
        )
        .route("/v1/attachments/{id}", get(attachments::file))
        .route(
            "/v1/attachments/{id}/thumbnail",
            get(attachments::thumbnail),
        )
        .route("/widget.js", get(widget::loader))
        .route("/widget/kefu_widget.js", get(widget::glue))
        .route("/widget/kefu_widget_bg.wasm", get(widget::wasm))
        .layer(tower_http::compression::CompressionLayer::new().gzip(true))
        .layer(cors)
}

/// Serves `app(state)` on `listener` until `shutdown` resolves: WebSocket sessions are told to
/// close (1001), then in-flight requests drain, for at most `options.drain_timeout`.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let for_shutdown = state.clone();
    server::serve(listener, app(state), options, shutdown, move || {
        for_shutdown.begin_shutdown()
    })
    .await
}

/// The loaded services, or `503 not_ready` while the server is still starting.
pub(crate) fn ready(state: &AppState) -> Result<std::sync::Arc<crate::state::Services>, ApiError> {
    state.services().cloned().ok_or_else(ApiError::not_ready)
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "probes", responses((status = 200, description = "up", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub status: &'static str,
    /// The running model.
    pub model: String,
    /// Vectors in the index.
    pub vectors: usize,
}

/// The model, knowledge base and stores are loaded (`503 not_ready` before).
#[utoipa::path(get, path = "/readyz", tag = "probes", responses((status = 200, description = "ready", body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    let k = state.knowledge().ok_or_else(ApiError::not_ready)?;
    Ok(Json(Readiness {
        status: "ready",
        model: k.embedder().model_name().to_string(),
        vectors: k.indexed_vectors().await?,
    }))
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "probes",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    process_metrics().collect();
    if let Some(s) = state.services() {
        let (visitors, agents) = s.conversations.live_counts();
        metrics::gauge!("kefu_live_sessions", "role" => "visitor").set(visitors as f64);
        metrics::gauge!("kefu_live_sessions", "role" => "agent").set(agents as f64);
    }
    let body = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// The standard process metrics (CPU, memory, files, threads) as `kefu_process_*`, described once.
fn process_metrics() -> &'static metrics_process::Collector {
    static COLLECTOR: std::sync::OnceLock<metrics_process::Collector> = std::sync::OnceLock::new();
    COLLECTOR.get_or_init(|| {
        let collector = metrics_process::Collector::new("kefu_");
        collector.describe();
        collector
    })
}

/// This process's resident set size.
pub fn resident_memory_bytes() -> Option<u64> {
    metrics_process::collector::collect().resident_memory_bytes
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}
