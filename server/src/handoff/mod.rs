//! Handoff: the queue, capacity-aware assignment, the ownership transitions (claim, transfer,
//! hand back, resolve), agent presence and the agent's context pack (transcript). Every operation
//! commits one transition with its system note and returns it; `conversation` publishes it.

pub mod context;
pub mod presence;

use std::collections::HashMap;

use kefu_protocol::{AgentPresence, AuthorKind, ConversationState};

pub use presence::{AgentLoad, Presence};

/// A staff account as the consoles see it: name and load, role, and whether it is online.
#[derive(Debug, Clone, PartialEq)]
pub struct StaffStatus {
    pub presence: AgentPresence,
    pub role: crate::store::Role,
    pub online: bool,
}

use crate::lang::Lang;
use crate::store::{Agent, Conversation, NewMessage, Store, StoreError, StoredMessage, Transition};

/// Why a handoff operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    #[error("conversation not found")]
    NotFound,
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

pub type Result<T> = std::result::Result<T, HandoffError>;

/// A committed ownership change and the system note committed with it.
#[derive(Debug, Clone)]
pub struct Committed {
    pub conversation: Conversation,
    pub note: StoredMessage,
}

/// The handoff service.
pub struct Handoff {
    store: Store,
    presence: Presence,
    /// Assign queued conversations round-robin to online agents with free capacity.
    auto_assign: bool,
}

impl Handoff {
    pub fn new(store: Store, auto_assign: bool) -> Self {
        Self {
            store,
            presence: Presence::new(),
            auto_assign,
        }
    }

    pub fn presence(&self) -> &Presence {
        &self.presence
    }

    pub fn auto_assign(&self) -> bool {
        self.auto_assign
    }

    /// Moves a bot-owned conversation to a human: straight to an agent when auto-assign finds one
    /// with room, else to the queue (an offline message when nobody is online). `None` when the
    /// bot no longer owned it. `reason` (`HandoffReason::label`) is recorded for analytics.
    pub async fn from_bot(
        &self,
        conversation_id: &str,
        lang: Lang,
        reason: &'static str,
        trace: Option<serde_json::Value>,
    ) -> Result<Option<Committed>> {
        let closed = self.closed_note(conversation_id, lang).await?;
        let any_online = closed.is_none() && !self.presence.online().is_empty();
        if any_online && self.auto_assign {
            if let Some(agent) = self.pick_agent().await? {
                let note = NewMessage {
                    route_trace: trace.clone(),
                    handoff_reason: Some(reason),
                    ..joined_note(&agent, lang)
                };
                let change = Transition {
                    from: &[ConversationState::Bot],
                    to: ConversationState::Agent,
                    agent_id: Some(&agent.id),
                    owner: None,
                    offline: false,
                    within_capacity: true,
                };
                if let Some(done) = self.commit(conversation_id, &change, &note).await? {
                    return Ok(Some(done));
                }
            }
        }
        let text = closed.unwrap_or_else(|| queued_note(lang, any_online).to_string());
        let note = NewMessage {
            route_trace: trace,
            handoff_reason: Some(reason),
            ..NewMessage::text(AuthorKind::System, text)
        };
        let change = Transition {
            from: &[ConversationState::Bot],
            to: ConversationState::Queued,
            agent_id: None,
            owner: None,
            offline: !any_online,
            within_capacity: false,
        };
        self.commit(conversation_id, &change, &note).await
    }

