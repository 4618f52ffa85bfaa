//! Knowledge-base endpoints.

use axum::extract::State;
use axum::Json;
use kefu_kb::knowledge::{DEFAULT_KB, MAX_TOP_K};
use kefu_kb::Retrieval;
use serde::Deserialize;

use super::json::ApiJson;
use crate::error::ApiError;
use crate::state::AppState;

/// Default number of hits.
pub const DEFAULT_TOP_K: usize = 5;

/// `POST /v1/kb/query` body.
#[derive(Debug, Deserialize)]
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
pub async fn query(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<QueryRequest>,
) -> Result<Json<Retrieval>, ApiError> {
    let k = state.knowledge().ok_or_else(ApiError::not_ready)?;
    let top_k = req.top_k.unwrap_or(DEFAULT_TOP_K);
    if top_k == 0 || top_k > MAX_TOP_K {
        return Err(ApiError::bad_request(
            "invalid_input",
            format!("top_k must be between 1 and {MAX_TOP_K}"),
        ));
    }
    let kb = req.kb.as_deref().unwrap_or(DEFAULT_KB);
    Ok(Json(k.query(kb, &req.query, top_k, &req.tags).await?))
}
