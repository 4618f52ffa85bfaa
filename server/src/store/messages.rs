//! Messages: appending (seq assigned in the committing transaction, deduplicated by
//! `client_msg_id`, the pending bot turn recorded with it) and reading pages.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::*;

impl Store {
    /// Commits one message, assigning the next sequence number, if the conversation satisfies
    /// `require`. A `client_msg_id` already committed in the conversation returns that message.
    pub async fn append(
        &self,
        conversation_id: &str,
        require: Require<'_>,
        msg: &NewMessage,
    ) -> Result<Append> {
        if let Some(id) = &msg.client_msg_id {
            if let Some(m) = self.message_by_client_id(conversation_id, id).await? {
                return Ok(Append::Duplicate(m));
            }
        }
        let now = now_ms();
        let condition = match require {
            Require::Open => "state <> 'resolved'".to_string(),
            Require::State(s) => format!("state = '{}'", state_str(s)),
            Require::Owner(_) => "state = 'agent' AND agent_id = $4".to_string(),
        };
        let fallbacks = match msg.fallbacks {
            FallbackCount::Keep => "bot_fallbacks",
            FallbackCount::Reset => "0",
            FallbackCount::Increment => "bot_fallbacks + 1",
        };
        let pending = match msg.bot_turn {
            BotTurn::Keep => "pending_turn".to_string(),
            BotTurn::Start => {
                "CASE WHEN state = 'bot' THEN last_seq + 1 ELSE pending_turn END".into()
            }
            BotTurn::Finish(seq) => {
                format!("CASE WHEN pending_turn <= {seq} THEN 0 ELSE pending_turn END")
            }
        };
        // An agent's first reply is remembered (analytics: first-response time).
        let first_agent_reply = if msg.author_kind == AuthorKind::Agent {
            "COALESCE(first_agent_reply_at, $2)"
        } else {
            "first_agent_reply_at"
        };
        let sql = format!(
            "UPDATE conversations SET last_seq = last_seq + 1, updated_at = $2,
                 bot_fallbacks = {fallbacks}, offline = CASE WHEN $3 = 1 THEN 1 ELSE offline END,
                 pending_turn = {pending}, first_agent_reply_at = {first_agent_reply}
             WHERE id = $1 AND {condition}
             RETURNING last_seq, bot_fallbacks, state, site_key, channel, channel_user"
        );
        let mut tx = self.pool.begin().await?;
        let mut q = sqlx::query(&sql)
            .bind(conversation_id)
            .bind(now)
            .bind(msg.mark_offline as i64);
        if let Require::Owner(agent) = require {
            q = q.bind(agent);
        }
        let Some(row) = q.fetch_optional(&mut *tx).await? else {
            tx.rollback().await?;
            return match self.conversation(conversation_id).await? {
                Some(c) => Ok(Append::Refused(c)),
                None => Err(StoreError::NotFound(format!(
                    "conversation `{conversation_id}`"
                ))),
            };
        };
        let seq: i64 = row.try_get("last_seq")?;
        let bot_fallbacks: i64 = row.try_get("bot_fallbacks")?;
        let state = parse_state(&row.try_get::<String, _>("state")?)?;
        let site_key: String = row.try_get("site_key")?;
        let channel = parse_channel(&row.try_get::<String, _>("channel")?)?;
        let channel_user: Option<String> = row.try_get("channel_user")?;
        let metas = if msg.attachments.is_empty() {
            vec![]
        } else {
            let author = msg.author_id.as_deref().unwrap_or_default();
            match attachments::bind(
                &mut tx,
                conversation_id,
                seq as u64,
                author,
                &msg.attachments,
            )
            .await?
            {
                Some(metas) => metas,
                None => {
                    tx.rollback().await?;
                    return Ok(Append::UnknownAttachment);
                }
            }
        };
        let stored = StoredMessage {
            conversation_id: conversation_id.to_string(),
            seq: seq as u64,
            author_kind: msg.author_kind,
            author_id: msg.author_id.clone(),
            author_name: msg.author_name.clone(),
            text: msg.text.clone(),
            client_msg_id: msg.client_msg_id.clone(),
            sources: msg.sources.clone(),
            quick_replies: msg.quick_replies.clone(),
            attachments: metas.iter().map(|m| self.links.wire(m, now)).collect(),
            route_trace: msg.route_trace.clone(),
            created_at: now,
        };
        let inserted = insert_message(&mut tx, &stored, msg.outcome, &metas).await;
        match inserted {
            Ok(()) => {
                let via = events::ChannelOf {
                    channel,
                    user: channel_user.as_deref(),
                };
                let data = events::message_data(&site_key, &via, &stored);
                events::record_event(&mut tx, &site_key, conversation_id, "message.created", data)
                    .await?;
                channels::queue_reply(&mut tx, &site_key, &via, &stored).await?;
                if msg.outcome == Some("fallback") {
                    events::record_gap(&mut tx, &site_key, &stored).await?;
                }
                tx.commit().await?;
                Ok(Append::Committed {
                    message: stored,
                    bot_fallbacks: bot_fallbacks as u32,
                    state,
                })
            }
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                // The same client_msg_id committed concurrently: report that one.
                tx.rollback().await?;
                let id = msg.client_msg_id.clone().unwrap_or_default();
                self.message_by_client_id(conversation_id, &id)
                    .await?
                    .map(Append::Duplicate)
                    .ok_or_else(|| StoreError::NotFound(format!("message `{id}`")))
            }
            Err(e) => Err(e.into()),
        }
    }
    /// One message by seq.
    pub async fn message(&self, conversation_id: &str, seq: u64) -> Result<Option<StoredMessage>> {
        let row = sqlx::query("SELECT * FROM messages WHERE conversation_id = $1 AND seq = $2")
            .bind(conversation_id)
            .bind(seq as i64)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| message_from_row(&r, &self.links)).transpose()
    }
    async fn message_by_client_id(
        &self,
        conversation_id: &str,
        client_msg_id: &str,
    ) -> Result<Option<StoredMessage>> {
        let row =
            sqlx::query("SELECT * FROM messages WHERE conversation_id = $1 AND client_msg_id = $2")
                .bind(conversation_id)
                .bind(client_msg_id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| message_from_row(&r, &self.links)).transpose()
    }
    /// Messages with seq > `after_seq`, oldest first, at most `limit`.
    pub async fn messages_after(
        &self,
        conversation_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>> {
        let rows = sqlx::query(
            "SELECT * FROM messages WHERE conversation_id = $1 AND seq > $2
             ORDER BY seq LIMIT $3",
        )
        .bind(conversation_id)
        .bind(after_seq as i64)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| message_from_row(r, &self.links))
            .collect()
    }
    /// Up to `limit` messages with seq < `before_seq`, oldest first.
    pub async fn messages_before(
        &self,
        conversation_id: &str,
        before_seq: u64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>> {
        let rows = sqlx::query(
            "SELECT * FROM messages WHERE conversation_id = $1 AND seq < $2
             ORDER BY seq DESC LIMIT $3",
        )
        .bind(conversation_id)
        .bind(before_seq.min(i64::MAX as u64) as i64)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<StoredMessage> = rows
            .iter()
            .map(|r| message_from_row(r, &self.links))
            .collect::<Result<_>>()?;
        out.reverse();
        Ok(out)
    }
    /// The visitor's newest message text in a conversation.
    /// The visitor's last question: their newest message that was not answered by a system note
    /// (a typed handoff request such as "人工" is followed by the handoff note), else their newest.
    pub async fn last_visitor_question(&self, conversation_id: &str) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT v.body FROM messages v
             LEFT JOIN messages n ON n.conversation_id = v.conversation_id AND n.seq = v.seq + 1
             WHERE v.conversation_id = $1 AND v.author_kind = 'visitor'
               AND (n.author_kind IS NULL OR n.author_kind <> 'system')
             ORDER BY v.seq DESC LIMIT 1",
        )
        .bind(conversation_id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some(r.try_get("body")?)),
            None => self.last_visitor_text(conversation_id).await,
        }
    }

    pub async fn last_visitor_text(&self, conversation_id: &str) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT body FROM messages WHERE conversation_id = $1 AND author_kind = 'visitor'
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(conversation_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("body")).transpose()?)
    }
}

