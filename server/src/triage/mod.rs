//! The bot's decision for one visitor message: rules first, then the intent model (when trained),
//! then knowledge retrieval with threshold bands, then the handoff policy. Every decision carries a
//! `RouteTrace` saying why.
//!
//! `mod.rs` runs the steps in order; each step lives in its own module: `rules`, `intent` (the
//! active model), `retriever` + `follow_up` + `answer` (knowledge), `policy` (actions and repeated
//! fallbacks), `trace`.

pub mod answer;
pub mod ask_reply;
pub mod batcher;
pub mod follow_up;
pub mod generate;
pub mod intent;
pub mod live_rules;
pub mod policy;
pub mod retriever;
pub mod rules;
pub mod trace;

pub use crate::lang::Lang;
use std::sync::Arc;
use std::time::Instant;

use kefu_kb::Band;
use kefu_protocol::Source;

pub use batcher::KbBatcher;
pub use intent::IntentSlot;
pub use live_rules::LiveRules;
pub use retriever::Retriever;
pub use rules::{CannedReply, IntentRoute, RuleAction, RuleSet};
pub use trace::{
    DecisionKind, HandoffReason, HitTrace, IntentStatus, IntentTrace, KbTrace, RouteTrace,
};

/// What the bot says (or does) in answer to one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub kind: DecisionKind,
    /// The bot's text (none for a handoff: the conversation layer announces it).
    pub text: Option<String>,
    pub sources: Vec<Source>,
    pub quick_replies: Vec<String>,
}

impl Reply {
    /// A plain text reply.
    pub fn text(kind: DecisionKind, text: String) -> Reply {
        Reply {
            kind,
            text: Some(text),
            sources: vec![],
            quick_replies: vec![],
        }
    }

    /// Hand the conversation to a human.
    pub fn handoff() -> Reply {
        Reply {
            kind: DecisionKind::Handoff,
            text: None,
            sources: vec![],
            quick_replies: vec![],
        }
    }
}

/// The bot's decision for one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub kind: DecisionKind,
    /// The bot's reply (none for a handoff: the conversation layer announces it).
    pub reply: Option<String>,
    pub sources: Vec<Source>,
    pub quick_replies: Vec<String>,
    /// Webhooks to notify (rule actions).
    pub webhooks: Vec<String>,
    pub trace: RouteTrace,
    /// What an LLM needs to write the reply instead (answer mode `llm`); `generate` uses it.
    pub generation: Option<generate::GenerationInput>,
}

/// Settings and rules for triage.
pub struct Triage {
    /// The rules in force (replaceable from the admin API).
    pub rules: Arc<LiveRules>,
    /// The active intent model (empty until one is trained and activated).
    pub intents: Arc<IntentSlot>,
    /// Knowledge base the bot answers from.
    pub kb: String,
    /// Consecutive fallbacks that hand the conversation off (0 = never).
    pub fallbacks_before_handoff: u32,
    /// The LLM backend for knowledge bases in answer mode `llm` (none: they answer locally).
    /// (Replaceable from the admin API unless `--llm-url` fixes it.)
    pub llm: Arc<crate::llm::LiveLlm>,
}

impl Triage {
    /// Decides what the bot does with `text`, given the visitor's previous message (a short
    /// follow-up is searched together with it) and the fallbacks before it.
    pub async fn decide(
        &self,
        retriever: &dyn Retriever,
        text: &str,
        previous: Option<&str>,
        fallbacks_so_far: u32,
    ) -> Decision {
        self.decide_in(&self.kb, retriever, text, previous, fallbacks_so_far)
            .await
    }

