//! The knowledge-base service: imports files (parse all, embed what changed, write in one
//! transaction, then update the index) and answers queries with scored hits and a band.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::answer::plan;
use crate::embed::{Embedder, TextRole};
use crate::error::{KbError, Result};
use crate::index::exact::ExactIndex;
use crate::index::lexical::LexicalIndex;
use crate::index::{SearchFilter, VectorIndex};
use crate::ingest::{self, FileKind, Record};
use crate::retrieve::{Hit, Retrieval, Thresholds};
use crate::store::{EmbeddedRecord, KbCounts, KbInfo, KbStore};

/// The knowledge base every command uses unless told otherwise.
pub const DEFAULT_KB: &str = "default";
/// Most hits a query may ask for.
pub const MAX_TOP_K: usize = 50;
/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 2000;
/// Candidates each index contributes to hybrid retrieval.
const HYBRID_CANDIDATES: usize = 20;
/// Weight of the lexical match (0–1) added to the cosine in hybrid retrieval, chosen on the demo
/// and XQuAD eval sets (0.2–0.4 measured alike; 0 loses 5–10 points of right answers).
const LEXICAL_WEIGHT: f32 = 0.3;
/// Texts embedded per progress step during import.
const IMPORT_BATCH: usize = 64;

/// A file's content to import.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Name recorded as the entries' source (e.g. the file name).
    pub name: String,
    pub kind: FileKind,
    pub text: String,
}

impl SourceFile {
    /// Reads a file from disk; it is recorded under its file name.
    pub fn read(path: &Path) -> Result<Self> {
        let kind = FileKind::of(path)?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("input")
            .to_string();
        let bytes = std::fs::read(path).map_err(|source| KbError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| KbError::Parse {
            file: name.clone(),
            line: e.as_bytes()[..e.utf8_error().valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1,
            message: "file is not valid UTF-8".into(),
        })?;
        Ok(Self {
            name,
            kind,
            text: text.trim_start_matches('\u{feff}').to_string(),
        })
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ImportReport {
    pub files: usize,
    pub entries: usize,
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub removed: usize,
    pub vectors_embedded: usize,
}

/// Progress callback: (texts embedded so far, texts to embed).
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// Store + index + embedder.
pub struct Knowledge {
    store: KbStore,
    index: Arc<dyn VectorIndex>,
    embedder: Arc<dyn Embedder>,
    /// The in-process index, when that is the index in use: reloaded from the store when another
    /// process has written to it since (`loaded_generation` behind the store's generation).
    exact: Option<Arc<ExactIndex>>,
    loaded_generation: AtomicI64,
    reload: tokio::sync::Mutex<()>,
    /// The lexical (BM25) index over entry texts, rebuilt from the store with the vector index.
    lexical: LexicalIndex,
}

impl Knowledge {
    /// The embedded default: SQLite at `db_path` and the exact in-memory index loaded from it.
    pub async fn open_embedded(db_path: &Path, embedder: Arc<dyn Embedder>) -> Result<Self> {
        let store = KbStore::open(db_path).await?;
        Self::with_exact_index(store, embedder).await
    }

    /// Any store with the exact index filled from it.
    pub async fn with_exact_index(store: KbStore, embedder: Arc<dyn Embedder>) -> Result<Self> {
        let generation = store.generation().await?;
        let index = Arc::new(ExactIndex::new());
        index.upsert_sync(store.all_vectors().await?)?;
        let lexical = LexicalIndex::new();
        lexical.replace_all(store.lexical_docs().await?)?;
        Ok(Self {
            store,
            index: index.clone(),
            embedder,
            exact: Some(index),
            loaded_generation: AtomicI64::new(generation),
            reload: tokio::sync::Mutex::new(()),
            lexical,
        })
    }

    /// Reloads the in-process indexes (the exact vector index when it is the one in use, and the
    /// lexical index) if the store was written by someone else since they were loaded.
    async fn refresh_index(&self) -> Result<()> {
        if self.store.generation().await? == self.loaded_generation.load(Ordering::Acquire) {
            return Ok(());
        }
        let _guard = self.reload.lock().await;
        // Read the generation before the entries: a write landing in between triggers another reload.
        let current = self.store.generation().await?;
        if current != self.loaded_generation.load(Ordering::Acquire) {
            if let Some(exact) = &self.exact {
                exact.replace_all(self.store.all_vectors().await?)?;
            }
            self.lexical.replace_all(self.store.lexical_docs().await?)?;
            self.loaded_generation.store(current, Ordering::Release);
            tracing::info!(
                generation = current,
                "reloaded the in-process indexes after an outside write"
            );
        }
        Ok(())
    }

    /// A store with another index (e.g. Qdrant), which keeps its own copy of the vectors.
    pub fn with_index(
        store: KbStore,
        embedder: Arc<dyn Embedder>,
        index: Arc<dyn VectorIndex>,
    ) -> Self {
        Self {
            store,
            index,
            embedder,
            exact: None,
            // Never a real generation: the first query builds the lexical index.
            loaded_generation: AtomicI64::new(-1),
            reload: tokio::sync::Mutex::new(()),
            lexical: LexicalIndex::new(),
        }
    }

    pub fn store(&self) -> &KbStore {
        &self.store
    }

    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.embedder
    }

    /// Embeds on a blocking thread.
    async fn embed(&self, texts: Vec<String>, role: TextRole) -> Result<Vec<Vec<f32>>> {
        let embedder = self.embedder.clone();
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            embedder.embed(&refs, role)
        })
        .await
        .map_err(|e| KbError::Index(format!("embedding task failed: {e}")))?
    }

