//! The embedded exact index: every vector in one contiguous row-major matrix, with its int8 code
//! beside it. A query scans the codes in full, keeps every row whose error bound says it could be
//! in the top-k, and re-scores only those in f32: the f32 exact top-k (no recall loss) for a quarter
//! of the bytes read. The rows mirror what SQLite stores; the store reloads them at start-up, so
//! SQLite stays the one source of truth.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::RwLock;

use async_trait::async_trait;

use super::int8::{self, RowCode};
use super::{best_per_entry, candidate_count, IndexedVector, SearchFilter, VectorHit, VectorIndex};
use crate::embed::kernels;
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
    /// The rows' int8 codes, row-major like `data`.
    codes: Vec<i8>,
    code_meta: Vec<RowCode>,
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
            self.codes
                .copy_within(last * dim..(last + 1) * dim, row * dim);
            self.code_meta.swap(row, last);
            self.rows.swap(row, last);
            self.row_of.insert(self.rows[row].vector_id, row);
        }
        self.data.truncate(last * dim);
        self.codes.truncate(last * dim);
        self.code_meta.truncate(last);
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
        let dim = m.dim;
        let query_code = int8::QueryCode::new(query);
        // The `cap` best lower bounds so far: no row whose upper bound is under the worst of them
        // can be among the `cap` best by f32 score.
        let mut lower: BinaryHeap<Scored> = BinaryHeap::with_capacity(cap + 1);
        let mut candidates: Vec<(usize, f32)> = Vec::new();
        let mut dots: Vec<i32> = Vec::new();
        let mut row = 0;
        while row < m.rows.len() {
            // A run of rows of this knowledge base (imports append them together): their int8
            // dot products in one kernel call.
            if m.rows[row].kb_id != filter.kb_id {
                row += 1;
                continue;
            }
            let start = row;
            while row < m.rows.len() && m.rows[row].kb_id == filter.kb_id {
                row += 1;
            }
            dots.resize(row - start, 0);
            kernels::dot_i8_rows(
                query_code.codes(),
                &m.codes[start * dim..row * dim],
                &mut dots,
            );
            for (r, dot_q) in (start..row).zip(&dots) {
                if !wanted.is_empty() && !m.rows[r].tags.iter().any(|t| wanted.contains(t)) {
                    continue;
                }
                let (approx, bound) = query_code.estimate(*dot_q, &m.code_meta[r]);
                let low = approx - bound;
                if lower.len() < cap {
                    lower.push(Scored(low, r));
                } else if lower.peek().is_some_and(|w| low > w.0) {
                    lower.pop();
                    lower.push(Scored(low, r));
                }
                if approx + bound >= Self::floor(&lower, cap) {
                    candidates.push((r, approx + bound));
                }
            }
        }
        let floor = Self::floor(&lower, cap);
        let mut hits: Vec<VectorHit> = candidates
            .into_iter()
            .filter(|(_, upper)| *upper >= floor)
            .map(|(row, _)| VectorHit {
                entry_id: m.rows[row].entry_id,
                vector_id: m.rows[row].vector_id,
                score: dot(query, &m.data[row * dim..(row + 1) * dim]),
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(cap);
        Ok(best_per_entry(hits, k))
    }

    /// The worst of the `cap` best lower bounds (none until there are `cap`).
    fn floor(lower: &BinaryHeap<Scored>, cap: usize) -> f32 {
        match lower.peek() {
            Some(w) if lower.len() >= cap => w.0,
            _ => f32::NEG_INFINITY,
        }
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
            let code = int8::quantize(&item.vector);
            match m.row_of.get(&item.vector_id).copied() {
                Some(row) => {
                    m.data[row * dim..(row + 1) * dim].copy_from_slice(&item.vector);
                    m.codes[row * dim..(row + 1) * dim].copy_from_slice(&code.codes);
                    m.code_meta[row] = code.row;
                    m.rows[row] = meta;
                }
                None => {
                    let row = m.rows.len();
                    m.data.extend_from_slice(&item.vector);
                    m.codes.extend_from_slice(&code.codes);
                    m.code_meta.push(code.row);
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

    /// Deterministic pseudo-random unit vectors, some of them near-duplicates of others.
    fn corpus(n: usize, dim: usize, seed: &mut u64) -> Vec<Vec<f32>> {
        let mut next = || {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            (*seed % 20_001) as f32 / 10_000.0 - 1.0
        };
        let mut out: Vec<Vec<f32>> = Vec::with_capacity(n);
        for i in 0..n {
            let v: Vec<f32> = if n > 1_000 && i >= n - 150 {
                // A dense cluster around one vector: more rows than the candidates kept, all
                // scoring within the int8 error of each other.
                out[0].iter().map(|x| x + 0.0005 * next()).collect()
            } else if i % 5 == 4 {
                // A close paraphrase of an earlier vector.
                out[i / 2].iter().map(|x| x + 0.002 * next()).collect()
            } else {
                (0..dim).map(|_| next()).collect()
            };
            out.push(unit(&v));
        }
        out
    }

    /// The f32 top-k by scanning every row: what the index must return.
    fn brute_force(
        rows: &[IndexedVector],
        query: &[f32],
        filter: &SearchFilter,
        k: usize,
    ) -> Vec<VectorHit> {
        let mut hits: Vec<VectorHit> = rows
            .iter()
            .filter(|r| r.kb_id == filter.kb_id)
            .filter(|r| filter.tags.is_empty() || r.tags.iter().any(|t| filter.tags.contains(t)))
            .map(|r| VectorHit {
                entry_id: r.entry_id,
                vector_id: r.vector_id,
                score: dot(query, &r.vector),
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(candidate_count(k));
        best_per_entry(hits, k)
    }

    #[test]
    fn int8_first_pass_returns_exactly_the_f32_top_k() {
        let mut seed = 0x5EED_u64;
        for dim in [384, 37] {
            let vectors = corpus(3_000, dim, &mut seed);
            let rows: Vec<IndexedVector> = vectors
                .iter()
                .enumerate()
                .map(|(i, v)| IndexedVector {
                    vector_id: i as i64,
                    entry_id: if i < 2_850 { (i / 3) as i64 } else { i as i64 },
                    kb_id: 1 + (i % 4 == 0 && i < 2_850) as i64,
                    tags: if i % 3 == 0 { vec!["t".into()] } else { vec![] },
                    vector: v.clone(),
                })
                .collect();
            let idx = ExactIndex::new();
            idx.upsert_sync(rows.clone()).expect("upsert");
            let queries = corpus(60, dim, &mut seed);
            // Queries near stored vectors too: many candidates within the error bound.
            let near: Vec<Vec<f32>> = vectors.iter().step_by(97).cloned().collect();
            let cluster = [vectors[0].clone(), vectors[vectors.len() - 1].clone()];
            for q in queries.iter().chain(&near).chain(&cluster) {
                for (k, tags) in [
                    (1, vec![]),
                    (5, vec![]),
                    (20, vec![]),
                    (60, vec![]),
                    (5, vec!["t".to_string()]),
                ] {
                    let filter = SearchFilter { kb_id: 1, tags };
                    let got = idx.search_sync(q, &filter, k).expect("search");
                    assert_eq!(got, brute_force(&rows, q, &filter, k), "dim {dim}, k {k}");
                }
            }
        }
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
