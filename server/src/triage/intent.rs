//! The active intent model as the server sees it: an atomically swapped slot, reloaded when
//! `kefu intent activate|rollback|train` changes the registry's state file (polled, so it works
//! whichever process made the change); and the intent step of triage (`classify`).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use kefu_kb::embed::concat;
use kefu_kb::finetune::EncoderDelta;
use kefu_kb::intent::{IntentModel, Registry};
use kefu_kb::{Embedder, KbError, TextRole};

use super::trace::{IntentStatus, IntentTrace};

/// How often the registry's state is checked.
pub const POLL: Duration = Duration::from_secs(2);

/// An encoder built on demand, or why it cannot be.
type Loaded = Result<Arc<dyn Embedder>, KbError>;

/// Builds the encoders intent models read besides the running one.
#[derive(Clone)]
pub struct EncoderLoaders {
    /// A fine-tuned encoder: the stock model with the delta applied.
    pub tuned: Arc<dyn Fn(&EncoderDelta) -> Loaded + Send + Sync>,
    /// A second stock encoder by name (`--also-encoder`).
    pub stock: Arc<dyn Fn(&str) -> Loaded + Send + Sync>,
}

/// An intent model ready to classify, with the encoder it was trained on when that is a
/// fine-tuned one (otherwise it classifies the vector the knowledge search uses), and the second
/// encoders whose vectors follow that one's (`kefu_kb::embed::concat`).
pub struct ActiveIntents {
    pub model: IntentModel,
    pub encoder: Option<Arc<dyn Embedder>>,
    pub also: Vec<Arc<dyn Embedder>>,
}

impl ActiveIntents {
    /// The vector `model` classifies `text` by: its own encoder's, else `shared` (the search
    /// vector), followed by each second encoder's.
    pub async fn vector(&self, text: &str, shared: &[f32]) -> Result<Vec<f32>, KbError> {
        if self.encoder.is_none() && self.also.is_empty() {
            return Ok(shared.to_vec());
        }
        let (encoder, also) = (self.encoder.clone(), self.also.clone());
        let (text, shared) = (text.to_string(), shared.to_vec());
        tokio::task::spawn_blocking(move || {
            let one = |e: &Arc<dyn Embedder>| {
                e.embed(&[&text], TextRole::Query)?.pop().ok_or_else(|| {
                    KbError::InvalidInput(format!("{} returned no vector", e.model_name()))
                })
            };
            let mut v = match &encoder {
                Some(e) => one(e)?,
                None => shared,
            };
            for e in &also {
                v.extend(one(e)?);
            }
            Ok(v)
        })
        .await
        .map_err(|e| KbError::InvalidInput(format!("intent encoder task: {e}")))?
    }
}

/// The model in use, swapped whole: a message is classified by the old model or the new one.
#[derive(Default)]
pub struct IntentSlot {
    model: ArcSwapOption<ActiveIntents>,
    /// Loads fine-tuned and second encoders; without them, models trained with `--fine-tune` or
    /// `--also-encoder` are refused.
    encoders: Option<EncoderLoaders>,
}

impl IntentSlot {
    pub fn new() -> Self {
        Self::default()
    }

    /// A slot that can run models with a fine-tuned or second encoder, loading it with
    /// `encoders`.
    pub fn with_encoders(encoders: EncoderLoaders) -> Self {
        Self {
            model: ArcSwapOption::default(),
            encoders: Some(encoders),
        }
    }

    /// The current model, if any.
    pub fn current(&self) -> Option<Arc<ActiveIntents>> {
        self.model.load_full()
    }

    /// Replaces the model (one on the shared search vector).
    pub fn set(&self, model: Option<IntentModel>) {
        self.model.store(model.map(|model| {
            Arc::new(ActiveIntents {
                model,
                encoder: None,
                also: Vec::new(),
            })
        }));
    }

