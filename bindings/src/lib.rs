//! The uniffi surface of the client core: thin newtypes over `kefu-sdk-core` for Kotlin (Android),
//! Swift (iOS) and Python. No chat logic lives here: only conversions, the tokio runtime the core
//! runs on, and the foreign listener.

use std::sync::{Arc, LazyLock, Mutex};

use kefu_sdk_core::protocol;

uniffi::setup_scaffolding!();

/// The runtime every client's connection task runs on (two worker threads for the whole app).
static RUNTIME: LazyLock<Result<tokio::runtime::Runtime, String>> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("kefu-sdk")
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
});

/// Why a call failed or a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum ChatError {
    #[error("invalid input: {reason}")]
    InvalidInput { reason: String },
    /// The server refused, with its stable code (`too_large`, `identity_required`, …).
    /// (Fields are not called `message`: Kotlin exceptions already have one.)
    #[error("{code}: {reason}")]
    Server { code: String, reason: String },
    #[error("network: {reason}")]
    Network { reason: String },
    #[error("not connected")]
    Offline,
    #[error("the client is closed")]
    Closed,
}

impl From<kefu_sdk_core::ClientError> for ChatError {
    fn from(e: kefu_sdk_core::ClientError) -> Self {
        use kefu_sdk_core::ClientError as E;
        match e {
            E::InvalidInput(reason) => ChatError::InvalidInput { reason },
            E::Server { code, message } => ChatError::Server {
                code,
                reason: message,
            },
            E::Network(reason) => ChatError::Network { reason },
            E::Offline => ChatError::Offline,
            E::Closed => ChatError::Closed,
        }
    }
}

/// A session saved from `ChatEvent.SessionStarted`, to resume the same conversation later.
#[derive(Debug, Clone, uniffi::Record)]
pub struct SavedSession {
    pub token: String,
    pub visitor_id: String,
    pub conversation_id: String,
}

/// Where and as whom to chat.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ChatConfig {
    /// The Kefu server, `https://chat.example.com` (or `http://host:port` in development); or
    /// several nodes of one cluster separated by commas, tried in turn when a connection is lost.
    pub server_url: String,
    /// The site key from `kefu site add`.
    pub site_key: String,
    /// Your user id, verified by `user_hash` = hex(HMAC-SHA256(site secret, user_id)) from your
    /// backend.
    #[uniffi(default = None)]
    pub user_id: Option<String>,
    #[uniffi(default = None)]
    pub user_hash: Option<String>,
    /// A display name shown to agents.
    #[uniffi(default = None)]
    pub name: Option<String>,
    #[uniffi(default = None)]
    pub resume: Option<SavedSession>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum AuthorKind {
    Visitor,
    Bot,
    Agent,
    System,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ConversationState {
    Bot,
    Queued,
    Agent,
    Resolved,
}

/// A knowledge-base entry a bot answer cites.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ChatSource {
    pub id: String,
    pub title: String,
    pub source: String,
    pub score: f32,
}

/// A file sent with a message.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ChatAttachment {
    pub id: String,
    pub name: String,
    /// The type the server found in the bytes (`image/png`, `application/pdf`, …).
    pub content_type: String,
    pub size: u64,
    /// Pixels, for images.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// The file by an expiring link, relative to the server URL.
    pub url: String,
    /// A small JPEG preview (images), relative to the server URL.
    pub thumbnail_url: Option<String>,
}

/// One committed message.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ChatMessage {
    pub conversation_id: String,
    pub seq: u64,
    pub author: AuthorKind,
    /// The agent's display name.
    pub author_name: Option<String>,
    pub text: String,
    /// RFC 3339 UTC.
    pub sent_at: String,
    pub client_msg_id: Option<String>,
    pub sources: Vec<ChatSource>,
    pub quick_replies: Vec<String>,
    pub attachments: Vec<ChatAttachment>,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum ConnectionStatus {
    Connecting,
    Connected,
    /// Lost; the next attempt starts in `retry_in_ms` (messages sent meanwhile are queued).
    Waiting {
        retry_in_ms: u64,
        attempt: u32,
    },
    Stopped,
}

