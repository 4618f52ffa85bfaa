//! Kefu's one client core: everything a visitor chat needs, shared by the Android/iOS/Python
//! bindings (uniffi) and the web widget (wasm-bindgen).
//!
//! - [`Session`] is the sans-I/O state machine: frames in, events and frames out (resume cursor,
//!   outbox of unacknowledged messages, deduplication).
//! - [`Client`] drives a session over the network, reconnecting with jittered backoff, and
//!   reports every [`Event`] to one [`Listener`].
//! - Native and browser differ in three modules only: `platform` (tasks, timers), `transport`
//!   (REST and WebSocket) and `endpoints` (URL parsing).

mod backoff;
mod client;
mod endpoints;
mod error;
mod events;
pub mod platform;
mod session;
mod transport;

pub use backoff::Backoff;
pub use client::{Client, ClientConfig};
pub use error::ClientError;
pub use events::{ConnectionStatus, Event, Listener};
pub use kefu_protocol as protocol;
pub use session::{validate_text, Identity, Outgoing, Session};
