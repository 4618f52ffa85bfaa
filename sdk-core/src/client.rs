//! The driver: one task that owns a `Session`, connects through `transport`, waits through
//! `platform`, and hands every event to the host's `Listener`. The host talks to it through
//! `Client`, a cheap handle that only queues commands.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, StreamExt};
use kefu_protocol::{Attachment, Seq, ServerFrame};
use serde_json::{json, Value};

use crate::backoff::Backoff;
use crate::endpoints::Endpoints;
use crate::error::ClientError;
use crate::events::{ConnectionStatus, Event, Listener};
use crate::platform;
use crate::session::{validate_message, validate_text, Identity, Session};
use crate::transport::{self, Socket};

/// How often the driver retries rate-limited sends, and every how many ticks it pings.
const TICK: Duration = Duration::from_secs(2);
const PING_EVERY_TICKS: u32 = 12;
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Where and as whom to chat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientConfig {
    /// The Kefu server, `http://host:port` or `https://host`; or several nodes of one cluster
    /// separated by commas, tried in turn whenever a connection is lost.
    pub server_url: String,
    /// The site key the operator created (`kefu site add`).
    pub site_key: String,
    /// The integrator's user id, with `user_hash` = hex(HMAC-SHA256(site secret, user_id)).
    pub user_id: Option<String>,
    pub user_hash: Option<String>,
    /// A display name shown to agents.
    pub name: Option<String>,
    /// A session saved from an earlier `SessionStarted` event, to resume the same conversation.
    pub resume: Option<Identity>,
}

impl ClientConfig {
    fn endpoints(&self) -> Result<Endpoints, ClientError> {
        let endpoints = Endpoints::new(&self.server_url)?;
        if self.site_key.is_empty() {
            return Err(ClientError::InvalidInput("site_key is empty".into()));
        }
        Ok(endpoints)
    }
}

enum Command {
    Send {
        client_msg_id: String,
        text: String,
        attachments: Vec<String>,
        done: Option<oneshot::Sender<Result<Seq, ClientError>>>,
    },
    Upload {
        name: String,
        bytes: Vec<u8>,
        done: oneshot::Sender<Result<Attachment, ClientError>>,
    },
    RequestHuman,
    History(u32),
    Typing(bool),
    Read(Seq),
    Rate {
        score: u8,
        comment: Option<String>,
        done: oneshot::Sender<Result<(), ClientError>>,
    },
    Close,
}

/// Longest rating comment, in characters (as the server allows).
pub const MAX_RATING_COMMENT_CHARS: usize = 1000;

/// The host's handle on one visitor chat. Cloning is cheap; every clone drives the same chat.
#[derive(Clone)]
pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
    id_prefix: Arc<str>,
    counter: Arc<AtomicU64>,
    closed: Arc<AtomicBool>,
}

impl Client {
    /// Starts the chat: creates (or resumes) the visitor session, connects, and keeps reconnecting
    /// until `close`. Natively this must run inside a tokio runtime.
    pub fn start(config: ClientConfig, listener: Arc<dyn Listener>) -> Result<Client, ClientError> {
        let base = config.endpoints()?;
        let (commands, rx) = mpsc::unbounded();
        let mut rng = fastrand::Rng::new();
        let id_prefix: String = (0..10).map(|_| rng.alphanumeric()).collect();
        platform::spawn(drive(config, base, listener, rx));
        Ok(Client {
            commands,
            id_prefix: id_prefix.into(),
            counter: Arc::new(AtomicU64::new(0)),
            closed: Arc::new(AtomicBool::new(false)),
        })
    }

