//! The one error vocabulary: every code the server sends, over REST (`{"error": {"code", …}}`) and
//! in WebSocket `error` frames, with the same snake_case names on both. The HTTP status of each code
//! is chosen in one place on the server (`http/error.rs`); whether a client may retry is decided
//! here, so every client agrees.

use serde::{Deserialize, Serialize};

/// Stable error codes (snake_case on the wire). `docs/protocol.md` has the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    // ----- malformed input -----
    /// Not JSON, or JSON that is not a frame (missing or mistyped fields).
    InvalidFrame,
    /// A frame `type` this server does not know.
    UnknownType,
    /// A REST body that is not JSON.
    InvalidJson,
    /// A REST body, query string or path that does not have the expected fields or types.
    InvalidRequest,
    /// A field's value is out of range (empty text, bad id, limit too big, weak password).
    InvalidInput,
    /// A REST body sent without `Content-Type: application/json`.
    UnsupportedMediaType,
    /// A request body over the size limit.
    PayloadTooLarge,
    /// A frame or message text over its size limit.
    TooLarge,
    /// The endpoint exists but not with this HTTP method.
    MethodNotAllowed,
    /// No such endpoint, conversation or record.
    NotFound,
    // ----- who you are -----
    /// No valid token: missing, invalid, expired or revoked (or no `hello` yet).
    Unauthorized,
    /// Wrong agent name or password.
    InvalidCredentials,
    /// The token does not reach this resource.
    Forbidden,
    /// The site only chats with verified users and none was given.
    IdentityRequired,
    /// The identity hash does not match the user id.
    IdentityInvalid,
    /// The page's `Origin` is not on the site's allow-list.
    OriginNotAllowed,
    /// No site with this key.
    UnknownSite,
    /// The client speaks a protocol version this server does not.
    UnsupportedVersion,
    // ----- state -----
    /// The agent does not own the conversation (claim it first).
    NotOwner,
    /// The conversation is resolved and takes no new messages.
    ConversationClosed,
    /// The change conflicts with the current state (claimed by someone else, at capacity, …).
    Conflict,
    /// A record with this key exists already.
    AlreadyExists,
    /// No knowledge base with this name.
    KbNotFound,
    /// The knowledge base was embedded with another model than the one loaded.
    ModelMismatch,
    /// An imported file could not be parsed (the message says where).
    ParseError,
    /// An imported file of a kind Kefu cannot read.
    UnsupportedFile,
    /// A model name Kefu does not know.
    UnknownModel,
    // ----- load and availability (retry later) -----
    /// Too many requests or frames; slow down.
    RateLimited,
    /// Too many open connections from this address or in total.
    TooManyConnections,
    /// The server sheds load; retry with backoff.
    Overloaded,
    /// The server is still loading its model and stores.
    NotReady,
    /// The server was built without something it was asked for (the web widget, a model).
    Unavailable,
    /// A fault on the server (database, disk, …); details are in its log, never in the reply.
    Internal,
    /// A code this client does not know (sent by a newer server).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// Every code, in table order.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::InvalidFrame,
        ErrorCode::UnknownType,
        ErrorCode::InvalidJson,
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidInput,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::PayloadTooLarge,
        ErrorCode::TooLarge,
        ErrorCode::MethodNotAllowed,
        ErrorCode::NotFound,
        ErrorCode::Unauthorized,
        ErrorCode::InvalidCredentials,
        ErrorCode::Forbidden,
        ErrorCode::IdentityRequired,
        ErrorCode::IdentityInvalid,
        ErrorCode::OriginNotAllowed,
        ErrorCode::UnknownSite,
        ErrorCode::UnsupportedVersion,
        ErrorCode::NotOwner,
        ErrorCode::ConversationClosed,
        ErrorCode::Conflict,
        ErrorCode::AlreadyExists,
        ErrorCode::KbNotFound,
        ErrorCode::ModelMismatch,
        ErrorCode::ParseError,
        ErrorCode::UnsupportedFile,
        ErrorCode::UnknownModel,
        ErrorCode::RateLimited,
        ErrorCode::TooManyConnections,
        ErrorCode::Overloaded,
        ErrorCode::NotReady,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
        ErrorCode::Unknown,
    ];

    /// The wire name (`too_large`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidFrame => "invalid_frame",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::IdentityRequired => "identity_required",
            ErrorCode::IdentityInvalid => "identity_invalid",
            ErrorCode::OriginNotAllowed => "origin_not_allowed",
            ErrorCode::UnknownSite => "unknown_site",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::NotOwner => "not_owner",
            ErrorCode::ConversationClosed => "conversation_closed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::KbNotFound => "kb_not_found",
            ErrorCode::ModelMismatch => "model_mismatch",
            ErrorCode::ParseError => "parse_error",
            ErrorCode::UnsupportedFile => "unsupported_file",
            ErrorCode::UnknownModel => "unknown_model",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::NotReady => "not_ready",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }

    /// The code with this wire name; `Unknown` for names this build does not know.
    pub fn parse(name: &str) -> ErrorCode {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == name)
            .unwrap_or(ErrorCode::Unknown)
    }

    /// True for a passing condition (load, start-up, a server fault, or a code this client does
    /// not know): the same request may succeed later, so clients retry with backoff. Everything
    /// else is a definite answer about this request.
    pub const fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited
                | ErrorCode::TooManyConnections
                | ErrorCode::Overloaded
                | ErrorCode::NotReady
                | ErrorCode::Unavailable
                | ErrorCode::Internal
                | ErrorCode::Unknown
        )
    }

    /// True for refusals that stop a chat client for good: retrying the same site key, identity
    /// or page can never succeed (the operator must change something).
    pub const fn stops_client(self) -> bool {
        matches!(
            self,
            ErrorCode::UnknownSite
                | ErrorCode::IdentityRequired
                | ErrorCode::IdentityInvalid
                | ErrorCode::OriginNotAllowed
                | ErrorCode::UnsupportedVersion
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_serde_and_parse_back() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(code).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(ErrorCode::parse(code.as_str()), *code);
        }
        let names: std::collections::HashSet<_> =
            ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len(), "names are unique");
    }

    #[test]
    fn unknown_codes_from_a_newer_server_are_transient() {
        let code: ErrorCode =
            serde_json::from_str("\"brand_new_code\"").unwrap_or(ErrorCode::Conflict);
        assert_eq!(code, ErrorCode::Unknown);
        assert!(code.is_transient());
        assert_eq!(ErrorCode::parse("internal_error"), ErrorCode::Unknown);
    }

    #[test]
    fn only_definite_refusals_stop_a_client() {
        for code in ErrorCode::ALL {
            assert!(
                !(code.is_transient() && code.stops_client()),
                "{code} cannot be both"
            );
        }
        assert!(ErrorCode::Internal.is_transient());
        assert!(ErrorCode::Overloaded.is_transient());
        assert!(ErrorCode::UnknownSite.stops_client());
        assert!(!ErrorCode::Internal.stops_client());
    }
}
