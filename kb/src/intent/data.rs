//! Labelled utterances for intent training: JSONL (`{"text": …, "intent": …}` per line) or CSV with
//! `text` and `intent` columns. Bad records are reported with their location and skipped.

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{KbError, RecordError, Result};

/// The intent label that marks an out-of-scope example.
pub const OOS: &str = "oos";
/// Longest accepted utterance, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;
/// Longest accepted intent name.
pub const MAX_INTENT_CHARS: usize = 100;

/// One labelled utterance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub text: String,
    pub intent: String,
}

impl Example {
    pub fn is_oos(&self) -> bool {
        self.intent == OOS
    }
}

/// A record that was skipped, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    pub file: String,
    /// 1-based line (JSONL) or record line (CSV).
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for BadRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// The examples of one file and the records that were skipped.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub examples: Vec<Example>,
    pub skipped: Vec<BadRecord>,
}

impl Dataset {
    /// sha256 over every (intent, text) pair in order: identifies the training data in artifacts.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        for e in &self.examples {
            h.update(e.intent.as_bytes());
            h.update([0x1f]);
            h.update(e.text.as_bytes());
            h.update([0x1e]);
        }
        hex::encode(h.finalize())
    }

    /// In-scope intent names, sorted.
    pub fn intents(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .examples
            .iter()
            .filter(|e| !e.is_oos())
            .map(|e| e.intent.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

#[derive(Deserialize)]
struct JsonRecord {
    text: serde_json::Value,
    intent: serde_json::Value,
}

/// Reads a labelled file; the format follows the extension (`.jsonl`/`.json` or `.csv`).
pub fn load(path: &Path) -> Result<Dataset> {
    let raw = std::fs::read(path).map_err(|source| KbError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file = path.display().to_string();
    let text = String::from_utf8(raw).map_err(|e| KbError::Parse {
        file: file.clone(),
        line: 1,
        message: format!("not UTF-8 text: {e}"),
    })?;
    let ext = crate::ingest::extension(path);
    match ext.as_str() {
        "jsonl" | "json" | "ndjson" => Ok(parse_jsonl(&text, &file)),
        "csv" => parse_csv(&text, &file),
        _ => Err(KbError::InvalidInput(format!(
            "{file}: labelled data must be .jsonl or .csv"
        ))),
    }
}

/// Checks and normalises one record.
fn check(text: &str, intent: &str) -> std::result::Result<Example, RecordError> {
    let text = text.trim();
    let intent = intent.trim().to_lowercase();
    if text.is_empty() {
        return Err(RecordError::Empty("text"));
    }
    if intent.is_empty() {
        return Err(RecordError::Empty("intent"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(RecordError::TooLong {
            field: "text",
            max: MAX_TEXT_CHARS,
        });
    }
    if intent.chars().count() > MAX_INTENT_CHARS
        || intent.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(RecordError::BadIntent {
            max: MAX_INTENT_CHARS,
        });
    }
    Ok(Example {
        text: text.to_string(),
        intent,
    })
}

/// Runs `parse` (given the 1-based line number and the line) on each non-blank line of JSONL
/// text; each failure becomes a `BadRecord` at that line.
pub fn jsonl_records<T>(
    text: &str,
    file: &str,
    mut parse: impl FnMut(usize, &str) -> std::result::Result<T, RecordError>,
) -> (Vec<T>, Vec<BadRecord>) {
    let (mut records, mut skipped) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse(i + 1, line) {
            Ok(r) => records.push(r),
            Err(e) => skipped.push(BadRecord {
                file: file.to_string(),
                line: i + 1,
                message: e.to_string(),
            }),
        }
    }
    (records, skipped)
}

/// Parses JSONL text (blank lines are ignored).
pub fn parse_jsonl(text: &str, file: &str) -> Dataset {
    let (examples, skipped) = jsonl_records(text, file, |_, line| {
        let rec: JsonRecord = serde_json::from_str(line).map_err(|e| RecordError::Malformed {
            expected: "{text, intent} object",
            detail: e.to_string(),
        })?;
        let (Some(t), Some(intent)) = (rec.text.as_str(), rec.intent.as_str()) else {
            return Err(RecordError::NotStrings);
        };
        check(t, intent)
    });
    Dataset { examples, skipped }
}

/// Parses CSV text with a header naming `text` and `intent` columns.
pub fn parse_csv(text: &str, file: &str) -> Result<Dataset> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| KbError::Parse {
            file: file.to_string(),
            line: 1,
            message: e.to_string(),
        })?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let (Some(ti), Some(ii)) = (col("text"), col("intent")) else {
        return Err(KbError::Parse {
            file: file.to_string(),
            line: 1,
            message: "the header must name `text` and `intent` columns".into(),
        });
    };
    let mut out = Dataset::default();
    for rec in reader.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                out.skipped.push(BadRecord {
                    file: file.to_string(),
                    line,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let line = rec.position().map(|p| p.line() as usize).unwrap_or(0);
        match check(rec.get(ti).unwrap_or(""), rec.get(ii).unwrap_or("")) {
            Ok(e) => out.examples.push(e),
            Err(e) => out.skipped.push(BadRecord {
                file: file.to_string(),
                line,
                message: e.to_string(),
            }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_reports_bad_lines_and_keeps_good_ones() {
        let text = "{\"text\": \"我的快递到哪了\", \"intent\": \"Track_Order\"}\n\
                    \n\
                    not json\n\
                    {\"text\": \"\", \"intent\": \"x\"}\n\
                    {\"text\": \"what's the weather\", \"intent\": \"oos\"}\n\
                    {\"text\": 3, \"intent\": \"x\"}\n";
        let d = parse_jsonl(text, "t.jsonl");
        assert_eq!(d.examples.len(), 2);
        assert_eq!(d.examples[0].intent, "track_order");
        assert!(d.examples[1].is_oos());
        let lines: Vec<usize> = d.skipped.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![3, 4, 6]);
        assert_eq!(d.intents(), vec!["track_order"]);
    }

    #[test]
    fn csv_needs_text_and_intent_columns() {
        let d =
            parse_csv("intent,text\nrefund,\"我要退款, 谢谢\"\nrefund,\n", "t.csv").expect("csv");
        assert_eq!(d.examples.len(), 1);
        assert_eq!(d.examples[0].text, "我要退款, 谢谢");
        assert_eq!(d.skipped.len(), 1);
        assert_eq!(d.skipped[0].line, 3);
        assert!(parse_csv("question,label\na,b\n", "t.csv").is_err());
    }

    #[test]
    fn hash_depends_on_content() {
        let a = parse_jsonl("{\"text\":\"a\",\"intent\":\"x\"}", "f");
        let b = parse_jsonl("{\"text\":\"a\",\"intent\":\"y\"}", "f");
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash(), a.clone().hash());
    }
}
