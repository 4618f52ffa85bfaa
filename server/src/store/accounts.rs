//! Sites, agents, tokens and visitors.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::*;

impl Store {
    pub async fn create_site(&self, site: &Site) -> Result<()> {
        let origins = serde_json::to_string(&site.allowed_origins)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let r = sqlx::query(
            "INSERT INTO sites (site_key, name, allowed_origins, identity_secret, enforce_identity, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&site.key)
        .bind(&site.name)
        .bind(origins)
        .bind(site.identity_secret.clone())
        .bind(site.enforce_identity as i64)
        .bind(now_ms())
        .execute(&self.pool)
        .await;
        unique_as(r, || format!("site `{}`", site.key))
    }
    pub async fn site(&self, key: &str) -> Result<Option<Site>> {
        let row = sqlx::query("SELECT * FROM sites WHERE site_key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| site_from_row(&r)).transpose()
    }
    pub async fn sites(&self) -> Result<Vec<Site>> {
        let rows = sqlx::query("SELECT * FROM sites ORDER BY site_key")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(site_from_row).collect()
    }
    pub async fn create_agent(&self, agent: &Agent) -> Result<()> {
        let r = sqlx::query(
            "INSERT INTO agents (id, name, display_name, password_hash, capacity, role, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&agent.id)
        .bind(&agent.name)
        .bind(&agent.display_name)
        .bind(&agent.password_hash)
        .bind(agent.capacity as i64)
        .bind(agent.role.as_str())
        .bind(now_ms())
        .execute(&self.pool)
        .await;
        unique_as(r, || format!("agent `{}`", agent.name))
    }
    pub async fn set_agent_password(&self, name: &str, password_hash: &str) -> Result<()> {
        let r = sqlx::query("UPDATE agents SET password_hash = $1 WHERE name = $2")
            .bind(password_hash)
            .bind(name)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("agent `{name}`")));
        }
        Ok(())
    }
    /// Gives the named account `role`.
    pub async fn set_agent_role(&self, name: &str, role: Role) -> Result<()> {
        let r = sqlx::query("UPDATE agents SET role = $1 WHERE name = $2")
            .bind(role.as_str())
            .bind(name)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("agent `{name}`")));
        }
        Ok(())
    }
    pub async fn agent_by_name(&self, name: &str) -> Result<Option<Agent>> {
        let row = sqlx::query("SELECT * FROM agents WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| agent_from_row(&r)).transpose()
    }
    pub async fn agent(&self, id: &str) -> Result<Option<Agent>> {
        let row = sqlx::query("SELECT * FROM agents WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| agent_from_row(&r)).transpose()
    }
    pub async fn agents(&self) -> Result<Vec<Agent>> {
        let rows = sqlx::query("SELECT * FROM agents ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(agent_from_row).collect()
    }
    /// Conversations each agent owns now (state `agent`).
    pub async fn active_counts(&self) -> Result<Vec<(String, u32)>> {
        let rows = sqlx::query(
            "SELECT agent_id, COUNT(*) AS n FROM conversations
             WHERE state = 'agent' AND agent_id IS NOT NULL GROUP BY agent_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("agent_id")?, r.try_get::<i64, _>("n")? as u32)))
            .collect()
    }
    pub async fn insert_token(&self, token_hash: &str, token: &TokenRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO auth_tokens (token_hash, kind, subject, site_key, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_hash)
        .bind(token.kind.as_str())
        .bind(&token.subject)
        .bind(token.site_key.clone())
        .bind(token.expires_at)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
    /// The unexpired token with this hash.
    pub async fn token(&self, token_hash: &str) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(
            "SELECT kind, subject, site_key, expires_at FROM auth_tokens
             WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let kind: String = r.try_get("kind")?;
            Ok(TokenRecord {
                kind: TokenKind::parse(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("token kind `{kind}`")))?,
                subject: r.try_get("subject")?,
                site_key: r.try_get("site_key")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }
    /// Revokes one token.
    pub async fn delete_token(&self, token_hash: &str) -> Result<u64> {
        let r = sqlx::query("DELETE FROM auth_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
    /// Revokes every token of `kind` issued to `subject`; returns how many.
    pub async fn delete_tokens_of(&self, kind: TokenKind, subject: &str) -> Result<u64> {
        let r = sqlx::query("DELETE FROM auth_tokens WHERE kind = $1 AND subject = $2")
            .bind(kind.as_str())
            .bind(subject)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
    /// The admin API keys in force, by name: when the first was issued, when the last expires,
    /// and how many carry the name.
    pub async fn admin_keys(&self) -> Result<Vec<AdminKey>> {
        let rows = sqlx::query(
            "SELECT subject, MIN(created_at) AS created_at, MAX(expires_at) AS expires_at, COUNT(*) AS n
             FROM auth_tokens WHERE kind = 'admin' AND expires_at > $1 GROUP BY subject ORDER BY subject",
        )
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AdminKey {
                    name: r.try_get("subject")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    count: r.try_get::<i64, _>("n")? as u64,
                })
            })
            .collect()
    }

    /// Forgets expired tokens; returns how many.
    pub async fn delete_expired_tokens(&self) -> Result<u64> {
        let r = sqlx::query("DELETE FROM auth_tokens WHERE expires_at <= $1")
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
    /// The visitor for a verified `external_id` on `site_key` (created on first use), or a new
    /// anonymous visitor when `external_id` is `None`.
    pub async fn visitor_for(
        &self,
        site_key: &str,
        external_id: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<Visitor> {
        match external_id {
            Some(ext) => {
                self.channel_visitor(site_key, Channel::Web, ext, display_name)
                    .await
            }
            None => {
                let visitor = Visitor {
                    id: new_id("v_"),
                    site_key: site_key.to_string(),
                    channel: Channel::Web,
                    external_id: None,
                    display_name: display_name.map(str::to_string),
                };
                self.insert_visitor(&visitor).await?;
                Ok(visitor)
            }
        }
    }

    /// The visitor known to `channel` as `external_id` on `site_key`, created on first use.
    pub async fn channel_visitor(
        &self,
        site_key: &str,
        channel: Channel,
        external_id: &str,
        display_name: Option<&str>,
    ) -> Result<Visitor> {
        if let Some(v) = self
            .visitor_by_external(site_key, channel, external_id)
            .await?
        {
            return Ok(v);
        }
        let visitor = Visitor {
            id: new_id("v_"),
            site_key: site_key.to_string(),
            channel,
            external_id: Some(external_id.to_string()),
            display_name: display_name.map(str::to_string),
        };
        match self.insert_visitor(&visitor).await {
            Ok(()) => Ok(visitor),
            // Two first messages of one user at once: the other insert won; use its row.
            Err(StoreError::Database(sqlx::Error::Database(e))) if e.is_unique_violation() => self
                .visitor_by_external(site_key, channel, external_id)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("visitor `{external_id}`"))),
            Err(e) => Err(e),
        }
    }

    async fn insert_visitor(&self, v: &Visitor) -> Result<()> {
        sqlx::query(
            "INSERT INTO visitors (id, site_key, channel, external_id, display_name, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&v.id)
        .bind(&v.site_key)
        .bind(v.channel.as_str())
        .bind(v.external_id.clone())
        .bind(v.display_name.clone())
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn visitor_by_external(
        &self,
        site_key: &str,
        channel: Channel,
        ext: &str,
    ) -> Result<Option<Visitor>> {
        let row = sqlx::query(
            "SELECT * FROM visitors WHERE site_key = $1 AND channel = $2 AND external_id = $3",
        )
        .bind(site_key)
        .bind(channel.as_str())
        .bind(ext)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| visitor_from_row(&r)).transpose()
    }
    pub async fn visitor(&self, id: &str) -> Result<Option<Visitor>> {
        let row = sqlx::query("SELECT * FROM visitors WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| visitor_from_row(&r)).transpose()
    }
}

fn site_from_row(r: &AnyRow) -> Result<Site> {
    let origins: String = r.try_get("allowed_origins")?;
    Ok(Site {
        key: r.try_get("site_key")?,
        name: r.try_get("name")?,
        allowed_origins: serde_json::from_str(&origins)
            .map_err(|e| StoreError::Corrupt(format!("allowed_origins: {e}")))?,
        identity_secret: r.try_get("identity_secret")?,
        enforce_identity: r.try_get::<i64, _>("enforce_identity")? != 0,
    })
}

fn agent_from_row(r: &AnyRow) -> Result<Agent> {
    Ok(Agent {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        display_name: r.try_get("display_name")?,
        password_hash: r.try_get("password_hash")?,
        capacity: r.try_get::<i64, _>("capacity")?.max(0) as u32,
        role: {
            let role: String = r.try_get("role")?;
            Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("agent role {role:?}")))?
        },
    })
}

fn visitor_from_row(r: &AnyRow) -> Result<Visitor> {
    Ok(Visitor {
        id: r.try_get("id")?,
        site_key: r.try_get("site_key")?,
        channel: parse_channel(&r.try_get::<String, _>("channel")?)?,
        external_id: r.try_get("external_id")?,
        display_name: r.try_get("display_name")?,
    })
}

impl Store {
    /// Sets (`Some`: JSON) or clears a site's business hours; false when there is no such site.
    pub async fn set_business_hours(&self, site_key: &str, hours: Option<&str>) -> Result<bool> {
        let r = sqlx::query("UPDATE sites SET business_hours = $2 WHERE site_key = $1")
            .bind(site_key)
            .bind(hours.map(str::to_string))
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// A site's business hours (JSON), if it has any.
    pub async fn business_hours(&self, site_key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar::<_, Option<String>>(
            "SELECT business_hours FROM sites WHERE site_key = $1",
        )
        .bind(site_key)
        .fetch_optional(&self.pool)
        .await?
        .flatten())
    }

    /// The business hours (JSON) of a conversation's site, if it has any.
    pub async fn business_hours_of(&self, conversation_id: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar::<_, Option<String>>(
            "SELECT s.business_hours FROM conversations c JOIN sites s ON s.site_key = c.site_key
             WHERE c.id = $1",
        )
        .bind(conversation_id)
        .fetch_optional(&self.pool)
        .await?
        .flatten())
    }
}
