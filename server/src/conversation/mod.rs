//! Conversations: the state machine `bot -> queued -> agent -> (bot | resolved)` with exactly one
//! owner, message commits with per-conversation seqs and `client_msg_id` dedupe, the bot's turn
//! after each visitor message, handoff, and fan-out of every change to live connections.

pub mod hub;
mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use kefu_protocol::{
    AgentPresence, AuthorKind, ConversationState, ConversationSummary, ServerFrame,
};

use crate::auth::Principal;
use crate::cluster::{Cluster, ClusterEvent};
use crate::handoff::{AgentLoad, Presence};
use crate::store::{
    rfc3339, Agent, Append, Conversation, FallbackCount, NewMessage, Require, Store, StoreError,
    StoredMessage, Transition,
};
use crate::triage::{Decision, DecisionKind, HandoffReason, Lang, Retriever, Triage};
pub use hub::{ConnectionHandle, Hub, Outbound, Role};

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
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Handoff settings.
#[derive(Debug, Clone)]
pub struct HandoffSettings {
    /// Assign queued conversations round-robin to online agents with free capacity.
    pub auto_assign: bool,
}

/// The conversation service shared by the WebSocket and REST layers.
pub struct Conversations {
    store: Store,
    hub: Hub,
    presence: Presence,
    triage: Triage,
    retriever: Arc<dyn Retriever>,
    settings: HandoffSettings,
    /// Serialises bot turns per conversation so replies follow questions in order.
    bot_turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    webhooks: OnceLock<webhook::WebhookClient>,
    /// The link to other nodes (scale-out), when configured.
    cluster: OnceLock<Cluster>,
}

