//! Sets of files shared through the knowledge database by a cluster (intent model versions,
//! fine-tuned retrieval encoders): a table of sets (`key`, `created_at`) and a table of their
//! files (`key`, `name`, `content`). A set is written once; writing the same files again is a
//! no-op and other files under the same key a conflict.

use sqlx::Row;

use crate::error::{KbError, Result};
use crate::store::{now_ms, KbStore};

/// The two tables of one kind of file set.
pub(crate) struct FileSets {
    /// Table of sets: `(<key>, created_at)`.
    pub sets: &'static str,
    /// Table of files: `(<key>, name, content)`.
    pub files: &'static str,
    /// The key column of both.
    pub key: &'static str,
}

impl FileSets {
    /// Every set's key, oldest first.
    pub async fn keys(&self, store: &KbStore) -> Result<Vec<String>> {
        let sql = format!("SELECT {} FROM {} ORDER BY created_at", self.key, self.sets);
        Ok(sqlx::query_scalar(&sql).fetch_all(store.pool()).await?)
    }

    /// The files of set `key` (name, content), by name; empty when there is no such set.
    pub async fn files(&self, store: &KbStore, key: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut conn = store.pool().acquire().await?;
        self.files_in(&mut conn, key).await
    }

    async fn files_in(
        &self,
        conn: &mut sqlx::AnyConnection,
        key: &str,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let sql = format!(
            "SELECT name, content FROM {} WHERE {} = $1 ORDER BY name",
            self.files, self.key
        );
        let rows = sqlx::query(&sql).bind(key).fetch_all(conn).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("content")?)))
            .collect()
    }

    /// Writes set `key` with `files` (sorted by name). `Conflict` (with `conflict`'s message)
    /// when other files were written under the same key.
    pub async fn publish(
        &self,
        store: &KbStore,
        key: &str,
        files: &[(String, Vec<u8>)],
        conflict: impl FnOnce() -> String,
    ) -> Result<()> {
        let mut tx = store.pool().begin().await?;
        let sql = format!(
            "INSERT INTO {} ({}, created_at) VALUES ($1, $2) ON CONFLICT ({}) DO NOTHING",
            self.sets, self.key, self.key
        );
        let inserted = sqlx::query(&sql)
            .bind(key)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        if inserted.rows_affected() == 0 {
            // Written before (by this node, or an identical copy): nothing to do.
            if self.files_in(&mut tx, key).await? == files {
                return Ok(());
            }
            return Err(KbError::Conflict(conflict()));
        }
        let sql = format!(
            "INSERT INTO {} ({}, name, content) VALUES ($1, $2, $3)",
            self.files, self.key
        );
        for (name, content) in files {
            sqlx::query(&sql)
                .bind(key)
                .bind(name)
                .bind(content)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
