//! The bot's turn after a visitor message: triage decides, and the reply (or the handoff) is
//! committed only while the bot still owns the conversation. Turns are durable: the visitor
//! message records its pending turn in the same transaction, the reply ends it, and turns a crash
//! cut short are finished by a sweeper on any node.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kefu_protocol::{AuthorKind, ConversationState, ServerFrame};

use super::{ConversationError, Conversations};
use crate::llm::prompt::Turn as HistoryTurn;
use crate::store::{
    new_id, now_ms, Append, BotTurn, FallbackCount, NewMessage, PendingTurn, Require, StoredMessage,
};
use crate::triage::{Decision, DecisionKind, HandoffReason};

/// A pending turn untouched this long is taken to be lost (its node died) and is finished.
pub const STALE_TURN_AFTER: Duration = Duration::from_secs(15);
/// Messages looked back through for the visitor's previous question and the LLM's context.
const PREVIOUS_LOOKBACK: u32 = 6;
/// How often the sweeper looks for lost turns.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// One visitor message for the bot to answer.
pub(super) struct Turn {
    pub conversation_id: String,
    /// The visitor message's seq.
    pub seq: u64,
    pub text: String,
    /// Consecutive fallbacks before this message.
    pub fallbacks_so_far: u32,
    pub started: Instant,
}

