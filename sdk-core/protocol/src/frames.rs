//! Frames in both directions, their validation, and the error codes sent back for bad ones.

use serde::{Deserialize, Serialize};

use crate::errors::ErrorCode;

/// Version a client names in `hello`; the server rejects other major versions.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest text frame accepted, in bytes.
pub const MAX_FRAME_BYTES: usize = 16 * 1024;
/// Longest message text, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;
/// Longest `client_msg_id`, in bytes.
pub const MAX_CLIENT_MSG_ID_BYTES: usize = 64;
/// Most messages one `history` request may return.
pub const MAX_HISTORY_LIMIT: u32 = 100;
/// Most attachments one message may carry.
pub const MAX_ATTACHMENTS_PER_MESSAGE: usize = 10;
/// Longest attachment id, in bytes.
pub const MAX_ATTACHMENT_ID_BYTES: usize = 64;

/// Per-conversation message sequence number, assigned when a message is committed (starts at 1).
pub type Seq = u64;

/// Frames a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// First frame on a connection: protocol version and the token from the REST API.
    Hello { version: u32, token: String },
    /// Start receiving a conversation's messages after `after_seq` (0 = from the start): the
    /// server replays what was missed, in order, then streams new ones.
    Subscribe {
        conversation_id: String,
        #[serde(default)]
        after_seq: Seq,
    },
    /// A new message. Resending the same `client_msg_id` never creates a second message.
    /// `attachments` names files uploaded to the conversation beforehand (REST); with
    /// attachments the text may be empty.
    Send {
        conversation_id: String,
        client_msg_id: String,
        text: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<String>,
    },
    /// The sender started or stopped typing.
    Typing {
        conversation_id: String,
        typing: bool,
    },
    /// Everything up to `seq` has been read.
    Read { conversation_id: String, seq: Seq },
    /// The visitor asks for a human agent.
    RequestHuman { conversation_id: String },
    /// Earlier messages: up to `limit` before `before_seq`.
    History {
        conversation_id: String,
        before_seq: Seq,
        limit: u32,
    },
    /// Keep-alive; answered with `pong`. (A struct variant so unknown fields are refused too.)
    Ping {},
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorKind {
    Visitor,
    Bot,
    Agent,
    System,
}

/// A message's author.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    pub kind: AuthorKind,
    /// Display name (agents), absent for the visitor and the bot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A knowledge-base source cited by a bot answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub id: String,
    pub title: String,
    pub source: String,
    pub score: f32,
}

/// A file sent with a message (an image, a PDF, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: String,
    /// The file name the sender gave.
    pub name: String,
    /// The type found in the file's bytes (never the sender's claim).
    pub content_type: String,
    /// Bytes.
    pub size: u64,
    /// Pixels, for images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// The file, by an expiring link relative to the server's URL (a fresh link comes with every
    /// read of the message).
    pub url: String,
    /// A small JPEG preview (images), by an expiring link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
}

/// A file name as a URL query value or an RFC 5987 `filename*`: unreserved ASCII kept, every
/// other byte (UTF-8) as `%XX`.
pub fn percent_encode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// One committed message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub conversation_id: String,
    pub seq: Seq,
    pub author: Author,
    pub text: String,
    /// RFC 3339 UTC time of commit.
    pub sent_at: String,
    /// The sender's id for this message, echoed so the sender can match it with its outbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
    /// Suggested replies the visitor can tap.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quick_replies: Vec<String>,
    /// Files sent with the message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// Why the bot said this (rule, intent, knowledge hits with scores, thresholds, decision).
    /// Sent to agents only; visitors never see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_trace: Option<serde_json::Value>,
}

/// One conversation as the agent console lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationSummary {
    pub id: String,
    pub site_key: String,
    pub visitor_id: String,
    /// The visitor's display name or verified user id, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitor_name: Option<String>,
    pub state: ConversationState,
    /// The owning agent's login name (state `agent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The visitor asked for a human while no agent was online: an offline message.
    pub offline: bool,
    pub last_seq: Seq,
    /// The newest message's text, shortened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_text: Option<String>,
    /// RFC 3339 UTC time of the last change.
    pub updated_at: String,
}