/// Everything the chat reports, in order, through `ChatListener.on_event`.
#[derive(Debug, Clone, uniffi::Enum)]
pub enum ChatEvent {
    Connection {
        status: ConnectionStatus,
    },
    /// Save `session` to resume the same conversation after the app restarts.
    SessionStarted {
        session: SavedSession,
    },
    ConversationStarted {
        conversation_id: String,
    },
    /// A message, new or missed while offline: each seq once, in order.
    Message {
        message: ChatMessage,
    },
    History {
        messages: Vec<ChatMessage>,
        has_more: bool,
    },
    /// More of a bot answer being written: append `text` to the draft `stream_id`; the next bot
    /// or system `Message` replaces the draft.
    MessageDelta {
        conversation_id: String,
        stream_id: String,
        text: String,
    },
    MessageQueued {
        client_msg_id: String,
        text: String,
    },
    MessageAcked {
        client_msg_id: String,
        seq: u64,
    },
    MessageFailed {
        client_msg_id: String,
        error: ChatError,
    },
    Typing {
        author: AuthorKind,
        author_name: Option<String>,
        typing: bool,
    },
    Read {
        author: AuthorKind,
        seq: u64,
    },
    /// `offline`: queued while no agent is online (offer to leave a message).
    StateChanged {
        state: ConversationState,
        agent: Option<String>,
        offline: bool,
    },
    Error {
        error: ChatError,
    },
}

/// Implemented by the app: receives every event, on the SDK's thread (hop to the UI thread
/// yourself).
#[uniffi::export(with_foreign)]
pub trait ChatListener: Send + Sync {
    fn on_event(&self, event: ChatEvent);
}

/// One visitor chat: connects on creation and reconnects until `close`.
#[derive(uniffi::Object)]
pub struct ChatClient {
    inner: kefu_sdk_core::Client,
    listener: SharedListener,
}

#[uniffi::export(async_runtime = "tokio")]
impl ChatClient {
    /// Starts the chat (creates or resumes the visitor session, then connects).
    #[uniffi::constructor]
    pub fn new(
        config: ChatConfig,
        listener: Arc<dyn ChatListener>,
    ) -> Result<Arc<Self>, ChatError> {
        let runtime = RUNTIME
            .as_ref()
            .map_err(|e| ChatError::Network { reason: e.clone() })?;
        let _entered = runtime.enter();
        let core = kefu_sdk_core::ClientConfig {
            server_url: config.server_url,
            site_key: config.site_key,
            user_id: config.user_id,
            user_hash: config.user_hash,
            name: config.name,
            resume: config.resume.map(|s| kefu_sdk_core::Identity {
                token: s.token,
                visitor_id: s.visitor_id,
                conversation_id: s.conversation_id,
            }),
        };
        let listener: SharedListener = Arc::new(Mutex::new(Some(listener)));
        let inner =
            kefu_sdk_core::Client::start(core, Arc::new(ForeignListener(listener.clone())))?;
        Ok(Arc::new(ChatClient { inner, listener }))
    }

    /// Queues a message; returns its client id at once (`MessageAcked` follows).
    pub fn send_text(&self, text: String) -> Result<String, ChatError> {
        Ok(self.inner.send_text(&text)?)
    }

    /// Sends a message and returns its seq once the server committed it (waits through
    /// reconnects).
    pub async fn send(&self, text: String) -> Result<u64, ChatError> {
        Ok(self.inner.send(&text).await?)
    }

    /// Uploads a file (image, PDF, office document, text) to the conversation; send the returned
    /// attachment's id with `send_with_attachments`.
    pub async fn upload_attachment(
        &self,
        name: String,
        bytes: Vec<u8>,
    ) -> Result<ChatAttachment, ChatError> {
        Ok(convert_attachment(
            self.inner.upload_attachment(&name, bytes).await?,
        ))
    }

    /// Queues a message carrying uploaded files (the text may be empty); returns its client id.
    pub fn send_with_attachments(
        &self,
        text: String,
        attachments: Vec<String>,
    ) -> Result<String, ChatError> {
        Ok(self.inner.send_with_attachments(&text, attachments)?)
    }

    /// Asks for a human agent.
    pub fn request_human(&self) -> Result<(), ChatError> {
        Ok(self.inner.request_human()?)
    }

    /// Loads up to `limit` (1–100) earlier messages (`History` event).
    pub fn load_history(&self, limit: u32) -> Result<(), ChatError> {
        Ok(self.inner.load_history(limit)?)
    }

    pub fn set_typing(&self, typing: bool) -> Result<(), ChatError> {
        Ok(self.inner.set_typing(typing)?)
    }

    pub fn mark_read(&self, seq: u64) -> Result<(), ChatError> {
        Ok(self.inner.mark_read(seq)?)
    }

    /// Rates the current conversation 1–5 with an optional comment (offer it once the
    /// conversation is resolved; rating again replaces the earlier rating). Returns when the
    /// server stored it.
    pub async fn rate(&self, score: u8, comment: Option<String>) -> Result<(), ChatError> {
        Ok(self.inner.rate(score, comment).await?)
    }

    /// Disconnects for good (named so because Kotlin's `close()` belongs to `AutoCloseable`,
    /// which frees the object).
    pub fn disconnect(&self) {
        self.inner.close()
    }
}