impl Conversations {
    /// Runs a turn in the background, logging a failure (the turn stays pending and the sweeper
    /// retries it).
    pub(super) fn spawn_turn(self: &Arc<Self>, turn: Turn) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let conv = turn.conversation_id.clone();
            if let Err(e) = this.bot_turn(turn).await {
                tracing::error!(conversation = %conv, error = %e, "bot turn failed");
            }
        });
    }

    async fn bot_turn(self: &Arc<Self>, turn: Turn) -> Result<(), ConversationError> {
        let lock = self.bot_turn_lock(&turn.conversation_id);
        let guard = lock.lock().await;
        let recent = self.recent_messages(&turn).await;
        let previous = recent
            .iter()
            .rev()
            .find(|m| m.author_kind == AuthorKind::Visitor)
            .map(|m| m.text.as_str());
        let decision = self
            .triage
            .decide(
                self.retriever.as_ref(),
                &turn.text,
                previous,
                turn.fallbacks_so_far,
            )
            .await;
        let decision = self.generate(&turn, decision, &recent).await;
        metrics::counter!("kefu_triage_decisions_total", "decision" => decision_label(&decision.kind))
            .increment(1);
        let trace = serde_json::to_value(&decision.trace).ok();
        // Webhooks are recorded before the turn ends; if that fails, the turn stays pending and
        // the sweeper runs it again.
        let result = if let Err(e) = self.enqueue_webhooks(&turn, &decision).await {
            Err(e)
        } else if decision.kind == DecisionKind::Handoff {
            let reason = decision
                .trace
                .handoff
                .clone()
                .unwrap_or(HandoffReason::Requested);
            self.handoff_from_bot(&turn.conversation_id, reason, decision.trace.lang, trace)
                .await
        } else {
            self.bot_reply(&turn, decision, trace).await
        };
        metrics::histogram!("kefu_bot_reply_seconds").record(turn.started.elapsed().as_secs_f64());
        drop(guard);
        self.release_bot_turn_lock(&turn.conversation_id, lock);
        result
    }

    /// The messages before this turn's, oldest first (a short follow-up is searched with the
    /// visitor's previous question; an LLM sees them as the conversation so far).
    async fn recent_messages(&self, turn: &Turn) -> Vec<StoredMessage> {
        match self
            .store
            .messages_before(&turn.conversation_id, turn.seq, PREVIOUS_LOOKBACK)
            .await
        {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the conversation so far; answering alone");
                vec![]
            }
        }
    }

    /// The LLM step when the decision asks for it: its text reaches the conversation's followers
    /// as `message_delta` frames while it is written; the committed reply replaces the draft.
    async fn generate(
        &self,
        turn: &Turn,
        decision: Decision,
        recent: &[StoredMessage],
    ) -> Decision {
        if decision.generation.is_none() {
            return decision;
        }
        let history: Vec<HistoryTurn> = recent
            .iter()
            .filter_map(|m| {
                let from = match m.author_kind {
                    AuthorKind::Visitor => "visitor",
                    AuthorKind::Bot => "assistant",
                    AuthorKind::Agent => "agent",
                    AuthorKind::System => return None,
                };
                Some(HistoryTurn {
                    from,
                    text: m.text.clone(),
                })
            })
            .collect();
        let stream_id = new_id("s_");
        let conversation_id = turn.conversation_id.clone();
        let mut on_delta = |text: &str| {
            let frame = ServerFrame::MessageDelta {
                conversation_id: conversation_id.clone(),
                stream_id: stream_id.clone(),
                text: text.to_string(),
            };
            if let Ok(json) = serde_json::to_string(&frame) {
                self.relay(&conversation_id, &json, None);
            }
        };
        self.triage
            .generate(decision, &history, turn.fallbacks_so_far, &mut on_delta)
            .await
    }

    async fn bot_reply(
        &self,
        turn: &Turn,
        decision: Decision,
        trace: Option<serde_json::Value>,
    ) -> Result<(), ConversationError> {
        let Some(text) = decision.reply else {
            self.store
                .finish_turn(&turn.conversation_id, turn.seq)
                .await?;
            return Ok(());
        };
        let msg = NewMessage {
            sources: decision.sources,
            quick_replies: decision.quick_replies,
            route_trace: trace,
            fallbacks: if decision.kind == DecisionKind::Fallback {
                FallbackCount::Increment
            } else {
                FallbackCount::Reset
            },
            bot_turn: BotTurn::Finish(turn.seq),
            outcome: Some(decision.kind.as_str()),
            ..NewMessage::text(AuthorKind::Bot, text)
        };
        // Only while the bot still owns the conversation: an agent may have taken it meanwhile.
        match self
            .store
            .append(
                &turn.conversation_id,
                Require::State(ConversationState::Bot),
                &msg,
            )
            .await?
        {
            Append::Committed { message, .. } => {
                metrics::counter!("kefu_messages_total", "author" => "bot").increment(1);
                self.broadcast_message(&message);
                self.announce(&turn.conversation_id).await;
            }
            Append::Refused(c) => {
                tracing::debug!(conversation = %c.id, state = ?c.state, "bot reply dropped: no longer the owner");
            }
            Append::Duplicate(_) | Append::UnknownAttachment => {}
        }
        Ok(())
    }

    /// Finishes the bot turns whose node died before answering (also this node's own, after a
    /// restart). Runs until the process ends.
    pub fn start_turn_sweeper(self: &Arc<Self>) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            loop {
                every.tick().await;
                if let Err(e) = this.sweep_turns().await {
                    tracing::warn!(error = %e, "looking for unfinished bot turns failed");
                }
            }
        });
    }

    /// Finishes every stale pending turn this node can lease; returns how many it took.
    pub async fn sweep_turns(self: &Arc<Self>) -> Result<usize, ConversationError> {
        let before = now_ms() - STALE_TURN_AFTER.as_millis() as i64;
        let stale = self.store.stale_turns(before, 100).await?;
        let mut taken = 0;
        for pending in stale {
            if !self.store.lease_turn(&pending).await? {
                continue; // another node took it
            }
            taken += 1;
            self.resume_turn(pending).await?;
        }
        Ok(taken)
    }

    async fn resume_turn(self: &Arc<Self>, pending: PendingTurn) -> Result<(), ConversationError> {
        let id = &pending.conversation_id;
        let message = self.store.message(id, pending.seq).await?;
        let (Some(c), Some(m)) = (
            self.store.conversation(id).await?,
            message.filter(|m| m.author_kind == AuthorKind::Visitor),
        ) else {
            // Nothing the bot can answer (gone, or not a visitor message).
            self.store.finish_turn(id, pending.seq).await?;
            return Ok(());
        };
        tracing::info!(conversation = %id, seq = pending.seq, "finishing a bot turn cut short");
        metrics::counter!("kefu_bot_turns_resumed_total").increment(1);
        self.spawn_turn(Turn {
            conversation_id: id.clone(),
            seq: pending.seq,
            text: m.text,
            fallbacks_so_far: c.bot_fallbacks,
            started: Instant::now(),
        });
        Ok(())
    }

    fn bot_turn_lock(&self, conversation_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.bot_turns.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(map.entry(conversation_id.to_string()).or_default())
    }

    fn release_bot_turn_lock(&self, conversation_id: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut map = self.bot_turns.lock().unwrap_or_else(|p| p.into_inner());
        drop(lock);
        if map
            .get(conversation_id)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            map.remove(conversation_id);
        }
    }
}

fn decision_label(kind: &DecisionKind) -> &'static str {
    match kind {
        DecisionKind::RuleReply => "rule_reply",
        DecisionKind::Answer => "answer",
        DecisionKind::Suggest => "suggest",
        DecisionKind::Fallback => "fallback",
        DecisionKind::Handoff => "handoff",
    }
}
