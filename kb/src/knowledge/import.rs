//! The import pipeline: parse every file, embed only what changed, write rows and vectors in one
//! transaction, then bring the synced index up to date.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use std::sync::Arc;

use super::{embed_with, Knowledge, IMPORT_BATCH};
use crate::embed::{Embedder, TextRole};
use crate::error::{KbError, Result};
use crate::ingest::{self, FileKind, Record};
use crate::store::EmbeddedRecord;

/// A file's content to import.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Name recorded as the entries' source (e.g. the file name).
    pub name: String,
    pub kind: FileKind,
    pub text: String,
}

impl SourceFile {
    /// Reads a file from disk; it is recorded under its file name.
    pub fn read(path: &Path) -> Result<Self> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("input")
            .to_string();
        let bytes = std::fs::read(path).map_err(|source| KbError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&name, FileKind::of(path)?, &bytes)
    }

    /// A file's content as `name`: text formats must be UTF-8; PDF and DOCX become document text
    /// (Markdown with their heading paths).
    pub fn from_bytes(name: &str, kind: FileKind, bytes: &[u8]) -> Result<Self> {
        if let Some(text) = ingest::binary_to_markdown(kind, bytes, name)? {
            return Ok(Self {
                name: name.to_string(),
                kind: FileKind::Markdown,
                text,
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| KbError::Parse {
            file: name.to_string(),
            line: bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1,
            message: "file is not valid UTF-8".into(),
        })?;
        Ok(Self {
            name: name.to_string(),
            kind,
            text: text.trim_start_matches('\u{feff}').to_string(),
        })
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ImportReport {
    pub files: usize,
    pub entries: usize,
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub removed: usize,
    pub vectors_embedded: usize,
}

/// Progress callback: (texts embedded so far, texts to embed).
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

impl Knowledge {
    /// Reads paths (directories recursively) and imports them; nothing is written if any file fails.
    pub async fn import_paths(
        &self,
        kb: &str,
        paths: &[PathBuf],
        progress: Progress<'_>,
    ) -> Result<ImportReport> {
        let files = ingest::expand_paths(paths)?;
        let sources = files
            .iter()
            .map(|p| SourceFile::read(p))
            .collect::<Result<Vec<_>>>()?;
        self.import(kb, sources, progress).await
    }

    /// Imports file contents into `kb` (created if needed). FAQs are upserted by key; a document's
    /// chunks replace that document's previous chunks. Unchanged entries are not re-embedded.
    pub async fn import(
        &self,
        kb: &str,
        sources: Vec<SourceFile>,
        progress: Progress<'_>,
    ) -> Result<ImportReport> {
        let mut records: Vec<Record> = Vec::new();
        let mut doc_files = Vec::new();
        let mut seen = HashSet::new();
        for s in &sources {
            let recs = ingest::parse_text(s.kind, &s.text, &s.name)?;
            if matches!(s.kind, FileKind::Markdown | FileKind::Html | FileKind::Text) {
                doc_files.push(s.name.clone());
            }
            for r in recs {
                if !seen.insert(r.key.clone()) {
                    return Err(KbError::Parse {
                        file: s.name.clone(),
                        line: 0,
                        message: format!(
                            "entry {:?} appears in more than one imported file",
                            r.key
                        ),
                    });
                }
                records.push(r);
            }
        }
        // An existing knowledge base keeps the encoder it was built with (or switched to).
        let info = match self.store.get_kb(kb).await? {
            Some(info) => info,
            None => {
                let running = self.embedder();
                self.store
                    .ensure_kb(kb, running.model_name(), running.dim())
                    .await?
            }
        };
        let encoder = self.encoder_of(&info).await?;
        let stored = self.store.entry_hashes(info.id).await?;
        let mut report = ImportReport {
            files: sources.len(),
            entries: records.len(),
            ..Default::default()
        };
        let keep_keys: Vec<String> = records.iter().map(|r| r.key.clone()).collect();
        let changed: Vec<(Record, String)> = records
            .into_iter()
            .filter_map(|r| {
                let h = content_hash(&r, &info.model);
                if stored.get(&r.key) == Some(&h) {
                    report.unchanged += 1;
                    None
                } else {
                    Some((r, h))
                }
            })
            .collect();

        let records: Vec<&Record> = changed.iter().map(|(r, _)| r).collect();
        let vectors = embed_records(encoder, &records, progress).await?;
        report.vectors_embedded = vectors.iter().map(Vec::len).sum();
        let embedded: Vec<EmbeddedRecord> = changed
            .into_iter()
            .zip(vectors)
            .map(|((record, content_hash), vectors)| EmbeddedRecord {
                record,
                content_hash,
                vectors,
            })
            .collect();
        let outcome = self
            .store
            .write_import(&info, embedded, &doc_files, &keep_keys)
            .await?;
        report.added = outcome.added;
        report.updated = outcome.updated;
        report.removed = outcome.removed;
        self.apply_write(outcome).await?;
        Ok(report)
    }
}

/// Every record's texts (`Record::embed_texts`) with their vectors, queries and passages each in
/// batches of `IMPORT_BATCH`; `progress` counts texts.
pub(super) async fn embed_records(
    encoder: Arc<dyn Embedder>,
    records: &[&Record],
    progress: Progress<'_>,
) -> Result<Vec<Vec<(String, Vec<f32>)>>> {
    let texts: Vec<(usize, String, TextRole)> = records
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            r.embed_texts()
                .into_iter()
                .map(move |(t, role)| (i, t, role))
        })
        .collect();
    let total = texts.len();
    progress(0, total);
    let mut done = 0;
    let mut vectors: Vec<Vec<(String, Vec<f32>)>> = vec![Vec::new(); records.len()];
    for role in [TextRole::Query, TextRole::Passage] {
        let batch: Vec<&(usize, String, TextRole)> = texts.iter().filter(|t| t.2 == role).collect();
        for group in batch.chunks(IMPORT_BATCH) {
            let embedded = embed_with(
                Arc::clone(&encoder),
                group.iter().map(|t| t.1.clone()).collect(),
                role,
            )
            .await?;
            for (t, v) in group.iter().zip(embedded) {
                vectors[t.0].push((t.1.clone(), v));
            }
            done += group.len();
            progress(done, total);
        }
    }
    Ok(vectors)
}

/// Which texts `Record::embed_texts` makes; bumped when that changes (as is the reading of
/// questions, `colloquial::RECIPE`), so that a re-import embeds every entry again instead of
/// keeping vectors of the old kind.
const EMBED_RECIPE: &str = "2: chunks also sentence by sentence";

/// Hash of everything that determines an entry's stored form and vectors.
pub(super) fn content_hash(r: &Record, model: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        EMBED_RECIPE,
        crate::colloquial::RECIPE,
        model,
        r.kind.as_str(),
        &r.question,
        &r.answer,
        &r.source,
        &r.source_file,
    ] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    for list in [&r.alternates, &r.tags] {
        for s in list {
            h.update(s.as_bytes());
            h.update([1u8]);
        }
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}
