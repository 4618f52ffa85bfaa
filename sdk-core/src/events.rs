//! What the host hears: one event enum delivered through one listener trait.

use kefu_protocol::{Author, ConversationState, Message, Seq};
use serde::Serialize;

use crate::error::ClientError;
use crate::platform::{MaybeSend, MaybeSync};

/// The connection as the host should show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// Opening the socket (first time or after a wait).
    Connecting,
    /// Authenticated and subscribed: messages flow.
    Connected,
    /// Lost; the next attempt starts in `retry_in_ms` (messages sent now are queued).
    Waiting { retry_in_ms: u64, attempt: u32 },
    /// Stopped for good: closed by the host or refused by the server.
    Stopped,
}

/// Everything the client reports to the host.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Connection {
        #[serde(flatten)]
        status: ConnectionStatus,
    },
    /// A visitor session was created: the host may save `token` and `conversation_id` to resume.
    SessionStarted {
        visitor_id: String,
        conversation_id: String,
        token: String,
    },
    /// The previous conversation was resolved and a new one started.
    ConversationStarted {
        conversation_id: String,
    },
    /// A committed message, new or missed while offline; each seq once, in order.
    Message {
        message: Message,
    },
    /// More of a bot answer being written (LLM answer mode): append `text` to the draft
    /// `stream_id`; the next bot or system `Message` replaces the draft.
    MessageDelta {
        conversation_id: String,
        stream_id: String,
        text: String,
    },
    /// Earlier messages (answer to `load_history`), oldest first.
    History {
        messages: Vec<Message>,
        has_more: bool,
    },
    /// The visitor's message is in the outbox (shown as pending).
    MessageQueued {
        client_msg_id: String,
        text: String,
    },
    /// The server committed the visitor's message as `seq`.
    MessageAcked {
        client_msg_id: String,
        seq: Seq,
    },
    /// The server refused the visitor's message for good (it left the outbox).
    MessageFailed {
        client_msg_id: String,
        error: ClientError,
    },
    Typing {
        author: Author,
        typing: bool,
    },
    Read {
        author: Author,
        seq: Seq,
    },
    /// The conversation changed owner; `offline` means no agent is online to take it.
    StateChanged {
        state: ConversationState,
        agent: Option<String>,
        offline: bool,
    },
    /// An error not tied to one message.
    Error {
        error: ClientError,
    },
}

/// The host's one entry point for events. Called on the client's task, in order; keep it short.
pub trait Listener: MaybeSend + MaybeSync {
    fn on_event(&self, event: Event);
}
