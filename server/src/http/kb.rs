//! Knowledge-base endpoints for staff (agent tokens and admin keys): text length checked by the
//! knowledge engine, `top_k` capped, rate-limited, and
//! run behind the visitors' bot replies (a small fixed number at a time; beyond a short queue the
//! server answers `503 overloaded` instead of queueing without end).

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::Json;
use kefu_kb::knowledge::DEFAULT_KB;
use kefu_kb::Retrieval;
use kefu_protocol::ErrorCode;
use serde::Deserialize;

use super::auth::StaffAuth;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::state::AppState;

/// Default number of hits.
pub const DEFAULT_TOP_K: usize = 5;
/// Most hits one query may ask for.
pub const MAX_QUERY_TOP_K: usize = 20;
/// How long a query may wait for its turn before the server sheds it.
const QUEUE_WAIT: Duration = Duration::from_millis(500);

/// `POST /v1/kb/query` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    pub query: String,
    #[serde(default)]
    pub kb: Option<String>,
    #[serde(default)]
    pub top_k: Option<usize>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Retrieves the best entries for one question, with the band.
#[utoipa::path(post, path = "/v1/kb/query", tag = "knowledge", security(("bearer" = [])),
    request_body = QueryRequest,
    responses((status = 200, description = "`{query, band, hits: [{id, question, answer, score, lexical, source, kind, tags}], thresholds, answer_mode}`", body = Object)))]
pub async fn query(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    _: StaffAuth,
    ApiJson(req): ApiJson<QueryRequest>,
) -> Result<Json<Retrieval>, ApiError> {
    let k = state.knowledge().ok_or_else(ApiError::not_ready)?;
    let client = state.client_ip(peer.ip(), &headers);
    if state.query_limiter.check_key(&client).is_err() {
        return Err(ApiError::rate_limited());
    }
    let top_k = req.top_k.unwrap_or(DEFAULT_TOP_K);
    if top_k == 0 || top_k > MAX_QUERY_TOP_K {
        return Err(ApiError::invalid_input(format!(
            "top_k must be between 1 and {MAX_QUERY_TOP_K}"
        )));
    }
    if req.tags.len() > 20 {
        return Err(ApiError::invalid_input("at most 20 tags"));
    }
    let _turn = staff_turn(&state).await?;
    let kb = req.kb.as_deref().unwrap_or(DEFAULT_KB);
    Ok(Json(k.query(kb, &req.query, top_k, &req.tags).await?))
}

/// Waits (briefly) for a staff query's turn behind the visitors' replies; `503 overloaded` when
/// the wait is too long.
pub(super) async fn staff_turn(
    state: &AppState,
) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
    tokio::time::timeout(QUEUE_WAIT, state.staff_queries.acquire())
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::Overloaded,
                "too many knowledge-base queries at once; retry shortly",
            )
        })?
        .map_err(ApiError::internal)
}
