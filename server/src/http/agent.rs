//! Agent console endpoints: login and logout, the queue, presence, transcript with route traces,
//! claim, transfer, hand back, resolve, canned replies and knowledge suggestions.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use kefu_protocol::ConversationState;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{bearer, AgentAuth};
use super::error::ApiError;
use super::extract::ApiJson;
use crate::handoff::context::Transcript;
use crate::state::AppState;
use crate::store::rfc3339;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub name: String,
    pub password: String,
}

/// A signed-in staff account.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountInfo {
    pub name: String,
    pub display_name: String,
    pub capacity: u32,
    /// `agent` or `admin`.
    #[schema(value_type = String)]
    pub role: crate::store::Role,
}

impl From<&crate::store::Agent> for AccountInfo {
    fn from(a: &crate::store::Agent) -> Self {
        Self {
            name: a.name.clone(),
            display_name: a.display_name.clone(),
            capacity: a.capacity,
            role: a.role,
        }
    }
}

/// An agent's session token.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub token: String,
    pub agent: AccountInfo,
    /// RFC 3339.
    pub expires_at: String,
}

/// `POST /v1/agent/login`: an agent token for name + password.
#[utoipa::path(post, path = "/v1/agent/login", tag = "agent", request_body = LoginRequest,
    responses((status = 200, description = "signed in", body = LoginResponse)))]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let s = super::ready(&state)?;
    let client = state.client_ip(peer.ip(), &headers);
    if state.login_limiter.check_key(&client).is_err() {
        return Err(ApiError::rate_limited());
    }
    let (agent, token) = s.accounts.login(&req.name, &req.password).await?;
    Ok(Json(LoginResponse {
        token: token.token,
        agent: (&agent).into(),
        expires_at: rfc3339(token.expires_at),
    }))
}

/// `POST /v1/agent/logout`: revokes the token the request carries.
#[utoipa::path(post, path = "/v1/agent/logout", tag = "agent", security(("bearer" = [])),
    responses((status = 204, description = "signed out")))]
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Comma-separated states (default `queued,agent`).
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Conversations, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationList {
    /// Console summaries (id, state, visitor, last message, agent, waiting since).
    #[schema(value_type = Vec<Object>)]
    pub conversations: Vec<kefu_protocol::ConversationSummary>,
}

/// `GET /v1/agent/conversations?state=queued,agent`.
#[utoipa::path(get, path = "/v1/agent/conversations", tag = "agent", security(("bearer" = [])),
    params(ListQuery), responses((status = 200, description = "the queue", body = ConversationList)))]
pub async fn list(
    State(state): State<AppState>,
    AgentAuth(_agent): AgentAuth,
    Query(q): Query<ListQuery>,
) -> Result<Json<ConversationList>, ApiError> {
    let s = super::ready(&state)?;
    let states = parse_states(q.state.as_deref().unwrap_or("queued,agent"))?;
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    let conversations = s.conversations.list(&states, limit).await?;
    Ok(Json(ConversationList { conversations }))
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

/// An agent with load and presence.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentLoad {
    pub name: String,
    pub display_name: String,
    /// Conversations the agent owns now.
    pub active: u32,
    pub capacity: u32,
    pub online: bool,
    /// `agent` or `admin`.
    #[schema(value_type = String)]
    pub role: crate::store::Role,
}

/// Every agent with load, presence and role.
pub async fn agent_loads(state: &AppState) -> Result<Vec<AgentLoad>, ApiError> {
    let s = super::ready(state)?;
    Ok(s.conversations
        .agents_with_load()
        .await?
        .into_iter()
        .map(|a| AgentLoad {
            role: a.role,
            online: a.online,
            name: a.presence.name,
            display_name: a.presence.display_name,
            active: a.presence.active,
            capacity: a.presence.capacity,
        })
        .collect())
}

/// The agents, and who asks.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentsResponse {
    pub me: String,
    pub agents: Vec<AgentLoad>,
}

