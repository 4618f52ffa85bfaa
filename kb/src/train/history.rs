//! Past conversations for training: parsing JSONL (one conversation per line: `id`, `messages` of
//! `{role: visitor|agent|bot, text, time}`) and CSV (`conversation_id, role, text, time`), and
//! storing them idempotently (a conversation is keyed by source and id; re-importing it unchanged
//! is a no-op, changed replaces it). Bad records are reported with their location and skipped.

use std::collections::HashMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::error::{RecordError, Result};
use crate::intent::data::jsonl_records;
use crate::intent::BadRecord;
use crate::store::KbStore;

/// Longest accepted message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 8000;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Visitor,
    Agent,
    Bot,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "visitor" | "customer" | "user" => Some(Role::Visitor),
            "agent" | "staff" => Some(Role::Agent),
            "bot" => Some(Role::Bot),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Visitor => "visitor",
            Role::Agent => "agent",
            Role::Bot => "bot",
        }
    }
}

/// One message of a past conversation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HistoryMessage {
    pub role: Role,
    pub text: String,
    pub time: Option<String>,
}

/// One past conversation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HistoryConversation {
    pub id: String,
    pub messages: Vec<HistoryMessage>,
}

impl HistoryConversation {
    fn hash(&self) -> String {
        let mut h = Sha256::new();
        for m in &self.messages {
            h.update(m.role.as_str());
            h.update([0x1f]);
            h.update(&m.text);
            h.update([0x1f]);
            h.update(m.time.as_deref().unwrap_or(""));
            h.update([0x1e]);
        }
        hex::encode(h.finalize())
    }
}

/// Conversations parsed from one file and the records skipped.
#[derive(Debug, Clone, Default)]
pub struct ParsedHistory {
    pub conversations: Vec<HistoryConversation>,
    pub skipped: Vec<BadRecord>,
}

fn check_message(role: &str, text: &str) -> std::result::Result<(Role, String), RecordError> {
    let role = Role::parse(role).ok_or_else(|| RecordError::BadRole(role.to_string()))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(RecordError::Empty("text"));
    }
    if text.chars().count() > MAX_MESSAGE_CHARS {
        return Err(RecordError::TooLong {
            field: "text",
            max: MAX_MESSAGE_CHARS,
        });
    }
    Ok((role, text.to_string()))
}

#[derive(Deserialize)]
struct JsonConversation {
    id: serde_json::Value,
    messages: Vec<JsonMessage>,
}

#[derive(Deserialize)]
struct JsonMessage {
    role: String,
    text: String,
    #[serde(default)]
    time: Option<serde_json::Value>,
}

fn id_string(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses JSONL history: a line with any bad message is skipped whole (a partial conversation
/// would pair questions with the wrong answers).
pub fn parse_jsonl(text: &str, file: &str) -> ParsedHistory {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let (conversations, skipped) = jsonl_records(text, file, |line_no, line| {
        let conv: JsonConversation =
            serde_json::from_str(line).map_err(|e| RecordError::Malformed {
                expected: "conversation {id, messages}",
                detail: e.to_string(),
            })?;
        let id = id_string(&conv.id).ok_or(RecordError::BadId)?;
        if let Some(&first_line) = seen.get(&id) {
            return Err(RecordError::DuplicateConversation { id, first_line });
        }
        let messages = conv
            .messages
            .iter()
            .enumerate()
            .map(|(j, m)| {
                let (role, text) =
                    check_message(&m.role, &m.text).map_err(|e| RecordError::InMessage {
                        index: j + 1,
                        source: Box::new(e),
                    })?;
                Ok(HistoryMessage {
                    role,
                    text,
                    time: m.time.as_ref().map(|t| match t {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    }),
                })
            })
            .collect::<std::result::Result<Vec<_>, RecordError>>()?;
        if messages.is_empty() {
            return Err(RecordError::Empty("messages"));
        }
        seen.insert(id.clone(), line_no);
        Ok(HistoryConversation { id, messages })
    });
    ParsedHistory {
        conversations,
        skipped,
    }
}

/// Parses CSV history (header: `conversation_id, role, text[, time]`); rows of one conversation
/// keep their file order. A bad row is skipped alone.
pub fn parse_csv(text: &str, file: &str) -> std::result::Result<ParsedHistory, BadRecord> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| BadRecord {
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
    let (Some(ci), Some(ri), Some(ti)) = (col("conversation_id"), col("role"), col("text")) else {
        return Err(BadRecord {
            file: file.to_string(),
            line: 1,
            message: "the header must name conversation_id, role and text columns".into(),
        });
    };
    let time_col = col("time");
    let mut out = ParsedHistory::default();
    let mut order: Vec<String> = Vec::new();
    let mut by_id: HashMap<String, Vec<HistoryMessage>> = HashMap::new();
    for rec in reader.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                out.skipped.push(BadRecord {
                    file: file.to_string(),
                    line: e.position().map(|p| p.line() as usize).unwrap_or(0),
                    message: e.to_string(),
                });
                continue;
            }
        };
        let line = rec.position().map(|p| p.line() as usize).unwrap_or(0);
        let id = rec.get(ci).unwrap_or("").trim().to_string();
        let checked = if id.is_empty() {
            Err(RecordError::Empty("conversation_id"))
        } else {
            check_message(rec.get(ri).unwrap_or(""), rec.get(ti).unwrap_or(""))
        };
        match checked {
            Ok((role, text)) => {
                let time = time_col
                    .and_then(|c| rec.get(c))
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string);
                by_id
                    .entry(id.clone())
                    .or_insert_with(|| {
                        order.push(id.clone());
                        Vec::new()
                    })
                    .push(HistoryMessage { role, text, time });
            }
            Err(e) => out.skipped.push(BadRecord {
                file: file.to_string(),
                line,
                message: e.to_string(),
            }),
        }
    }
    for id in order {
        if let Some(messages) = by_id.remove(&id) {
            out.conversations.push(HistoryConversation { id, messages });
        }
    }
    Ok(out)
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct HistoryImport {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub messages: usize,
}

