//! The knowledge-base service: imports files (`import`: parse all, embed what changed, write in
//! one transaction, then update the index), edits single entries (`edit`) and answers queries with scored hits and a band over
//! the in-process view of the store (`synced`).

mod edit;
mod encoders;
mod follow;
mod import;
mod switch;
mod synced;

pub use edit::{EntryPage, FaqEdit, CONSOLE_SOURCE, MAX_PAGE};
pub use encoders::EncoderLoader;
pub use import::{ImportReport, Progress, SourceFile};
pub use switch::SwitchReport;

use std::path::Path;
use std::sync::Arc;

use crate::answer::plan;
use crate::embed::{Embedder, TextRole};
use crate::error::{KbError, Result};
use crate::index::{SearchFilter, VectorIndex};
use crate::ingest::{matched_sentence, EntryKind};
use crate::retrieve::{Hit, Retrieval, Thresholds};
use crate::store::{KbCounts, KbInfo, KbStore};
use synced::SyncedIndex;

/// The knowledge base every command uses unless told otherwise.
pub const DEFAULT_KB: &str = "default";
/// Most hits a query may ask for.
pub const MAX_TOP_K: usize = 50;
/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 2000;
/// Texts embedded per progress step during import.
const IMPORT_BATCH: usize = 64;

/// Store + index + encoders.
pub struct Knowledge {
    store: KbStore,
    /// The running model, and fine-tuned encoders that knowledge bases were switched to.
    encoders: encoders::Encoders,
    /// The indexes and cached rows, kept in step with the store.
    index: SyncedIndex,
}

impl Knowledge {
    /// The embedded default: SQLite at `db_path` and the exact in-memory index loaded from it.
    pub async fn open_embedded(db_path: &Path, embedder: Arc<dyn Embedder>) -> Result<Self> {
        let store = KbStore::open(db_path).await?;
        Self::with_exact_index(store, embedder).await
    }

    /// Any store with the exact index filled from it.
    pub async fn with_exact_index(store: KbStore, embedder: Arc<dyn Embedder>) -> Result<Self> {
        let index = SyncedIndex::exact(&store).await?;
        Ok(Self {
            store,
            encoders: encoders::Encoders::new(embedder),
            index,
        })
    }

    /// A store with an outside vector index (Qdrant), which keeps its own copy of the vectors in
    /// one space per knowledge base and encoder: the spaces it lacks are created and filled from
    /// the store now, and this process's writes go to both.
    pub async fn with_outside_index(
        store: KbStore,
        embedder: Arc<dyn Embedder>,
        index: Arc<dyn VectorIndex>,
    ) -> Result<Self> {
        let index = SyncedIndex::outside(&store, index).await?;
        Ok(Self {
            store,
            encoders: encoders::Encoders::new(embedder),
            index,
        })
    }

    /// Lets knowledge bases switched to a fine-tuned encoder over the running model
    /// (`switch_encoder`) be served: `loader` builds such an encoder by name on first use.
    pub fn with_encoder_loader(mut self, loader: EncoderLoader) -> Self {
        self.encoders.set_loader(loader);
        self
    }

    pub fn store(&self) -> &KbStore {
        &self.store
    }

