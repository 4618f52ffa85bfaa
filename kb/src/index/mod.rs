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