    fn next_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{}-{n}", self.id_prefix)
    }

    fn command(&self, c: Command) -> Result<(), ClientError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(ClientError::Closed);
        }
        self.commands
            .unbounded_send(c)
            .map_err(|_| ClientError::Closed)
    }

    /// Queues a message and returns its `client_msg_id` at once; `MessageAcked` follows when the
    /// server committed it (after reconnecting, if offline now).
    pub fn send_text(&self, text: &str) -> Result<String, ClientError> {
        validate_text(text)?;
        let id = self.next_id();
        self.command(Command::Send {
            client_msg_id: id.clone(),
            text: text.to_string(),
            attachments: vec![],
            done: None,
        })?;
        Ok(id)
    }

    /// Queues a message carrying uploaded files (`upload_attachment`'s ids; the text may be
    /// empty) and returns its `client_msg_id` at once, as `send_text` does.
    pub fn send_with_attachments(
        &self,
        text: &str,
        attachments: Vec<String>,
    ) -> Result<String, ClientError> {
        validate_message(text, &attachments)?;
        let id = self.next_id();
        self.command(Command::Send {
            client_msg_id: id.clone(),
            text: text.to_string(),
            attachments,
            done: None,
        })?;
        Ok(id)
    }

    /// Uploads a file (an image, a PDF, …) to the conversation; resolves with the attachment
    /// (its id, the type the server found, links) to send with `send_with_attachments`. The
    /// server refuses files over the site's size limit (`payload_too_large`) or of kinds it does
    /// not accept (`unsupported_file`).
    pub fn upload_attachment(
        &self,
        name: &str,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<Attachment, ClientError>> + platform::MaybeSend + 'static {
        let queued = if bytes.is_empty() {
            Err(ClientError::InvalidInput("the file is empty".into()))
        } else {
            let (tx, rx) = oneshot::channel();
            self.command(Command::Upload {
                name: name.to_string(),
                bytes,
                done: tx,
            })
            .map(|()| rx)
        };
        async move { queued?.await.map_err(|_| ClientError::Closed)? }
    }

    /// Queues a message and resolves with its seq once the server committed it.
    pub fn send(
        &self,
        text: &str,
    ) -> impl Future<Output = Result<Seq, ClientError>> + platform::MaybeSend + 'static {
        let queued = validate_text(text).and_then(|()| {
            let (tx, rx) = oneshot::channel();
            self.command(Command::Send {
                client_msg_id: self.next_id(),
                text: text.to_string(),
                attachments: vec![],
                done: Some(tx),
            })
            .map(|()| rx)
        });
        async move { queued?.await.map_err(|_| ClientError::Closed)? }
    }

    /// Asks for a human agent (sent as soon as connected).
    pub fn request_human(&self) -> Result<(), ClientError> {
        self.command(Command::RequestHuman)
    }

    /// Loads up to `limit` (1–100) messages before the oldest one delivered (`History` event).
    pub fn load_history(&self, limit: u32) -> Result<(), ClientError> {
        self.command(Command::History(limit))
    }

    /// The visitor started or stopped typing.
    pub fn set_typing(&self, typing: bool) -> Result<(), ClientError> {
        self.command(Command::Typing(typing))
    }

    /// The visitor read everything up to `seq`.
    pub fn mark_read(&self, seq: Seq) -> Result<(), ClientError> {
        self.command(Command::Read(seq))
    }

    /// Rates the current conversation 1–5 with an optional comment (offered once it is
    /// resolved; rating again replaces the earlier rating). Resolves when the server stored it.
    pub fn rate(
        &self,
        score: u8,
        comment: Option<String>,
    ) -> impl Future<Output = Result<(), ClientError>> + platform::MaybeSend + 'static {
        let comment = comment
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty());
        let queued = if !(1..=5).contains(&score) {
            Err(ClientError::InvalidInput("a rating is 1 to 5".into()))
        } else if comment
            .as_ref()
            .is_some_and(|c| c.chars().count() > MAX_RATING_COMMENT_CHARS)
        {
            Err(ClientError::InvalidInput(format!(
                "a rating comment has at most {MAX_RATING_COMMENT_CHARS} characters"
            )))
        } else {
            let (tx, rx) = oneshot::channel();
            self.command(Command::Rate {
                score,
                comment,
                done: tx,
            })
            .map(|()| rx)
        };
        async move { queued?.await.map_err(|_| ClientError::Closed)? }
    }

    /// Closes the connection and stops reconnecting; unacknowledged messages fail with `Closed`.
    pub fn close(&self) {
        let _ = self.command(Command::Close);
        self.closed.store(true, Ordering::Release);
    }
}

/// Pending `send` futures, resolved by acks and refusals.
type Waiters = HashMap<String, oneshot::Sender<Result<Seq, ClientError>>>;

struct Driver {
    config: ClientConfig,
    base: Endpoints,
    session: Session,
    listener: Arc<dyn Listener>,
    waiters: Waiters,
    backoff: Backoff,
}

/// How one connection ended.
enum Exit {
    /// The host closed the client.
    Closed,
    /// The network failed or the server went away: wait and reconnect.
    Lost,
    /// The server refused in a way retrying cannot fix.
    Fatal,
}

