//! What analytics reads: message counts per hour, the facts of each conversation started in a
//! period, the questions the bot could not answer, and visitors' ratings (written here too).

use sqlx::Row;

use super::*;

/// A period (Unix milliseconds, `to` excluded), optionally one site; `offset_ms` shifts times to
/// the operator's time zone before they are cut into hours.
#[derive(Debug, Clone)]
pub struct Period {
    pub from_ms: i64,
    pub to_ms: i64,
    pub offset_ms: i64,
    pub site: Option<String>,
}

/// Messages of one kind in one hour.
#[derive(Debug, Clone, PartialEq)]
pub struct HourCount {
    /// Hours since the epoch, in the period's time zone.
    pub hour: i64,
    pub author_kind: String,
    /// What a bot reply did (`answer`, `suggest`, `fallback`, `rule_reply`).
    pub outcome: Option<String>,
    pub count: i64,
}

/// One conversation started in the period.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationFacts {
    pub created_at: i64,
    pub state: String,
    pub handoff_reason: Option<String>,
    pub handed_off_at: Option<i64>,
    pub first_agent_reply_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub visitor_messages: i64,
    pub last_message_at: Option<i64>,
    pub rating: Option<i64>,
}

/// A visitor question the bot answered with suggestions or not at all.
#[derive(Debug, Clone, PartialEq)]
pub struct Unanswered {
    pub text: String,
    pub outcome: String,
    pub created_at: i64,
}

/// A visitor's rating of a conversation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Rating {
    #[schema(minimum = 1, maximum = 5)]
    pub score: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// Conversations `c` of the period's site (parameter `$n`; `''` for every site).
fn site_filter(n: u8) -> String {
    format!("(${n} = '' OR c.site_key = ${n})")
}

impl Store {
    /// Messages per hour, author kind and bot outcome, sent in the period.
    pub async fn message_counts(&self, p: &Period) -> Result<Vec<HourCount>> {
        let rows = sqlx::query(&format!(
            "SELECT (m.created_at + $1) / 3600000 AS hour, m.author_kind, m.outcome, COUNT(*) AS n
             FROM messages m JOIN conversations c ON c.id = m.conversation_id
             WHERE m.created_at >= $2 AND m.created_at < $3 AND {site}
             GROUP BY (m.created_at + $1) / 3600000, m.author_kind, m.outcome",
            site = site_filter(4)
        ))
        .bind(p.offset_ms)
        .bind(p.from_ms)
        .bind(p.to_ms)
        .bind(p.site.clone().unwrap_or_default())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HourCount {
                    hour: r.try_get("hour")?,
                    author_kind: r.try_get("author_kind")?,
                    outcome: r.try_get("outcome")?,
                    count: r.try_get("n")?,
                })
            })
            .collect()
    }

    /// The conversations started in the period, with their visitor messages, last message and
    /// rating.
    pub async fn conversation_facts(&self, p: &Period) -> Result<Vec<ConversationFacts>> {
        let rows = sqlx::query(&format!(
            "SELECT c.created_at, c.state, c.handoff_reason, c.handed_off_at,
                    c.first_agent_reply_at, c.resolved_at, r.score,
                    (SELECT COUNT(*) FROM messages m
                     WHERE m.conversation_id = c.id AND m.author_kind = 'visitor') AS visitor_messages,
                    (SELECT MAX(m.created_at) FROM messages m
                     WHERE m.conversation_id = c.id) AS last_message_at
             FROM conversations c LEFT JOIN ratings r ON r.conversation_id = c.id
             WHERE c.created_at >= $1 AND c.created_at < $2 AND {site}",
            site = site_filter(3)
        ))
        .bind(p.from_ms)
        .bind(p.to_ms)
        .bind(p.site.clone().unwrap_or_default())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ConversationFacts {
                    created_at: r.try_get("created_at")?,
                    state: r.try_get("state")?,
                    handoff_reason: r.try_get("handoff_reason")?,
                    handed_off_at: r.try_get("handed_off_at")?,
                    first_agent_reply_at: r.try_get("first_agent_reply_at")?,
                    resolved_at: r.try_get("resolved_at")?,
                    visitor_messages: r.try_get("visitor_messages")?,
                    last_message_at: r.try_get("last_message_at")?,
                    rating: r.try_get("score")?,
                })
            })
            .collect()
    }

    /// Up to `limit` visitor questions of the period that the bot's next message answered with
    /// suggestions or a fallback, newest first.
    pub async fn unanswered(&self, p: &Period, limit: u32) -> Result<Vec<Unanswered>> {
        let rows = sqlx::query(&format!(
            "SELECT v.body, b.outcome, v.created_at
             FROM messages b
             JOIN messages v ON v.conversation_id = b.conversation_id AND v.seq = b.seq - 1
             JOIN conversations c ON c.id = b.conversation_id
             WHERE b.author_kind = 'bot' AND b.outcome IN ('suggest', 'fallback')
               AND v.author_kind = 'visitor'
               AND b.created_at >= $1 AND b.created_at < $2 AND {site}
             ORDER BY b.created_at DESC LIMIT $4",
            site = site_filter(3)
        ))
        .bind(p.from_ms)
        .bind(p.to_ms)
        .bind(p.site.clone().unwrap_or_default())
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Unanswered {
                    text: r.try_get("body")?,
                    outcome: r.try_get("outcome")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Records (or replaces) the visitor's rating of a conversation.
    pub async fn rate(
        &self,
        conversation_id: &str,
        score: u8,
        comment: Option<&str>,
    ) -> Result<Rating> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO ratings (conversation_id, score, comment, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (conversation_id) DO UPDATE
             SET score = excluded.score, comment = excluded.comment, created_at = excluded.created_at",
        )
        .bind(conversation_id)
        .bind(score as i64)
        .bind(comment.map(str::to_string))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let site: Option<String> =
            sqlx::query_scalar("SELECT site_key FROM conversations WHERE id = $1")
                .bind(conversation_id)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(site) = site {
            let data = serde_json::json!({
                "site_key": site,
                "conversation_id": conversation_id,
                "score": score,
                "comment": comment,
            });
            super::events::record_event(&mut tx, &site, conversation_id, "csat.submitted", data)
                .await?;
        }
        tx.commit().await?;
        Ok(Rating {
            score,
            comment: comment.map(str::to_string),
            created_at: now,
        })
    }

    /// The visitor's rating of a conversation, if any.
    pub async fn rating(&self, conversation_id: &str) -> Result<Option<Rating>> {
        let row = sqlx::query(
            "SELECT score, comment, created_at FROM ratings WHERE conversation_id = $1",
        )
        .bind(conversation_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Rating {
                score: r.try_get::<i64, _>("score")?.clamp(0, 5) as u8,
                comment: r.try_get("comment")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
    }
}
