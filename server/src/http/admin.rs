//! Admin endpoints (an admin API key or an admin's login): operator login, sites, agents (and
//! their sessions) and conversation transcripts. Account rules live in `accounts`; knowledge
//! bases and jobs are in `admin_kb`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::AdminAuth;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::accounts::{NewAgent, NewSite};
use crate::analytics::{days_csv, ReportRequest};
use crate::state::AppState;
use crate::store::{rfc3339, Role, Site};

/// `POST /v1/admin/login {"name", "password"}`: a session token for an account with the admin
/// role (it opens the agent console too).
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<super::agent::LoginRequest>,
) -> Result<Json<Value>, ApiError> {
    let s = super::ready(&state)?;
    let client = state.client_ip(peer.ip(), &headers);
    if state.login_limiter.check_key(&client).is_err() {
        return Err(ApiError::rate_limited());
    }
    let (account, token) = s.accounts.admin_login(&req.name, &req.password).await?;
    Ok(Json(json!({
        "token": token.token,
        "account": { "name": account.name, "display_name": account.display_name, "role": account.role },
        "expires_at": rfc3339(token.expires_at),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteRequest {
    pub key: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default)]
    pub identity_secret: Option<String>,
    #[serde(default)]
    pub enforce_identity: bool,
}

/// `GET /v1/admin/sites`.
pub async fn sites(State(state): State<AppState>, _: AdminAuth) -> Result<Json<Value>, ApiError> {
    let s = super::ready(&state)?;
    let sites: Vec<Value> = s
        .accounts
        .sites()
        .await?
        .into_iter()
        .map(site_json)
        .collect();
    Ok(Json(json!({ "sites": sites })))
}

/// `POST /v1/admin/sites`.
pub async fn create_site(
    State(state): State<AppState>,
    _: AdminAuth,
    ApiJson(req): ApiJson<SiteRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let s = super::ready(&state)?;
    let site = s
        .accounts
        .create_site(NewSite {
            key: req.key,
            name: req.name,
            allowed_origins: req.allowed_origins,
            identity_secret: req.identity_secret,
            enforce_identity: req.enforce_identity,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(site_json(site))))
}

fn site_json(s: Site) -> Value {
    json!({
        "key": s.key, "name": s.name, "allowed_origins": s.allowed_origins,
        "enforce_identity": s.enforce_identity, "identity_secret": s.identity_secret,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRequest {
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    pub password: String,
    #[serde(default)]
    pub capacity: Option<u32>,
    /// `agent` (default) or `admin`.
    #[serde(default)]
    pub role: Option<Role>,
}

/// `POST /v1/admin/agents`.
pub async fn create_agent(
    State(state): State<AppState>,
    _: AdminAuth,
    ApiJson(req): ApiJson<AgentRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let s = super::ready(&state)?;
    let agent = s
        .accounts
        .create_agent(NewAgent {
            name: req.name,
            display_name: req.display_name,
            password: req.password,
            capacity: req.capacity.unwrap_or(5),
            role: req.role.unwrap_or_default(),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "name": agent.name, "display_name": agent.display_name, "capacity": agent.capacity, "role": agent.role }),
        ),
    ))
}

/// `GET /v1/admin/agents`: every staff account with its role, load and whether online.
pub async fn agents(State(state): State<AppState>, _: AdminAuth) -> Result<Json<Value>, ApiError> {
    let s = super::ready(&state)?;
    let roles: std::collections::HashMap<String, Role> = s
        .accounts
        .agents()
        .await?
        .into_iter()
        .map(|a| (a.name, a.role))
        .collect();
    let mut agents = super::agent::agents_json(&state).await?;
    for a in &mut agents {
        let role = a["name"].as_str().and_then(|n| roles.get(n)).copied();
        a["role"] = json!(role.unwrap_or_default());
    }
    Ok(Json(json!({ "agents": agents })))
}

/// `POST /v1/admin/agents/{name}/revoke`: signs the agent out everywhere.
pub async fn revoke_agent(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = super::ready(&state)?;
    let revoked = s.accounts.revoke_agent_sessions(&name).await?;
    Ok(Json(json!({ "revoked": revoked })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationsQuery {
    #[serde(default)]
    pub state: Option<String>,
}

/// `GET /v1/admin/conversations?state=…`.
pub async fn conversations(
    State(state): State<AppState>,
    _: AdminAuth,
    Query(q): Query<ConversationsQuery>,
) -> Result<Json<Value>, ApiError> {
    let s = super::ready(&state)?;
    let states =
        super::agent::parse_states(q.state.as_deref().unwrap_or("bot,queued,agent,resolved"))?;
    Ok(Json(
        json!({ "conversations": s.conversations.list(&states, 500).await? }),
    ))
}

/// `GET /v1/admin/conversations/{id}`: transcript with route traces.
pub async fn transcript(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = super::ready(&state)?;
    Ok(Json(json!(s.conversations.transcript(&id).await?)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsQuery {
    /// First day, `YYYY-MM-DD`.
    pub from: String,
    /// Last day (included), `YYYY-MM-DD`.
    pub to: String,
    #[serde(default)]
    pub site: Option<String>,
    /// The operator's time zone, minutes east of UTC (default 0).
    #[serde(default)]
    pub tz_offset_minutes: Option<i32>,
    /// `json` (default) or `csv` (one row per day).
    #[serde(default)]
    pub format: Option<String>,
}

/// `GET /v1/admin/analytics?from=&to=[&site=][&tz_offset_minutes=][&format=csv]`.
pub async fn analytics(
    State(state): State<AppState>,
    _: AdminAuth,
    Query(q): Query<AnalyticsQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let s = super::ready(&state)?;
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::invalid_input(format!(
                "format is `json` or `csv`, not {other:?}"
            )))
        }
    };
    let report = s
        .analytics
        .report(&ReportRequest {
            from: q.from,
            to: q.to,
            offset_minutes: q.tz_offset_minutes.unwrap_or(0),
            site: q.site.filter(|k| !k.is_empty()),
        })
        .await?;
    if !csv {
        return Ok(Json(report).into_response());
    }
    let body = days_csv(&report).map_err(ApiError::internal)?;
    let name = format!(
        "attachment; filename=\"kefu-analytics-{}-{}.csv\"",
        report.from, report.to
    );
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/csv; charset=utf-8".to_string(),
            ),
            (axum::http::header::CONTENT_DISPOSITION, name),
        ],
        body,
    )
        .into_response())
}
