//! The admin API's LLM backend (answer mode `llm`): what is in use and where it comes from (never
//! the key itself), set or removed from the console when `--llm-url` does not fix it, and a short
//! test request that shows whether it answers and how fast. The backend lives in
//! `llm::live`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::AdminAuth;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::llm::live::{LiveLlm, LlmSource, SavedLlm};
use crate::llm::prompt::ChatMessage;
use crate::state::AppState;

/// The LLM backend in use.
#[derive(Debug, Serialize, ToSchema)]
pub struct LlmSettings {
    /// Whether a backend is in use; without one every knowledge base answers locally whatever
    /// its answer mode.
    pub configured: bool,
    /// `flags` (`--llm-url`: fixed while the server runs), `console` (set here) or `none`.
    pub source: LlmSource,
    /// Whether it can be changed here.
    pub editable: bool,
    /// The API base URL as given, and the chat-completions endpoint requests go to.
    pub url: Option<String>,
    pub endpoint: Option<String>,
    pub model: Option<String>,
    /// Whether an API key is set (the key is never shown).
    pub api_key_set: bool,
    pub first_token_timeout_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
}

/// New LLM settings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LlmSettingsInput {
    /// OpenAI-compatible API base URL, e.g. `http://127.0.0.1:11434/v1` (Ollama).
    pub url: String,
    pub model: String,
    /// The backend's key: absent keeps the key in use, `""` removes it.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Longest wait for the first token (default 6000).
    #[serde(default)]
    pub first_token_timeout_ms: Option<u64>,
    /// Longest whole answer (default 12000, at most 14000).
    #[serde(default)]
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

fn settings_of(live: &LiveLlm) -> LlmSettings {
    let llm = live.current();
    let config = llm.as_ref().map(|c| c.config());
    LlmSettings {
        configured: llm.is_some(),
        source: live.source(),
        editable: live.editable(),
        url: config.map(|c| c.url.clone()),
        endpoint: llm.as_ref().map(|c| c.endpoint().to_string()),
        model: config.map(|c| c.model.clone()),
        api_key_set: config.is_some_and(|c| c.api_key.is_some()),
        first_token_timeout_ms: config.map(|c| c.first_token_timeout.as_millis() as u64),
        timeout_ms: config.map(|c| c.timeout.as_millis() as u64),
    }
}

/// `GET /v1/admin/llm`: the LLM backend in use.
#[utoipa::path(get, path = "/v1/admin/llm", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "the LLM backend", body = LlmSettings)))]
pub async fn settings(
    State(state): State<AppState>,
    _: AdminAuth,
) -> Result<Json<LlmSettings>, ApiError> {
    let s = super::ready(&state)?;
    Ok(Json(settings_of(s.conversations.llm())))
}

/// `PUT /v1/admin/llm`: uses this backend from the next answer on (saved for restarts);
/// `conflict` when `--llm-url` fixes it, `invalid_input` for a bad URL or timeouts.
#[utoipa::path(put, path = "/v1/admin/llm", tag = "admin", security(("bearer" = [])),
    request_body = LlmSettingsInput, responses((status = 200, description = "in use", body = LlmSettings)))]
pub async fn replace(
    State(state): State<AppState>,
    _: AdminAuth,
    ApiJson(req): ApiJson<LlmSettingsInput>,
) -> Result<Json<LlmSettings>, ApiError> {
    let s = super::ready(&state)?;
    let live = Arc::clone(s.conversations.llm());
    let saved = SavedLlm {
        url: req.url,
        model: req.model,
        api_key: req.api_key,
        first_token_timeout_ms: req.first_token_timeout_ms.unwrap_or(6000),
        timeout_ms: req.timeout_ms.unwrap_or(12_000),
    };
    tokio::task::spawn_blocking(move || live.replace(saved))
        .await
        .map_err(ApiError::internal)??;
    if let Some(shared) = &s.settings {
        shared.llm_saved().await?;
    }
    Ok(Json(settings_of(s.conversations.llm())))
}

/// `DELETE /v1/admin/llm`: stops using a backend (answer mode `llm` answers locally).
#[utoipa::path(delete, path = "/v1/admin/llm", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "none in use", body = LlmSettings)))]
pub async fn clear(
    State(state): State<AppState>,
    _: AdminAuth,
) -> Result<Json<LlmSettings>, ApiError> {
    let s = super::ready(&state)?;
    let live = Arc::clone(s.conversations.llm());
    tokio::task::spawn_blocking(move || live.clear())
        .await
        .map_err(ApiError::internal)??;
    if let Some(shared) = &s.settings {
        shared.llm_saved().await?;
    }
    Ok(Json(settings_of(s.conversations.llm())))
}

/// `POST /v1/admin/llm/test`: sends one short request to the backend; `conflict` when none is
/// in use.
#[utoipa::path(post, path = "/v1/admin/llm/test", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "what the backend did", body = LlmTest)))]
pub async fn test(State(state): State<AppState>, _: AdminAuth) -> Result<Json<LlmTest>, ApiError> {
    let s = super::ready(&state)?;
    let llm = s.conversations.llm().current().ok_or_else(|| {
        ApiError::new(
            kefu_protocol::ErrorCode::Conflict,
            "no LLM backend is in use: set one first",
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
