//! FAQ files: CSV (RFC 4180, header row: `id`, `question`, `answer`, `alternates`, `tags`; lists
//! `|`-separated), and the same fields as JSON or YAML (a list of objects, or `{entries: [...]}`).

use std::collections::HashMap;

use serde::Deserialize;

use super::{EntryKind, Record};
use crate::error::{KbError, RecordError, Result};

/// Longest accepted question/answer, in characters.
pub const MAX_FIELD_CHARS: usize = 8000;

/// Key used when an FAQ has no explicit id: the question, lower-cased with whitespace collapsed.
pub fn question_key(question: &str) -> String {
    let norm: Vec<String> = question.split_whitespace().map(str::to_lowercase).collect();
    format!("q:{}", norm.join(" "))
}

fn split_list(s: &str) -> Vec<String> {
    s.split('|')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

/// One FAQ record as a file row describes it (trimmed, checked, keyed by `id` or the question).
pub fn build(
    id: Option<&str>,
    question: &str,
    answer: &str,
    alternates: Vec<String>,
    tags: Vec<String>,
    file: &str,
) -> std::result::Result<Record, RecordError> {
    let (question, answer) = (question.trim(), answer.trim());
    if question.is_empty() {
        return Err(RecordError::Empty("question"));
    }
    if answer.is_empty() {
        return Err(RecordError::Empty("answer"));
    }
    for (field, v) in [("question", question), ("answer", answer)] {
        if v.chars().count() > MAX_FIELD_CHARS {
            return Err(RecordError::TooLong {
                field,
                max: MAX_FIELD_CHARS,
            });
        }
    }
    let key = match id.map(str::trim).filter(|s| !s.is_empty()) {
        Some(id) => format!("id:{id}"),
        None => question_key(question),
    };
    let mut alternates: Vec<String> = alternates.into_iter().filter(|a| a != question).collect();
    alternates.dedup();
    Ok(Record {
        key,
        kind: EntryKind::Faq,
        question: question.to_string(),
        answer: answer.to_string(),
        alternates,
        tags: tags.into_iter().map(|t| t.to_lowercase()).collect(),
        source: file.to_string(),
        source_file: file.to_string(),
    })
}

fn check_unique(records: &[(usize, Record)], file: &str) -> Result<Vec<Record>> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (line, r) in records {
        if let Some(first) = seen.insert(r.key.as_str(), *line) {
            return Err(KbError::Parse {
                file: file.to_string(),
                line: *line,
                message: format!("duplicate entry (same id or question as line {first})"),
            });
        }
    }
    Ok(records.iter().map(|(_, r)| r.clone()).collect())
}

