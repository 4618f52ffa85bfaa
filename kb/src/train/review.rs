//! The FAQ review queue: mined proposals wait as `pending` until an operator approves (the entry
//! enters the knowledge base, source `reviewed-faq`), edits or rejects them. Re-mining updates
//! pending proposals in place and never touches reviewed ones.

use serde::Serialize;
use sqlx::Row;

use crate::error::{KbError, Result};
use crate::ingest::FileKind;
use crate::knowledge::{ImportReport, Knowledge, SourceFile};
use crate::retrieve::Band;
use crate::store::{now_ms, KbStore};
use crate::train::mine::{normalise, Proposal};

/// The source name approved entries are recorded under.
pub const REVIEWED_SOURCE: &str = "reviewed-faq";

/// Where a proposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Approved,
    Rejected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(Status::Pending),
            "approved" => Ok(Status::Approved),
            "rejected" => Ok(Status::Rejected),
            _ => Err(KbError::InvalidInput(format!(
                "status must be pending, approved or rejected (got {s:?})"
            ))),
        }
    }
}

/// A proposal in the queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueuedProposal {
    pub id: i64,
    pub lang: String,
    pub question: String,
    pub alternates: Vec<String>,
    pub answer: String,
    pub support: i64,
    pub status: Status,
    /// The knowledge base it was approved into.
    pub kb: Option<String>,
    pub updated_at: i64,
    /// Past conversations it was mined from (`source/id`), as examples.
    pub conversations: Vec<String>,
}

fn row_to_proposal(row: &sqlx::any::AnyRow) -> Result<QueuedProposal> {
    let alternates: String = row.try_get("alternates")?;
    let conversations: String = row.try_get("conversations")?;
    let status: String = row.try_get("status")?;
    Ok(QueuedProposal {
        id: row.try_get("id")?,
        lang: row.try_get("lang")?,
        question: row.try_get("question")?,
        alternates: serde_json::from_str(&alternates).unwrap_or_default(),
        answer: row.try_get("answer")?,
        support: row.try_get("support")?,
        status: Status::parse(&status)?,
        kb: row.try_get("kb")?,
        updated_at: row.try_get("updated_at")?,
        conversations: serde_json::from_str(&conversations).unwrap_or_default(),
    })
}

/// Proposals, largest support first (optionally one status only).
pub async fn list(store: &KbStore, status: Option<Status>) -> Result<Vec<QueuedProposal>> {
    let rows = match status {
        Some(s) => {
            sqlx::query("SELECT * FROM faq_proposals WHERE status = $1 ORDER BY support DESC, id")
                .bind(s.as_str())
                .fetch_all(store.pool())
                .await?
        }
        None => {
            sqlx::query("SELECT * FROM faq_proposals ORDER BY support DESC, id")
                .fetch_all(store.pool())
                .await?
        }
    };
    rows.iter().map(row_to_proposal).collect()
}

/// One proposal.
pub async fn get(store: &KbStore, id: i64) -> Result<QueuedProposal> {
    let row = sqlx::query("SELECT * FROM faq_proposals WHERE id = $1")
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or_else(|| KbError::NotFound(format!("no proposal {id}")))?;
    row_to_proposal(&row)
}

/// What queueing a mining run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueReport {
    /// New pending proposals.
    pub added: usize,
    /// Pending proposals refreshed (support, alternates, answer).
    pub updated: usize,
    /// Clusters matching a proposal already approved or rejected (left alone).
    pub already_reviewed: usize,
    /// Clusters the knowledge base already answers (not proposed).
    pub already_answered: usize,
}

