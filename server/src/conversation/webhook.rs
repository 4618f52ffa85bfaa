//! Webhook calls through the store's outbox: rule and intent actions, recorded before the bot
//! turn that caused them ends, by a stable id, so a turn run twice (after a crash) records each
//! once; and event webhooks, recorded by the store with the change they report (signed here at
//! each attempt, and counted against their endpoint). A worker on any node then delivers them: a JSON POST with
//! `Idempotency-Key` (the id) and `Kefu-Delivery-Attempt` headers, retried with exponential
//! backoff and jitter (the `backon` crate's schedule), at least once. A delivery is leased by
//! one node at a time, and a dead node's lease runs out for another. Failures are logged and
//! metered, never shown to the visitor.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::StreamExt;
use serde_json::json;

use super::bot_turn::Turn;
use super::{signature, ConversationError, Conversations};
use crate::store::{now_ms, Channel, ChannelReply, OutboxDelivery};
use crate::triage::Decision;

/// How long one node holds a delivery it is attempting (longer than a request may take).
const LEASE: Duration = Duration::from_secs(30);
/// How often the worker looks for due deliveries (it is also woken when one is recorded).
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Attempts before a delivery is given up (the last ones 10 minutes apart).
pub const MAX_ATTEMPTS: u32 = 12;
/// Deliveries leased per round, and attempted at once.
const BATCH: u32 = 32;
const PARALLEL: usize = 8;
/// Time allowed to one attempt.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Failed attempts in a row after which an event endpoint is disabled (its deliveries wait
/// until an operator enables it again).
pub const DISABLE_AFTER: u32 = 50;

/// Why an attempt failed; a permanent failure is not tried again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptFailure {
    pub message: String,
    pub permanent: bool,
}

impl AttemptFailure {
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
        }
    }
}

/// Sends replies queued for users of another channel (a WeChat Official Account's
/// customer-service messages); `serve` attaches it (`Conversations::attach_channel_sender`).
#[async_trait::async_trait]
pub trait ChannelSender: Send + Sync {
    async fn send(&self, channel: Channel, reply: &ChannelReply) -> Result<(), AttemptFailure>;
}

/// The shared HTTP client for webhooks.
pub struct WebhookClient {
    http: reqwest::Client,
}

impl WebhookClient {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("kefu/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { http }
    }

    /// One attempt: any 2xx answer delivers it. An event delivery is signed at the time of
    /// the attempt (`signature`) and names its event.
    async fn post(&self, d: &OutboxDelivery, attempt: u32) -> Result<(), reqwest::Error> {
        let mut request = self
            .http
            .post(&d.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", &d.id)
            .header("kefu-delivery-attempt", attempt.to_string());
        if let Some(event) = &d.event {
            let t = now_ms() / 1000;
            request = request
                .header(
                    signature::HEADER,
                    signature::header(&event.secrets, t, d.body.as_bytes()),
                )
                .header(signature::EVENT_ID_HEADER, &event.event_id);
        }
        request
            .body(d.body.clone())
            .send()
            .await?
            .error_for_status()
            .map(|_| ())
    }
}

/// The outbox id of the `index`th webhook of the bot turn for visitor message `seq`.
fn delivery_id(conversation_id: &str, seq: u64, index: usize) -> String {
    format!("{conversation_id}:{seq}:{index}")
}

/// The wait before the next attempt once `attempts` have failed; None when they are used up.
pub fn retry_delay(attempts: u32) -> Option<Duration> {
    if attempts >= MAX_ATTEMPTS {
        return None;
    }
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(600))
        .with_jitter()
        .without_max_times()
        .build()
        .nth(attempts.saturating_sub(1) as usize)
}

impl Conversations {
    /// Records the decision's webhooks in the outbox (before the turn ends: a turn cut short is
    /// run again and records nothing twice) and wakes the worker.
    pub(super) async fn enqueue_webhooks(
        &self,
        turn: &Turn,
        decision: &Decision,
    ) -> Result<(), ConversationError> {
        if decision.webhooks.is_empty() {
            return Ok(());
        }
        let body = json!({
            "event": "rule_matched",
            "conversation_id": turn.conversation_id,
            "seq": turn.seq,
            "text": turn.text,
            "rule": decision.trace.rule.as_ref().map(|r| r.rule_id.clone()),
            "intent": decision.trace.intent.name,
        })
        .to_string();
        for (i, url) in decision.webhooks.iter().enumerate() {
            let id = delivery_id(&turn.conversation_id, turn.seq, i);
            self.store
                .enqueue_webhook(&id, &turn.conversation_id, url, &body)
                .await?;
        }
        self.webhook_due.notify_one();
        Ok(())
    }

