//! The admin API's API keys for scripts: list them by name, issue one (shown once), revoke a
//! name's keys. Operators sign in with their account; keys are for machines (`kefu admin-key`
//! issues them on the server's shell too).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::admin::Revoked;
use super::auth::AdminAuth;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::state::AppState;
use crate::store::AdminKey;

#[derive(Debug, Serialize, ToSchema)]
pub struct AdminKeyList {
    pub keys: Vec<AdminKey>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAdminKey {
    /// Letters, digits, `-`, `_`, `.` (1-64), e.g. `crm-sync`.
    pub name: String,
}

/// A new key: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedKey {
    pub name: String,
    pub key: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

/// `GET /v1/admin/keys`: the admin API keys in force, by name (never the keys).
#[utoipa::path(get, path = "/v1/admin/keys", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "keys by name", body = AdminKeyList)))]
pub async fn list(
    State(state): State<AppState>,
    _: AdminAuth,
) -> Result<Json<AdminKeyList>, ApiError> {
    let s = super::ready(&state)?;
    Ok(Json(AdminKeyList {
        keys: s.accounts.admin_keys().await?,
    }))
}

/// `POST /v1/admin/keys {"name"}`: issues a key → `201 {"name", "key", "expires_at"}`.
#[utoipa::path(post, path = "/v1/admin/keys", tag = "admin", security(("bearer" = [])),
    request_body = NewAdminKey, responses((status = 201, description = "issued (the key is shown once)", body = IssuedKey)))]
pub async fn create(
    State(state): State<AppState>,
    _: AdminAuth,
    ApiJson(req): ApiJson<NewAdminKey>,
) -> Result<(StatusCode, Json<IssuedKey>), ApiError> {
    let s = super::ready(&state)?;
    let issued = s.accounts.create_admin_key(&req.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedKey {
            name: req.name.trim().to_string(),
            key: issued.token,
            expires_at: issued.expires_at,
        }),
    ))
}

/// `POST /v1/admin/keys/{name}/revoke`: revokes every key with this name (`not_found` if none).
#[utoipa::path(post, path = "/v1/admin/keys/{name}/revoke", tag = "admin", security(("bearer" = [])),
    params(("name" = String, Path, description = "key name")),
    responses((status = 200, description = "revoked", body = Revoked)))]
pub async fn revoke(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(name): Path<String>,
) -> Result<Json<Revoked>, ApiError> {
    let s = super::ready(&state)?;
    let revoked = s.accounts.revoke_admin_keys(&name).await?;
    Ok(Json(Revoked { revoked }))
}
