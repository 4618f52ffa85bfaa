//! Admin endpoints (admin API key): sites, agents and conversation transcripts.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::AdminAuth;
use super::json::ApiJson;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::Site;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteRequest {
    pub key: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default)]
    pub identity_secret: Option<String>,
    #[serde(default)]
    pub enforce_identity: bool,
}

/// `GET /v1/admin/sites`.
pub async fn sites(State(state): State<AppState>, _: AdminAuth) -> Result<Json<Value>, ApiError> {
    let s = super::ready(&state)?;
    let sites: Vec<Value> = s
        .conversations
        .store()
        .sites()
        .await?
        .into_iter()
        .map(site_json)
        .collect();
    Ok(Json(json!({ "sites": sites })))
}

/// `POST /v1/admin/sites`.
pub async fn create_site(
    State(state): State<AppState>,
    _: AdminAuth,
    ApiJson(req): ApiJson<SiteRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let s = super::ready(&state)?;
    let site = crate::commands::site::new_site(
        &req.key,
        req.name,
        req.allowed_origins,
        req.identity_secret,
        req.enforce_identity,
    )
    .map_err(|e| ApiError::bad_request("invalid_input", e.to_string()))?;
    s.conversations.store().create_site(&site).await?;
    Ok((StatusCode::CREATED, Json(site_json(site))))
}

fn site_json(s: Site) -> Value {
    json!({
        "key": s.key, "name": s.name, "allowed_origins": s.allowed_origins,
        "enforce_identity": s.enforce_identity, "identity_secret": s.identity_secret,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRequest {
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    pub password: String,
    #[serde(default)]
    pub capacity: Option<u32>,
}

/// `POST /v1/admin/agents`.
pub async fn create_agent(
    State(state): State<AppState>,
    _: AdminAuth,
    ApiJson(req): ApiJson<AgentRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let s = super::ready(&state)?;
    let agent = crate::commands::agent::new_agent(
        &req.name,
        req.display_name,
        &req.password,
        req.capacity.unwrap_or(5),
    )
    .await
    .map_err(|e| ApiError::bad_request("invalid_input", e.to_string()))?;
    s.conversations.store().create_agent(&agent).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "name": agent.name, "display_name": agent.display_name, "capacity": agent.capacity }),
        ),
    ))
}

/// `GET /v1/admin/agents`.
pub async fn agents(State(state): State<AppState>, _: AdminAuth) -> Result<Json<Value>, ApiError> {
    let s = super::ready(&state)?;
    let all = s.conversations.presence().await?;
    let agents: Vec<Value> = all
        .into_iter()
        .map(|(a, online)| json!({ "name": a.name, "display_name": a.display_name, "active": a.active, "capacity": a.capacity, "online": online }))
        .collect();
    Ok(Json(json!({ "agents": agents })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationsQuery {
    #[serde(default)]
    pub state: Option<String>,
}

/// `GET /v1/admin/conversations?state=…`.
pub async fn conversations(
    State(state): State<AppState>,
    _: AdminAuth,
    Query(q): Query<ConversationsQuery>,
) -> Result<Json<Value>, ApiError> {
    let s = super::ready(&state)?;
    let states =
        super::agent::parse_states(q.state.as_deref().unwrap_or("bot,queued,agent,resolved"))?;
    Ok(Json(
        json!({ "conversations": s.conversations.list(&states, 500).await? }),
    ))
}

/// `GET /v1/admin/conversations/{id}`: transcript with route traces.
pub async fn transcript(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = super::ready(&state)?;
    super::agent::transcript_json(&s, &id).await.map(Json)
}
