//! Agent console endpoints: login, the queue, presence, transcript with route traces, claim,
//! transfer, hand back, resolve, canned replies and knowledge suggestions.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use kefu_protocol::{ConversationState, Message};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::AgentAuth;
use super::json::ApiJson;
use crate::auth::{new_token, token_hash, verify_password, AGENT_TOKEN_TTL_MS};
use crate::error::ApiError;
use crate::state::{AppState, Services};
use crate::store::{now_ms, rfc3339, TokenKind, TokenRecord};

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
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<Value>, ApiError> {
    let s = super::ready(&state)?;
    if state.session_limiter.check_key(&peer.ip()).is_err() {
        return Err(ApiError::rate_limited());
    }
    let store = s.conversations.store();
    let agent = store.agent_by_name(&req.name).await?;
    let password = req.password.clone();
    // Verify even for unknown names so timing does not reveal which names exist.
    let phc = agent
        .as_ref()
        .map(|a| a.password_hash.clone())
        .unwrap_or_else(|| dummy_hash().to_string());
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .unwrap_or(false);
    let Some(agent) = agent.filter(|_| ok) else {
        return Err(ApiError::unauthorized_code(
            "invalid_credentials",
            "wrong agent name or password",
        ));
    };
    let token = new_token("ka_").map_err(|e| {
        tracing::error!(error = %e, "token");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error",
        )
    })?;
    let expires_at = now_ms() + AGENT_TOKEN_TTL_MS;
    store
        .insert_token(
            &token_hash(&token),
            &TokenRecord {
                kind: TokenKind::Agent,
                subject: agent.id.clone(),
                site_key: None,
                expires_at,
            },
        )
        .await?;
    Ok(Json(json!({
        "token": token,
        "agent": { "name": agent.name, "display_name": agent.display_name, "capacity": agent.capacity },
        "expires_at": rfc3339(expires_at),
    })))
}

/// A real Argon2id hash of a random password, verified against for unknown agent names.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        crate::auth::new_password()
            .and_then(|p| crate::auth::hash_password(&p))
            .unwrap_or_default()
    })
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
            other => Err(ApiError::bad_request(
                "invalid_input",
                format!("unknown state `{other}` (bot, queued, agent, resolved)"),
            )),
        })
        .collect()
}

/// `GET /v1/agent/agents`: every agent, with load and whether online.
pub async fn agents(
    State(state): State<AppState>,
    AgentAuth(me): AgentAuth,
) -> Result<Json<Value>, ApiError> {
    let s = super::ready(&state)?;
    let all = s.conversations.presence().await?;
    let agents: Vec<Value> = all
        .into_iter()
        .map(|(a, online)| {
            json!({ "name": a.name, "display_name": a.display_name, "active": a.active,
                    "capacity": a.capacity, "online": online })
        })
        .collect();
    Ok(Json(json!({ "me": me.name, "agents": agents })))
}

/// `GET /v1/agent/conversations/{id}`: the conversation and its whole transcript with traces.
pub async fn transcript(
    State(state): State<AppState>,
    AgentAuth(_agent): AgentAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = super::ready(&state)?;
    transcript_json(&s, &id).await.map(Json)
}

/// A conversation's summary and whole transcript, with route traces.
pub async fn transcript_json(s: &Services, id: &str) -> Result<Value, ApiError> {
    let id = id.to_string();
    let summary = s.conversations.summary(&id).await?.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "conversation not found")
    })?;
    let mut messages: Vec<Message> = Vec::new();
    let mut after = 0;
    loop {
        let page = s
            .conversations
            .store()
            .messages_after(&id, after, 500)
            .await?;
        let done = page.len() < 500;
        for m in &page {
            after = m.seq;
            messages.push(m.to_wire(true));
        }
        if done || messages.len() >= 5000 {
            break;
        }
    }
    Ok(json!({ "conversation": summary, "messages": messages }))
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
        None => new_token("api-")
            .map_err(ApiError::internal)?
            .chars()
            .take(36)
            .collect(),
    };
    kefu_protocol::validate_message(&client_msg_id, &req.text).map_err(|e| {
        if e.code == kefu_protocol::ErrorCode::TooLarge {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.message)
        } else {
            ApiError::bad_request("invalid_input", e.message)
        }
    })?;
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
    Ok(Json(
        json!({ "canned": s.conversations.triage().rules.canned() }),
    ))
}

/// `GET /v1/agent/conversations/{id}/suggestions`: knowledge-base answers for the visitor's last
/// question, for the agent to reuse.
pub async fn suggestions(
    State(state): State<AppState>,
    AgentAuth(_agent): AgentAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = super::ready(&state)?;
    let store = s.conversations.store();
    if store.conversation(&id).await?.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "conversation not found",
        ));
    }
    let Some(question) = store.last_visitor_text(&id).await? else {
        return Ok(Json(json!({ "question": null, "suggestions": [] })));
    };
    let kb = s.conversations.triage().kb.clone();
    let r = s.conversations.retriever().retrieve(&kb, &question).await?;
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
