//! The in-process view of the knowledge store, kept in step with the store (the one source of
//! truth, SQLite or PostgreSQL): the vector index (exact in memory, or an outside one such as
//! Qdrant), the lexical index, and the knowledge bases' settings and entries, so that a query
//! reads at most one row (the write generation) instead of the knowledge base and its entries.
//! Another process's write bumps the generation and the next check reloads everything; this
//! process's own writes are applied in place. On SQLite every query checks; on PostgreSQL a query
//! checks at most once a second, and a change notification (`Knowledge::follow_changes`) marks
//! the view stale at once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::error::{KbError, Result};
use crate::index::exact::ExactIndex;
use crate::index::lexical::{LexicalDoc, LexicalIndex};
use crate::index::{IndexedVector, KbSpace, SearchFilter, VectorIndex};
use crate::store::{KbInfo, KbStore, StoredEntry};

/// Candidates each index contributes to hybrid retrieval.
const HYBRID_CANDIDATES: usize = 20;
/// Weight of the lexical match (0–1) added to the cosine in hybrid retrieval, chosen on the demo
/// and XQuAD eval sets (0.2–0.4 measured alike; 0 loses 5–10 points of right answers).
const LEXICAL_WEIGHT: f32 = 0.3;

/// Vectors read from the store per page when an outside index's collection is filled.
const FILL_PAGE: usize = 1024;

/// How often a query on a shared (PostgreSQL) store reads the write generation when no change
/// notification arrived: the longest a missed notification can delay a change.
pub(super) const SHARED_POLL: Duration = Duration::from_secs(1);

/// An entry found by hybrid retrieval, with the vector that matched it best.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct HybridHit {
    pub entry_id: i64,
    pub vector_id: i64,
    pub score: f32,
    /// The lexical match alone (`LexicalIndex::search`'s score, 0 when it did not find the entry).
    pub lexical: f32,
}

/// What `SyncedIndex::sync_outside` does besides routing.
#[derive(Default)]
struct OutsideSync<'a> {
    /// Drop spaces no knowledge base uses.
    prune: bool,
    /// Knowledge bases whose spaces are dropped and filled anew.
    rebuild: &'a [i64],
    /// Entries whose vectors are made the store's.
    touched: &'a [i64],
}

/// Knowledge bases and entries as of the loaded generation.
#[derive(Default)]
struct Catalog {
    kbs: HashMap<String, KbInfo>,
    entries: HashMap<i64, Arc<StoredEntry>>,
}

/// The indexes and the cached rows, with the store generation they reflect.
pub(super) struct SyncedIndex {
    vectors: Arc<dyn VectorIndex>,
    /// The in-process index, when that is the vector index in use (reloaded from the store).
    exact: Option<Arc<ExactIndex>>,
    lexical: LexicalIndex,
    catalog: RwLock<Catalog>,
    loaded_generation: AtomicI64,
    /// Held while the view changes, so a reload and a write never interleave.
    reload: tokio::sync::Mutex<()>,
    /// Shortest time between two reads of the generation (zero: every query reads it).
    poll: Duration,
    /// Milliseconds after `started` of the last generation read.
    last_check_ms: AtomicI64,
    started: Instant,
    /// Set by a change notification: the next query reads the generation whatever `poll` says.
    stale: AtomicBool,
}

impl SyncedIndex {
    /// The exact in-memory index, filled from `store`.
    pub async fn exact(store: &KbStore) -> Result<Self> {
        let exact = Arc::new(ExactIndex::new());
        let mut index = Self::new(exact.clone(), Some(exact), -1);
        if store.is_shared() {
            index.poll = SHARED_POLL;
        }
        index.refresh(store).await?;
        Ok(index)
    }

    /// An outside vector index (Qdrant), which keeps its own copy of the vectors: routed to each
    /// knowledge base's space, and the spaces missing there created and filled from `store`.
    pub async fn outside(store: &KbStore, vectors: Arc<dyn VectorIndex>) -> Result<Self> {
        let mut index = Self::new(vectors, None, -1);
        if store.is_shared() {
            index.poll = SHARED_POLL;
        }
        index.refresh(store).await?;
        Ok(index)
    }

    fn new(vectors: Arc<dyn VectorIndex>, exact: Option<Arc<ExactIndex>>, generation: i64) -> Self {
        Self {
            vectors,
            exact,
            lexical: LexicalIndex::new(),
            catalog: RwLock::new(Catalog::default()),
            // -1 is never a real generation: the first refresh loads.
            loaded_generation: AtomicI64::new(generation),
            reload: tokio::sync::Mutex::new(()),
            poll: Duration::ZERO,
            last_check_ms: AtomicI64::new(i64::MIN / 2),
            started: Instant::now(),
            stale: AtomicBool::new(false),
        }
    }

    /// Marks the view stale: the next `refresh` reads the generation (a change notification).
    pub fn mark_stale(&self) {
        self.stale.store(true, Ordering::Release);
    }

