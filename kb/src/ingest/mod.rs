//! Turning files into knowledge-base records: FAQ files (CSV/JSON/YAML) and documents
//! (Markdown/HTML/plain text, PDF, DOCX) chunked with overlap, headings kept as context.

pub mod chunk;
pub mod document;
pub mod docx;
pub mod faq;
pub mod pdf;

use std::path::{Path, PathBuf};

use crate::embed::TextRole;
use crate::error::{KbError, Result};

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A question-answer pair; its question and alternates are embedded as queries.
    Faq,
    /// A piece of a document; embedded as a passage with its heading path.
    Chunk,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Faq => "faq",
            EntryKind::Chunk => "chunk",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "faq" => Some(EntryKind::Faq),
            "chunk" => Some(EntryKind::Chunk),
            _ => None,
        }
    }
}

/// One entry ready to store: every text that points to its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Stable key within a knowledge base: the FAQ `id`, the normalised question, or `file#n` for chunks.
    pub key: String,
    pub kind: EntryKind,
    /// The FAQ question, or a chunk's title (heading path).
    pub question: String,
    /// The FAQ answer, or the chunk's text.
    pub answer: String,
    pub alternates: Vec<String>,
    pub tags: Vec<String>,
    /// Where it came from: `file` for FAQs, `file > heading` for chunks.
    pub source: String,
    /// The file it was read from (used to replace a document's chunks on re-import).
    pub source_file: String,
}

impl Record {
    /// The texts to embed for this entry, each with its role.
    pub fn embed_texts(&self) -> Vec<(String, TextRole)> {
        match self.kind {
            // The question and its alternates as questions, and the answer as a passage (a
            // visitor's question often names what only the answer says: "WeChat Pay").
            EntryKind::Faq => std::iter::once(&self.question)
                .chain(&self.alternates)
                .map(|q| (q.clone(), TextRole::Query))
                .chain(std::iter::once((
                    format!("{}\n{}", self.question, self.answer),
                    TextRole::Passage,
                )))
                .collect(),
            EntryKind::Chunk => vec![(
                format!("{}\n{}", self.question, self.answer),
                TextRole::Passage,
            )],
        }
    }
}

/// A path's extension, lower-cased ("" when none): how Kefu tells file formats apart.
pub fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// The file kinds Kefu reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    FaqCsv,
    FaqJson,
    FaqYaml,
    Markdown,
    Html,
    Text,
    /// Read as bytes and turned into document sections before parsing.
    Pdf,
    Docx,
}

impl FileKind {
    /// By extension.
    pub fn of(path: &Path) -> Result<Self> {
        match extension(path).as_str() {
            "csv" => Ok(FileKind::FaqCsv),
            "json" => Ok(FileKind::FaqJson),
            "yaml" | "yml" => Ok(FileKind::FaqYaml),
            "md" | "markdown" => Ok(FileKind::Markdown),
            "html" | "htm" => Ok(FileKind::Html),
            "txt" | "text" => Ok(FileKind::Text),
            "pdf" => Ok(FileKind::Pdf),
            "docx" => Ok(FileKind::Docx),
            _ => Err(KbError::UnsupportedFile(path.display().to_string())),
        }
    }

    /// True for formats stored as bytes (converted to document text when read).
    pub fn is_binary(self) -> bool {
        matches!(self, FileKind::Pdf | FileKind::Docx)
    }
}

/// A binary document's text as Markdown (its sections, headings kept), or `None` for text formats.
pub fn binary_to_markdown(kind: FileKind, bytes: &[u8], file: &str) -> Result<Option<String>> {
    let sections = match kind {
        FileKind::Pdf => pdf::sections(bytes, file)?,
        FileKind::Docx => docx::sections(bytes, file)?,
        _ => return Ok(None),
    };
    Ok(Some(document::sections_markdown(&sections)))
}

/// Expands directories (recursively, sorted) into the supported files they contain.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut children: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|source| KbError::Io {
                    path: p.clone(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            children.sort();
            let files: Vec<PathBuf> = children
                .into_iter()
                .filter(|c| c.is_dir() || FileKind::of(c).is_ok())
                .collect();
            out.extend(expand_paths(&files)?);
        } else {
            FileKind::of(p)?;
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Parses file content of a known kind.
pub fn parse_text(kind: FileKind, text: &str, display: &str) -> Result<Vec<Record>> {
    match kind {
        FileKind::FaqCsv => faq::parse_csv(text, display),
        FileKind::FaqJson => faq::parse_json(text, display),
        FileKind::FaqYaml => faq::parse_yaml(text, display),
        FileKind::Markdown => Ok(document::records(
            document::markdown_sections(text),
            display,
        )),
        FileKind::Html => Ok(document::records(document::html_sections(text), display)),
        FileKind::Text => Ok(document::records(document::text_sections(text), display)),
        FileKind::Pdf | FileKind::Docx => Err(KbError::InvalidInput(format!(
            "{display}: PDF and DOCX files are read with SourceFile::from_bytes"
        ))),
    }
}
