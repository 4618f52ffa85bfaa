//! Bearer-token extractors for the three scopes (visitor, agent, admin), token resolution shared
//! with the WebSocket handshake, and the Origin check.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::auth::{token_hash, Principal};
use crate::error::ApiError;
use crate::state::{AppState, Services};
use crate::store::{Agent, Site, Store, StoreError, TokenKind};

/// The principal a token stands for, if it is valid and unexpired.
pub async fn resolve_token(store: &Store, token: &str) -> Result<Option<Principal>, StoreError> {
    if token.is_empty() || token.len() > 200 {
        return Ok(None);
    }
    let Some(t) = store.token(&token_hash(token)).await? else {
        return Ok(None);
    };
    Ok(Some(match t.kind {
        TokenKind::Visitor => Principal::Visitor {
            visitor_id: t.subject,
            site_key: t.site_key.unwrap_or_default(),
        },
        TokenKind::Agent => Principal::Agent {
            agent_id: t.subject,
        },
        TokenKind::Admin => Principal::Admin,
    }))
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

async fn principal(
    parts: &Parts,
    state: &AppState,
) -> Result<(Principal, Arc<Services>), ApiError> {
    let services = super::ready(state)?;
    let token = bearer(parts)
        .ok_or_else(|| ApiError::unauthorized("send `Authorization: Bearer <token>`"))?;
    let p = resolve_token(services.conversations.store(), token)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the token is invalid or expired"))?;
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

/// A visitor token.
pub struct VisitorAuth(pub Principal);

impl FromRequestParts<AppState> for VisitorAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match principal(parts, state).await?.0 {
            p @ Principal::Visitor { .. } => Ok(Self(p)),
            _ => Err(ApiError::forbidden(
                "forbidden",
                "this endpoint needs a visitor token",
            )),
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
            return Err(ApiError::forbidden(
                "forbidden",
                "this endpoint needs an agent token",
            ));
        };
        let agent = services
            .conversations
            .store()
            .agent(&agent_id)
            .await?
            .ok_or_else(|| ApiError::unauthorized("the agent account no longer exists"))?;
        Ok(Self(agent))
    }
}

/// An admin API key.
pub struct AdminAuth;

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match principal(parts, state).await?.0 {
            Principal::Admin => Ok(Self),
            _ => Err(ApiError::forbidden(
                "forbidden",
                "this endpoint needs an admin API key",
            )),
        }
    }
}

/// Whether the request's `Origin` may open a chat for `site`: requests without an Origin (native
/// apps), same-origin pages (the server's own demo page), and origins on the site's allow-list.
pub fn origin_allowed(headers: &HeaderMap, site: Option<&Site>) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    if same_origin(headers, origin) {
        return true;
    }
    site.is_some_and(|s| {
        s.allowed_origins
            .iter()
            .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    })
}

/// Whether `origin` names the host the request was sent to.
pub fn same_origin(headers: &HeaderMap, origin: &str) -> bool {
    let Some(host) = headers.get(HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    rest.is_some_and(|r| r.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn origins_are_checked_against_host_and_allow_list() {
        let site = Site {
            key: "s".into(),
            name: "s".into(),
            allowed_origins: vec!["https://shop.example".into()],
            identity_secret: None,
            enforce_identity: false,
        };
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(origin_allowed(&h, Some(&site)), "no Origin: native client");
        h.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(origin_allowed(&h, Some(&site)), "same origin");
        h.insert(ORIGIN, HeaderValue::from_static("https://shop.example"));
        assert!(origin_allowed(&h, Some(&site)));
        h.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!origin_allowed(&h, Some(&site)));
        assert!(!origin_allowed(&h, None));
    }
}