/// Parses an FAQ CSV.
pub fn parse_csv(text: &str, file: &str) -> Result<Vec<Record>> {
    let perr = |line: usize, message: String| KbError::Parse {
        file: file.to_string(),
        line,
        message,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| perr(1, e.to_string()))?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (Some(q), Some(a)) = (col("question"), col("answer")) else {
        return Err(perr(
            1,
            "header row must name `question` and `answer` columns".into(),
        ));
    };
    for h in &headers {
        if !["id", "question", "answer", "alternates", "tags"].contains(&h.as_str()) {
            return Err(perr(1, format!("unknown column `{h}`")));
        }
    }
    let (id, alt, tags) = (col("id"), col("alternates"), col("tags"));
    let mut out = Vec::new();
    for row in rdr.records() {
        let row = row.map_err(|e| {
            let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
            perr(line, e.to_string())
        })?;
        let line = row.position().map(|p| p.line() as usize).unwrap_or(0);
        if row.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let get = |i: Option<usize>| i.and_then(|i| row.get(i)).unwrap_or("");
        let rec = build(
            id.map(|i| get(Some(i))),
            get(Some(q)),
            get(Some(a)),
            split_list(get(alt)),
            split_list(get(tags)),
            file,
        )
        .map_err(|m| perr(line, m.to_string()))?;
        out.push((line, rec));
    }
    check_unique(&out, file)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ListOrPiped {
    List(Vec<String>),
    Piped(String),
}

impl ListOrPiped {
    fn into_vec(self) -> Vec<String> {
        match self {
            ListOrPiped::List(v) => v
                .into_iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            ListOrPiped::Piped(s) => split_list(&s),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IdValue {
    Text(String),
    Number(i64),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaqItem {
    id: Option<IdValue>,
    question: String,
    answer: String,
    alternates: Option<ListOrPiped>,
    tags: Option<ListOrPiped>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FaqDoc {
    List(Vec<FaqItem>),
    Wrapped { entries: Vec<FaqItem> },
}

fn from_items(items: Vec<FaqItem>, file: &str, lines: &[usize]) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let line = lines.get(i).copied().unwrap_or(0);
        let id = item.id.map(|v| match v {
            IdValue::Text(s) => s,
            IdValue::Number(n) => n.to_string(),
        });
        let rec = build(
            id.as_deref(),
            &item.question,
            &item.answer,
            item.alternates
                .map(ListOrPiped::into_vec)
                .unwrap_or_default(),
            item.tags.map(ListOrPiped::into_vec).unwrap_or_default(),
            file,
        )
        .map_err(|message| KbError::Parse {
            file: file.to_string(),
            line,
            message: format!("entry {}: {message}", i + 1),
        })?;
        out.push((line, rec));
    }
    check_unique(&out, file)
}

/// Line of each entry's `"question"` key (first occurrence after the previous one): good enough to
/// point at the entry a validation error is about.
fn key_lines(text: &str, needle: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
        .collect()
}

/// Parses an FAQ JSON file.
pub fn parse_json(text: &str, file: &str) -> Result<Vec<Record>> {
    let doc: FaqDoc = serde_json::from_str(text).map_err(|e| KbError::Parse {
        file: file.to_string(),
        line: e.line(),
        message: e.to_string(),
    })?;
    let items = match doc {
        FaqDoc::List(v) | FaqDoc::Wrapped { entries: v } => v,
    };
    from_items(items, file, &key_lines(text, "\"question\""))
}

/// Parses an FAQ YAML file.
pub fn parse_yaml(text: &str, file: &str) -> Result<Vec<Record>> {
    let doc: FaqDoc = serde_yaml_ng::from_str(text).map_err(|e| KbError::Parse {
        file: file.to_string(),
        line: e.location().map(|l| l.line()).unwrap_or(0),
        message: e.to_string(),
    })?;
    let items = match doc {
        FaqDoc::List(v) | FaqDoc::Wrapped { entries: v } => v,
    };
    from_items(items, file, &key_lines(text, "question:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_quotes_alternates_and_tags() {
        let csv = "id,question,answer,alternates,tags\n\
                   ship-1,多久发货？,\"下单后 24 小时内发货，\"\"节假日\"\"顺延。\",什么时候发货|发货时间,shipping|物流\n\
                   ,How do I return an item?,\"Open Orders, choose Return.\",,returns\n";
        let r = parse_csv(csv, "faq.csv").expect("parse");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].key, "id:ship-1");
        assert_eq!(r[0].answer, "下单后 24 小时内发货，\"节假日\"顺延。");
        assert_eq!(r[0].alternates, vec!["什么时候发货", "发货时间"]);
        assert_eq!(r[0].tags, vec!["shipping", "物流"]);
        assert_eq!(r[1].key, "q:how do i return an item?");
        assert_eq!(r[1].answer, "Open Orders, choose Return.");
        // The question, and question + answer as a passage.
        assert_eq!(r[1].embed_texts().len(), 2);
    }

    #[test]
    fn csv_errors_name_the_line() {
        let csv = "question,answer\nok?,yes\n\"broken?\",\n";
        match parse_csv(csv, "f.csv") {
            Err(KbError::Parse { line, message, .. }) => {
                assert_eq!(line, 3);
                assert!(message.contains("answer is empty"));
            }
            other => panic!("expected parse error, got {other:?}"),
        }
        let dup = "question,answer\nHi?,a\nhi?,b\n";
        assert!(matches!(
            parse_csv(dup, "f.csv"),
            Err(KbError::Parse { line: 3, .. })
        ));
        let missing = "q,a\nx,y\n";
        assert!(matches!(
            parse_csv(missing, "f.csv"),
            Err(KbError::Parse { line: 1, .. })
        ));
        let ragged = "question,answer\nx,y,z\n";
        assert!(matches!(
            parse_csv(ragged, "f.csv"),
            Err(KbError::Parse { line: 2, .. })
        ));
    }

    #[test]
    fn json_and_yaml_accept_lists_or_pipes() {
        let json = r#"{"entries": [
            {"id": 7, "question": "支持哪些付款方式？", "answer": "支付宝、微信支付和银联卡。",
             "alternates": ["怎么付款", "可以用信用卡吗"], "tags": "payment"}
        ]}"#;
        let r = parse_json(json, "f.json").expect("json");
        assert_eq!(r[0].key, "id:7");
        assert_eq!(r[0].alternates.len(), 2);
        let yaml = "- question: Can I change my address?\n  answer: Yes, before the order ships.\n  alternates: update address|wrong address\n";
        let r = parse_yaml(yaml, "f.yaml").expect("yaml");
        assert_eq!(r[0].alternates, vec!["update address", "wrong address"]);
    }

    #[test]
    fn json_and_yaml_errors_have_lines() {
        let json = "[\n {\"question\": \"a\", \"answer\": \"b\"},\n {\"question\": \"c\", \"answer\": \"  \"}\n]";
        assert!(matches!(
            parse_json(json, "f.json"),
            Err(KbError::Parse { line: 3, .. })
        ));
        let bad = "[\n {\"question\": \"a\", \"answr\": \"b\"}\n]";
        assert!(matches!(
            parse_json(bad, "f.json"),
            Err(KbError::Parse { .. })
        ));
        let yaml = "- question: a\n  answer: b\n- question: c\n";
        assert!(matches!(
            parse_yaml(yaml, "f.yaml"),
            Err(KbError::Parse { .. })
        ));
    }
}