    /// Reads paths (directories recursively) and imports them; nothing is written if any file fails.
    pub async fn import_paths(
        &self,
        kb: &str,
        paths: &[PathBuf],
        progress: Progress<'_>,
    ) -> Result<ImportReport> {
        let files = ingest::expand_paths(paths)?;
        let sources = files
            .iter()
            .map(|p| SourceFile::read(p))
            .collect::<Result<Vec<_>>>()?;
        self.import(kb, sources, progress).await
    }

    /// Imports file contents into `kb` (created if needed). FAQs are upserted by key; a document's
    /// chunks replace that document's previous chunks. Unchanged entries are not re-embedded.
    pub async fn import(
        &self,
        kb: &str,
        sources: Vec<SourceFile>,
        progress: Progress<'_>,
    ) -> Result<ImportReport> {
        let mut records: Vec<Record> = Vec::new();
        let mut doc_files = Vec::new();
        let mut seen = HashSet::new();
        for s in &sources {
            let recs = ingest::parse_text(s.kind, &s.text, &s.name)?;
            if matches!(s.kind, FileKind::Markdown | FileKind::Html | FileKind::Text) {
                doc_files.push(s.name.clone());
            }
            for r in recs {
                if !seen.insert(r.key.clone()) {
                    return Err(KbError::Parse {
                        file: s.name.clone(),
                        line: 0,
                        message: format!(
                            "entry {:?} appears in more than one imported file",
                            r.key
                        ),
                    });
                }
                records.push(r);
            }
        }
        let info = self
            .store
            .ensure_kb(kb, self.embedder.model_name(), self.embedder.dim())
            .await?;
        let stored = self.store.entry_hashes(info.id).await?;
        let mut report = ImportReport {
            files: sources.len(),
            entries: records.len(),
            ..Default::default()
        };
        let keep_keys: Vec<String> = records.iter().map(|r| r.key.clone()).collect();
        let changed: Vec<(Record, String)> = records
            .into_iter()
            .filter_map(|r| {
                let h = content_hash(&r, &info.model);
                if stored.get(&r.key) == Some(&h) {
                    report.unchanged += 1;
                    None
                } else {
                    Some((r, h))
                }
            })
            .collect();

        let texts: Vec<(usize, String, TextRole)> = changed
            .iter()
            .enumerate()
            .flat_map(|(i, (r, _))| {
                r.embed_texts()
                    .into_iter()
                    .map(move |(t, role)| (i, t, role))
            })
            .collect();
        let total = texts.len();
        progress(0, total);
        let mut vectors: Vec<Vec<(String, Vec<f32>)>> = vec![Vec::new(); changed.len()];
        for role in [TextRole::Query, TextRole::Passage] {
            let batch: Vec<&(usize, String, TextRole)> =
                texts.iter().filter(|t| t.2 == role).collect();
            for group in batch.chunks(IMPORT_BATCH) {
                let embedded = self
                    .embed(group.iter().map(|t| t.1.clone()).collect(), role)
                    .await?;
                for (t, v) in group.iter().zip(embedded) {
                    vectors[t.0].push((t.1.clone(), v));
                }
                report.vectors_embedded += group.len();
                progress(report.vectors_embedded, total);
            }
        }
        let embedded: Vec<EmbeddedRecord> = changed
            .into_iter()
            .zip(vectors)
            .map(|((record, content_hash), vectors)| EmbeddedRecord {
                record,
                content_hash,
                vectors,
            })
            .collect();
        let outcome = self
            .store
            .write_import(&info, embedded, &doc_files, &keep_keys)
            .await?;
        report.added = outcome.added;
        report.updated = outcome.updated;
        report.removed = outcome.removed;
        let _guard = self.reload.lock().await;
        self.index
            .remove_entries(&outcome.removed_entry_ids)
            .await?;
        self.index.upsert(outcome.new_vectors).await?;
        self.lexical.replace_all(self.store.lexical_docs().await?)?;
        self.note_own_write(outcome.generation);
        Ok(report)
    }

