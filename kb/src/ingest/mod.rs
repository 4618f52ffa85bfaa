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
use crate::lang::Lang;

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
            // The whole chunk, and (when it has several) each sentence under its section's
            // heading, in the sentence's language where the heading is bilingual: a question
            // matches the one sentence that answers it far better than a paragraph that also
            // says other things.
            EntryKind::Chunk => {
                let section = self.question.rsplit(" > ").next().unwrap_or(&self.question);
                let sentences = chunk::sentences(&self.answer);
                let each = if sentences.len() > 1 {
                    sentences
                } else {
                    vec![]
                };
                std::iter::once(format!("{}\n{}", self.question, self.answer))
                    .chain(each.into_iter().map(|s| {
                        let heading = heading_in(section, Lang::detect(&s));
                        format!("{heading}\n{s}")
                    }))
                    .map(|t| (t, TextRole::Passage))
                    .collect()
            }
        }
    }
}

/// The sentence a passage's vector stands for: one of the per-sentence vectors of
/// `Record::embed_texts` (heading, newline, one sentence), or a chunk of one sentence; `None`
/// for the whole-chunk vector of several sentences.
pub fn matched_sentence(vector_text: &str) -> Option<String> {
    let (_, body) = vector_text.split_once('\n')?;
    match chunk::sentences(body).as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// The part of a bilingual heading ("Loyalty points / 积分规则") in `lang`, else the heading.
pub fn heading_in(heading: &str, lang: Lang) -> &str {
    let parts: Vec<&str> = heading.split(" / ").map(str::trim).collect();
    if parts.len() < 2 {
        return heading;
    }
    parts
        .iter()
        .find(|p| Lang::detect(p) == lang)
        .copied()
        .unwrap_or(heading)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_embedded_whole_and_sentence_by_sentence_under_its_heading() {
        let r = Record {
            key: "doc:policy.md#4".into(),
            kind: EntryKind::Chunk,
            question: "Shop policies / 店铺政策 > Loyalty points / 积分规则".into(),
            answer: "Points expire at the end of the following year.\n积分有效期至次年年底。"
                .into(),
            alternates: vec![],
            tags: vec![],
            source: "policy.md > Loyalty points".into(),
            source_file: "policy.md".into(),
        };
        let texts: Vec<String> = r.embed_texts().into_iter().map(|(t, _)| t).collect();
        assert_eq!(
            texts,
            vec![
                format!("{}\n{}", r.question, r.answer),
                "Loyalty points\nPoints expire at the end of the following year.".to_string(),
                "积分规则\n积分有效期至次年年底。".to_string(),
            ]
        );
        assert!(r
            .embed_texts()
            .iter()
            .all(|(_, role)| *role == TextRole::Passage));
        // The vector's text names its sentence; the whole chunk's names none…
        assert_eq!(
            matched_sentence(&texts[2]).as_deref(),
            Some("积分有效期至次年年底。")
        );
        assert_eq!(matched_sentence(&texts[0]), None);
        // …and a chunk of one sentence is embedded once.
        let one = Record {
            answer: "Points expire at the end of the following year.".into(),
            ..r
        };
        assert_eq!(one.embed_texts().len(), 1);
    }
}
