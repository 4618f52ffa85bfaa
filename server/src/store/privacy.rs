//! Privacy in the store: erasing one visitor (their conversations, messages, ratings, queued
//! deliveries, tokens and the visitor row) in one transaction, deleting conversations past a
//! site's retention, and the audit log that records both.

use serde_json::Value;
use sqlx::Row;

use super::*;

/// What one erasure or retention run deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Deleted {
    /// The deleted conversations' ids (to erase them from training data too).
    pub conversation_ids: Vec<String>,
    pub messages: u64,
    pub ratings: u64,
    /// Webhook, event and channel deliveries of those conversations not yet sent.
    pub deliveries: u64,
    pub visitors: u64,
    pub tokens: u64,
    /// The deleted attachments' ids (to delete their files).
    pub attachment_ids: Vec<String>,
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: String,
    /// Unix milliseconds.
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub site_key: Option<String>,
    pub subject: Option<String>,
    #[schema(value_type = Object)]
    pub detail: Value,
}

/// Deletes the conversations `scope` selects (a `WHERE` over `conversations`, binding `$1`
/// and `$2`) with everything stored about them.
async fn delete_conversations(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    scope: &str,
    a: &str,
    b: i64,
) -> Result<Deleted> {
    let ids: Vec<String> =
        sqlx::query_scalar(&format!("SELECT id FROM conversations WHERE {scope}"))
            .bind(a)
            .bind(b)
            .fetch_all(&mut **tx)
            .await?;
    let of_scope = format!("conversation_id IN (SELECT id FROM conversations WHERE {scope})");
    let attachment_ids: Vec<String> =
        sqlx::query_scalar(&format!("SELECT id FROM attachments WHERE {of_scope}"))
            .bind(a)
            .bind(b)
            .fetch_all(&mut **tx)
            .await?;
    scoped(
        tx,
        &format!("DELETE FROM attachments WHERE {of_scope}"),
        a,
        b,
    )
    .await?;
    let messages = scoped(tx, &format!("DELETE FROM messages WHERE {of_scope}"), a, b).await?;
    let ratings = scoped(tx, &format!("DELETE FROM ratings WHERE {of_scope}"), a, b).await?;
    let undelivered = format!("DELETE FROM webhook_outbox WHERE pending = 1 AND {of_scope}");
    let deliveries = scoped(tx, &undelivered, a, b).await?;
    // Sent deliveries' bodies hold the conversation's text too; the log keeps their fact.
    let emptied = format!("UPDATE webhook_outbox SET body = '{{}}' WHERE {of_scope}");
    scoped(tx, &emptied, a, b).await?;
    scoped(
        tx,
        &format!("DELETE FROM conversations WHERE {scope}"),
        a,
        b,
    )
    .await?;
    Ok(Deleted {
        conversation_ids: ids,
        messages,
        ratings,
        deliveries,
        attachment_ids,
        ..Deleted::default()
    })
}

/// Runs one statement of a deletion's scope (binding `$1` and `$2`): the rows it changed.
async fn scoped(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    sql: &str,
    a: &str,
    b: i64,
) -> Result<u64> {
    Ok(sqlx::query(sql)
        .bind(a)
        .bind(b)
        .execute(&mut **tx)
        .await?
        .rows_affected())
}

