//! Event webhook endpoints, for the admin API and the CLI: add one (URL and events checked, a
//! signing secret made and shown once), list, remove, rotate the secret (the old one keeps
//! signing for `ROTATION_OVERLAP`), enable one again after it was disabled, and read an endpoint's
//! delivery log. Deliveries themselves are the outbox's (`conversation/webhook.rs`).

use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use crate::accounts::credentials::{new_token, AuthError};
use crate::store::{
    new_id, now_ms, DeliveryRecord, Store, StoreError, WebhookEndpoint, EVENT_TYPES,
};

/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);
/// Longest endpoint URL.
const MAX_URL: usize = 2048;
/// Most endpoints per site.
const MAX_PER_SITE: usize = 20;

/// Why an endpoint request was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Invalid(String),
    #[error("no site `{0}`")]
    UnknownSite(String),
    #[error("no webhook endpoint `{0}`")]
    NotFound(String),
    #[error(transparent)]
    Secret(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An endpoint as operators see it (never its secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointView {
    pub id: String,
    pub site_key: String,
    pub url: String,
    /// Subscribed event types; empty: every event.
    pub events: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// Failed attempts since the last delivered one.
    pub failures_in_a_row: u32,
    /// Until when (Unix ms) the previous secret still signs too, after a rotation.
    pub previous_secret_until: Option<i64>,
    /// Unix milliseconds.
    pub created_at: i64,
}

impl From<WebhookEndpoint> for EndpointView {
    fn from(e: WebhookEndpoint) -> Self {
        let overlapping = e.previous_secret.is_some() && e.previous_until > now_ms();
        Self {
            id: e.id,
            site_key: e.site_key,
            url: e.url,
            events: e.events,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            failures_in_a_row: e.failures_in_a_row,
            previous_secret_until: overlapping.then_some(e.previous_until),
            created_at: e.created_at,
        }
    }
}

/// An endpoint with its signing secret: shown once, when made or rotated.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointWithSecret {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    pub secret: String,
}

/// One delivery of an endpoint's log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryView {
    pub event_id: String,
    /// The event's type, read from the body.
    pub event_type: String,
    /// `pending`, `delivered` or `failed` (given up after every retry).
    pub status: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

impl From<DeliveryRecord> for DeliveryView {
    fn from(d: DeliveryRecord) -> Self {
        let event_type = serde_json::from_str::<serde_json::Value>(&d.body)
            .ok()
            .and_then(|b| b["type"].as_str().map(str::to_string))
            .unwrap_or_default();
        Self {
            event_id: d.event_id,
            event_type,
            status: d.status.to_string(),
            attempts: d.attempts,
            last_error: d.last_error,
            created_at: d.created_at,
            delivered_at: d.delivered_at,
        }
    }
}

/// Checks an endpoint URL: `https://…`, or `http://` to this machine only (local receivers and
/// tests), at most `MAX_URL` characters.
fn check_url(url: &str) -> Result<String, WebhookError> {
    let url = url.trim();
    let invalid = |why: &str| WebhookError::Invalid(format!("webhook URL {url:?}: {why}"));
    if url.len() > MAX_URL {
        return Err(invalid("too long"));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
    let loopback = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(invalid("must be https:// (http:// only to this machine)")),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host"));
    }
    Ok(url.to_string())
}

/// Checks event names against `EVENT_TYPES` (empty or `*`: every event).
fn check_events(events: &[String]) -> Result<Vec<String>, WebhookError> {
    let mut out: Vec<String> = Vec::new();
    for e in events.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        if e == "*" {
            return Ok(Vec::new());
        }
        if !EVENT_TYPES.contains(&e) {
            return Err(WebhookError::Invalid(format!(
                "unknown event {e:?}; known: {}",
                EVENT_TYPES.join(", ")
            )));
        }
        if !out.iter().any(|o| o == e) {
            out.push(e.to_string());
        }
    }
    Ok(out)
}

/// The endpoints service.
#[derive(Clone)]
pub struct Webhooks {
    store: Store,
}

