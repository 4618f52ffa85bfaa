//! Agent console endpoints: login and logout, the queue, presence, transcript with route traces,
//! claim, transfer, hand back, resolve, canned replies and knowledge suggestions.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use kefu_protocol::ConversationState;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{bearer, AgentAuth};
use super::error::ApiError;
use super::extract::ApiJson;
use crate::state::AppState;
use crate::store::rfc3339;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub name: String,
    pub password: String,
}

/// `POST /v1/agent/login`: an agent token for name + password.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<Value>, ApiError> {
    let s = super::ready(&state)?;
    let client = state.client_ip(peer.ip(), &headers);
    if state.login_limiter.check_key(&client).is_err() {
        return Err(ApiError::rate_limited());
    }
    let (agent, token) = s.accounts.login(&req.name, &req.password).await?;
    Ok(Json(json!({
        "token": token.token,
        "agent": { "name": agent.name, "display_name": agent.display_name, "capacity": agent.capacity },
        "expires_at": rfc3339(token.expires_at),
    })))
}

/// `POST /v1/agent/logout`: revokes the token the request carries.
pub async fn logout(
    State(state): State<AppState>,
    AgentAuth(_agent): AgentAuth,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let s = super::ready(&state)?;
    if let Some(token) = bearer(&headers) {
        s.accounts.logout(token).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Comma-separated states (default `queued,agent`).
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `GET /v1/agent/conversations?state=queued,agent`.
pub async fn list(
    State(state): State<AppState>,
    AgentAuth(_agent): AgentAuth,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let s = super::ready(&state)?;
    let states = parse_states(q.state.as_deref().unwrap_or("queued,agent"))?;
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    let list = s.conversations.list(&states, limit).await?;
    Ok(Json(json!({ "conversations": list })))
}

pub fn parse_states(s: &str) -> Result<Vec<ConversationState>, ApiError> {
    s.split(',')
        .map(|p| match p.trim() {
            "bot" => Ok(ConversationState::Bot),
            "queued" => Ok(ConversationState::Queued),
            "agent" => Ok(ConversationState::Agent),
            "resolved" => Ok(ConversationState::Resolved),
            other => Err(ApiError::invalid_input(format!(
                "unknown state `{other}` (bot, queued, agent, resolved)"
            ))),
        })
        .collect()
}

/// Every agent with load and presence, as JSON.
pub async fn agents_json(state: &AppState) -> Result<Vec<Value>, ApiError> {
    let s = super::ready(state)?;
    Ok(s.conversations
        .agents_with_load()
        .await?
        .into_iter()
        .map(|(a, online)| {
            json!({ "name": a.name, "display_name": a.display_name, "active": a.active,
                    "capacity": a.capacity, "online": online })
        })
        .collect())
}

/// `GET /v1/agent/agents`: every agent, with load and whether online.
pub async fn agents(
    State(state): State<AppState>,
    AgentAuth(me): AgentAuth,
) -> Result<Json<Value>, ApiError> {
    let agents = agents_json(&state).await?;
    Ok(Json(json!({ "me": me.name, "agents": agents })))
}

/// `GET /v1/agent/conversations/{id}`: the conversation and its whole transcript with traces.
pub async fn transcript(
    State(state): State<AppState>,
    AgentAuth(_agent): AgentAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = super::ready(&state)?;
    Ok(Json(json!(s.conversations.transcript(&id).await?)))
}

/// `POST /v1/agent/conversations/{id}/claim`.
pub async fn claim(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    super::ready(&state)?
        .conversations
        .claim(&agent, &id)
        .await?;
    Ok(Json(json!({ "ok": true })))
}

/// `POST /v1/agent/conversations/{id}/messages` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    pub text: String,
    /// Makes retries safe: the same id never creates a second message. Generated when absent.
    #[serde(default)]
    pub client_msg_id: Option<String>,
}

/// `POST /v1/agent/conversations/{id}/messages`: an agent's reply without a console socket
/// (integrations, scripts). The agent must own the conversation, as on the WebSocket.
pub async fn send_message(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SendRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let services = super::ready(&state)?;
    let client_msg_id = match req.client_msg_id {
        Some(c) => c,
        None => crate::store::new_id("api-"),
    };
    kefu_protocol::validate_message(&client_msg_id, &req.text)?;
    let m = services
        .conversations
        .agent_send(&agent, &id, &client_msg_id, &req.text)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "conversation_id": id, "seq": m.seq, "client_msg_id": client_msg_id })),
    ))
}

/// `POST /v1/agent/conversations/{id}/handback`.
pub async fn hand_back(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    super::ready(&state)?
        .conversations
        .hand_back(&agent, &id)
        .await?;
    Ok(Json(json!({ "ok": true })))
}

/// `POST /v1/agent/conversations/{id}/resolve`.
pub async fn resolve(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    super::ready(&state)?
        .conversations
        .resolve(&agent, &id)
        .await?;
    Ok(Json(json!({ "ok": true })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// The receiving agent's login name.
    pub agent: String,
}

/// `POST /v1/agent/conversations/{id}/transfer` `{"agent": "name"}`.
pub async fn transfer(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<TransferRequest>,
) -> Result<Json<Value>, ApiError> {
    super::ready(&state)?
        .conversations
        .transfer(&agent, &id, &req.agent)
        .await?;
    Ok(Json(json!({ "ok": true })))
}

/// `GET /v1/agent/canned`: canned replies from the rules file.
pub async fn canned(
    State(state): State<AppState>,
    AgentAuth(_agent): AgentAuth,
) -> Result<Json<Value>, ApiError> {
    let s = super::ready(&state)?;
    Ok(Json(json!({ "canned": s.conversations.canned() })))
}

/// `GET /v1/agent/conversations/{id}/suggestions`: knowledge-base answers for the visitor's last
/// question, for the agent to reuse.
pub async fn suggestions(
    State(state): State<AppState>,
    AgentAuth(_agent): AgentAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = super::ready(&state)?;
    let Some((question, r)) = s.conversations.suggestions(&id).await? else {
        return Ok(Json(json!({ "question": null, "suggestions": [] })));
    };
    let hits: Vec<Value> = r
        .hits
        .iter()
        .take(3)
        .map(|h| json!({ "id": h.id, "question": h.question, "answer": h.answer, "score": h.score, "source": h.source }))
        .collect();
    Ok(Json(
        json!({ "question": question, "band": r.band, "suggestions": hits }),
    ))
}