async fn audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    actor: &str,
    action: &str,
    site_key: Option<&str>,
    subject: Option<&str>,
    detail: &Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, at, actor, action, site_key, subject, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id("aud_"))
    .bind(now_ms())
    .bind(actor)
    .bind(action)
    .bind(site_key.map(str::to_string))
    .bind(subject.map(str::to_string))
    .bind(detail.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The audit detail of a deletion: counts only.
fn counts(d: &Deleted) -> Value {
    serde_json::json!({
        "conversations": d.conversation_ids.len(),
        "messages": d.messages,
        "ratings": d.ratings,
        "deliveries": d.deliveries,
        "visitors": d.visitors,
        "tokens": d.tokens,
        "attachments": d.attachment_ids.len(),
    })
}

impl Store {
    /// The visitor `channel` knows as `external_id` on `site_key` (a verified user id on the web).
    pub async fn find_channel_visitor(
        &self,
        site_key: &str,
        channel: Channel,
        external_id: &str,
    ) -> Result<Option<Visitor>> {
        self.visitor_by_external(site_key, channel, external_id)
            .await
    }

    /// Erases a visitor: every conversation with its messages, rating and undelivered
    /// deliveries, their tokens and the visitor row, and records it in the audit log (by
    /// `actor`), in one transaction.
    pub async fn erase_visitor(&self, visitor: &Visitor, actor: &str) -> Result<Deleted> {
        let mut tx = self.pool.begin().await?;
        let mut out =
            delete_conversations(&mut tx, "visitor_id = $1 AND $2 = $2", &visitor.id, 0).await?;
        out.tokens = sqlx::query("DELETE FROM auth_tokens WHERE kind = 'visitor' AND subject = $1")
            .bind(&visitor.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        out.visitors = sqlx::query("DELETE FROM visitors WHERE id = $1")
            .bind(&visitor.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let detail = counts(&out);
        audit(
            &mut tx,
            actor,
            "visitor.erased",
            Some(&visitor.site_key),
            Some(&visitor.id),
            &detail,
        )
        .await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Sets a site's retention in days (0: keep everything), recorded in the audit log.
    pub async fn set_retention(&self, site_key: &str, days: u32, actor: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("UPDATE sites SET retention_days = $2 WHERE site_key = $1")
            .bind(site_key)
            .bind(i64::from(days))
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let detail = serde_json::json!({ "days": days });
        audit(
            &mut tx,
            actor,
            "retention.set",
            Some(site_key),
            None,
            &detail,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A site's retention in days (0: keep everything), or `None` for an unknown site.
    pub async fn retention(&self, site_key: &str) -> Result<Option<u32>> {
        let days: Option<i64> =
            sqlx::query_scalar("SELECT retention_days FROM sites WHERE site_key = $1")
                .bind(site_key)
                .fetch_optional(&self.pool)
                .await?;
        Ok(days.map(|d| d.clamp(0, u32::MAX as i64) as u32))
    }

    /// Every site's retention in days (0: keep everything).
    pub async fn retention_policies(&self) -> Result<Vec<(String, u32)>> {
        let rows = sqlx::query("SELECT site_key, retention_days FROM sites ORDER BY site_key")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let days: i64 = r.try_get("retention_days")?;
                Ok((
                    r.try_get("site_key")?,
                    days.clamp(0, u32::MAX as i64) as u32,
                ))
            })
            .collect()
    }

    /// Deletes a site's conversations whose last activity is before `cutoff` (Unix ms), with
    /// everything stored about them, and the visitors left with no conversation who arrived
    /// before it; recorded in the audit log when anything was deleted.
    pub async fn delete_expired(&self, site_key: &str, cutoff: i64) -> Result<Deleted> {
        let mut tx = self.pool.begin().await?;
        let mut out = delete_conversations(
            &mut tx,
            "site_key = $1 AND updated_at < $2",
            site_key,
            cutoff,
        )
        .await?;
        out.visitors = sqlx::query(
            "DELETE FROM visitors WHERE site_key = $1 AND created_at < $2
                 AND NOT EXISTS (SELECT 1 FROM conversations c WHERE c.visitor_id = visitors.id)
                 AND NOT EXISTS (SELECT 1 FROM auth_tokens t
                                 WHERE t.kind = 'visitor' AND t.subject = visitors.id)",
        )
        .bind(site_key)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if out.conversation_ids.is_empty() && out.visitors == 0 {
            tx.rollback().await?;
            return Ok(out);
        }
        let mut detail = counts(&out);
        detail["cutoff"] = cutoff.into();
        audit(
            &mut tx,
            "retention",
            "retention.deleted",
            Some(site_key),
            None,
            &detail,
        )
        .await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Adds to an erasure's audit entry what was erased outside this store (training data).
    pub async fn audit_note(
        &self,
        actor: &str,
        action: &str,
        site_key: Option<&str>,
        subject: Option<&str>,
        detail: &Value,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        audit(&mut tx, actor, action, site_key, subject, detail).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The newest audit log entries, newest first.
    pub async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query("SELECT * FROM audit_log ORDER BY at DESC, id DESC LIMIT $1")
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let detail: String = r.try_get("detail")?;
                Ok(AuditEntry {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    site_key: r.try_get("site_key")?,
                    subject: r.try_get("subject")?,
                    detail: serde_json::from_str(&detail)
                        .map_err(|e| StoreError::Corrupt(format!("audit detail: {e}")))?,
                })
            })
            .collect()
    }
}
