//! Where attachment files live, behind one interface: a directory (`<dir>/<id>` and
//! `<dir>/<id>.thumb`, each written aside and renamed into place, so a reader never sees half a
//! file), or an S3-compatible bucket (`object_store`: SigV4, retries) that every node shares.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};

use crate::store::LinkPart;

/// An S3-compatible bucket's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSettings {
    /// `https://s3.eu-west-1.amazonaws.com`, `http://minio:9000`, …
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Key prefix of Kefu's objects (`attachments`).
    pub prefix: String,
}

/// Where attachment files are kept (cheap to clone).
#[derive(Debug, Clone)]
pub enum AttachmentFiles {
    Dir(PathBuf),
    Bucket {
        store: Arc<dyn ObjectStore>,
        prefix: String,
    },
}

/// The file name (in a directory) or key suffix (in a bucket) of `part` of attachment `id`; ids
/// are made by the server (`att_` + hex), anything else is refused.
fn object_name(id: &str, part: LinkPart) -> Option<String> {
    let safe = id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !safe || id.is_empty() {
        return None;
    }
    Some(match part {
        LinkPart::File => id.to_string(),
        LinkPart::Thumbnail => format!("{id}.thumb"),
    })
}

fn bad_id(id: &str) -> std::io::Error {
    std::io::Error::other(format!("bad attachment id `{id}`"))
}

impl AttachmentFiles {
    /// Files in a directory (made when the first file is written).
    pub fn new(dir: PathBuf) -> Self {
        AttachmentFiles::Dir(dir)
    }

    /// Files in an S3-compatible bucket (path-style requests, so any endpoint works).
    pub fn bucket(s: &BucketSettings) -> Result<Self, String> {
        let store = AmazonS3Builder::new()
            .with_endpoint(s.endpoint.trim_end_matches('/'))
            .with_bucket_name(&s.bucket)
            .with_region(&s.region)
            .with_access_key_id(&s.access_key_id)
            .with_secret_access_key(&s.secret_access_key)
            .with_allow_http(s.endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false)
            .build()
            .map_err(|e| format!("the attachment bucket: {e}"))?;
        Ok(AttachmentFiles::Bucket {
            store: Arc::new(store),
            prefix: s.prefix.trim_matches('/').to_string(),
        })
    }

    /// Where files go, for logs.
    pub fn describe(&self) -> String {
        match self {
            AttachmentFiles::Dir(dir) => dir.display().to_string(),
            AttachmentFiles::Bucket { store, prefix } => format!("{store} /{prefix}"),
        }
    }

    fn key(prefix: &str, name: &str) -> ObjectPath {
        if prefix.is_empty() {
            ObjectPath::from(name)
        } else {
            ObjectPath::from(format!("{prefix}/{name}"))
        }
    }

    /// Keeps `part` of attachment `id`.
    pub async fn put(&self, id: &str, part: LinkPart, bytes: Vec<u8>) -> std::io::Result<()> {
        let name = object_name(id, part).ok_or_else(|| bad_id(id))?;
        match self {
            AttachmentFiles::Dir(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || write_aside(&dir, &name, &bytes))
                    .await
                    .map_err(std::io::Error::other)?
            }
            AttachmentFiles::Bucket { store, prefix } => store
                .put(&Self::key(prefix, &name), PutPayload::from(bytes))
                .await
                .map(|_| ())
                .map_err(std::io::Error::other),
        }
    }

    /// `part` of attachment `id`, or `None` when there is no such file.
    pub async fn get(&self, id: &str, part: LinkPart) -> std::io::Result<Option<Vec<u8>>> {
        let Some(name) = object_name(id, part) else {
            return Ok(None);
        };
        match self {
            AttachmentFiles::Dir(dir) => match tokio::fs::read(dir.join(name)).await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
            AttachmentFiles::Bucket { store, prefix } => {
                match store.get(&Self::key(prefix, &name)).await {
                    Ok(found) => Ok(Some(
                        found.bytes().await.map_err(std::io::Error::other)?.to_vec(),
                    )),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(std::io::Error::other(e)),
                }
            }
        }
    }

    /// Deletes the files of `ids` (missing ones are fine); how many were removed (in a bucket:
    /// how many deletions it accepted).
    pub async fn delete(&self, ids: &[String]) -> usize {
        let mut removed = 0;
        for id in ids {
            for part in [LinkPart::File, LinkPart::Thumbnail] {
                let Some(name) = object_name(id, part) else {
                    continue;
                };
                let done = match self {
                    AttachmentFiles::Dir(dir) => {
                        match tokio::fs::remove_file(dir.join(&name)).await {
                            Ok(()) => Ok(true),
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                    AttachmentFiles::Bucket { store, prefix } => {
                        match store.delete(&Self::key(prefix, &name)).await {
                            Ok(()) => Ok(true),
                            Err(object_store::Error::NotFound { .. }) => Ok(false),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                };
                match done {
                    Ok(true) => removed += 1,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(file = %name, error = %e, "cannot delete an attachment file")
                    }
                }
            }
        }
        removed
    }
}

/// Writes `bytes` as `dir/name`: aside first, synced, then renamed into place.
fn write_aside(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(dir.join(name)).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_directory_keeps_gets_and_deletes_files_by_id_only() {
        let tmp = tempfile::tempdir().expect("tmp");
        let files = AttachmentFiles::new(tmp.path().join("attachments"));
        files
            .put("att_1", LinkPart::File, b"bytes".to_vec())
            .await
            .expect("put");
        files
            .put("att_1", LinkPart::Thumbnail, b"small".to_vec())
            .await
            .expect("put");
        assert_eq!(
            files.get("att_1", LinkPart::File).await.expect("get"),
            Some(b"bytes".to_vec())
        );
        assert!(files.put("../x", LinkPart::File, vec![1]).await.is_err());
        assert_eq!(
            files
                .get("../../etc/passwd", LinkPart::File)
                .await
                .expect("get"),
            None
        );
        assert_eq!(files.delete(&["att_1".into(), "att_2".into()]).await, 2);
        assert_eq!(
            files.get("att_1", LinkPart::Thumbnail).await.expect("get"),
            None
        );
    }
}
