//! The admin API's view of the LLM backend (answer mode `llm`): what is configured (never the
//! key itself) and a short test request that shows whether it answers and how fast. The backend
//! is set with `kefu serve --llm-url/--llm-model/--llm-api-key` (or `KEFU_LLM_*`).

use std::time::Instant;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::AdminAuth;
use super::error::ApiError;
use crate::llm::prompt::ChatMessage;
use crate::state::AppState;

/// The LLM backend as configured at start-up.
#[derive(Debug, Serialize, ToSchema)]
pub struct LlmSettings {
    /// Whether a backend is configured (`--llm-url`); without one every knowledge base answers
    /// locally whatever its answer mode.
    pub configured: bool,
    /// The chat-completions endpoint.
    pub endpoint: Option<String>,
    pub model: Option<String>,
    /// Whether an API key is set (the key is never shown).
    pub api_key_set: bool,
    pub first_token_timeout_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
}

/// The outcome of a test request.
#[derive(Debug, Serialize, ToSchema)]
pub struct LlmTest {
    pub ok: bool,
    /// The start of the backend's answer.
    pub reply: Option<String>,
    pub first_token_ms: Option<u64>,
    pub total_ms: u64,
    /// Why it failed (`unreachable`, `status`, `first_token_timeout`, `timeout`, `malformed`).
    pub error: Option<String>,
    pub message: Option<String>,
}

/// `GET /v1/admin/llm`: the LLM backend's settings.
#[utoipa::path(get, path = "/v1/admin/llm", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "the LLM backend", body = LlmSettings)))]
pub async fn settings(
    State(state): State<AppState>,
    _: AdminAuth,
) -> Result<Json<LlmSettings>, ApiError> {
    let s = super::ready(&state)?;
    let llm = s.conversations.llm();
    Ok(Json(LlmSettings {
        configured: llm.is_some(),
        endpoint: llm.map(|c| c.endpoint().to_string()),
        model: llm.map(|c| c.model().to_string()),
        api_key_set: llm.is_some_and(|c| c.config().api_key.is_some()),
        first_token_timeout_ms: llm.map(|c| c.config().first_token_timeout.as_millis() as u64),
        timeout_ms: llm.map(|c| c.config().timeout.as_millis() as u64),
    }))
}

/// `POST /v1/admin/llm/test`: sends one short request to the backend; `conflict` when none is
/// configured.
#[utoipa::path(post, path = "/v1/admin/llm/test", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "what the backend did", body = LlmTest)))]
pub async fn test(State(state): State<AppState>, _: AdminAuth) -> Result<Json<LlmTest>, ApiError> {
    let s = super::ready(&state)?;
    let llm = s.conversations.llm().cloned().ok_or_else(|| {
        ApiError::new(
            kefu_protocol::ErrorCode::Conflict,
            "no LLM backend is configured: start kefu serve with --llm-url",
        )
    })?;
    let messages = [
        ChatMessage {
            role: "system",
            content: "You are a connection test. Reply with the single word OK.".into(),
        },
        ChatMessage {
            role: "user",
            content: "ping".into(),
        },
    ];
    let started = Instant::now();
    let result = llm.stream(&messages, &mut |_| {}).await;
    let total_ms = started.elapsed().as_millis() as u64;
    Ok(Json(match result {
        Ok(c) => LlmTest {
            ok: true,
            reply: Some(c.text.chars().take(200).collect()),
            first_token_ms: c.first_token.map(|d| d.as_millis() as u64),
            total_ms,
            error: None,
            message: None,
        },
        Err(e) => LlmTest {
            ok: false,
            reply: None,
            first_token_ms: None,
            total_ms,
            error: Some(e.label().to_string()),
            message: Some(e.to_string()),
        },
    }))
}
