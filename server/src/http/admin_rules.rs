//! The admin API's rules file: read it, check a changed text (errors shown where the operator
//! types), and replace it (checked as at start-up, saved, in force for the next message). The
//! rules themselves live in `triage::live_rules`.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::AdminAuth;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::state::AppState;
use crate::triage::live_rules::{ReplaceError, RulesSummary, RulesView};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesText {
    /// The whole rules file, in the file's format (`GET /v1/admin/rules` says which).
    pub text: String,
}

/// The outcome of checking a rules text.
#[derive(Debug, Serialize, ToSchema)]
pub struct RulesCheck {
    pub valid: bool,
    /// Why it is refused (with the line and column for syntax errors).
    pub error: Option<String>,
    /// What it holds, when valid.
    pub summary: Option<RulesSummary>,
}

/// `GET /v1/admin/rules`: the rules file's text, where it is kept, and what is in force.
#[utoipa::path(get, path = "/v1/admin/rules", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "the rules file", body = RulesView)))]
pub async fn get(State(state): State<AppState>, _: AdminAuth) -> Result<Json<RulesView>, ApiError> {
    let s = super::ready(&state)?;
    let rules = std::sync::Arc::clone(s.conversations.rules());
    tokio::task::spawn_blocking(move || rules.view())
        .await
        .map(Json)
        .map_err(ApiError::internal)
}

/// `POST /v1/admin/rules/validate {"text"}`: checks a rules text without saving it; a refused
/// text is `{"valid": false, "error"}` (status 200: the check itself worked).
#[utoipa::path(post, path = "/v1/admin/rules/validate", tag = "admin", security(("bearer" = [])),
    request_body = RulesText, responses((status = 200, description = "the check", body = RulesCheck)))]
pub async fn validate(
    State(state): State<AppState>,
    _: AdminAuth,
    ApiJson(req): ApiJson<RulesText>,
) -> Result<Json<RulesCheck>, ApiError> {
    let s = super::ready(&state)?;
    Ok(Json(match s.conversations.rules().check(&req.text) {
        Ok((_, summary)) => RulesCheck {
            valid: true,
            error: None,
            summary: Some(summary),
        },
        Err(e @ (ReplaceError::Invalid(_) | ReplaceError::TooLarge)) => RulesCheck {
            valid: false,
            error: Some(e.to_string()),
            summary: None,
        },
        Err(e) => return Err(e.into()),
    }))
}

/// `PUT /v1/admin/rules {"text"}`: replaces the rules file; `invalid_input` (nothing saved) when
/// it does not pass the start-up checks.
#[utoipa::path(put, path = "/v1/admin/rules", tag = "admin", security(("bearer" = [])),
    request_body = RulesText, responses((status = 200, description = "saved and in force", body = RulesSummary)))]
pub async fn replace(
    State(state): State<AppState>,
    _: AdminAuth,
    ApiJson(req): ApiJson<RulesText>,
) -> Result<Json<RulesSummary>, ApiError> {
    let s = super::ready(&state)?;
    let rules = std::sync::Arc::clone(s.conversations.rules());
    let summary = tokio::task::spawn_blocking(move || rules.replace(&req.text))
        .await
        .map_err(ApiError::internal)??;
    if let Some(shared) = &s.settings {
        shared.rules_saved().await?;
    }
    tracing::info!(
        rules = summary.rules,
        "rules file replaced from the admin API"
    );
    Ok(Json(summary))
}
