//! Intent model versions shared by a cluster: on PostgreSQL each version's files and the
//! activation state are kept in the database (`intent_versions`, `intent_files`,
//! `intent_state`), and every node mirrors them into its own registry directory, which is what it
//! loads and serves. A node pulls before it numbers a new version or changes the state, and
//! pushes what it saved or activated.

use sqlx::Row;

use crate::error::{KbError, Result};
use crate::intent::registry::{ActiveState, Registry};
use crate::store::{now_ms, KbStore};

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
        let versions: Vec<String> =
            sqlx::query_scalar("SELECT version FROM intent_versions ORDER BY created_at")
                .fetch_all(self.store.pool())
                .await?;
        for version in versions.iter().filter(|v| !self.local.has(v)) {
            let rows = sqlx::query("SELECT name, content FROM intent_files WHERE version = $1")
                .bind(version)
                .fetch_all(self.store.pool())
                .await?;
            let files = rows
                .iter()
                .map(|r| Ok((r.try_get("name")?, r.try_get("content")?)))
                .collect::<Result<Vec<(String, Vec<u8>)>>>()?;
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
        let mut tx = self.store.pool().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO intent_versions (version, created_at) VALUES ($1, $2) \
             ON CONFLICT (version) DO NOTHING",
        )
        .bind(version)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            // Published before (by this node, or an identical copy): nothing to do.
            let rows = sqlx::query("SELECT name, content FROM intent_files WHERE version = $1")
                .bind(version)
                .fetch_all(&mut *tx)
                .await?;
            let mut stored = rows
                .iter()
                .map(|r| Ok((r.try_get("name")?, r.try_get("content")?)))
                .collect::<Result<Vec<(String, Vec<u8>)>>>()?;
            stored.sort();
            if stored == files {
                return Ok(());
            }
            return Err(KbError::Conflict(format!(
                "another node saved intent model {version} at the same time; train again"
            )));
        }
        for (name, content) in &files {
            sqlx::query("INSERT INTO intent_files (version, name, content) VALUES ($1, $2, $3)")
                .bind(version)
                .bind(name)
                .bind(content)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
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
