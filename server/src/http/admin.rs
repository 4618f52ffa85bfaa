//! Admin endpoints (an admin API key or an admin's login): operator login, sites, agents (and
//! their sessions) and conversation transcripts. Account rules live in `accounts`; knowledge
//! bases and jobs are in `admin_kb`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::agent::{AccountInfo, AgentLoad, ConversationList, LoginRequest};
use super::auth::AdminAuth;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::accounts::{NewAgent, NewSite};
use crate::analytics::{days_csv, ReportRequest};
use crate::handoff::context::Transcript;
use crate::state::AppState;
use crate::store::{rfc3339, Role, Site};

/// An operator's session token.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminLoginResponse {
    pub token: String,
    pub account: AccountInfo,
    /// RFC 3339.
    pub expires_at: String,
}

/// `POST /v1/admin/login {"name", "password"}`: a session token for an account with the admin
/// role (it opens the agent console too).
#[utoipa::path(post, path = "/v1/admin/login", tag = "admin", request_body = LoginRequest,
    responses((status = 200, description = "signed in", body = AdminLoginResponse)))]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<AdminLoginResponse>, ApiError> {
    let s = super::ready(&state)?;
    let client = state.client_ip(peer.ip(), &headers);
    if state.login_limiter.check_key(&client).is_err() {
        return Err(ApiError::rate_limited());
    }
    let (account, token) = s.accounts.admin_login(&req.name, &req.password).await?;
    Ok(Json(AdminLoginResponse {
        token: token.token,
        account: (&account).into(),
        expires_at: rfc3339(token.expires_at),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
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

/// A site as the admin API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SiteView {
    pub key: String,
    pub name: String,
    pub allowed_origins: Vec<String>,
    pub enforce_identity: bool,
    pub identity_secret: Option<String>,
}

impl From<Site> for SiteView {
    fn from(s: Site) -> Self {
        Self {
            key: s.key,
            name: s.name,
            allowed_origins: s.allowed_origins,
            enforce_identity: s.enforce_identity,
            identity_secret: s.identity_secret,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SiteList {
    pub sites: Vec<SiteView>,
}

/// `GET /v1/admin/sites`.
#[utoipa::path(get, path = "/v1/admin/sites", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "every site", body = SiteList)))]
pub async fn sites(
    State(state): State<AppState>,
    _: AdminAuth,
) -> Result<Json<SiteList>, ApiError> {
    let s = super::ready(&state)?;
    let sites = s
        .accounts
        .sites()
        .await?
        .into_iter()
        .map(SiteView::from)
        .collect();
    Ok(Json(SiteList { sites }))
}

/// `POST /v1/admin/sites`.
#[utoipa::path(post, path = "/v1/admin/sites", tag = "admin", security(("bearer" = [])),
    request_body = SiteRequest, responses((status = 201, description = "created", body = SiteView)))]
pub async fn create_site(
    State(state): State<AppState>,
    _: AdminAuth,
    ApiJson(req): ApiJson<SiteRequest>,
) -> Result<(StatusCode, Json<SiteView>), ApiError> {
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
    Ok((StatusCode::CREATED, Json(site.into())))
}

#[derive(Debug, Deserialize, ToSchema)]
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
    #[schema(value_type = Option<String>)]
    pub role: Option<Role>,
}

/// `POST /v1/admin/agents`: an agent or operator account.
#[utoipa::path(post, path = "/v1/admin/agents", tag = "admin", security(("bearer" = [])),
    request_body = AgentRequest, responses((status = 201, description = "created", body = AccountInfo)))]
pub async fn create_agent(
    State(state): State<AppState>,
    _: AdminAuth,
    ApiJson(req): ApiJson<AgentRequest>,
) -> Result<(StatusCode, Json<AccountInfo>), ApiError> {
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
    Ok((StatusCode::CREATED, Json((&agent).into())))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentList {
    pub agents: Vec<AgentLoad>,
}

/// `GET /v1/admin/agents`: every staff account with its role, load and whether online.
#[utoipa::path(get, path = "/v1/admin/agents", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "every account", body = AgentList)))]
pub async fn agents(
    State(state): State<AppState>,
    _: AdminAuth,
) -> Result<Json<AgentList>, ApiError> {
    let agents = super::agent::agent_loads(&state).await?;
    Ok(Json(AgentList { agents }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    /// Sessions signed out.
    pub revoked: u64,
}

/// `POST /v1/admin/agents/{name}/revoke`: signs the agent out everywhere.
#[utoipa::path(post, path = "/v1/admin/agents/{name}/revoke", tag = "admin", security(("bearer" = [])),
    params(("name" = String, Path, description = "login name")),
    responses((status = 200, description = "signed out", body = Revoked)))]
pub async fn revoke_agent(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(name): Path<String>,
) -> Result<Json<Revoked>, ApiError> {
    let s = super::ready(&state)?;
    let revoked = s.accounts.revoke_agent_sessions(&name).await?;
    Ok(Json(Revoked { revoked }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConversationsQuery {
    /// Comma-separated states (`bot`, `queued`, `agent`, `resolved`; default all).
    #[serde(default)]
    pub state: Option<String>,
}

/// `GET /v1/admin/conversations?state=…`.
#[utoipa::path(get, path = "/v1/admin/conversations", tag = "admin", security(("bearer" = [])),
    params(ConversationsQuery), responses((status = 200, description = "the newest 500", body = ConversationList)))]
pub async fn conversations(
    State(state): State<AppState>,
    _: AdminAuth,
    Query(q): Query<ConversationsQuery>,
) -> Result<Json<ConversationList>, ApiError> {
    let s = super::ready(&state)?;
    let states =
        super::agent::parse_states(q.state.as_deref().unwrap_or("bot,queued,agent,resolved"))?;
    let conversations = s.conversations.list(&states, 500).await?;
    Ok(Json(ConversationList { conversations }))
}

/// `GET /v1/admin/conversations/{id}`: transcript with route traces.
#[utoipa::path(get, path = "/v1/admin/conversations/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "conversation id")),
    responses((status = 200, description = "summary, messages with route traces, rating", body = Object)))]
pub async fn transcript(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<Transcript>, ApiError> {
    let s = super::ready(&state)?;
    Ok(Json(s.conversations.transcript(&id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
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
#[utoipa::path(get, path = "/v1/admin/analytics", tag = "admin", security(("bearer" = [])),
    params(AnalyticsQuery),
    responses((status = 200, description = "the period's analytics (`format=csv`: one row per day, text/csv)", body = crate::analytics::Report)))]
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
