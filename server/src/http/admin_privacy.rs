//! The admin API's data retention and erasure: erase one visitor, set a site's retention, and
//! read the audit log. The rules are the `privacy` service's.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::AdminAuth;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::privacy::{Erasure, VisitorRef};
use crate::state::AppState;
use crate::store::{AuditEntry, Channel};

/// Who the admin API's changes are recorded as in the audit log.
const ACTOR: &str = "admin-api";

/// Whom to erase: `visitor_id`, or `user_id` on a `channel` (default `web`: the verified user id).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    pub site_key: String,
    #[serde(default)]
    pub visitor_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    /// `web`, `api` or `wechat`.
    #[serde(default)]
    pub channel: Option<String>,
}

/// A site's retention.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Days after a conversation's last activity before it is deleted; 0 keeps everything.
    pub days: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLog {
    pub entries: Vec<AuditEntry>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Most entries, newest first (1-1000, default 100).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Parses whom an erasure request names.
fn visitor_ref(r: &EraseRequest) -> Result<VisitorRef, ApiError> {
    match (&r.visitor_id, &r.user_id) {
        (Some(id), None) if r.channel.is_none() => Ok(VisitorRef::Id(id.clone())),
        (None, Some(user_id)) => {
            let channel = match r.channel.as_deref() {
                None => Channel::Web,
                Some(c) => Channel::parse(c).ok_or_else(|| {
                    ApiError::invalid_input("channel is one of `web`, `api`, `wechat`")
                })?,
            };
            Ok(VisitorRef::User {
                channel,
                user_id: user_id.clone(),
            })
        }
        _ => Err(ApiError::invalid_input(
            "name the visitor by `visitor_id`, or by `user_id` (with `channel` for api or wechat)",
        )),
    }
}

/// Erases one visitor: conversations, messages, ratings, undelivered deliveries, tokens,
/// training history and mined proposals' examples; recorded in the audit log.
#[utoipa::path(post, path = "/v1/admin/visitors/erase", tag = "admin", security(("bearer" = [])),
    request_body = EraseRequest,
    responses((status = 200, description = "what was erased", body = Erasure)))]
pub async fn erase(
    State(state): State<AppState>,
    _: AdminAuth,
    ApiJson(r): ApiJson<EraseRequest>,
) -> Result<Json<Erasure>, ApiError> {
    let s = super::ready(&state)?;
    let who = visitor_ref(&r)?;
    Ok(Json(s.privacy.erase(&r.site_key, &who, ACTOR).await?))
}

/// A site's retention.
#[utoipa::path(get, path = "/v1/admin/sites/{key}/retention", tag = "admin", security(("bearer" = [])),
    params(("key" = String, Path, description = "site key")),
    responses((status = 200, description = "the retention in force", body = Retention)))]
pub async fn get_retention(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(key): Path<String>,
) -> Result<Json<Retention>, ApiError> {
    let s = super::ready(&state)?;
    Ok(Json(Retention {
        days: s.privacy.retention(&key).await?,
    }))
}

/// Sets a site's retention: conversations idle longer are deleted (every hour).
#[utoipa::path(put, path = "/v1/admin/sites/{key}/retention", tag = "admin", security(("bearer" = [])),
    params(("key" = String, Path, description = "site key")), request_body = Retention,
    responses((status = 200, description = "set", body = Retention)))]
pub async fn set_retention(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(key): Path<String>,
    ApiJson(r): ApiJson<Retention>,
) -> Result<Json<Retention>, ApiError> {
    let s = super::ready(&state)?;
    s.privacy.set_retention(&key, r.days, ACTOR).await?;
    Ok(Json(r))
}

/// The audit log: erasures, retention runs and retention changes, newest first.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "admin", security(("bearer" = [])),
    params(AuditQuery), responses((status = 200, description = "entries", body = AuditLog)))]
pub async fn audit(
    State(state): State<AppState>,
    _: AdminAuth,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditLog>, ApiError> {
    let s = super::ready(&state)?;
    Ok(Json(AuditLog {
        entries: s.privacy.audit_log(q.limit.unwrap_or(100)).await?,
    }))
}