    /// Thresholds in force for a knowledge base.
    pub fn thresholds(info: &KbInfo) -> Thresholds {
        info.overrides.apply(Thresholds::for_model(&info.model))
    }

    async fn kb_for_query(&self, kb: &str) -> Result<KbInfo> {
        let info = self
            .store
            .get_kb(kb)
            .await?
            .ok_or_else(|| KbError::KbNotFound(kb.to_string()))?;
        if info.model != self.embedder.model_name() {
            return Err(KbError::ModelMismatch {
                kb: kb.to_string(),
                built: info.model,
                active: self.embedder.model_name().to_string(),
            });
        }
        Ok(info)
    }

    /// Answers one query.
    pub async fn query(
        &self,
        kb: &str,
        text: &str,
        top_k: usize,
        tags: &[String],
    ) -> Result<Retrieval> {
        let mut out = self
            .query_many(kb, &[text.to_string()], top_k, tags)
            .await?;
        out.pop().ok_or_else(|| KbError::Index("no result".into()))
    }

    /// Answers several queries with one embedding batch.
    pub async fn query_many(
        &self,
        kb: &str,
        texts: &[String],
        top_k: usize,
        tags: &[String],
    ) -> Result<Vec<Retrieval>> {
        let vectors = self.embed_queries(texts).await?;
        self.search_many(kb, texts, &vectors, top_k, tags).await
    }

    /// Embeds queries (checked like `query_many`'s) in one batch.
    pub async fn embed_queries(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        for t in texts {
            if t.trim().is_empty() {
                return Err(KbError::InvalidInput("query is empty".into()));
            }
            if t.chars().count() > MAX_QUERY_CHARS {
                return Err(KbError::InvalidInput(format!(
                    "query is longer than {MAX_QUERY_CHARS} characters"
                )));
            }
        }
        self.embed(texts.to_vec(), TextRole::Query).await
    }

    /// Retrieves for one query already embedded (by `embed_queries`).
    pub async fn search(
        &self,
        kb: &str,
        text: &str,
        vector: &[f32],
        top_k: usize,
        tags: &[String],
    ) -> Result<Retrieval> {
        self.search_many(kb, &[text.to_string()], &[vector.to_vec()], top_k, tags)
            .await?
            .pop()
            .ok_or_else(|| KbError::Index("no result".into()))
    }

