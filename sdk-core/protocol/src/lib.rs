//! Kefu's wire protocol: the JSON text frames exchanged over `GET /v1/ws`, the ids they carry and
//! the stable error codes. Serde types only, no I/O: the server and every client (native SDK,
//! bindings, web widget) share this crate, so both ends agree by construction.
//! The protocol is described for humans in `docs/protocol.md`.

pub mod errors;
pub mod frames;

pub use errors::ErrorCode;
pub use frames::*;
