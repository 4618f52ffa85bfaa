//! `kefu kb ask` and the answering half of `kefu kb eval`: the chat's own triage (rules, the
//! active intent model, retrieval, bands and composition) run over a knowledge base without a
//! server, each question as the first message of a new conversation.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use kefu_kb::{KbError, Knowledge, Retrieval, Thresholds};

use crate::config::Config;
pub use crate::triage::ask_reply::{AskCitation, AskReply, Asked};
use crate::triage::batcher::TOP_K;
use crate::triage::{LiveRules, Retriever, Triage};

/// Questions embedded per batch by `ask_many`.
const EMBED_BATCH: usize = 64;

/// Knowledge search with query vectors embedded ahead in batches.
struct Prefetched<'a> {
    knowledge: &'a Knowledge,
    vectors: Mutex<HashMap<String, Vec<f32>>>,
    /// Thresholds tried instead of the knowledge base's own (`kefu kb eval --tune`).
    thresholds: Mutex<Option<Thresholds>>,
}

#[async_trait]
impl Retriever for Prefetched<'_> {
    async fn embed(&self, text: &str) -> Result<Vec<f32>, KbError> {
        let known = self.vectors.lock().ok().and_then(|m| m.get(text).cloned());
        match known {
            Some(v) => Ok(v),
            None => Ok(self
                .knowledge
                .embed_queries(&[text.to_string()])
                .await?
                .pop()
                .unwrap_or_default()),
        }
    }

    async fn search(
        &self,
        kb: &str,
        text: &str,
        vector: &[f32],
        tags: &[String],
    ) -> Result<Retrieval, KbError> {
        let mut r = self.knowledge.search(kb, text, vector, TOP_K, tags).await?;
        if let Some(t) = self.thresholds.lock().ok().and_then(|t| *t) {
            r.thresholds = t;
            r.band = kefu_kb::answer::plan(&r.hits, &t, None, r.answer_mode).band();
        }
        Ok(r)
    }
}

/// The chat's triage over one knowledge base.
pub struct Asker<'a> {
    triage: Triage,
    retriever: Prefetched<'a>,
    kb_mode: &'static str,
    /// The knowledge base's own thresholds (as read when the asker was built).
    kb_thresholds: Thresholds,
}

impl<'a> Asker<'a> {
    /// Triage as `kefu serve` builds it: the rules file (or the built-in rules) and the active
    /// intent model.
    pub async fn new(
        config: &Config,
        knowledge: &'a Knowledge,
        kb: &str,
        rules: Option<&Path>,
        fallbacks_before_handoff: u32,
    ) -> anyhow::Result<Self> {
        let info = knowledge
            .store()
            .get_kb(kb)
            .await?
            .ok_or_else(|| KbError::KbNotFound(kb.to_string()))?;
        let rules = LiveRules::open(rules, &config.data_dir)?;
        let intents = super::intent_slot(config, Arc::clone(knowledge.embedder()));
        let registry = kefu_kb::intent::Registry::new(&config.data_dir);
        super::intent::shared_registry(config, &registry).await?;
        intents.load_active(&registry, knowledge.embedder().model_name());
        Ok(Self {
            triage: Triage {
                rules,
                intents: Arc::new(intents),
                kb: kb.to_string(),
                fallbacks_before_handoff,
                llm: crate::llm::LiveLlm::fixed(None),
            },
            retriever: Prefetched {
                knowledge,
                vectors: Mutex::new(HashMap::new()),
                thresholds: Mutex::new(None),
            },
            kb_mode: info.answer_mode.as_str(),
            kb_thresholds: Knowledge::thresholds(&info),
        })
    }

    /// Knowledge bases in answer mode `llm` answer through this backend.
    pub fn with_llm(mut self, llm: Option<crate::llm::LlmClient>) -> Self {
        self.triage.llm = crate::llm::LiveLlm::fixed(llm);
        self
    }

    /// Answers one question, as the first of its conversation or after `previous` (its latency
    /// includes embedding it alone).
    pub async fn ask(&self, text: &str, previous: Option<&str>) -> Asked {
        let started = Instant::now();
        let decision = self.triage.decide(&self.retriever, text, previous, 0).await;
        let history: Vec<crate::llm::prompt::Turn> = previous
            .map(|p| crate::llm::prompt::Turn {
                from: "visitor",
                text: p.to_string(),
            })
            .into_iter()
            .collect();
        let decision = self
            .triage
            .generate(decision, &history, 0, &mut |_| {})
            .await;
        let latency_ms = started.elapsed().as_secs_f64() * 1e3;
        Asked {
            reply: AskReply::of(text, &decision, self.kb_mode),
            decision,
            latency_ms,
        }
    }

    /// Answers with `thresholds` instead of the knowledge base's own (`None`: its own again).
    pub fn try_thresholds(&self, thresholds: Option<Thresholds>) {
        if let Ok(mut t) = self.retriever.thresholds.lock() {
            *t = thresholds;
        }
    }

    /// The thresholds the knowledge base answers with.
    pub fn thresholds(&self) -> Thresholds {
        self.kb_thresholds
    }

    /// Embeds `texts` ahead, in batches, and keeps their vectors for every later `ask`.
    pub async fn prefetch(&self, texts: &[String]) -> anyhow::Result<()> {
        for group in texts.chunks(EMBED_BATCH) {
            let vectors = self.retriever.knowledge.embed_queries(group).await?;
            if let Ok(mut m) = self.retriever.vectors.lock() {
                m.extend(group.iter().cloned().zip(vectors));
            }
        }
        Ok(())
    }

    /// Answers many questions, embedding them in batches first; with `conversation`, each is
    /// asked after the one before it (short follow-ups read it), else each on its own.
    pub async fn ask_many(
        &self,
        texts: &[String],
        conversation: bool,
    ) -> anyhow::Result<Vec<Asked>> {
        let mut previous: Option<&str> = None;
        let mut out = Vec::with_capacity(texts.len());
        for group in texts.chunks(EMBED_BATCH) {
            let vectors = self.retriever.knowledge.embed_queries(group).await?;
            if let Ok(mut m) = self.retriever.vectors.lock() {
                m.clear();
                m.extend(group.iter().cloned().zip(vectors));
            }
            for text in group {
                out.push(self.ask(text, previous).await);
                if conversation {
                    previous = Some(text);
                }
            }
        }
        Ok(out)
    }
}
