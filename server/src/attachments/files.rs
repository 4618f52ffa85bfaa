//! Attachment files on disk: `<dir>/<id>` and `<dir>/<id>.thumb`, each written aside and renamed
//! into place, so a reader never sees half a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::store::LinkPart;

/// The directory of attachment files (cheap to clone).
#[derive(Debug, Clone)]
pub struct AttachmentFiles {
    dir: PathBuf,
}

impl AttachmentFiles {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where `part` of attachment `id` is (ids are made by the server: `att_` + hex).
    pub fn path(&self, id: &str, part: LinkPart) -> Option<PathBuf> {
        let safe = id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !safe || id.is_empty() {
            return None;
        }
        Some(match part {
            LinkPart::File => self.dir.join(id),
            LinkPart::Thumbnail => self.dir.join(format!("{id}.thumb")),
        })
    }

    /// Writes `part` of `id` (blocking: call from a blocking task).
    pub fn write(&self, id: &str, part: LinkPart, bytes: &[u8]) -> std::io::Result<()> {
        let path = self
            .path(id, part)
            .ok_or_else(|| std::io::Error::other(format!("bad attachment id `{id}`")))?;
        std::fs::create_dir_all(&self.dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }

    /// Deletes the files of `ids` (missing ones are fine); how many files were removed.
    pub async fn delete(&self, ids: &[String]) -> usize {
        let mut removed = 0;
        for id in ids {
            for part in [LinkPart::File, LinkPart::Thumbnail] {
                let Some(path) = self.path(id, part) else {
                    continue;
                };
                match tokio::fs::remove_file(&path).await {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "cannot delete an attachment file")
                    }
                }
            }
        }
        removed
    }
}