    /// The running model: new knowledge bases and queries are embedded with it.
    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        self.encoders.running()
    }

    /// The encoder knowledge base `info` was built with.
    async fn encoder_of(&self, info: &KbInfo) -> Result<Arc<dyn Embedder>> {
        self.encoders.for_model(&info.name, &info.model).await
    }

    /// Embeds with the running model on a blocking thread.
    async fn embed(&self, texts: Vec<String>, role: TextRole) -> Result<Vec<Vec<f32>>> {
        embed_with(Arc::clone(self.embedder()), texts, role).await
    }

    /// Brings the synced index up to this process's own committed write.
    async fn apply_write(&self, outcome: crate::store::WriteOutcome) -> Result<()> {
        self.index
            .apply_own_write(
                &self.store,
                &outcome.removed_entry_ids,
                outcome.new_vectors,
                outcome.generation,
            )
            .await
    }

    /// Thresholds in force for a knowledge base.
    pub fn thresholds(info: &KbInfo) -> Thresholds {
        info.overrides.apply(Thresholds::for_model(&info.model))
    }

    fn kb_for_query(&self, kb: &str) -> Result<KbInfo> {
        let info = self
            .index
            .kb(kb)?
            .ok_or_else(|| KbError::KbNotFound(kb.to_string()))?;
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

    /// Retrieves for queries already embedded by the running model (`embed_queries`): the index
    /// and the knowledge base are checked once. A knowledge base switched to a fine-tuned encoder
    /// embeds the texts again with that encoder.
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
        if texts.len() != vectors.len() || vectors.iter().any(|v| v.len() != self.embedder().dim())
        {
            return Err(KbError::InvalidInput(
                "one query vector of the model's length is needed per text".into(),
            ));
        }
        self.index.refresh(&self.store).await?;
        let info = self.kb_for_query(kb)?;
        let own_vectors;
        let vectors = if self.encoders.is_running(&info.model) {
            vectors
        } else {
            let encoder = self.encoder_of(&info).await?;
            own_vectors = self.encoders.embed_queries(encoder, texts).await?;
            &own_vectors[..]
        };
        let thresholds = Self::thresholds(&info);
        let filter = SearchFilter {
            kb_id: info.id,
            tags: tags.iter().map(|t| t.to_lowercase()).collect(),
        };
        let mut out = Vec::with_capacity(texts.len());
        for (text, vector) in texts.iter().zip(vectors) {
            let found = self
                .index
                .hybrid(info.id, text, vector, &filter, top_k)
                .await?;
            let ids: Vec<i64> = found.iter().map(|h| h.entry_id).collect();
            let entries = self.index.entries(&ids)?;
            // The sentence that matched a passage best (its own vector), for the composer.
            let sentence_vectors: Vec<i64> = found
                .iter()
                .filter(|h| {
                    entries
                        .get(&h.entry_id)
                        .is_some_and(|e| e.kind == EntryKind::Chunk)
                })
                .map(|h| h.vector_id)
                .collect();
            let texts = self.store.vector_texts(&sentence_vectors).await?;
            let hits: Vec<Hit> = found
                .iter()
                .filter_map(|h| {
                    entries.get(&h.entry_id).map(|e| Hit {
                        id: e.key.strip_prefix("id:").unwrap_or(&e.key).to_string(),
                        question: e.question.clone(),
                        answer: e.answer.clone(),
                        score: h.score,
                        lexical: h.lexical,
                        source: e.source.clone(),
                        kind: e.kind.as_str().to_string(),
                        tags: e.tags.clone(),
                        matched: texts.get(&h.vector_id).and_then(|t| matched_sentence(t)),
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

    /// Every knowledge base with counts.
    pub async fn list(&self) -> Result<Vec<KbCounts>> {
        self.store.list().await
    }

    /// Rebuilds the vector index from the store (the source of truth): knowledge base `kb`'s
    /// collection, or every one when `None`, dropped and filled anew in an outside index; the
    /// in-process index whole. Returns the vectors written.
    pub async fn reindex(&self, kb: Option<&str>) -> Result<usize> {
        let ids = match kb {
            Some(name) => Some(vec![
                self.store
                    .get_kb(name)
                    .await?
                    .ok_or_else(|| KbError::KbNotFound(name.to_string()))?
                    .id,
            ]),
            None => None,
        };
        self.index.reindex(&self.store, ids.as_deref()).await
    }

    /// Deletes a knowledge base and its vectors.
    pub async fn delete(&self, kb: &str) -> Result<usize> {
        let (ids, generation) = self.store.delete_kb(kb).await?;
        self.index
            .apply_own_write(&self.store, &ids, vec![], generation)
            .await?;
        Ok(ids.len())
    }

    /// Vectors held by the index.
    pub async fn indexed_vectors(&self) -> Result<usize> {
        self.index.len().await
    }
}

/// Embeds with `embedder` on a blocking thread.
async fn embed_with(
    embedder: Arc<dyn Embedder>,
    texts: Vec<String>,
    role: TextRole,
) -> Result<Vec<Vec<f32>>> {
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        embedder.embed(&refs, role)
    })
    .await
    .map_err(|e| KbError::Index(format!("embedding task failed: {e}")))?
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
    use crate::answer::AnswerMode;
    use crate::embed::testing::HashingEmbedder;
    use crate::ingest::FileKind;
    use crate::retrieve::Band;
    use crate::store::ThresholdOverrides;

    async fn kb() -> Knowledge {
        let store = KbStore::in_memory().await.expect("store");
        Knowledge::with_exact_index(store, Arc::new(HashingEmbedder::new(256)))
            .await
            .expect("knowledge")
    }

    /// Two handles on one database file, as a server and a CLI process have.
    async fn two_processes() -> (tempfile::TempDir, Knowledge, Knowledge) {
        let dir = tempfile::tempdir().expect("tmp");
        let db = dir.path().join("kefu.db");
        let open = || async {
            Knowledge::open_embedded(&db, Arc::new(HashingEmbedder::new(256)))
                .await
                .expect("open")
        };
        let server = open().await;
        let cli = open().await;
        (dir, server, cli)
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
        let (_dir, server, cli) = two_processes().await;
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
    async fn settings_changed_by_another_process_apply_to_the_next_query() {
        let (_dir, server, cli) = two_processes().await;
        let none = &|_: usize, _: usize| {};
        cli.import("shop", vec![csv("a,where is my order,track it,\n")], none)
            .await
            .expect("import");
        let r = server.query("shop", "where is my order", 1, &[]).await;
        assert_eq!(r.expect("query").band, Band::Answer);
        let strict = ThresholdOverrides {
            answer: Some(1.5),
            suggest: Some(1.4),
            ..Default::default()
        };
        cli.store()
            .set_thresholds("shop", &strict)
            .await
            .expect("set");
        let r = server
            .query("shop", "where is my order", 1, &[])
            .await
            .expect("query");
        assert_eq!(r.thresholds.answer, 1.5);
        assert_eq!(r.band, Band::None);
    }

    #[tokio::test]
    async fn every_answer_mode_is_stored_and_applies_to_the_next_query() {
        let k = kb().await;
        let none = &|_: usize, _: usize| {};
        k.import("shop", vec![csv("a,where is my order,track it,\n")], none)
            .await
            .expect("import");
        for mode in [
            AnswerMode::Llm,
            AnswerMode::Faq,
            AnswerMode::Extractive,
            AnswerMode::Llm,
        ] {
            k.store().set_answer_mode("shop", mode).await.expect("set");
            let r = k
                .query("shop", "where is my order", 1, &[])
                .await
                .expect("query");
            assert_eq!(r.answer_mode, mode);
        }
    }

    #[tokio::test]
    async fn damaged_stored_rows_are_errors_not_empty_lists() {
        let k = kb().await;
        let none = &|_: usize, _: usize| {};
        k.import("shop", vec![csv("a,where is my order,track it,\n")], none)
            .await
            .expect("import");
        sqlx::query("UPDATE kb_entries SET tags = 'not json'")
            .execute(k.store().pool())
            .await
            .expect("damage");
        let reopened =
            Knowledge::with_exact_index(k.store().clone(), Arc::new(HashingEmbedder::new(256)))
                .await;
        assert!(matches!(reopened, Err(KbError::Corrupt(_))));
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
