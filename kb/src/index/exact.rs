//! The embedded exact index: every vector in one contiguous row-major matrix, scanned in full for
//! each query (exact top-k, no recall loss). The rows mirror what SQLite stores; the store reloads
//! them at start-up, so SQLite stays the one source of truth.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::RwLock;

use async_trait::async_trait;

use super::{best_per_entry, candidate_count, IndexedVector, SearchFilter, VectorHit, VectorIndex};
use crate::error::{KbError, Result};

/// Dot product, written as eight independent lanes so the compiler emits SIMD multiply-adds.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[derive(Debug, Clone)]
struct RowMeta {
    vector_id: i64,
    entry_id: i64,
    kb_id: i64,
    tags: Vec<u32>,
}

#[derive(Default)]
struct Matrix {
    dim: usize,
    data: Vec<f32>,
    rows: Vec<RowMeta>,
    row_of: HashMap<i64, usize>,
    tag_ids: HashMap<String, u32>,
}

impl Matrix {
    fn tag_id(&mut self, tag: &str) -> u32 {
        let next = self.tag_ids.len() as u32;
        *self.tag_ids.entry(tag.to_string()).or_insert(next)
    }

    fn remove_row(&mut self, row: usize) {
        let last = self.rows.len() - 1;
        let dim = self.dim;
        if row != last {
            self.data
                .copy_within(last * dim..(last + 1) * dim, row * dim);
            self.rows.swap(row, last);
            self.row_of.insert(self.rows[row].vector_id, row);
        }
        self.data.truncate(last * dim);
        if let Some(meta) = self.rows.pop() {
            self.row_of.remove(&meta.vector_id);
        }
    }
}

/// Exact in-memory index.
#[derive(Default)]
pub struct ExactIndex {
    inner: RwLock<Matrix>,
}

#[derive(PartialEq)]
struct Scored(f32, usize);
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    // Reversed: the heap's top is the worst kept candidate.
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.total_cmp(&self.0)
    }
}

impl ExactIndex {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock_err() -> KbError {
        KbError::Index("exact index lock poisoned".into())
    }

    /// Synchronous search (the async trait method wraps this).
    pub fn search_sync(
        &self,
        query: &[f32],
        filter: &SearchFilter,
        k: usize,
    ) -> Result<Vec<VectorHit>> {
        let m = self.inner.read().map_err(|_| Self::lock_err())?;
        if k == 0 || m.rows.is_empty() {
            return Ok(Vec::new());
        }
        if query.len() != m.dim {
            return Err(KbError::InvalidInput(format!(
                "query vector has {} dimensions, index has {}",
                query.len(),
                m.dim
            )));
        }
        let wanted: Vec<u32> = filter
            .tags
            .iter()
            .filter_map(|t| m.tag_ids.get(t).copied())
            .collect();
        if !filter.tags.is_empty() && wanted.is_empty() {
            return Ok(Vec::new());
        }
        let cap = candidate_count(k);
        let mut heap: BinaryHeap<Scored> = BinaryHeap::with_capacity(cap + 1);
        for (row, meta) in m.rows.iter().enumerate() {
            if meta.kb_id != filter.kb_id {
                continue;
            }
            if !wanted.is_empty() && !meta.tags.iter().any(|t| wanted.contains(t)) {
                continue;
            }
            let s = dot(query, &m.data[row * m.dim..(row + 1) * m.dim]);
            if heap.len() < cap {
                heap.push(Scored(s, row));
            } else if heap.peek().is_some_and(|w| s > w.0) {
                heap.pop();
                heap.push(Scored(s, row));
            }
        }
        let hits = heap
            .into_iter()
            .map(|Scored(score, row)| VectorHit {
                entry_id: m.rows[row].entry_id,
                vector_id: m.rows[row].vector_id,
                score,
            })
            .collect();
        Ok(best_per_entry(hits, k))
    }

    /// The best cosine of each of `entry_ids` (those held) against `query`: how hybrid search
    /// scores an entry that only the lexical index found.
    pub fn score_entries(&self, query: &[f32], entry_ids: &[i64]) -> Result<Vec<VectorHit>> {
        let m = self.inner.read().map_err(|_| Self::lock_err())?;
        if entry_ids.is_empty() || query.len() != m.dim {
            return Ok(Vec::new());
        }
        let hits = m
            .rows
            .iter()
            .enumerate()
            .filter(|(_, meta)| entry_ids.contains(&meta.entry_id))
            .map(|(row, meta)| VectorHit {
                entry_id: meta.entry_id,
                vector_id: meta.vector_id,
                score: dot(query, &m.data[row * m.dim..(row + 1) * m.dim]),
            })
            .collect();
        Ok(best_per_entry(hits, entry_ids.len()))
    }

    /// Replaces the whole content with `items` (a reload from the store).
    pub fn replace_all(&self, items: Vec<IndexedVector>) -> Result<()> {
        let fresh = ExactIndex::new();
        fresh.upsert_sync(items)?;
        let matrix = fresh.inner.into_inner().map_err(|_| Self::lock_err())?;
        *self.inner.write().map_err(|_| Self::lock_err())? = matrix;
        Ok(())
    }

