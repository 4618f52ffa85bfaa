//! Conversations: creation, listing, and ownership transitions (atomic with the capacity check).

use sqlx::any::AnyRow;
use sqlx::Row;

use super::*;

impl Store {
    /// Starts a conversation owned by the bot.
    pub async fn create_conversation(&self, visitor: &Visitor) -> Result<Conversation> {
        let now = now_ms();
        let c = Conversation {
            id: new_id("c_"),
            site_key: visitor.site_key.clone(),
            visitor_id: visitor.id.clone(),
            state: ConversationState::Bot,
            agent_id: None,
            last_seq: 0,
            bot_fallbacks: 0,
            offline: false,
            created_at: now,
            updated_at: now,
            channel: visitor.channel,
            channel_user: visitor
                .external_id
                .clone()
                .filter(|_| visitor.channel != Channel::Web),
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO conversations (id, site_key, visitor_id, state, agent_id, last_seq,
                 bot_fallbacks, offline, created_at, updated_at, channel, channel_user)
             VALUES ($1, $2, $3, 'bot', NULL, 0, 0, 0, $4, $4, $5, $6)",
        )
        .bind(&c.id)
        .bind(&c.site_key)
        .bind(&c.visitor_id)
        .bind(now)
        .bind(c.channel.as_str())
        .bind(c.channel_user.clone())
        .execute(&mut *tx)
        .await?;
        let data = events::conversation_data(&c);
        events::record_event(&mut tx, &c.site_key, &c.id, "conversation.created", data).await?;
        tx.commit().await?;
        Ok(c)
    }
    pub async fn conversation(&self, id: &str) -> Result<Option<Conversation>> {
        let row = sqlx::query("SELECT * FROM conversations WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| conversation_from_row(&r)).transpose()
    }
    /// The visitor's newest conversation that is not resolved.
    pub async fn open_conversation(&self, visitor_id: &str) -> Result<Option<Conversation>> {
        let row = sqlx::query(
            "SELECT * FROM conversations WHERE visitor_id = $1 AND state <> 'resolved'
             ORDER BY updated_at DESC LIMIT 1",
        )
        .bind(visitor_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| conversation_from_row(&r)).transpose()
    }
    /// Ids of every conversation, oldest first (for exporting history to training).
    pub async fn conversation_ids(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM conversations ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("id").map_err(Into::into))
            .collect()
    }
    /// Conversations in any of `states`, newest change first, with what the console lists.
    pub async fn conversation_listing(
        &self,
        states: &[ConversationState],
        limit: u32,
    ) -> Result<Vec<ConversationListing>> {
        self.listing(&format!("c.state IN ({})", state_list(states)), None, limit)
            .await
    }
    /// One conversation with what the console lists.
    pub async fn conversation_listing_one(&self, id: &str) -> Result<Option<ConversationListing>> {
        Ok(self
            .listing("c.id = $1", Some(id), 1)
            .await?
            .into_iter()
            .next())
    }
    async fn listing(
        &self,
        filter: &str,
        param: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ConversationListing>> {
        let sql = format!(
            "SELECT c.*, v.display_name AS visitor_display, v.external_id AS visitor_external,
                    a.name AS agent_name,
                    (SELECT body FROM messages m WHERE m.conversation_id = c.id AND m.seq = c.last_seq) AS last_text
             FROM conversations c
             JOIN visitors v ON v.id = c.visitor_id
             LEFT JOIN agents a ON a.id = c.agent_id
             WHERE {filter}
             ORDER BY c.updated_at DESC
             LIMIT {limit}"
        );
        let mut q = sqlx::query(&sql);
        if let Some(p) = param {
            q = q.bind(p);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(ConversationListing {
                    conversation: conversation_from_row(r)?,
                    visitor_name: r
                        .try_get::<Option<String>, _>("visitor_display")?
                        .or(r.try_get("visitor_external")?),
                    agent_name: r.try_get("agent_name")?,
                    last_text: r.try_get("last_text")?,
                })
            })
            .collect()
    }
    /// Moves a conversation from one of `from` to `to` (with `agent_id` as its owner, or none),
    /// committing `note` as a system message in the same transaction. `None` when the conversation
    /// was not in an allowed state (or not owned by `owner`, when given).
    pub async fn transition(
        &self,
        conversation_id: &str,
        change: &Transition<'_>,
        note: &NewMessage,
    ) -> Result<Option<(Conversation, StoredMessage)>> {
        let now = now_ms();
        let owner = if change.owner.is_some() {
            " AND agent_id = $5"
        } else {
            ""
        };
        let check_capacity = change.within_capacity && change.agent_id.is_some();
        let capacity = if check_capacity {
            " AND (SELECT COUNT(*) FROM conversations o
                   WHERE o.state = 'agent' AND o.agent_id = $3 AND o.id <> $1)
                < (SELECT capacity FROM agents WHERE id = $3)"
        } else {
            ""
        };
        // Analytics: the first handoff (its time and reason) and the resolution time.
        let handoff = match note.handoff_reason {
            Some(reason) if reason.chars().all(|c| c.is_ascii_lowercase() || c == '_') => format!(
                ", handed_off_at = COALESCE(handed_off_at, $4),
                   handoff_reason = COALESCE(handoff_reason, '{reason}')"
            ),
            _ => String::new(),
        };
        let resolved = if change.to == ConversationState::Resolved {
            ", resolved_at = $4"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE conversations SET state = $2, agent_id = $3, last_seq = last_seq + 1,
                 updated_at = $4, bot_fallbacks = 0, offline = {offline}, pending_turn = 0
                 {handoff}{resolved}
             WHERE id = $1 AND state IN ({from}){owner}{capacity}
             RETURNING *",
            from = state_list(change.from),
            offline = if change.offline { 1 } else { 0 },
        );
        let mut tx = self.pool.begin().await?;
        if let (true, Some(agent)) = (check_capacity, change.agent_id) {
            // Lock the new owner's row first: concurrent claims for one agent queue here, so each
            // counts the others' committed claims (PostgreSQL row lock; SQLite's write lock).
            sqlx::query("UPDATE agents SET capacity = capacity WHERE id = $1")
                .bind(agent)
                .execute(&mut *tx)
                .await?;
        }
        let mut q = sqlx::query(&sql)
            .bind(conversation_id)
            .bind(state_str(change.to))
            .bind(change.agent_id.map(str::to_string))
            .bind(now);
        if let Some(o) = change.owner {
            q = q.bind(o);
        }
        let Some(row) = q.fetch_optional(&mut *tx).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        let conversation = conversation_from_row(&row)?;
        let stored = StoredMessage {
            conversation_id: conversation_id.to_string(),
            seq: conversation.last_seq,
            author_kind: note.author_kind,
            author_id: note.author_id.clone(),
            author_name: note.author_name.clone(),
            text: note.text.clone(),
            client_msg_id: None,
            sources: note.sources.clone(),
            quick_replies: note.quick_replies.clone(),
            attachments: vec![],
            route_trace: note.route_trace.clone(),
            created_at: now,
        };
        insert_message(&mut tx, &stored, note.outcome, &[]).await?;
        let site = conversation.site_key.clone();
        if let Some(kind) = events::transition_event(conversation.state) {
            let data = events::conversation_data(&conversation);
            events::record_event(&mut tx, &site, conversation_id, kind, data).await?;
        }
        let via = events::ChannelOf {
            channel: conversation.channel,
            user: conversation.channel_user.as_deref(),
        };
        let data = events::message_data(&site, &via, &stored);
        events::record_event(&mut tx, &site, conversation_id, "message.created", data).await?;
        channels::queue_reply(&mut tx, &site, &via, &stored).await?;
        tx.commit().await?;
        Ok(Some((conversation, stored)))
    }
}

