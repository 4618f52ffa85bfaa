//! The admin API's business hours of a site: read (with whether it is open now), set, remove.

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::AdminAuth;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::hours::{BusinessHours, Openness};
use crate::state::AppState;

/// A site's business hours and whether it is open now.
#[derive(Debug, Serialize, ToSchema)]
pub struct HoursView {
    /// None: always open.
    pub hours: Option<BusinessHours>,
    pub open_now: bool,
    /// When agents are back (RFC 3339 with the site's offset), while closed.
    pub reopens_at: Option<String>,
}

fn view(hours: Option<BusinessHours>) -> Result<HoursView, ApiError> {
    let openness = match &hours {
        None => Openness::Open,
        Some(h) => h
            .schedule()
            .map_err(ApiError::internal)?
            .at(crate::store::now_ms()),
    };
    let (open_now, reopens_at) = match openness {
        Openness::Open => (true, None),
        Openness::Closed { reopens } => (
            false,
            reopens.map(|z| z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()),
        ),
    };
    Ok(HoursView {
        hours,
        open_now,
        reopens_at,
    })
}

/// A site's business hours.
#[utoipa::path(get, path = "/v1/admin/sites/{key}/hours", tag = "admin", security(("bearer" = [])),
    params(("key" = String, Path, description = "site key")),
    responses((status = 200, description = "the hours", body = HoursView)))]
pub async fn get(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(key): Path<String>,
) -> Result<Json<HoursView>, ApiError> {
    let s = super::ready(&state)?;
    Ok(Json(view(s.accounts.business_hours(&key).await?)?))
}

/// Sets a site's business hours: `{"time_zone": "Asia/Shanghai", "weekly": "mon-fri
/// 09:00-18:00; sat 10:00-14:00", "holidays": ["2026-10-01"]}`. Outside them a visitor who asks
/// for a human leaves an offline message and is told when agents are back.
#[utoipa::path(put, path = "/v1/admin/sites/{key}/hours", tag = "admin", security(("bearer" = [])),
    params(("key" = String, Path, description = "site key")), request_body = BusinessHours,
    responses((status = 200, description = "set", body = HoursView)))]
pub async fn set(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(key): Path<String>,
    ApiJson(hours): ApiJson<BusinessHours>,
) -> Result<Json<HoursView>, ApiError> {
    let s = super::ready(&state)?;
    s.accounts.set_business_hours(&key, Some(&hours)).await?;
    Ok(Json(view(Some(hours))?))
}

/// Removes a site's business hours (always open).
#[utoipa::path(delete, path = "/v1/admin/sites/{key}/hours", tag = "admin", security(("bearer" = [])),
    params(("key" = String, Path, description = "site key")),
    responses((status = 200, description = "removed", body = HoursView)))]
pub async fn remove(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(key): Path<String>,
) -> Result<Json<HoursView>, ApiError> {
    let s = super::ready(&state)?;
    s.accounts.set_business_hours(&key, None).await?;
    Ok(Json(view(None)?))
}
