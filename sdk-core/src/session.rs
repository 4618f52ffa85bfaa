//! The sans-I/O visitor session: frames in, events and frames out. No sockets, no timers, no
//! threads: the driver (`client`) feeds it what happened and sends what it asks for.

use std::collections::VecDeque;

use kefu_protocol::{
    ClientFrame, ConversationState, ErrorCode, Message, Seq, ServerFrame, MAX_HISTORY_LIMIT,
    PROTOCOL_VERSION,
};

use crate::error::ClientError;
use crate::events::{ConnectionStatus, Event};

/// What the REST API returned when the visitor session was created (or what the host saved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub token: String,
    pub visitor_id: String,
    pub conversation_id: String,
}

/// A message the visitor wrote that the server has not acknowledged yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub client_msg_id: String,
    pub text: String,
    /// Uploaded files sent with it (ids).
    pub attachments: Vec<String>,
    /// Sent on the current connection (cleared on disconnect, so it is resent after resume).
    sent: bool,
}

/// Where the connection is, as far as the protocol goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Down,
    /// `hello` sent, waiting for `welcome`.
    Handshake,
    /// `welcome` received: frames flow.
    Up,
}

/// One visitor's conversation as the client sees it.
#[derive(Debug)]
pub struct Session {
    identity: Option<Identity>,
    link: Link,
    /// Highest seq delivered to the host: the resume cursor.
    last_seq: Seq,
    /// Lowest seq delivered (live or history): where the next `history` request starts.
    oldest_seq: Option<Seq>,
    outbox: VecDeque<Outgoing>,
    state: Option<ConversationState>,
    /// The server refused a send because the conversation is resolved: start a new one.
    needs_new_conversation: bool,
    /// The server refused the token: create a new visitor session.
    token_rejected: bool,
    /// The server failed the handshake for a passing reason: drop this connection and retry.
    reconnect: bool,
    /// A fatal refusal (wrong protocol version, origin not allowed): stop reconnecting.
    fatal: Option<ClientError>,
    /// `request_human` asked while offline: sent once connected.
    human_requested: bool,
    transmit: VecDeque<ClientFrame>,
    events: VecDeque<Event>,
}

impl Default for Session {
    fn default() -> Self {
        Self::new(None)
    }
}

