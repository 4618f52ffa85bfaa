//! The route trace stored with each bot reply and shown to agents: what each step of triage saw
//! and why the bot did what it did.

use kefu_kb::Band;
use serde::Serialize;

use super::rules;
use crate::lang::Lang;

/// Why the conversation goes to a human.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum HandoffReason {
    /// The visitor pressed "talk to a human" (`request_human` frame).
    Requested,
    /// A rule with a handoff action matched.
    Rule { rule_id: String },
    /// The message's intent is routed to a human in the rules file.
    Intent { intent: String },
    /// The bot found no answer this many times in a row.
    RepeatedFallback { count: u32 },
}

impl HandoffReason {
    pub fn label(&self) -> &'static str {
        match self {
            HandoffReason::Requested => "requested",
            HandoffReason::Rule { .. } => "rule",
            HandoffReason::Intent { .. } => "intent",
            HandoffReason::RepeatedFallback { .. } => "repeated_fallback",
        }
    }
}

/// What the bot does with the message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// A rule's reply.
    RuleReply,
    /// The knowledge base's answer (band `answer`).
    Answer,
    /// The top questions offered as quick replies (band `suggest`).
    Suggest,
    /// No answer (band `none`).
    Fallback,
    /// Hand the conversation to a human.
    Handoff,
}

impl DecisionKind {
    /// The wire name (as serialised), also stored with each bot reply for analytics.
    pub fn as_str(&self) -> &'static str {
        match self {
            DecisionKind::RuleReply => "rule_reply",
            DecisionKind::Answer => "answer",
            DecisionKind::Suggest => "suggest",
            DecisionKind::Fallback => "fallback",
            DecisionKind::Handoff => "handoff",
        }
    }
}

/// The route trace stored with each bot reply and shown to agents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteTrace {
    pub lang: Lang,
    /// The rule that matched, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<rules::RuleMatch>,
    /// The intent step: a rule's intent, or the model's status.
    pub intent: IntentTrace,
    /// The knowledge step (absent when a rule decided first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kb: Option<KbTrace>,
    pub decision: DecisionKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handoff: Option<HandoffReason>,
    /// Consecutive fallbacks including this message.
    pub fallbacks: u32,
    pub elapsed_ms: f64,
}

/// The intent step of the trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntentTrace {
    /// The intent a rule set, or the model's in-scope prediction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Probability of the model's best intent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probability: Option<f32>,
    /// The model's best intent even when out of scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closest: Option<String>,
    /// The model's out-of-scope threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f32>,
    /// The model version that classified the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Whether the rules file's route for this intent was applied (actions and/or tags).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub routed: bool,
    pub status: IntentStatus,
}

/// How the intent step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentStatus {
    /// A rule set the intent.
    Rule,
    /// The model's best intent cleared its threshold.
    InScope,
    /// The model's best intent did not clear its threshold.
    OutOfScope,
    /// No intent model is active.
    NoModel,
    /// The message could not be embedded.
    Error,
}

/// The knowledge step of the trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KbTrace {
    pub kb: String,
    /// Tags the search was limited to (from the intent's route); empty: the whole base.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// True when the tagged search had no answer and the whole base was searched instead.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub widened: bool,
    /// The reply's band (after composition: close compatible FAQ entries answer together).
    pub band: Option<Band>,
    /// Where the reply's text came from (`faq` entries or `extractive` document sentences).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<kefu_kb::answer::AnswerMode>,
    pub thresholds: Option<kefu_kb::Thresholds>,
    /// The previous question this message was searched together with (a short follow-up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow_up_of: Option<String>,
    pub hits: Vec<HitTrace>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The LLM step (answer mode `llm` with a backend configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm: Option<crate::llm::LlmTrace>,
}

/// One retrieved entry, as the trace shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HitTrace {
    pub id: String,
    pub question: String,
    pub score: f32,
    pub source: String,
}

impl IntentTrace {
    /// The trace of a message no intent step has looked at yet.
    pub fn no_model() -> IntentTrace {
        IntentTrace {
            name: None,
            probability: None,
            closest: None,
            threshold: None,
            model: None,
            routed: false,
            status: IntentStatus::NoModel,
        }
    }
}

impl KbTrace {
    /// The trace of a search of `kb` (limited to `tags`; `widened` when a tagged search found
    /// nothing); the answer step fills in the rest.
    pub fn new(kb: &str, tags: Vec<String>, widened: bool) -> KbTrace {
        KbTrace {
            kb: kb.to_string(),
            tags,
            widened,
            band: None,
            mode: None,
            thresholds: None,
            follow_up_of: None,
            hits: vec![],
            error: None,
            llm: None,
        }
    }

    /// The same trace for a step that failed with `code` (a stable error code).
    pub fn failed(self, code: &str) -> KbTrace {
        KbTrace {
            error: Some(code.to_string()),
            ..self
        }
    }
}
