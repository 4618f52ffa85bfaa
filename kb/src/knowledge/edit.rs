//! Entries one at a time, as the operator's console edits them: entries listed and
//! searched page by page, an FAQ written or changed by hand (embedded and written in one
//! transaction, like an import of one row), an entry deleted.

use super::import::{content_hash, embed_records};
use super::Knowledge;
use crate::error::{KbError, Result};
use crate::ingest::{faq, EntryKind};
use crate::store::{EmbeddedRecord, EntryFilter, KbInfo, StoredEntry};

/// Most entries one page lists.
pub const MAX_PAGE: u32 = 200;
/// Most alternate phrasings and tags an FAQ written by hand may have.
pub const MAX_ALTERNATES: usize = 50;
pub const MAX_TAGS: usize = 20;
/// What FAQs written in the console are recorded as coming from.
pub const CONSOLE_SOURCE: &str = "console";

/// An FAQ as the operator writes it.
#[derive(Debug, Clone, Default)]
pub struct FaqEdit {
    pub question: String,
    pub answer: String,
    pub alternates: Vec<String>,
    pub tags: Vec<String>,
}

/// A page of entries and how many match in all.
#[derive(Debug, Clone)]
pub struct EntryPage {
    pub entries: Vec<StoredEntry>,
    pub total: i64,
}

impl Knowledge {
    async fn kb_info(&self, kb: &str) -> Result<KbInfo> {
        self.store
            .get_kb(kb)
            .await?
            .ok_or_else(|| KbError::KbNotFound(kb.to_string()))
    }

    /// A page of `kb`'s entries matching `filter` (its limit capped at `MAX_PAGE`).
    pub async fn entries(&self, kb: &str, filter: &EntryFilter) -> Result<EntryPage> {
        let info = self.kb_info(kb).await?;
        let mut filter = filter.clone();
        filter.limit = filter.limit.clamp(1, MAX_PAGE);
        filter.text = filter.text.filter(|t| !t.trim().is_empty());
        let (entries, total) = self.store.entries(info.id, &filter).await?;
        Ok(EntryPage { entries, total })
    }

    /// One entry of `kb`.
    pub async fn entry(&self, kb: &str, id: i64) -> Result<StoredEntry> {
        let info = self.kb_info(kb).await?;
        self.store.entry(info.id, id).await
    }

    /// Writes an FAQ: a new one (`id` none; `kb` is created if needed, as by an import) or entry
    /// `id` changed (an FAQ only: a document's passages change when the document is uploaded
    /// again). Its texts are embedded with the knowledge base's encoder and the entry and its
    /// vectors written in one transaction. A re-import of the file an FAQ came from overwrites
    /// an edit of it.
    pub async fn put_faq(&self, kb: &str, id: Option<i64>, edit: FaqEdit) -> Result<StoredEntry> {
        if edit.alternates.len() > MAX_ALTERNATES || edit.tags.len() > MAX_TAGS {
            return Err(KbError::InvalidInput(format!(
                "at most {MAX_ALTERNATES} alternates and {MAX_TAGS} tags"
            )));
        }
        let info = match id {
            Some(_) => self.kb_info(kb).await?,
            None => match self.store.get_kb(kb).await? {
                Some(info) => info,
                None => {
                    crate::store::validate_kb_name(kb)?;
                    let running = self.embedder();
                    self.store
                        .ensure_kb(kb, running.model_name(), running.dim())
                        .await?
                }
            },
        };
        let alternates = edit
            .alternates
            .iter()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
        let tags = edit
            .tags
            .iter()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
        let mut record = faq::build(
            None,
            &edit.question,
            &edit.answer,
            alternates,
            tags,
            CONSOLE_SOURCE,
        )
        .map_err(|e| KbError::InvalidInput(e.to_string()))?;
        match id {
            Some(id) => {
                let existing = self.store.entry(info.id, id).await?;
                if existing.kind != EntryKind::Faq {
                    return Err(KbError::InvalidInput(
                        "a document's passages change when the document is uploaded again".into(),
                    ));
                }
                record.key = existing.key;
                record.source = existing.source.clone();
                record.source_file = existing.source;
            }
            None => {
                if self
                    .store
                    .entry_hashes(info.id)
                    .await?
                    .contains_key(&record.key)
                {
                    return Err(KbError::Conflict(format!(
                        "an FAQ with the question {:?} exists already: edit that one",
                        record.question
                    )));
                }
            }
        }
        let encoder = self.encoder_of(&info).await?;
        let vectors = embed_records(encoder, &[&record], &|_, _| {}).await?;
        let key = record.key.clone();
        let embedded = EmbeddedRecord {
            content_hash: content_hash(&record, &info.model),
            record,
            vectors: vectors.into_iter().next().unwrap_or_default(),
        };
        let outcome = self
            .store
            .write_import(&info, vec![embedded], &[], &[])
            .await?;
        let entry_id = outcome
            .new_vectors
            .first()
            .map(|v| v.entry_id)
            .or(id)
            .ok_or_else(|| KbError::Corrupt(format!("entry {key:?} written without vectors")))?;
        self.apply_write(outcome).await?;
        self.store.entry(info.id, entry_id).await
    }

    /// Deletes entry `id` of `kb` and its vectors.
    pub async fn delete_entry(&self, kb: &str, id: i64) -> Result<()> {
        let info = self.kb_info(kb).await?;
        let outcome = self.store.delete_entry(&info, id).await?;
        self.apply_write(outcome).await
    }
}