    /// Retrieves for queries already embedded: the index and the knowledge base are checked once.
    pub async fn search_many(
        &self,
        kb: &str,
        texts: &[String],
        vectors: &[Vec<f32>],
        top_k: usize,
        tags: &[String],
    ) -> Result<Vec<Retrieval>> {
        if top_k == 0 || top_k > MAX_TOP_K {
            return Err(KbError::InvalidInput(format!(
                "top_k must be between 1 and {MAX_TOP_K}"
            )));
        }
        if texts.len() != vectors.len() || vectors.iter().any(|v| v.len() != self.embedder.dim()) {
            return Err(KbError::InvalidInput(
                "one query vector of the model's length is needed per text".into(),
            ));
        }
        self.refresh_index().await?;
        let info = self.kb_for_query(kb).await?;
        let thresholds = Self::thresholds(&info);
        let filter = SearchFilter {
            kb_id: info.id,
            tags: tags.iter().map(|t| t.to_lowercase()).collect(),
        };
        let mut out = Vec::with_capacity(texts.len());
        for (text, vector) in texts.iter().zip(vectors) {
            let found = self.hybrid(info.id, text, vector, &filter, top_k).await?;
            let ids: Vec<i64> = found.iter().map(|h| h.0).collect();
            let entries = self.store.entries(&ids).await?;
            let hits: Vec<Hit> = found
                .iter()
                .filter_map(|&(entry_id, score)| {
                    entries.get(&entry_id).map(|e| Hit {
                        id: e.key.strip_prefix("id:").unwrap_or(&e.key).to_string(),
                        question: e.question.clone(),
                        answer: e.answer.clone(),
                        score,
                        source: e.source.clone(),
                        kind: e.kind.as_str().to_string(),
                        tags: e.tags.clone(),
                    })
                })
                .collect();
            out.push(Retrieval {
                query: text.clone(),
                band: plan(&hits, &thresholds, None, info.answer_mode).band(),
                hits,
                thresholds,
                answer_mode: info.answer_mode,
            });
        }
        Ok(out)
    }

    /// Hybrid retrieval: the vector index's and the lexical index's candidates, each scored
    /// `cosine + LEXICAL_WEIGHT × lexical match`; best `top_k` (entry id, score) first. Entries
    /// only the lexical index found get their cosine from the exact index (an outside index such
    /// as Qdrant re-ranks its own candidates only).
    async fn hybrid(
        &self,
        kb_id: i64,
        text: &str,
        vector: &[f32],
        filter: &SearchFilter,
        top_k: usize,
    ) -> Result<Vec<(i64, f32)>> {
        let wanted = top_k.max(HYBRID_CANDIDATES);
        let dense = self.index.search(vector, filter, wanted).await?;
        let lexical = self
            .lexical
            .search(kb_id, &filter.tags, text, HYBRID_CANDIDATES)?;
        let mut scores: HashMap<i64, (Option<f32>, f32)> = dense
            .iter()
            .map(|h| (h.entry_id, (Some(h.score), 0.0)))
            .collect();
        for l in &lexical {
            scores.entry(l.entry_id).or_insert((None, 0.0)).1 = l.score;
        }
        let missing: Vec<i64> = scores
            .iter()
            .filter(|(_, s)| s.0.is_none())
            .map(|(id, _)| *id)
            .collect();
        if let Some(exact) = &self.exact {
            for h in exact.score_entries(vector, &missing)? {
                if let Some(s) = scores.get_mut(&h.entry_id) {
                    s.0 = Some(h.score);
                }
            }
        }
        let mut out: Vec<(i64, f32)> = scores
            .into_iter()
            .filter_map(|(id, (cos, lex))| cos.map(|c| (id, c + LEXICAL_WEIGHT * lex)))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(top_k);
        Ok(out)
    }

    /// Every knowledge base with counts.
    pub async fn list(&self) -> Result<Vec<KbCounts>> {
        self.store.list().await
    }

