//! Data retention and erasure, for the admin API, the CLI and the retention sweeper: erase one
//! visitor (found by visitor id, or by a channel's user id — a verified user id on the web)
//! across conversations, messages, ratings, queued deliveries, tokens, training history and mined
//! proposals' examples, and the analytics memory of question texts; per-site retention (delete
//! conversations idle longer than N days, every hour on every node); the audit log of both.

use std::sync::Arc;
use std::time::Duration;

use kefu_kb::store::KbStore;
use kefu_kb::train::history::{self, HistoryErased};
use kefu_kb::KbError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::attachments::AttachmentFiles;
use crate::store::{now_ms, AuditEntry, Channel, Deleted, Store, StoreError};

/// How often each node applies the sites' retention.
pub const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// Longest retention accepted, in days (ten years).
pub const MAX_RETENTION_DAYS: u32 = 3650;
const DAY_MS: i64 = 86_400_000;

/// Why a privacy request was refused.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error("{0}")]
    Invalid(String),
    #[error("no site `{0}`")]
    UnknownSite(String),
    #[error("no such visitor on this site")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Knowledge(#[from] KbError),
}

type Result<T> = std::result::Result<T, PrivacyError>;

/// Whom to erase.
#[derive(Debug, Clone)]
pub enum VisitorRef {
    Id(String),
    /// A channel's user id (`web`: the verified user id of identity verification).
    User {
        channel: Channel,
        user_id: String,
    },
}

/// What an erasure removed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Erasure {
    pub visitor_id: String,
    pub conversations: usize,
    pub messages: u64,
    pub ratings: u64,
    pub deliveries: u64,
    pub tokens: u64,
    /// Attachments (their records and files).
    pub attachments: usize,
    /// Training history conversations and messages removed.
    pub history_conversations: u64,
    pub history_messages: u64,
    /// Mined proposals whose examples named the visitor's conversations (changed, or removed
    /// from the review queue when nothing else was left).
    pub proposals_changed: u64,
    pub proposals_removed: u64,
}

/// The privacy service (cheap to clone).
#[derive(Clone)]
pub struct Privacy {
    store: Store,
    /// The knowledge store, which holds the training history and the review queue.
    kb: KbStore,
    /// Attachment files, deleted with their records.
    files: AttachmentFiles,
    /// Called after an erasure to drop in-memory copies of visitors' texts (analytics).
    forget: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl Privacy {
    pub fn new(store: Store, kb: KbStore, files: AttachmentFiles) -> Self {
        Self {
            store,
            kb,
            files,
            forget: None,
        }
    }

    /// Runs `forget` after every erasure (the server's analytics memory).
    pub fn on_erase(mut self, forget: Arc<dyn Fn() + Send + Sync>) -> Self {
        self.forget = Some(forget);
        self
    }

    /// Erases one visitor of `site_key`, recorded in the audit log as done by `actor`.
    pub async fn erase(&self, site_key: &str, who: &VisitorRef, actor: &str) -> Result<Erasure> {
        if self.store.site(site_key).await?.is_none() {
            return Err(PrivacyError::UnknownSite(site_key.to_string()));
        }
        let visitor = match who {
            VisitorRef::Id(id) => self.store.visitor(id).await?,
            VisitorRef::User { channel, user_id } => {
                self.store
                    .find_channel_visitor(site_key, *channel, user_id)
                    .await?
            }
        }
        .filter(|v| v.site_key == site_key)
        .ok_or(PrivacyError::NotFound)?;
        let deleted = self.store.erase_visitor(&visitor, actor).await?;
        self.files.delete(&deleted.attachment_ids).await;
        let training = self
            .erase_training(&deleted, actor, site_key, &visitor.id)
            .await?;
        if let Some(forget) = &self.forget {
            forget();
        }
        self.checkpoint().await;
        Ok(Erasure {
            visitor_id: visitor.id,
            conversations: deleted.conversation_ids.len(),
            messages: deleted.messages,
            ratings: deleted.ratings,
            deliveries: deleted.deliveries,
            tokens: deleted.tokens,
            attachments: deleted.attachment_ids.len(),
            history_conversations: training.conversations,
            history_messages: training.messages,
            proposals_changed: training.proposals_changed,
            proposals_removed: training.proposals_removed,
        })
    }

    async fn erase_training(
        &self,
        deleted: &Deleted,
        actor: &str,
        site_key: &str,
        subject: &str,
    ) -> Result<HistoryErased> {
        let erased = history::erase(&self.kb, &deleted.conversation_ids).await?;
        if erased != HistoryErased::default() {
            let detail = serde_json::to_value(&erased).unwrap_or_default();
            self.store
                .audit_note(
                    actor,
                    "training.erased",
                    Some(site_key),
                    Some(subject),
                    &detail,
                )
                .await?;
        }
        Ok(erased)
    }

    /// Leaves no copy of deleted rows in the databases' write-ahead logs (a failure is logged:
    /// the deletion itself is done).
    async fn checkpoint(&self) {
        if let Err(e) = self.store.checkpoint().await {
            tracing::warn!(error = %e, "checkpointing the conversation store after a deletion failed");
        }
        if let Err(e) = self.kb.checkpoint().await {
            tracing::warn!(error = %e, "checkpointing the knowledge store after a deletion failed");
        }
    }

    /// A site's retention in days (0 keeps everything).
    pub async fn retention(&self, site_key: &str) -> Result<u32> {
        self.store
            .retention(site_key)
            .await?
            .ok_or_else(|| PrivacyError::UnknownSite(site_key.to_string()))
    }

    /// Sets a site's retention (0 keeps everything).
    pub async fn set_retention(&self, site_key: &str, days: u32, actor: &str) -> Result<()> {
        if days > MAX_RETENTION_DAYS {
            return Err(PrivacyError::Invalid(format!(
                "retention is 0 (keep everything) to {MAX_RETENTION_DAYS} days"
            )));
        }
        if !self.store.set_retention(site_key, days, actor).await? {
            return Err(PrivacyError::UnknownSite(site_key.to_string()));
        }
        Ok(())
    }

    /// Applies every site's retention now: `(site, what was deleted)` for the sites where
    /// something was.
    pub async fn apply_retention(&self) -> Result<Vec<(String, Deleted)>> {
        let mut out = Vec::new();
        for (site, days) in self.store.retention_policies().await? {
            if days == 0 {
                continue;
            }
            let cutoff = now_ms() - i64::from(days) * DAY_MS;
            let deleted = self.store.delete_expired(&site, cutoff).await?;
            self.files.delete(&deleted.attachment_ids).await;
            if !deleted.conversation_ids.is_empty() {
                history::erase(&self.kb, &deleted.conversation_ids).await?;
            }
            if !deleted.conversation_ids.is_empty() || deleted.visitors > 0 {
                out.push((site, deleted));
            }
        }
        if !out.is_empty() {
            self.checkpoint().await;
        }
        Ok(out)
    }

    /// The newest audit log entries.
    pub async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        Ok(self.store.audit_log(limit.clamp(1, 1000)).await?)
    }

    /// Applies retention every `RETENTION_EVERY` until the process ends (first a minute after
    /// start). Nodes racing for the same rows delete them once.
    pub fn start_sweeper(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            loop {
                match this.apply_retention().await {
                    Ok(done) => {
                        for (site, d) in done {
                            tracing::info!(%site, conversations = d.conversation_ids.len(), messages = d.messages, visitors = d.visitors, "retention deleted old conversations");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "applying retention failed"),
                }
                tokio::time::sleep(RETENTION_EVERY).await;
            }
        });
    }
}
