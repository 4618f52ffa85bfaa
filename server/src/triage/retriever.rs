//! Where the bot's knowledge comes from: a trait, so triage is testable without a model.

use async_trait::async_trait;
use kefu_kb::{KbError, Retrieval};

use super::KbBatcher;

/// Where the bot's knowledge comes from (a trait so triage logic is testable without a model):
/// one embedding per message serves the intent model and the knowledge search.
#[async_trait]
pub trait Retriever: Send + Sync {
    /// The query vector of `text`.
    async fn embed(&self, text: &str) -> Result<Vec<f32>, KbError>;
    /// Knowledge search with an embedded query, limited to `tags` when given.
    async fn search(
        &self,
        kb: &str,
        text: &str,
        vector: &[f32],
        tags: &[String],
    ) -> Result<Retrieval, KbError>;
    /// Embeds and searches the whole knowledge base.
    async fn retrieve(&self, kb: &str, text: &str) -> Result<Retrieval, KbError> {
        let v = self.embed(text).await?;
        self.search(kb, text, &v, &[]).await
    }
}

#[async_trait]
impl Retriever for KbBatcher {
    async fn embed(&self, text: &str) -> Result<Vec<f32>, KbError> {
        KbBatcher::embed(self, text).await
    }

    async fn search(
        &self,
        kb: &str,
        text: &str,
        vector: &[f32],
        tags: &[String],
    ) -> Result<Retrieval, KbError> {
        KbBatcher::search(self, kb, text, vector, tags).await
    }
}