    /// Whether `refresh` should read the generation now: always on SQLite; on PostgreSQL after a
    /// notification or once `poll` has passed since the last read.
    fn due(&self) -> bool {
        let now = self.started.elapsed().as_millis() as i64;
        if self.stale.swap(false, Ordering::AcqRel) || self.poll.is_zero() {
            self.last_check_ms.store(now, Ordering::Release);
            return true;
        }
        let last = self.last_check_ms.load(Ordering::Acquire);
        now - last >= self.poll.as_millis() as i64
            && self
                .last_check_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Reloads everything if the store was written by someone else since it was loaded (checked
    /// when `due`). An outside index keeps its vectors (the writer put them there); only its
    /// routing follows.
    pub async fn refresh(&self, store: &KbStore) -> Result<()> {
        if !self.due() {
            return Ok(());
        }
        if store.generation().await? == self.loaded_generation.load(Ordering::Acquire) {
            return Ok(());
        }
        let _guard = self.reload.lock().await;
        // Read the generation before the rows: a write landing in between triggers another reload.
        let current = store.generation().await?;
        if current != self.loaded_generation.load(Ordering::Acquire) {
            match &self.exact {
                Some(exact) => exact.replace_all(store.all_vectors().await?)?,
                None => {
                    self.sync_outside(store, OutsideSync::default()).await?;
                }
            }
            self.reload_rows(store).await?;
            let first = self.loaded_generation.swap(current, Ordering::AcqRel) < 0;
            if !first {
                tracing::info!(
                    generation = current,
                    "reloaded the in-process indexes after an outside write"
                );
            }
        }
        Ok(())
    }

    /// Applies this process's own committed write (`generation`): `removed` entries' vectors
    /// dropped, `added` ones added, the rows reloaded. An outside index is brought up to the
    /// store for every entry the write touched instead (see `sync_outside`). No full reload
    /// follows, unless someone else wrote in between (then the generation skipped one and the
    /// next query reloads).
    pub async fn apply_own_write(
        &self,
        store: &KbStore,
        removed: &[i64],
        added: Vec<IndexedVector>,
        generation: i64,
    ) -> Result<()> {
        let _guard = self.reload.lock().await;
        if self.exact.is_some() {
            self.vectors.remove_entries(removed).await?;
            self.vectors.upsert(added).await?;
        } else {
            let mut touched: Vec<i64> = removed.to_vec();
            touched.extend(added.iter().map(|v| v.entry_id));
            touched.sort_unstable();
            touched.dedup();
            let sync = OutsideSync {
                prune: true,
                touched: &touched,
                ..OutsideSync::default()
            };
            self.sync_outside(store, sync).await?;
        }
        self.reload_rows(store).await?;
        let _ = self.loaded_generation.compare_exchange(
            generation - 1,
            generation,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        Ok(())
    }

    /// Rebuilds the vector index from the store: the in-process one whole, an outside one's
    /// spaces of `kb_ids` (every knowledge base when `None`) dropped, created and filled anew.
    /// Returns the vectors written.
    pub async fn reindex(&self, store: &KbStore, kb_ids: Option<&[i64]>) -> Result<usize> {
        let _guard = self.reload.lock().await;
        let current = store.generation().await?;
        let written = match &self.exact {
            Some(exact) => {
                let vectors = store.all_vectors().await?;
                let n = vectors.len();
                exact.replace_all(vectors)?;
                n
            }
            None => {
                let all: Vec<i64> = store.all_kbs().await?.iter().map(|k| k.id).collect();
                let sync = OutsideSync {
                    prune: true,
                    rebuild: kb_ids.unwrap_or(&all),
                    ..OutsideSync::default()
                };
                self.sync_outside(store, sync).await?
            }
        };
        self.reload_rows(store).await?;
        self.loaded_generation.store(current, Ordering::Release);
        Ok(written)
    }

    /// Brings an outside index up to the store, under the store's write lock (`hold_writes`):
    /// `rebuild`'s spaces dropped; every knowledge base routed to the space of its encoder,
    /// missing spaces created and filled from the store (with `prune`, unused ones dropped); the
    /// vectors of the `touched` entries made exactly the store's. Returns the vectors filled.
    async fn sync_outside(&self, store: &KbStore, sync: OutsideSync<'_>) -> Result<usize> {
        // A reader that only routes needs the lock just to fill a space it had to create.
        let writes = !sync.rebuild.is_empty() || !sync.touched.is_empty();
        let mut hold = if writes {
            store.hold_writes().await?
        } else {
            None
        };
        for kb_id in sync.rebuild {
            self.vectors.drop_space(*kb_id).await?;
        }
        let spaces: Vec<KbSpace> = store
            .all_kbs()
            .await?
            .iter()
            .map(|k| KbSpace {
                kb_id: k.id,
                model: k.model.clone(),
                dim: k.dim,
            })
            .collect();
        let created = self.vectors.sync_spaces(&spaces, sync.prune).await?;
        if hold.is_none() && !created.is_empty() {
            hold = store.hold_writes().await?;
        }
        let mut filled = 0;
        for kb_id in &created {
            filled += self.fill(store, *kb_id).await?;
        }
        if !sync.touched.is_empty() {
            // Entries of a space just filled already hold the store's vectors.
            let (filled_now, current): (Vec<IndexedVector>, Vec<IndexedVector>) = store
                .entry_vectors(sync.touched)
                .await?
                .into_iter()
                .partition(|v| created.contains(&v.kb_id));
            let filled_now: HashSet<i64> = filled_now.iter().map(|v| v.entry_id).collect();
            let touched: Vec<i64> = sync
                .touched
                .iter()
                .copied()
                .filter(|id| !filled_now.contains(id))
                .collect();
            self.vectors.replace_entries(&touched, current).await?;
        }
        drop(hold);
        Ok(filled)
    }

    /// Re-reads the knowledge bases and entries, and rebuilds the lexical index from them.
    async fn reload_rows(&self, store: &KbStore) -> Result<()> {
        let kbs = store.all_kbs().await?;
        let entries = store.all_entries().await?;
        self.lexical
            .replace_all(entries.iter().map(lexical_doc).collect())?;
        let catalog = Catalog {
            kbs: kbs.into_iter().map(|k| (k.name.clone(), k)).collect(),
            entries: entries.into_iter().map(|e| (e.id, Arc::new(e))).collect(),
        };
        *self
            .catalog
            .write()
            .map_err(|_| KbError::Index("the knowledge catalog lock is poisoned".into()))? =
            catalog;
        Ok(())
    }

    /// Copies knowledge base `kb_id`'s vectors from the store into the vector index, page by page.
    async fn fill(&self, store: &KbStore, kb_id: i64) -> Result<usize> {
        let (mut after, mut written) = (0, 0);
        loop {
            let page = store.kb_vectors_after(kb_id, after, FILL_PAGE).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.vector_id;
            written += page.len();
            self.vectors.upsert(page).await?;
        }
        if written > 0 {
            tracing::info!(
                kb_id,
                vectors = written,
                "filled the vector index from the store"
            );
        }
        Ok(written)
    }

    /// A knowledge base's settings as loaded.
    pub fn kb(&self, name: &str) -> Result<Option<KbInfo>> {
        Ok(self.read()?.kbs.get(name).cloned())
    }

    /// Entries by id as loaded (missing ids are skipped).
    pub fn entries(&self, ids: &[i64]) -> Result<HashMap<i64, Arc<StoredEntry>>> {
        let catalog = self.read()?;
        Ok(ids
            .iter()
            .filter_map(|id| catalog.entries.get(id).map(|e| (*id, Arc::clone(e))))
            .collect())
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, Catalog>> {
        self.catalog
            .read()
            .map_err(|_| KbError::Index("the knowledge catalog lock is poisoned".into()))
    }

    /// Vectors held by the vector index.
    pub async fn len(&self) -> Result<usize> {
        self.vectors.len().await
    }

    /// Hybrid retrieval: the vector index's and the lexical index's candidates, each scored
    /// `cosine + LEXICAL_WEIGHT × lexical match`; best `top_k` first. Entries
    /// only the lexical index found get their cosine from the vector index (`score_entries`).
    pub(super) async fn hybrid(
        &self,
        kb_id: i64,
        text: &str,
        vector: &[f32],
        filter: &SearchFilter,
        top_k: usize,
    ) -> Result<Vec<HybridHit>> {
        let wanted = top_k.max(HYBRID_CANDIDATES);
        let dense = self.vectors.search(vector, filter, wanted).await?;
        let lexical = self
            .lexical
            .search(kb_id, &filter.tags, text, HYBRID_CANDIDATES)?;
        // entry -> (its best vector and that vector's cosine, lexical match)
        let mut scores: HashMap<i64, (Option<(i64, f32)>, f32)> = dense
            .iter()
            .map(|h| (h.entry_id, (Some((h.vector_id, h.score)), 0.0)))
            .collect();
        for l in &lexical {
            scores.entry(l.entry_id).or_insert((None, 0.0)).1 = l.score;
        }
        let missing: Vec<i64> = scores
            .iter()
            .filter(|(_, s)| s.0.is_none())
            .map(|(id, _)| *id)
            .collect();
        for h in self.vectors.score_entries(vector, filter, &missing).await? {
            if let Some(s) = scores.get_mut(&h.entry_id) {
                s.0 = Some((h.vector_id, h.score));
            }
        }
        let mut out: Vec<HybridHit> = scores
            .into_iter()
            .filter_map(|(entry_id, (best, lex))| {
                best.map(|(vector_id, cos)| HybridHit {
                    entry_id,
                    vector_id,
                    score: cos + LEXICAL_WEIGHT * lex,
                    lexical: lex,
                })
            })
            .collect();
        out.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.entry_id.cmp(&b.entry_id))
        });
        out.truncate(top_k);
        Ok(out)
    }
}

/// An entry's searchable text: a FAQ's question, alternates and answer; a passage's heading path
/// and text.
fn lexical_doc(e: &StoredEntry) -> LexicalDoc {
    let mut text = e.question.clone();
    for alt in &e.alternates {
        text.push('\n');
        text.push_str(alt);
    }
    text.push('\n');
    text.push_str(&e.answer);
    LexicalDoc {
        entry_id: e.id,
        kb_id: e.kb_id,
        tags: e.tags.clone(),
        text,
    }
}