impl Session {
    /// A session, optionally resuming a saved identity (token and conversation).
    pub fn new(identity: Option<Identity>) -> Self {
        Session {
            identity,
            link: Link::Down,
            last_seq: 0,
            oldest_seq: None,
            outbox: VecDeque::new(),
            state: None,
            needs_new_conversation: false,
            token_rejected: false,
            reconnect: false,
            fatal: None,
            human_requested: false,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    // ----- what the driver asks -----

    /// The identity in use, if a session exists.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// True when the driver must create a visitor session (REST) before connecting.
    pub fn needs_identity(&self) -> bool {
        self.identity.is_none() || self.token_rejected
    }

    /// True when the driver should drop the connection and reconnect with backoff (the server
    /// failed the handshake for a passing reason). Reading it clears it.
    pub fn take_reconnect(&mut self) -> bool {
        std::mem::take(&mut self.reconnect)
    }

    /// True when the driver must start a new conversation (REST) before resending.
    pub fn needs_new_conversation(&self) -> bool {
        self.needs_new_conversation && !self.outbox.is_empty()
    }

    /// Set when the server refused in a way reconnecting cannot fix.
    pub fn fatal(&self) -> Option<&ClientError> {
        self.fatal.as_ref()
    }

    /// True once `welcome` arrived on the current connection.
    pub fn is_up(&self) -> bool {
        self.link == Link::Up
    }

    /// The resume cursor: the highest seq delivered.
    pub fn last_seq(&self) -> Seq {
        self.last_seq
    }

    /// Messages not yet acknowledged, oldest first.
    pub fn outbox(&self) -> impl Iterator<Item = &Outgoing> {
        self.outbox.iter()
    }

    /// The conversation's owner, once known.
    pub fn state(&self) -> Option<ConversationState> {
        self.state
    }

    /// Next frame to send, if any.
    pub fn poll_transmit(&mut self) -> Option<ClientFrame> {
        self.transmit.pop_front()
    }

    /// Next event for the host, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ----- what happened to the connection -----

    /// A visitor session was created (REST): use it from now on.
    pub fn set_identity(&mut self, identity: Identity) {
        let changed_conversation = self
            .identity
            .as_ref()
            .is_none_or(|old| old.conversation_id != identity.conversation_id);
        if changed_conversation {
            self.reset_cursor();
        }
        self.token_rejected = false;
        self.events.push_back(Event::SessionStarted {
            visitor_id: identity.visitor_id.clone(),
            conversation_id: identity.conversation_id.clone(),
            token: identity.token.clone(),
        });
        self.identity = Some(identity);
    }

    /// A new conversation was started (REST) after the last one was resolved.
    pub fn set_conversation(&mut self, conversation_id: String) {
        if let Some(id) = self.identity.as_mut() {
            id.conversation_id = conversation_id.clone();
        }
        self.reset_cursor();
        self.needs_new_conversation = false;
        self.events
            .push_back(Event::ConversationStarted { conversation_id });
        if self.link == Link::Up {
            self.subscribe_and_flush();
        }
    }

    fn reset_cursor(&mut self) {
        self.last_seq = 0;
        self.oldest_seq = None;
        self.state = None;
    }

    /// The socket opened: authenticate.
    pub fn on_connected(&mut self) {
        let Some(identity) = &self.identity else {
            return;
        };
        self.link = Link::Handshake;
        self.transmit.push_back(ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            token: identity.token.clone(),
        });
    }

    /// The socket closed or failed: everything unacknowledged will be resent after resume.
    pub fn on_disconnected(&mut self) {
        self.link = Link::Down;
        self.reconnect = false;
        self.transmit.clear();
        for m in &mut self.outbox {
            m.sent = false;
        }
    }

    /// Reports a connection status change to the host.
    pub fn report_status(&mut self, status: ConnectionStatus) {
        self.events.push_back(Event::Connection { status });
    }

    /// Reports an error not tied to one message to the host.
    pub fn report_error(&mut self, error: ClientError) {
        self.events.push_back(Event::Error { error });
    }

    /// Resends messages the server asked to retry later (rate limited).
    pub fn resend_unsent(&mut self) {
        if self.link == Link::Up && !self.needs_new_conversation {
            self.flush_outbox();
        }
    }

    // ----- what the host asks -----

    /// Queues a message (sent now when connected, else after reconnecting).
    pub fn send_text(&mut self, client_msg_id: String, text: String) -> Result<(), ClientError> {
        self.send_message(client_msg_id, text, vec![])
    }

    /// Queues a message with uploaded files (`attachments`: their ids); the text may then be
    /// empty.
    pub fn send_message(
        &mut self,
        client_msg_id: String,
        text: String,
        attachments: Vec<String>,
    ) -> Result<(), ClientError> {
        validate_message(&text, &attachments)?;
        if self.outbox.iter().any(|m| m.client_msg_id == client_msg_id) {
            return Err(ClientError::InvalidInput(format!(
                "client_msg_id {client_msg_id} is already queued"
            )));
        }
        self.events.push_back(Event::MessageQueued {
            client_msg_id: client_msg_id.clone(),
            text: text.clone(),
        });
        self.outbox.push_back(Outgoing {
            client_msg_id,
            text,
            attachments,
            sent: false,
        });
        if self.link == Link::Up && !self.needs_new_conversation {
            self.flush_outbox();
        }
        Ok(())
    }

    /// Asks for a human agent (now, or as soon as the connection is back).
    pub fn request_human(&mut self) {
        match self.up_conversation() {
            Ok(conversation_id) => self
                .transmit
                .push_back(ClientFrame::RequestHuman { conversation_id }),
            Err(_) => self.human_requested = true,
        }
    }

    /// Asks for up to `limit` messages before the oldest one delivered so far.
    pub fn load_history(&mut self, limit: u32) -> Result<(), ClientError> {
        if limit == 0 || limit > MAX_HISTORY_LIMIT {
            return Err(ClientError::InvalidInput(format!(
                "limit must be 1-{MAX_HISTORY_LIMIT}"
            )));
        }
        let conversation_id = self.up_conversation()?;
        let before_seq = self.oldest_seq.unwrap_or(self.last_seq + 1);
        if before_seq <= 1 {
            self.events.push_back(Event::History {
                messages: Vec::new(),
                has_more: false,
            });
            return Ok(());
        }
        self.transmit.push_back(ClientFrame::History {
            conversation_id,
            before_seq,
            limit,
        });
        Ok(())
    }

    /// Tells the other side the visitor started or stopped typing (dropped while offline).
    pub fn set_typing(&mut self, typing: bool) {
        if let Ok(conversation_id) = self.up_conversation() {
            self.transmit.push_back(ClientFrame::Typing {
                conversation_id,
                typing,
            });
        }
    }

    /// Marks everything up to `seq` as read (dropped while offline).
    pub fn mark_read(&mut self, seq: Seq) {
        if let Ok(conversation_id) = self.up_conversation() {
            self.transmit.push_back(ClientFrame::Read {
                conversation_id,
                seq,
            });
        }
    }

    /// A keep-alive, when connected.
    pub fn ping(&mut self) {
        if self.link == Link::Up {
            self.transmit.push_back(ClientFrame::Ping {});
        }
    }

    fn up_conversation(&self) -> Result<String, ClientError> {
        match (&self.identity, self.link) {
            (Some(id), Link::Up) => Ok(id.conversation_id.clone()),
            _ => Err(ClientError::Offline),
        }
    }

    // ----- frames from the server -----

    /// Applies one frame from the server.
    pub fn handle_frame(&mut self, frame: ServerFrame) {
        match frame {
            ServerFrame::Welcome { .. } => {
                self.link = Link::Up;
                self.events.push_back(Event::Connection {
                    status: ConnectionStatus::Connected,
                });
                if !self.needs_new_conversation() {
                    self.subscribe_and_flush();
                }
            }
            ServerFrame::Message { message } => self.deliver(message),
            ServerFrame::Ack {
                client_msg_id, seq, ..
            } => {
                let before = self.outbox.len();
                self.outbox.retain(|m| m.client_msg_id != client_msg_id);
                if self.outbox.len() < before {
                    self.events
                        .push_back(Event::MessageAcked { client_msg_id, seq });
                }
            }
            ServerFrame::Typing { author, typing, .. } => {
                self.events.push_back(Event::Typing { author, typing })
            }
            ServerFrame::Read { author, seq, .. } => {
                self.events.push_back(Event::Read { author, seq })
            }
            ServerFrame::State {
                state,
                agent,
                offline,
                ..
            } => {
                self.state = Some(state);
                self.events.push_back(Event::StateChanged {
                    state,
                    agent,
                    offline,
                });
            }
            ServerFrame::History {
                messages, has_more, ..
            } => {
                let oldest = self.oldest_seq.unwrap_or(Seq::MAX);
                let messages: Vec<Message> =
                    messages.into_iter().filter(|m| m.seq < oldest).collect();
                if let Some(first) = messages.first() {
                    self.oldest_seq = Some(first.seq);
                }
                self.events.push_back(Event::History { messages, has_more });
            }
            ServerFrame::Error {
                code,
                message,
                client_msg_id,
            } => self.on_error(code, message, client_msg_id),
            ServerFrame::MessageDelta {
                conversation_id,
                stream_id,
                text,
            } => self.events.push_back(Event::MessageDelta {
                conversation_id,
                stream_id,
                text,
            }),
            ServerFrame::Pong
            | ServerFrame::Conversation { .. }
            | ServerFrame::Presence { .. }
            | ServerFrame::Unknown => {}
        }
    }

    fn subscribe_and_flush(&mut self) {
        let Some(identity) = self.identity.clone() else {
            return;
        };
        self.transmit.push_back(ClientFrame::Subscribe {
            conversation_id: identity.conversation_id.clone(),
            after_seq: self.last_seq,
        });
        for m in &mut self.outbox {
            m.sent = false;
        }
        self.flush_outbox();
        if std::mem::take(&mut self.human_requested) {
            self.transmit.push_back(ClientFrame::RequestHuman {
                conversation_id: identity.conversation_id.clone(),
            });
        }
    }

    fn flush_outbox(&mut self) {
        let Some(identity) = &self.identity else {
            return;
        };
        for m in self.outbox.iter_mut().filter(|m| !m.sent) {
            m.sent = true;
            self.transmit.push_back(ClientFrame::Send {
                conversation_id: identity.conversation_id.clone(),
                client_msg_id: m.client_msg_id.clone(),
                text: m.text.clone(),
                attachments: m.attachments.clone(),
            });
        }
    }

    /// Delivers a live or replayed message once, in seq order.
    fn deliver(&mut self, message: Message) {
        let current = self.identity.as_ref().map(|i| i.conversation_id.as_str());
        if current != Some(message.conversation_id.as_str()) || message.seq <= self.last_seq {
            return; // another conversation, or a duplicate after resume
        }
        self.last_seq = message.seq;
        if self.oldest_seq.is_none() {
            self.oldest_seq = Some(message.seq);
        }
        if let Some(id) = &message.client_msg_id {
            // Our own message echoed back: the ack may have been lost with a connection.
            if message.author.kind == kefu_protocol::AuthorKind::Visitor {
                let before = self.outbox.len();
                self.outbox.retain(|m| &m.client_msg_id != id);
                if self.outbox.len() < before {
                    self.events.push_back(Event::MessageAcked {
                        client_msg_id: id.clone(),
                        seq: message.seq,
                    });
                }
            }
        }
        self.events.push_back(Event::Message { message });
    }

    fn on_error(&mut self, code: ErrorCode, message: String, client_msg_id: Option<String>) {
        let error = ClientError::Server {
            code: code.as_str().to_string(),
            message,
        };
        match (code, client_msg_id) {
            // Retry later: the driver resends on its timer.
            (ErrorCode::RateLimited, Some(id)) => {
                if let Some(m) = self.outbox.iter_mut().find(|m| m.client_msg_id == id) {
                    m.sent = false;
                }
            }
            (ErrorCode::ConversationClosed, Some(id)) => {
                if let Some(m) = self.outbox.iter_mut().find(|m| m.client_msg_id == id) {
                    m.sent = false;
                }
                self.needs_new_conversation = true;
            }
            (_, Some(id)) => {
                self.outbox.retain(|m| m.client_msg_id != id);
                self.events.push_back(Event::MessageFailed {
                    client_msg_id: id,
                    error,
                });
            }
            (ErrorCode::Unauthorized, None) if self.link == Link::Handshake => {
                // Expired or revoked token: a new visitor session is needed.
                self.token_rejected = true;
                self.events.push_back(Event::Error { error });
            }
            (code, None) if code.stops_client() => {
                self.fatal = Some(error.clone());
                self.events.push_back(Event::Error { error });
            }
            (code, None) if code.is_transient() && self.link == Link::Handshake => {
                // The server could not finish the handshake (a database hiccup): reconnect with
                // backoff rather than wait on a connection that will not become usable.
                self.reconnect = true;
                self.events.push_back(Event::Error { error });
            }
            (_, None) => self.events.push_back(Event::Error { error }),
        }
    }
}

/// Checks a message text the way the server will (the protocol's own check).
pub fn validate_text(text: &str) -> Result<(), ClientError> {
    kefu_protocol::validate_text(text).map_err(|e| ClientError::InvalidInput(e.message))
}

/// Checks a message with attachments the way the server will.
pub fn validate_message(text: &str, attachments: &[String]) -> Result<(), ClientError> {
    kefu_protocol::validate_content(text, attachments)
        .map_err(|e| ClientError::InvalidInput(e.message))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kefu_protocol::{Author, AuthorKind, MAX_TEXT_CHARS};

    fn identity() -> Identity {
        Identity {
            token: "kv_t".into(),
            visitor_id: "v_1".into(),
            conversation_id: "c_1".into(),
        }
    }

    pub(super) fn msg(
        seq: Seq,
        kind: AuthorKind,
        text: &str,
        client_msg_id: Option<&str>,
    ) -> Message {
        Message {
            conversation_id: "c_1".into(),
            seq,
            author: Author { kind, name: None },
            text: text.into(),
            sent_at: "2026-11-25T00:00:00Z".into(),
            client_msg_id: client_msg_id.map(str::to_string),
            sources: vec![],
            quick_replies: vec![],
            attachments: vec![],
            route_trace: None,
        }
    }

    fn frames(s: &mut Session) -> Vec<ClientFrame> {
        std::iter::from_fn(|| s.poll_transmit()).collect()
    }

    fn events(s: &mut Session) -> Vec<Event> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    fn welcome() -> ServerFrame {
        ServerFrame::Welcome {
            version: 1,
            role: "visitor".into(),
            id: "v_1".into(),
        }
    }

    fn up(s: &mut Session) {
        s.on_connected();
        s.handle_frame(welcome());
    }

    #[test]
    fn hello_then_subscribe_from_the_cursor() {
        let mut s = Session::new(Some(identity()));
        s.on_connected();
        assert_eq!(
            frames(&mut s),
            vec![ClientFrame::Hello {
                version: 1,
                token: "kv_t".into()
            }]
        );
        s.handle_frame(welcome());
        assert_eq!(
            frames(&mut s),
            vec![ClientFrame::Subscribe {
                conversation_id: "c_1".into(),
                after_seq: 0
            }]
        );
        assert!(matches!(
            events(&mut s).as_slice(),
            [Event::Connection {
                status: ConnectionStatus::Connected
            }]
        ));
    }

    #[test]
    fn offline_sends_queue_and_flush_in_order_after_resume() {
        let mut s = Session::new(Some(identity()));
        s.send_text("m-1".into(), "多久发货？".into()).unwrap();
        s.send_text("m-2".into(), "second".into()).unwrap();
        assert!(frames(&mut s).is_empty(), "nothing is sent while offline");
        up(&mut s);
        let sent: Vec<String> = frames(&mut s)
            .into_iter()
            .filter_map(|f| match f {
                ClientFrame::Send { client_msg_id, .. } => Some(client_msg_id),
                _ => None,
            })
            .collect();
        assert_eq!(sent, vec!["m-1", "m-2"]);
        s.handle_frame(ServerFrame::Ack {
            client_msg_id: "m-1".into(),
            conversation_id: "c_1".into(),
            seq: 1,
        });
        assert_eq!(s.outbox().count(), 1);
        // The connection drops before m-2's ack: it is resent after resume, from seq 1.
        s.handle_frame(ServerFrame::Message {
            message: msg(1, AuthorKind::Visitor, "多久发货？", Some("m-1")),
        });
        s.on_disconnected();
        up(&mut s);
        let f = frames(&mut s);
        assert_eq!(
            f[1],
            ClientFrame::Subscribe {
                conversation_id: "c_1".into(),
                after_seq: 1
            }
        );
        assert!(matches!(&f[2], ClientFrame::Send { client_msg_id, .. } if client_msg_id == "m-2"));
        assert_eq!(f.len(), 3);
    }

    #[test]
    fn replayed_messages_are_delivered_once() {
        let mut s = Session::new(Some(identity()));
        up(&mut s);
        events(&mut s);
        for seq in [1, 2, 2, 1, 3] {
            s.handle_frame(ServerFrame::Message {
                message: msg(seq, AuthorKind::Bot, "hi", None),
            });
        }
        let seqs: Vec<Seq> = events(&mut s)
            .into_iter()
            .filter_map(|e| match e {
                Event::Message { message } => Some(message.seq),
                _ => None,
            })
            .collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        assert_eq!(s.last_seq(), 3);
    }

    #[test]
    fn an_echoed_message_acknowledges_a_lost_ack() {
        let mut s = Session::new(Some(identity()));
        up(&mut s);
        s.send_text("m-1".into(), "hello".into()).unwrap();
        events(&mut s);
        s.handle_frame(ServerFrame::Message {
            message: msg(4, AuthorKind::Visitor, "hello", Some("m-1")),
        });
        assert_eq!(s.outbox().count(), 0);
        let e = events(&mut s);
        assert!(
            matches!(&e[0], Event::MessageAcked { client_msg_id, seq: 4 } if client_msg_id == "m-1")
        );
    }

    #[test]
    fn refused_sends_fail_but_rate_limited_ones_retry() {
        let mut s = Session::new(Some(identity()));
        up(&mut s);
        s.send_text("m-1".into(), "a".into()).unwrap();
        s.send_text("m-2".into(), "b".into()).unwrap();
        frames(&mut s);
        events(&mut s);
        s.handle_frame(ServerFrame::Error {
            code: ErrorCode::TooLarge,
            message: "too long".into(),
            client_msg_id: Some("m-1".into()),
        });
        s.handle_frame(ServerFrame::Error {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            client_msg_id: Some("m-2".into()),
        });
        let e = events(&mut s);
        assert!(
            matches!(&e[..], [Event::MessageFailed { client_msg_id, error: ClientError::Server { code, .. } }] if client_msg_id == "m-1" && code == "too_large")
        );
        assert_eq!(s.outbox().count(), 1);
        s.resend_unsent();
        assert!(
            matches!(&frames(&mut s)[..], [ClientFrame::Send { client_msg_id, .. }] if client_msg_id == "m-2")
        );
    }

    #[test]
    fn a_closed_conversation_moves_the_outbox_to_a_new_one() {
        let mut s = Session::new(Some(identity()));
        up(&mut s);
        s.send_text("m-1".into(), "again".into()).unwrap();
        frames(&mut s);
        s.handle_frame(ServerFrame::Error {
            code: ErrorCode::ConversationClosed,
            message: "resolved".into(),
            client_msg_id: Some("m-1".into()),
        });
        assert!(s.needs_new_conversation());
        s.set_conversation("c_2".into());
        let f = frames(&mut s);
        assert_eq!(
            f[0],
            ClientFrame::Subscribe {
                conversation_id: "c_2".into(),
                after_seq: 0
            }
        );
        assert!(
            matches!(&f[1], ClientFrame::Send { conversation_id, client_msg_id, .. } if conversation_id == "c_2" && client_msg_id == "m-1")
        );
    }

    #[test]
    fn history_pages_backwards_and_skips_what_was_delivered() {
        let mut s = Session::new(Some(identity()));
        up(&mut s);
        frames(&mut s);
        s.handle_frame(ServerFrame::Message {
            message: msg(7, AuthorKind::Bot, "latest", None),
        });
        s.load_history(2).unwrap();
        assert_eq!(
            frames(&mut s),
            vec![ClientFrame::History {
                conversation_id: "c_1".into(),
                before_seq: 7,
                limit: 2
            }]
        );
        s.handle_frame(ServerFrame::History {
            conversation_id: "c_1".into(),
            messages: vec![
                msg(5, AuthorKind::Visitor, "a", None),
                msg(6, AuthorKind::Bot, "b", None),
            ],
            has_more: true,
        });
        s.load_history(2).unwrap();
        assert!(matches!(
            &frames(&mut s)[..],
            [ClientFrame::History { before_seq: 5, .. }]
        ));
        assert!(s.load_history(0).is_err());
    }

    #[test]
    fn bad_text_and_offline_actions_are_refused() {
        let mut s = Session::new(Some(identity()));
        assert!(matches!(
            s.send_text("m".into(), "  ".into()),
            Err(ClientError::InvalidInput(_))
        ));
        let long = "长".repeat(MAX_TEXT_CHARS + 1);
        assert!(s.send_text("m".into(), long).is_err());
        assert!(matches!(s.load_history(10), Err(ClientError::Offline)));
        s.set_typing(true);
        s.request_human();
        assert!(frames(&mut s).is_empty());
        up(&mut s);
        assert!(
            matches!(
                &frames(&mut s)[..],
                [
                    _,
                    ClientFrame::Subscribe { .. },
                    ClientFrame::RequestHuman { .. }
                ]
            ),
            "a human asked for while offline is requested once connected"
        );
    }

    #[test]
    fn a_rejected_token_asks_for_a_new_session_and_version_errors_are_fatal() {
        let mut s = Session::new(Some(identity()));
        s.on_connected();
        s.handle_frame(ServerFrame::Error {
            code: ErrorCode::Unauthorized,
            message: "expired".into(),
            client_msg_id: None,
        });
        assert!(s.needs_identity());
        assert!(s.fatal().is_none());
        s.handle_frame(ServerFrame::Error {
            code: ErrorCode::UnsupportedVersion,
            message: "v2 only".into(),
            client_msg_id: None,
        });
        assert!(s.fatal().is_some());
    }

    #[test]
    fn a_server_fault_at_hello_reconnects_instead_of_stopping() {
        let mut s = Session::new(Some(identity()));
        s.on_connected();
        s.handle_frame(ServerFrame::Error {
            code: ErrorCode::Internal,
            message: "internal error".into(),
            client_msg_id: None,
        });
        assert!(s.fatal().is_none(), "a database hiccup is not a refusal");
        assert!(!s.needs_identity(), "the token is still good");
        assert!(
            s.take_reconnect(),
            "the driver drops the socket and retries"
        );
        assert!(!s.take_reconnect(), "once");
        s.on_disconnected();
        s.on_connected();
        assert!(
            matches!(&frames(&mut s)[..], [ClientFrame::Hello { .. }, ..]),
            "the next connection says hello again"
        );
        s.handle_frame(ServerFrame::Error {
            code: ErrorCode::OriginNotAllowed,
            message: "no".into(),
            client_msg_id: None,
        });
        assert!(s.fatal().is_some(), "a definite refusal stops the client");
    }

    #[test]
    fn state_changes_carry_the_offline_flag() {
        let mut s = Session::new(Some(identity()));
        s.handle_frame(ServerFrame::State {
            conversation_id: "c_1".into(),
            state: ConversationState::Queued,
            agent: None,
            offline: true,
        });
        assert_eq!(s.state(), Some(ConversationState::Queued));
        assert!(matches!(
            &events(&mut s)[..],
            [Event::StateChanged {
                state: ConversationState::Queued,
                offline: true,
                ..
            }]
        ));
    }
}

/// Any sequence of sends, server messages, lost frames, duplicates, drops and reconnects against a
/// model server: every committed message reaches the host once and in order, and every send is
/// committed once.
#[cfg(test)]
mod properties {
    #![allow(clippy::unwrap_used)]
    use std::collections::{HashMap, VecDeque};

