//! The rows the conversation store reads and writes.

use kefu_protocol::{Author, AuthorKind, ConversationState, Message, Source};

/// A website or app that embeds the chat, with its WebSocket origin allow-list and identity
/// verification settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub key: String,
    pub name: String,
    /// Origins (`https://shop.example`) allowed to open the chat; `*` allows any.
    pub allowed_origins: Vec<String>,
    /// Secret for the HMAC-SHA256 identity hash of user ids.
    pub identity_secret: Option<String>,
    /// When true, visitors without a valid identity hash cannot chat.
    pub enforce_identity: bool,
}

/// A human agent account.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub id: String,
    pub name: String,
    pub display_name: String,
    pub password_hash: String,
    /// Most conversations the agent owns at once.
    pub capacity: u32,
    pub role: Role,
}

/// What a staff account may do: every account answers visitors in the agent console; admins also
/// manage the bot (the admin API and `/admin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Agent,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "agent" => Some(Role::Agent),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// What a token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Visitor,
    Agent,
    Admin,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Visitor => "visitor",
            TokenKind::Agent => "agent",
            TokenKind::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "visitor" => TokenKind::Visitor,
            "agent" => TokenKind::Agent,
            "admin" => TokenKind::Admin,
            _ => return None,
        })
    }
}

/// A stored token (by hash).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub kind: TokenKind,
    /// Visitor id, agent id, or the admin key's name.
    pub subject: String,
    pub site_key: Option<String>,
    pub expires_at: i64,
}

/// Admin API keys of one name (the key itself is never stored, only its hash).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AdminKey {
    pub name: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub expires_at: i64,
    /// Keys issued under this name and still valid.
    pub count: u64,
}

/// Where a visitor writes from: the web widget and SDKs, the API channel (an integrator's
/// bridge), or a WeChat Official Account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Web,
    Api,
    Wechat,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Web => "web",
            Channel::Api => "api",
            Channel::Wechat => "wechat",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "web" => Some(Channel::Web),
            "api" => Some(Channel::Api),
            "wechat" => Some(Channel::Wechat),
            _ => None,
        }
    }
}

/// A visitor: on the web, anonymous or a verified user of the site; on another channel, that
/// channel's user (`external_id`: the integrator's user id, a WeChat openid).
#[derive(Debug, Clone, PartialEq)]
pub struct Visitor {
    pub id: String,
    pub site_key: String,
    pub channel: Channel,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
}

/// A conversation's current row.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub id: String,
    pub site_key: String,
    pub visitor_id: String,
    pub state: ConversationState,
    pub agent_id: Option<String>,
    pub last_seq: u64,
    /// Consecutive bot replies that found no answer.
    pub bot_fallbacks: u32,
    /// Handed off while no agent was online.
    pub offline: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// The visitor's channel, and the channel's id of that user (not for the web).
    pub channel: Channel,
    pub channel_user: Option<String>,
}

/// A conversation with what the console shows beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationListing {
    pub conversation: Conversation,
    pub visitor_name: Option<String>,
    pub agent_name: Option<String>,
    pub last_text: Option<String>,
}

/// A committed message.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    pub conversation_id: String,
    pub seq: u64,
    pub author_kind: AuthorKind,
    pub author_id: Option<String>,
    pub author_name: Option<String>,
    pub text: String,
    pub client_msg_id: Option<String>,
    pub sources: Vec<Source>,
    pub quick_replies: Vec<String>,
    /// Files sent with the message, with links signed when it was read.
    pub attachments: Vec<kefu_protocol::Attachment>,
    pub route_trace: Option<serde_json::Value>,
    pub created_at: i64,
}

impl StoredMessage {
    /// The wire form; the route trace only when `with_trace` (agents).
    pub fn to_wire(&self, with_trace: bool) -> Message {
        Message {
            conversation_id: self.conversation_id.clone(),
            seq: self.seq,
            author: Author {
                kind: self.author_kind,
                name: self.author_name.clone(),
            },
            text: self.text.clone(),
            sent_at: rfc3339(self.created_at),
            client_msg_id: self.client_msg_id.clone(),
            sources: self.sources.clone(),
            quick_replies: self.quick_replies.clone(),
            attachments: self.attachments.clone(),
            route_trace: if with_trace {
                self.route_trace.clone()
            } else {
                None
            },
        }
    }
}

