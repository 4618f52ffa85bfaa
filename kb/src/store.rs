//! Storage of knowledge bases — entries and their vectors, written in one transaction — and of
//! the training data beside them (imported chat history, the FAQ review queue): SQLite (the
//! embedded default, its own file) or PostgreSQL (shared by every node of a cluster), one set of
//! queries through sqlx's `Any` driver.

use std::collections::HashMap;
use std::path::Path;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::answer::AnswerMode;
use crate::error::{KbError, Result};
use crate::index::IndexedVector;
use crate::ingest::{EntryKind, Record};
use crate::retrieve::Thresholds;

/// A knowledge base row.
#[derive(Debug, Clone, PartialEq)]
pub struct KbInfo {
    pub id: i64,
    pub name: String,
    pub model: String,
    pub dim: usize,
    /// Thresholds set for this knowledge base (unset ones follow the model's defaults).
    pub overrides: ThresholdOverrides,
    pub answer_mode: AnswerMode,
}

/// Per-knowledge-base thresholds; `None` follows the model's default.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct ThresholdOverrides {
    pub answer: Option<f32>,
    pub suggest: Option<f32>,
    pub margin: Option<f32>,
    pub doc_answer: Option<f32>,
    pub doc_suggest: Option<f32>,
}

impl ThresholdOverrides {
    /// Every threshold set to `t`'s.
    pub fn all(t: Thresholds) -> Self {
        Self {
            answer: Some(t.answer),
            suggest: Some(t.suggest),
            margin: Some(t.margin),
            doc_answer: Some(t.doc_answer),
            doc_suggest: Some(t.doc_suggest),
        }
    }

    /// The thresholds in force over `defaults`.
    pub fn apply(&self, d: Thresholds) -> Thresholds {
        Thresholds {
            answer: self.answer.unwrap_or(d.answer),
            suggest: self.suggest.unwrap_or(d.suggest),
            margin: self.margin.unwrap_or(d.margin),
            doc_answer: self.doc_answer.unwrap_or(d.doc_answer),
            doc_suggest: self.doc_suggest.unwrap_or(d.doc_suggest),
        }
    }
}

/// Counts for `kefu kb list|stats`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KbCounts {
    pub name: String,
    pub model: String,
    pub faqs: i64,
    pub chunks: i64,
    pub vectors: i64,
    pub sources: i64,
    pub created_at: String,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEntry {
    pub id: i64,
    pub kb_id: i64,
    pub key: String,
    pub kind: EntryKind,
    pub question: String,
    pub answer: String,
    pub alternates: Vec<String>,
    pub tags: Vec<String>,
    pub source: String,
}

/// A record with its embedded texts, ready to write.
pub struct EmbeddedRecord {
    pub record: Record,
    pub content_hash: String,
    pub vectors: Vec<(String, Vec<f32>)>,
}

/// What one write changed: entries to drop from the index and vectors to add.
#[derive(Debug, Default)]
pub struct WriteOutcome {
    pub added: usize,
    pub updated: usize,
    /// Entries deleted (document chunks no longer present).
    pub removed: usize,
    /// Entries whose vectors leave the index: updated and deleted ones.
    pub removed_entry_ids: Vec<i64>,
    pub new_vectors: Vec<IndexedVector>,
    /// The write generation this import committed.
    pub generation: i64,
}

/// The PostgreSQL notification channel a write to the knowledge tables signals on commit.
pub const CHANGE_CHANNEL: &str = "kefu_kb_changed";

/// Bumps the write generation inside the writing transaction; on PostgreSQL it also notifies
/// `CHANGE_CHANNEL`, which the server delivers to every listening node when the write commits.
async fn bump_generation(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<i64> {
    let generation: i64 = sqlx::query_scalar(
        "UPDATE kb_generation SET value = value + 1 WHERE id = 1 RETURNING value",
    )
    .fetch_one(&mut **tx)
    .await?;
    if tx.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGE_CHANNEL)
            .bind(generation.to_string())
            .execute(&mut **tx)
            .await?;
    }
    Ok(generation)
}