    use kefu_protocol::{AuthorKind, ClientFrame, Message, Seq, ServerFrame};
    use proptest::prelude::*;

    use super::{Identity, Session};
    use crate::events::Event;

    #[derive(Debug, Clone)]
    enum Step {
        /// Open a socket (when none is open).
        Connect,
        /// The host sends a message.
        Send,
        /// The bot or an agent writes.
        ServerWrites,
        /// The next `n` frames from the server arrive.
        Deliver(usize),
        /// The socket dies: frames in flight both ways are lost.
        Drop,
        /// The server sends an old message again (replay overlapping live delivery).
        Duplicate(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            2 => Just(Step::Connect),
            3 => Just(Step::Send),
            3 => Just(Step::ServerWrites),
            4 => (1usize..6).prop_map(Step::Deliver),
            1 => Just(Step::Drop),
            1 => any::<usize>().prop_map(Step::Duplicate),
        ]
    }

    /// One conversation's log and the one connection to the client.
    #[derive(Default)]
    struct Server {
        log: Vec<Message>,
        committed: HashMap<String, Seq>,
        socket_open: bool,
        authenticated: bool,
        subscribed: bool,
        to_client: VecDeque<ServerFrame>,
    }

    impl Server {
        fn append(&mut self, kind: AuthorKind, text: String, client_msg_id: Option<String>) -> Seq {
            let seq = self.log.len() as Seq + 1;
            let m = super::tests::msg(seq, kind, &text, client_msg_id.as_deref());
            self.log.push(m.clone());
            if self.subscribed {
                self.to_client
                    .push_back(ServerFrame::Message { message: m });
            }
            seq
        }