    /// Synchronous upsert.
    pub fn upsert_sync(&self, items: Vec<IndexedVector>) -> Result<()> {
        let mut m = self.inner.write().map_err(|_| Self::lock_err())?;
        for item in items {
            if m.dim == 0 {
                m.dim = item.vector.len();
            }
            if item.vector.len() != m.dim || m.dim == 0 {
                return Err(KbError::InvalidInput(format!(
                    "vector has {} dimensions, index has {}",
                    item.vector.len(),
                    m.dim
                )));
            }
            let tags = item.tags.iter().map(|t| m.tag_id(t)).collect();
            let meta = RowMeta {
                vector_id: item.vector_id,
                entry_id: item.entry_id,
                kb_id: item.kb_id,
                tags,
            };
            let dim = m.dim;
            match m.row_of.get(&item.vector_id).copied() {
                Some(row) => {
                    m.data[row * dim..(row + 1) * dim].copy_from_slice(&item.vector);
                    m.rows[row] = meta;
                }
                None => {
                    let row = m.rows.len();
                    m.data.extend_from_slice(&item.vector);
                    m.rows.push(meta);
                    m.row_of.insert(item.vector_id, row);
                }
            }
        }
        Ok(())
    }

    /// Synchronous removal.
    pub fn remove_entries_sync(&self, entry_ids: &[i64]) -> Result<()> {
        let mut m = self.inner.write().map_err(|_| Self::lock_err())?;
        let doomed: std::collections::HashSet<i64> = entry_ids.iter().copied().collect();
        let mut row = 0;
        while row < m.rows.len() {
            if doomed.contains(&m.rows[row].entry_id) {
                m.remove_row(row);
            } else {
                row += 1;
            }
        }
        Ok(())
    }

    pub fn len_sync(&self) -> usize {
        self.inner.read().map(|m| m.rows.len()).unwrap_or(0)
    }
}

#[async_trait]
impl VectorIndex for ExactIndex {
    async fn upsert(&self, items: Vec<IndexedVector>) -> Result<()> {
        self.upsert_sync(items)
    }
    async fn remove_entries(&self, entry_ids: &[i64]) -> Result<()> {
        self.remove_entries_sync(entry_ids)
    }
    async fn search(
        &self,
        query: &[f32],
        filter: &SearchFilter,
        k: usize,
    ) -> Result<Vec<VectorHit>> {
        self.search_sync(query, filter, k)
    }
    async fn score_entries(
        &self,
        query: &[f32],
        _filter: &SearchFilter,
        entry_ids: &[i64],
    ) -> Result<Vec<VectorHit>> {
        // The lexical index already kept to the filter's knowledge base and tags.
        ExactIndex::score_entries(self, query, entry_ids)
    }
    async fn len(&self) -> Result<usize> {
        Ok(self.len_sync())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    fn item(vector_id: i64, entry_id: i64, kb_id: i64, tags: &[&str], v: &[f32]) -> IndexedVector {
        IndexedVector {
            vector_id,
            entry_id,
            kb_id,
            tags: tags.iter().map(|s| s.to_string()).collect(),
            vector: unit(v),
        }
    }

    #[test]
    fn dot_matches_naive_for_odd_lengths() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.1).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }

    #[test]
    fn top_k_is_exact_deduped_and_filtered() {
        let idx = ExactIndex::new();
        idx.upsert_sync(vec![
            item(1, 10, 1, &["ship"], &[1.0, 0.0, 0.0]),
            item(2, 10, 1, &["ship"], &[0.9, 0.1, 0.0]), // same entry, alternate
            item(3, 11, 1, &["pay"], &[0.7, 0.7, 0.0]),
            item(4, 12, 2, &[], &[1.0, 0.0, 0.0]), // other kb
            item(5, 13, 1, &[], &[0.0, 0.0, 1.0]),
        ])
        .expect("upsert");
        let q = unit(&[1.0, 0.05, 0.0]);
        let hits = idx
            .search_sync(
                &q,
                &SearchFilter {
                    kb_id: 1,
                    tags: vec![],
                },
                3,
            )
            .expect("search");
        let ids: Vec<i64> = hits.iter().map(|h| h.entry_id).collect();
        assert_eq!(ids, vec![10, 11, 13]);
        assert!(hits[0].score > hits[1].score);

        let tagged = idx
            .search_sync(
                &q,
                &SearchFilter {
                    kb_id: 1,
                    tags: vec!["pay".into()],
                },
                3,
            )
            .expect("search");
        assert_eq!(
            tagged.iter().map(|h| h.entry_id).collect::<Vec<_>>(),
            vec![11]
        );

        let none = idx
            .search_sync(
                &q,
                &SearchFilter {
                    kb_id: 1,
                    tags: vec!["missing".into()],
                },
                3,
            )
            .expect("search");
        assert!(none.is_empty());
    }

    #[test]
    fn upsert_replaces_and_remove_keeps_others_findable() {
        let idx = ExactIndex::new();
        idx.upsert_sync(vec![
            item(1, 10, 1, &[], &[1.0, 0.0]),
            item(2, 11, 1, &[], &[0.0, 1.0]),
            item(3, 12, 1, &[], &[0.6, 0.8]),
        ])
        .expect("upsert");
        idx.upsert_sync(vec![item(1, 10, 1, &[], &[0.0, 1.0])])
            .expect("replace");
        assert_eq!(idx.len_sync(), 3);
        idx.remove_entries_sync(&[11]).expect("remove");
        assert_eq!(idx.len_sync(), 2);
        let hits = idx
            .search_sync(
                &[0.0, 1.0],
                &SearchFilter {
                    kb_id: 1,
                    tags: vec![],
                },
                5,
            )
            .expect("search");
        assert_eq!(hits[0].entry_id, 10);
        assert_eq!(hits.len(), 2);
        assert!(idx
            .search_sync(
                &[1.0, 0.0, 0.0],
                &SearchFilter {
                    kb_id: 1,
                    tags: vec![]
                },
                1
            )
            .is_err());
    }
}
