//! `GET /v1/ws`: one WebSocket session. The client says `hello` with its token, subscribes to
//! conversations (replay after its last seq, then live), and sends messages, typing and read
//! frames. Bad frames get an `error` frame with a stable code and the session goes on.
//!
//! `mod.rs` accepts the upgrade and runs the socket loop (limits, timeouts, close codes);
//! `handshake` checks `hello`; `dispatch` handles the frames of a signed-in session; `replay`
//! sends the history after a subscription and keeps live messages from repeating it.

mod dispatch;
mod handshake;
mod replay;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota};
use kefu_protocol::{ErrorCode, FrameError, ServerFrame, MAX_FRAME_BYTES};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::auth::origin;
use super::error::ApiError;
use crate::accounts::{Accounts, Principal};
use crate::conversation::{ConnectionHandle, Conversations, Outbound};
use crate::state::{AppState, ConnectionSlot};
use crate::store::Agent;

/// Frames larger than this close the connection (1009); between `MAX_FRAME_BYTES` and this they
/// are refused with `too_large` and the session goes on.
pub const MAX_WS_MESSAGE_BYTES: usize = 64 * 1024;
/// Read and write buffer per WebSocket connection: a chat frame is a few hundred bytes, and a
/// longer message grows the read buffer while it arrives (1 KiB instead of 4 KiB took the server's
/// memory per held session from 22 to 19 KB; docs/performance.md).
pub const WS_BUFFER_BYTES: usize = 1024;
/// Messages replayed per store read on `subscribe`.
const REPLAY_PAGE: u32 = 200;
/// A session that says nothing (not even `ping`) this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// A session must say `hello` this soon.
const HELLO_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Deserialize)]
pub struct WsQuery {
    /// Optional: lets the upgrade itself check `Origin` against this site's allow-list.
    #[serde(default)]
    pub site_key: Option<String>,
}

/// Accepts the upgrade after the per-IP connection limit and, when `site_key` is given, the
/// Origin allow-list.
pub async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    permit: Option<axum::Extension<super::server::ConnectionPermit>>,
    Query(q): Query<WsQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let services = super::ready(&state)?;
    if let Some(key) = &q.site_key {
        let site = services.accounts.site(key).await?;
        if !services
            .accounts
            .origin_allowed(origin(&headers), site.as_ref())
        {
            return Err(ApiError::origin_not_allowed());
        }
    }
    let client = state.client_ip(peer.ip(), &headers);
    let slot = state.open_connection(client).ok_or_else(|| {
        ApiError::new(
            ErrorCode::TooManyConnections,
            "too many open connections from this address",
        )
    })?;
    let conversations = Arc::clone(&services.conversations);
    let accounts = services.accounts.clone();
    // The session holds the connection's share of the global cap for as long as it is open.
    let permit = permit.and_then(|p| p.0.take());
    Ok(ws
        // Small buffers: thousands of mostly idle chats, not bulk transfer (128 KiB each by default).
        .read_buffer_size(WS_BUFFER_BYTES)
        .write_buffer_size(WS_BUFFER_BYTES)
        .max_message_size(MAX_WS_MESSAGE_BYTES)
        .max_frame_size(MAX_WS_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            let session = Session {
                conversations,
                accounts,
                _permit: permit,
                headers,
                state,
                _slot: slot,
                principal: None,
                agent: None,
                handle: None,
                sent_seq: HashMap::new(),
                pending_replays: Vec::new(),
            };
            session.run(socket).await;
        })
        .into_response())
}

struct Session {
    conversations: Arc<Conversations>,
    accounts: Accounts,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
    headers: HeaderMap,
    state: AppState,
    _slot: ConnectionSlot,
    principal: Option<Principal>,
    agent: Option<Agent>,
    handle: Option<ConnectionHandle>,
    /// Highest seq sent per followed conversation (replay and live overlap).
    sent_seq: HashMap<String, u64>,
    /// Subscriptions made by the frame being handled whose replay is still to send.
    pending_replays: Vec<(String, u64)>,
}