/// Stores conversations under `source` (e.g. the file name, or `kefu` for Kefu's own).
pub async fn store(
    kb: &KbStore,
    source: &str,
    conversations: &[HistoryConversation],
) -> Result<HistoryImport> {
    let mut report = HistoryImport::default();
    let now = crate::store::now_ms();
    for chunk in conversations.chunks(200) {
        let mut tx = kb.pool().begin().await?;
        for c in chunk {
            let hash = c.hash();
            let old: Option<String> = sqlx::query(
                "SELECT content_hash FROM history_conversations WHERE source = $1 AND id = $2",
            )
            .bind(source)
            .bind(&c.id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get("content_hash"))
            .transpose()?;
            match old {
                Some(h) if h == hash => {
                    report.unchanged += 1;
                    continue;
                }
                Some(_) => report.updated += 1,
                None => report.added += 1,
            }
            sqlx::query("DELETE FROM history_messages WHERE source = $1 AND conversation_id = $2")
                .bind(source)
                .bind(&c.id)
                .execute(&mut *tx)
                .await?;
            for (seq, m) in c.messages.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO history_messages (source, conversation_id, seq, role, text, time) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(source)
                .bind(&c.id)
                .bind(seq as i64)
                .bind(m.role.as_str())
                .bind(&m.text)
                .bind(&m.time)
                .execute(&mut *tx)
                .await?;
                report.messages += 1;
            }
            sqlx::query(
                "INSERT INTO history_conversations (source, id, content_hash, imported_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (source, id) DO UPDATE SET content_hash = excluded.content_hash, imported_at = excluded.imported_at",
            )
            .bind(source)
            .bind(&c.id)
            .bind(&hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    }
    Ok(report)
}

/// The stored conversations named `source/id` (as `load_all` names them), messages in order;
/// names not stored are left out.
pub async fn load_named(kb: &KbStore, names: &[String]) -> Result<Vec<HistoryConversation>> {
    let mut out = Vec::new();
    for name in names {
        let Some((source, id)) = name.split_once('/') else {
            continue;
        };
        let rows = sqlx::query(
            "SELECT role, text, time FROM history_messages WHERE source = $1 AND conversation_id = $2 ORDER BY seq",
        )
        .bind(source)
        .bind(id)
        .fetch_all(kb.pool())
        .await?;
        let mut messages = Vec::with_capacity(rows.len());
        for row in rows {
            let role: String = row.try_get("role")?;
            if let Some(role) = Role::parse(&role) {
                messages.push(HistoryMessage {
                    role,
                    text: row.try_get("text")?,
                    time: row.try_get("time")?,
                });
            }
        }
        if !messages.is_empty() {
            out.push(HistoryConversation {
                id: name.clone(),
                messages,
            });
        }
    }
    Ok(out)
}

/// Every stored conversation, messages in order.
pub async fn load_all(kb: &KbStore) -> Result<Vec<HistoryConversation>> {
    let rows = sqlx::query(
        "SELECT source, conversation_id, role, text, time FROM history_messages ORDER BY source, conversation_id, seq",
    )
    .fetch_all(kb.pool())
    .await?;
    let mut out: Vec<HistoryConversation> = Vec::new();
    let mut current: Option<(String, String)> = None;
    for row in rows {
        let source: String = row.try_get("source")?;
        let id: String = row.try_get("conversation_id")?;
        let role: String = row.try_get("role")?;
        let Some(role) = Role::parse(&role) else {
            continue;
        };
        let key = (source, id);
        if current.as_ref() != Some(&key) {
            out.push(HistoryConversation {
                id: format!("{}/{}", key.0, key.1),
                messages: Vec::new(),
            });
            current = Some(key);
        }
        if let Some(c) = out.last_mut() {
            c.messages.push(HistoryMessage {
                role,
                text: row.try_get("text")?,
                time: row.try_get("time")?,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_skips_bad_conversations_with_their_line() {
        let text = r#"{"id": "c1", "messages": [{"role": "visitor", "text": "多久发货？"}, {"role": "agent", "text": "一般48小时内发货。", "time": "2026-01-02T10:00:00Z"}]}
{"id": 2, "messages": [{"role": "customer", "text": "Do you ship abroad?"}, {"role": "agent", "text": "Yes, to 30 countries."}]}
{"id": "c3", "messages": [{"role": "robot", "text": "x"}]}
{"id": "c1", "messages": [{"role": "visitor", "text": "again"}]}
{broken
"#;
        let p = parse_jsonl(text, "h.jsonl");
        assert_eq!(p.conversations.len(), 2);
        assert_eq!(p.conversations[1].id, "2");
        assert_eq!(p.conversations[1].messages[0].role, Role::Visitor);
        let lines: Vec<usize> = p.skipped.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![3, 4, 5]);
        assert!(p.skipped[0].message.contains("message 1"));
    }

    #[test]
    fn csv_groups_rows_by_conversation() {
        let text = "conversation_id,role,text,time\nA,visitor,怎么退货,\nB,visitor,Where is my parcel?,\nA,agent,七天无理由退货。,t1\nA,nobody,x,\n";
        let p = parse_csv(text, "h.csv").expect("csv");
        assert_eq!(p.conversations.len(), 2);
        assert_eq!(p.conversations[0].messages.len(), 2);
        assert_eq!(p.conversations[0].messages[1].time.as_deref(), Some("t1"));
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(p.skipped[0].line, 5);
        assert!(parse_csv("id,who,what\n", "h.csv").is_err());
    }

    #[tokio::test]
    async fn storing_is_idempotent() {
        let kb = KbStore::in_memory().await.expect("store");
        let p = parse_jsonl(
            r#"{"id": "c1", "messages": [{"role": "visitor", "text": "hi"}, {"role": "agent", "text": "hello"}]}"#,
            "h.jsonl",
        );
        let r = store(&kb, "h.jsonl", &p.conversations)
            .await
            .expect("store");
        assert_eq!((r.added, r.messages), (1, 2));
        let r = store(&kb, "h.jsonl", &p.conversations)
            .await
            .expect("again");
        assert_eq!((r.added, r.unchanged), (0, 1));
        let mut changed = p.conversations.clone();
        changed[0].messages[1].text = "hello there".into();
        let r = store(&kb, "h.jsonl", &changed).await.expect("changed");
        assert_eq!(r.updated, 1);
        let all = load_all(&kb).await.expect("load");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].messages[1].text, "hello there");
    }
}

/// What erasing conversations from the training data removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct HistoryErased {
    /// Stored history conversations (under any source) removed.
    pub conversations: u64,
    pub messages: u64,
    /// Mined proposals whose examples named an erased conversation: the names removed.
    pub proposals_changed: u64,
    /// Pending proposals every example of which was erased: removed from the review queue.
    pub proposals_removed: u64,
}

/// Erases the conversations with these ids from the training history (whatever source they
/// were imported under) and from the mined proposals' examples, in one transaction.
pub async fn erase(kb: &KbStore, conversation_ids: &[String]) -> Result<HistoryErased> {
    let mut out = HistoryErased::default();
    if conversation_ids.is_empty() {
        return Ok(out);
    }
    let erased: std::collections::HashSet<&str> =
        conversation_ids.iter().map(String::as_str).collect();
    let mut tx = kb.pool().begin().await?;
    for id in conversation_ids {
        out.messages += sqlx::query("DELETE FROM history_messages WHERE conversation_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        out.conversations += sqlx::query("DELETE FROM history_conversations WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    let rows = sqlx::query("SELECT id, status, conversations FROM faq_proposals")
        .fetch_all(&mut *tx)
        .await?;
    for row in rows {
        let id: i64 = row.try_get("id")?;
        let status: String = row.try_get("status")?;
        let names: Vec<String> =
            serde_json::from_str(&row.try_get::<String, _>("conversations")?).unwrap_or_default();
        let kept: Vec<&String> = names
            .iter()
            .filter(|n| {
                let conv = n.split_once('/').map_or(n.as_str(), |(_, c)| c);
                !erased.contains(conv)
            })
            .collect();
        if kept.len() == names.len() {
            continue;
        }
        if kept.is_empty() && status == "pending" {
            sqlx::query("DELETE FROM faq_proposals WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            out.proposals_removed += 1;
        } else {
            sqlx::query("UPDATE faq_proposals SET conversations = $1 WHERE id = $2")
                .bind(serde_json::to_string(&kept).unwrap_or_else(|_| "[]".into()))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            out.proposals_changed += 1;
        }
    }
    tx.commit().await?;
    Ok(out)
}
