//! The LLM step (answer mode `llm`): after triage composed the local answer, the backend writes
//! the reply from the same retrieved passages, streamed through `on_delta`. A checked answer
//! replaces the local one; "no answer" becomes a fallback under the usual handoff policy; any
//! failure (unreachable, slow, rejected by the guard) keeps the local answer and is logged and
//! metered. Rules, intents, handoff and webhooks were decided before and are never the model's.

use std::time::Instant;

use kefu_kb::answer::AnswerMode;
use kefu_kb::{Hit, Retrieval};

use super::{answer, policy, Decision, DecisionKind, Reply, Triage};
use crate::lang::Lang;
use crate::llm::guard::{self, StreamGate, Verdict};
use crate::llm::prompt::{self, Turn, MAX_SOURCES};
use crate::llm::LlmTrace;

/// What the backend needs: the visitor's question, its language, and the passages (best first).
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationInput {
    pub lang: Lang,
    pub question: String,
    pub sources: Vec<Hit>,
}

/// The input for a retrieval in answer mode `llm` that found something worth answering from (the
/// local reply is an answer or a suggestion); `None` otherwise.
pub fn input(lang: Lang, question: &str, r: &Retrieval, local: &Reply) -> Option<GenerationInput> {
    if r.answer_mode != AnswerMode::Llm
        || !matches!(local.kind, DecisionKind::Answer | DecisionKind::Suggest)
    {
        return None;
    }
    let floor = r.thresholds.suggest.min(r.thresholds.doc_suggest);
    let sources: Vec<Hit> = r
        .hits
        .iter()
        .enumerate()
        .filter(|(i, h)| *i == 0 || h.score >= floor)
        .map(|(_, h)| h.clone())
        .take(MAX_SOURCES)
        .collect();
    Some(GenerationInput {
        lang,
        question: question.to_string(),
        sources,
    })
}

impl Triage {
    /// Lets the LLM write the reply when `decision` asks for it (see `input`); otherwise returns
    /// it unchanged. `history` is the conversation before the question, oldest first.
    pub async fn generate(
        &self,
        mut decision: Decision,
        history: &[Turn],
        fallbacks_so_far: u32,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Decision {
        let (Some(input), Some(llm)) = (decision.generation.take(), self.llm.current()) else {
            return decision;
        };
        let started = Instant::now();
        let messages = prompt::messages(input.lang, &input.question, &input.sources, history);
        let texts: Vec<String> = input
            .sources
            .iter()
            .map(|h| format!("{}\n{}", h.question, h.answer))
            .collect();
        let mut gate = StreamGate::new(input.lang, &texts);
        let mut forward = |delta: &str| {
            if let Some(shown) = gate.push(delta) {
                on_delta(&shown);
            }
        };
        let result = llm.stream(&messages, &mut forward).await;
        let mut trace = LlmTrace {
            model: llm.model().to_string(),
            outcome: String::new(),
            sources_used: vec![],
            prompt_tokens: None,
            completion_tokens: None,
            first_token_ms: None,
            total_ms: 0.0,
        };
        match result {
            Err(e) => {
                tracing::warn!(error = %e, "the LLM gave no answer; answering locally");
                trace.outcome = e.label().to_string();
            }
            Ok(completion) => {
                trace.prompt_tokens = completion.prompt_tokens;
                trace.completion_tokens = completion.completion_tokens;
                trace.first_token_ms = completion.first_token.map(|d| d.as_secs_f64() * 1e3);
                match guard::check(&completion.text, input.lang, &texts) {
                    Verdict::Answer { text, cited } => {
                        let cited: Vec<&Hit> = cited.iter().map(|&i| &input.sources[i]).collect();
                        trace.sources_used = cited.iter().map(|h| h.id.clone()).collect();
                        trace.outcome = "answered".into();
                        decision.kind = DecisionKind::Answer;
                        decision.reply = Some(text);
                        decision.sources = cited
                            .iter()
                            .map(|h| answer::source(kefu_kb::answer::citation(h, input.lang)))
                            .collect();
                        decision.quick_replies = vec![];
                        decision.trace.fallbacks = 0;
                        decision.trace.handoff = None;
                        if let Some(kb) = decision.trace.kb.as_mut() {
                            kb.band = Some(kefu_kb::Band::Answer);
                            kb.mode = Some(AnswerMode::Llm);
                        }
                    }
                    Verdict::NoAnswer => {
                        trace.outcome = "no_answer".into();
                        let reply = policy::repeated_fallbacks(
                            answer::fallback(input.lang),
                            &mut decision.trace,
                            fallbacks_so_far,
                            self.fallbacks_before_handoff,
                        );
                        decision.kind = reply.kind;
                        decision.reply = reply.text;
                        decision.sources = reply.sources;
                        decision.quick_replies = reply.quick_replies;
                        if let Some(kb) = decision.trace.kb.as_mut() {
                            kb.band = Some(kefu_kb::Band::None);
                            kb.mode = Some(AnswerMode::Llm);
                        }
                    }
                    Verdict::Rejected(why) => {
                        tracing::warn!(
                            check = why,
                            "the LLM answer failed a check; answering locally"
                        );
                        trace.outcome = format!("rejected_{why}");
                    }
                }
            }
        }
        trace.total_ms = started.elapsed().as_secs_f64() * 1e3;
        metrics::counter!("kefu_llm_answers_total", "outcome" => outcome_label(&trace.outcome))
            .increment(1);
        decision.trace.decision = decision.kind.clone();
        decision.trace.elapsed_ms += trace.total_ms;
        if let Some(kb) = decision.trace.kb.as_mut() {
            kb.llm = Some(trace);
        }
        decision
    }
}

/// A bounded label for the metric (rejections grouped).
fn outcome_label(outcome: &str) -> &'static str {
    match outcome {
        "answered" => "answered",
        "no_answer" => "no_answer",
        o if o.starts_with("rejected_") => "rejected",
        "first_token_timeout" | "timeout" => "timeout",
        "unreachable" | "status" => "unreachable",
        _ => "error",
    }
}
