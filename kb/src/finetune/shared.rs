//! Fine-tuned retrieval encoders shared by a cluster. On PostgreSQL each encoder's files (as
//! `kefu kb encoder train` saved them in `<data_dir>/encoders/<id>/`) are also kept in the
//! database (`retrieval_encoders`, `retrieval_encoder_files`); a node that needs an encoder it
//! lacks — a knowledge base switched to it from another node — copies it into its own encoders
//! directory before loading it. On SQLite the local directory is the only copy and both calls do
//! nothing.

use std::path::Path;

use crate::error::Result;
use crate::file_sets::FileSets;
use crate::finetune::delta::EncoderDelta;
use crate::store::KbStore;

/// Encoders' files in the database.
const ENCODERS: FileSets = FileSets {
    sets: "retrieval_encoders",
    files: "retrieval_encoder_files",
    key: "id",
};

/// Publishes encoder `id` from `encoders/<id>/`. Publishing the same files again is a no-op; other
/// files under the same id are refused with `Conflict` (ids are random, so that means a bug).
pub async fn publish(store: &KbStore, encoders: &Path, id: &str) -> Result<()> {
    if !store.is_shared() {
        return Ok(());
    }
    let files = crate::files::read_files(&encoders.join(id))?;
    ENCODERS
        .publish(store, id, &files, || {
            format!("another encoder was published as {id}")
        })
        .await
}

/// Copies encoder `id` from the database into `encoders/<id>/` when it is not there yet. Returns
/// whether it is present afterwards (false: no such encoder anywhere, or the store is not shared
/// and it is not local).
pub async fn fetch(store: &KbStore, encoders: &Path, id: &str) -> Result<bool> {
    let valid_id = !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric());
    if !valid_id {
        return Ok(false);
    }
    let present = || EncoderDelta::exists(&encoders.join(id));
    if present() || !store.is_shared() {
        return Ok(present());
    }
    let files = ENCODERS.files(store, id).await?;
    if files.is_empty() {
        return Ok(false);
    }
    crate::files::install(encoders, id, &files, present)?;
    Ok(present())
}

/// Copies every shared encoder this node lacks into `encoders/`; returns how many it copied.
pub async fn fetch_all(store: &KbStore, encoders: &Path) -> Result<usize> {
    if !store.is_shared() {
        return Ok(0);
    }
    let mut copied = 0;
    for id in ENCODERS.keys(store).await? {
        if !EncoderDelta::exists(&encoders.join(&id)) && fetch(store, encoders, &id).await? {
            copied += 1;
        }
    }
    Ok(copied)
}
