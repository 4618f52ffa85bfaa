//! Visitor endpoints: start a session (site key, optional verified identity), conversations and
//! their ratings (CSAT).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use kefu_protocol::{Message, MAX_HISTORY_LIMIT};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{origin, AnyAuth, VisitorAuth};
use super::error::ApiError;
use super::extract::ApiJson;
use crate::accounts::{Principal, SessionRequest as AccountSessionRequest};
use crate::state::AppState;
use crate::store::rfc3339;

/// `POST /v1/visitor/sessions` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    pub site_key: String,
    /// The integrator's user id (verified with `user_hash`).
    #[serde(default)]
    pub user_id: Option<String>,
    /// hex(HMAC-SHA256(site identity secret, user_id)), computed by the integrator's backend.
    #[serde(default)]
    pub user_hash: Option<String>,
    /// A display name shown to agents.
    #[serde(default)]
    pub name: Option<String>,
}

/// A started visitor session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    /// The visitor token (`Authorization: Bearer …`, and the WebSocket `hello`).
    pub token: String,
    pub visitor_id: String,
    /// Whether the identity hash was checked.
    pub verified: bool,
    /// The visitor's open conversation.
    pub conversation_id: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// Creates a visitor session: a token and the visitor's open conversation (new if none).
#[utoipa::path(post, path = "/v1/visitor/sessions", tag = "visitor", request_body = SessionRequest,
    responses((status = 201, description = "session started", body = SessionResponse)))]
pub async fn create_session(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SessionRequest>,
) -> Result<(StatusCode, Json<SessionResponse>), ApiError> {
    let services = super::ready(&state)?;
    let client = state.client_ip(peer.ip(), &headers);
    if state.session_limiter.check_key(&client).is_err() {
        return Err(ApiError::rate_limited());
    }
    let session = services
        .accounts
        .start_visitor_session(AccountSessionRequest {
            site_key: req.site_key,
            origin: origin(&headers).map(str::to_string),
            user_id: req.user_id,
            user_hash: req.user_hash,
            name: req.name,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(SessionResponse {
            token: session.token.token,
            visitor_id: session.visitor.id,
            verified: session.verified,
            conversation_id: session.conversation.id,
            expires_at: rfc3339(session.token.expires_at),
        }),
    ))
}

/// A conversation's id.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationRef {
    pub conversation_id: String,
}

/// `POST /v1/visitor/conversations`: starts a new conversation (e.g. after one was resolved).
#[utoipa::path(post, path = "/v1/visitor/conversations", tag = "visitor", security(("bearer" = [])),
    responses((status = 201, description = "the visitor's open conversation", body = ConversationRef)))]
pub async fn create_conversation(
    State(state): State<AppState>,
    who: VisitorAuth,
) -> Result<(StatusCode, Json<ConversationRef>), ApiError> {
    let services = super::ready(&state)?;
    let c = services
        .accounts
        .visitor_conversation(&who.visitor_id)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ConversationRef {
            conversation_id: c.id,
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MessagesQuery {
    #[serde(default)]
    pub after_seq: u64,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// A page of messages.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagesPage {
    pub conversation_id: String,
    /// `bot`, `queued`, `agent` or `resolved`.
    #[schema(value_type = String)]
    pub state: kefu_protocol::ConversationState,
    pub last_seq: u64,
    /// Messages as the WebSocket `message` frame carries them.
    #[schema(value_type = Vec<Object>)]
    pub messages: Vec<Message>,
}

/// `GET /v1/conversations/{id}/messages?after_seq=N`: messages after a seq (visitors: their own
/// conversations, without route traces; agents and admins: any, with traces).
#[utoipa::path(get, path = "/v1/conversations/{id}/messages", tag = "visitor", security(("bearer" = [])),
    params(("id" = String, Path, description = "conversation id"), MessagesQuery),
    responses((status = 200, description = "messages after `after_seq`", body = MessagesPage)))]
pub async fn messages(
    State(state): State<AppState>,
    AnyAuth(who): AnyAuth,
    Path(id): Path<String>,
    Query(q): Query<MessagesQuery>,
) -> Result<Json<MessagesPage>, ApiError> {
    let services = super::ready(&state)?;
    let limit = q.limit.unwrap_or(MAX_HISTORY_LIMIT);
    if limit == 0 || limit > MAX_HISTORY_LIMIT {
        return Err(ApiError::invalid_input(format!(
            "limit must be 1-{MAX_HISTORY_LIMIT}"
        )));
    }
    let with_trace = !matches!(who, Principal::Visitor { .. });
    let (c, page) = services
        .conversations
        .messages_after(&who, &id, q.after_seq, limit)
        .await?;
    let msgs: Vec<Message> = page.iter().map(|m| m.to_wire(with_trace)).collect();
    Ok(Json(MessagesPage {
        conversation_id: id,
        state: c.state,
        last_seq: c.last_seq,
        messages: msgs,
    }))
}

/// Longest rating comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 1000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatingRequest {
    /// 1 (poor) to 5 (excellent).
    #[schema(minimum = 1, maximum = 5)]
    pub score: u8,
    #[serde(default)]
    pub comment: Option<String>,
}

/// A conversation's rating.
#[derive(Debug, Serialize, ToSchema)]
pub struct RatingResponse {
    pub conversation_id: String,
    pub rating: crate::store::Rating,
}

/// `POST /v1/conversations/{id}/rating` (the visitor's own conversation): CSAT, 1–5 with an
/// optional comment; rating again replaces the earlier rating.
#[utoipa::path(post, path = "/v1/conversations/{id}/rating", tag = "visitor", security(("bearer" = [])),
    params(("id" = String, Path, description = "conversation id")), request_body = RatingRequest,
    responses((status = 200, description = "the rating recorded", body = RatingResponse)))]
pub async fn rate(
    State(state): State<AppState>,
    AnyAuth(who): AnyAuth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RatingRequest>,
) -> Result<Json<RatingResponse>, ApiError> {
    let s = super::ready(&state)?;
    if !(1..=5).contains(&req.score) {
        return Err(ApiError::invalid_input("score must be 1-5"));
    }
    let comment = req
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    if comment.is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS) {
        return Err(ApiError::invalid_input(format!(
            "comments have at most {MAX_COMMENT_CHARS} characters"
        )));
    }
    let rating = s.conversations.rate(&who, &id, req.score, comment).await?;
    Ok(Json(RatingResponse {
        conversation_id: id,
        rating,
    }))
}
