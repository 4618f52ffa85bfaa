//! The bot's decision for one visitor message: rules first, then the intent model (when trained),
//! then knowledge retrieval with threshold bands, then the handoff policy. Every decision carries a
//! `RouteTrace` saying why.

pub mod batcher;
pub mod follow_up;
pub mod intent;
pub mod rules;

pub use crate::lang::Lang;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use kefu_kb::{Band, KbError, Retrieval};
use kefu_protocol::Source;
use serde::Serialize;

pub use batcher::KbBatcher;
pub use intent::IntentSlot;
pub use rules::{CannedReply, IntentRoute, RuleAction, RuleSet};

/// Where the bot's knowledge comes from (a trait so triage logic is testable without a model):
/// one embedding per message serves the intent model and the knowledge search.
#[async_trait]
pub trait Retriever: Send + Sync {
    /// The query vector of `text`.
    async fn embed(&self, text: &str) -> Result<Vec<f32>, KbError>;
    /// Knowledge search with an embedded query, limited to `tags` when given.
    async fn search(
        &self,
        kb: &str,
        text: &str,
        vector: &[f32],
        tags: &[String],
    ) -> Result<Retrieval, KbError>;
    /// Embeds and searches the whole knowledge base.
    async fn retrieve(&self, kb: &str, text: &str) -> Result<Retrieval, KbError> {
        let v = self.embed(text).await?;
        self.search(kb, text, &v, &[]).await
    }
}

#[async_trait]
impl Retriever for KbBatcher {
    async fn embed(&self, text: &str) -> Result<Vec<f32>, KbError> {
        KbBatcher::embed(self, text).await
    }

    async fn search(
        &self,
        kb: &str,
        text: &str,
        vector: &[f32],
        tags: &[String],
    ) -> Result<Retrieval, KbError> {
        KbBatcher::search(self, kb, text, vector, tags).await
    }
}

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
    /// `rule` (a rule set it), `in_scope` / `out_of_scope` (the model), `no_model`, or `error`.
    pub status: &'static str,
}

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
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HitTrace {
    pub id: String,
    pub question: String,
    pub score: f32,
    pub source: String,
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
}

/// Settings and rules for triage.
pub struct Triage {
    pub rules: RuleSet,
    /// The active intent model (empty until one is trained and activated).
    pub intents: Arc<IntentSlot>,
    /// Knowledge base the bot answers from.
    pub kb: String,
    /// Consecutive fallbacks that hand the conversation off (0 = never).
    pub fallbacks_before_handoff: u32,
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
        let started = Instant::now();
        let lang = Lang::detect(text);
        let mut trace = RouteTrace {
            lang,
            rule: None,
            intent: IntentTrace {
                name: None,
                probability: None,
                closest: None,
                threshold: None,
                model: None,
                routed: false,
                status: "no_model",
            },
            kb: None,
            decision: DecisionKind::Fallback,
            handoff: None,
            fallbacks: 0,
            elapsed_ms: 0.0,
        };
        let mut webhooks = Vec::new();
        let mut decision = None;

        // 1. Rules.
        if let Some(m) = self.rules.evaluate(text) {
            for action in &m.actions {
                if let RuleAction::Intent { name } = action {
                    trace.intent.name = Some(name.trim().to_lowercase());
                    trace.intent.status = "rule";
                }
            }
            let reason = HandoffReason::Rule {
                rule_id: m.rule_id.clone(),
            };
            apply_actions(&m.actions, reason, &mut trace, &mut decision, &mut webhooks);
            trace.rule = Some(m);
        }
        if let Some((kind, reply)) = decision {
            return finish(started, trace, kind, reply, webhooks);
        }

