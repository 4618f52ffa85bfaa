//! Attachment endpoints: upload a file to a conversation (its visitor, or the agent who owns
//! it), serve a file or its thumbnail by an expiring signed link, and the admin API's per-site
//! limits (`attachments`).

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use kefu_protocol::{Attachment, AuthorKind, ConversationState};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{AdminAuth, AnyAuth};
use super::error::ApiError;
use super::extract::ApiJson;
use crate::accounts::Principal;
use crate::attachments::{
    kinds_text, parse_kinds, AttachmentError, SiteLimits, Upload, MAX_BYTES_CEILING,
};
use crate::state::AppState;
use crate::store::LinkPart;

/// `POST /v1/conversations/{id}/attachments` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// The file's name as the sender sees it (`photo.jpg`).
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST /v1/conversations/{id}/attachments?name=…`: uploads one file (the raw bytes as the body)
/// for a message to carry. The file's type is found from its bytes and checked against the
/// site's limits; images get a thumbnail. Send it with `attachments: [id]` in a `send` frame
/// within a day, or it is deleted.
#[utoipa::path(post, path = "/v1/conversations/{id}/attachments", tag = "visitor", security(("bearer" = [])),
    params(("id" = String, Path, description = "conversation id"), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the file's bytes"),
    responses((status = 201, description = "kept; the attachment with expiring links", body = Object)))]
pub async fn upload(
    State(state): State<AppState>,
    AnyAuth(who): AnyAuth,
    Path(id): Path<String>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Attachment>), ApiError> {
    let services = super::ready(&state)?;
    let conversation = services.conversations.authorize(&who, &id).await?;
    if conversation.state == ConversationState::Resolved {
        return Err(crate::conversation::ConversationError::Closed.into());
    }
    let (kind, uploader) = match &who {
        Principal::Visitor { visitor_id, .. } => (AuthorKind::Visitor, visitor_id.clone()),
        Principal::Agent { agent_id } => {
            if conversation.agent_id.as_deref() != Some(agent_id.as_str()) {
                return Err(crate::conversation::ConversationError::NotOwner.into());
            }
            (AuthorKind::Agent, agent_id.clone())
        }
        Principal::Admin => {
            return Err(ApiError::forbidden(
                "files are sent by the conversation's visitor or its agent",
            ))
        }
    };
    let limits = services.attachments.limits(&conversation.site_key).await?;
    let max = limits.max_bytes.min(MAX_BYTES_CEILING);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BYTES_CEILING) {
        return Err(AttachmentError::TooLarge(max).into());
    }
    let bytes = read_within(body, max).await?;
    let name = q.name.unwrap_or_default();
    let attachment = services
        .attachments
        .upload(
            Upload {
                site_key: &conversation.site_key,
                conversation_id: &conversation.id,
                uploader_kind: kind,
                uploader_id: &uploader,
                name: &name,
                bytes,
            },
            &limits,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(attachment)))
}

/// The body, if it is at most `max` bytes. A larger one (up to `MAX_BYTES_CEILING`) is read to
/// its end and dropped, so the client is still reading when `payload_too_large` comes back
/// (answering mid-upload would reset its connection instead).
async fn read_within(body: Body, max: u64) -> Result<Vec<u8>, ApiError> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut total: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::invalid_input(format!("the upload was cut short: {e}")))?;
        total += chunk.len() as u64;
        if total > MAX_BYTES_CEILING {
            break;
        }
        if total <= max {
            kept.extend_from_slice(&chunk);
        }
    }
    if total > max {
        return Err(AttachmentError::TooLarge(max).into());
    }
    Ok(kept)
}

/// A signed link's query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LinkQuery {
    /// Unix seconds after which the link is refused.
    pub exp: i64,
    /// The link's signature.
    pub sig: String,
}

/// `GET /v1/attachments/{id}?exp=…&sig=…`: the file, by the expiring link a message carries.
#[utoipa::path(get, path = "/v1/attachments/{id}", tag = "visitor",
    params(("id" = String, Path, description = "attachment id"), LinkQuery),
    responses((status = 200, description = "the file (images shown inline, other files as downloads)")))]
pub async fn file(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LinkQuery>,
) -> Result<Response, ApiError> {
    serve(&state, &id, LinkPart::File, q).await
}

/// `GET /v1/attachments/{id}/thumbnail?exp=…&sig=…`: an image's JPEG thumbnail (320 px at most).
#[utoipa::path(get, path = "/v1/attachments/{id}/thumbnail", tag = "visitor",
    params(("id" = String, Path, description = "attachment id"), LinkQuery),
    responses((status = 200, description = "the thumbnail (image/jpeg)")))]
pub async fn thumbnail(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LinkQuery>,
) -> Result<Response, ApiError> {
    serve(&state, &id, LinkPart::Thumbnail, q).await
}

async fn serve(
    state: &AppState,
    id: &str,
    part: LinkPart,
    q: LinkQuery,
) -> Result<Response, ApiError> {
    let services = super::ready(state)?;
    let served = services.attachments.open(id, part, q.exp, &q.sig).await?;
    let disposition = format!(
        "{}; filename*=UTF-8''{}",
        if served.inline {
            "inline"
        } else {
            "attachment"
        },
        kefu_protocol::percent_encode(&served.name)
    );
    let mut response = served.bytes.into_response();
    let h = response.headers_mut();
    let value =
        |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("attachment"));
    h.insert(header::CONTENT_TYPE, value(&served.content_type));
    h.insert(header::CONTENT_DISPOSITION, value(&disposition));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    // Whatever the bytes are, nothing in them runs on this origin.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; img-src 'self'; sandbox"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("cross-origin"),
    );
    Ok(response)
}

/// A site's attachment limits.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsBody {
    /// Largest file, in bytes (1 to 52428800).
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Kinds accepted, comma-separated: `image`, `pdf`, `office`, `text`; empty or `none`: off.
    #[serde(default)]
    pub kinds: Option<String>,
}

fn limits_body(l: SiteLimits) -> LimitsBody {
    LimitsBody {
        max_bytes: Some(l.max_bytes),
        kinds: Some(kinds_text(&l.kinds)),
    }
}

/// A site's attachment limits.
#[utoipa::path(get, path = "/v1/admin/sites/{key}/attachments", tag = "admin", security(("bearer" = [])),
    params(("key" = String, Path, description = "site key")),
    responses((status = 200, description = "the limits in force", body = LimitsBody)))]
pub async fn get_limits(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(key): Path<String>,
) -> Result<Json<LimitsBody>, ApiError> {
    let s = super::ready(&state)?;
    Ok(Json(limits_body(s.attachments.limits(&key).await?)))
}

/// Sets a site's attachment limits; a field left out stays as it is.
#[utoipa::path(put, path = "/v1/admin/sites/{key}/attachments", tag = "admin", security(("bearer" = [])),
    params(("key" = String, Path, description = "site key")), request_body = LimitsBody,
    responses((status = 200, description = "the limits now in force", body = LimitsBody)))]
pub async fn set_limits(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<LimitsBody>,
) -> Result<Json<LimitsBody>, ApiError> {
    let s = super::ready(&state)?;
    let kinds = body
        .kinds
        .as_deref()
        .map(parse_kinds)
        .transpose()
        .map_err(ApiError::invalid_input)?;
    let limits = s
        .attachments
        .set_limits(&key, body.max_bytes, kinds.as_deref())
        .await?;
    Ok(Json(limits_body(limits)))
}
