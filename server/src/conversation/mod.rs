//! Conversations: the facade the WebSocket and REST layers call. Visitor and agent messages are
//! committed with per-conversation seqs and `client_msg_id` dedupe; the bot answers after each
//! visitor message (`bot_turn`); ownership changes come from `handoff` and are published to live
//! connections here and on other nodes (`fanout`).

mod bot_turn;
mod fanout;
pub mod hub;
pub mod signature;
mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use kefu_kb::{KbError, Retrieval};
use kefu_protocol::{AuthorKind, ConversationState, ConversationSummary, ServerFrame};

use crate::accounts::Principal;
use crate::cluster::Cluster;
use crate::handoff::context::{summary_of, Transcript};
use crate::handoff::{Handoff, HandoffError};
use crate::lang::Lang;
use crate::store::{
    Append, BotTurn, Conversation, NewMessage, Require, Store, StoreError, StoredMessage,
};
use crate::triage::{CannedReply, HandoffReason, Retriever, Triage};
pub use bot_turn::STALE_TURN_AFTER;
pub use hub::{ConnectionHandle, Hub, Outbound, Role};
pub use webhook::{AttemptFailure, ChannelSender};

/// Why a conversation operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    #[error("conversation not found")]
    NotFound,
    #[error("this token does not reach that conversation")]
    Forbidden,
    #[error("the conversation is owned by another agent or not by an agent; claim it first")]
    NotOwner,
    #[error("the conversation is resolved and takes no new messages")]
    Closed,
    /// An attachment named in a message is not the sender's unsent upload to this conversation.
    #[error("unknown attachment: upload it to this conversation first, and send it once")]
    UnknownAttachment,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Knowledge(#[from] KbError),
    /// A refused or failed ownership change (claim, transfer, hand back, resolve).
    #[error(transparent)]
    Handoff(#[from] HandoffError),
}

type Result<T> = std::result::Result<T, ConversationError>;

/// The conversation service shared by the WebSocket and REST layers.
pub struct Conversations {
    store: Store,
    hub: Hub,
    handoff: Handoff,
    triage: Triage,
    retriever: Arc<dyn Retriever>,
    /// Serialises bot turns per conversation so replies follow questions in order.
    bot_turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    webhooks: OnceLock<webhook::WebhookClient>,
    /// Wakes the webhook worker when a delivery is recorded.
    webhook_due: tokio::sync::Notify,
    /// The link to other nodes (scale-out), when configured.
    cluster: OnceLock<Cluster>,
    /// Sends replies queued for users of other channels (WeChat).
    channel_sender: OnceLock<Arc<dyn webhook::ChannelSender>>,
}

impl Conversations {
    pub fn new(
        store: Store,
        triage: Triage,
        retriever: Arc<dyn Retriever>,
        handoff: Handoff,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            hub: Hub::new(),
            handoff,
            triage,
            retriever,
            bot_turns: Mutex::new(HashMap::new()),
            webhooks: OnceLock::new(),
            webhook_due: tokio::sync::Notify::new(),
            cluster: OnceLock::new(),
            channel_sender: OnceLock::new(),
        })
    }

    /// The conversation, if `who` may read it: visitors their own, agents and admins any.
    pub async fn authorize(&self, who: &Principal, conversation_id: &str) -> Result<Conversation> {
        let c = self
            .store
            .conversation(conversation_id)
            .await?
            .ok_or(ConversationError::NotFound)?;
        match who {
            Principal::Visitor { visitor_id, .. } if *visitor_id != c.visitor_id => {
                Err(ConversationError::Forbidden)
            }
            _ => Ok(c),
        }
    }

    // ----- live connections -----

    /// Registers a live connection; its receiver gets what the connection follows.
    pub fn connect(&self, role: Role) -> (ConnectionHandle, tokio::sync::mpsc::Receiver<Outbound>) {
        self.hub.connect(role)
    }

    pub fn disconnect(&self, connection_id: u64) {
        self.hub.disconnect(connection_id);
    }

    /// Live visitor and agent connections on this node.
    pub fn live_counts(&self) -> (usize, usize) {
        self.hub.counts()
    }

    /// Starts following a conversation `who` may read; returns its current `state` frame (the
    /// caller replays what the connection missed).
    pub async fn subscribe(
        &self,
        who: &Principal,
        handle: &ConnectionHandle,
        conversation_id: &str,
    ) -> Result<ServerFrame> {
        let c = self.authorize(who, conversation_id).await?;
        self.hub.follow(handle, conversation_id);
        Ok(ServerFrame::State {
            agent: self.handoff.agent_name(c.agent_id.as_deref()).await?,
            conversation_id: c.id,
            state: c.state,
            offline: c.offline,
        })
    }

    // ----- reading -----

    /// Messages after `after_seq` in a conversation `who` may read, oldest first.
    pub async fn messages_after(
        &self,
        who: &Principal,
        conversation_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<(Conversation, Vec<StoredMessage>)> {
        let c = self.authorize(who, conversation_id).await?;
        let page = self
            .store
            .messages_after(conversation_id, after_seq, limit)
            .await?;
        Ok((c, page))
    }

    /// Up to `limit` messages before `before_seq` in a conversation `who` may read, oldest first.
    pub async fn messages_before(
        &self,
        who: &Principal,
        conversation_id: &str,
        before_seq: u64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>> {
        self.authorize(who, conversation_id).await?;
        Ok(self
            .store
            .messages_before(conversation_id, before_seq, limit)
            .await?)
    }

    /// The console's view of one conversation.
    pub async fn summary(&self, conversation_id: &str) -> Result<Option<ConversationSummary>> {
        Ok(self
            .store
            .conversation_listing_one(conversation_id)
            .await?
            .map(summary_of))
    }

    /// The console's queue: conversations in `states`, newest first.
    pub async fn list(
        &self,
        states: &[ConversationState],
        limit: u32,
    ) -> Result<Vec<ConversationSummary>> {
        Ok(self
            .store
            .conversation_listing(states, limit)
            .await?
            .into_iter()
            .map(summary_of)
            .collect())
    }

    /// The agent's context pack: summary and whole transcript with route traces.
    pub async fn transcript(&self, conversation_id: &str) -> Result<Transcript> {
        crate::handoff::context::transcript(&self.store, conversation_id)
            .await?
            .ok_or(ConversationError::NotFound)
    }

    /// Knowledge-base answers for the visitor's last question (not a typed handoff request), for
    /// the agent to reuse.
    pub async fn suggestions(&self, conversation_id: &str) -> Result<Option<(String, Retrieval)>> {
        if self.store.conversation(conversation_id).await?.is_none() {
            return Err(ConversationError::NotFound);
        }
        let Some(question) = self.store.last_visitor_question(conversation_id).await? else {
            return Ok(None);
        };
        let r = self.retriever.retrieve(&self.triage.kb, &question).await?;
        Ok(Some((question, r)))
    }

    /// The bot's answer to `text` from knowledge base `kb`, as the first message of a new
    /// conversation would get it (rules, the intent model, retrieval, the answer mode, the LLM
    /// when configured), without a conversation: the operator's "try a question".
    pub async fn try_question(&self, kb: &str, text: &str) -> crate::triage::Decision {
        let decision = self
            .triage
            .decide_in(kb, self.retriever.as_ref(), text, None, 0)
            .await;
        self.triage.generate(decision, &[], 0, &mut |_| {}).await
    }

    /// Records the visitor's rating (1–5, optional comment) of their conversation; a new rating
    /// replaces the earlier one.
    pub async fn rate(
        &self,
        who: &Principal,
        conversation_id: &str,
        score: u8,
        comment: Option<&str>,
    ) -> Result<crate::store::Rating> {
        if !matches!(who, Principal::Visitor { .. }) {
            return Err(ConversationError::Forbidden);
        }
        self.authorize(who, conversation_id).await?;
        let rating = self.store.rate(conversation_id, score, comment).await?;
        metrics::counter!("kefu_csat_ratings_total", "score" => score.to_string()).increment(1);
        Ok(rating)
    }

    /// The visitor's rating of a conversation, if any.
    pub async fn rating(&self, conversation_id: &str) -> Result<Option<crate::store::Rating>> {
        Ok(self.store.rating(conversation_id).await?)
    }

    /// Canned replies from the rules file.
    pub fn canned(&self) -> Vec<CannedReply> {
        self.triage.rules.current().canned().to_vec()
    }

    /// The LLM backend answer mode `llm` writes with, when one is configured.
    pub fn llm(&self) -> &Arc<crate::llm::LiveLlm> {
        &self.triage.llm
    }

    /// The rules in force and their file (the admin API reads and replaces them).
    pub fn rules(&self) -> &Arc<crate::triage::LiveRules> {
        &self.triage.rules
    }

    /// Every agent with its load; `online` says who has a console open.
    pub async fn agents_with_load(&self) -> Result<Vec<crate::handoff::StaffStatus>> {
        Ok(self.handoff.agents_with_load().await?)
    }

    // ----- visitors -----

    /// Commits a visitor message (or returns the one already committed with that
    /// `client_msg_id`) with the visitor's uploads named in `attachments`, then lets the bot
    /// answer while it owns the conversation. The bot's turn is recorded in the same transaction,
    /// so a crash before the reply does not lose it.
    pub async fn visitor_send(
        self: &Arc<Self>,
        who: &Principal,
        conversation_id: &str,
        client_msg_id: &str,
        text: &str,
        attachments: &[String],
    ) -> Result<StoredMessage> {
        let c = self.authorize(who, conversation_id).await?;
        let Principal::Visitor { visitor_id, .. } = who else {
            return Err(ConversationError::Forbidden);
        };
        if c.state == ConversationState::Resolved {
            return Err(ConversationError::Closed);
        }
        let started = Instant::now();
        let msg = NewMessage {
            author_id: Some(visitor_id.clone()),
            client_msg_id: Some(client_msg_id.to_string()),
            bot_turn: BotTurn::Start,
            attachments: attachments.to_vec(),
            ..NewMessage::text(AuthorKind::Visitor, text)
        };
        match self
            .store
            .append(conversation_id, Require::Open, &msg)
            .await?
        {
            Append::Committed {
                message,
                bot_fallbacks,
                state,
            } => {
                metrics::counter!("kefu_messages_total", "author" => "visitor").increment(1);
                self.broadcast_message(&message);
                if state == ConversationState::Bot {
                    self.spawn_turn(bot_turn::Turn {
                        conversation_id: conversation_id.to_string(),
                        seq: message.seq,
                        text: text.to_string(),
                        fallbacks_so_far: bot_fallbacks,
                        started,
                    });
                }
                self.announce(conversation_id).await;
                Ok(message)
            }
            Append::Duplicate(m) => Ok(m),
            Append::Refused(_) => Err(ConversationError::Closed),
            Append::UnknownAttachment => Err(ConversationError::UnknownAttachment),
        }
    }

    /// The visitor asked for a human.
    pub async fn request_human(
        self: &Arc<Self>,
        who: &Principal,
        conversation_id: &str,
    ) -> Result<()> {
        let c = self.authorize(who, conversation_id).await?;
        match c.state {
            ConversationState::Bot => {
                let lang = self.handoff.lang_of(conversation_id).await?;
                self.handoff_from_bot(conversation_id, HandoffReason::Requested, lang, None)
                    .await
            }
            ConversationState::Resolved => Err(ConversationError::Closed),
            // Already waiting for or talking to a human.
            ConversationState::Queued | ConversationState::Agent => Ok(()),
        }
    }

    /// Hands a bot-owned conversation to a human (queue or auto-assigned agent) and publishes it.
    async fn handoff_from_bot(
        &self,
        conversation_id: &str,
        reason: HandoffReason,
        lang: Lang,
        trace: Option<serde_json::Value>,
    ) -> Result<()> {
        let agents_online = !self.handoff.presence().online().is_empty();
        tracing::info!(conversation = %conversation_id, reason = reason.label(), agents_online, "handoff");
        metrics::counter!("kefu_handoffs_total", "reason" => reason.label()).increment(1);
        if let Some(done) = self
            .handoff
            .from_bot(conversation_id, lang, reason.label(), trace)
            .await?
        {
            self.publish_transition(&done).await;
        }
        Ok(())
    }

    // ----- agents -----

    /// Commits an agent's message (with the agent's uploads named in `attachments`) in a
    /// conversation the agent owns.
    pub async fn agent_send(
        &self,
        agent: &crate::store::Agent,
        conversation_id: &str,
        client_msg_id: &str,
        text: &str,
        attachments: &[String],
    ) -> Result<StoredMessage> {
        let msg = NewMessage {
            author_id: Some(agent.id.clone()),
            author_name: Some(agent.display_name.clone()),
            client_msg_id: Some(client_msg_id.to_string()),
            attachments: attachments.to_vec(),
            ..NewMessage::text(AuthorKind::Agent, text)
        };
        match self
            .store
            .append(conversation_id, Require::Owner(&agent.id), &msg)
            .await
        {
            Ok(Append::Committed { message, .. }) => {
                metrics::counter!("kefu_messages_total", "author" => "agent").increment(1);
                self.broadcast_message(&message);
                self.announce(conversation_id).await;
                Ok(message)
            }
            Ok(Append::Duplicate(m)) => Ok(m),
            Ok(Append::Refused(c)) if c.state == ConversationState::Resolved => {
                Err(ConversationError::Closed)
            }
            Ok(Append::Refused(_)) => Err(ConversationError::NotOwner),
            Ok(Append::UnknownAttachment) => Err(ConversationError::UnknownAttachment),
            Err(StoreError::NotFound(_)) => Err(ConversationError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// The agent takes a queued (or bot-owned) conversation, within capacity.
    pub async fn claim(&self, agent: &crate::store::Agent, conversation_id: &str) -> Result<()> {
        let done = self.handoff.claim(agent, conversation_id).await?;
        self.publish_transition(&done).await;
        Ok(())
    }

    /// The owner passes the conversation to another online agent with free capacity.
    pub async fn transfer(
        &self,
        agent: &crate::store::Agent,
        conversation_id: &str,
        to_name: &str,
    ) -> Result<()> {
        let done = self
            .handoff
            .transfer(agent, conversation_id, to_name)
            .await?;
        self.publish_transition(&done).await;
        Ok(())
    }

    /// The owner hands the conversation back to the bot.
    pub async fn hand_back(
        &self,
        agent: &crate::store::Agent,
        conversation_id: &str,
    ) -> Result<()> {
        let done = self.handoff.hand_back(agent, conversation_id).await?;
        self.publish_transition(&done).await;
        Ok(())
    }

    /// Ends the conversation: the owner, or any agent for one that no agent owns.
    pub async fn resolve(&self, agent: &crate::store::Agent, conversation_id: &str) -> Result<()> {
        let done = self.handoff.resolve(agent, conversation_id).await?;
        self.publish_transition(&done).await;
        Ok(())
    }

    /// An agent console connected; with auto-assign, the oldest queued conversations go to it.
    pub async fn agent_online(&self, agent: &crate::store::Agent) {
        if self.handoff.presence().connected(&agent.id) {
            self.report_presence();
            self.announce_presence().await;
        }
        match self.handoff.assign_queued().await {
            Ok(done) => {
                for d in &done {
                    self.publish_transition(d).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "auto-assign failed"),
        }
    }

    pub async fn agent_offline(&self, agent_id: &str) {
        if self.handoff.presence().disconnected(agent_id) {
            self.report_presence();
            self.announce_presence().await;
        }
    }
}