/// `GET /v1/agent/agents`: every agent, with load and whether online.
#[utoipa::path(get, path = "/v1/agent/agents", tag = "agent", security(("bearer" = [])),
    responses((status = 200, description = "agents with load and presence", body = AgentsResponse)))]
pub async fn agents(
    State(state): State<AppState>,
    AgentAuth(me): AgentAuth,
) -> Result<Json<AgentsResponse>, ApiError> {
    let agents = agent_loads(&state).await?;
    Ok(Json(AgentsResponse {
        me: me.name,
        agents,
    }))
}

/// Done.
#[derive(Debug, Serialize, ToSchema)]
pub struct OkBody {
    pub ok: bool,
}

const OK: OkBody = OkBody { ok: true };

/// `GET /v1/agent/conversations/{id}`: the conversation and its whole transcript with traces.
#[utoipa::path(get, path = "/v1/agent/conversations/{id}", tag = "agent", security(("bearer" = [])),
    params(("id" = String, Path, description = "conversation id")),
    responses((status = 200, description = "summary, messages with route traces, rating", body = Object)))]
pub async fn transcript(
    State(state): State<AppState>,
    AgentAuth(_agent): AgentAuth,
    Path(id): Path<String>,
) -> Result<Json<Transcript>, ApiError> {
    let s = super::ready(&state)?;
    Ok(Json(s.conversations.transcript(&id).await?))
}

/// `POST /v1/agent/conversations/{id}/claim`.
#[utoipa::path(post, path = "/v1/agent/conversations/{id}/claim", tag = "agent", security(("bearer" = [])),
    params(("id" = String, Path, description = "conversation id")),
    responses((status = 200, description = "claims it (queued, or taken over)", body = OkBody)))]
pub async fn claim(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    Path(id): Path<String>,
) -> Result<Json<OkBody>, ApiError> {
    super::ready(&state)?
        .conversations
        .claim(&agent, &id)
        .await?;
    Ok(Json(OK))
}

/// `POST /v1/agent/conversations/{id}/messages` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// May be empty when `attachments` are sent.
    #[serde(default)]
    pub text: String,
    /// Makes retries safe: the same id never creates a second message. Generated when absent.
    #[serde(default)]
    pub client_msg_id: Option<String>,
    /// Ids of files uploaded to the conversation (`POST /v1/conversations/{id}/attachments`).
    #[serde(default)]
    pub attachments: Vec<String>,
}

/// A committed message.
#[derive(Debug, Serialize, ToSchema)]
pub struct SentMessage {
    pub conversation_id: String,
    pub seq: u64,
    pub client_msg_id: String,
}

/// `POST /v1/agent/conversations/{id}/messages`: an agent's reply without a console socket
/// (integrations, scripts). The agent must own the conversation, as on the WebSocket.
#[utoipa::path(post, path = "/v1/agent/conversations/{id}/messages", tag = "agent", security(("bearer" = [])),
    params(("id" = String, Path, description = "conversation id")), request_body = SendRequest,
    responses((status = 201, description = "committed (a repeated client_msg_id returns the first)", body = SentMessage)))]
pub async fn send_message(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SendRequest>,
) -> Result<(StatusCode, Json<SentMessage>), ApiError> {
    let services = super::ready(&state)?;
    let client_msg_id = match req.client_msg_id {
        Some(c) => c,
        None => crate::store::new_id("api-"),
    };
    kefu_protocol::validate_message_with(&client_msg_id, &req.text, &req.attachments)?;
    let m = services
        .conversations
        .agent_send(&agent, &id, &client_msg_id, &req.text, &req.attachments)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(SentMessage {
            conversation_id: id,
            seq: m.seq,
            client_msg_id,
        }),
    ))
}

/// `POST /v1/agent/conversations/{id}/handback`.
#[utoipa::path(post, path = "/v1/agent/conversations/{id}/handback", tag = "agent", security(("bearer" = [])),
    params(("id" = String, Path, description = "conversation id")),
    responses((status = 200, description = "hands it back to the bot", body = OkBody)))]
