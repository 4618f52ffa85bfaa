//! Attachments: files visitors and agents send in a conversation. An upload is checked against
//! its site's limits (size; kinds found by sniffing the bytes), an image is decoded within bounds
//! and gets a JPEG thumbnail, the bytes go to the attachment directory (or an S3-compatible
//! bucket) and the record to the store; a message then carries uploads (bound in its transaction, `Store::append`). Files are
//! served by expiring signed links only (handed out with every read of the message); erasure and
//! retention delete them with their conversation; uploads never sent are deleted after a day.

mod files;
mod sniff;
pub mod thumbnail;

use std::time::Duration;

use kefu_protocol::{Attachment, AuthorKind};

pub use files::{AttachmentFiles, BucketSettings};
pub use sniff::{kinds_text, parse_kinds, sniff, Kind};

use crate::store::{
    new_id, now_ms, AttachmentLimits, AttachmentRecord, LinkCheck, LinkPart, Store, StoreError,
};

/// Largest file a site accepts unless it sets its own limit.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// The most a site may set (the upload endpoint's body limit).
pub const MAX_BYTES_CEILING: u64 = 50 * 1024 * 1024;
/// Uploads not sent in a message within this time are deleted.
const UNSENT_KEPT: Duration = Duration::from_secs(24 * 3600);
/// How often each node deletes unsent uploads.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// Longest file name kept, in characters.
const MAX_NAME_CHARS: usize = 200;

/// Why an attachment request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    #[error("this site does not accept attachments")]
    Disabled,
    #[error("the file is empty")]
    Empty,
    #[error("the file exceeds this site's limit of {0} bytes")]
    TooLarge(u64),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
    #[error("attachment not found")]
    NotFound,
    #[error("the link has expired; read the message again for a fresh link")]
    Expired,
    #[error("the link is not valid")]
    BadLink,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("attachment storage failed: {0}")]
    Io(#[from] std::io::Error),
}

type Result<T> = std::result::Result<T, AttachmentError>;

/// A site's limits in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteLimits {
    pub max_bytes: u64,
    /// Kinds allowed; empty: attachments off.
    pub kinds: Vec<Kind>,
}

impl SiteLimits {
    fn of(stored: &AttachmentLimits) -> SiteLimits {
        SiteLimits {
            max_bytes: stored.max_bytes.unwrap_or(DEFAULT_MAX_BYTES),
            kinds: match &stored.kinds {
                Some(text) => parse_kinds(text).unwrap_or_default(),
                None => Kind::ALL.to_vec(),
            },
        }
    }
}

/// One upload.
pub struct Upload<'a> {
    pub site_key: &'a str,
    pub conversation_id: &'a str,
    pub uploader_kind: AuthorKind,
    pub uploader_id: &'a str,
    pub name: &'a str,
    pub bytes: Vec<u8>,
}

/// A file to serve.
#[derive(Debug, Clone)]
pub struct Served {
    pub bytes: Vec<u8>,
    pub content_type: String,
    pub name: String,
    /// Shown in the page (images) rather than downloaded.
    pub inline: bool,
}

/// The attachment service (cheap to clone).
#[derive(Clone)]
pub struct Attachments {
    store: Store,
    files: AttachmentFiles,
}

impl Attachments {
    pub fn new(store: Store, files: AttachmentFiles) -> Self {
        Self { store, files }
    }

    pub fn files(&self) -> &AttachmentFiles {
        &self.files
    }

    /// A site's limits in force.
    pub async fn limits(&self, site_key: &str) -> Result<SiteLimits> {
        Ok(SiteLimits::of(
            &self.store.attachment_limits(site_key).await?,
        ))
    }

    /// Sets a site's limits: `max_bytes` 1 byte to `MAX_BYTES_CEILING`, `kinds` (empty: off);
    /// `None` leaves that limit as it is. The limits now in force.
    pub async fn set_limits(
        &self,
        site_key: &str,
        max_bytes: Option<u64>,
        kinds: Option<&[Kind]>,
    ) -> Result<SiteLimits> {
        if let Some(n) = max_bytes {
            if n == 0 || n > MAX_BYTES_CEILING {
                return Err(AttachmentError::Invalid(format!(
                    "the largest attachment is 1 to {MAX_BYTES_CEILING} bytes"
                )));
            }
        }
        let mut stored = self.store.attachment_limits(site_key).await?;
        if max_bytes.is_some() {
            stored.max_bytes = max_bytes;
        }
        if let Some(k) = kinds {
            stored.kinds = Some(kinds_text(k));
        }
        self.store.set_attachment_limits(site_key, &stored).await?;
        Ok(SiteLimits::of(&stored))
    }