/// Refuses (`Conflict`) to write into knowledge base `kb` when it no longer exists or was switched
/// to another encoder since `kb` was read, before `during` finished.
async fn still_on_model(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    kb: &KbInfo,
    during: &str,
) -> Result<()> {
    let model: Option<String> = sqlx::query_scalar("SELECT model FROM kb_bases WHERE id = $1")
        .bind(kb.id)
        .fetch_optional(&mut **tx)
        .await?;
    if model.as_deref() == Some(kb.model.as_str()) {
        return Ok(());
    }
    Err(KbError::Conflict(format!(
        "knowledge base '{}' was switched to another encoder or deleted during {during}; run it again",
        kb.name
    )))
}

/// Inserts an entry's vectors (each checked against the knowledge base's dimension) and records
/// them in `out` for the index.
async fn insert_vectors<'v>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    kb: &KbInfo,
    entry_id: i64,
    tags: &[String],
    vectors: impl Iterator<Item = (&'v str, &'v [f32])>,
    out: &mut WriteOutcome,
) -> Result<()> {
    for (text, vector) in vectors {
        if vector.len() != kb.dim {
            return Err(KbError::InvalidInput(format!(
                "vector of {} dimensions for a {}-dimension knowledge base",
                vector.len(),
                kb.dim
            )));
        }
        let vector_id: i64 = sqlx::query_scalar(
            "INSERT INTO kb_vectors (entry_id, text, embedding) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(entry_id)
        .bind(text)
        .bind(encode_vector(vector))
        .fetch_one(&mut **tx)
        .await?;
        out.new_vectors.push(IndexedVector {
            vector_id,
            entry_id,
            kb_id: kb.id,
            tags: tags.to_vec(),
            vector: vector.to_vec(),
        });
    }
    Ok(())
}

/// The knowledge store.
#[derive(Clone)]
pub struct KbStore {
    pool: AnyPool,
    /// The PostgreSQL URL, when the store is PostgreSQL.
    url: Option<String>,
}

/// A settings update touched its knowledge base, or it does not exist.
fn updated(rows: u64, name: &str) -> Result<()> {
    if rows == 0 {
        return Err(KbError::KbNotFound(name.to_string()));
    }
    Ok(())
}

/// An optional REAL column as f32.
fn real(row: &AnyRow, column: &str) -> Result<Option<f32>> {
    Ok(row.try_get::<Option<f64>, _>(column)?.map(|v| v as f32))
}

fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn decode_vector(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// A JSON list column; damage is an error, never an empty list.
fn json_list(row: &AnyRow, column: &str) -> Result<Vec<String>> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| KbError::Corrupt(format!("kb_entries.{column}: {e}")))
}