    /// Deletes a knowledge base and its vectors.
    pub async fn delete(&self, kb: &str) -> Result<usize> {
        let (ids, generation) = self.store.delete_kb(kb).await?;
        let _guard = self.reload.lock().await;
        self.index.remove_entries(&ids).await?;
        self.lexical.replace_all(self.store.lexical_docs().await?)?;
        self.note_own_write(generation);
        Ok(ids.len())
    }

    /// After applying our own write to the index: it needs no reload, unless someone else wrote
    /// in between (then the generation skipped one and the next query reloads). Call under `reload`.
    fn note_own_write(&self, generation: i64) {
        let _ = self.loaded_generation.compare_exchange(
            generation - 1,
            generation,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Vectors held by the index.
    pub async fn indexed_vectors(&self) -> Result<usize> {
        self.index.len().await
    }
}

/// Hash of everything that determines an entry's stored form and vectors.
fn content_hash(r: &Record, model: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        model,
        r.kind.as_str(),
        &r.question,
        &r.answer,
        &r.source,
        &r.source_file,
    ] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    for list in [&r.alternates, &r.tags] {
        for s in list {
            h.update(s.as_bytes());
            h.update([1u8]);
        }
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

/// True when the knowledge base has no entries yet (used to load the demo on first start).
pub async fn is_empty(store: &KbStore, kb: &str) -> Result<bool> {
    Ok(store
        .list()
        .await?
        .iter()
        .find(|c| c.name == kb)
        .is_none_or(|c| c.faqs + c.chunks == 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::testing::HashingEmbedder;
    use crate::retrieve::Band;

    async fn kb() -> Knowledge {
        let store = KbStore::in_memory().await.expect("store");
        Knowledge::with_exact_index(store, Arc::new(HashingEmbedder::new(256)))
            .await
            .expect("knowledge")
    }

    fn csv(body: &str) -> SourceFile {
        SourceFile {
            name: "faq.csv".into(),
            kind: FileKind::FaqCsv,
            text: format!("id,question,answer,alternates\n{body}"),
        }
    }

    #[tokio::test]
    async fn reimport_updates_by_id_without_duplicates() {
        let k = kb().await;
        let none = &|_: usize, _: usize| {};
        let r = k
            .import(
                "shop",
                vec![csv(
                    "a,多久发货,24小时内发货,发货时间\nb,怎么退货,7天内申请,\n",
                )],
                none,
            )
            .await
            .expect("import");
        assert_eq!((r.added, r.updated, r.unchanged), (2, 0, 0));
        // Three questions, and each entry's question + answer.
        assert_eq!(r.vectors_embedded, 5);
        let r = k
            .import(
                "shop",
                vec![csv(
                    "a,多久发货,48小时内发货,发货时间\nb,怎么退货,7天内申请,\n",
                )],
                none,
            )
            .await
            .expect("reimport");
        assert_eq!((r.added, r.updated, r.unchanged), (0, 1, 1));
        let list = k.list().await.expect("list");
        assert_eq!(list[0].faqs, 2);
        assert_eq!(list[0].vectors, 5);
        assert_eq!(k.indexed_vectors().await.expect("len"), 5);
        let hit = k.query("shop", "发货时间", 3, &[]).await.expect("query");
        assert_eq!(hit.hits[0].id, "a");
        assert_eq!(hit.hits[0].answer, "48小时内发货");
    }

    #[tokio::test]
    async fn failed_import_writes_nothing() {
        let k = kb().await;
        let none = &|_: usize, _: usize| {};
        k.import("shop", vec![csv("a,q1,a1,\n")], none)
            .await
            .expect("import");
        let bad = SourceFile {
            name: "bad.csv".into(),
            kind: FileKind::FaqCsv,
            text: "question,answer\nq2,a2\nq3,\n".into(),
        };
        let err = k.import("shop", vec![csv("c,q4,a4,\n"), bad], none).await;
        assert!(
            matches!(err, Err(KbError::Parse { line: 3, .. })),
            "{err:?}"
        );
        assert_eq!(k.list().await.expect("list")[0].faqs, 1);
    }

    #[tokio::test]
    async fn documents_replace_their_chunks_and_delete_cleans_index() {
        let k = kb().await;
        let none = &|_: usize, _: usize| {};
        let doc = |text: &str| SourceFile {
            name: "policy.md".into(),
            kind: FileKind::Markdown,
            text: text.into(),
        };
        k.import(
            "shop",
            vec![doc("# A\n\none.\n\n# B\n\ntwo.\n\n# C\n\nthree.")],
            none,
        )
        .await
        .expect("import");
        assert_eq!(k.list().await.expect("list")[0].chunks, 3);
        let r = k
            .import("shop", vec![doc("# A\n\none.")], none)
            .await
            .expect("reimport");
        assert_eq!(r.removed, 2);
        assert_eq!(k.list().await.expect("list")[0].chunks, 1);
        assert_eq!(k.indexed_vectors().await.expect("len"), 1);
        k.delete("shop").await.expect("delete");
        assert_eq!(k.indexed_vectors().await.expect("len"), 0);
        assert!(matches!(
            k.query("shop", "x", 1, &[]).await,
            Err(KbError::KbNotFound(_))
        ));
    }

    #[tokio::test]
    async fn writes_from_another_process_are_picked_up() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = dir.path().join("kefu.db");
        let open = || async {
            Knowledge::open_embedded(&db, Arc::new(HashingEmbedder::new(256)))
                .await
                .expect("open")
        };
        let server = open().await;
        let cli = open().await;
        let none = &|_: usize, _: usize| {};
        cli.import(
            "shop",
            vec![csv("a,where is my order,track it in Orders,\n")],
            none,
        )
        .await
        .expect("import");
        let hit = server
            .query("shop", "where is my order", 1, &[])
            .await
            .expect("query");
        assert_eq!(hit.hits[0].id, "a");
        // The server's own writes keep working without a reload, and stay visible.
        server
            .import("shop", vec![csv("b,how do I pay,with a card,\n")], none)
            .await
            .expect("import");
        assert_eq!(server.indexed_vectors().await.expect("len"), 4);
        let hit = server
            .query("shop", "how do I pay", 1, &[])
            .await
            .expect("query");
        assert_eq!(hit.hits[0].id, "b");
    }

    #[tokio::test]
    async fn exact_terms_find_their_entries_through_the_lexical_index() {
        let k = kb().await;
        let none = &|_: usize, _: usize| {};
        k.import(
            "shop",
            vec![csv(
                "a,Is SKU-2041 in stock?,The SKU-2041 teapot is back in May.,\nb,How do I pay?,By card.,\nc,When do you ship?,Same day.,\n",
            )],
            none,
        )
        .await
        .expect("import");
        let r = k.query("shop", "sku-2041", 3, &[]).await.expect("query");
        assert_eq!(r.hits[0].id, "a", "{r:?}");
        // The lexical index follows imports and deletes.
        k.delete("shop").await.expect("delete");
        k.import(
            "shop",
            vec![csv("d,Where is my parcel?,Track it in Orders.,\n")],
            none,
        )
        .await
        .expect("import");
        let r = k.query("shop", "sku-2041", 3, &[]).await.expect("query");
        assert!(r.hits.iter().all(|h| h.id == "d"), "{r:?}");
    }

    #[tokio::test]
    async fn query_validates_input_and_bands() {
        let k = kb().await;
        let none = &|_: usize, _: usize| {};
        k.import(
            "shop",
            vec![csv("a,where is my order,track it in Orders,\n")],
            none,
        )
        .await
        .expect("import");
        assert!(matches!(
            k.query("shop", "  ", 3, &[]).await,
            Err(KbError::InvalidInput(_))
        ));
        assert!(matches!(
            k.query("shop", "x", 0, &[]).await,
            Err(KbError::InvalidInput(_))
        ));
        let exact = k
            .query("shop", "where is my order", 3, &[])
            .await
            .expect("query");
        assert_eq!(exact.band, Band::Answer);
        let unrelated = k.query("shop", "zzzz qqqq", 3, &[]).await.expect("query");
        assert_eq!(unrelated.band, Band::None);
    }
}
