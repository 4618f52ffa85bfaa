//! Attachments in the store: each uploaded file's record, binding files to the message that
//! carries them (inside the message's transaction), a site's limits, unsent uploads, and the
//! shared key that signs the expiring links every read hands out.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use kefu_protocol::Attachment;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::*;

/// How long a link stays valid at least; links end on a 6-hour boundary after that, so the same
/// link is handed out for 6 hours (browsers cache the image once).
const LINK_TTL_MS: i64 = 24 * 3600 * 1000;
const LINK_STEP_MS: i64 = 6 * 3600 * 1000;
/// The name of the link key in `server_secrets`.
const LINK_KEY: &str = "attachment_links";

/// An uploaded file's record.
#[derive(Debug, Clone, PartialEq)]
pub struct AttachmentRecord {
    pub id: String,
    pub site_key: String,
    pub conversation_id: String,
    pub uploader_kind: AuthorKind,
    pub uploader_id: String,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// A thumbnail was made (images).
    pub thumbnail: bool,
    /// The message that carried it; `None` until sent.
    pub seq: Option<u64>,
    pub created_at: i64,
}

/// What a message row keeps of each attachment (links are signed at each read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct AttachmentMeta {
    id: String,
    name: String,
    content_type: String,
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    height: Option<u32>,
    #[serde(default)]
    thumbnail: bool,
}

impl From<&AttachmentRecord> for AttachmentMeta {
    fn from(r: &AttachmentRecord) -> Self {
        Self {
            id: r.id.clone(),
            name: r.name.clone(),
            content_type: r.content_type.clone(),
            size: r.size,
            width: r.width,
            height: r.height,
            thumbnail: r.thumbnail,
        }
    }
}

/// Which file a link serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPart {
    File,
    Thumbnail,
}

impl LinkPart {
    fn label(self) -> &'static str {
        match self {
            LinkPart::File => "file",
            LinkPart::Thumbnail => "thumbnail",
        }
    }
}

/// What checking a link found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkCheck {
    Valid,
    Expired,
    Invalid,
}

/// Signs and checks attachment links: `HMAC-SHA256(key, "<part>.<id>.<exp>")`, 128 bits, hex.
#[derive(Clone)]
pub struct LinkSigner {
    key: Arc<[u8]>,
}

impl LinkSigner {
    fn new(key: &[u8]) -> Self {
        Self { key: key.into() }
    }

    fn sig(&self, id: &str, part: LinkPart, exp: i64) -> Option<Hmac<Sha256>> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).ok()?;
        mac.update(format!("{}.{id}.{exp}", part.label()).as_bytes());
        Some(mac)
    }

    /// The link to `part` of attachment `id`, valid for a day at least from `now_ms`.
    pub fn link(&self, id: &str, part: LinkPart, now_ms: i64) -> String {
        let exp_ms = (now_ms + LINK_TTL_MS) / LINK_STEP_MS * LINK_STEP_MS + LINK_STEP_MS;
        let exp = exp_ms / 1000;
        let sig = self
            .sig(id, part, exp)
            .map(|m| hex::encode(&m.finalize().into_bytes()[..16]))
            .unwrap_or_default();
        let path = match part {
            LinkPart::File => format!("/v1/attachments/{id}"),
            LinkPart::Thumbnail => format!("/v1/attachments/{id}/thumbnail"),
        };
        format!("{path}?exp={exp}&sig={sig}")
    }

    /// Whether `sig` signs `part` of `id` until `exp` (Unix seconds), as of `now_ms`.
    pub fn check(&self, id: &str, part: LinkPart, exp: i64, sig: &str, now_ms: i64) -> LinkCheck {
        let Ok(given) = hex::decode(sig) else {
            return LinkCheck::Invalid;
        };
        let Some(mac) = self.sig(id, part, exp) else {
            return LinkCheck::Invalid;
        };
        if mac.verify_truncated_left(&given).is_err() || given.len() != 16 {
            return LinkCheck::Invalid;
        }
        if exp.saturating_mul(1000) < now_ms {
            return LinkCheck::Expired;
        }
        LinkCheck::Valid
    }

    /// The wire form of a stored attachment, with fresh links.
    pub(super) fn wire(&self, m: &AttachmentMeta, now_ms: i64) -> Attachment {
        Attachment {
            id: m.id.clone(),
            name: m.name.clone(),
            content_type: m.content_type.clone(),
            size: m.size,
            width: m.width,
            height: m.height,
            url: self.link(&m.id, LinkPart::File, now_ms),
            thumbnail_url: m
                .thumbnail
                .then(|| self.link(&m.id, LinkPart::Thumbnail, now_ms)),
        }
    }

    /// The wire forms of a message row's `attachments` column.
    pub(super) fn wire_all(&self, column: Option<&str>) -> Result<Vec<Attachment>> {
        let Some(text) = column else {
            return Ok(vec![]);
        };
        let metas: Vec<AttachmentMeta> = serde_json::from_str(text)
            .map_err(|e| StoreError::Corrupt(format!("attachments: {e}")))?;
        let now = now_ms();
        Ok(metas.iter().map(|m| self.wire(m, now)).collect())
    }
}