    /// Readies `m` for a server running `embedding_model`: a head on the stock encoder must match
    /// it; a head on a fine-tuned encoder needs that encoder's base to match, and loads it; a
    /// second encoder the head reads is loaded by name.
    fn prepare(&self, m: IntentModel, embedding_model: &str) -> Result<ActiveIntents, String> {
        let main = concat::parts(&m.meta.embedding_model)
            .next()
            .unwrap_or_default();
        match &m.encoder {
            None if main != embedding_model => {
                return Err(format!(
                    "trained on the embedding model {main}, the server runs {embedding_model}"
                ))
            }
            Some(delta) if delta.meta.base_model != embedding_model => {
                return Err(format!(
                    "its fine-tuned encoder is based on {}, the server runs {embedding_model}",
                    delta.meta.base_model
                ))
            }
            _ => {}
        }
        let extra = concat::extra_parts(&m.meta.embedding_model);
        if m.encoder.is_none() && extra.is_empty() {
            return Ok(ActiveIntents {
                model: m,
                encoder: None,
                also: Vec::new(),
            });
        }
        let Some(load) = &self.encoders else {
            return Err("this process cannot load the model's own encoders".into());
        };
        let also = extra
            .iter()
            .map(|name| (load.stock)(name))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let encoder = m
            .encoder
            .as_deref()
            .map(|delta| (load.tuned)(delta))
            .transpose()
            .map_err(|e| e.to_string())?;
        Ok(ActiveIntents {
            model: m,
            encoder,
            also,
        })
    }

    /// Loads the registry's active model once (for one-shot commands such as `kefu kb ask`).
    pub fn load_active(&self, registry: &Registry, embedding_model: &str) {
        self.reload(registry, embedding_model, None);
    }

    /// Loads the registry's active model now (a model for another embedder is refused and
    /// logged), then follows changes until the process ends; with `mirror`, each check first
    /// pulls the versions and state other nodes published.
    pub fn follow(
        self: &Arc<Self>,
        registry: Registry,
        mirror: Option<kefu_kb::intent::Mirror>,
        embedding_model: String,
    ) {
        let mut seen = self.reload(&registry, &embedding_model, None);
        let slot = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Some(m) = &mirror {
                    if let Err(e) = m.pull().await {
                        tracing::warn!(error = %e, "cannot read the shared intent models; keeping the current model");
                    }
                }
                // Loading a fine-tuned encoder takes a second or two: off the async threads.
                let (s, r, e, prev) = (
                    Arc::clone(&slot),
                    registry.clone(),
                    embedding_model.clone(),
                    seen.clone(),
                );
                seen = match tokio::task::spawn_blocking(move || s.reload(&r, &e, prev)).await {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(error = %e, "intent model reload task failed");
                        seen
                    }
                };
            }
        });
    }

    /// Swaps in the active version when it differs from `seen`; returns the version now in use.
    fn reload(
        &self,
        registry: &Registry,
        embedding_model: &str,
        seen: Option<String>,
    ) -> Option<String> {
        let state = match registry.state() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the intent model state; keeping the current model");
                return seen;
            }
        };
        if state.active == seen {
            return seen;
        }
        let Some(version) = state.active else {
            self.set(None);
            tracing::info!("intent model deactivated");
            metrics::gauge!("kefu_intent_model_active").set(0.0);
            return None;
        };
        match registry.load(&version) {
            Ok(m) => match self.prepare(m, embedding_model) {
                Ok(active) => {
                    tracing::info!(
                        version,
                        intents = active.model.meta.labels.len(),
                        fine_tuned = active.encoder.is_some(),
                        second_encoders = active.also.len(),
                        "intent model active"
                    );
                    self.model.store(Some(Arc::new(active)));
                    metrics::gauge!("kefu_intent_model_active").set(1.0);
                    Some(version)
                }
                Err(reason) => {
                    tracing::warn!(version, reason, "intent model not used");
                    self.set(None);
                    metrics::gauge!("kefu_intent_model_active").set(0.0);
                    Some(version)
                }
            },
            Err(e) => {
                tracing::warn!(version, error = %e, "cannot load intent model; keeping the current one");
                seen
            }
        }
    }
}

