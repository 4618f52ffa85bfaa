//! The admin API's event webhook endpoints: list, add (the signing secret shown once), remove,
//! rotate the secret, enable again, and an endpoint's delivery log.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::AdminAuth;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::state::AppState;
use crate::webhooks::{DeliveryView, EndpointView, EndpointWithSecret};

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    pub endpoints: Vec<EndpointView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EndpointsQuery {
    /// Only this site's endpoints.
    #[serde(default)]
    pub site: Option<String>,
}

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    pub site_key: String,
    /// `https://…` (`http://` only to this machine).
    pub url: String,
    /// Event types (`conversation.created`, `message.created`, `conversation.queued`,
    /// `conversation.assigned`, `conversation.resolved`, `csat.submitted`, `kb.gap`); omitted, empty or
    /// `["*"]`: every event.
    #[serde(default)]
    pub events: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Removed {
    pub id: String,
    pub removed: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Most deliveries returned, newest first (1-500, default 100).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `GET /v1/admin/webhooks?site=…`: the event webhook endpoints (never their secrets).
#[utoipa::path(get, path = "/v1/admin/webhooks", tag = "admin", security(("bearer" = [])),
    params(EndpointsQuery), responses((status = 200, description = "endpoints", body = EndpointList)))]
pub async fn list(
    State(state): State<AppState>,
    _: AdminAuth,
    Query(q): Query<EndpointsQuery>,
) -> Result<Json<EndpointList>, ApiError> {
    let s = super::ready(&state)?;
    Ok(Json(EndpointList {
        endpoints: s.webhooks.list(q.site.as_deref()).await?,
    }))
}

/// `POST /v1/admin/webhooks {"site_key", "url", "events"}` → `201` with the signing secret,
/// shown this once.
#[utoipa::path(post, path = "/v1/admin/webhooks", tag = "admin", security(("bearer" = [])),
    request_body = NewEndpoint, responses((status = 201, description = "added (the secret is shown once)", body = EndpointWithSecret)))]
pub async fn create(
    State(state): State<AppState>,
    _: AdminAuth,
    ApiJson(req): ApiJson<NewEndpoint>,
) -> Result<(StatusCode, Json<EndpointWithSecret>), ApiError> {
    let s = super::ready(&state)?;
    let added = s.webhooks.add(&req.site_key, &req.url, &req.events).await?;
    Ok((StatusCode::CREATED, Json(added)))
}

/// `DELETE /v1/admin/webhooks/{id}`: removes an endpoint; its pending deliveries are dropped.
#[utoipa::path(delete, path = "/v1/admin/webhooks/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "endpoint id")),
    responses((status = 200, description = "removed", body = Removed)))]
pub async fn remove(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<Removed>, ApiError> {
    let s = super::ready(&state)?;
    s.webhooks.remove(&id).await?;
    Ok(Json(Removed { id, removed: true }))
}

/// `POST /v1/admin/webhooks/{id}/rotate`: a new signing secret (shown once); the old one signs
/// too for 24 hours, so receivers can switch without losing a delivery.
#[utoipa::path(post, path = "/v1/admin/webhooks/{id}/rotate", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "endpoint id")),
    responses((status = 200, description = "rotated (the new secret is shown once)", body = EndpointWithSecret)))]
pub async fn rotate(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<EndpointWithSecret>, ApiError> {
    let s = super::ready(&state)?;
    Ok(Json(s.webhooks.rotate(&id).await?))
}

/// `POST /v1/admin/webhooks/{id}/enable`: enables an endpoint disabled after repeated failures;
/// the deliveries that waited go out.
#[utoipa::path(post, path = "/v1/admin/webhooks/{id}/enable", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "endpoint id")),
    responses((status = 200, description = "enabled", body = EndpointView)))]
pub async fn enable(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<EndpointView>, ApiError> {
    let s = super::ready(&state)?;
    Ok(Json(s.webhooks.enable(&id).await?))
}

/// `GET /v1/admin/webhooks/{id}/deliveries?limit=N`: the endpoint's delivery log.
#[utoipa::path(get, path = "/v1/admin/webhooks/{id}/deliveries", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "endpoint id"), DeliveriesQuery),
    responses((status = 200, description = "newest first", body = DeliveryList)))]
pub async fn deliveries(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(id): Path<String>,
    Query(q): Query<DeliveriesQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    let s = super::ready(&state)?;
    let deliveries = s.webhooks.deliveries(&id, q.limit.unwrap_or(100)).await?;
    Ok(Json(DeliveryList { deliveries }))
}