        fn receive(&mut self, frame: ClientFrame) {
            match frame {
                ClientFrame::Hello { .. } => {
                    self.authenticated = true;
                    self.to_client.push_back(ServerFrame::Welcome {
                        version: 1,
                        role: "visitor".into(),
                        id: "v_1".into(),
                    });
                }
                ClientFrame::Subscribe { after_seq, .. } if self.authenticated => {
                    self.subscribed = true;
                    for m in self.log.iter().filter(|m| m.seq > after_seq) {
                        self.to_client
                            .push_back(ServerFrame::Message { message: m.clone() });
                    }
                }
                ClientFrame::Send {
                    client_msg_id,
                    text,
                    ..
                } if self.authenticated => {
                    let seq = match self.committed.get(&client_msg_id) {
                        Some(seq) => *seq,
                        None => {
                            let seq =
                                self.append(AuthorKind::Visitor, text, Some(client_msg_id.clone()));
                            self.committed.insert(client_msg_id.clone(), seq);
                            seq
                        }
                    };
                    self.to_client.push_back(ServerFrame::Ack {
                        client_msg_id,
                        conversation_id: "c_1".into(),
                        seq,
                    });
                }
                _ => {}
            }
        }
    }

    /// Frames the session wants to send reach the server while a socket is open.
    fn pump(session: &mut Session, server: &mut Server) {
        while let Some(frame) = session.poll_transmit() {
            if server.socket_open {
                server.receive(frame);
            }
        }
    }

