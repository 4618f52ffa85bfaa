//! Visitor endpoints: start a session (site key, optional verified identity) and conversations.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use kefu_protocol::{Message, MAX_HISTORY_LIMIT};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{origin_allowed, AnyAuth, VisitorAuth};
use super::json::ApiJson;
use crate::auth::{new_token, token_hash, verify_identity, Principal, VISITOR_TOKEN_TTL_MS};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{now_ms, rfc3339, TokenKind, TokenRecord};

/// Longest user id and display name accepted.
pub const MAX_USER_ID_BYTES: usize = 128;
pub const MAX_NAME_CHARS: usize = 64;

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
    if state.session_limiter.check_key(&peer.ip()).is_err() {
        return Err(ApiError::rate_limited());
    }
    let store = services.conversations.store();
    let site = store.site(&req.site_key).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_site",
            "no site with this key",
        )
    })?;
    if !origin_allowed(&headers, Some(&site)) {
        return Err(ApiError::forbidden(
            "origin_not_allowed",
            "this page's origin is not on the site's allow-list",
        ));
    }
    if let Some(name) = &req.name {
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(ApiError::bad_request(
                "invalid_input",
                format!("name exceeds {MAX_NAME_CHARS} characters"),
            ));
        }
    }
    let verified_id = match (&req.user_id, &req.user_hash) {
        (Some(id), _) if id.is_empty() || id.len() > MAX_USER_ID_BYTES => {
            return Err(ApiError::bad_request(
                "invalid_input",
                format!("user_id must be 1-{MAX_USER_ID_BYTES} bytes"),
            ))
        }
        (Some(id), Some(hash)) => {
            let ok = site
                .identity_secret
                .as_deref()
                .is_some_and(|secret| verify_identity(secret, id, hash));
            if !ok {
                return Err(ApiError::unauthorized_code(
                    "identity_invalid",
                    "user_hash does not match user_id for this site",
                ));
            }
            Some(id.clone())
        }
        _ if site.enforce_identity => {
            return Err(ApiError::unauthorized_code(
                "identity_required",
                "this site only chats with verified users: send user_id and user_hash",
            ))
        }
        // An unverified user id is only a label: it never links to a verified user's history.
        _ => None,
    };
    let display = req
        .name
        .clone()
        .or_else(|| req.user_id.clone().filter(|_| verified_id.is_none()));
    let visitor = store
        .visitor_for(&site.key, verified_id.as_deref(), display.as_deref())
        .await?;
    let conversation = match store.open_conversation(&visitor.id).await? {
        Some(c) => c,
        None => store.create_conversation(&visitor).await?,
    };
    let token = new_token("kv_").map_err(ApiError::internal)?;
    let expires_at = now_ms() + VISITOR_TOKEN_TTL_MS;
    store
        .insert_token(
            &token_hash(&token),
            &TokenRecord {
                kind: TokenKind::Visitor,
                subject: visitor.id.clone(),
                site_key: Some(site.key.clone()),
                expires_at,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": token,
            "visitor_id": visitor.id,
            "verified": verified_id.is_some(),
            "conversation_id": conversation.id,
            "expires_at": rfc3339(expires_at),
        })),
    ))
}

/// `POST /v1/visitor/conversations`: starts a new conversation (e.g. after one was resolved).
pub async fn create_conversation(
    State(state): State<AppState>,
    VisitorAuth(who): VisitorAuth,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let services = super::ready(&state)?;
    let Principal::Visitor { visitor_id, .. } = who else {
        return Err(ApiError::forbidden("forbidden", "needs a visitor token"));
    };
    let store = services.conversations.store();
    let visitor = store
        .visitor(&visitor_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the visitor no longer exists"))?;
    let c = match store.open_conversation(&visitor.id).await? {
        Some(c) => c,
        None => store.create_conversation(&visitor).await?,
    };
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
        return Err(ApiError::bad_request(
            "invalid_input",
            format!("limit must be 1-{MAX_HISTORY_LIMIT}"),
        ));
    }
    let c = services.conversations.authorize(&who, &id).await?;
    let with_trace = !matches!(who, Principal::Visitor { .. });
    let msgs: Vec<Message> = services
        .conversations
        .store()
        .messages_after(&id, q.after_seq, limit)
        .await?
        .iter()
        .map(|m| m.to_wire(with_trace))
        .collect();
    Ok(Json(json!({
        "conversation_id": id,
        "state": c.state,
        "last_seq": c.last_seq,
        "messages": msgs,
    })))
}
