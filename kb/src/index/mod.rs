//! Indexes: the `VectorIndex` trait, the embedded exact index (default) and Qdrant (scale-out), and
//! the in-process lexical (BM25) index that hybrid retrieval fuses with them.

pub mod exact;
pub mod int8;
pub mod lexical;
#[cfg(feature = "qdrant")]
pub mod qdrant;

use async_trait::async_trait;

use crate::error::Result;

/// One stored vector: a question, alternate phrasing or document chunk of an entry.
#[derive(Debug, Clone)]
pub struct IndexedVector {
    pub vector_id: i64,
    pub entry_id: i64,
    pub kb_id: i64,
    pub tags: Vec<String>,
    pub vector: Vec<f32>,
}

/// What to search: one knowledge base, optionally only entries carrying any of `tags`.
#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    pub kb_id: i64,
    pub tags: Vec<String>,
}

/// A knowledge base and the encoder its vectors come from (with their dimension): an outside index
/// keeps one collection per space, so a knowledge base switched to another encoder gets a new one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KbSpace {
    pub kb_id: i64,
    pub model: String,
    pub dim: usize,
}

/// An entry's best-matching vector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VectorHit {
    pub entry_id: i64,
    pub vector_id: i64,
    pub score: f32,
}

/// Top-k nearest entries by cosine similarity (vectors are L2-normalised, so by dot product).
/// Results are per entry (an entry's best vector), best first.
#[async_trait]
pub trait VectorIndex: Send + Sync {
    /// Inserts or replaces vectors by `vector_id`.
    async fn upsert(&self, items: Vec<IndexedVector>) -> Result<()>;
    /// Removes every vector of these entries.
    async fn remove_entries(&self, entry_ids: &[i64]) -> Result<()>;
    /// Makes `vectors` the only vectors of `entry_ids` (an entry without any in `vectors` has
    /// none afterwards).
    async fn replace_entries(&self, entry_ids: &[i64], vectors: Vec<IndexedVector>) -> Result<()> {
        self.remove_entries(entry_ids).await?;
        self.upsert(vectors).await
    }
    /// The `k` best entries matching `filter`.
    async fn search(
        &self,
        query: &[f32],
        filter: &SearchFilter,
        k: usize,
    ) -> Result<Vec<VectorHit>>;
    /// The best cosine of each of `entry_ids` (those held and matching `filter`) against `query`:
    /// how hybrid retrieval scores an entry that only the lexical index found.
    async fn score_entries(
        &self,
        query: &[f32],
        filter: &SearchFilter,
        entry_ids: &[i64],
    ) -> Result<Vec<VectorHit>>;
    /// Number of vectors held.
    async fn len(&self) -> Result<usize>;
    /// Routes each knowledge base to the space of its current encoder, creating the spaces that do
    /// not exist yet; returns the knowledge bases whose space was just created (empty, to be filled
    /// from the store). With `prune`, drops this index's spaces that no knowledge base uses any
    /// more (a deleted knowledge base's, the old encoder's after a switch). The in-process index
    /// holds every knowledge base in one space: nothing to do.
    async fn sync_spaces(&self, spaces: &[KbSpace], prune: bool) -> Result<Vec<i64>> {
        let _ = (spaces, prune);
        Ok(Vec::new())
    }
    /// Drops knowledge base `kb_id`'s space, so that the next `sync_spaces` creates it anew (a
    /// rebuild from the store). The in-process index is rebuilt whole instead.
    async fn drop_space(&self, kb_id: i64) -> Result<()> {
        let _ = kb_id;
        Ok(())
    }
    /// True when no vectors are held.
    async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }
}

/// How many vector candidates to gather to be able to return `k` distinct entries.
pub(crate) fn candidate_count(k: usize) -> usize {
    k.saturating_mul(4).saturating_add(16)
}

/// Keeps each entry's best hit, best first, at most `k`.
pub(crate) fn best_per_entry(mut hits: Vec<VectorHit>, k: usize) -> Vec<VectorHit> {
    hits.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut seen = std::collections::HashSet::new();
    hits.retain(|h| seen.insert(h.entry_id));
    hits.truncate(k);
    hits
}
