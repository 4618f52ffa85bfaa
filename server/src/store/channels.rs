//! Channels in the store: a site's settings per channel, and replies queued back out through a
//! visitor's channel — in the webhook outbox, in the transaction that commits the message — with
//! the passive-reply hand-over for WeChat (a reply taken off the queue before the worker sends it).

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::events::ChannelOf;
use super::*;

/// How long a bot or system reply to a WeChat user waits in the outbox before the worker sends
/// it through the customer-service API: the request that brought the visitor's message may take
/// it first and answer passively (WeChat waits 5 s for that answer).
pub const PASSIVE_HOLD_MS: i64 = 5_000;

/// A reply queued for a channel user: the outbox body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelReply {
    pub site_key: String,
    /// The channel's id of the user (a WeChat openid).
    pub user: String,
    pub text: String,
}

/// The outbox id of the reply for message `seq` (zero-padded: ids sort by seq).
fn reply_id(conversation_id: &str, seq: u64) -> String {
    format!("reply:{conversation_id}:{seq:012}")
}

/// Queues message `m` for the conversation's channel user when that channel takes replies from
/// the outbox (WeChat); the API channel's replies go out as `message.created` events instead.
pub(super) async fn queue_reply(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    site_key: &str,
    via: &ChannelOf<'_>,
    m: &StoredMessage,
) -> Result<()> {
    let (Channel::Wechat, Some(user)) = (via.channel, via.user) else {
        return Ok(());
    };
    if m.author_kind == AuthorKind::Visitor {
        return Ok(());
    }
    let now = now_ms();
    let hold = if m.author_kind == AuthorKind::Agent {
        0
    } else {
        PASSIVE_HOLD_MS
    };
    let body = serde_json::to_string(&ChannelReply {
        site_key: site_key.to_string(),
        user: user.to_string(),
        text: m.text.clone(),
    })
    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO webhook_outbox (id, conversation_id, url, body, created_at, next_attempt_at,
             channel)
         VALUES ($1, $2, $3, $4, $5, $6, $3) ON CONFLICT (id) DO NOTHING",
    )
    .bind(reply_id(&m.conversation_id, m.seq))
    .bind(&m.conversation_id)
    .bind(via.channel.as_str())
    .bind(body)
    .bind(now)
    .bind(now + hold)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// A site's settings for `channel` (JSON), if the channel is set up.
    pub async fn site_channel(&self, site_key: &str, channel: Channel) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT settings FROM site_channels WHERE site_key = $1 AND channel = $2",
        )
        .bind(site_key)
        .bind(channel.as_str())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The channels set up for a site.
    pub async fn site_channels(&self, site_key: &str) -> Result<Vec<Channel>> {
        let rows =
            sqlx::query("SELECT channel FROM site_channels WHERE site_key = $1 ORDER BY channel")
                .bind(site_key)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| parse_channel(&r.try_get::<String, _>("channel")?))
            .collect()
    }

    /// Sets (`Some`) or removes (`None`) a site's settings for `channel`.
    pub async fn set_site_channel(
        &self,
        site_key: &str,
        channel: Channel,
        settings: Option<&str>,
    ) -> Result<()> {
        match settings {
            Some(settings) => {
                sqlx::query(
                    "INSERT INTO site_channels (site_key, channel, settings, updated_at)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (site_key, channel)
                     DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
                )
                .bind(site_key)
                .bind(channel.as_str())
                .bind(settings)
                .bind(now_ms())
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM site_channels WHERE site_key = $1 AND channel = $2")
                    .bind(site_key)
                    .bind(channel.as_str())
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Takes the first reply queued for the conversation's channel user after message
    /// `after_seq` that no worker has attempted yet, marking it delivered (the caller answers
    /// with it passively). Of the caller and a worker leasing it, exactly one gets it.
    pub async fn take_queued_reply(
        &self,
        conversation_id: &str,
        after_seq: u64,
    ) -> Result<Option<ChannelReply>> {
        let body: Option<String> = sqlx::query_scalar(
            "UPDATE webhook_outbox
             SET pending = 0, delivered_at = $3, last_error = 'answered passively'
             WHERE id = (SELECT id FROM webhook_outbox
                         WHERE conversation_id = $1 AND channel IS NOT NULL AND id > $2
                             AND pending = 1 AND attempts = 0
                         ORDER BY id LIMIT 1)
                 AND pending = 1 AND attempts = 0
             RETURNING body",
        )
        .bind(conversation_id)
        .bind(reply_id(conversation_id, after_seq))
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        body.map(|b| serde_json::from_str(&b).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }
}