/// The link key every node shares: read, or made and stored by the first node to start.
pub(super) async fn link_signer(pool: &AnyPool) -> Result<LinkSigner> {
    let mut fresh = [0u8; 32];
    getrandom::fill(&mut fresh)
        .map_err(|e| StoreError::Corrupt(format!("no random source for the link key: {e}")))?;
    sqlx::query(
        "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(LINK_KEY)
    .bind(hex::encode(fresh))
    .execute(pool)
    .await?;
    let value: String = sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = $1")
        .bind(LINK_KEY)
        .fetch_one(pool)
        .await?;
    let key =
        hex::decode(value.trim()).map_err(|e| StoreError::Corrupt(format!("link key: {e}")))?;
    Ok(LinkSigner::new(&key))
}

/// A site's attachment limits as stored (`None`: the defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachmentLimits {
    pub max_bytes: Option<u64>,
    /// Comma-separated kinds; `Some("")`: attachments off.
    pub kinds: Option<String>,
}

/// Binds the uploads `ids` (the uploader's, in this conversation, not yet sent) to the message
/// `seq`, in the message's transaction; their metadata in the order given, or `None` when any is
/// not such an upload.
pub(super) async fn bind(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    conversation_id: &str,
    seq: u64,
    uploader_id: &str,
    ids: &[String],
) -> Result<Option<Vec<AttachmentMeta>>> {
    let mut unique: Vec<&String> = Vec::new();
    for id in ids {
        if !unique.contains(&id) {
            unique.push(id);
        }
    }
    let placeholders: Vec<String> = (0..unique.len()).map(|i| format!("${}", i + 4)).collect();
    let sql = format!(
        "UPDATE attachments SET seq = $1
         WHERE conversation_id = $2 AND uploader_id = $3 AND seq IS NULL AND id IN ({})",
        placeholders.join(", ")
    );
    let mut q = sqlx::query(&sql)
        .bind(seq as i64)
        .bind(conversation_id)
        .bind(uploader_id);
    for id in &unique {
        q = q.bind(id.as_str());
    }
    if q.execute(&mut **tx).await?.rows_affected() != unique.len() as u64 {
        return Ok(None);
    }
    let rows = sqlx::query("SELECT * FROM attachments WHERE conversation_id = $1 AND seq = $2")
        .bind(conversation_id)
        .bind(seq as i64)
        .fetch_all(&mut **tx)
        .await?;
    let records: Vec<AttachmentRecord> = rows.iter().map(record_from_row).collect::<Result<_>>()?;
    Ok(Some(
        unique
            .iter()
            .filter_map(|id| records.iter().find(|r| &&r.id == id))
            .map(AttachmentMeta::from)
            .collect(),
    ))
}

fn record_from_row(r: &AnyRow) -> Result<AttachmentRecord> {
    let kind: String = r.try_get("uploader_kind")?;
    let dim = |v: Option<i64>| v.map(|n| n.clamp(0, u32::MAX as i64) as u32);
    Ok(AttachmentRecord {
        id: r.try_get("id")?,
        site_key: r.try_get("site_key")?,
        conversation_id: r.try_get("conversation_id")?,
        uploader_kind: match kind.as_str() {
            "visitor" => AuthorKind::Visitor,
            "agent" => AuthorKind::Agent,
            other => return Err(StoreError::Corrupt(format!("uploader kind `{other}`"))),
        },
        uploader_id: r.try_get("uploader_id")?,
        name: r.try_get("name")?,
        content_type: r.try_get("content_type")?,
        size: r.try_get::<i64, _>("size")?.max(0) as u64,
        width: dim(r.try_get("width")?),
        height: dim(r.try_get("height")?),
        thumbnail: r.try_get::<i64, _>("thumbnail")? != 0,
        seq: r.try_get::<Option<i64>, _>("seq")?.map(|s| s as u64),
        created_at: r.try_get("created_at")?,
    })
}

