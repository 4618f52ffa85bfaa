//! `VectorIndex` on Qdrant, for deployments that outgrow one machine. Points are keyed by the
//! SQLite vector id and carry `entry_id`, `kb_id` and `tags` as payload; SQLite keeps the entries.

use async_trait::async_trait;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, DeletePointsBuilder, Distance, Filter,
    PointStruct, QueryPointsBuilder, UpsertPointsBuilder, VectorParamsBuilder,
};
use qdrant_client::{Payload, Qdrant};

use super::{best_per_entry, candidate_count, IndexedVector, SearchFilter, VectorHit, VectorIndex};
use crate::error::{KbError, Result};

/// A Qdrant collection used as the vector index.
pub struct QdrantIndex {
    client: Qdrant,
    collection: String,
}

fn err(e: impl std::fmt::Display) -> KbError {
    KbError::Index(format!("qdrant: {e}"))
}

impl QdrantIndex {
    /// Connects to `url` (gRPC, e.g. `http://127.0.0.1:6334`) and creates `collection` with cosine
    /// distance and `dim` dimensions if it does not exist.
    pub async fn connect(url: &str, collection: &str, dim: usize) -> Result<Self> {
        let client = Qdrant::from_url(url).build().map_err(err)?;
        if !client.collection_exists(collection).await.map_err(err)? {
            client
                .create_collection(
                    CreateCollectionBuilder::new(collection)
                        .vectors_config(VectorParamsBuilder::new(dim as u64, Distance::Cosine)),
                )
                .await
                .map_err(err)?;
        }
        Ok(Self {
            client,
            collection: collection.to_string(),
        })
    }
}

#[async_trait]
impl VectorIndex for QdrantIndex {
    async fn upsert(&self, items: Vec<IndexedVector>) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let points = items
            .into_iter()
            .map(|it| {
                let payload = Payload::try_from(serde_json::json!({
                    "entry_id": it.entry_id,
                    "kb_id": it.kb_id,
                    "tags": it.tags,
                }))
                .map_err(err)?;
                let id = u64::try_from(it.vector_id).map_err(err)?;
                Ok(PointStruct::new(id, it.vector, payload))
            })
            .collect::<Result<Vec<_>>>()?;
        self.client
            .upsert_points(UpsertPointsBuilder::new(&self.collection, points).wait(true))
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn remove_entries(&self, entry_ids: &[i64]) -> Result<()> {
        if entry_ids.is_empty() {
            return Ok(());
        }
        self.client
            .delete_points(
                DeletePointsBuilder::new(&self.collection)
                    .points(Filter::must([Condition::matches(
                        "entry_id",
                        entry_ids.to_vec(),
                    )]))
                    .wait(true),
            )
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn search(
        &self,
        query: &[f32],
        filter: &SearchFilter,
        k: usize,
    ) -> Result<Vec<VectorHit>> {
        self.nearest(query, conditions(filter), k).await
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
        let mut must = conditions(filter);
        must.push(Condition::matches("entry_id", entry_ids.to_vec()));
        self.nearest(query, must, entry_ids.len()).await
    }

    async fn len(&self) -> Result<usize> {
        let c = self
            .client
            .count(CountPointsBuilder::new(&self.collection).exact(true))
            .await
            .map_err(err)?;
        Ok(c.result.map(|r| r.count as usize).unwrap_or(0))
    }
}

/// The payload conditions of `filter`: its knowledge base, and any of its tags when given.
fn conditions(filter: &SearchFilter) -> Vec<Condition> {
    let mut must = vec![Condition::matches("kb_id", filter.kb_id)];
    if !filter.tags.is_empty() {
        must.push(Condition::matches("tags", filter.tags.clone()));
    }
    must
}

impl QdrantIndex {
    /// The `k` best entries among the points matching `must`.
    async fn nearest(
        &self,
        query: &[f32],
        must: Vec<Condition>,
        k: usize,
    ) -> Result<Vec<VectorHit>> {
        let res = self
            .client
            .query(
                QueryPointsBuilder::new(&self.collection)
                    .query(query.to_vec())
                    .filter(Filter::must(must))
                    .limit(candidate_count(k) as u64)
                    .with_payload(true),
            )
            .await
            .map_err(err)?;
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
