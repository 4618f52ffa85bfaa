//! `VectorIndex` on Qdrant, for deployments that outgrow one machine: one collection per knowledge
//! base and encoder (`<prefix>_kb<id>_<model>`), points keyed by the knowledge store's vector id and
//! carrying `entry_id`, `kb_id` and `tags` as payload. The knowledge store (SQLite or PostgreSQL)
//! keeps the entries and every vector, and stays the source of truth: a collection is filled from
//! it when created, and `kefu kb reindex` rebuilds one from it.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use async_trait::async_trait;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, Distance, FieldType, Filter, PointId, PointStruct, QueryPointsBuilder,
    UpsertPointsBuilder, VectorParamsBuilder,
};
use qdrant_client::{Payload, Qdrant};

use super::{
    best_per_entry, candidate_count, IndexedVector, KbSpace, SearchFilter, VectorHit, VectorIndex,
};
use crate::error::{KbError, Result};

/// Points sent in one upsert request.
pub const UPSERT_BATCH: usize = 256;
/// The collection-name prefix used unless configured otherwise.
pub const DEFAULT_PREFIX: &str = "kefu";

/// Qdrant collections used as the vector index.
pub struct QdrantIndex {
    client: Qdrant,
    prefix: String,
    /// Knowledge base id → the collection of its current encoder (set by `sync_spaces`).
    routes: RwLock<HashMap<i64, String>>,
}

fn err(e: impl std::fmt::Display) -> KbError {
    KbError::Index(format!("qdrant: {e}"))
}

impl QdrantIndex {
    /// Connects to `url` (gRPC, e.g. `http://127.0.0.1:6334`) with an optional API key and checks
    /// that the server answers. Collections are named `<prefix>_kb<id>_<model>`; `prefix` is 1–32
    /// ASCII letters, digits, `-` or `_`, so that several deployments can share one Qdrant.
    pub async fn connect(url: &str, api_key: Option<&str>, prefix: &str) -> Result<Self> {
        let prefix_ok = !prefix.is_empty()
            && prefix.len() <= 32
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !prefix_ok {
            return Err(KbError::InvalidInput(format!(
                "Qdrant collection prefix '{prefix}' must be 1-32 ASCII letters, digits, '-' or '_'"
            )));
        }
        let client = Qdrant::from_url(url)
            .api_key(api_key)
            .skip_compatibility_check()
            .build()
            .map_err(err)?;
        client
            .health_check()
            .await
            .map_err(|e| KbError::Index(format!("qdrant at {url} does not answer: {e}")))?;
        Ok(Self {
            client,
            prefix: prefix.to_string(),
            routes: RwLock::new(HashMap::new()),
        })
    }

    /// The collection holding `space`: `<prefix>_kb<id>_<model>`, the model name with anything
    /// but ASCII letters, digits, `-` and `_` replaced by `_` (`+ft-…` → `_ft-…`).
    pub fn collection_name(&self, space: &KbSpace) -> String {
        let model: String = space
            .model
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{}_kb{}_{}", self.prefix, space.kb_id, model)
    }

    /// Whether `name` is one of this index's collections (same prefix, Kefu's naming).
    fn owns(&self, name: &str) -> bool {
        name.strip_prefix(&self.prefix)
            .and_then(|rest| rest.strip_prefix("_kb"))
            .and_then(|rest| rest.split_once('_'))
            .is_some_and(|(id, _)| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
    }

    /// The collections of this index that exist now.
    async fn existing(&self) -> Result<HashSet<String>> {
        let list = self.client.list_collections().await.map_err(err)?;
        Ok(list
            .collections
            .into_iter()
            .map(|c| c.name)
            .filter(|n| self.owns(n))
            .collect())
    }

    /// Creates `name` (cosine distance, `dim` dimensions, payload indexes on `entry_id` and
    /// `tags`). False when another process created it first.
    async fn create(&self, name: &str, dim: usize) -> Result<bool> {
        let created = self
            .client
            .create_collection(
                CreateCollectionBuilder::new(name)
                    .vectors_config(VectorParamsBuilder::new(dim as u64, Distance::Cosine)),
            )
            .await;
        if let Err(e) = created {
            // Two nodes starting at once: the loser finds it made by the winner, who fills it.
            if self.client.collection_exists(name).await.map_err(err)? {
                return Ok(false);
            }
            return Err(err(e));
        }
        for (field, kind) in [
            ("entry_id", FieldType::Integer),
            ("tags", FieldType::Keyword),
        ] {
            self.client
                .create_field_index(CreateFieldIndexCollectionBuilder::new(name, field, kind))
                .await
                .map_err(err)?;
        }
        Ok(true)
    }

    fn route(&self, kb_id: i64) -> Result<Option<String>> {
        Ok(self.read_routes()?.get(&kb_id).cloned())
    }

    fn read_routes(&self) -> Result<std::sync::RwLockReadGuard<'_, HashMap<i64, String>>> {
        self.routes
            .read()
            .map_err(|_| KbError::Index("the Qdrant routes lock is poisoned".into()))
    }

    fn routed_collections(&self) -> Result<Vec<String>> {
        Ok(self.read_routes()?.values().cloned().collect())
    }
}