/// What the reader decided to do after one frame.
enum Next {
    Continue,
    Close(u16, &'static str),
}

impl Session {
    async fn run(mut self, socket: WebSocket) {
        let (mut sink, mut stream) = socket.split();
        let mut rx: Option<mpsc::Receiver<Outbound>> = None;
        let mut shutdown = self.state.shutdown_signal();
        let fps =
            NonZeroU32::new(self.state.limits.frames_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = fps.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
        let limiter = DefaultDirectRateLimiter::direct(Quota::per_second(fps).allow_burst(burst));
        let mut idle_deadline = tokio::time::Instant::now() + HELLO_TIMEOUT;
        metrics::gauge!("kefu_ws_connections").increment(1.0);
        let kicked = Arc::new(tokio::sync::Notify::new());

        let close = loop {
            let kick = self
                .handle
                .as_ref()
                .map(|h| Arc::clone(&h.kicked))
                .unwrap_or_else(|| Arc::clone(&kicked));
            tokio::select! {
                incoming = stream.next() => {
                    let text = match incoming {
                        Some(Ok(WsMessage::Text(t))) => t,
                        Some(Ok(WsMessage::Binary(_))) => {
                            let e = FrameError { code: ErrorCode::InvalidFrame, message: "binary frames are not supported; send JSON text".into() };
                            if send(&mut sink, &e.to_frame(None)).await.is_err() { break None; }
                            continue;
                        }
                        Some(Ok(WsMessage::Close(_))) | None => break None,
                        Some(Ok(_)) => continue, // ping/pong handled by the library
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "websocket read failed");
                            break Some(close_for_read_error(&e));
                        }
                    };
                    // Before `hello` the deadline stays fixed: chatter does not keep an
                    // unauthenticated connection open.
                    if self.principal.is_some() {
                        idle_deadline = tokio::time::Instant::now() + IDLE_TIMEOUT;
                    }
                    if limiter.check().is_err() {
                        metrics::counter!("kefu_ws_frames_rejected_total", "code" => "rate_limited").increment(1);
                        let e = FrameError { code: ErrorCode::RateLimited, message: "too many frames; slow down".into() };
                        if send(&mut sink, &e.to_frame(client_msg_id_of(&text))).await.is_err() { break None; }
                        continue;
                    }
                    let mut out = Vec::new();
                    let next = self.handle_text(&text, &mut out, &mut rx).await;
                    let mut failed = false;
                    for frame in out {
                        if send(&mut sink, &frame).await.is_err() { failed = true; break; }
                    }
                    if failed { break None; }
                    if let Next::Close(code, reason) = next { break Some((code, reason)); }
                    if self.principal.is_some() {
                        idle_deadline = tokio::time::Instant::now() + IDLE_TIMEOUT;
                    }
                    // Replays for new subscriptions are sent after the frames above.
                    if let Err(code) = self.flush_replays(&mut sink).await {
                        break code;
                    }
                }
                Some(item) = recv(&mut rx) => {
                    if self.forward(&mut sink, item).await.is_err() { break None; }
                }
                _ = kick.notified() => {
                    break Some((1013, "too slow: reconnect and resume from your last seq"));
                }
                _ = shutdown.changed() => {
                    break Some((1001, "server shutting down"));
                }
                _ = tokio::time::sleep_until(idle_deadline) => {
                    break Some((1000, "idle timeout"));
                }
            }
        };
        if let Some((code, reason)) = close {
            let _ = sink
                .send(WsMessage::Close(Some(CloseFrame {
                    code,
                    reason: Utf8Bytes::from_static(reason),
                })))
                .await;
        }
        let _ = sink.close().await;
        self.finish().await;
        metrics::gauge!("kefu_ws_connections").decrement(1.0);
    }

    async fn finish(&mut self) {
        if let Some(h) = &self.handle {
            self.conversations.disconnect(h.id);
        }
        if let Some(agent) = &self.agent {
            self.conversations.agent_offline(&agent.id).await;
        }
    }
}

async fn recv(rx: &mut Option<mpsc::Receiver<Outbound>>) -> Option<Outbound> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn send<S>(sink: &mut S, frame: &ServerFrame) -> Result<(), ()>
where
    S: SinkExt<WsMessage> + Unpin,
{
    let json = serde_json::to_string(frame).map_err(|_| ())?;
    sink.send(WsMessage::Text(Utf8Bytes::from(json)))
        .await
        .map_err(|_| ())
}

fn error_frame(code: ErrorCode, message: &str, client_msg_id: Option<String>) -> ServerFrame {
    ServerFrame::Error {
        code,
        message: message.to_string(),
        client_msg_id,
    }
}

/// The `client_msg_id` of a refused frame, when it has one (so the sender can match the error).
fn client_msg_id_of(text: &str) -> Option<String> {
    if text.len() > MAX_FRAME_BYTES {
        return None;
    }
    serde_json::from_str::<serde_json::Value>(text)
        .ok()?
        .get("client_msg_id")?
        .as_str()
        .filter(|s| s.len() <= kefu_protocol::MAX_CLIENT_MSG_ID_BYTES)
        .map(str::to_string)
}

/// The close code for a connection whose frames could not be read: 1009 for an oversize
/// message, 1007 for text that is not UTF-8, 1002 for any other protocol violation (reserved
/// bits, unmasked client frames, bad opcodes).
fn close_for_read_error(e: &axum::Error) -> (u16, &'static str) {
    use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
    use tokio_tungstenite::tungstenite::Error as WsError;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(ws) = err.downcast_ref::<WsError>() {
            return match ws {
                WsError::Capacity(CapacityError::MessageTooLong { .. }) => {
                    (1009, "message too large")
                }
                WsError::Capacity(_) => (1009, "frame too large"),
                WsError::Utf8(_) => (1007, "invalid UTF-8 in a text frame"),
                WsError::Protocol(ProtocolError::InvalidCloseSequence) => (1002, "protocol error"),
                _ => (1002, "protocol error"),
            };
        }
        source = err.source();
    }
    (1002, "protocol error")
}