    /// Delivers due webhooks until the process ends.
    pub fn start_webhook_worker(self: &Arc<Self>) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                if let Err(e) = this.deliver_due_webhooks().await {
                    tracing::warn!(error = %e, "looking for due webhooks failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(POLL_EVERY) => {}
                    _ = this.webhook_due.notified() => {}
                }
            }
        });
    }

    /// Leases the due deliveries this node can take and attempts them; returns how many.
    pub async fn deliver_due_webhooks(&self) -> Result<usize, ConversationError> {
        let now = now_ms();
        let due = self.store.due_webhooks(now, BATCH).await?;
        let mut leased = Vec::with_capacity(due.len());
        for d in due {
            if self
                .store
                .lease_webhook(&d, now, now + LEASE.as_millis() as i64)
                .await?
            {
                leased.push(d);
            }
        }
        let count = leased.len();
        futures_util::stream::iter(leased)
            .map(|d| self.attempt_webhook(d))
            .buffer_unordered(PARALLEL)
            .collect::<Vec<()>>()
            .await;
        Ok(count)
    }

    /// Lets the webhook worker send replies queued for other channels' users.
    pub fn attach_channel_sender(&self, sender: Arc<dyn ChannelSender>) {
        let _ = self.channel_sender.set(sender);
    }

    async fn attempt_webhook(&self, d: OutboxDelivery) {
        let attempt = d.attempts + 1;
        let result = match d.channel {
            Some(channel) => self.send_to_channel(channel, &d.body).await,
            None => {
                let client = self.webhooks.get_or_init(WebhookClient::new);
                client
                    .post(&d, attempt)
                    .await
                    .map_err(|e| AttemptFailure::transient(e.to_string()))
            }
        };
        let delivered = result.is_ok();
        let recorded = match result {
            Ok(()) => {
                metrics::counter!("kefu_webhooks_total", "outcome" => "ok").increment(1);
                self.store.webhook_delivered(&d.id).await
            }
            Err(e) => {
                let next = retry_delay(attempt).filter(|_| !e.permanent);
                let outcome = if next.is_some() { "retry" } else { "gave_up" };
                metrics::counter!("kefu_webhooks_total", "outcome" => outcome).increment(1);
                tracing::warn!(url = %d.url, id = %d.id, attempt, error = %e.message, "webhook attempt failed");
                let at = next.map(|wait| now_ms() + wait.as_millis() as i64);
                self.store.webhook_failed(&d.id, &e.message, at).await
            }
        };
        if let Err(e) = recorded {
            // The lease runs out and the delivery is attempted again: at least once.
            tracing::warn!(id = %d.id, error = %e, "recording a webhook attempt failed");
        }
        if let Some(event) = &d.event {
            if let Err(e) = self
                .count_endpoint_attempt(&event.endpoint_id, delivered)
                .await
            {
                tracing::warn!(endpoint = %event.endpoint_id, error = %e, "counting a webhook attempt failed");
            }
        }
    }

    /// One attempt to send a queued reply through its channel.
    async fn send_to_channel(&self, channel: Channel, body: &str) -> Result<(), AttemptFailure> {
        let reply: ChannelReply = serde_json::from_str(body)
            .map_err(|e| AttemptFailure::permanent(format!("damaged reply: {e}")))?;
        let sender = self.channel_sender.get().ok_or_else(|| {
            AttemptFailure::transient(format!("this node sends no {} replies", channel.as_str()))
        })?;
        sender.send(channel, &reply).await
    }

    /// Counts an event endpoint's attempt; the store disables the endpoint at `DISABLE_AFTER`
    /// failures in a row, and the node whose attempt did it raises the alert (a warning in the
    /// log and `kefu_webhook_endpoints_disabled_total`).
    async fn count_endpoint_attempt(
        &self,
        endpoint_id: &str,
        delivered: bool,
    ) -> Result<(), ConversationError> {
        let disabled = self
            .store
            .endpoint_attempted(endpoint_id, delivered, DISABLE_AFTER)
            .await?;
        if disabled {
            metrics::counter!("kefu_webhook_endpoints_disabled_total").increment(1);
            tracing::warn!(endpoint = %endpoint_id, failures = DISABLE_AFTER, "webhook endpoint disabled: its receiver keeps failing; enable it again once it is fixed");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_ten_minutes_then_stop() {
        // Jitter adds up to the delay itself, so sample each bound many times.
        for _ in 0..200 {
            let first = retry_delay(1).expect("a retry");
            assert!(first >= Duration::from_millis(500) && first <= Duration::from_millis(1000));
            // The 11th wait: 0.5 s doubled ten times (512 s), under the 10-minute cap.
            let later = retry_delay(MAX_ATTEMPTS - 1).expect("a retry");
            assert!(later >= Duration::from_secs(512) && later <= Duration::from_secs(1200));
        }
        assert_eq!(retry_delay(MAX_ATTEMPTS), None);
    }

    #[test]
    fn delivery_ids_are_stable_per_turn_and_action() {
        assert_eq!(delivery_id("c_1", 3, 0), delivery_id("c_1", 3, 0));
        assert_ne!(delivery_id("c_1", 3, 0), delivery_id("c_1", 3, 1));
        assert_ne!(delivery_id("c_1", 3, 0), delivery_id("c_1", 5, 0));
    }
}