/// Queues mined proposals. A proposal matches an existing one (same language) when the existing
/// question is among its question variants; clusters `kb` already answers are skipped.
pub async fn enqueue(
    store: &KbStore,
    knowledge: &Knowledge,
    kb: &str,
    proposals: &[Proposal],
) -> Result<QueueReport> {
    let mut report = QueueReport::default();
    let existing = list(store, None).await?;
    let kb_exists = store.get_kb(kb).await?.is_some();
    let answered: Vec<bool> = if kb_exists && !proposals.is_empty() {
        let questions: Vec<String> = proposals.iter().map(|p| p.question.clone()).collect();
        knowledge
            .query_many(kb, &questions, 1, &[])
            .await?
            .into_iter()
            .map(|r| r.band == Band::Answer)
            .collect()
    } else {
        vec![false; proposals.len()]
    };
    let now = now_ms();
    for (p, answered) in proposals.iter().zip(answered) {
        let variants: Vec<String> = std::iter::once(&p.question)
            .chain(&p.alternates)
            .map(|q| normalise(q))
            .collect();
        let matched = existing
            .iter()
            .find(|e| e.lang == p.lang && variants.contains(&normalise(&e.question)));
        match matched {
            Some(e) if e.status != Status::Pending => report.already_reviewed += 1,
            _ if answered => report.already_answered += 1,
            Some(e) => {
                sqlx::query(
                    "UPDATE faq_proposals SET alternates = $1, answer = $2, support = $3, conversations = $4, updated_at = $5 WHERE id = $6 AND status = 'pending'",
                )
                .bind(serde_json::to_string(&p.alternates).unwrap_or_else(|_| "[]".into()))
                .bind(&p.answer)
                .bind(p.support as i64)
                .bind(serde_json::to_string(&p.conversations).unwrap_or_else(|_| "[]".into()))
                .bind(now)
                .bind(e.id)
                .execute(store.pool())
                .await?;
                report.updated += 1;
            }
            None => {
                sqlx::query(
                    "INSERT INTO faq_proposals (lang, question, alternates, answer, support, conversations, status, kb, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending', NULL, $7, $8)",
                )
                .bind(&p.lang)
                .bind(&p.question)
                .bind(serde_json::to_string(&p.alternates).unwrap_or_else(|_| "[]".into()))
                .bind(&p.answer)
                .bind(p.support as i64)
                .bind(serde_json::to_string(&p.conversations).unwrap_or_else(|_| "[]".into()))
                .bind(now)
                .bind(now)
                .execute(store.pool())
                .await?;
                report.added += 1;
            }
        }
    }
    Ok(report)
}

/// Changes a proposal's text (before or after approval: an approved one is re-imported).
pub async fn edit(
    store: &KbStore,
    knowledge: &Knowledge,
    id: i64,
    question: Option<String>,
    answer: Option<String>,
    alternates: Option<Vec<String>>,
) -> Result<QueuedProposal> {
    let mut p = get(store, id).await?;
    if let Some(q) = question {
        p.question = q.trim().to_string();
    }
    if let Some(a) = answer {
        p.answer = a.trim().to_string();
    }
    if let Some(alts) = alternates {
        p.alternates = alts
            .into_iter()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
    }
    if p.question.is_empty() || p.answer.is_empty() {
        return Err(KbError::InvalidInput(
            "question and answer must not be empty".into(),
        ));
    }
    sqlx::query(
        "UPDATE faq_proposals SET question = $1, answer = $2, alternates = $3, updated_at = $4 WHERE id = $5",
    )
    .bind(&p.question)
    .bind(&p.answer)
    .bind(serde_json::to_string(&p.alternates).unwrap_or_else(|_| "[]".into()))
    .bind(now_ms())
    .bind(id)
    .execute(store.pool())
    .await?;
    if p.status == Status::Approved {
        let kb =
            p.kb.clone()
                .unwrap_or_else(|| crate::knowledge::DEFAULT_KB.to_string());
        import(knowledge, &kb, &p).await?;
    }
    get(store, id).await
}

async fn import(knowledge: &Knowledge, kb: &str, p: &QueuedProposal) -> Result<ImportReport> {
    let entry = serde_json::json!([{
        "id": format!("mined-{}", p.id),
        "question": p.question,
        "answer": p.answer,
        "alternates": p.alternates,
        "tags": ["mined"],
    }]);
    let source = SourceFile {
        name: REVIEWED_SOURCE.to_string(),
        kind: FileKind::FaqJson,
        text: entry.to_string(),
    };
    knowledge.import(kb, vec![source], &|_, _| {}).await
}

/// Approves a proposal into knowledge base `kb` (idempotent: approving again re-imports it).
pub async fn approve(
    store: &KbStore,
    knowledge: &Knowledge,
    id: i64,
    kb: &str,
) -> Result<(QueuedProposal, ImportReport)> {
    let p = get(store, id).await?;
    let report = import(knowledge, kb, &p).await?;
    sqlx::query(
        "UPDATE faq_proposals SET status = 'approved', kb = $1, updated_at = $2 WHERE id = $3",
    )
    .bind(kb)
    .bind(now_ms())
    .bind(id)
    .execute(store.pool())
    .await?;
    Ok((get(store, id).await?, report))
}

/// Rejects a pending proposal (an approved one stays in the knowledge base: delete it there).
pub async fn reject(store: &KbStore, id: i64) -> Result<QueuedProposal> {
    let p = get(store, id).await?;
    if p.status == Status::Approved {
        return Err(KbError::InvalidInput(format!(
            "proposal {id} is already approved into '{}'",
            p.kb.unwrap_or_default()
        )));
    }
    sqlx::query("UPDATE faq_proposals SET status = 'rejected', updated_at = $1 WHERE id = $2")
        .bind(now_ms())
        .bind(id)
        .execute(store.pool())
        .await?;
    get(store, id).await
}