impl Webhooks {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Adds an endpoint to site `site_key` for `events` (empty: every event).
    pub async fn add(
        &self,
        site_key: &str,
        url: &str,
        events: &[String],
    ) -> Result<EndpointWithSecret, WebhookError> {
        let url = check_url(url)?;
        let events = check_events(events)?;
        if self.store.site(site_key).await?.is_none() {
            return Err(WebhookError::UnknownSite(site_key.to_string()));
        }
        let existing = self.store.endpoints().await?;
        if existing.iter().filter(|e| e.site_key == site_key).count() >= MAX_PER_SITE {
            return Err(WebhookError::Invalid(format!(
                "site `{site_key}` has {MAX_PER_SITE} webhook endpoints already"
            )));
        }
        let endpoint =
            WebhookEndpoint::new(&new_id("we_"), site_key, &url, events, new_token("whsec_")?);
        self.store.create_endpoint(&endpoint).await?;
        let secret = endpoint.secret.clone();
        Ok(EndpointWithSecret {
            endpoint: endpoint.into(),
            secret,
        })
    }

    /// Every endpoint (of one site, when given).
    pub async fn list(&self, site_key: Option<&str>) -> Result<Vec<EndpointView>, WebhookError> {
        Ok(self
            .store
            .endpoints()
            .await?
            .into_iter()
            .filter(|e| site_key.is_none_or(|s| e.site_key == s))
            .map(EndpointView::from)
            .collect())
    }

    async fn get(&self, id: &str) -> Result<WebhookEndpoint, WebhookError> {
        self.store
            .endpoint(id)
            .await?
            .ok_or_else(|| WebhookError::NotFound(id.to_string()))
    }

    /// Removes an endpoint (its pending deliveries are dropped).
    pub async fn remove(&self, id: &str) -> Result<(), WebhookError> {
        if !self.store.delete_endpoint(id).await? {
            return Err(WebhookError::NotFound(id.to_string()));
        }
        Ok(())
    }

    /// Gives an endpoint a new secret; the old one signs too for `ROTATION_OVERLAP`.
    pub async fn rotate(&self, id: &str) -> Result<EndpointWithSecret, WebhookError> {
        let secret = new_token("whsec_")?;
        let until = now_ms() + ROTATION_OVERLAP.as_millis() as i64;
        if !self
            .store
            .rotate_endpoint_secret(id, &secret, until)
            .await?
        {
            return Err(WebhookError::NotFound(id.to_string()));
        }
        Ok(EndpointWithSecret {
            endpoint: self.get(id).await?.into(),
            secret,
        })
    }

    /// Enables an endpoint again (deliveries that waited go out).
    pub async fn enable(&self, id: &str) -> Result<EndpointView, WebhookError> {
        if !self.store.enable_endpoint(id).await? {
            return Err(WebhookError::NotFound(id.to_string()));
        }
        Ok(self.get(id).await?.into())
    }

    /// An endpoint's most recent deliveries (at most `limit`, newest first).
    pub async fn deliveries(
        &self,
        id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryView>, WebhookError> {
        self.get(id).await?;
        Ok(self
            .store
            .endpoint_deliveries(id, limit.clamp(1, 500))
            .await?
            .into_iter()
            .map(DeliveryView::from)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_unless_they_stay_on_this_machine() {
        assert!(check_url("https://crm.example.com/kefu").is_ok());
        assert!(check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(check_url("http://localhost/hook").is_ok());
        assert!(check_url("http://crm.example.com/kefu").is_err());
        assert!(check_url("ftp://example.com").is_err());
        assert!(check_url("not a url").is_err());
        assert!(check_url(&format!("https://x.example/{}", "a".repeat(MAX_URL))).is_err());
    }

    #[test]
    fn events_are_checked_and_star_means_all() {
        let e = |l: &[&str]| check_events(&l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            e(&["message.created", "message.created"]).expect("ok"),
            vec!["message.created"]
        );
        assert!(e(&["*"]).expect("ok").is_empty());
        assert!(e(&[]).expect("ok").is_empty());
        assert!(e(&["message.deleted"]).is_err());
    }
}