    /// Checks an upload against its site's `limits` (as `limits` read them) and keeps it; its
    /// wire form (with links), ready to be sent in a message.
    pub async fn upload(&self, up: Upload<'_>, limits: &SiteLimits) -> Result<Attachment> {
        if limits.kinds.is_empty() {
            return Err(AttachmentError::Disabled);
        }
        if up.bytes.is_empty() {
            return Err(AttachmentError::Empty);
        }
        if up.bytes.len() as u64 > limits.max_bytes {
            return Err(AttachmentError::TooLarge(limits.max_bytes));
        }
        let Some((kind, content_type)) = sniff(&up.bytes) else {
            return Err(AttachmentError::Unsupported(format!(
                "this kind of file is not accepted (accepted: {})",
                kinds_text(&limits.kinds)
            )));
        };
        if !limits.kinds.contains(&kind) {
            return Err(AttachmentError::Unsupported(format!(
                "{kind} files are not accepted on this site (accepted: {})",
                kinds_text(&limits.kinds)
            )));
        }
        let id = new_id("att_");
        let size = up.bytes.len() as u64;
        let (bytes, image) = match kind {
            Kind::Image => {
                // Decoding is CPU work: off the async threads, handing the bytes back after.
                let (bytes, made) = tokio::task::spawn_blocking(move || {
                    let made = thumbnail::make(&up.bytes);
                    (up.bytes, made)
                })
                .await
                .map_err(|e| AttachmentError::Io(std::io::Error::other(e.to_string())))?;
                let thumb = made.map_err(|e| {
                    AttachmentError::Unsupported(format!("the image cannot be read: {e}"))
                })?;
                self.files.put(&id, LinkPart::Thumbnail, thumb.jpeg).await?;
                (bytes, Some((thumb.width, thumb.height)))
            }
            _ => (up.bytes, None),
        };
        if let Err(e) = self.files.put(&id, LinkPart::File, bytes).await {
            self.files.delete(std::slice::from_ref(&id)).await;
            return Err(e.into());
        }
        let record = AttachmentRecord {
            id,
            site_key: up.site_key.to_string(),
            conversation_id: up.conversation_id.to_string(),
            uploader_kind: up.uploader_kind,
            uploader_id: up.uploader_id.to_string(),
            name: clean_name(up.name),
            content_type: content_type.to_string(),
            size,
            width: image.map(|i| i.0),
            height: image.map(|i| i.1),
            thumbnail: image.is_some(),
            seq: None,
            created_at: now_ms(),
        };
        if let Err(e) = self.store.insert_attachment(&record).await {
            self.files.delete(std::slice::from_ref(&record.id)).await;
            return Err(e.into());
        }
        metrics::counter!("kefu_attachments_total", "kind" => kind.label()).increment(1);
        Ok(self.store.attachment_wire(&record))
    }

    /// The file a signed link names, if the link is valid and unexpired.
    pub async fn open(&self, id: &str, part: LinkPart, exp: i64, sig: &str) -> Result<Served> {
        match self.store.links().check(id, part, exp, sig, now_ms()) {
            LinkCheck::Valid => {}
            LinkCheck::Expired => return Err(AttachmentError::Expired),
            LinkCheck::Invalid => return Err(AttachmentError::BadLink),
        }
        let record = self
            .store
            .attachment(id)
            .await?
            .ok_or(AttachmentError::NotFound)?;
        if part == LinkPart::Thumbnail && !record.thumbnail {
            return Err(AttachmentError::NotFound);
        }
        let bytes = self
            .files
            .get(id, part)
            .await?
            .ok_or(AttachmentError::NotFound)?;
        Ok(match part {
            LinkPart::File => Served {
                bytes,
                inline: record.content_type.starts_with("image/"),
                content_type: record.content_type,
                name: record.name,
            },
            LinkPart::Thumbnail => Served {
                bytes,
                content_type: "image/jpeg".into(),
                name: format!("{}.jpg", record.name),
                inline: true,
            },
        })
    }

    /// Deletes uploads never sent after `UNSENT_KEPT`; how many.
    pub async fn delete_unsent(&self) -> Result<usize> {
        let cutoff = now_ms() - UNSENT_KEPT.as_millis() as i64;
        let ids = self.store.delete_unsent_attachments(cutoff).await?;
        self.files.delete(&ids).await;
        Ok(ids.len())
    }

    /// Deletes unsent uploads every `SWEEP_EVERY` until the process ends.
    pub fn start_sweeper(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SWEEP_EVERY).await;
                match this.delete_unsent().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(uploads = n, "deleted attachments never sent"),
                    Err(e) => tracing::warn!(error = %e, "deleting unsent attachments failed"),
                }
            }
        });
    }
}

/// The name a sender gave, as kept and shown: its last path segment, without control characters,
/// at most `MAX_NAME_CHARS` characters, never empty, `.` or `..`.
pub fn clean_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let kept: String = base
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    match kept.trim() {
        "" | "." | ".." => "file".to_string(),
        name => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_folders_and_controls() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\Users\\me\\发票.pdf"), "发票.pdf");
        assert_eq!(clean_name("a\u{0}b\nc.png"), "abc.png");
        assert_eq!(clean_name(".."), "file");
        assert_eq!(clean_name(""), "file");
        assert_eq!(
            clean_name(&"长".repeat(300)).chars().count(),
            MAX_NAME_CHARS
        );
    }
}