/// Inserts `m` with the attachments it carries; `outcome` is what a bot reply did (analytics).
pub(super) async fn insert_message(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    m: &StoredMessage,
    outcome: Option<&str>,
    attachments: &[attachments::AttachmentMeta],
) -> std::result::Result<(), sqlx::Error> {
    let json = |v: String| Some(v).filter(|s| s != "[]" && s != "null");
    sqlx::query(
        "INSERT INTO messages (conversation_id, seq, author_kind, author_id, author_name, body,
             client_msg_id, sources, quick_replies, route_trace, created_at, outcome, attachments)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&m.conversation_id)
    .bind(m.seq as i64)
    .bind(author_str(m.author_kind))
    .bind(m.author_id.clone())
    .bind(m.author_name.clone())
    .bind(&m.text)
    .bind(m.client_msg_id.clone())
    .bind(json(serde_json::to_string(&m.sources).unwrap_or_default()))
    .bind(json(
        serde_json::to_string(&m.quick_replies).unwrap_or_default(),
    ))
    .bind(
        m.route_trace
            .as_ref()
            .map(|t| serde_json::to_string(t).unwrap_or_default()),
    )
    .bind(m.created_at)
    .bind(outcome.map(str::to_string))
    .bind(json(serde_json::to_string(attachments).unwrap_or_default()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) fn author_str(a: AuthorKind) -> &'static str {
    match a {
        AuthorKind::Visitor => "visitor",
        AuthorKind::Bot => "bot",
        AuthorKind::Agent => "agent",
        AuthorKind::System => "system",
    }
}