/// An agent the console can show as online.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentPresence {
    pub name: String,
    pub display_name: String,
    /// Conversations the agent owns now, and how many it may own.
    pub active: u32,
    pub capacity: u32,
}

/// Who owns a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationState {
    Bot,
    Queued,
    Agent,
    Resolved,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Frames the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Answer to `hello`: the role (`visitor` or `agent`) and its id (visitor id or agent name).
    Welcome {
        version: u32,
        role: String,
        id: String,
    },
    /// A committed message (new, or replayed after `subscribe`).
    Message {
        message: Message,
    },
    /// The sender's message was committed as `seq`.
    Ack {
        client_msg_id: String,
        conversation_id: String,
        seq: Seq,
    },
    Typing {
        conversation_id: String,
        author: Author,
        typing: bool,
    },
    Read {
        conversation_id: String,
        author: Author,
        seq: Seq,
    },
    /// The conversation changed owner.
    State {
        conversation_id: String,
        state: ConversationState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
        /// Queued while no agent was online: the visitor may leave an offline message.
        #[serde(default, skip_serializing_if = "is_false")]
        offline: bool,
    },
    /// Answer to `history`, oldest first.
    History {
        conversation_id: String,
        messages: Vec<Message>,
        has_more: bool,
    },
    /// A frame was refused; the connection stays open unless the code says otherwise.
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
    },
    Pong,
    /// Part of a bot answer still being written (LLM answer mode): `text` continues the draft
    /// `stream_id`. The next committed bot or system message in the conversation replaces the
    /// draft (it carries the final text, sources and trace); clients may ignore this frame.
    MessageDelta {
        conversation_id: String,
        stream_id: String,
        text: String,
    },
    /// Agents only: a conversation was created or changed (queue, owner, new message).
    Conversation {
        conversation: ConversationSummary,
    },
    /// Agents only: who is online now.
    Presence {
        agents: Vec<AgentPresence>,
    },
    /// A frame type this build does not know (from a newer server): ignored.
    #[serde(other)]
    Unknown,
}

/// Why a client frame was refused, as sent back in an `error` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub code: ErrorCode,
    pub message: String,
}

impl FrameError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The `error` frame for this refusal.
    pub fn to_frame(&self, client_msg_id: Option<String>) -> ServerFrame {
        ServerFrame::Error {
            code: self.code,
            message: self.message.clone(),
            client_msg_id,
        }
    }
}

const CLIENT_TYPES: &[&str] = &[
    "hello",
    "subscribe",
    "send",
    "typing",
    "read",
    "request_human",
    "history",
    "ping",
];

/// Parses and validates one client text frame.
pub fn decode_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(FrameError::new(
            ErrorCode::TooLarge,
            format!("frame exceeds {MAX_FRAME_BYTES} bytes"),
        ));
    }
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| FrameError::new(ErrorCode::InvalidFrame, format!("not JSON: {e}")))?;
    match value.get("type").and_then(|t| t.as_str()) {
        None => {
            return Err(FrameError::new(
                ErrorCode::InvalidFrame,
                "frame must be an object with a string `type`",
            ))
        }
        Some(t) if !CLIENT_TYPES.contains(&t) => {
            return Err(FrameError::new(
                ErrorCode::UnknownType,
                format!("unknown frame type `{t}`"),
            ))
        }
        Some(_) => {}
    }
    let frame: ClientFrame = serde_json::from_value(value)
        .map_err(|e| FrameError::new(ErrorCode::InvalidFrame, e.to_string()))?;
    validate(&frame)?;
    Ok(frame)
}