impl Store {
    /// The signer of attachment links.
    pub fn links(&self) -> &LinkSigner {
        &self.links
    }

    /// Records an uploaded file (not yet sent).
    pub async fn insert_attachment(&self, a: &AttachmentRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO attachments (id, site_key, conversation_id, uploader_kind, uploader_id,
                 name, content_type, size, width, height, thumbnail, seq, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, $12)",
        )
        .bind(&a.id)
        .bind(&a.site_key)
        .bind(&a.conversation_id)
        .bind(messages::author_str(a.uploader_kind))
        .bind(&a.uploader_id)
        .bind(&a.name)
        .bind(&a.content_type)
        .bind(a.size as i64)
        .bind(a.width.map(i64::from))
        .bind(a.height.map(i64::from))
        .bind(a.thumbnail as i64)
        .bind(a.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One attachment's record.
    pub async fn attachment(&self, id: &str) -> Result<Option<AttachmentRecord>> {
        let row = sqlx::query("SELECT * FROM attachments WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(record_from_row).transpose()
    }

    /// The wire form of an attachment record, with fresh links.
    pub fn attachment_wire(&self, a: &AttachmentRecord) -> Attachment {
        self.links.wire(&AttachmentMeta::from(a), now_ms())
    }

    /// Deletes uploads never sent that were made before `before_ms`; their ids (to delete the
    /// files).
    pub async fn delete_unsent_attachments(&self, before_ms: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "DELETE FROM attachments WHERE seq IS NULL AND created_at < $1 RETURNING id",
        )
        .bind(before_ms)
        .fetch_all(&self.pool)
        .await?)
    }

    /// A site's attachment limits.
    pub async fn attachment_limits(&self, site_key: &str) -> Result<AttachmentLimits> {
        let row = sqlx::query(
            "SELECT attachment_max_bytes, attachment_kinds FROM sites WHERE site_key = $1",
        )
        .bind(site_key)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("site `{site_key}`")))?;
        Ok(AttachmentLimits {
            max_bytes: row
                .try_get::<Option<i64>, _>("attachment_max_bytes")?
                .map(|n| n.max(0) as u64),
            kinds: row.try_get("attachment_kinds")?,
        })
    }

    /// Sets a site's attachment limits (`None` fields: back to the defaults).
    pub async fn set_attachment_limits(
        &self,
        site_key: &str,
        limits: &AttachmentLimits,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE sites SET attachment_max_bytes = $2, attachment_kinds = $3 WHERE site_key = $1",
        )
        .bind(site_key)
        .bind(limits.max_bytes.map(|n| n.min(i64::MAX as u64) as i64))
        .bind(limits.kinds.clone())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("site `{site_key}`")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_check_their_signature_part_and_expiry() {
        let s = LinkSigner::new(b"0123456789abcdef0123456789abcdef");
        let now = 1_800_000_000_000;
        let link = s.link("att_1", LinkPart::File, now);
        let query = link.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let mut exp = 0;
        let mut sig = "";
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("exp", v)) => exp = v.parse().unwrap_or(0),
                Some(("sig", v)) => sig = v,
                _ => {}
            }
        }
        assert!(exp * 1000 >= now + LINK_TTL_MS, "valid for a day at least");
        assert!(exp * 1000 <= now + LINK_TTL_MS + LINK_STEP_MS);
        assert_eq!(
            s.check("att_1", LinkPart::File, exp, sig, now),
            LinkCheck::Valid
        );
        assert_eq!(
            s.check("att_1", LinkPart::File, exp, sig, exp * 1000 + 1),
            LinkCheck::Expired
        );
        assert_eq!(
            s.check("att_2", LinkPart::File, exp, sig, now),
            LinkCheck::Invalid,
            "another file"
        );
        assert_eq!(
            s.check("att_1", LinkPart::Thumbnail, exp, sig, now),
            LinkCheck::Invalid,
            "another part"
        );
        assert_eq!(
            s.check("att_1", LinkPart::File, exp + 3600, sig, now),
            LinkCheck::Invalid,
            "a later expiry"
        );
        assert_eq!(
            s.check("att_1", LinkPart::File, exp, "zz", now),
            LinkCheck::Invalid
        );
        assert_eq!(
            s.check("att_1", LinkPart::File, exp, &sig[..8], now),
            LinkCheck::Invalid,
            "a shortened signature"
        );
        let other = LinkSigner::new(b"another key, another server.....");
        assert_eq!(
            other.check("att_1", LinkPart::File, exp, sig, now),
            LinkCheck::Invalid
        );
    }
}
