//! The encoders a knowledge service embeds with: the running model, and the fine-tuned retrieval
//! encoders over it that knowledge bases were switched to (`Knowledge::switch_encoder`), loaded
//! on first use and kept.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::embed::{base_model, Embedder};
use crate::error::{KbError, Result};

/// Loads an encoder by model name (`<stock>+ft-<id>`); runs on a blocking thread.
pub type EncoderLoader = Arc<dyn Fn(&str) -> Result<Arc<dyn Embedder>> + Send + Sync>;

pub(super) struct Encoders {
    running: Arc<dyn Embedder>,
    loader: Option<EncoderLoader>,
    loaded: RwLock<HashMap<String, Arc<dyn Embedder>>>,
}

impl Encoders {
    pub fn new(running: Arc<dyn Embedder>) -> Self {
        Self {
            running,
            loader: None,
            loaded: RwLock::new(HashMap::new()),
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

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, HashMap<String, Arc<dyn Embedder>>>> {
        self.loaded
            .read()
            .map_err(|_| KbError::Index("the encoder cache lock is poisoned".into()))
    }
}