/// Checks a message text: not blank, at most `MAX_TEXT_CHARS` characters.
pub fn validate_text(text: &str) -> Result<(), FrameError> {
    if is_blank(text) {
        return Err(FrameError::new(ErrorCode::InvalidInput, "text is empty"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(FrameError::new(
            ErrorCode::TooLarge,
            format!("text exceeds {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(())
}

/// True when `text` shows nothing: only whitespace, zero-width characters (U+200B–U+200D,
/// U+2060, U+FEFF), other format characters or controls.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|c| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}' | '\u{180E}')
    })
}

/// Checks a new message the way a `send` frame is checked (id length, then text).
pub fn validate_message(client_msg_id: &str, text: &str) -> Result<(), FrameError> {
    validate_message_with(client_msg_id, text, &[])
}

/// Checks a new message with attachments the way a `send` frame is checked: the id, then the
/// content (`validate_content`).
pub fn validate_message_with(
    client_msg_id: &str,
    text: &str,
    attachments: &[String],
) -> Result<(), FrameError> {
    if client_msg_id.is_empty() || client_msg_id.len() > MAX_CLIENT_MSG_ID_BYTES {
        return Err(FrameError::new(
            ErrorCode::InvalidInput,
            format!("client_msg_id must be 1-{MAX_CLIENT_MSG_ID_BYTES} bytes"),
        ));
    }
    validate_content(text, attachments)
}

/// Checks what a message carries: at most `MAX_ATTACHMENTS_PER_MESSAGE` attachment ids of
/// 1–`MAX_ATTACHMENT_ID_BYTES` bytes, and the text (which may be empty when files come with it).
pub fn validate_content(text: &str, attachments: &[String]) -> Result<(), FrameError> {
    if attachments.len() > MAX_ATTACHMENTS_PER_MESSAGE {
        return Err(FrameError::new(
            ErrorCode::TooLarge,
            format!("a message carries at most {MAX_ATTACHMENTS_PER_MESSAGE} attachments"),
        ));
    }
    if attachments
        .iter()
        .any(|a| a.is_empty() || a.len() > MAX_ATTACHMENT_ID_BYTES)
    {
        return Err(FrameError::new(
            ErrorCode::InvalidInput,
            format!("attachment ids are 1-{MAX_ATTACHMENT_ID_BYTES} bytes"),
        ));
    }
    if attachments.is_empty() {
        return validate_text(text);
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(FrameError::new(
            ErrorCode::TooLarge,
            format!("text exceeds {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Checks a decoded frame's values (ids, text length, limits, version).
fn validate(frame: &ClientFrame) -> Result<(), FrameError> {
    let bad = |m: String| Err(FrameError::new(ErrorCode::InvalidInput, m));
    match frame {
        ClientFrame::Send {
            client_msg_id,
            text,
            attachments,
            ..
        } => validate_message_with(client_msg_id, text, attachments)?,
        ClientFrame::History { limit, .. } if *limit == 0 || *limit > MAX_HISTORY_LIMIT => {
            return bad(format!("limit must be 1-{MAX_HISTORY_LIMIT}"));
        }
        ClientFrame::Hello { version, .. } if *version != PROTOCOL_VERSION => {
            return Err(FrameError::new(
                ErrorCode::UnsupportedVersion,
                format!("protocol version {version} is not supported (server speaks {PROTOCOL_VERSION})"),
            ));
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_have_pinned_wire_forms() {
        let send = ClientFrame::Send {
            conversation_id: "c1".into(),
            client_msg_id: "m-1".into(),
            text: "多久发货？".into(),
            attachments: vec![],
        };
        assert_eq!(
            serde_json::to_string(&send).unwrap_or_default(),
            r#"{"type":"send","conversation_id":"c1","client_msg_id":"m-1","text":"多久发货？"}"#
        );
        assert_eq!(
            decode_client_frame(
                r#"{"type":"send","conversation_id":"c1","client_msg_id":"m-2","text":"","attachments":["att_1"]}"#
            ),
            Ok(ClientFrame::Send {
                conversation_id: "c1".into(),
                client_msg_id: "m-2".into(),
                text: String::new(),
                attachments: vec!["att_1".into()],
            }),
            "a message of files alone needs no text"
        );
        assert_eq!(
            decode_client_frame(r#"{"type":"ping"}"#),
            Ok(ClientFrame::Ping {})
        );
        assert_eq!(
            decode_client_frame(r#"{"type":"subscribe","conversation_id":"c1"}"#),
            Ok(ClientFrame::Subscribe {
                conversation_id: "c1".into(),
                after_seq: 0
            })
        );
    }

    #[test]
    fn file_names_are_percent_encoded() {
        assert_eq!(percent_encode("发票 1.pdf"), "%E5%8F%91%E7%A5%A8%201.pdf");
        assert_eq!(percent_encode("a\"b;c&d=e"), "a%22b%3Bc%26d%3De");
    }

    #[test]
    fn server_frames_have_pinned_wire_forms() {
        let msg = ServerFrame::Message {
            message: Message {
                conversation_id: "c1".into(),
                seq: 3,
                author: Author {
                    kind: AuthorKind::Bot,
                    name: None,
                },
                text: "Orders ship the same day.".into(),
                sent_at: "2026-11-24T10:00:00Z".into(),
                client_msg_id: None,
                sources: vec![Source {
                    id: "en-ship-time".into(),
                    title: "When will my order ship?".into(),
                    source: "faq-en.csv".into(),
                    score: 0.5,
                }],
                quick_replies: vec![],
                attachments: vec![],
                route_trace: None,
            },
        };
        assert_eq!(
            serde_json::to_string(&msg).unwrap_or_default(),
            r#"{"type":"message","message":{"conversation_id":"c1","seq":3,"author":{"kind":"bot"},"text":"Orders ship the same day.","sent_at":"2026-11-24T10:00:00Z","sources":[{"id":"en-ship-time","title":"When will my order ship?","source":"faq-en.csv","score":0.5}]}}"#
        );
        let err = FrameError::new(ErrorCode::TooLarge, "x").to_frame(Some("m-1".into()));
        assert_eq!(
            serde_json::to_string(&err).unwrap_or_default(),
            r#"{"type":"error","code":"too_large","message":"x","client_msg_id":"m-1"}"#
        );
    }

    #[test]
    fn bad_frames_get_stable_codes() {
        let code = |s: &str| decode_client_frame(s).err().map(|e| e.code);
        assert_eq!(code("not json"), Some(ErrorCode::InvalidFrame));
        assert_eq!(code("[1,2]"), Some(ErrorCode::InvalidFrame));
        assert_eq!(code(r#"{"type":"dance"}"#), Some(ErrorCode::UnknownType));
        assert_eq!(
            code(r#"{"type":"send","conversation_id":"c"}"#),
            Some(ErrorCode::InvalidFrame)
        );
        assert_eq!(
            code(r#"{"type":"ping","extra":1}"#),
            Some(ErrorCode::InvalidFrame),
            "unknown fields are refused"
        );
        assert_eq!(
            code(r#"{"type":"send","conversation_id":"c","client_msg_id":"m","text":"  "}"#),
            Some(ErrorCode::InvalidInput)
        );
        let long = format!(
            r#"{{"type":"send","conversation_id":"c","client_msg_id":"m","text":"{}"}}"#,
            "长".repeat(MAX_TEXT_CHARS + 1)
        );
        assert_eq!(code(&long), Some(ErrorCode::TooLarge));
        let many = format!(
            r#"{{"type":"send","conversation_id":"c","client_msg_id":"m","text":"","attachments":[{}]}}"#,
            ["\"a\""; MAX_ATTACHMENTS_PER_MESSAGE + 1].join(",")
        );
        assert_eq!(code(&many), Some(ErrorCode::TooLarge));
        assert_eq!(
            code(
                r#"{"type":"send","conversation_id":"c","client_msg_id":"m","text":" ","attachments":[""]}"#
            ),
            Some(ErrorCode::InvalidInput),
            "an empty attachment id"
        );
        assert_eq!(
            code(&" ".repeat(MAX_FRAME_BYTES + 1)),
            Some(ErrorCode::TooLarge)
        );
        assert_eq!(
            code("{\"type\":\"send\",\"conversation_id\":\"c\",\"client_msg_id\":\"m\",\"text\":\"\u{200B}\u{200D} \u{FEFF}\"}"),
            Some(ErrorCode::InvalidInput),
            "zero-width characters alone are blank"
        );
        assert!(!is_blank("好"));
        assert!(!is_blank("\u{200B}ok"));
        assert_eq!(
            code(r#"{"type":"hello","version":2,"token":"t"}"#),
            Some(ErrorCode::UnsupportedVersion)
        );
        assert_eq!(
            code(r#"{"type":"history","conversation_id":"c","before_seq":9,"limit":0}"#),
            Some(ErrorCode::InvalidInput)
        );
    }
}
