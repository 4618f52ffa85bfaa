//! The encoders a knowledge service embeds with: the running model, and the fine-tuned retrieval
//! encoders over it that knowledge bases were switched to (`Knowledge::switch_encoder`), loaded
//! on first use and kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use crate::embed::{base_model, Embedder, TextRole};
use crate::error::{KbError, Result};

/// Query vectors of tuned encoders kept (about 1.5 MB at 384 dimensions); the memo is emptied
/// when full. Repeated questions — an eval's threshold search, a popular question — embed once.
const MEMO_CAPACITY: usize = 1024;

/// (model, query) → vector.
type Memo = HashMap<(String, String), Vec<f32>>;

/// Loads an encoder by model name (`<stock>+ft-<id>`); runs on a blocking thread.
pub type EncoderLoader = Arc<dyn Fn(&str) -> Result<Arc<dyn Embedder>> + Send + Sync>;

pub(super) struct Encoders {
    running: Arc<dyn Embedder>,
    loader: Option<EncoderLoader>,
    loaded: RwLock<HashMap<String, Arc<dyn Embedder>>>,
    /// (model, query) → vector, for tuned encoders only (the running model's vectors come in
    /// with the query).
    memo: Mutex<Memo>,
}

impl Encoders {
    pub fn new(running: Arc<dyn Embedder>) -> Self {
        Self {
            running,
            loader: None,
            loaded: RwLock::new(HashMap::new()),
            memo: Mutex::new(HashMap::new()),
        }
    }

    pub fn set_loader(&mut self, loader: EncoderLoader) {
        self.loader = Some(loader);
    }

    pub fn running(&self) -> &Arc<dyn Embedder> {
        &self.running
    }

    /// True when `model` is what the running model embeds (no second encoder needed).
    pub fn is_running(&self, model: &str) -> bool {
        model == self.running.model_name()
    }

    /// The encoder for knowledge base `kb` built with `model`: the running one, or a tuned
    /// encoder over the same stock model. Anything else is a `ModelMismatch`.
    pub async fn for_model(&self, kb: &str, model: &str) -> Result<Arc<dyn Embedder>> {
        if self.is_running(model) {
            return Ok(Arc::clone(&self.running));
        }
        let mismatch = || KbError::ModelMismatch {
            kb: kb.to_string(),
            built: model.to_string(),
            active: self.running.model_name().to_string(),
        };
        let Some(loader) = &self.loader else {
            return Err(mismatch());
        };
        if base_model(model) != base_model(self.running.model_name()) {
            return Err(mismatch());
        }
        if let Some(e) = self.read()?.get(model) {
            return Ok(Arc::clone(e));
        }
        let (loader, name) = (Arc::clone(loader), model.to_string());
        let encoder = tokio::task::spawn_blocking(move || loader(&name))
            .await
            .map_err(|e| KbError::Index(format!("encoder loading failed: {e}")))??;
        if encoder.model_name() != model || encoder.dim() != self.running.dim() {
            return Err(mismatch());
        }
        let mut loaded = self
            .loaded
            .write()
            .map_err(|_| KbError::Index("the encoder cache lock is poisoned".into()))?;
        Ok(Arc::clone(
            loaded.entry(model.to_string()).or_insert(encoder),
        ))
    }

    /// Query vectors of `texts` by `encoder` (a tuned one), embedding only those not memoised.
    pub async fn embed_queries(
        &self,
        encoder: Arc<dyn Embedder>,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>> {
        let model = encoder.model_name().to_string();
        let known: Vec<Option<Vec<f32>>> = {
            let memo = self.memo()?;
            texts
                .iter()
                .map(|t| memo.get(&(model.clone(), t.clone())).cloned())
                .collect()
        };
        let missing: Vec<String> = texts
            .iter()
            .zip(&known)
            .filter(|(_, k)| k.is_none())
            .map(|(t, _)| t.clone())
            .collect();
        if missing.is_empty() {
            return Ok(known.into_iter().flatten().collect());
        }
        let fresh = super::embed_with(encoder, missing.clone(), TextRole::Query).await?;
        if fresh.len() != missing.len() {
            return Err(KbError::Index(
                "the encoder returned too few vectors".into(),
            ));
        }
        {
            let mut memo = self.memo()?;
            if memo.len() + missing.len() > MEMO_CAPACITY {
                memo.clear();
            }
            for (t, v) in missing.into_iter().zip(&fresh) {
                memo.insert((model.clone(), t), v.clone());
            }
        }
        let mut fresh = fresh.into_iter();
        Ok(known
            .into_iter()
            .filter_map(|k| k.or_else(|| fresh.next()))
            .collect())
    }

    fn memo(&self) -> Result<std::sync::MutexGuard<'_, Memo>> {
        self.memo
            .lock()
            .map_err(|_| KbError::Index("the query memo lock is poisoned".into()))
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, HashMap<String, Arc<dyn Embedder>>>> {
        self.loaded
            .read()
            .map_err(|_| KbError::Index("the encoder cache lock is poisoned".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::testing::CountingEmbedder;
    use crate::embed::testing::HashingEmbedder;

    #[tokio::test]
    async fn tuned_query_vectors_are_embedded_once_and_returned_in_order() {
        let encoders = Encoders::new(Arc::new(HashingEmbedder::new(64)));
        let tuned = Arc::new(CountingEmbedder::new(HashingEmbedder::named(
            "test-hashing+ft-1",
            64,
        )));
        let texts = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let first = encoders
            .embed_queries(tuned.clone(), &texts(&["多久发货", "refund"]))
            .await
            .expect("embed");
        let second = encoders
            .embed_queries(tuned.clone(), &texts(&["refund", "新问题", "多久发货"]))
            .await
            .expect("embed");
        assert_eq!(tuned.count(), 3, "only the new question is embedded");
        assert_eq!(second[0], first[1]);
        assert_eq!(second[2], first[0]);
        let direct = tuned.embed(&["新问题"], TextRole::Query).expect("embed");
        assert_eq!(second[1], direct[0]);
    }
}