    /// As `decide`, answering from knowledge base `kb` (the operator's "try a question").
    pub async fn decide_in(
        &self,
        kb: &str,
        retriever: &dyn Retriever,
        text: &str,
        previous: Option<&str>,
        fallbacks_so_far: u32,
    ) -> Decision {
        let started = Instant::now();
        let lang = Lang::detect(text);
        let mut trace = RouteTrace {
            lang,
            rule: None,
            intent: IntentTrace::no_model(),
            kb: None,
            decision: DecisionKind::Fallback,
            handoff: None,
            fallbacks: 0,
            elapsed_ms: 0.0,
        };
        let mut webhooks = Vec::new();
        let mut decision = None;

        // 0. Files alone (a message with attachments and no text): nothing to search for.
        if kefu_protocol::is_blank(text) {
            let lang = previous.map(Lang::detect).unwrap_or(lang);
            trace.lang = lang;
            return finish(started, trace, answer::file_received(lang), webhooks);
        }

        // 1. Rules.
        let rules = self.rules.current();
        if let Some(m) = rules.evaluate(text) {
            for action in &m.actions {
                if let RuleAction::Intent { name } = action {
                    trace.intent.name = Some(name.trim().to_lowercase());
                    trace.intent.status = IntentStatus::Rule;
                }
            }
            let reason = HandoffReason::Rule {
                rule_id: m.rule_id.clone(),
            };
            policy::apply_actions(&m.actions, reason, &mut trace, &mut decision, &mut webhooks);
            trace.rule = Some(m);
        }
        if let Some(reply) = decision {
            return finish(started, trace, reply, webhooks);
        }

        // 2. The intent model, on the same vector the knowledge search uses.
        let vector = match retriever.embed(text).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "embedding failed; falling back");
                if trace.intent.name.is_none() {
                    trace.intent.status = IntentStatus::Error;
                }
                trace.kb = Some(KbTrace::new(kb, vec![], false).failed(e.code()));
                let reply =
                    self.after_fallbacks(answer::fallback(lang), &mut trace, fallbacks_so_far);
                return finish(started, trace, reply, webhooks);
            }
        };
        if trace.intent.name.is_none() {
            if let Some(active) = self.intents.current() {
                match active.vector(text, &vector).await {
                    Ok(v) => trace.intent = intent::classify(&active.model, &v),
                    Err(e) => {
                        tracing::warn!(error = %e, "intent encoder failed; skipping the intent step");
                        trace.intent.status = IntentStatus::Error;
                    }
                }
            }
        }
        let mut tags = Vec::new();
        if let Some(route) = trace
            .intent
            .name
            .as_deref()
            .and_then(|n| rules.intent_route(n))
        {
            let confident = match (route.min_confidence, trace.intent.probability) {
                (Some(min), Some(p)) if trace.intent.status != IntentStatus::Rule => p >= min,
                _ => true,
            };
            if confident {
                trace.intent.routed = true;
                tags = route.tags.clone();
                let reason = HandoffReason::Intent {
                    intent: route.name.clone(),
                };
                policy::apply_actions(
                    &route.actions,
                    reason,
                    &mut trace,
                    &mut decision,
                    &mut webhooks,
                );
            }
        }
        if let Some(reply) = decision {
            return finish(started, trace, reply, webhooks);
        }

        // 3. Knowledge retrieval (limited to the intent's tags when it has a route); a short
        // follow-up is searched together with the previous question.
        let follow_up = follow_up::search_text(text, previous);
        let (query, vector) = match (&follow_up, previous) {
            (Some(joined), Some(previous)) => match retriever.embed(previous).await {
                Ok(context) => (joined.as_str(), follow_up::blend(&vector, &context)),
                Err(_) => (text, vector),
            },
            _ => (text, vector),
        };
        let mut result = retriever.search(kb, query, &vector, &tags).await;
        let mut widened = false;
        if !tags.is_empty() && matches!(&result, Ok(r) if r.band == Band::None) {
            result = retriever.search(kb, query, &vector, &[]).await;
            widened = true;
        }
        let mut generation = None;
        let reply = match result {
            Ok(r) => {
                let mut kb_trace = KbTrace::new(kb, tags, widened);
                kb_trace.follow_up_of =
                    previous.filter(|_| follow_up.is_some()).map(str::to_string);
                let (reply, kb_trace) = answer::from_retrieval(lang, &r, kb_trace);
                trace.kb = Some(kb_trace);
                generation = generate::input(lang, text, &r, &reply);
                reply
            }
            Err(e) => {
                tracing::warn!(error = %e, "knowledge retrieval failed; falling back");
                trace.kb = Some(KbTrace::new(kb, tags, widened).failed(e.code()));
                answer::fallback(lang)
            }
        };
        // 4. The handoff policy.
        let reply = self.after_fallbacks(reply, &mut trace, fallbacks_so_far);
        let mut decision = finish(started, trace, reply, webhooks);
        decision.generation = generation.filter(|_| self.llm.current().is_some());
        decision
    }

    fn after_fallbacks(
        &self,
        reply: Reply,
        trace: &mut RouteTrace,
        fallbacks_so_far: u32,
    ) -> Reply {
        policy::repeated_fallbacks(
            reply,
            trace,
            fallbacks_so_far,
            self.fallbacks_before_handoff,
        )
    }
}

