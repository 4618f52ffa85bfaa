//! Conversation storage: sites, agents, tokens, visitors, conversations and messages, in SQLite (the
//! embedded default, WAL, synchronous commits) or PostgreSQL with one schema, through sqlx's `Any`
//! driver. Sequence numbers are assigned inside the committing transaction, so they are gap-free
//! and ordered per conversation on either backend and across server processes.

mod model;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use kefu_protocol::{AuthorKind, ConversationState, Source};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

pub use model::*;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("cannot create {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Which database engine the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// The conversation store (cheap to clone).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A fresh random id (`prefix` + 24 hex digits).
pub fn new_id(prefix: &str) -> String {
    let mut buf = [0u8; 12];
    // The OS random source failing is unrecoverable; fall back to the clock, still unique enough
    // for ids (tokens use `auth::new_token`, which refuses to continue instead).
    if getrandom::fill(&mut buf).is_err() {
        buf[..8].copy_from_slice(&now_ms().to_le_bytes());
    }
    format!("{prefix}{}", hex::encode(buf))
}

impl Store {
    /// Opens the SQLite database at `path` (created if missing).
    pub async fn open_sqlite(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        Self::connect(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    /// Connects to `url` (`sqlite://…` or `postgres://…`) and applies the migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::Database(sqlx::Error::Configuration(
                "database URL must start with sqlite:// or postgres://".into(),
            )));
        };
        let mut options = AnyPoolOptions::new().max_connections(match backend {
            Backend::Sqlite => 4,
            Backend::Postgres => 16,
        });
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    // Durable on commit (FULL), readers never block the writer (WAL), writers
                    // queue instead of failing at once (busy_timeout).
                    for pragma in [
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA synchronous = FULL",
                        "PRAGMA busy_timeout = 10000",
                        "PRAGMA foreign_keys = ON",
                    ] {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            });
        }
        let pool = options.connect(url).await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    /// Closes every pooled connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ----- sites -----

    pub async fn create_site(&self, site: &Site) -> Result<()> {
        let origins = serde_json::to_string(&site.allowed_origins)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let r = sqlx::query(
            "INSERT INTO sites (site_key, name, allowed_origins, identity_secret, enforce_identity, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&site.key)
        .bind(&site.name)
        .bind(origins)
        .bind(site.identity_secret.clone())
        .bind(site.enforce_identity as i64)
        .bind(now_ms())
        .execute(&self.pool)
        .await;
        unique_as(r, || format!("site `{}`", site.key))
    }

    pub async fn site(&self, key: &str) -> Result<Option<Site>> {
        let row = sqlx::query("SELECT * FROM sites WHERE site_key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| site_from_row(&r)).transpose()
    }

    pub async fn sites(&self) -> Result<Vec<Site>> {
        let rows = sqlx::query("SELECT * FROM sites ORDER BY site_key")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(site_from_row).collect()
    }

    // ----- agents -----

    pub async fn create_agent(&self, agent: &Agent) -> Result<()> {
        let r = sqlx::query(
            "INSERT INTO agents (id, name, display_name, password_hash, capacity, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&agent.id)
        .bind(&agent.name)
        .bind(&agent.display_name)
        .bind(&agent.password_hash)
        .bind(agent.capacity as i64)
        .bind(now_ms())
        .execute(&self.pool)
        .await;
        unique_as(r, || format!("agent `{}`", agent.name))
    }

    pub async fn set_agent_password(&self, name: &str, password_hash: &str) -> Result<()> {
        let r = sqlx::query("UPDATE agents SET password_hash = $1 WHERE name = $2")
            .bind(password_hash)
            .bind(name)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("agent `{name}`")));
        }
        Ok(())
    }

    pub async fn agent_by_name(&self, name: &str) -> Result<Option<Agent>> {
        let row = sqlx::query("SELECT * FROM agents WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| agent_from_row(&r)).transpose()
    }

    pub async fn agent(&self, id: &str) -> Result<Option<Agent>> {
        let row = sqlx::query("SELECT * FROM agents WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| agent_from_row(&r)).transpose()
    }

    pub async fn agents(&self) -> Result<Vec<Agent>> {
        let rows = sqlx::query("SELECT * FROM agents ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(agent_from_row).collect()
    }

    /// Conversations each agent owns now (state `agent`).
    pub async fn active_counts(&self) -> Result<Vec<(String, u32)>> {
        let rows = sqlx::query(
            "SELECT agent_id, COUNT(*) AS n FROM conversations
             WHERE state = 'agent' AND agent_id IS NOT NULL GROUP BY agent_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("agent_id")?, r.try_get::<i64, _>("n")? as u32)))
            .collect()
    }

    // ----- tokens -----

    pub async fn insert_token(&self, token_hash: &str, token: &TokenRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO auth_tokens (token_hash, kind, subject, site_key, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_hash)
        .bind(token.kind.as_str())
        .bind(&token.subject)
        .bind(token.site_key.clone())
        .bind(token.expires_at)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The unexpired token with this hash.
    pub async fn token(&self, token_hash: &str) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(
            "SELECT kind, subject, site_key, expires_at FROM auth_tokens
             WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let kind: String = r.try_get("kind")?;
            Ok(TokenRecord {
                kind: TokenKind::parse(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("token kind `{kind}`")))?,
                subject: r.try_get("subject")?,
                site_key: r.try_get("site_key")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Revokes one token.
    pub async fn delete_token(&self, token_hash: &str) -> Result<u64> {
        let r = sqlx::query("DELETE FROM auth_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// Revokes every token of `kind` issued to `subject`; returns how many.
    pub async fn delete_tokens_of(&self, kind: TokenKind, subject: &str) -> Result<u64> {
        let r = sqlx::query("DELETE FROM auth_tokens WHERE kind = $1 AND subject = $2")
            .bind(kind.as_str())
            .bind(subject)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// Forgets expired tokens; returns how many.
    pub async fn delete_expired_tokens(&self) -> Result<u64> {
        let r = sqlx::query("DELETE FROM auth_tokens WHERE expires_at <= $1")
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    // ----- visitors -----

    /// The visitor for a verified `external_id` on `site_key` (created on first use), or a new
    /// anonymous visitor when `external_id` is `None`.
    pub async fn visitor_for(
        &self,
        site_key: &str,
        external_id: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<Visitor> {
        if let Some(ext) = external_id {
            if let Some(v) = self.visitor_by_external(site_key, ext).await? {
                return Ok(v);
            }
        }
        let visitor = Visitor {
            id: new_id("v_"),
            site_key: site_key.to_string(),
            external_id: external_id.map(str::to_string),
            display_name: display_name.map(str::to_string),
        };
        let r = sqlx::query(
            "INSERT INTO visitors (id, site_key, external_id, display_name, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&visitor.id)
        .bind(&visitor.site_key)
        .bind(visitor.external_id.clone())
        .bind(visitor.display_name.clone())
        .bind(now_ms())
        .execute(&self.pool)
        .await;
        match r {
            Ok(_) => Ok(visitor),
            // Two first sessions of one user at once: the other insert won; use its row.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                let ext = external_id.unwrap_or_default();
                self.visitor_by_external(site_key, ext)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("visitor `{ext}`")))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn visitor_by_external(&self, site_key: &str, ext: &str) -> Result<Option<Visitor>> {
        let row = sqlx::query("SELECT * FROM visitors WHERE site_key = $1 AND external_id = $2")
            .bind(site_key)
            .bind(ext)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| visitor_from_row(&r)).transpose()
    }

    pub async fn visitor(&self, id: &str) -> Result<Option<Visitor>> {
        let row = sqlx::query("SELECT * FROM visitors WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| visitor_from_row(&r)).transpose()
    }

    // ----- conversations -----

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
        };
        sqlx::query(
            "INSERT INTO conversations (id, site_key, visitor_id, state, agent_id, last_seq,
                 bot_fallbacks, offline, created_at, updated_at)
             VALUES ($1, $2, $3, 'bot', NULL, 0, 0, 0, $4, $4)",
        )
        .bind(&c.id)
        .bind(&c.site_key)
        .bind(&c.visitor_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
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
        let sql = format!(
            "UPDATE conversations SET last_seq = last_seq + 1, updated_at = $2,
                 bot_fallbacks = {fallbacks}, offline = CASE WHEN $3 = 1 THEN 1 ELSE offline END,
                 pending_turn = {pending}
             WHERE id = $1 AND {condition}
             RETURNING last_seq, bot_fallbacks, state"
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
            route_trace: msg.route_trace.clone(),
            created_at: now,
        };
        let inserted = insert_message(&mut tx, &stored).await;
        match inserted {
            Ok(()) => {
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
        let sql = format!(
            "UPDATE conversations SET state = $2, agent_id = $3, last_seq = last_seq + 1,
                 updated_at = $4, bot_fallbacks = 0, offline = {offline}, pending_turn = 0
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
            route_trace: note.route_trace.clone(),
            created_at: now,
        };
        insert_message(&mut tx, &stored).await?;
        tx.commit().await?;
        Ok(Some((conversation, stored)))
    }

    /// Ends the pending bot turn for the visitor message `seq` (the bot decided to say nothing),
    /// unless a newer message started another.
    pub async fn finish_turn(&self, conversation_id: &str, seq: u64) -> Result<()> {
        sqlx::query(
            "UPDATE conversations SET pending_turn = 0
             WHERE id = $1 AND pending_turn > 0 AND pending_turn <= $2",
        )
        .bind(conversation_id)
        .bind(seq as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Bot turns recorded but not finished, in conversations untouched since `before_ms`.
    pub async fn stale_turns(&self, before_ms: i64, limit: u32) -> Result<Vec<PendingTurn>> {
        let rows = sqlx::query(
            "SELECT id, pending_turn, updated_at FROM conversations
             WHERE pending_turn > 0 AND state = 'bot' AND updated_at < $1
             ORDER BY updated_at LIMIT $2",
        )
        .bind(before_ms)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PendingTurn {
                    conversation_id: r.try_get("id")?,
                    seq: r.try_get::<i64, _>("pending_turn")? as u64,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Takes a stale turn for this process: true for exactly one of several nodes racing for it
    /// (the row's `updated_at` must still be the one read).
    pub async fn lease_turn(&self, turn: &PendingTurn) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE conversations SET updated_at = $4
             WHERE id = $1 AND pending_turn = $2 AND updated_at = $3",
        )
        .bind(&turn.conversation_id)
        .bind(turn.seq as i64)
        .bind(turn.updated_at)
        .bind(now_ms().max(turn.updated_at + 1))
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// One message by seq.
    pub async fn message(&self, conversation_id: &str, seq: u64) -> Result<Option<StoredMessage>> {
        let row = sqlx::query("SELECT * FROM messages WHERE conversation_id = $1 AND seq = $2")
            .bind(conversation_id)
            .bind(seq as i64)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| message_from_row(&r)).transpose()
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
        row.map(|r| message_from_row(&r)).transpose()
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
        rows.iter().map(message_from_row).collect()
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
        let mut out: Vec<StoredMessage> =
            rows.iter().map(message_from_row).collect::<Result<_>>()?;
        out.reverse();
        Ok(out)
    }

    /// The visitor's newest message text in a conversation.
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

async fn insert_message(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    m: &StoredMessage,
) -> std::result::Result<(), sqlx::Error> {
    let json = |v: String| Some(v).filter(|s| s != "[]" && s != "null");
    sqlx::query(
        "INSERT INTO messages (conversation_id, seq, author_kind, author_id, author_name, body,
             client_msg_id, sources, quick_replies, route_trace, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn unique_as(
    r: std::result::Result<sqlx::any::AnyQueryResult, sqlx::Error>,
    what: impl FnOnce() -> String,
) -> Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StoreError::AlreadyExists(what()))
        }
        Err(e) => Err(e.into()),
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

fn parse_state(s: &str) -> Result<ConversationState> {
    Ok(match s {
        "bot" => ConversationState::Bot,
        "queued" => ConversationState::Queued,
        "agent" => ConversationState::Agent,
        "resolved" => ConversationState::Resolved,
        other => return Err(StoreError::Corrupt(format!("conversation state `{other}`"))),
    })
}

fn author_str(a: AuthorKind) -> &'static str {
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

fn site_from_row(r: &AnyRow) -> Result<Site> {
    let origins: String = r.try_get("allowed_origins")?;
    Ok(Site {
        key: r.try_get("site_key")?,
        name: r.try_get("name")?,
        allowed_origins: serde_json::from_str(&origins)
            .map_err(|e| StoreError::Corrupt(format!("allowed_origins: {e}")))?,
        identity_secret: r.try_get("identity_secret")?,
        enforce_identity: r.try_get::<i64, _>("enforce_identity")? != 0,
    })
}

fn agent_from_row(r: &AnyRow) -> Result<Agent> {
    Ok(Agent {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        display_name: r.try_get("display_name")?,
        password_hash: r.try_get("password_hash")?,
        capacity: r.try_get::<i64, _>("capacity")?.max(0) as u32,
    })
}

fn visitor_from_row(r: &AnyRow) -> Result<Visitor> {
    Ok(Visitor {
        id: r.try_get("id")?,
        site_key: r.try_get("site_key")?,
        external_id: r.try_get("external_id")?,
        display_name: r.try_get("display_name")?,
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
    })
}

fn message_from_row(r: &AnyRow) -> Result<StoredMessage> {
    let kind: String = r.try_get("author_kind")?;
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
        route_trace: match trace {
            Some(s) => Some(serde_json::from_str(&s).map_err(|e| corrupt("route_trace", e))?),
            None => None,
        },
        created_at: r.try_get("created_at")?,
    })
}