#[async_trait]
impl VectorIndex for QdrantIndex {
    async fn upsert(&self, items: Vec<IndexedVector>) -> Result<()> {
        let mut by_collection: HashMap<String, Vec<PointStruct>> = HashMap::new();
        for it in items {
            let collection = self.route(it.kb_id)?.ok_or_else(|| {
                KbError::Index(format!(
                    "qdrant: no collection for knowledge base {}",
                    it.kb_id
                ))
            })?;
            let payload = Payload::try_from(serde_json::json!({
                "entry_id": it.entry_id,
                "kb_id": it.kb_id,
                "tags": it.tags,
            }))
            .map_err(err)?;
            let id = u64::try_from(it.vector_id).map_err(err)?;
            by_collection
                .entry(collection)
                .or_default()
                .push(PointStruct::new(id, it.vector, payload));
        }
        for (collection, points) in by_collection {
            let mut points = points.into_iter().peekable();
            while points.peek().is_some() {
                let batch: Vec<PointStruct> = points.by_ref().take(UPSERT_BATCH).collect();
                self.client
                    .upsert_points(UpsertPointsBuilder::new(&collection, batch).wait(true))
                    .await
                    .map_err(err)?;
            }
        }
        Ok(())
    }

    async fn remove_entries(&self, entry_ids: &[i64]) -> Result<()> {
        if entry_ids.is_empty() {
            return Ok(());
        }
        for collection in self.routed_collections()? {
            self.client
                .delete_points(
                    DeletePointsBuilder::new(&collection)
                        .points(Filter::must([Condition::matches(
                            "entry_id",
                            entry_ids.to_vec(),
                        )]))
                        .wait(true),
                )
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    /// The new vectors go in first, then the entries' other points are deleted, so a search in
    /// between finds the entries (by their old or new vectors) rather than missing them.
    async fn replace_entries(&self, entry_ids: &[i64], vectors: Vec<IndexedVector>) -> Result<()> {
        if entry_ids.is_empty() {
            return self.upsert(vectors).await;
        }
        let keep: Vec<PointId> = vectors
            .iter()
            .filter_map(|v| u64::try_from(v.vector_id).ok().map(PointId::from))
            .collect();
        self.upsert(vectors).await?;
        for collection in self.routed_collections()? {
            let mut stale = Filter::must([Condition::matches("entry_id", entry_ids.to_vec())]);
            if !keep.is_empty() {
                stale.must_not = vec![Condition::has_id(keep.clone())];
            }
            self.client
                .delete_points(
                    DeletePointsBuilder::new(&collection)
                        .points(stale)
                        .wait(true),
                )
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    async fn search(
        &self,
        query: &[f32],
        filter: &SearchFilter,
        k: usize,
    ) -> Result<Vec<VectorHit>> {
        self.nearest(query, filter, Vec::new(), k).await
    }

    async fn score_entries(
        &self,
        query: &[f32],
        filter: &SearchFilter,
        entry_ids: &[i64],
    ) -> Result<Vec<VectorHit>> {
        if entry_ids.is_empty() {
            return Ok(Vec::new());
        }
        let must = vec![Condition::matches("entry_id", entry_ids.to_vec())];
        self.nearest(query, filter, must, entry_ids.len()).await
    }

    async fn len(&self) -> Result<usize> {
        let mut total = 0;
        for collection in self.routed_collections()? {
            let c = self
                .client
                .count(CountPointsBuilder::new(&collection).exact(true))
                .await
                .map_err(err)?;
            total += c.result.map(|r| r.count as usize).unwrap_or(0);
        }
        Ok(total)
    }

    async fn sync_spaces(&self, spaces: &[KbSpace], prune: bool) -> Result<Vec<i64>> {
        let existing = self.existing().await?;
        let mut created = Vec::new();
        let mut routes = HashMap::new();
        for space in spaces {
            let name = self.collection_name(space);
            if !existing.contains(&name) && self.create(&name, space.dim).await? {
                created.push(space.kb_id);
            }
            routes.insert(space.kb_id, name);
        }
        if prune {
            let wanted: HashSet<&String> = routes.values().collect();
            for name in existing.iter().filter(|n| !wanted.contains(n)) {
                self.client.delete_collection(name).await.map_err(err)?;
            }
        }
        *self
            .routes
            .write()
            .map_err(|_| KbError::Index("the Qdrant routes lock is poisoned".into()))? = routes;
        Ok(created)
    }

    async fn drop_space(&self, kb_id: i64) -> Result<()> {
        if let Some(name) = self.route(kb_id)? {
            if self.client.collection_exists(&name).await.map_err(err)? {
                self.client.delete_collection(&name).await.map_err(err)?;
            }
        }
        Ok(())
    }
}

impl QdrantIndex {
    /// The `k` best entries of `filter`'s knowledge base among the points matching its tags
    /// (any of them) and `must`. A knowledge base without a collection has no hits.
    async fn nearest(
        &self,
        query: &[f32],
        filter: &SearchFilter,
        mut must: Vec<Condition>,
        k: usize,
    ) -> Result<Vec<VectorHit>> {
        let Some(collection) = self.route(filter.kb_id)? else {
            return Ok(Vec::new());
        };
        if !filter.tags.is_empty() {
            must.push(Condition::matches("tags", filter.tags.clone()));
        }
        let mut request = QueryPointsBuilder::new(&collection)
            .query(query.to_vec())
            .limit(candidate_count(k) as u64)
            .with_payload(true);
        if !must.is_empty() {
            request = request.filter(Filter::must(must));
        }
        let res = self.client.query(request).await.map_err(err)?;
        let hits = res
            .result
            .into_iter()
            .filter_map(|p| {
                let entry_id = p.payload.get("entry_id")?.as_integer()?;
                let vector_id = match p.id?.point_id_options? {
                    qdrant_client::qdrant::point_id::PointIdOptions::Num(n) => {
                        i64::try_from(n).ok()?
                    }
                    qdrant_client::qdrant::point_id::PointIdOptions::Uuid(_) => return None,
                };
                Some(VectorHit {
                    entry_id,
                    vector_id,
                    score: p.score,
                })
            })
            .collect();
        Ok(best_per_entry(hits, k))
    }
}