        // 2. The intent model, on the same vector the knowledge search uses.
        let vector = match retriever.embed(text).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "embedding failed; falling back");
                trace.intent.status = if trace.intent.name.is_some() {
                    "rule"
                } else {
                    "error"
                };
                trace.kb = Some(KbTrace {
                    kb: self.kb.clone(),
                    tags: vec![],
                    widened: false,
                    band: None,
                    mode: None,
                    thresholds: None,
                    follow_up_of: None,
                    hits: vec![],
                    error: Some(e.code().to_string()),
                });
                return self.finish_policy(
                    started,
                    trace,
                    fallback(lang),
                    webhooks,
                    fallbacks_so_far,
                );
            }
        };
        if trace.intent.name.is_none() {
            if let Some(model) = self.intents.current() {
                let p = model.predict(&vector);
                metrics::counter!(
                    "kefu_intent_predictions_total",
                    "in_scope" => if p.in_scope { "true" } else { "false" }
                )
                .increment(1);
                trace.intent = IntentTrace {
                    name: p.in_scope.then(|| p.top_intent.clone()),
                    probability: Some(p.confidence),
                    closest: Some(p.top_intent),
                    threshold: Some(model.meta.threshold),
                    model: Some(model.meta.version.clone()),
                    routed: false,
                    status: if p.in_scope {
                        "in_scope"
                    } else {
                        "out_of_scope"
                    },
                };
            }
        }
        let mut tags = Vec::new();
        if let Some(route) = trace
            .intent
            .name
            .as_deref()
            .and_then(|n| self.rules.intent_route(n))
        {
            let confident = match (route.min_confidence, trace.intent.probability) {
                (Some(min), Some(p)) if trace.intent.status != "rule" => p >= min,
                _ => true,
            };
            if confident {
                trace.intent.routed = true;
                tags = route.tags.clone();
                let reason = HandoffReason::Intent {
                    intent: route.name.clone(),
                };
                apply_actions(
                    &route.actions,
                    reason,
                    &mut trace,
                    &mut decision,
                    &mut webhooks,
                );
            }
        }
        if let Some((kind, reply)) = decision {
            return finish(started, trace, kind, reply, webhooks);
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
        let mut result = retriever.search(&self.kb, query, &vector, &tags).await;
        let mut widened = false;
        if !tags.is_empty() && matches!(&result, Ok(r) if r.band == Band::None) {
            result = retriever.search(&self.kb, query, &vector, &[]).await;
            widened = true;
        }
        let out = match result {
            Ok(r) => {
                let follow_up_of = previous.filter(|_| follow_up.is_some());
                self.decide_from_retrieval(lang, &r, &tags, widened, follow_up_of, &mut trace)
            }
            Err(e) => {
                tracing::warn!(error = %e, "knowledge retrieval failed; falling back");
                trace.kb = Some(KbTrace {
                    kb: self.kb.clone(),
                    tags,
                    widened,
                    band: None,
                    mode: None,
                    thresholds: None,
                    follow_up_of: None,
                    hits: vec![],
                    error: Some(e.code().to_string()),
                });
                fallback(lang)
            }
        };
        self.finish_policy(started, trace, out, webhooks, fallbacks_so_far)
    }

    /// Step 4, the handoff policy (repeated fallbacks), then the decision.
    fn finish_policy(
        &self,
        started: Instant,
        mut trace: RouteTrace,
        mut out: (DecisionKind, Option<String>, Vec<Source>, Vec<String>),
        webhooks: Vec<String>,
        fallbacks_so_far: u32,
    ) -> Decision {
        trace.fallbacks = if out.0 == DecisionKind::Fallback {
            fallbacks_so_far + 1
        } else {
            0
        };
        if out.0 == DecisionKind::Fallback
            && self.fallbacks_before_handoff > 0
            && trace.fallbacks >= self.fallbacks_before_handoff
        {
            trace.handoff = Some(HandoffReason::RepeatedFallback {
                count: trace.fallbacks,
            });
            out = (DecisionKind::Handoff, None, vec![], vec![]);
        }
        trace.decision = out.0.clone();
        trace.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        Decision {
            kind: out.0,
            reply: out.1,
            sources: out.2,
            quick_replies: out.3,
            webhooks,
            trace,
        }
    }

    #[allow(clippy::type_complexity)]
    fn decide_from_retrieval(
        &self,
        lang: Lang,
        r: &Retrieval,
        tags: &[String],
        widened: bool,
        follow_up_of: Option<&str>,
        trace: &mut RouteTrace,
    ) -> (DecisionKind, Option<String>, Vec<Source>, Vec<String>) {
        let reply = kefu_kb::answer::compose(&r.query, lang, &r.hits, &r.thresholds, r.answer_mode);
        trace.kb = Some(KbTrace {
            kb: self.kb.clone(),
            tags: tags.to_vec(),
            widened,
            band: Some(reply.band),
            mode: Some(reply.mode),
            thresholds: Some(r.thresholds),
            follow_up_of: follow_up_of.map(str::to_string),
            hits: r
                .hits
                .iter()
                .map(|h| HitTrace {
                    id: h.id.clone(),
                    question: h.question.clone(),
                    score: h.score,
                    source: h.source.clone(),
                })
                .collect(),
            error: None,
        });
        let kind = match reply.band {
            Band::Answer => DecisionKind::Answer,
            Band::Suggest => DecisionKind::Suggest,
            Band::None => return fallback(lang),
        };
        let Some(text) = reply.text else {
            return fallback(lang);
        };
        let sources = reply
            .citations
            .into_iter()
            .map(|c| Source {
                id: c.id,
                title: c.title,
                source: c.source,
                score: c.score,
            })
            .collect();
        (kind, Some(text), sources, reply.quick_replies)
    }
}

