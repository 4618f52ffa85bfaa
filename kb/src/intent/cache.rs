//! A content-addressed cache of sentence embeddings (SQLite file beside the data): retraining or
//! re-evaluating on the same texts skips the encoder, and an interrupted embedding run resumes
//! where it stopped (each chunk is committed as it finishes).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::Row;

use crate::embed::{Embedder, TextRole};
use crate::error::{KbError, Result};

/// Texts embedded per committed chunk.
pub const CHUNK: usize = 256;

/// Embedding cache keyed by sha256(model, role, text), questions also by `colloquial::RECIPE`.
#[derive(Clone)]
pub struct EmbeddingCache {
    pool: SqlitePool,
}

/// Reports (done, total) texts as embedding progresses.
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Send + Sync);

impl EmbeddingCache {
    /// Opens (creating) the cache file.
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| KbError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS embeddings (key BLOB PRIMARY KEY, vector BLOB NOT NULL)",
        )
        .execute(&pool)
        .await?;
        Ok(Self { pool })
    }

    fn key(model: &str, role: TextRole, text: &str) -> Vec<u8> {
        let mut h = Sha256::new();
        h.update(model.as_bytes());
        h.update([0]);
        match role {
            // Questions are read with standard spellings (`colloquial`): a vector cached before
            // that reading, or under another table, is not reused.
            TextRole::Query => {
                h.update(b"q");
                h.update(crate::colloquial::RECIPE.as_bytes());
            }
            TextRole::Passage => h.update(b"p"),
        }
        h.update([0]);
        h.update(text.as_bytes());
        h.finalize().to_vec()
    }

    async fn lookup(&self, keys: &[Vec<u8>], dim: usize) -> Result<HashMap<Vec<u8>, Vec<f32>>> {
        let mut found = HashMap::new();
        for chunk in keys.chunks(500) {
            let placeholders = vec!["?"; chunk.len()].join(",");
            let sql = format!("SELECT key, vector FROM embeddings WHERE key IN ({placeholders})");
            let mut q = sqlx::query(&sql);
            for k in chunk {
                q = q.bind(k.as_slice());
            }
            for row in q.fetch_all(&self.pool).await? {
                let key: Vec<u8> = row.try_get("key")?;
                let blob: Vec<u8> = row.try_get("vector")?;
                if blob.len() == dim * 4 {
                    let v = blob
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                    found.insert(key, v);
                }
            }
        }
        Ok(found)
    }

    async fn store(&self, rows: &[(Vec<u8>, Vec<f32>)]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (key, v) in rows {
            let blob: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            sqlx::query("INSERT OR REPLACE INTO embeddings (key, vector) VALUES (?, ?)")
                .bind(key.as_slice())
                .bind(blob)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One vector per text, in order: cached ones are read, the rest embedded `CHUNK` at a time
    /// on `workers` blocking threads and stored. A joined embedder's parts are cached each under
    /// its own name (a second encoder reuses the main one's vectors) and concatenated.
    pub async fn embed(
        &self,
        embedder: &Arc<dyn Embedder>,
        texts: &[String],
        role: TextRole,
        workers: usize,
        progress: Progress<'_>,
    ) -> Result<Vec<Vec<f32>>> {
        let Some(parts) = embedder.joined_parts() else {
            return self
                .embed_one(embedder, texts, role, workers, progress)
                .await;
        };
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        let n = parts.len();
        for (i, part) in parts.iter().enumerate() {
            let scaled = |done: usize, total: usize| progress(i * total + done, n * total);
            let vectors = self.embed_one(part, texts, role, workers, &scaled).await?;
            for (o, v) in out.iter_mut().zip(vectors) {
                o.extend(v);
            }
        }
        Ok(out)
    }

    /// `embed` for one encoder.
    async fn embed_one(
        &self,
        embedder: &Arc<dyn Embedder>,
        texts: &[String],
        role: TextRole,
        workers: usize,
        progress: Progress<'_>,
    ) -> Result<Vec<Vec<f32>>> {
        let model = embedder.model_name().to_string();
        let dim = embedder.dim();
        let keys: Vec<Vec<u8>> = texts.iter().map(|t| Self::key(&model, role, t)).collect();
        let mut known = self.lookup(&keys, dim).await?;
        // Distinct missing texts, first occurrence order.
        let mut missing: Vec<(Vec<u8>, String)> = Vec::new();
        let mut queued = std::collections::HashSet::new();
        for (k, t) in keys.iter().zip(texts) {
            if !known.contains_key(k) && queued.insert(k.clone()) {
                missing.push((k.clone(), t.clone()));
            }
        }
        let total = texts.len();
        let mut done = total - missing.len();
        progress(done, total);
        let workers = workers.max(1);
        for group in missing.chunks(CHUNK * workers) {
            let mut handles = Vec::new();
            for part in group.chunks(CHUNK) {
                let embedder = Arc::clone(embedder);
                let part = part.to_vec();
                handles.push(tokio::task::spawn_blocking(move || {
                    let refs: Vec<&str> = part.iter().map(|(_, t)| t.as_str()).collect();
                    embedder
                        .embed(&refs, role)
                        .map(|vs| part.into_iter().map(|(k, _)| k).zip(vs).collect::<Vec<_>>())
                }));
            }
            for h in handles {
                let rows = h
                    .await
                    .map_err(|e| KbError::Index(format!("embedding worker: {e}")))??;
                self.store(&rows).await?;
                done += rows.len();
                progress(done.min(total), total);
                known.extend(rows);
            }
        }
        keys.iter()
            .map(|k| {
                known
                    .get(k)
                    .cloned()
                    .ok_or_else(|| KbError::Index("embedding missing after caching".into()))
            })
            .collect()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::concat::ConcatEmbedder;
    use crate::embed::testing::{CountingEmbedder, HashingEmbedder};

    #[tokio::test]
    async fn joined_encoders_are_cached_part_by_part() {
        let dir = tempfile::tempdir().expect("tmp");
        let cache = EmbeddingCache::open(&dir.path().join("c.db"))
            .await
            .expect("open");
        let main = Arc::new(CountingEmbedder::new(HashingEmbedder::new(16)));
        let second = Arc::new(CountingEmbedder::new(HashingEmbedder::named("second", 8)));
        let texts: Vec<String> = ["多久发货", "where is my parcel", "多久发货"]
            .map(String::from)
            .into();
        let main_dyn: Arc<dyn Embedder> = main.clone();
        let alone = cache
            .embed(&main_dyn, &texts, TextRole::Query, 1, &|_, _| {})
            .await
            .expect("main");
        assert_eq!(main.count(), 2, "distinct texts only");

        let joined = ConcatEmbedder::join(main_dyn, vec![second.clone()]).expect("join");
        let seen = std::sync::Mutex::new(Vec::new());
        let vectors = cache
            .embed(&joined, &texts, TextRole::Query, 1, &|d, t| {
                seen.lock().expect("lock").push((d, t))
            })
            .await
            .expect("joined");
        assert_eq!(main.count(), 2, "the main part came from the cache");
        assert_eq!(second.count(), 2);
        let direct = joined
            .embed(&["多久发货", "where is my parcel"], TextRole::Query)
            .expect("direct");
        assert_eq!(vectors[0], direct[0]);
        assert_eq!(vectors[1], direct[1]);
        assert_eq!(vectors[0][..16], alone[0][..]);
        let seen = seen.into_inner().expect("lock");
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
        assert_eq!(seen.last(), Some(&(6, 6)));
    }
}
