//! Visitor endpoints: start a session (site key, optional verified identity), conversations and
//! their ratings (CSAT).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use kefu_protocol::{Message, MAX_HISTORY_LIMIT};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{origin, AnyAuth, VisitorAuth};
use super::error::ApiError;
use super::extract::ApiJson;
use crate::accounts::{Principal, SessionRequest as AccountSessionRequest};
use crate::state::AppState;
use crate::store::rfc3339;

/// `POST /v1/visitor/sessions` body.
#[derive(Debug, Deserialize)]
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

/// Creates a visitor session: a token and the visitor's open conversation (new if none).
pub async fn create_session(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SessionRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
        Json(json!({
            "token": session.token.token,
            "visitor_id": session.visitor.id,
            "verified": session.verified,
            "conversation_id": session.conversation.id,
            "expires_at": rfc3339(session.token.expires_at),
        })),
    ))
}

/// `POST /v1/visitor/conversations`: starts a new conversation (e.g. after one was resolved).
pub async fn create_conversation(
    State(state): State<AppState>,
    who: VisitorAuth,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let services = super::ready(&state)?;
    let c = services
        .accounts
        .visitor_conversation(&who.visitor_id)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "conversation_id": c.id })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagesQuery {
    #[serde(default)]
    pub after_seq: u64,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `GET /v1/conversations/{id}/messages?after_seq=N`: messages after a seq (visitors: their own
/// conversations, without route traces; agents and admins: any, with traces).
pub async fn messages(
    State(state): State<AppState>,
    AnyAuth(who): AnyAuth,
    Path(id): Path<String>,
    Query(q): Query<MessagesQuery>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({
        "conversation_id": id,
        "state": c.state,
        "last_seq": c.last_seq,
        "messages": msgs,
    })))
}

/// Longest rating comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingRequest {
    /// 1 (poor) to 5 (excellent).
    pub score: u8,
    #[serde(default)]
    pub comment: Option<String>,
}

/// `POST /v1/conversations/{id}/rating` (the visitor's own conversation): CSAT, 1–5 with an
/// optional comment; rating again replaces the earlier rating.
pub async fn rate(
    State(state): State<AppState>,
    AnyAuth(who): AnyAuth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RatingRequest>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({ "conversation_id": id, "rating": rating })))
}
