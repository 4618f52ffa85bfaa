//! The webhook outbox: deliveries recorded once (by id), found when due, leased by exactly one
//! node at a time, then marked delivered, rescheduled or given up.

use sqlx::Row;

use super::*;

/// A webhook delivery waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxDelivery {
    /// Stable across retries and nodes: the receiver's idempotency key.
    pub id: String,
    pub url: String,
    pub body: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// For an event webhook: the event and the endpoint's signing secrets.
    pub event: Option<EventDelivery>,
    /// For a reply to a channel user: the channel (the body is a `ChannelReply`).
    pub channel: Option<Channel>,
}

/// What an event webhook delivery is signed and counted with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDelivery {
    pub event_id: String,
    pub endpoint_id: String,
    /// The current secret, then the previous one while a rotation overlaps.
    pub secrets: Vec<String>,
}

impl Store {
    /// Records a delivery; recording the same `id` again (a bot turn run twice) changes nothing.
    pub async fn enqueue_webhook(
        &self,
        id: &str,
        conversation_id: &str,
        url: &str,
        body: &str,
    ) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO webhook_outbox (id, conversation_id, url, body, created_at, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(conversation_id)
        .bind(url)
        .bind(body)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Pending deliveries due at `now` and not leased, oldest due first.
    pub async fn due_webhooks(&self, now: i64, limit: u32) -> Result<Vec<OutboxDelivery>> {
        // An event delivery waits while its endpoint is disabled.
        let rows = sqlx::query(
            "SELECT o.id, o.url, o.body, o.attempts, o.event_id, o.endpoint_id, o.channel, e.secret,
                 e.previous_secret, e.previous_until
             FROM webhook_outbox o LEFT JOIN webhook_endpoints e ON e.id = o.endpoint_id
             WHERE o.pending = 1 AND o.next_attempt_at <= $1 AND o.lease_until < $1
                 AND (o.endpoint_id IS NULL OR e.enabled = 1)
             ORDER BY o.next_attempt_at, o.id LIMIT $2",
        )
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let endpoint_id: Option<String> = r.try_get("endpoint_id")?;
                let event = match endpoint_id {
                    Some(endpoint_id) => {
                        let mut secrets = vec![r.try_get::<String, _>("secret")?];
                        let previous: Option<String> = r.try_get("previous_secret")?;
                        let until: i64 = r.try_get("previous_until")?;
                        secrets.extend(previous.filter(|_| until > now));
                        Some(EventDelivery {
                            event_id: r
                                .try_get::<Option<String>, _>("event_id")?
                                .unwrap_or_default(),
                            endpoint_id,
                            secrets,
                        })
                    }
                    None => None,
                };
                let channel: Option<String> = r.try_get("channel")?;
                Ok(OutboxDelivery {
                    channel: channel.as_deref().map(parse_channel).transpose()?,
                    id: r.try_get("id")?,
                    url: r.try_get("url")?,
                    body: r.try_get("body")?,
                    attempts: r.try_get::<i64, _>("attempts")? as u32,
                    event,
                })
            })
            .collect()
    }

    /// Takes a due delivery for this node until `lease_until`: true for exactly one of several
    /// nodes racing for it (its attempt count must still be the one read). Counts the attempt.
    pub async fn lease_webhook(
        &self,
        d: &OutboxDelivery,
        now: i64,
        lease_until: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE webhook_outbox SET lease_until = $2, attempts = attempts + 1
             WHERE id = $1 AND pending = 1 AND attempts = $3 AND lease_until < $4",
        )
        .bind(&d.id)
        .bind(lease_until)
        .bind(d.attempts as i64)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The receiver accepted the delivery.
    pub async fn webhook_delivered(&self, id: &str) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_outbox SET pending = 0, delivered_at = $2, lease_until = 0
             WHERE id = $1",
        )
        .bind(id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The attempt failed: try again at `next_attempt_at`, or never (`None`: given up).
    pub async fn webhook_failed(
        &self,
        id: &str,
        error: &str,
        next_attempt_at: Option<i64>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_outbox SET pending = $2, next_attempt_at = $3, lease_until = 0,
                 last_error = $4
             WHERE id = $1",
        )
        .bind(id)
        .bind(i64::from(next_attempt_at.is_some()))
        .bind(next_attempt_at.unwrap_or(0))
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
