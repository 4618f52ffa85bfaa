//! Shared settings: the newest saved text of each operator settings file, versioned.

use sqlx::Row;

use super::*;

/// One shared setting as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedSetting {
    pub name: String,
    /// `None`: removed.
    pub content: Option<String>,
    pub version: i64,
}

impl Store {
    /// Saves `content` as the newest version of setting `name`; returns that version.
    pub async fn publish_setting(&self, name: &str, content: Option<&str>) -> Result<i64> {
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO shared_settings (name, content, version, updated_at) VALUES ($1, $2, 1, $3)
             ON CONFLICT (name) DO UPDATE SET content = excluded.content,
                 version = shared_settings.version + 1, updated_at = excluded.updated_at
             RETURNING version",
        )
        .bind(name)
        .bind(content)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        Ok(version)
    }

    /// Every shared setting.
    pub async fn shared_settings(&self) -> Result<Vec<SharedSetting>> {
        let rows = sqlx::query("SELECT name, content, version FROM shared_settings ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SharedSetting {
                    name: r.try_get("name")?,
                    content: r.try_get("content")?,
                    version: r.try_get("version")?,
                })
            })
            .collect()
    }
}