fn state_list(states: &[ConversationState]) -> String {
    states
        .iter()
        .map(|s| format!("'{}'", state_str(*s)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn state_str(s: ConversationState) -> &'static str {
    match s {
        ConversationState::Bot => "bot",
        ConversationState::Queued => "queued",
        ConversationState::Agent => "agent",
        ConversationState::Resolved => "resolved",
    }
}

pub(super) fn parse_state(s: &str) -> Result<ConversationState> {
    Ok(match s {
        "bot" => ConversationState::Bot,
        "queued" => ConversationState::Queued,
        "agent" => ConversationState::Agent,
        "resolved" => ConversationState::Resolved,
        other => return Err(StoreError::Corrupt(format!("conversation state `{other}`"))),
    })
}

fn conversation_from_row(r: &AnyRow) -> Result<Conversation> {
    let state: String = r.try_get("state")?;
    Ok(Conversation {
        id: r.try_get("id")?,
        site_key: r.try_get("site_key")?,
        visitor_id: r.try_get("visitor_id")?,
        state: parse_state(&state)?,
        agent_id: r.try_get("agent_id")?,
        last_seq: r.try_get::<i64, _>("last_seq")? as u64,
        bot_fallbacks: r.try_get::<i64, _>("bot_fallbacks")? as u32,
        offline: r.try_get::<i64, _>("offline")? != 0,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        channel: parse_channel(&r.try_get::<String, _>("channel")?)?,
        channel_user: r.try_get("channel_user")?,
    })
}

pub(super) fn parse_channel(s: &str) -> Result<Channel> {
    Channel::parse(s).ok_or_else(|| StoreError::Corrupt(format!("channel `{s}`")))
}
