//! Event webhooks in the store: a site's endpoints (subscriptions, secrets, failure count), and
//! events recorded in the webhook outbox — one delivery per subscribed, enabled endpoint — inside
//! the transaction that caused them, so an event is delivered exactly when its cause committed.

use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::*;

/// The event types an endpoint can subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "conversation.created",
    "message.created",
    "conversation.queued",
    "conversation.assigned",
    "conversation.resolved",
    "csat.submitted",
    "kb.gap",
];

/// One endpoint as stored (its secrets included: only the delivery worker reads them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: String,
    pub site_key: String,
    pub url: String,
    /// Subscribed event types; empty: every event.
    pub events: Vec<String>,
    pub secret: String,
    /// The secret before the last rotation, still signed with until `previous_until`.
    pub previous_secret: Option<String>,
    pub previous_until: i64,
    pub enabled: bool,
    /// Failed attempts since the last delivered one.
    pub failures_in_a_row: u32,
    pub disabled_reason: Option<String>,
    pub created_at: i64,
}

impl WebhookEndpoint {
    /// A new, enabled endpoint with no failures and no rotation under way.
    pub fn new(id: &str, site_key: &str, url: &str, events: Vec<String>, secret: String) -> Self {
        Self {
            id: id.to_string(),
            site_key: site_key.to_string(),
            url: url.to_string(),
            events,
            secret,
            previous_secret: None,
            previous_until: 0,
            enabled: true,
            failures_in_a_row: 0,
            disabled_reason: None,
            created_at: now_ms(),
        }
    }
}

/// One delivery of an endpoint's delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub event_id: String,
    pub body: String,
    pub attempts: u32,
    /// `pending`, `delivered` or `failed` (given up).
    pub status: &'static str,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

/// The stored form of a subscription list.
fn events_column(events: &[String]) -> String {
    if events.is_empty() {
        "*".to_string()
    } else {
        format!(",{},", events.join(","))
    }
}

fn endpoint_from_row(r: &AnyRow) -> Result<WebhookEndpoint> {
    let events: String = r.try_get("events")?;
    Ok(WebhookEndpoint {
        id: r.try_get("id")?,
        site_key: r.try_get("site_key")?,
        url: r.try_get("url")?,
        events: events
            .split(',')
            .filter(|e| !e.is_empty() && *e != "*")
            .map(str::to_string)
            .collect(),
        secret: r.try_get("secret")?,
        previous_secret: r.try_get("previous_secret")?,
        previous_until: r.try_get("previous_until")?,
        enabled: r.try_get::<i64, _>("enabled")? == 1,
        failures_in_a_row: r.try_get::<i64, _>("failures_in_a_row")?.max(0) as u32,
        disabled_reason: r.try_get("disabled_reason")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Records event `kind` of site `site_key` for every enabled endpoint subscribed to it, in `tx`:
/// body `{"id", "type", "created_at", "data"}`, one outbox delivery per endpoint (id
/// `<event id>:<endpoint id>`).
pub(super) async fn record_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    site_key: &str,
    conversation_id: &str,
    kind: &str,
    data: Value,
) -> Result<()> {
    let now = now_ms();
    let event_id = new_id("evt_");
    let body = json!({
        "id": event_id,
        "type": kind,
        "created_at": now,
        "data": data,
    })
    .to_string();
    sqlx::query(
        "INSERT INTO webhook_outbox (id, conversation_id, url, body, created_at, next_attempt_at,
             endpoint_id, event_id)
         SELECT $1 || ':' || e.id, $2, e.url, $3, $4, $4, e.id, $1
         FROM webhook_endpoints e
         WHERE e.site_key = $5 AND e.enabled = 1 AND (e.events = '*' OR e.events LIKE $6)",
    )
    .bind(&event_id)
    .bind(conversation_id)
    .bind(&body)
    .bind(now)
    .bind(site_key)
    .bind(format!("%,{kind},%"))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Where a conversation's visitor writes from: the channel and its id of the user.
pub(super) struct ChannelOf<'a> {
    pub channel: Channel,
    pub user: Option<&'a str>,
}

/// The `data` of `message.created`.
pub(super) fn message_data(site_key: &str, via: &ChannelOf<'_>, m: &StoredMessage) -> Value {
    json!({
        "site_key": site_key,
        "conversation_id": m.conversation_id,
        "channel": via.channel.as_str(),
        "channel_user": via.user,
        "seq": m.seq,
        "author": {"kind": super::messages::author_str(m.author_kind), "id": m.author_id, "name": m.author_name},
        "text": m.text,
        "created_at": m.created_at,
    })
}

/// Records `kb.gap` for bot reply `m` that found no answer: the visitor's question with it.
pub(super) async fn record_gap(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    site_key: &str,
    m: &StoredMessage,
) -> Result<()> {
    let question: Option<String> = sqlx::query_scalar(
        "SELECT body FROM messages WHERE conversation_id = $1 AND author_kind = 'visitor'
         ORDER BY seq DESC LIMIT 1",
    )
    .bind(&m.conversation_id)
    .fetch_optional(&mut **tx)
    .await?;
    let data = json!({
        "site_key": site_key,
        "conversation_id": m.conversation_id,
        "question": question,
        "reply_seq": m.seq,
        "reply": m.text,
    });
    record_event(tx, site_key, &m.conversation_id, "kb.gap", data).await
}

/// The `data` of the conversation events.
pub(super) fn conversation_data(c: &Conversation) -> Value {
    json!({
        "site_key": c.site_key,
        "conversation_id": c.id,
        "visitor_id": c.visitor_id,
        "channel": c.channel.as_str(),
        "channel_user": c.channel_user,
        "state": state_str(c.state),
        "agent_id": c.agent_id,
        "offline": c.offline,
    })
}

/// The event a conversation entering `state` is.
pub(super) fn transition_event(state: ConversationState) -> Option<&'static str> {
    match state {
        ConversationState::Queued => Some("conversation.queued"),
        ConversationState::Agent => Some("conversation.assigned"),
        ConversationState::Resolved => Some("conversation.resolved"),
        ConversationState::Bot => None,
    }
}

