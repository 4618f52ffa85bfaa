//! Admin endpoints (admin API key): sites, agents (and their sessions) and conversation
//! transcripts. Account rules live in `accounts`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::AdminAuth;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::accounts::{NewAgent, NewSite};
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
        .accounts
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
    let site = s
        .accounts
        .create_site(NewSite {
            key: req.key,
            name: req.name,
            allowed_origins: req.allowed_origins,
            identity_secret: req.identity_secret,
            enforce_identity: req.enforce_identity,
        })
        .await?;
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
    let agent = s
        .accounts
        .create_agent(NewAgent {
            name: req.name,
            display_name: req.display_name,
            password: req.password,
            capacity: req.capacity.unwrap_or(5),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "name": agent.name, "display_name": agent.display_name, "capacity": agent.capacity }),
        ),
    ))
}

/// `GET /v1/admin/agents`.
pub async fn agents(State(state): State<AppState>, _: AdminAuth) -> Result<Json<Value>, ApiError> {
    let agents = super::agent::agents_json(&state).await?;
    Ok(Json(json!({ "agents": agents })))
}

/// `POST /v1/admin/agents/{name}/revoke`: signs the agent out everywhere.
pub async fn revoke_agent(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = super::ready(&state)?;
    let revoked = s.accounts.revoke_agent_sessions(&name).await?;
    Ok(Json(json!({ "revoked": revoked })))
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
    Ok(Json(json!(s.conversations.transcript(&id).await?)))
}