/// The decision for `reply`, with the trace completed.
fn finish(
    started: Instant,
    mut trace: RouteTrace,
    reply: Reply,
    webhooks: Vec<String>,
) -> Decision {
    trace.decision = reply.kind.clone();
    trace.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    Decision {
        kind: reply.kind,
        reply: reply.text,
        sources: reply.sources,
        quick_replies: reply.quick_replies,
        webhooks,
        trace,
        generation: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use kefu_kb::{Hit, KbError, Retrieval, Thresholds};

    struct Fixed(Band, f32);

    #[async_trait]
    impl Retriever for Fixed {
        async fn embed(&self, _text: &str) -> Result<Vec<f32>, KbError> {
            Ok(vec![1.0, 0.0])
        }

        async fn search(
            &self,
            _kb: &str,
            text: &str,
            _vector: &[f32],
            _tags: &[String],
        ) -> Result<Retrieval, KbError> {
            let hit = |id: &str, q: &str, score: f32| Hit {
                id: id.into(),
                question: q.into(),
                answer: format!("answer to {q}"),
                score,
                lexical: 0.0,
                source: "faq.csv".into(),
                kind: "faq".into(),
                tags: vec![],
                matched: None,
            };
            Ok(Retrieval {
                query: text.into(),
                band: self.0,
                hits: vec![
                    hit("a", "多久发货？", self.1),
                    // A clear leader for `answer`; a close second (two choices) otherwise.
                    hit(
                        "b",
                        "怎么退货？",
                        self.1 - if self.0 == Band::Answer { 0.2 } else { 0.01 },
                    ),
                ],
                thresholds: Thresholds::for_model("multilingual-e5-small"),
                answer_mode: Default::default(),
            })
        }
    }

    fn triage() -> Triage {
        Triage {
            rules: LiveRules::fixed(RuleSet::builtin()),
            intents: Arc::new(IntentSlot::new()),
            kb: "default".into(),
            fallbacks_before_handoff: 2,
            llm: crate::llm::LiveLlm::fixed(None),
        }
    }

    #[tokio::test]
    async fn rules_run_before_the_knowledge_base() {
        let d = triage()
            .decide(&Fixed(Band::Answer, 0.9), "转人工", None, 0)
            .await;
        assert_eq!(d.kind, DecisionKind::Handoff);
        assert!(d.trace.kb.is_none(), "retrieval skipped");
        assert_eq!(
            d.trace.handoff,
            Some(HandoffReason::Rule {
                rule_id: "builtin-handoff".into()
            })
        );
        let d = triage()
            .decide(&Fixed(Band::Answer, 0.9), "hello", None, 0)
            .await;
        assert_eq!(d.kind, DecisionKind::RuleReply);
    }

    #[tokio::test]
    async fn files_alone_get_the_offer_of_a_human_in_the_visitors_language() {
        let t = triage();
        let d = t
            .decide(&Fixed(Band::Answer, 0.9), "", Some("包裹破损了"), 0)
            .await;
        assert_eq!(d.kind, DecisionKind::RuleReply);
        assert!(d.trace.kb.is_none(), "nothing to search for");
        assert!(d.reply.as_deref().unwrap_or("").starts_with("收到您的文件"));
        assert_eq!(d.quick_replies, vec!["转人工"]);
        // The quick reply is itself a handoff request.
        let d = t
            .decide(
                &Fixed(Band::Answer, 0.9),
                "",
                Some("my parcel is broken"),
                0,
            )
            .await;
        assert_eq!(d.quick_replies, vec!["Talk to a human"]);
        let human = t
            .decide(&Fixed(Band::Answer, 0.9), &d.quick_replies[0], None, 0)
            .await;
        assert_eq!(human.kind, DecisionKind::Handoff);
    }

    #[tokio::test]
    async fn bands_map_to_answer_suggest_and_fallback() {
        let t = triage();
        let d = t
            .decide(&Fixed(Band::Answer, 0.8), "几天发货", None, 0)
            .await;
        assert_eq!(d.kind, DecisionKind::Answer);
        assert_eq!(d.reply.as_deref(), Some("answer to 多久发货？"));
        assert_eq!(d.sources[0].id, "a");
        let d = t
            .decide(&Fixed(Band::Suggest, 0.45), "发货退货", None, 0)
            .await;
        assert_eq!(d.kind, DecisionKind::Suggest);
        assert_eq!(d.quick_replies, vec!["多久发货？", "怎么退货？"]);
        let d = t
            .decide(&Fixed(Band::None, 0.1), "what is love", None, 0)
            .await;
        assert_eq!(d.kind, DecisionKind::Fallback);
        assert!(d.reply.as_deref().unwrap_or("").starts_with("Sorry"));
        assert_eq!(d.trace.fallbacks, 1);
        let json = serde_json::to_value(&d.trace).expect("trace");
        assert_eq!(json["kb"]["band"], "none");
        assert_eq!(json["decision"], "fallback");
    }

    #[tokio::test]
    async fn a_short_follow_up_is_searched_with_the_previous_question() {
        let t = triage();
        let d = t
            .decide(
                &Fixed(Band::Answer, 0.8),
                "那退货呢？",
                Some("运费怎么算"),
                0,
            )
            .await;
        let kb = d.trace.kb.expect("retrieval ran");
        assert_eq!(kb.follow_up_of.as_deref(), Some("运费怎么算"));
        let d = t
            .decide(&Fixed(Band::Answer, 0.8), "怎么退货", Some("运费怎么算"), 0)
            .await;
        assert_eq!(d.trace.kb.expect("retrieval ran").follow_up_of, None);
    }

    #[tokio::test]
    async fn repeated_fallbacks_hand_off() {
        let d = triage()
            .decide(&Fixed(Band::None, 0.1), "天气怎么样", None, 1)
            .await;
        assert_eq!(d.kind, DecisionKind::Handoff);
        assert_eq!(
            d.trace.handoff,
            Some(HandoffReason::RepeatedFallback { count: 2 })
        );
        assert_eq!(Lang::detect("天气怎么样"), Lang::Zh);
    }

    fn intent_model() -> kefu_kb::intent::IntentModel {
        use kefu_kb::intent::model::{Dense, ModelMeta};
        let meta: ModelMeta = serde_json::from_value(serde_json::json!({
            "version": "v7", "created_at": 0, "embedding_model": "test", "dim": 2,
            "labels": ["refund", "track_order"], "threshold": 0.6, "calibration": "test",
            "hidden": 0, "data_file": "d", "data_hash": "h", "train_examples": 2,
            "oos_examples": 0, "epochs": 1, "train_seconds": 0.0, "metrics": null
        }))
        .expect("meta");
        // The Fixed retriever's vector [1, 0] is "refund" with probability ~0.95.
        let layer = Dense {
            weight: vec![3.0, 0.0, 0.0, 3.0],
            bias: vec![0.0, 0.0],
            inputs: 2,
            outputs: 2,
        };
        kefu_kb::intent::IntentModel::new(meta, vec![layer]).expect("model")
    }

    #[tokio::test]
    async fn the_intent_model_runs_between_rules_and_retrieval_and_routes() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("rules.toml");
        std::fs::write(
            &path,
            "[[intents]]\nname = \"refund\"\nactions = [{ type = \"handoff\" }, { type = \"webhook\", url = \"http://127.0.0.1:9/h\" }]\n",
        )
        .expect("write");
        let mut t = triage();
        t.rules = LiveRules::fixed(RuleSet::load(&path).expect("rules"));
        // No model yet: retrieval answers.
        let d = t
            .decide(&Fixed(Band::Answer, 0.8), "我要退款", None, 0)
            .await;
        assert_eq!(d.kind, DecisionKind::Answer);
        assert_eq!(d.trace.intent.status, IntentStatus::NoModel);
        // Hot swap in a model: the refund intent hands off before retrieval.
        t.intents.set(Some(intent_model()));
        let d = t
            .decide(&Fixed(Band::Answer, 0.8), "我要退款", None, 0)
            .await;
        assert_eq!(d.kind, DecisionKind::Handoff);
        assert_eq!(
            d.trace.handoff,
            Some(HandoffReason::Intent {
                intent: "refund".into()
            })
        );
        assert_eq!(d.webhooks, vec!["http://127.0.0.1:9/h"]);
        assert!(d.trace.kb.is_none());
        let json = serde_json::to_value(&d.trace).expect("trace");
        assert_eq!(json["intent"]["name"], "refund");
        assert_eq!(json["intent"]["status"], "in_scope");
        assert_eq!(json["intent"]["model"], "v7");
        assert_eq!(json["intent"]["routed"], true);
        // Rules still run first.
        let d = t.decide(&Fixed(Band::Answer, 0.8), "转人工", None, 0).await;
        assert_eq!(d.trace.intent.status, IntentStatus::NoModel);
        assert!(matches!(d.trace.handoff, Some(HandoffReason::Rule { .. })));
        // A higher threshold makes the same message out of scope: retrieval answers.
        let mut strict = intent_model();
        strict.meta.threshold = 0.99;
        t.intents.set(Some(strict));
        let d = t
            .decide(&Fixed(Band::Answer, 0.8), "我要退款", None, 0)
            .await;
        assert_eq!(d.kind, DecisionKind::Answer);
        assert_eq!(d.trace.intent.status, IntentStatus::OutOfScope);
        assert_eq!(d.trace.intent.closest.as_deref(), Some("refund"));
        assert_eq!(d.trace.intent.name, None);
    }

    #[test]
    fn intent_routes_are_validated() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("rules.yaml");
        for (body, needle) in [
            ("intents:\n  - name: refund\n", "needs `actions` or `tags`"),
            (
                "intents:\n  - name: a\n    tags: [x]\n  - name: A\n    tags: [y]\n",
                "listed twice",
            ),
            (
                "intents:\n  - name: a\n    tags: [x]\n    min_confidence: 2\n",
                "min_confidence",
            ),
        ] {
            std::fs::write(&path, body).expect("write");
            let e = RuleSet::load(&path).expect_err(body).to_string();
            assert!(e.contains(needle), "{e}");
        }
        std::fs::write(&path, "intents:\n  - name: Shipping\n    tags: [物流]\n").expect("write");
        let r = RuleSet::load(&path).expect("ok");
        assert_eq!(
            r.intent_route("shipping").map(|r| r.tags.clone()),
            Some(vec!["物流".to_string()])
        );
    }
}