    /// What the visitor is told when the conversation's site is outside its business hours
    /// now; `None` while it is open (or has no hours). Damaged hours count as always open.
    async fn closed_note(&self, conversation_id: &str, lang: Lang) -> Result<Option<String>> {
        let Some(json) = self.store.business_hours_of(conversation_id).await? else {
            return Ok(None);
        };
        let schedule = serde_json::from_str::<crate::hours::BusinessHours>(&json)
            .map_err(|e| e.to_string())
            .and_then(|h| h.schedule());
        let schedule = match schedule {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "a site's business hours are damaged; treated as open");
                return Ok(None);
            }
        };
        Ok(match schedule.at(crate::store::now_ms()) {
            crate::hours::Openness::Open => None,
            crate::hours::Openness::Closed { reopens } => {
                Some(crate::hours::closed_note(lang, reopens.as_ref()))
            }
        })
    }

    /// The agent takes a queued (or bot-owned) conversation. The capacity check and the claim are
    /// one atomic step, so concurrent claims never exceed the agent's capacity.
    pub async fn claim(&self, agent: &Agent, conversation_id: &str) -> Result<Committed> {
        let lang = self.lang_of(conversation_id).await?;
        let change = Transition {
            from: &[ConversationState::Queued, ConversationState::Bot],
            to: ConversationState::Agent,
            agent_id: Some(&agent.id),
            owner: None,
            offline: false,
            within_capacity: true,
        };
        if let Some(done) = self
            .commit(conversation_id, &change, &joined_note(agent, lang))
            .await?
        {
            return Ok(done);
        }
        let c = self.conversation(conversation_id).await?;
        Err(match c.state {
            ConversationState::Resolved => HandoffError::Closed,
            ConversationState::Queued | ConversationState::Bot => HandoffError::Conflict(format!(
                "you already own {} conversations (capacity {})",
                self.active_count(&agent.id).await?,
                agent.capacity
            )),
            ConversationState::Agent => HandoffError::Conflict(
                "the conversation is not waiting for an agent (another agent may have claimed it)"
                    .into(),
            ),
        })
    }

    /// The owner passes the conversation to another online agent with free capacity.
    pub async fn transfer(
        &self,
        agent: &Agent,
        conversation_id: &str,
        to_name: &str,
    ) -> Result<Committed> {
        let target = self
            .store
            .agent_by_name(to_name)
            .await?
            .ok_or_else(|| HandoffError::InvalidInput(format!("no agent `{to_name}`")))?;
        if target.id == agent.id {
            return Err(HandoffError::InvalidInput(
                "cannot transfer to yourself".into(),
            ));
        }
        if !self.presence.is_online(&target.id) {
            return Err(HandoffError::Conflict(format!(
                "agent `{to_name}` is not online"
            )));
        }
        let lang = self.lang_of(conversation_id).await?;
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
            within_capacity: true,
        };
        match self.owner_change(conversation_id, &change, &text).await {
            Err(HandoffError::NotOwner) => {
                let c = self.conversation(conversation_id).await?;
                if c.agent_id.as_deref() == Some(agent.id.as_str()) {
                    Err(HandoffError::Conflict(format!(
                        "agent `{to_name}` is at capacity"
                    )))
                } else {
                    Err(HandoffError::NotOwner)
                }
            }
            other => other,
        }
    }

    /// The owner hands the conversation back to the bot.
    pub async fn hand_back(&self, agent: &Agent, conversation_id: &str) -> Result<Committed> {
        let lang = self.lang_of(conversation_id).await?;
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
            within_capacity: false,
        };
        self.owner_change(conversation_id, &change, text).await
    }

    /// Ends the conversation: the owner, or any agent for one that no agent owns.
    pub async fn resolve(&self, agent: &Agent, conversation_id: &str) -> Result<Committed> {
        let c = self.conversation(conversation_id).await?;
        let lang = self.lang_of(conversation_id).await?;
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
                within_capacity: false,
            },
            ConversationState::Resolved => return Err(HandoffError::Closed),
            _ => Transition {
                from: &[ConversationState::Bot, ConversationState::Queued],
                to: ConversationState::Resolved,
                agent_id: None,
                owner: None,
                offline: false,
                within_capacity: false,
            },
        };
        self.owner_change(conversation_id, &change, note).await
    }

    /// With auto-assign: gives the oldest queued conversations to online agents with room.
    pub async fn assign_queued(&self) -> Result<Vec<Committed>> {
        let mut done = Vec::new();
        if !self.auto_assign {
            return Ok(done);
        }
        let queued = self
            .store
            .conversation_listing(&[ConversationState::Queued], 50)
            .await?;
        for listing in queued.into_iter().rev() {
            let Some(agent) = self.pick_agent().await? else {
                break;
            };
            let id = &listing.conversation.id;
            let lang = self.lang_of(id).await?;
            let change = Transition {
                from: &[ConversationState::Queued],
                to: ConversationState::Agent,
                agent_id: Some(&agent.id),
                owner: None,
                offline: false,
                within_capacity: true,
            };
            if let Some(c) = self.commit(id, &change, &joined_note(&agent, lang)).await? {
                done.push(c);
            }
        }
        Ok(done)
    }

    /// Every agent with its load, role and whether it has a console open.
    pub async fn agents_with_load(&self) -> Result<Vec<StaffStatus>> {
        let agents = self.store.agents().await?;
        let counts: HashMap<String, u32> = self.store.active_counts().await?.into_iter().collect();
        Ok(agents
            .into_iter()
            .map(|a| StaffStatus {
                online: self.presence.is_online(&a.id),
                role: a.role,
                presence: AgentPresence {
                    active: counts.get(&a.id).copied().unwrap_or(0),
                    capacity: a.capacity,
                    name: a.name,
                    display_name: a.display_name,
                },
            })
            .collect())
    }

    /// The agent's login name (for `state` frames), if it still exists.
    pub async fn agent_name(&self, agent_id: Option<&str>) -> Result<Option<String>> {
        Ok(match agent_id {
            Some(id) => self.store.agent(id).await?.map(|a| a.name),
            None => None,
        })
    }

    async fn pick_agent(&self) -> Result<Option<Agent>> {
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

    async fn active_count(&self, agent_id: &str) -> Result<u32> {
        Ok(self
            .store
            .active_counts()
            .await?
            .into_iter()
            .find(|(id, _)| id == agent_id)
            .map(|(_, n)| n)
            .unwrap_or(0))
    }

    async fn conversation(&self, conversation_id: &str) -> Result<Conversation> {
        self.store
            .conversation(conversation_id)
            .await?
            .ok_or(HandoffError::NotFound)
    }

    async fn commit(
        &self,
        conversation_id: &str,
        change: &Transition<'_>,
        note: &NewMessage,
    ) -> Result<Option<Committed>> {
        Ok(self
            .store
            .transition(conversation_id, change, note)
            .await?
            .map(|(conversation, note)| Committed { conversation, note }))
    }

    /// Applies an agent's state change with a system note; explains a refusal.
    async fn owner_change(
        &self,
        conversation_id: &str,
        change: &Transition<'_>,
        note: &str,
    ) -> Result<Committed> {
        let note = NewMessage::text(AuthorKind::System, note);
        if let Some(done) = self.commit(conversation_id, change, &note).await? {
            return Ok(done);
        }
        match self.conversation(conversation_id).await? {
            c if c.state == ConversationState::Resolved => Err(HandoffError::Closed),
            _ => Err(HandoffError::NotOwner),
        }
    }

    /// The language to speak in a conversation: that of the visitor's last message.
    pub async fn lang_of(&self, conversation_id: &str) -> Result<Lang> {
        Ok(match self.store.last_visitor_text(conversation_id).await? {
            Some(t) => Lang::detect(&t),
            None => Lang::En,
        })
    }
}

fn joined_note(agent: &Agent, lang: Lang) -> NewMessage {
    let text = match lang {
        Lang::Zh => format!("人工客服 {} 已接入，为您服务。", agent.display_name),
        Lang::En => format!("{} has joined the conversation.", agent.display_name),
    };
    NewMessage::text(AuthorKind::System, text)
}
/// What the visitor is told when the conversation is queued for a human.
pub fn queued_note(lang: Lang, any_online: bool) -> &'static str {
    if any_online {
        lang.pick(
            "正在为您转接人工客服，请稍候。",
            "Connecting you to a human agent, please wait.",
        )
    } else {
        lang.pick(
            "目前没有在线的人工客服。请留下您的问题和联系方式，我们会尽快回复您。",
            "No agent is online right now. Leave your question and how to reach you, and we'll get back to you as soon as we can.",
        )
    }
}
