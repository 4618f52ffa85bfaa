//! Intent model versions shared by a cluster: on PostgreSQL each version's files and the
//! activation state are kept in the database (`intent_versions`, `intent_files`,
//! `intent_state`), and every node mirrors them into its own registry directory, which is what it
//! loads and serves. A node pulls before it numbers a new version or changes the state, and
//! pushes what it saved or activated.

use crate::error::{KbError, Result};
use crate::file_sets::FileSets;
use crate::intent::registry::{ActiveState, Registry};
use crate::store::KbStore;

/// Intent model versions' files in the database.
const VERSIONS: FileSets = FileSets {
    sets: "intent_versions",
    files: "intent_files",
    key: "version",
};

/// A local registry kept in step with the shared store.
#[derive(Clone)]
pub struct Mirror {
    local: Registry,
    store: KbStore,
}

impl Mirror {
    /// Mirrors `local` with `store` when the store is shared (PostgreSQL); `None` on SQLite,
    /// where the local registry is the only copy.
    pub fn new(local: Registry, store: &KbStore) -> Option<Self> {
        store.is_shared().then(|| Self {
            local,
            store: store.clone(),
        })
    }

    pub fn local(&self) -> &Registry {
        &self.local
    }

    /// Brings the local registry up to the database: versions it lacks are written, and the
    /// activation state replaced when it differs. Returns whether anything changed.
    pub async fn pull(&self) -> Result<bool> {
        let mut changed = false;
        let versions = VERSIONS.keys(&self.store).await?;
        for version in versions.iter().filter(|v| !self.local.has(v)) {
            let files = VERSIONS.files(&self.store, version).await?;
            self.local.install(version, &files)?;
            changed = true;
        }
        let shared: Option<String> =
            sqlx::query_scalar("SELECT state FROM intent_state WHERE id = 1")
                .fetch_optional(self.store.pool())
                .await?;
        if let Some(raw) = shared {
            let state: ActiveState = serde_json::from_str(&raw)
                .map_err(|e| KbError::Corrupt(format!("intent_state: {e}")))?;
            if state != self.local.state()? {
                self.local.write_state(&state)?;
                changed = true;
            }
        }
        Ok(changed)
    }

    /// Publishes local version `version` (every file in its directory). Refused with
    /// `Conflict` when another node published a different version under the same name meanwhile.
    pub async fn push_version(&self, version: &str) -> Result<()> {
        let files = self.local.files(version)?;
        VERSIONS
            .publish(&self.store, version, &files, || {
                format!("another node saved intent model {version} at the same time; train again")
            })
            .await
    }

    /// Publishes the local activation state.
    pub async fn push_state(&self) -> Result<()> {
        let state = serde_json::to_string(&self.local.state()?)
            .map_err(|e| KbError::InvalidInput(format!("intent state: {e}")))?;
        sqlx::query(
            "INSERT INTO intent_state (id, state) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET state = excluded.state",
        )
        .bind(state)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }
}
