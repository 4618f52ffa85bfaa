//! The client's one public error type.

use serde::Serialize;

/// Why a client call failed or a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClientError {
    /// The configuration or an argument is invalid (empty text, bad URL, …).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The server refused, with its stable error code (`too_large`, `identity_required`, …).
    #[error("{code}: {message}")]
    Server { code: String, message: String },
    /// The network failed; the client keeps retrying.
    #[error("network: {0}")]
    Network(String),
    /// The action needs a live connection (typing, history, request a human).
    #[error("not connected")]
    Offline,
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
}