/// Applies rule or intent-route actions: the first reply wins, a handoff overrides it, webhooks
/// accumulate.
fn apply_actions(
    actions: &[RuleAction],
    reason: HandoffReason,
    trace: &mut RouteTrace,
    decision: &mut Option<(DecisionKind, Option<String>)>,
    webhooks: &mut Vec<String>,
) {
    for action in actions {
        match action {
            RuleAction::Reply { text } if decision.is_none() => {
                *decision = Some((DecisionKind::RuleReply, Some(text.clone())));
            }
            RuleAction::Handoff => {
                trace.handoff = Some(reason.clone());
                *decision = Some((DecisionKind::Handoff, None));
            }
            RuleAction::Webhook { url } => webhooks.push(url.clone()),
            RuleAction::Reply { .. } | RuleAction::Intent { .. } => {}
        }
    }
}

/// A decision made by a rule or an intent route (no retrieval).
fn finish(
    started: Instant,
    mut trace: RouteTrace,
    kind: DecisionKind,
    reply: Option<String>,
    webhooks: Vec<String>,
) -> Decision {
    trace.decision = kind.clone();
    trace.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    Decision {
        kind,
        reply,
        sources: vec![],
        quick_replies: vec![],
        webhooks,
        trace,
    }
}

fn fallback(lang: Lang) -> (DecisionKind, Option<String>, Vec<Source>, Vec<String>) {
    (
        DecisionKind::Fallback,
        Some(
            lang.pick(
                "抱歉，我暂时无法回答这个问题。您可以换个说法，或输入“转人工”联系人工客服。",
                "Sorry, I don't have an answer for that yet. You can rephrase, or type \"human\" to reach a person.",
            )
            .to_string(),
        ),
        vec![],
        vec![],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_kb::{Hit, Thresholds};

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
                source: "faq.csv".into(),
                kind: "faq".into(),
                tags: vec![],
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
            rules: RuleSet::builtin(),
            intents: Arc::new(IntentSlot::new()),
            kb: "default".into(),
            fallbacks_before_handoff: 2,
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
        t.rules = RuleSet::load(&path).expect("rules");
        // No model yet: retrieval answers.
        let d = t
            .decide(&Fixed(Band::Answer, 0.8), "我要退款", None, 0)
            .await;
        assert_eq!(d.kind, DecisionKind::Answer);
        assert_eq!(d.trace.intent.status, "no_model");
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
        assert_eq!(d.trace.intent.status, "no_model");
        assert!(matches!(d.trace.handoff, Some(HandoffReason::Rule { .. })));
        // A higher threshold makes the same message out of scope: retrieval answers.
        let mut strict = intent_model();
        strict.meta.threshold = 0.99;
        t.intents.set(Some(strict));
        let d = t
            .decide(&Fixed(Band::Answer, 0.8), "我要退款", None, 0)
            .await;
        assert_eq!(d.kind, DecisionKind::Answer);
        assert_eq!(d.trace.intent.status, "out_of_scope");
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