impl Conversations {
    pub fn new(
        store: Store,
        triage: Triage,
        retriever: Arc<dyn Retriever>,
        settings: HandoffSettings,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            hub: Hub::new(),
            presence: Presence::new(),
            triage,
            retriever,
            settings,
            bot_turns: Mutex::new(HashMap::new()),
            webhooks: OnceLock::new(),
            cluster: OnceLock::new(),
        })
    }

    /// Joins a cluster: live events go to the other nodes, and theirs are delivered here.
    pub fn attach_cluster(
        self: &Arc<Self>,
        cluster: Cluster,
        mut events: tokio::sync::mpsc::Receiver<(String, ClusterEvent)>,
    ) {
        if self.cluster.set(cluster).is_err() {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            while let Some((node, event)) = events.recv().await {
                match event {
                    ClusterEvent::Message {
                        conversation_id,
                        seq,
                        visitor,
                        agent,
                    } => this
                        .hub
                        .publish_message(&conversation_id, seq, &visitor, &agent),
                    ClusterEvent::Frame {
                        conversation_id,
                        json,
                    } => this.hub.publish(&conversation_id, &json, None),
                    ClusterEvent::Console { json } => this.hub.publish_consoles(&json),
                    ClusterEvent::Presence { agents } => {
                        if this.presence.set_remote(&node, agents) {
                            this.announce_presence().await;
                        }
                    }
                }
            }
        });
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(10));
            loop {
                every.tick().await;
                this.report_presence();
            }
        });
    }

    fn to_cluster(&self, event: ClusterEvent) {
        if let Some(c) = self.cluster.get() {
            c.publish(event);
        }
    }

    /// Tells the other nodes which agents have a console open here.
    fn report_presence(&self) {
        self.to_cluster(ClusterEvent::Presence {
            agents: self.presence.local(),
        });
    }

    /// Sends a frame to a conversation's followers on every node (typing, read), except one
    /// local connection (its sender).
    pub fn relay(&self, conversation_id: &str, json: &str, except: Option<u64>) {
        self.hub.publish(conversation_id, json, except);
        self.to_cluster(ClusterEvent::Frame {
            conversation_id: conversation_id.to_string(),
            json: json.to_string(),
        });
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    pub fn triage(&self) -> &Triage {
        &self.triage
    }

    pub fn retriever(&self) -> &Arc<dyn Retriever> {
        &self.retriever
    }

    /// The conversation, if `who` may read it: visitors their own, agents and admins any.
    pub async fn authorize(
        &self,
        who: &Principal,
        conversation_id: &str,
    ) -> Result<Conversation, ConversationError> {
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

    // ----- visitors -----

    /// Commits a visitor message (or returns the one already committed with that
    /// `client_msg_id`), then lets the bot answer while it owns the conversation.
    pub async fn visitor_send(
        self: &Arc<Self>,
        who: &Principal,
        conversation_id: &str,
        client_msg_id: &str,
        text: &str,
    ) -> Result<StoredMessage, ConversationError> {
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
                    let this = Arc::clone(self);
                    let conv = conversation_id.to_string();
                    let text = text.to_string();
                    tokio::spawn(async move {
                        if let Err(e) = this.bot_turn(&conv, &text, bot_fallbacks, started).await {
                            tracing::error!(conversation = %conv, error = %e, "bot turn failed");
                        }
                    });
                }
                self.announce(conversation_id).await;
                Ok(message)
            }
            Append::Duplicate(m) => Ok(m),
            Append::Refused(_) => Err(ConversationError::Closed),
        }
    }

    /// The visitor asked for a human.
    pub async fn request_human(
        self: &Arc<Self>,
        who: &Principal,
        conversation_id: &str,
    ) -> Result<(), ConversationError> {
        let c = self.authorize(who, conversation_id).await?;
        match c.state {
            ConversationState::Bot => {
                let lang = self.lang_of(conversation_id).await;
                self.handoff(conversation_id, HandoffReason::Requested, lang, None)
                    .await
            }
            ConversationState::Resolved => Err(ConversationError::Closed),
            // Already waiting for or talking to a human.
            ConversationState::Queued | ConversationState::Agent => Ok(()),
        }
    }

    async fn bot_turn(
        self: &Arc<Self>,
        conversation_id: &str,
        text: &str,
        fallbacks_so_far: u32,
        started: Instant,
    ) -> Result<(), ConversationError> {
        let lock = self.bot_turn_lock(conversation_id);
        let _turn = lock.lock().await;
        let decision = self
            .triage
            .decide(self.retriever.as_ref(), text, fallbacks_so_far)
            .await;
        metrics::counter!("kefu_triage_decisions_total", "decision" => decision_label(&decision.kind))
            .increment(1);
        for url in &decision.webhooks {
            self.webhooks
                .get_or_init(webhook::WebhookClient::new)
                .notify(url.clone(), conversation_id, text, &decision);
        }
        let trace = serde_json::to_value(&decision.trace).ok();
        let result = if decision.kind == DecisionKind::Handoff {
            let reason = decision
                .trace
                .handoff
                .clone()
                .unwrap_or(HandoffReason::Requested);
            self.handoff(conversation_id, reason, decision.trace.lang, trace)
                .await
        } else {
            self.bot_reply(conversation_id, decision, trace).await
        };
        metrics::histogram!("kefu_bot_reply_seconds").record(started.elapsed().as_secs_f64());
        drop(_turn);
        self.release_bot_turn_lock(conversation_id, lock);
        result
    }

    async fn bot_reply(
        &self,
        conversation_id: &str,
        decision: Decision,
        trace: Option<serde_json::Value>,
    ) -> Result<(), ConversationError> {
        let Some(text) = decision.reply else {
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
            ..NewMessage::text(AuthorKind::Bot, text)
        };
        // Only while the bot still owns the conversation: an agent may have taken it meanwhile.
        match self
            .store
            .append(
                conversation_id,
                Require::State(ConversationState::Bot),
                &msg,
            )
            .await?
        {
            Append::Committed { message, .. } => {
                metrics::counter!("kefu_messages_total", "author" => "bot").increment(1);
                self.broadcast_message(&message);
                self.announce(conversation_id).await;
            }
            Append::Refused(c) => {
                tracing::debug!(conversation = %c.id, state = ?c.state, "bot reply dropped: no longer the owner");
            }
            Append::Duplicate(_) => {}
        }
        Ok(())
    }

    /// Moves a bot-owned conversation to the queue (or straight to an agent when auto-assign
    /// finds one), telling the visitor what happens next.
    async fn handoff(
        &self,
        conversation_id: &str,
        reason: HandoffReason,
        lang: Lang,
        trace: Option<serde_json::Value>,
    ) -> Result<(), ConversationError> {
        let any_online = !self.presence.online().is_empty();
        tracing::info!(conversation = %conversation_id, reason = reason.label(), agents_online = any_online, "handoff");
        metrics::counter!("kefu_handoffs_total", "reason" => reason.label()).increment(1);
        if any_online && self.settings.auto_assign {
            if let Some(agent) = self.pick_agent().await? {
                let note = NewMessage {
                    route_trace: trace.clone(),
                    ..self.joined_note(&agent, lang)
                };
                let change = Transition {
                    from: &[ConversationState::Bot],
                    to: ConversationState::Agent,
                    agent_id: Some(&agent.id),
                    owner: None,
                    offline: false,
                };
                if let Some((c, m)) = self
                    .store
                    .transition(conversation_id, &change, &note)
                    .await?
                {
                    self.after_transition(&c, &m).await;
                    return Ok(());
                }
            }
        }
        let text = if any_online {
            lang.pick(
                "正在为您转接人工客服，请稍候。",
                "Connecting you to a human agent, please wait.",
            )
        } else {
            lang.pick(
                "目前没有在线的人工客服。请留下您的问题和联系方式，我们会尽快回复您。",
                "No agent is online right now. Leave your question and how to reach you, and we'll get back to you as soon as we can.",
            )
        };
        let note = NewMessage {
            route_trace: trace,
            ..NewMessage::text(AuthorKind::System, text)
        };
        let change = Transition {
            from: &[ConversationState::Bot],
            to: ConversationState::Queued,
            agent_id: None,
            owner: None,
            offline: !any_online,
        };
        if let Some((c, m)) = self
            .store
            .transition(conversation_id, &change, &note)
            .await?
        {
            self.after_transition(&c, &m).await;
        }
        Ok(())
    }

    // ----- agents -----

    /// Commits an agent's message in a conversation the agent owns.
    pub async fn agent_send(
        &self,
        agent: &Agent,
        conversation_id: &str,
        client_msg_id: &str,
        text: &str,
    ) -> Result<StoredMessage, ConversationError> {
        let msg = NewMessage {
            author_id: Some(agent.id.clone()),
            author_name: Some(agent.display_name.clone()),
            client_msg_id: Some(client_msg_id.to_string()),
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
            Err(StoreError::NotFound(_)) => Err(ConversationError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// The agent takes a queued (or bot-owned) conversation, within capacity.
    pub async fn claim(
        &self,
        agent: &Agent,
        conversation_id: &str,
    ) -> Result<(), ConversationError> {
        self.authorize(&agent_principal(agent), conversation_id)
            .await?;
        let active = self.active_count(&agent.id).await?;
        if active >= agent.capacity {
            return Err(ConversationError::Conflict(format!(
                "you already own {active} conversations (capacity {})",
                agent.capacity
            )));
        }
        let lang = self.lang_of(conversation_id).await;
        let change = Transition {
            from: &[ConversationState::Queued, ConversationState::Bot],
            to: ConversationState::Agent,
            agent_id: Some(&agent.id),
            owner: None,
            offline: false,
        };
        match self
            .store
            .transition(conversation_id, &change, &self.joined_note(agent, lang))
            .await?
        {
            Some((c, m)) => {
                self.after_transition(&c, &m).await;
                Ok(())
            }
            None => Err(ConversationError::Conflict(
                "the conversation is not waiting for an agent (another agent may have claimed it)"
                    .into(),
            )),
        }
    }

    /// The owner passes the conversation to another online agent with free capacity.
    pub async fn transfer(
        &self,
        agent: &Agent,
        conversation_id: &str,
        to_name: &str,
    ) -> Result<(), ConversationError> {
        let target = self
            .store
            .agent_by_name(to_name)
            .await?
            .ok_or_else(|| ConversationError::InvalidInput(format!("no agent `{to_name}`")))?;
        if target.id == agent.id {
            return Err(ConversationError::InvalidInput(
                "cannot transfer to yourself".into(),
            ));
        }
        if !self.presence.is_online(&target.id) {
            return Err(ConversationError::Conflict(format!(
                "agent `{to_name}` is not online"
            )));
        }
        if self.active_count(&target.id).await? >= target.capacity {
            return Err(ConversationError::Conflict(format!(
                "agent `{to_name}` is at capacity"
            )));
        }
        let lang = self.lang_of(conversation_id).await;
        let text = match lang {
            Lang::Zh => format!(
                "会话已由 {} 转接给 {}。",
                agent.display_name, target.display_name
            ),
            Lang::En => format!(
                "{} transferred the conversation to {}.",
                agent.display_name, target.display_name
            ),
        };
        let change = Transition {
            from: &[ConversationState::Agent],
            to: ConversationState::Agent,
            agent_id: Some(&target.id),
            owner: Some(&agent.id),
            offline: false,
        };
        self.owner_transition(conversation_id, &change, text.as_ref())
            .await
    }

    /// The owner hands the conversation back to the bot.
    pub async fn hand_back(
        &self,
        agent: &Agent,
        conversation_id: &str,
    ) -> Result<(), ConversationError> {
        let lang = self.lang_of(conversation_id).await;
        let text = lang.pick(
            "人工客服已将会话转回智能客服，您可以继续提问。",
            "You're chatting with our virtual assistant again. Ask away!",
        );
        let change = Transition {
            from: &[ConversationState::Agent],
            to: ConversationState::Bot,
            agent_id: None,
            owner: Some(&agent.id),
            offline: false,
        };
        self.owner_transition(conversation_id, &change, text.as_ref())
            .await
    }

    /// Ends the conversation: the owner, or any agent for one that no agent owns.
    pub async fn resolve(
        &self,
        agent: &Agent,
        conversation_id: &str,
    ) -> Result<(), ConversationError> {
        let c = self
            .authorize(&agent_principal(agent), conversation_id)
            .await?;
        let lang = self.lang_of(conversation_id).await;
        let note = lang.pick(
            "会话已结束，感谢您的咨询。",
            "This conversation has been resolved. Thank you!",
        );
        let change = match c.state {
            ConversationState::Agent => Transition {
                from: &[ConversationState::Agent],
                to: ConversationState::Resolved,
                agent_id: c.agent_id.as_deref(),
                owner: Some(&agent.id),
                offline: false,
            },
            ConversationState::Resolved => return Err(ConversationError::Closed),
            _ => Transition {
                from: &[ConversationState::Bot, ConversationState::Queued],
                to: ConversationState::Resolved,
                agent_id: None,
                owner: None,
                offline: false,
            },
        };
        self.owner_transition(conversation_id, &change, note).await
    }

    /// Applies an agent's state change with a system note; explains a refusal.
    async fn owner_transition(
        &self,
        conversation_id: &str,
        change: &Transition<'_>,
        note: &str,
    ) -> Result<(), ConversationError> {
        let note = NewMessage::text(AuthorKind::System, note);
        match self
            .store
            .transition(conversation_id, change, &note)
            .await?
        {
            Some((c, m)) => {
                self.after_transition(&c, &m).await;
                Ok(())
            }
            None => match self.store.conversation(conversation_id).await? {
                None => Err(ConversationError::NotFound),
                Some(c) if c.state == ConversationState::Resolved => Err(ConversationError::Closed),
                Some(_) => Err(ConversationError::NotOwner),
            },
        }
    }

    // ----- presence -----

    /// An agent console connected; with auto-assign, the oldest queued conversations go to it.
    pub async fn agent_online(&self, agent: &Agent) {
        if self.presence.connected(&agent.id) {
            self.report_presence();
            self.announce_presence().await;
        }
        if self.settings.auto_assign {
            if let Err(e) = self.assign_queued().await {
                tracing::warn!(error = %e, "auto-assign failed");
            }
        }
    }

    pub async fn agent_offline(&self, agent_id: &str) {
        if self.presence.disconnected(agent_id) {
            self.report_presence();
            self.announce_presence().await;
        }
    }

    /// Every agent with its load; `online` says who has a console open.
    pub async fn presence(&self) -> Result<Vec<(AgentPresence, bool)>, ConversationError> {
        let agents = self.store.agents().await?;
        let counts: HashMap<String, u32> = self.store.active_counts().await?.into_iter().collect();
        Ok(agents
            .into_iter()
            .map(|a| {
                let online = self.presence.is_online(&a.id);
                (
                    AgentPresence {
                        active: counts.get(&a.id).copied().unwrap_or(0),
                        capacity: a.capacity,
                        name: a.name,
                        display_name: a.display_name,
                    },
                    online,
                )
            })
            .collect())
    }

    async fn announce_presence(&self) {
        match self.presence().await {
            Ok(all) => {
                let agents = all
                    .into_iter()
                    .filter(|(_, on)| *on)
                    .map(|(a, _)| a)
                    .collect();
                if let Ok(json) = serde_json::to_string(&ServerFrame::Presence { agents }) {
                    self.hub.publish_consoles(&json);
                }
            }
            Err(e) => tracing::warn!(error = %e, "presence update failed"),
        }
    }

    async fn assign_queued(&self) -> Result<(), ConversationError> {
        let queued = self
            .store
            .conversation_listing(&[ConversationState::Queued], 50)
            .await?;
        for listing in queued.into_iter().rev() {
            let Some(agent) = self.pick_agent().await? else {
                break;
            };
            let lang = self.lang_of(&listing.conversation.id).await;
            let change = Transition {
                from: &[ConversationState::Queued],
                to: ConversationState::Agent,
                agent_id: Some(&agent.id),
                owner: None,
                offline: false,
            };
            if let Some((c, m)) = self
                .store
                .transition(
                    &listing.conversation.id,
                    &change,
                    &self.joined_note(&agent, lang),
                )
                .await?
            {
                self.after_transition(&c, &m).await;
            }
        }
        Ok(())
    }

    async fn pick_agent(&self) -> Result<Option<Agent>, ConversationError> {
        let counts: HashMap<String, u32> = self.store.active_counts().await?.into_iter().collect();
        let agents = self.store.agents().await?;
        let loads: Vec<AgentLoad> = agents
            .iter()
            .map(|a| AgentLoad {
                agent_id: a.id.clone(),
                active: counts.get(&a.id).copied().unwrap_or(0),
                capacity: a.capacity,
            })
            .collect();
        let chosen = self.presence.pick(&loads);
        Ok(chosen.and_then(|id| agents.into_iter().find(|a| a.id == id)))
    }

    async fn active_count(&self, agent_id: &str) -> Result<u32, ConversationError> {
        Ok(self
            .store
            .active_counts()
            .await?
            .into_iter()
            .find(|(id, _)| id == agent_id)
            .map(|(_, n)| n)
            .unwrap_or(0))
    }

    // ----- fan-out -----

    fn broadcast_message(&self, m: &StoredMessage) {
        let visitor = ServerFrame::Message {
            message: m.to_wire(false),
        };
        let agent = ServerFrame::Message {
            message: m.to_wire(true),
        };
        if let (Ok(v), Ok(a)) = (
            serde_json::to_string(&visitor),
            serde_json::to_string(&agent),
        ) {
            self.hub.publish_message(&m.conversation_id, m.seq, &v, &a);
            self.to_cluster(ClusterEvent::Message {
                conversation_id: m.conversation_id.clone(),
                seq: m.seq,
                visitor: v,
                agent: a,
            });
        }
    }

    async fn after_transition(&self, c: &Conversation, note: &StoredMessage) {
        metrics::counter!("kefu_messages_total", "author" => "system").increment(1);
        self.broadcast_message(note);
        let agent = match &c.agent_id {
            Some(id) => self.store.agent(id).await.ok().flatten().map(|a| a.name),
            None => None,
        };
        let frame = ServerFrame::State {
            conversation_id: c.id.clone(),
            state: c.state,
            agent,
            offline: c.offline,
        };
        if let Ok(json) = serde_json::to_string(&frame) {
            self.relay(&c.id, &json, None);
        }
        self.announce(&c.id).await;
        self.announce_presence().await;
    }

    /// Tells agent consoles that a conversation changed.
    async fn announce(&self, conversation_id: &str) {
        if !self.hub.has_consoles() && self.cluster.get().is_none() {
            return;
        }
        match self.summary(conversation_id).await {
            Ok(Some(conversation)) => {
                if let Ok(json) = serde_json::to_string(&ServerFrame::Conversation { conversation })
                {
                    self.hub.publish_consoles(&json);
                    self.to_cluster(ClusterEvent::Console { json });
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "console update failed"),
        }
    }

    /// The console's view of one conversation.
    pub async fn summary(
        &self,
        conversation_id: &str,
    ) -> Result<Option<ConversationSummary>, ConversationError> {
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
    ) -> Result<Vec<ConversationSummary>, ConversationError> {
        Ok(self
            .store
            .conversation_listing(states, limit)
            .await?
            .into_iter()
            .map(summary_of)
            .collect())
    }

    /// The language to speak in a conversation: that of the visitor's last message.
    async fn lang_of(&self, conversation_id: &str) -> Lang {
        match self.store.last_visitor_text(conversation_id).await {
            Ok(Some(t)) => Lang::detect(&t),
            _ => Lang::En,
        }
    }

    fn joined_note(&self, agent: &Agent, lang: Lang) -> NewMessage {
        let text = match lang {
            Lang::Zh => format!("人工客服 {} 已接入，为您服务。", agent.display_name),
            Lang::En => format!("{} has joined the conversation.", agent.display_name),
        };
        NewMessage::text(AuthorKind::System, text)
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

fn agent_principal(agent: &Agent) -> Principal {
    Principal::Agent {
        agent_id: agent.id.clone(),
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

fn summary_of(l: crate::store::ConversationListing) -> ConversationSummary {
    let c = l.conversation;
    ConversationSummary {
        id: c.id,
        site_key: c.site_key,
        visitor_id: c.visitor_id,
        visitor_name: l.visitor_name,
        state: c.state,
        agent: l.agent_name,
        offline: c.offline,
        last_seq: c.last_seq,
        last_text: l.last_text.map(|t| t.chars().take(120).collect()),
        updated_at: rfc3339(c.updated_at),
    }
}