impl Store {
    /// Adds an endpoint.
    pub async fn create_endpoint(&self, e: &WebhookEndpoint) -> Result<()> {
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, site_key, url, events, secret, enabled, created_at)
             VALUES ($1, $2, $3, $4, $5, 1, $6)",
        )
        .bind(&e.id)
        .bind(&e.site_key)
        .bind(&e.url)
        .bind(events_column(&e.events))
        .bind(&e.secret)
        .bind(e.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every endpoint, by site then age.
    pub async fn endpoints(&self) -> Result<Vec<WebhookEndpoint>> {
        let rows = sqlx::query("SELECT * FROM webhook_endpoints ORDER BY site_key, created_at")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(endpoint_from_row).collect()
    }

    /// One endpoint.
    pub async fn endpoint(&self, id: &str) -> Result<Option<WebhookEndpoint>> {
        let row = sqlx::query("SELECT * FROM webhook_endpoints WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(endpoint_from_row).transpose()
    }

    /// Removes an endpoint; its pending deliveries are given up. False when there was none.
    pub async fn delete_endpoint(&self, id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE webhook_outbox SET pending = 0, last_error = 'endpoint removed'
             WHERE endpoint_id = $1 AND pending = 1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let r = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Replaces an endpoint's secret; the old one stays valid (signed with too) until `until`.
    pub async fn rotate_endpoint_secret(&self, id: &str, secret: &str, until: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE webhook_endpoints SET previous_secret = secret, previous_until = $3, secret = $2
             WHERE id = $1",
        )
        .bind(id)
        .bind(secret)
        .bind(until)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Enables an endpoint again; its failure count starts over. False when there is none.
    pub async fn enable_endpoint(&self, id: &str) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE webhook_endpoints SET enabled = 1, disabled_reason = NULL, failures_in_a_row = 0
             WHERE id = $1",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Counts an attempt to an endpoint: a delivered one resets its failures; a failed one adds
    /// one, and the one that reaches `disable_after` disables the endpoint, in the same statement
    /// (so of several nodes exactly one sees it happen). True when this attempt disabled it.
    pub async fn endpoint_attempted(
        &self,
        id: &str,
        delivered: bool,
        disable_after: u32,
    ) -> Result<bool> {
        let reached = "$2 = 0 AND enabled = 1 AND failures_in_a_row + 1 >= $3";
        let row = sqlx::query(&format!(
            "UPDATE webhook_endpoints
             SET failures_in_a_row = CASE WHEN $2 = 1 THEN 0 ELSE failures_in_a_row + 1 END,
                 enabled = CASE WHEN {reached} THEN 0 ELSE enabled END,
                 disabled_reason = CASE WHEN {reached} THEN $4 ELSE disabled_reason END
             WHERE id = $1 RETURNING enabled, failures_in_a_row"
        ))
        .bind(id)
        .bind(i64::from(delivered))
        .bind(i64::from(disable_after))
        .bind(format!(
            "disabled after {disable_after} failed attempts in a row"
        ))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let enabled: i64 = row.try_get("enabled")?;
        let failures: i64 = row.try_get("failures_in_a_row")?;
        Ok(enabled == 0 && failures == i64::from(disable_after))
    }

    /// An endpoint's most recent deliveries, newest first.
    pub async fn endpoint_deliveries(&self, id: &str, limit: u32) -> Result<Vec<DeliveryRecord>> {
        let rows = sqlx::query(
            "SELECT event_id, body, attempts, pending, last_error, created_at, delivered_at
             FROM webhook_outbox WHERE endpoint_id = $1 ORDER BY created_at DESC, id LIMIT $2",
        )
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let delivered_at: Option<i64> = r.try_get("delivered_at")?;
                let status = match (r.try_get::<i64, _>("pending")?, delivered_at) {
                    (1, _) => "pending",
                    (_, Some(_)) => "delivered",
                    _ => "failed",
                };
                Ok(DeliveryRecord {
                    event_id: r
                        .try_get::<Option<String>, _>("event_id")?
                        .unwrap_or_default(),
                    body: r.try_get("body")?,
                    attempts: r.try_get::<i64, _>("attempts")?.max(0) as u32,
                    status,
                    last_error: r.try_get("last_error")?,
                    created_at: r.try_get("created_at")?,
                    delivered_at,
                })
            })
            .collect()
    }
}