async fn drive(
    config: ClientConfig,
    base: Endpoints,
    listener: Arc<dyn Listener>,
    mut rx: mpsc::UnboundedReceiver<Command>,
) {
    let mut d = Driver {
        session: Session::new(config.resume.clone()),
        config,
        base,
        listener,
        waiters: HashMap::new(),
        backoff: Backoff::new(BACKOFF_BASE, BACKOFF_MAX),
    };
    'reconnect: loop {
        d.session.report_status(ConnectionStatus::Connecting);
        d.dispatch();
        match d.connection(&mut rx).await {
            Exit::Closed | Exit::Fatal => break,
            // Another node of the cluster, when several URLs were given.
            Exit::Lost => d.base.next_server(),
        }
        d.session.on_disconnected();
        let attempt = d.backoff.attempt() + 1;
        let delay = d.backoff.next_delay();
        d.session.report_status(ConnectionStatus::Waiting {
            retry_in_ms: delay.as_millis() as u64,
            attempt,
        });
        d.dispatch();
        let mut wait = Box::pin(platform::sleep(delay).fuse());
        loop {
            futures::select! {
                () = wait => break,
                cmd = rx.next() => match cmd {
                    None | Some(Command::Close) => break 'reconnect,
                    Some(c) => { d.apply(c); d.dispatch(); }
                },
            }
        }
    }
    d.session.on_disconnected();
    d.session.report_status(ConnectionStatus::Stopped);
    d.dispatch();
    for (_, w) in d.waiters.drain() {
        let _ = w.send(Err(ClientError::Closed));
    }
}

impl Driver {
    /// Creates the visitor session if needed, connects, and serves until the connection ends.
    async fn connection(&mut self, rx: &mut mpsc::UnboundedReceiver<Command>) -> Exit {
        if self.session.needs_identity() {
            match self.create_session().await {
                Ok(identity) => self.session.set_identity(identity),
                Err(e) => return self.refused(e),
            }
            self.dispatch();
        }
        if let Err(e) = self.new_conversation_if_needed().await {
            return self.refused(e);
        }
        let url = self.ws_url();
        let mut socket = match Socket::connect(&url).await {
            Ok(s) => s,
            Err(_) => return Exit::Lost,
        };
        self.session.on_connected();
        let mut tick = Box::pin(platform::sleep(TICK).fuse());
        let mut ticks = 0u32;
        loop {
            if let Err(exit) = self.flush(&mut socket).await {
                return exit;
            }
            if self.session.fatal().is_some() {
                socket.close().await;
                return Exit::Fatal;
            }
            if self.session.needs_identity() || self.session.take_reconnect() {
                socket.close().await;
                return Exit::Lost;
            }
            if let Err(e) = self.new_conversation_if_needed().await {
                if transport::is_permanent(&e) {
                    self.session.report_error(e);
                } else {
                    socket.close().await;
                    return Exit::Lost;
                }
            }
            futures::select! {
                frame = socket.recv().fuse() => match frame {
                    Some(Ok(text)) => match serde_json::from_str::<ServerFrame>(&text) {
                        Ok(frame) => {
                            let welcome = matches!(frame, ServerFrame::Welcome { .. });
                            self.session.handle_frame(frame);
                            if welcome {
                                self.backoff.reset();
                            }
                        }
                        Err(e) => self.session.report_error(ClientError::Network(format!(
                            "unreadable frame from the server: {e}"
                        ))),
                    },
                    Some(Err(_)) | None => return Exit::Lost,
                },
                cmd = rx.next() => match cmd {
                    None | Some(Command::Close) => {
                        socket.close().await;
                        return Exit::Closed;
                    }
                    Some(c) => self.apply(c),
                },
                () = tick => {
                    tick = Box::pin(platform::sleep(TICK).fuse());
                    ticks += 1;
                    self.session.resend_unsent();
                    if ticks.is_multiple_of(PING_EVERY_TICKS) {
                        self.session.ping();
                    }
                },
            }
        }
    }

    /// A REST call failed: permanent refusals are reported and stop the client; network
    /// trouble only shows as the `Waiting` status that follows.
    fn refused(&mut self, e: ClientError) -> Exit {
        if transport::is_permanent(&e) {
            self.session.report_error(e);
            self.dispatch();
            Exit::Fatal
        } else {
            Exit::Lost
        }
    }

    /// Sends every queued frame, then hands every event to the host.
    async fn flush(&mut self, socket: &mut Socket) -> Result<(), Exit> {
        while let Some(frame) = self.session.poll_transmit() {
            let text = serde_json::to_string(&frame).map_err(|_| Exit::Fatal)?;
            if socket.send(text).await.is_err() {
                self.dispatch();
                return Err(Exit::Lost);
            }
        }
        self.dispatch();
        Ok(())
    }

    fn apply(&mut self, c: Command) {
        let result = match c {
            Command::Send {
                client_msg_id,
                text,
                attachments,
                done,
            } => {
                let r = self
                    .session
                    .send_message(client_msg_id.clone(), text, attachments);
                match (r, done) {
                    (Ok(()), Some(done)) => {
                        self.waiters.insert(client_msg_id, done);
                        Ok(())
                    }
                    (Err(e), Some(done)) => {
                        let _ = done.send(Err(e));
                        Ok(())
                    }
                    (r, None) => r,
                }
            }
            Command::RequestHuman => {
                self.session.request_human();
                Ok(())
            }
            Command::History(limit) => self.session.load_history(limit),
            Command::Typing(t) => {
                self.session.set_typing(t);
                Ok(())
            }
            Command::Read(seq) => {
                self.session.mark_read(seq);
                Ok(())
            }
            Command::Rate {
                score,
                comment,
                done,
            } => {
                self.rate(score, comment, done);
                Ok(())
            }
            Command::Upload { name, bytes, done } => {
                self.upload(name, bytes, done);
                Ok(())
            }
            Command::Close => Ok(()),
        };
        if let Err(e) = result {
            self.session.report_error(e);
        }
    }

