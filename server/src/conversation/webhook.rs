//! Webhook calls from rule actions: a JSON POST in the background, retried with exponential
//! backoff (the `backon` crate); failures are logged, never shown to the visitor.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use serde_json::json;

use crate::triage::Decision;

/// The shared HTTP client for webhooks.
pub struct WebhookClient {
    http: reqwest::Client,
}

impl WebhookClient {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .user_agent(concat!("kefu/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { http }
    }

    /// POSTs `{event, conversation_id, text, rule, intent}` to `url` in the background.
    pub fn notify(&self, url: String, conversation_id: &str, text: &str, decision: &Decision) {
        let body = json!({
            "event": "rule_matched",
            "conversation_id": conversation_id,
            "text": text,
            "rule": decision.trace.rule.as_ref().map(|r| r.rule_id.clone()),
            "intent": decision.trace.intent.name,
        });
        let http = self.http.clone();
        tokio::spawn(async move {
            let send = || async {
                http.post(&url)
                    .json(&body)
                    .send()
                    .await?
                    .error_for_status()
                    .map(|_| ())
            };
            let result = send
                .retry(
                    ExponentialBuilder::default()
                        .with_min_delay(Duration::from_millis(500))
                        .with_max_times(3),
                )
                .await;
            match result {
                Ok(()) => metrics::counter!("kefu_webhooks_total", "outcome" => "ok").increment(1),
                Err(e) => {
                    metrics::counter!("kefu_webhooks_total", "outcome" => "failed").increment(1);
                    tracing::warn!(%url, error = %e, "webhook failed after retries");
                }
            }
        });
    }
}
