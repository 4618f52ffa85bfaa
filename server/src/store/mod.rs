//! Conversation storage: sites, agents, tokens, visitors, conversations and messages, in SQLite (the
//! embedded default, WAL, synchronous commits) or PostgreSQL with one schema, through sqlx's `Any`
//! driver. Sequence numbers are assigned inside the committing transaction, so they are gap-free
//! and ordered per conversation on either backend and across server processes.

mod accounts;
mod analytics;
mod attachments;
mod channels;
mod conversations;
mod events;
mod messages;
mod model;
mod outbox;
mod privacy;
mod settings;
mod turns;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use kefu_protocol::{AuthorKind, ConversationState, Source};
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

pub use analytics::{ConversationFacts, HourCount, Period, Rating, Unanswered};
pub use attachments::{AttachmentLimits, AttachmentRecord, LinkCheck, LinkPart, LinkSigner};
pub use channels::{ChannelReply, PASSIVE_HOLD_MS};
pub use conversations::state_str;
use conversations::{parse_channel, parse_state};
pub use events::{DeliveryRecord, WebhookEndpoint, EVENT_TYPES};
use messages::insert_message;
pub use model::*;
pub use outbox::{EventDelivery, OutboxDelivery};
pub use privacy::{AuditEntry, Deleted};
pub use settings::SharedSetting;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// The database cannot be reached (connection refused or lost, no connection within the
    /// acquire timeout): a retry may succeed.
    #[error("database unreachable: {0}")]
    Unavailable(sqlx::Error),
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

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
                StoreError::Unavailable(e)
            }
            other => StoreError::Database(other),
        }
    }
}

/// How long a query waits for a pooled connection (or a new one) before the store answers
/// `Unavailable`, so requests fail fast while the database is down instead of queueing.
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

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
    /// Signs the attachment links each read of a message hands out.
    links: LinkSigner,
    backend: Backend,
}

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
        let mut options = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 16,
            })
            .acquire_timeout(ACQUIRE_TIMEOUT);
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
                        // Deleted rows (erasure, retention) are overwritten, not left in free
                        // pages of the file.
                        "PRAGMA secure_delete = ON",
                    ] {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            });
        }
        let pool = options.connect(url).await?;
        // On PostgreSQL the knowledge tables (kefu-kb's migrations, numbered from 1001) share
        // this history table: each set leaves the other's versions alone.
        let mut migrator = sqlx::migrate!("./migrations");
        migrator.set_ignore_missing(true);
        migrator.run(&pool).await?;
        let links = attachments::link_signer(&pool).await?;
        Ok(Self {
            pool,
            links,
            backend,
        })
    }
    /// After deleting personal data: on SQLite, copies the write-ahead log into the database and
    /// empties it, so no earlier version of a deleted row stays in the log file (PostgreSQL
    /// reclaims dead rows by its own vacuum).
    pub async fn checkpoint(&self) -> Result<()> {
        if self.backend == Backend::Sqlite {
            kefu_kb::store::truncate_wal(&self.pool).await?;
        }
        Ok(())
    }

    /// Closes every pooled connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

pub(super) fn unique_as(
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