fn parse_author(s: &str) -> Result<AuthorKind> {
    Ok(match s {
        "visitor" => AuthorKind::Visitor,
        "bot" => AuthorKind::Bot,
        "agent" => AuthorKind::Agent,
        "system" => AuthorKind::System,
        other => return Err(StoreError::Corrupt(format!("author kind `{other}`"))),
    })
}

fn message_from_row(r: &AnyRow, links: &LinkSigner) -> Result<StoredMessage> {
    let kind: String = r.try_get("author_kind")?;
    let attachments: Option<String> = r.try_get("attachments")?;
    let sources: Option<String> = r.try_get("sources")?;
    let quick: Option<String> = r.try_get("quick_replies")?;
    let trace: Option<String> = r.try_get("route_trace")?;
    let corrupt = |what: &str, e: serde_json::Error| StoreError::Corrupt(format!("{what}: {e}"));
    Ok(StoredMessage {
        conversation_id: r.try_get("conversation_id")?,
        seq: r.try_get::<i64, _>("seq")? as u64,
        author_kind: parse_author(&kind)?,
        author_id: r.try_get("author_id")?,
        author_name: r.try_get("author_name")?,
        text: r.try_get("body")?,
        client_msg_id: r.try_get("client_msg_id")?,
        sources: match sources {
            Some(s) => {
                serde_json::from_str::<Vec<Source>>(&s).map_err(|e| corrupt("sources", e))?
            }
            None => vec![],
        },
        quick_replies: match quick {
            Some(s) => serde_json::from_str(&s).map_err(|e| corrupt("quick_replies", e))?,
            None => vec![],
        },
        attachments: links.wire_all(attachments.as_deref())?,
        route_trace: match trace {
            Some(s) => Some(serde_json::from_str(&s).map_err(|e| corrupt("route_trace", e))?),
            None => None,
        },
        created_at: r.try_get("created_at")?,
    })
}