/// The intent step: `model`'s prediction for a message's vector, as the trace records it.
pub fn classify(model: &IntentModel, vector: &[f32]) -> IntentTrace {
    let p = model.predict(vector);
    metrics::counter!(
        "kefu_intent_predictions_total",
        "in_scope" => if p.in_scope { "true" } else { "false" }
    )
    .increment(1);
    IntentTrace {
        name: p.in_scope.then(|| p.top_intent.clone()),
        probability: Some(p.confidence),
        closest: Some(p.top_intent),
        threshold: Some(model.meta.threshold),
        model: Some(model.meta.version.clone()),
        routed: false,
        status: if p.in_scope {
            IntentStatus::InScope
        } else {
            IntentStatus::OutOfScope
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_kb::embed::testing::HashingEmbedder;
    use kefu_kb::intent::model::{Dense, ModelMeta};

    /// A linear head over `dim` inputs trained (nominally) on `embedding_model`.
    fn model(embedding_model: &str, dim: usize) -> IntentModel {
        let meta: ModelMeta = serde_json::from_value(serde_json::json!({
            "version": "v3", "created_at": 0, "embedding_model": embedding_model, "dim": dim,
            "labels": ["refund", "track_order"], "threshold": 0.5, "calibration": "test",
            "hidden": 0, "data_file": "d", "data_hash": "h", "train_examples": 2,
            "oos_examples": 0, "epochs": 1, "train_seconds": 0.0, "metrics": null
        }))
        .expect("meta");
        let layer = Dense {
            weight: vec![0.0; 2 * dim],
            bias: vec![0.0, 0.0],
            inputs: dim,
            outputs: 2,
        };
        IntentModel::new(meta, vec![layer]).expect("model")
    }

    fn loaders() -> EncoderLoaders {
        EncoderLoaders {
            tuned: Arc::new(|_| Err(KbError::InvalidInput("no tuned encoders here".into()))),
            stock: Arc::new(|name| match name {
                "second" => Ok(Arc::new(HashingEmbedder::named("second", 8)) as Arc<dyn Embedder>),
                _ => Err(KbError::UnknownModel(name.into())),
            }),
        }
    }

    #[tokio::test]
    async fn a_head_on_two_encoders_reads_the_search_vector_then_the_second_encoders() {
        let slot = IntentSlot::with_encoders(loaders());
        let active = slot
            .prepare(model("test-hashing|second", 24), "test-hashing")
            .expect("prepared");
        assert!(active.encoder.is_none());
        assert_eq!(active.also.len(), 1);
        let shared = HashingEmbedder::new(16)
            .embed(&["我要退款"], TextRole::Query)
            .expect("embed")
            .remove(0);
        let v = active.vector("我要退款", &shared).await.expect("vector");
        let second = HashingEmbedder::named("second", 8)
            .embed(&["我要退款"], TextRole::Query)
            .expect("embed")
            .remove(0);
        assert_eq!(v.len(), 24);
        assert_eq!(v[..16], shared[..]);
        assert_eq!(v[16..], second[..]);
    }

    #[test]
    fn a_head_on_two_encoders_needs_the_main_one_and_a_loader() {
        let slot = IntentSlot::with_encoders(loaders());
        let wrong_main = slot.prepare(model("other|second", 24), "test-hashing");
        assert!(wrong_main.is_err());
        let unknown = slot.prepare(model("test-hashing|third", 24), "test-hashing");
        assert!(unknown.is_err());
        let bare = IntentSlot::new().prepare(model("test-hashing|second", 24), "test-hashing");
        assert!(bare.is_err());
        let single = IntentSlot::new()
            .prepare(model("test-hashing", 16), "test-hashing")
            .expect("one encoder needs no loader");
        assert!(single.also.is_empty());
    }
}