    fn drop_socket(session: &mut Session, server: &mut Server) {
        if server.socket_open {
            session.on_disconnected();
            server.socket_open = false;
            server.authenticated = false;
            server.subscribed = false;
            server.to_client.clear();
        }
    }

    fn connect(session: &mut Session, server: &mut Server) {
        if !server.socket_open {
            server.socket_open = true;
            session.on_connected();
            pump(session, server);
        }
    }

    fn deliver(session: &mut Session, server: &mut Server, n: usize) {
        for _ in 0..n {
            let Some(frame) = server.to_client.pop_front() else {
                break;
            };
            session.handle_frame(frame);
            pump(session, server);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn every_message_arrives_once_and_in_order(steps in prop::collection::vec(step(), 0..60)) {
            let mut session = Session::new(Some(Identity {
                token: "kv_t".into(),
                visitor_id: "v_1".into(),
                conversation_id: "c_1".into(),
            }));
            let mut server = Server::default();
            let mut sent = Vec::new();
            for step in steps {
                match step {
                    Step::Connect => connect(&mut session, &mut server),
                    Step::Send => {
                        let id = format!("m{}", sent.len());
                        session.send_text(id.clone(), format!("问题 {id}")).unwrap();
                        sent.push(id);
                        pump(&mut session, &mut server);
                    }
                    Step::ServerWrites => {
                        server.append(AuthorKind::Bot, "好的 / OK".into(), None);
                    }
                    Step::Deliver(n) => deliver(&mut session, &mut server, n),
                    Step::Drop => drop_socket(&mut session, &mut server),
                    Step::Duplicate(i) => {
                        if server.subscribed && !server.log.is_empty() {
                            let m = server.log[i % server.log.len()].clone();
                            server.to_client.push_back(ServerFrame::Message { message: m });
                        }
                    }
                }
            }
            // Finally the network settles: one clean reconnect, everything delivered.
            drop_socket(&mut session, &mut server);
            connect(&mut session, &mut server);
            deliver(&mut session, &mut server, usize::MAX);

            let delivered: Vec<Seq> = std::iter::from_fn(|| session.poll_event())
                .filter_map(|e| match e {
                    Event::Message { message } => Some(message.seq),
                    _ => None,
                })
                .collect();
            let all: Vec<Seq> = (1..=server.log.len() as Seq).collect();
            prop_assert_eq!(delivered, all, "every message once, in order");
            prop_assert_eq!(server.committed.len(), sent.len(), "every send committed once");
            prop_assert_eq!(session.outbox().count(), 0, "nothing left unacknowledged");
        }
    }
}