impl Drop for ChatClient {
    /// The host let go of the client: stop it, and release the host's listener here, on the
    /// host's thread, so no callback reaches a host that is tearing down (e.g. a Python
    /// interpreter at exit).
    fn drop(&mut self) {
        if let Ok(mut l) = self.listener.lock() {
            l.take();
        }
        self.inner.close();
    }
}

/// The host's listener, detached when the client is dropped.
type SharedListener = Arc<Mutex<Option<Arc<dyn ChatListener>>>>;

/// Adapts the foreign listener to the core's `Listener`.
struct ForeignListener(SharedListener);

impl kefu_sdk_core::Listener for ForeignListener {
    fn on_event(&self, event: kefu_sdk_core::Event) {
        let listener = self.0.lock().ok().and_then(|l| l.clone());
        if let Some(listener) = listener {
            listener.on_event(convert_event(event));
        }
    }
}

fn convert_event(e: kefu_sdk_core::Event) -> ChatEvent {
    use kefu_sdk_core::Event as E;
    match e {
        E::Connection { status } => ChatEvent::Connection {
            status: match status {
                kefu_sdk_core::ConnectionStatus::Connecting => ConnectionStatus::Connecting,
                kefu_sdk_core::ConnectionStatus::Connected => ConnectionStatus::Connected,
                kefu_sdk_core::ConnectionStatus::Waiting {
                    retry_in_ms,
                    attempt,
                } => ConnectionStatus::Waiting {
                    retry_in_ms,
                    attempt,
                },
                kefu_sdk_core::ConnectionStatus::Stopped => ConnectionStatus::Stopped,
            },
        },
        E::SessionStarted {
            visitor_id,
            conversation_id,
            token,
        } => ChatEvent::SessionStarted {
            session: SavedSession {
                token,
                visitor_id,
                conversation_id,
            },
        },
        E::ConversationStarted { conversation_id } => {
            ChatEvent::ConversationStarted { conversation_id }
        }
        E::Message { message } => ChatEvent::Message {
            message: convert_message(message),
        },
        E::MessageDelta {
            conversation_id,
            stream_id,
            text,
        } => ChatEvent::MessageDelta {
            conversation_id,
            stream_id,
            text,
        },
        E::History { messages, has_more } => ChatEvent::History {
            messages: messages.into_iter().map(convert_message).collect(),
            has_more,
        },
        E::MessageQueued {
            client_msg_id,
            text,
        } => ChatEvent::MessageQueued {
            client_msg_id,
            text,
        },
        E::MessageAcked { client_msg_id, seq } => ChatEvent::MessageAcked { client_msg_id, seq },
        E::MessageFailed {
            client_msg_id,
            error,
        } => ChatEvent::MessageFailed {
            client_msg_id,
            error: error.into(),
        },
        E::Typing { author, typing } => ChatEvent::Typing {
            author: author_kind(author.kind),
            author_name: author.name,
            typing,
        },
        E::Read { author, seq } => ChatEvent::Read {
            author: author_kind(author.kind),
            seq,
        },
        E::StateChanged {
            state,
            agent,
            offline,
        } => ChatEvent::StateChanged {
            state: match state {
                protocol::ConversationState::Bot => ConversationState::Bot,
                protocol::ConversationState::Queued => ConversationState::Queued,
                protocol::ConversationState::Agent => ConversationState::Agent,
                protocol::ConversationState::Resolved => ConversationState::Resolved,
            },
            agent,
            offline,
        },
        E::Error { error } => ChatEvent::Error {
            error: error.into(),
        },
    }
}

fn author_kind(k: protocol::AuthorKind) -> AuthorKind {
    match k {
        protocol::AuthorKind::Visitor => AuthorKind::Visitor,
        protocol::AuthorKind::Bot => AuthorKind::Bot,
        protocol::AuthorKind::Agent => AuthorKind::Agent,
        protocol::AuthorKind::System => AuthorKind::System,
    }
}

fn convert_message(m: protocol::Message) -> ChatMessage {
    ChatMessage {
        conversation_id: m.conversation_id,
        seq: m.seq,
        author: author_kind(m.author.kind),
        author_name: m.author.name,
        text: m.text,
        sent_at: m.sent_at,
        client_msg_id: m.client_msg_id,
        sources: m
            .sources
            .into_iter()
            .map(|s| ChatSource {
                id: s.id,
                title: s.title,
                source: s.source,
                score: s.score,
            })
            .collect(),
        quick_replies: m.quick_replies,
        attachments: m.attachments.into_iter().map(convert_attachment).collect(),
    }
}

fn convert_attachment(a: protocol::Attachment) -> ChatAttachment {
    ChatAttachment {
        id: a.id,
        name: a.name,
        content_type: a.content_type,
        size: a.size,
        width: a.width,
        height: a.height,
        url: a.url,
        thumbnail_url: a.thumbnail_url,
    }
}