    fn dispatch(&mut self) {
        while let Some(event) = self.session.poll_event() {
            match &event {
                Event::MessageAcked { client_msg_id, seq } => {
                    if let Some(w) = self.waiters.remove(client_msg_id) {
                        let _ = w.send(Ok(*seq));
                    }
                }
                Event::MessageFailed {
                    client_msg_id,
                    error,
                } => {
                    if let Some(w) = self.waiters.remove(client_msg_id) {
                        let _ = w.send(Err(error.clone()));
                    }
                }
                _ => {}
            }
            self.listener.on_event(event);
        }
    }

    async fn create_session(&self) -> Result<Identity, ClientError> {
        let c = &self.config;
        let mut body = json!({ "site_key": c.site_key });
        for (k, v) in [
            ("user_id", &c.user_id),
            ("user_hash", &c.user_hash),
            ("name", &c.name),
        ] {
            if let Some(v) = v {
                body[k] = Value::String(v.clone());
            }
        }
        let r = transport::post_json(&self.base.rest("v1/visitor/sessions"), None, &body).await?;
        let field = |k: &str| {
            r[k].as_str()
                .map(str::to_string)
                .ok_or_else(|| ClientError::Network(format!("the session answer has no {k}")))
        };
        Ok(Identity {
            token: field("token")?,
            visitor_id: field("visitor_id")?,
            conversation_id: field("conversation_id")?,
        })
    }

    async fn new_conversation_if_needed(&mut self) -> Result<(), ClientError> {
        if !self.session.needs_new_conversation() {
            return Ok(());
        }
        let token = self
            .session
            .identity()
            .map(|i| i.token.clone())
            .unwrap_or_default();
        let r = transport::post_json(
            &self.base.rest("v1/visitor/conversations"),
            Some(&token),
            &json!({}),
        )
        .await?;
        let id = r["conversation_id"].as_str().ok_or_else(|| {
            ClientError::Network("the conversation answer has no conversation_id".into())
        })?;
        self.session.set_conversation(id.to_string());
        self.dispatch();
        Ok(())
    }

    /// Posts the rating of the session's conversation on its own task (the chat goes on).
    fn rate(
        &self,
        score: u8,
        comment: Option<String>,
        done: oneshot::Sender<Result<(), ClientError>>,
    ) {
        let Some(identity) = self.session.identity() else {
            let _ = done.send(Err(ClientError::InvalidInput(
                "there is no conversation to rate yet".into(),
            )));
            return;
        };
        let url = self.base.rest(&format!(
            "v1/conversations/{}/rating",
            identity.conversation_id
        ));
        let token = identity.token.clone();
        let mut body = json!({ "score": score });
        if let Some(c) = comment {
            body["comment"] = Value::String(c);
        }
        platform::spawn(async move {
            let r = transport::post_json(&url, Some(&token), &body).await;
            let _ = done.send(r.map(|_| ()));
        });
    }

    fn upload(
        &self,
        name: String,
        bytes: Vec<u8>,
        done: oneshot::Sender<Result<Attachment, ClientError>>,
    ) {
        let Some(identity) = self.session.identity() else {
            let _ = done.send(Err(ClientError::Offline));
            return;
        };
        let url = self.base.rest(&format!(
            "v1/conversations/{}/attachments?name={}",
            identity.conversation_id,
            kefu_protocol::percent_encode(&name)
        ));
        let token = identity.token.clone();
        platform::spawn(async move {
            let r = transport::post_bytes(&url, &token, bytes)
                .await
                .and_then(|v| {
                    serde_json::from_value::<Attachment>(v).map_err(|e| {
                        ClientError::Network(format!("unreadable attachment from the server: {e}"))
                    })
                });
            let _ = done.send(r);
        });
    }

    fn ws_url(&self) -> String {
        self.base.websocket(&self.config.site_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_urls_are_checked() {
        let mut c = ClientConfig {
            server_url: "ftp://x".into(),
            site_key: "demo".into(),
            ..Default::default()
        };
        assert!(matches!(c.endpoints(), Err(ClientError::InvalidInput(_))));
        c.server_url = "https://chat.example.com/".into();
        assert!(c.endpoints().is_ok());
        c.site_key.clear();
        assert!(matches!(c.endpoints(), Err(ClientError::InvalidInput(_))));
    }
}
