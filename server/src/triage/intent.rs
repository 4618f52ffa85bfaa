//! The active intent model as the server sees it: an atomically swapped slot, reloaded when
//! `kefu intent activate|rollback|train` changes the registry's state file (polled, so it works
//! whichever process made the change); and the intent step of triage (`classify`).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use kefu_kb::intent::{IntentModel, Registry};

use super::trace::{IntentStatus, IntentTrace};

/// How often the registry's state is checked.
pub const POLL: Duration = Duration::from_secs(2);

/// The model in use, swapped whole: a message is classified by the old model or the new one.
#[derive(Default)]
pub struct IntentSlot {
    model: ArcSwapOption<IntentModel>,
}

impl IntentSlot {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current model, if any.
    pub fn current(&self) -> Option<Arc<IntentModel>> {
        self.model.load_full()
    }

    /// Replaces the model.
    pub fn set(&self, model: Option<IntentModel>) {
        self.model.store(model.map(Arc::new));
    }

    /// Loads the registry's active model once (for one-shot commands such as `kefu kb ask`).
    pub fn load_active(&self, registry: &Registry, embedding_model: &str) {
        self.reload(registry, embedding_model, None);
    }

    /// Loads the registry's active model now (a model for another embedder is refused and
    /// logged), then follows changes until the process ends.
    pub fn follow(self: &Arc<Self>, registry: Registry, embedding_model: String) {
        let mut seen = self.reload(&registry, &embedding_model, None);
        let slot = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL);
            tick.tick().await;
            loop {
                tick.tick().await;
                seen = slot.reload(&registry, &embedding_model, seen.clone());
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
            Ok(m) if m.meta.embedding_model != embedding_model => {
                tracing::warn!(
                    version,
                    trained_on = m.meta.embedding_model,
                    running = embedding_model,
                    "intent model was trained on another embedding model; not using it"
                );
                self.set(None);
                Some(version)
            }
            Ok(m) => {
                tracing::info!(
                    version,
                    intents = m.meta.labels.len(),
                    "intent model active"
                );
                self.set(Some(m));
                metrics::gauge!("kefu_intent_model_active").set(1.0);
                Some(version)
            }
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