pub async fn hand_back(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    Path(id): Path<String>,
) -> Result<Json<OkBody>, ApiError> {
    super::ready(&state)?
        .conversations
        .hand_back(&agent, &id)
        .await?;
    Ok(Json(OK))
}

/// `POST /v1/agent/conversations/{id}/resolve`.
#[utoipa::path(post, path = "/v1/agent/conversations/{id}/resolve", tag = "agent", security(("bearer" = [])),
    params(("id" = String, Path, description = "conversation id")),
    responses((status = 200, description = "resolves it", body = OkBody)))]
pub async fn resolve(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    Path(id): Path<String>,
) -> Result<Json<OkBody>, ApiError> {
    super::ready(&state)?
        .conversations
        .resolve(&agent, &id)
        .await?;
    Ok(Json(OK))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// The receiving agent's login name.
    pub agent: String,
}

/// `POST /v1/agent/conversations/{id}/transfer` `{"agent": "name"}`.
#[utoipa::path(post, path = "/v1/agent/conversations/{id}/transfer", tag = "agent", security(("bearer" = [])),
    params(("id" = String, Path, description = "conversation id")), request_body = TransferRequest,
    responses((status = 200, description = "transferred", body = OkBody)))]
pub async fn transfer(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<TransferRequest>,
) -> Result<Json<OkBody>, ApiError> {
    super::ready(&state)?
        .conversations
        .transfer(&agent, &id, &req.agent)
        .await?;
    Ok(Json(OK))
}

/// Canned replies.
#[derive(Debug, Serialize, ToSchema)]
pub struct CannedList {
    /// `{"title", "text"}` each.
    #[schema(value_type = Vec<Object>)]
    pub canned: Vec<crate::triage::CannedReply>,
}

/// `GET /v1/agent/canned`: canned replies from the rules file.
#[utoipa::path(get, path = "/v1/agent/canned", tag = "agent", security(("bearer" = [])),
    responses((status = 200, description = "canned replies", body = CannedList)))]
pub async fn canned(
    State(state): State<AppState>,
    AgentAuth(_agent): AgentAuth,
) -> Result<Json<CannedList>, ApiError> {
    let s = super::ready(&state)?;
    Ok(Json(CannedList {
        canned: s.conversations.canned(),
    }))
}

/// One knowledge-base answer offered to the agent.
#[derive(Debug, Serialize, ToSchema)]
pub struct Suggestion {
    pub id: String,
    pub question: String,
    pub answer: String,
    pub score: f32,
    pub source: String,
}

/// Knowledge-base answers for the visitor's last question.
#[derive(Debug, Serialize, ToSchema)]
pub struct Suggestions {
    /// The visitor's last question (none before the visitor wrote).
    pub question: Option<String>,
    /// `answer`, `suggest` or `none`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub band: Option<String>,
    pub suggestions: Vec<Suggestion>,
}

/// `GET /v1/agent/conversations/{id}/suggestions`: knowledge-base answers for the visitor's last
/// question, for the agent to reuse.
#[utoipa::path(get, path = "/v1/agent/conversations/{id}/suggestions", tag = "agent", security(("bearer" = [])),
    params(("id" = String, Path, description = "conversation id")),
    responses((status = 200, description = "the best three hits", body = Suggestions)))]
pub async fn suggestions(
    State(state): State<AppState>,
    AgentAuth(_agent): AgentAuth,
    Path(id): Path<String>,
) -> Result<Json<Suggestions>, ApiError> {
    let s = super::ready(&state)?;
    let Some((question, r)) = s.conversations.suggestions(&id).await? else {
        return Ok(Json(Suggestions {
            question: None,
            band: None,
            suggestions: vec![],
        }));
    };
    let suggestions = r
        .hits
        .iter()
        .take(3)
        .map(|h| Suggestion {
            id: h.id.clone(),
            question: h.question.clone(),
            answer: h.answer.clone(),
            score: h.score,
            source: h.source.clone(),
        })
        .collect();
    Ok(Json(Suggestions {
        question: Some(question),
        band: Some(r.band.as_str().to_string()),
        suggestions,
    }))
}