/// RFC 3339 UTC time (milliseconds) of a millisecond timestamp.
pub fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// How a message changes the count of consecutive bot fallbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FallbackCount {
    #[default]
    Keep,
    Reset,
    Increment,
}

/// A message to commit.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub author_kind: AuthorKind,
    pub author_id: Option<String>,
    pub author_name: Option<String>,
    pub text: String,
    pub client_msg_id: Option<String>,
    pub sources: Vec<Source>,
    pub quick_replies: Vec<String>,
    pub route_trace: Option<serde_json::Value>,
    /// Uploads the author sends with it (ids), bound to it in its transaction.
    pub attachments: Vec<String>,
    pub fallbacks: FallbackCount,
    /// Marks the conversation as an offline message (no agent was online).
    pub mark_offline: bool,
    /// How the message changes the conversation's pending bot turn.
    pub bot_turn: BotTurn,
    /// What a bot reply did (`answer`, `suggest`, `fallback`, `rule_reply`), for analytics.
    pub outcome: Option<&'static str>,
    /// Why the conversation goes to a human, on the note of a transition that hands it off
    /// (recorded with the conversation, for analytics; the first handoff counts).
    pub handoff_reason: Option<&'static str>,
}

/// What a committed message does to the conversation's pending bot turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BotTurn {
    /// Leaves it as it is.
    #[default]
    Keep,
    /// A visitor message the bot must answer (when the bot owns the conversation): it becomes the
    /// pending turn in the same transaction.
    Start,
    /// The bot's reply to the visitor message with this seq: the pending turn ends unless a newer
    /// message started another one.
    Finish(u64),
}

/// A bot turn recorded but not finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingTurn {
    pub conversation_id: String,
    /// The visitor message to answer.
    pub seq: u64,
    /// The conversation's `updated_at` when read (the lease compares it).
    pub updated_at: i64,
}

impl NewMessage {
    /// A plain text message by `author_kind`.
    pub fn text(author_kind: AuthorKind, text: impl Into<String>) -> Self {
        Self {
            author_kind,
            author_id: None,
            author_name: None,
            text: text.into(),
            client_msg_id: None,
            sources: vec![],
            quick_replies: vec![],
            route_trace: None,
            attachments: vec![],
            fallbacks: FallbackCount::Keep,
            mark_offline: false,
            bot_turn: BotTurn::Keep,
            outcome: None,
            handoff_reason: None,
        }
    }
}

/// What must hold for a message to be committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Require<'a> {
    /// Any state but resolved (visitor messages).
    Open,
    /// Exactly this state (bot replies need `Bot`).
    State(ConversationState),
    /// State `agent`, owned by this agent id.
    Owner(&'a str),
}

/// The outcome of `Store::append`.
#[derive(Debug, Clone, PartialEq)]
pub enum Append {
    Committed {
        message: StoredMessage,
        /// Consecutive bot fallbacks after this message.
        bot_fallbacks: u32,
        /// The conversation's state when the message was committed.
        state: ConversationState,
    },
    /// The `client_msg_id` was already committed as this message.
    Duplicate(StoredMessage),
    /// The conversation did not satisfy the requirement; its current row.
    Refused(Conversation),
    /// An attachment named is not the author's unsent upload in this conversation.
    UnknownAttachment,
}

/// A state change for `Store::transition`.
#[derive(Debug, Clone, Copy)]
pub struct Transition<'a> {
    pub from: &'a [ConversationState],
    pub to: ConversationState,
    /// The owning agent after the change (state `agent`), else `None`.
    pub agent_id: Option<&'a str>,
    /// Only if the conversation is currently owned by this agent.
    pub owner: Option<&'a str>,
    /// Whether the conversation is an offline message after the change.
    pub offline: bool,
    /// Only if the new owner (`agent_id`) owns fewer conversations than its capacity, checked in
    /// the committing transaction (the agent's row is locked first, so concurrent claims queue).
    pub within_capacity: bool,
}
