//! Shared server state: the knowledge service, filled in once loading finishes (until then the
//! server answers `/healthz` but not `/readyz`).

use std::sync::{Arc, OnceLock};

use kefu_kb::Knowledge;

/// What every handler can reach.
#[derive(Clone, Default)]
pub struct AppState {
    knowledge: Arc<OnceLock<Arc<Knowledge>>>,
}

impl AppState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the server ready with its loaded knowledge service.
    pub fn set_ready(&self, knowledge: Arc<Knowledge>) {
        let _ = self.knowledge.set(knowledge);
    }

    /// The knowledge service, once loaded.
    pub fn knowledge(&self) -> Option<&Arc<Knowledge>> {
        self.knowledge.get()
    }
}
