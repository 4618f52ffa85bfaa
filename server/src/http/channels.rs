//! Channel endpoints: the API channel (an integrator posts its users' messages; replies reach it
//! as `message.created` event webhooks) and a WeChat Official Account's server URL (verification
//! and messages, answered in WeChat's XML). The rules are the `channels` service's.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::bearer;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::channels::{Inbound, WechatQuery};
use crate::state::AppState;
use crate::store::{state_str, Channel};

/// `POST /v1/channels/api/{site_key}/messages` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelMessage {
    /// Your id of the user (1-128 bytes): one visitor, one open conversation, per id.
    pub user_id: String,
    pub text: String,
    /// Your id of this message (1-50 bytes): a post repeated with it is committed once.
    #[serde(default)]
    pub message_id: Option<String>,
    /// The name agents see (first message only).
    #[serde(default)]
    pub name: Option<String>,
}

/// A committed channel message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelMessageAccepted {
    pub conversation_id: String,
    pub visitor_id: String,
    pub seq: u64,
    /// Who owns the conversation now: `bot` (its reply follows as a `message.created` event),
    /// `queued` or `agent`.
    pub state: &'static str,
}

/// `POST /v1/channels/api/{site_key}/handoff` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelHandoff {
    pub user_id: String,
}

/// The conversation a handoff request moved.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelConversation {
    pub conversation_id: String,
}

/// Posts a user's message through the API channel (bearer: the site's API channel token, from
/// `kefu site set KEY --api-token`). The bot, the queue and agents answer as on the web; their
/// messages reach you as `message.created` events with `channel: "api"` and your `channel_user`.
#[utoipa::path(post, path = "/v1/channels/api/{site_key}/messages", tag = "channels",
    security(("bearer" = [])), request_body = ChannelMessage,
    params(("site_key" = String, Path, description = "the site")),
    responses((status = 200, description = "committed (or committed before, for a repeated message_id)", body = ChannelMessageAccepted)))]
pub async fn api_message(
    State(state): State<AppState>,
    Path(site_key): Path<String>,
    headers: HeaderMap,
    ApiJson(m): ApiJson<ChannelMessage>,
) -> Result<Json<ChannelMessageAccepted>, ApiError> {
    let s = super::ready(&state)?;
    s.channels
        .check_api_token(&site_key, bearer(&headers))
        .await?;
    if m.message_id
        .as_ref()
        .is_some_and(|id| id.is_empty() || id.len() > 50)
    {
        return Err(ApiError::invalid_input("message_id must be 1-50 bytes"));
    }
    let received = s
        .channels
        .receive(Inbound {
            site_key: &site_key,
            channel: Channel::Api,
            user: &m.user_id,
            name: m.name.as_deref(),
            message_id: m.message_id.as_deref(),
            text: &m.text,
        })
        .await?;
    let c = received.conversation;
    Ok(Json(ChannelMessageAccepted {
        conversation_id: c.id,
        visitor_id: c.visitor_id,
        seq: received.message.seq,
        state: state_str(c.state),
    }))
}

/// The API channel's user asks for a human: the conversation is queued (or assigned) as when a
/// widget visitor asks.
#[utoipa::path(post, path = "/v1/channels/api/{site_key}/handoff", tag = "channels",
    security(("bearer" = [])), request_body = ChannelHandoff,
    params(("site_key" = String, Path, description = "the site")),
    responses((status = 200, description = "handed to a human (or already with one)", body = ChannelConversation)))]
pub async fn api_handoff(
    State(state): State<AppState>,
    Path(site_key): Path<String>,
    headers: HeaderMap,
    ApiJson(h): ApiJson<ChannelHandoff>,
) -> Result<Json<ChannelConversation>, ApiError> {
    let s = super::ready(&state)?;
    s.channels
        .check_api_token(&site_key, bearer(&headers))
        .await?;
    let c = s
        .channels
        .request_human(&site_key, Channel::Api, &h.user_id)
        .await?;
    Ok(Json(ChannelConversation {
        conversation_id: c.id,
    }))
}

/// WeChat's server URL verification: answers `echostr` when the signature is the account's
/// (`kefu site set KEY --wechat-token …`).
#[utoipa::path(get, path = "/v1/channels/wechat/{site_key}", tag = "channels",
    params(("site_key" = String, Path, description = "the site"), WechatQuery),
    responses((status = 200, description = "echostr, as text", body = String)))]
pub async fn wechat_verify(
    State(state): State<AppState>,
    Path(site_key): Path<String>,
    Query(q): Query<WechatQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let s = super::ready(&state)?;
    let echo = s.channels.wechat_verify(&site_key, &q).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], echo))
}

/// A message from a WeChat user, as WeChat posts it (signed query, XML body, plain mode): the
/// bot's passive XML reply when it answers within 4 s, else `success` (later replies, and
/// agents', go out as customer-service messages, which need the app id and secret).
#[utoipa::path(post, path = "/v1/channels/wechat/{site_key}", tag = "channels",
    params(("site_key" = String, Path, description = "the site"), WechatQuery),
    request_body(content = String, content_type = "text/xml"),
    responses((status = 200, description = "a passive reply (XML) or `success`", body = String)))]
pub async fn wechat_message(
    State(state): State<AppState>,
    Path(site_key): Path<String>,
    Query(q): Query<WechatQuery>,
    body: String,
) -> Result<impl IntoResponse, ApiError> {
    let s = super::ready(&state)?;
    let reply = s.channels.wechat_message(&site_key, &q, &body).await?;
    let kind = if reply.starts_with('<') {
        "application/xml; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    Ok(([(header::CONTENT_TYPE, kind)], reply))
}