/// How long a query waits for a pooled connection before failing (the database is down).
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Copies a SQLite database's write-ahead log into the database and empties the log file. A
/// reader in the middle of a transaction makes SQLite report "busy" and leave the log: this tries
/// again shortly, a few times.
pub async fn truncate_wal(pool: &sqlx::AnyPool) -> std::result::Result<(), sqlx::Error> {
    for _ in 0..20 {
        let busy: i64 = sqlx::query_scalar("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(pool)
            .await?;
        if busy == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Now as stored in the millisecond time columns (training tables, intent versions).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Now as stored in the text time columns (RFC 3339, milliseconds, UTC).
fn now_text() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

fn to_json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

impl KbStore {
    /// Opens (creating if needed) the SQLite database at `path` in WAL mode and migrates it.
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| KbError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        Self::connect(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    /// Connects to `url` (`sqlite://…` or `postgres://…`) and applies that engine's migrations.
    /// On PostgreSQL the knowledge tables sit beside the conversation tables (the URL's schema);
    /// their migrations are numbered from 1001 so the two migration sets share one history table.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        if is_postgres(url) {
            let pool = AnyPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect(url)
                .await?;
            let mut migrator = sqlx::migrate!("./migrations-postgres");
            migrator.set_ignore_missing(true);
            migrator.run(&pool).await?;
            return Ok(Self {
                pool,
                url: Some(url.to_string()),
            });
        }
        if !url.starts_with("sqlite:") {
            return Err(KbError::InvalidInput(
                "database URL must start with sqlite:// or postgres://".into(),
            ));
        }
        let memory = url.contains(":memory:");
        let pool = AnyPoolOptions::new()
            // An in-memory database lives as long as its one connection.
            .max_connections(if memory { 1 } else { 4 })
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    for pragma in [
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA synchronous = NORMAL",
                        "PRAGMA busy_timeout = 10000",
                        "PRAGMA foreign_keys = ON",
                        // Deleted rows (an erased visitor's chat history) are overwritten, not
                        // left in free pages.
                        "PRAGMA secure_delete = ON",
                    ] {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool, url: None })
    }

    /// After deleting personal data: on SQLite, copies the write-ahead log into the database and
    /// empties it, so no earlier version of a deleted row stays in the log file (PostgreSQL
    /// reclaims dead rows by its own vacuum).
    pub async fn checkpoint(&self) -> Result<()> {
        if self.url.is_none() {
            truncate_wal(&self.pool).await?;
        }
        Ok(())
    }

    /// An in-memory store (tests).
    pub async fn in_memory() -> Result<Self> {
        Self::connect("sqlite::memory:").await
    }

    /// Begins a write to the knowledge tables: bumps the write generation first, so the
    /// generation row's lock orders every write (two nodes importing the same file at once write
    /// one after the other instead of colliding on the same keys), and returns the generation
    /// this transaction commits.
    async fn begin_write(&self) -> Result<(sqlx::Transaction<'static, sqlx::Any>, i64)> {
        let mut tx = self.pool.begin().await?;
        let generation = bump_generation(&mut tx).await?;
        Ok((tx, generation))
    }

    /// On PostgreSQL, holds the knowledge write lock (the generation row's) without writing, until
    /// the returned transaction is dropped. An outside index (Qdrant) is brought up to the store
    /// under it, so that two nodes applying their writes to it in the wrong order cannot leave an
    /// older write's vectors behind. `None` on SQLite (one machine), where holding the database's
    /// write lock across network calls would stall every other writer.
    pub async fn hold_writes(&self) -> Result<Option<sqlx::Transaction<'static, sqlx::Any>>> {
        if !self.is_shared() {
            return Ok(None);
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT value FROM kb_generation WHERE id = 1 FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
        Ok(Some(tx))
    }

    /// Whether this store is PostgreSQL (shared by a cluster) rather than an embedded SQLite file.
    pub fn is_shared(&self) -> bool {
        self.url.is_some()
    }

    /// The PostgreSQL URL this store was opened with (to listen for changes).
    pub fn postgres_url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The connection pool (shared with other layers that keep tables in the same database).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    fn kb_from_row(row: &AnyRow) -> Result<KbInfo> {
        Ok(KbInfo {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            model: row.try_get("model")?,
            dim: row.try_get::<i64, _>("dim")? as usize,
            overrides: ThresholdOverrides {
                answer: real(row, "answer_threshold")?,
                suggest: real(row, "suggest_threshold")?,
                margin: real(row, "margin")?,
                doc_answer: real(row, "doc_answer_threshold")?,
                doc_suggest: real(row, "doc_suggest_threshold")?,
            },
            answer_mode: if row.try_get::<i64, _>("llm_answers")? != 0 {
                AnswerMode::Llm
            } else {
                let mode: String = row.try_get("answer_mode")?;
                AnswerMode::parse(&mode)
                    .ok_or_else(|| KbError::Corrupt(format!("kb_bases.answer_mode `{mode}`")))?
            },
        })
    }

    /// A knowledge base by name.
    pub async fn get_kb(&self, name: &str) -> Result<Option<KbInfo>> {
        let row = sqlx::query("SELECT * FROM kb_bases WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::kb_from_row).transpose()
    }

    /// Gets or creates a knowledge base; an existing one must have been built with `model`.
    pub async fn ensure_kb(&self, name: &str, model: &str, dim: usize) -> Result<KbInfo> {
        validate_kb_name(name)?;
        if let Some(kb) = self.get_kb(name).await? {
            if kb.model != model {
                return Err(KbError::ModelMismatch {
                    kb: name.to_string(),
                    built: kb.model,
                    active: model.to_string(),
                });
            }
            return Ok(kb);
        }
        sqlx::query(
            "INSERT INTO kb_bases (name, model, dim) VALUES ($1, $2, $3) ON CONFLICT(name) DO NOTHING",
        )
        .bind(name)
        .bind(model)
        .bind(dim as i64)
        .execute(&self.pool)
        .await?;
        self.get_kb(name)
            .await?
            .ok_or_else(|| KbError::KbNotFound(name.to_string()))
    }

    /// Sets how a knowledge base answers.
    pub async fn set_answer_mode(&self, name: &str, mode: AnswerMode) -> Result<()> {
        let (mut tx, _generation) = self.begin_write().await?;
        // `llm` keeps `extractive` as its local mode (see migration 0005).
        let (local, llm) = match mode {
            AnswerMode::Llm => (AnswerMode::Extractive, 1),
            other => (other, 0),
        };
        let done =
            sqlx::query("UPDATE kb_bases SET answer_mode = $1, llm_answers = $2 WHERE name = $3")
                .bind(local.as_str())
                .bind(llm)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        updated(done.rows_affected(), name)?;
        // Running servers cache the settings with the index: the new generation reloads them.
        tx.commit().await?;
        Ok(())
    }

    /// Sets per-knowledge-base thresholds (None follows the model default) after checking that
    /// the result can work; returns the thresholds now in force.
    pub async fn set_thresholds(&self, name: &str, t: &ThresholdOverrides) -> Result<Thresholds> {
        let info = self
            .get_kb(name)
            .await?
            .ok_or_else(|| KbError::KbNotFound(name.to_string()))?;
        let wanted = t.apply(Thresholds::for_model(&info.model));
        wanted
            .validate()
            .map_err(|e| KbError::InvalidInput(e.to_string()))?;
        let (mut tx, _generation) = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE kb_bases SET answer_threshold = $1, suggest_threshold = $2, margin = $3, \
             doc_answer_threshold = $4, doc_suggest_threshold = $5 WHERE name = $6",
        )
        .bind(t.answer.map(f64::from))
        .bind(t.suggest.map(f64::from))
        .bind(t.margin.map(f64::from))
        .bind(t.doc_answer.map(f64::from))
        .bind(t.doc_suggest.map(f64::from))
        .bind(name)
        .execute(&mut *tx)
        .await?;
        updated(done.rows_affected(), name)?;
        tx.commit().await?;
        Ok(wanted)
    }

    /// Every knowledge base with its counts.
    pub async fn list(&self) -> Result<Vec<KbCounts>> {
        let rows = sqlx::query(
            "SELECT b.name, b.model, b.created_at,
                (SELECT COUNT(*) FROM kb_entries e WHERE e.kb_id = b.id AND e.kind = 'faq') AS faqs,
                (SELECT COUNT(*) FROM kb_entries e WHERE e.kb_id = b.id AND e.kind = 'chunk') AS chunks,
                (SELECT COUNT(*) FROM kb_vectors v JOIN kb_entries e ON e.id = v.entry_id WHERE e.kb_id = b.id) AS vectors,
                (SELECT COUNT(DISTINCT source_file) FROM kb_entries e WHERE e.kb_id = b.id) AS sources
             FROM kb_bases b ORDER BY b.name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(KbCounts {
                    name: r.try_get("name")?,
                    model: r.try_get("model")?,
                    faqs: r.try_get("faqs")?,
                    chunks: r.try_get("chunks")?,
                    vectors: r.try_get("vectors")?,
                    sources: r.try_get("sources")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Deletes a knowledge base; returns the ids of its entries (to drop from the index) and the
    /// write generation it committed.
    pub async fn delete_kb(&self, name: &str) -> Result<(Vec<i64>, i64)> {
        let kb = self
            .get_kb(name)
            .await?
            .ok_or_else(|| KbError::KbNotFound(name.to_string()))?;
        let (mut tx, generation) = self.begin_write().await?;
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM kb_entries WHERE kb_id = $1")
            .bind(kb.id)
            .fetch_all(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM kb_bases WHERE id = $1")
            .bind(kb.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((ids, generation))
    }

    /// Stored content hash of every entry by key.
    pub async fn entry_hashes(&self, kb_id: i64) -> Result<HashMap<String, String>> {
        let rows = sqlx::query("SELECT key, content_hash FROM kb_entries WHERE kb_id = $1")
            .bind(kb_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("key")?, r.try_get("content_hash")?)))
            .collect()
    }

    /// Writes an import in one transaction: inserts or updates `records` by key (replacing their
    /// vectors), and removes document chunks of `replaced_files` whose keys are not in `keep_keys`.
    pub async fn write_import(
        &self,
        kb: &KbInfo,
        records: Vec<EmbeddedRecord>,
        replaced_files: &[String],
        keep_keys: &[String],
    ) -> Result<WriteOutcome> {
        let mut out = WriteOutcome::default();
        let (mut tx, generation) = self.begin_write().await?;
        still_on_model(&mut tx, kb, "the import").await?;
        for er in records {
            let r = &er.record;
            let existing: Option<i64> =
                sqlx::query_scalar("SELECT id FROM kb_entries WHERE kb_id = $1 AND key = $2")
                    .bind(kb.id)
                    .bind(&r.key)
                    .fetch_optional(&mut *tx)
                    .await?;
            let entry_id = match existing {
                Some(id) => {
                    sqlx::query(
                        "UPDATE kb_entries SET kind = $1, question = $2, answer = $3, alternates = $4, tags = $5,
                         source = $6, source_file = $7, content_hash = $8,
                         updated_at = $9 WHERE id = $10",
                    )
                    .bind(r.kind.as_str())
                    .bind(&r.question)
                    .bind(&r.answer)
                    .bind(to_json(&r.alternates))
                    .bind(to_json(&r.tags))
                    .bind(&r.source)
                    .bind(&r.source_file)
                    .bind(&er.content_hash)
                    .bind(now_text())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("DELETE FROM kb_vectors WHERE entry_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    out.updated += 1;
                    out.removed_entry_ids.push(id);
                    id
                }
                None => {
                    out.added += 1;
                    sqlx::query(
                        "INSERT INTO kb_entries (kb_id, key, kind, question, answer, alternates, tags, source, source_file, content_hash)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                    )
                    .bind(kb.id)
                    .bind(&r.key)
                    .bind(r.kind.as_str())
                    .bind(&r.question)
                    .bind(&r.answer)
                    .bind(to_json(&r.alternates))
                    .bind(to_json(&r.tags))
                    .bind(&r.source)
                    .bind(&r.source_file)
                    .bind(&er.content_hash)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get(0)?
                }
            };
            let vectors = er.vectors.iter().map(|(t, v)| (t.as_str(), v.as_slice()));
            insert_vectors(&mut tx, kb, entry_id, &r.tags, vectors, &mut out).await?;
        }
        if !replaced_files.is_empty() {
            let keep: std::collections::HashSet<&str> =
                keep_keys.iter().map(String::as_str).collect();
            for file in replaced_files {
                let rows = sqlx::query(
                    "SELECT id, key FROM kb_entries WHERE kb_id = $1 AND source_file = $2 AND kind = 'chunk'",
                )
                .bind(kb.id)
                .bind(file)
                .fetch_all(&mut *tx)
                .await?;
                for row in rows {
                    let key: String = row.try_get("key")?;
                    if keep.contains(key.as_str()) {
                        continue;
                    }
                    let id: i64 = row.try_get("id")?;
                    sqlx::query("DELETE FROM kb_entries WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    out.removed_entry_ids.push(id);
                    out.removed += 1;
                }
            }
        }
        out.generation = generation;
        tx.commit().await?;
        Ok(out)
    }

    /// The current write generation (see `kb_generation`).
    pub async fn generation(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT value FROM kb_generation WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Every stored vector (to fill the in-memory index at start-up).
    pub async fn all_vectors(&self) -> Result<Vec<IndexedVector>> {
        let rows = sqlx::query(&format!(
            "SELECT {VECTOR_COLUMNS} FROM kb_vectors v JOIN kb_entries e ON e.id = v.entry_id
             ORDER BY v.id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(vector_from_row).collect()
    }

    /// The stored vectors of these entries.
    pub async fn entry_vectors(&self, entry_ids: &[i64]) -> Result<Vec<IndexedVector>> {
        let mut out = Vec::new();
        for chunk in entry_ids.chunks(500) {
            let marks = (1..=chunk.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT {VECTOR_COLUMNS} FROM kb_vectors v JOIN kb_entries e ON e.id = v.entry_id
                 WHERE v.entry_id IN ({marks}) ORDER BY v.id"
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push(vector_from_row(&r)?);
            }
        }
        Ok(out)
    }

    /// Up to `limit` vectors of knowledge base `kb_id` with ids above `after`, by id (to fill an
    /// outside index page by page).
    pub async fn kb_vectors_after(
        &self,
        kb_id: i64,
        after: i64,
        limit: usize,
    ) -> Result<Vec<IndexedVector>> {
        let rows = sqlx::query(&format!(
            "SELECT {VECTOR_COLUMNS} FROM kb_vectors v JOIN kb_entries e ON e.id = v.entry_id
             WHERE e.kb_id = $1 AND v.id > $2 ORDER BY v.id LIMIT $3"
        ))
        .bind(kb_id)
        .bind(after)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(vector_from_row).collect()
    }

    /// The texts of these vectors (a passage's sentence that matched a query best), by id.
    pub async fn vector_texts(&self, ids: &[i64]) -> Result<HashMap<i64, String>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let marks = (1..=ids.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("SELECT id, text FROM kb_vectors WHERE id IN ({marks})");
        let mut q = sqlx::query(&sql);
        for id in ids {
            q = q.bind(id);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("text")?)))
            .collect()
    }

    /// Every knowledge base (the settings a running server caches with its index).
    pub async fn all_kbs(&self) -> Result<Vec<KbInfo>> {
        let rows = sqlx::query("SELECT * FROM kb_bases ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::kb_from_row).collect()
    }

    /// Every entry (a running server keeps them with its index, so a query reads no rows).
    pub async fn all_entries(&self) -> Result<Vec<StoredEntry>> {
        let rows = sqlx::query(&format!(
            "SELECT {ENTRY_COLUMNS} FROM kb_entries ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// One entry of knowledge base `kb_id`.
    pub async fn entry(&self, kb_id: i64, id: i64) -> Result<StoredEntry> {
        let row = sqlx::query(&format!(
            "SELECT {ENTRY_COLUMNS} FROM kb_entries WHERE kb_id = $1 AND id = $2"
        ))
        .bind(kb_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| KbError::NotFound(format!("no entry {id} in this knowledge base")))?;
        entry_from_row(&row)
    }

    /// A page of knowledge base `kb_id`'s entries (oldest first) matching `filter`, and how many
    /// match in all.
    pub async fn entries(
        &self,
        kb_id: i64,
        filter: &EntryFilter,
    ) -> Result<(Vec<StoredEntry>, i64)> {
        let pattern = filter.text.as_deref().map(|t| {
            let escaped = t
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        });
        let condition =
            "kb_id = $1 AND ($2 IS NULL OR kind = $3) AND ($4 IS NULL OR question LIKE $5 ESCAPE '\\' \
             OR answer LIKE $6 ESCAPE '\\' OR alternates LIKE $7 ESCAPE '\\' OR key = $8)";
        let kind = filter.kind.map(EntryKind::as_str);
        let total: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM kb_entries WHERE {condition}"
        ))
        .bind(kb_id)
        .bind(kind)
        .bind(kind)
        .bind(pattern.as_deref())
        .bind(pattern.as_deref())
        .bind(pattern.as_deref())
        .bind(pattern.as_deref())
        .bind(filter.text.as_deref())
        .fetch_one(&self.pool)
        .await?;
        let rows = sqlx::query(&format!(
            "SELECT {ENTRY_COLUMNS} FROM kb_entries WHERE {condition} ORDER BY id LIMIT $9 OFFSET $10"
        ))
        .bind(kb_id)
        .bind(kind)
        .bind(kind)
        .bind(pattern.as_deref())
        .bind(pattern.as_deref())
        .bind(pattern.as_deref())
        .bind(pattern.as_deref())
        .bind(filter.text.as_deref())
        .bind(filter.limit as i64)
        .bind(filter.offset as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok((
            rows.iter().map(entry_from_row).collect::<Result<_>>()?,
            total,
        ))
    }

    /// Deletes one entry of `kb` with its vectors, in one transaction.
    pub async fn delete_entry(&self, kb: &KbInfo, id: i64) -> Result<WriteOutcome> {
        let (mut tx, generation) = self.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM kb_entries WHERE kb_id = $1 AND id = $2")
            .bind(kb.id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(KbError::NotFound(format!(
                "no entry {id} in this knowledge base"
            )));
        }
        let mut out = WriteOutcome {
            removed: 1,
            removed_entry_ids: vec![id],
            ..WriteOutcome::default()
        };
        out.generation = generation;
        tx.commit().await?;
        Ok(out)
    }
}

/// Which entries `KbStore::entries` lists.
#[derive(Debug, Clone, Default)]
pub struct EntryFilter {
    /// Text the question, answer or an alternate contains (or the exact key).
    pub text: Option<String>,
    pub kind: Option<EntryKind>,
    pub offset: u32,
    pub limit: u32,
}

const ENTRY_COLUMNS: &str = "id, kb_id, key, kind, question, answer, alternates, tags, source";

fn entry_from_row(r: &AnyRow) -> Result<StoredEntry> {
    let kind: String = r.try_get("kind")?;
    Ok(StoredEntry {
        id: r.try_get("id")?,
        kb_id: r.try_get("kb_id")?,
        key: r.try_get("key")?,
        kind: EntryKind::parse(&kind)
            .ok_or_else(|| KbError::Corrupt(format!("kb_entries.kind `{kind}`")))?,
        question: r.try_get("question")?,
        answer: r.try_get("answer")?,
        alternates: json_list(r, "alternates")?,
        tags: json_list(r, "tags")?,
        source: r.try_get("source")?,
    })
}

/// A knowledge base's entries re-embedded with another encoder (`KbStore::switch_model`).
pub struct ReembeddedEntry {
    pub entry_id: i64,
    pub content_hash: String,
    pub vectors: Vec<(String, Vec<f32>)>,
}

impl KbStore {
    /// A knowledge base's entries as the records they were imported from, with their entry id
    /// and content hash (to embed them again with another encoder).
    pub async fn entry_records(&self, kb_id: i64) -> Result<Vec<(i64, Record, String)>> {
        let rows = sqlx::query(
            "SELECT id, key, kind, question, answer, alternates, tags, source, source_file, \
             content_hash FROM kb_entries WHERE kb_id = $1 ORDER BY id",
        )
        .bind(kb_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                let record = Record {
                    key: r.try_get("key")?,
                    kind: EntryKind::parse(&kind)
                        .ok_or_else(|| KbError::Corrupt(format!("kb_entries.kind `{kind}`")))?,
                    question: r.try_get("question")?,
                    answer: r.try_get("answer")?,
                    alternates: json_list(r, "alternates")?,
                    tags: json_list(r, "tags")?,
                    source: r.try_get("source")?,
                    source_file: r.try_get("source_file")?,
                };
                Ok((r.try_get("id")?, record, r.try_get("content_hash")?))
            })
            .collect()
    }

    /// Switches knowledge base `kb` to the encoder `model` in one transaction: every entry's
    /// vectors are replaced by `entries`' and its content hash updated, and the knowledge base
    /// records the new model. Refused with `KbError::Conflict` when the knowledge base changed
    /// since `expected` (entry id → content hash, as read before embedding) or is no longer on
    /// `kb.model`: nothing is written then.
    pub async fn switch_model(
        &self,
        kb: &KbInfo,
        model: &str,
        expected: &HashMap<i64, String>,
        entries: Vec<ReembeddedEntry>,
    ) -> Result<WriteOutcome> {
        let (mut tx, generation) = self.begin_write().await?;
        still_on_model(&mut tx, kb, "re-embedding").await?;
        let rows = sqlx::query("SELECT id, content_hash, tags FROM kb_entries WHERE kb_id = $1")
            .bind(kb.id)
            .fetch_all(&mut *tx)
            .await?;
        let mut now = HashMap::new();
        let mut tags = HashMap::new();
        for r in &rows {
            let id: i64 = r.try_get("id")?;
            now.insert(id, r.try_get::<String, _>("content_hash")?);
            tags.insert(id, json_list(r, "tags")?);
        }
        if &now != expected || entries.len() != now.len() {
            return Err(KbError::Conflict(format!(
                "knowledge base '{}' changed while it was being re-embedded; run it again",
                kb.name
            )));
        }
        let mut out = WriteOutcome::default();
        for e in entries {
            sqlx::query("DELETE FROM kb_vectors WHERE entry_id = $1")
                .bind(e.entry_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE kb_entries SET content_hash = $1 WHERE id = $2")
                .bind(&e.content_hash)
                .bind(e.entry_id)
                .execute(&mut *tx)
                .await?;
            let entry_tags = tags.get(&e.entry_id).cloned().unwrap_or_default();
            let vectors = e.vectors.iter().map(|(t, v)| (t.as_str(), v.as_slice()));
            insert_vectors(&mut tx, kb, e.entry_id, &entry_tags, vectors, &mut out).await?;
            out.updated += 1;
            out.removed_entry_ids.push(e.entry_id);
        }
        sqlx::query("UPDATE kb_bases SET model = $1 WHERE id = $2")
            .bind(model)
            .bind(kb.id)
            .execute(&mut *tx)
            .await?;
        out.generation = generation;
        tx.commit().await?;
        Ok(out)
    }
}

/// The columns `vector_from_row` reads (`v`: `kb_vectors`, `e`: `kb_entries`).
const VECTOR_COLUMNS: &str = "v.id, v.entry_id, e.kb_id, e.tags, v.embedding";

fn vector_from_row(r: &AnyRow) -> Result<IndexedVector> {
    Ok(IndexedVector {
        vector_id: r.try_get("id")?,
        entry_id: r.try_get("entry_id")?,
        kb_id: r.try_get("kb_id")?,
        tags: json_list(r, "tags")?,
        vector: decode_vector(&r.try_get::<Vec<u8>, _>("embedding")?),
    })
}

/// Knowledge base names: 1–64 characters of letters, digits, `-`, `_` or `.` (any script).
pub fn validate_kb_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(KbError::InvalidInput(format!(
            "knowledge base name {name:?} must be 1-64 letters, digits, '-', '_' or '.'"
        )))
    }
}
