//! The active intent model as the server sees it: an atomically swapped slot, reloaded when
//! `kefu intent activate|rollback|train` changes the registry's state file (polled, so it works
//! whichever process made the change); and the intent step of triage (`classify`).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use kefu_kb::finetune::EncoderDelta;
use kefu_kb::intent::{IntentModel, Registry};
use kefu_kb::{Embedder, KbError, TextRole};

use super::trace::{IntentStatus, IntentTrace};

/// How often the registry's state is checked.
pub const POLL: Duration = Duration::from_secs(2);

/// Builds the embedder of a fine-tuned encoder (the stock model with the delta applied).
pub type EncoderLoader =
    Arc<dyn Fn(&EncoderDelta) -> Result<Arc<dyn Embedder>, KbError> + Send + Sync>;

/// An intent model ready to classify, with the encoder it was trained on when that is a
/// fine-tuned one (otherwise it classifies the vector the knowledge search uses).
pub struct ActiveIntents {
    pub model: IntentModel,
    pub encoder: Option<Arc<dyn Embedder>>,
}

impl ActiveIntents {
    /// The vector `model` classifies `text` by: its own encoder's, else `shared` (the search
    /// vector).
    pub async fn vector(&self, text: &str, shared: &[f32]) -> Result<Vec<f32>, KbError> {
        let Some(encoder) = &self.encoder else {
            return Ok(shared.to_vec());
        };
        let encoder = Arc::clone(encoder);
        let text = text.to_string();
        tokio::task::spawn_blocking(move || encoder.embed(&[&text], TextRole::Query))
            .await
            .map_err(|e| KbError::InvalidInput(format!("intent encoder task: {e}")))??
            .pop()
            .ok_or_else(|| KbError::InvalidInput("the intent encoder returned no vector".into()))
    }
}

/// The model in use, swapped whole: a message is classified by the old model or the new one.
#[derive(Default)]
pub struct IntentSlot {
    model: ArcSwapOption<ActiveIntents>,
    /// Loads fine-tuned encoders; without one, models trained with `--fine-tune` are refused.
    encoders: Option<EncoderLoader>,
}

impl IntentSlot {
    pub fn new() -> Self {
        Self::default()
    }

    /// A slot that can run models with a fine-tuned encoder, loading it with `encoders`.
    pub fn with_encoders(encoders: EncoderLoader) -> Self {
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
            })
        }));
    }

    /// Readies `m` for a server running `embedding_model`: a head on the stock encoder must match
    /// it; a head on a fine-tuned encoder needs that encoder's base to match, and loads it.
    fn prepare(&self, m: IntentModel, embedding_model: &str) -> Result<ActiveIntents, String> {
        let Some(delta) = &m.encoder else {
            if m.meta.embedding_model != embedding_model {
                return Err(format!(
                    "trained on the embedding model {}, the server runs {embedding_model}",
                    m.meta.embedding_model
                ));
            }
            return Ok(ActiveIntents {
                model: m,
                encoder: None,
            });
        };
        if delta.meta.base_model != embedding_model {
            return Err(format!(
                "its fine-tuned encoder is based on {}, the server runs {embedding_model}",
                delta.meta.base_model
            ));
        }
        let Some(load) = &self.encoders else {
            return Err("this process cannot load fine-tuned encoders".into());
        };
        let encoder = load(delta).map_err(|e| e.to_string())?;
        Ok(ActiveIntents {
            model: m,
            encoder: Some(encoder),
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
