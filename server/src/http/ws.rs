//! `GET /v1/ws`: one WebSocket session. The client says `hello` with its token, subscribes to
//! conversations (replay after its last seq, then live), and sends messages, typing and read
//! frames. Bad frames get an `error` frame with a stable code and the session goes on.

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
use kefu_protocol::{
    decode_client_frame, Author, AuthorKind, ClientFrame, ErrorCode, FrameError, ServerFrame,
    MAX_FRAME_BYTES, PROTOCOL_VERSION,
};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::auth::origin;
use super::error::ApiError;
use crate::accounts::{AccountError, Accounts, Principal};
use crate::conversation::{ConnectionHandle, ConversationError, Conversations, Outbound, Role};
use crate::state::{AppState, ConnectionSlot};
use crate::store::Agent;

/// Frames larger than this close the connection (1009); between `MAX_FRAME_BYTES` and this they
/// are refused with `too_large` and the session goes on.
pub const MAX_WS_MESSAGE_BYTES: usize = 64 * 1024;
/// Read and write buffer per WebSocket connection.
pub const WS_BUFFER_BYTES: usize = 4 * 1024;
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

    /// Sends a live item unless the replay already sent that seq.
    async fn forward<S>(&mut self, sink: &mut S, item: Outbound) -> Result<(), ()>
    where
        S: SinkExt<WsMessage> + Unpin,
    {
        let text = match item {
            Outbound::Message {
                conversation_id,
                seq,
                visitor_json,
                agent_json,
            } => {
                let last = self
                    .sent_seq
                    .entry(conversation_id.to_string())
                    .or_insert(0);
                if seq <= *last {
                    return Ok(());
                }
                *last = seq;
                if self.agent.is_some() {
                    agent_json
                } else {
                    visitor_json
                }
            }
            Outbound::Frame(f) => f,
        };
        sink.send(WsMessage::Text(Utf8Bytes::from(&*text)))
            .await
            .map_err(|_| ())
    }

    /// Sends the replays of subscriptions made by the last frame, oldest first.
    async fn flush_replays<S>(&mut self, sink: &mut S) -> Result<(), Option<(u16, &'static str)>>
    where
        S: SinkExt<WsMessage> + Unpin,
    {
        let pending = std::mem::take(&mut self.pending_replays);
        let Some(who) = self.principal.clone() else {
            return Ok(());
        };
        for (conv, after) in pending {
            let mut after = after;
            loop {
                let page = match self
                    .conversations
                    .messages_after(&who, &conv, after, REPLAY_PAGE)
                    .await
                {
                    Ok((_, p)) => p,
                    Err(e) => {
                        let frame = ApiError::from(e).to_frame(None);
                        send(sink, &frame).await.map_err(|_| None)?;
                        break;
                    }
                };
                let with_trace = self.agent.is_some();
                for m in &page {
                    after = m.seq;
                    let frame = ServerFrame::Message {
                        message: m.to_wire(with_trace),
                    };
                    send(sink, &frame).await.map_err(|_| None)?;
                }
                let last = self.sent_seq.entry(conv.clone()).or_insert(0);
                *last = (*last).max(after);
                if page.len() < REPLAY_PAGE as usize {
                    break;
                }
            }
        }
        Ok(())
    }

    async fn handle_text(
        &mut self,
        text: &str,
        out: &mut Vec<ServerFrame>,
        rx: &mut Option<mpsc::Receiver<Outbound>>,
    ) -> Next {
        let frame = match decode_client_frame(text) {
            Ok(f) => f,
            Err(e) => {
                metrics::counter!("kefu_ws_frames_rejected_total", "code" => e.code.as_str())
                    .increment(1);
                out.push(e.to_frame(client_msg_id_of(text)));
                return Next::Continue;
            }
        };
        let Some(principal) = self.principal.clone() else {
            return match frame {
                ClientFrame::Hello { token, .. } => self.hello(&token, out, rx).await,
                ClientFrame::Ping {} => {
                    out.push(ServerFrame::Pong);
                    Next::Continue
                }
                _ => {
                    out.push(error_frame(
                        ErrorCode::Unauthorized,
                        "say hello with a token first",
                        None,
                    ));
                    Next::Continue
                }
            };
        };
        let result = self.dispatch(&principal, frame, out).await;
        if let Err((e, id)) = result {
            metrics::counter!("kefu_ws_frames_rejected_total", "code" => e.code.as_str())
                .increment(1);
            out.push(e.to_frame(id));
        }
        Next::Continue
    }

    async fn hello(
        &mut self,
        token: &str,
        out: &mut Vec<ServerFrame>,
        rx: &mut Option<mpsc::Receiver<Outbound>>,
    ) -> Next {
        let principal = match self.accounts.resolve_token(token).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                out.push(error_frame(
                    ErrorCode::Unauthorized,
                    "the token is invalid, expired or revoked",
                    None,
                ));
                return Next::Continue;
            }
            Err(e) => return handshake_fault(e, out),
        };
        let (role, id) = match &principal {
            Principal::Visitor {
                visitor_id,
                site_key,
            } => {
                let site = match self.accounts.site(site_key).await {
                    Ok(site) => site,
                    Err(e) => return handshake_fault(e, out),
                };
                if !self
                    .accounts
                    .origin_allowed(origin(&self.headers), site.as_ref())
                {
                    out.push(error_frame(
                        ErrorCode::OriginNotAllowed,
                        "this page's origin is not on the site's allow-list",
                        None,
                    ));
                    return Next::Close(1008, "origin not allowed");
                }
                (Role::Visitor, visitor_id.clone())
            }
            Principal::Agent { agent_id } => {
                if origin(&self.headers).is_some_and(|o| !self.accounts.is_own_origin(o)) {
                    out.push(error_frame(
                        ErrorCode::OriginNotAllowed,
                        "agent consoles connect from this server's own origin",
                        None,
                    ));
                    return Next::Close(1008, "origin not allowed");
                }
                match self.accounts.agent(agent_id).await {
                    Ok(Some(agent)) => {
                        let name = agent.name.clone();
                        self.agent = Some(agent);
                        (Role::Agent, name)
                    }
                    Ok(None) => {
                        out.push(error_frame(
                            ErrorCode::Unauthorized,
                            "the agent account no longer exists",
                            None,
                        ));
                        return Next::Continue;
                    }
                    Err(e) => return handshake_fault(e, out),
                }
            }
            Principal::Admin => {
                out.push(error_frame(
                    ErrorCode::Forbidden,
                    "admin keys are for the REST API only",
                    None,
                ));
                return Next::Continue;
            }
        };
        let (handle, receiver) = self.conversations.connect(role);
        self.handle = Some(handle);
        *rx = Some(receiver);
        self.principal = Some(principal);
        out.push(ServerFrame::Welcome {
            version: PROTOCOL_VERSION,
            role: match role {
                Role::Visitor => "visitor".into(),
                Role::Agent => "agent".into(),
            },
            id,
        });
        if let Some(agent) = &self.agent {
            self.conversations.agent_online(agent).await;
        }
        Next::Continue
    }

    async fn dispatch(
        &mut self,
        who: &Principal,
        frame: ClientFrame,
        out: &mut Vec<ServerFrame>,
    ) -> Result<(), (ApiError, Option<String>)> {
        let conv = &self.conversations;
        match frame {
            ClientFrame::Hello { .. } => Err((ApiError::invalid_input("already said hello"), None)),
            ClientFrame::Ping {} => {
                out.push(ServerFrame::Pong);
                Ok(())
            }
            ClientFrame::Subscribe {
                conversation_id,
                after_seq,
            } => {
                let Some(handle) = &self.handle else {
                    return Err((ApiError::unauthorized("say hello with a token first"), None));
                };
                let state = conv
                    .subscribe(who, handle, &conversation_id)
                    .await
                    .map_err(no_id)?;
                out.push(state);
                // Replay after the frames of this turn; live messages up to then are skipped by seq.
                self.pending_replays.push((conversation_id, after_seq));
                Ok(())
            }
            ClientFrame::Send {
                conversation_id,
                client_msg_id,
                text,
            } => {
                let id = Some(client_msg_id.clone());
                let m = match (&self.agent, who) {
                    (Some(agent), _) => {
                        conv.agent_send(agent, &conversation_id, &client_msg_id, &text)
                            .await
                    }
                    (None, Principal::Visitor { .. }) => {
                        conv.visitor_send(who, &conversation_id, &client_msg_id, &text)
                            .await
                    }
                    _ => Err(ConversationError::Forbidden),
                }
                .map_err(|e| with_id(e, id))?;
                out.push(ServerFrame::Ack {
                    client_msg_id,
                    conversation_id,
                    seq: m.seq,
                });
                Ok(())
            }
            ClientFrame::Typing {
                conversation_id,
                typing,
            } => {
                conv.authorize(who, &conversation_id).await.map_err(no_id)?;
                let frame = ServerFrame::Typing {
                    conversation_id: conversation_id.clone(),
                    author: self.author(),
                    typing,
                };
                self.publish_except_self(&conversation_id, &frame);
                Ok(())
            }
            ClientFrame::Read {
                conversation_id,
                seq,
            } => {
                conv.authorize(who, &conversation_id).await.map_err(no_id)?;
                let frame = ServerFrame::Read {
                    conversation_id: conversation_id.clone(),
                    author: self.author(),
                    seq,
                };
                self.publish_except_self(&conversation_id, &frame);
                Ok(())
            }
            ClientFrame::RequestHuman { conversation_id } => {
                if self.agent.is_some() {
                    return Err((ApiError::forbidden("only visitors ask for a human"), None));
                }
                conv.request_human(who, &conversation_id)
                    .await
                    .map_err(no_id)
            }
            ClientFrame::History {
                conversation_id,
                before_seq,
                limit,
            } => {
                let page = conv
                    .messages_before(who, &conversation_id, before_seq, limit + 1)
                    .await
                    .map_err(no_id)?;
                let has_more = page.len() > limit as usize;
                let with_trace = self.agent.is_some();
                let messages = page
                    .iter()
                    .skip(usize::from(has_more))
                    .map(|m| m.to_wire(with_trace))
                    .collect();
                out.push(ServerFrame::History {
                    conversation_id,
                    messages,
                    has_more,
                });
                Ok(())
            }
        }
    }

    fn author(&self) -> Author {
        match &self.agent {
            Some(a) => Author {
                kind: AuthorKind::Agent,
                name: Some(a.display_name.clone()),
            },
            None => Author {
                kind: AuthorKind::Visitor,
                name: None,
            },
        }
    }

    fn publish_except_self(&self, conversation_id: &str, frame: &ServerFrame) {
        if let Ok(json) = serde_json::to_string(frame) {
            let me = self.handle.as_ref().map(|h| h.id);
            self.conversations.relay(conversation_id, &json, me);
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

/// A fault while checking a `hello` (a database hiccup) is not a refusal: the client is told
/// `internal` and the connection closes with 1011, so it reconnects with backoff.
fn handshake_fault(e: AccountError, out: &mut Vec<ServerFrame>) -> Next {
    out.push(ApiError::from(e).to_frame(None));
    Next::Close(1011, "internal error: reconnect")
}

fn no_id(e: ConversationError) -> (ApiError, Option<String>) {
    (e.into(), None)
}

fn with_id(e: ConversationError, id: Option<String>) -> (ApiError, Option<String>) {
    (e.into(), id)
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
