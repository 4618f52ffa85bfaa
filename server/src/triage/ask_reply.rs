//! A decision in the stable shape of `kefu kb ask --json` (also the body of the admin API's
//! `POST /v1/admin/kbs/{kb}/ask`): what the visitor would read, its band, mode and citations.

use serde::Serialize;

use super::{Decision, DecisionKind, Lang};
use crate::handoff::queued_note;

/// A reply with the decision behind it and how long it took (embedding included).
pub struct Asked {
    pub reply: AskReply,
    pub decision: Decision,
    pub latency_ms: f64,
}

/// One reply in the stable `kefu kb ask --json` shape.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AskReply {
    pub query: String,
    /// `answer`, `suggest` or `none` (rules and handoffs: `none`).
    pub band: &'static str,
    /// What the visitor would read (the fallback or handoff note when the bot has no answer).
    pub answer: String,
    /// `faq`, `extractive` or `llm`: where the text came from (the knowledge base's mode when nothing
    /// was retrieved).
    pub mode: &'static str,
    pub citations: Vec<AskCitation>,
    pub quick_replies: Vec<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AskCitation {
    pub id: String,
    pub title: String,
    pub source: String,
}

impl AskReply {
    /// The reply to `query` that decision `d` makes; `kb_mode` is the knowledge base's answer
    /// mode (named when retrieval did not run).
    pub fn of(query: &str, d: &Decision, kb_mode: &'static str) -> Self {
        let kb = d.trace.kb.as_ref();
        let answer = match (&d.kind, &d.reply) {
            (DecisionKind::Handoff, _) => queued_note(Lang::detect(query), true).to_string(),
            (_, Some(text)) => text.clone(),
            (_, None) => String::new(),
        };
        let retrieved = matches!(d.kind, DecisionKind::Answer | DecisionKind::Suggest);
        AskReply {
            query: query.to_string(),
            band: match kb.and_then(|k| k.band) {
                Some(b) if retrieved => b.as_str(),
                _ => "none",
            },
            answer,
            mode: kb.and_then(|k| k.mode).map_or(kb_mode, |m| m.as_str()),
            citations: d
                .sources
                .iter()
                .map(|s| AskCitation {
                    id: s.id.clone(),
                    title: s.title.clone(),
                    source: s.source.clone(),
                })
                .collect(),
            quick_replies: d.quick_replies.clone(),
        }
    }
}
