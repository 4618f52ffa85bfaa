//! Bearer-token extractors for the scopes (visitor, agent, admin: an API key or an operator with
//! the admin role, staff: agent or admin), resolved by `accounts`, and the request's `Origin`.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, ORIGIN};
use axum::http::request::Parts;
use axum::http::HeaderMap;

use super::error::ApiError;
use crate::accounts::Principal;
use crate::state::{AppState, Services};
use crate::store::{Agent, Role};

/// The bearer token of a request, if it sent one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The request's `Origin`, when a browser sent one.
pub fn origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(ORIGIN).and_then(|o| o.to_str().ok())
}

async fn principal(
    parts: &Parts,
    state: &AppState,
) -> Result<(Principal, Arc<Services>), ApiError> {
    let services = super::ready(state)?;
    let token = bearer(&parts.headers)
        .ok_or_else(|| ApiError::unauthorized("send `Authorization: Bearer <token>`"))?;
    let p = services
        .accounts
        .resolve_token(token)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the token is invalid, expired or revoked"))?;
    Ok((p, services))
}

/// Any valid token.
pub struct AnyAuth(pub Principal);

impl FromRequestParts<AppState> for AnyAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self(principal(parts, state).await?.0))
    }
}

/// A visitor token: the visitor's id and site.
pub struct VisitorAuth {
    pub visitor_id: String,
    pub site_key: String,
}

impl FromRequestParts<AppState> for VisitorAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match principal(parts, state).await?.0 {
            Principal::Visitor {
                visitor_id,
                site_key,
            } => Ok(Self {
                visitor_id,
                site_key,
            }),
            _ => Err(ApiError::forbidden("this endpoint needs a visitor token")),
        }
    }
}

/// An agent token, with the agent's account.
pub struct AgentAuth(pub Agent);

impl FromRequestParts<AppState> for AgentAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (p, services) = principal(parts, state).await?;
        let Principal::Agent { agent_id } = p else {
            return Err(ApiError::forbidden("this endpoint needs an agent token"));
        };
        let agent = services
            .accounts
            .agent(&agent_id)
            .await?
            .ok_or_else(|| ApiError::unauthorized("the agent account no longer exists"))?;
        Ok(Self(agent))
    }
}

/// An admin API key, or the token of an operator account with the admin role (checked at every
/// request, so a demoted operator loses access at once).
pub struct AdminAuth;

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (p, services) = principal(parts, state).await?;
        let admin = match p {
            Principal::Admin => true,
            Principal::Agent { agent_id } => services
                .accounts
                .agent(&agent_id)
                .await?
                .is_some_and(|a| a.role == Role::Admin),
            Principal::Visitor { .. } => false,
        };
        if admin {
            Ok(Self)
        } else {
            Err(ApiError::forbidden(
                "this endpoint needs an admin API key or an admin's login",
            ))
        }
    }
}

/// An agent token or an admin API key (staff tools such as the knowledge-base query).
pub struct StaffAuth;

impl FromRequestParts<AppState> for StaffAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match principal(parts, state).await?.0 {
            Principal::Admin | Principal::Agent { .. } => Ok(Self),
            Principal::Visitor { .. } => Err(ApiError::forbidden(
                "this endpoint needs an agent token or an admin API key",
            )),
        }
    }
}
