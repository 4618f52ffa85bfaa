//! The load test's visitors: a session over REST, one WebSocket each (hello + subscribe), and a
//! task that sends one message at a time and times what answers it (the bot's reply, or the ack
//! when agents own the conversation).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::{next_frame, send_frame, Mode, Shared};

/// One connected visitor: its conversation, and the channel its next message arrives on.
pub(super) struct Visitor {
    pub conversation_id: String,
    pub messages: mpsc::Sender<&'static str>,
}

struct Session {
    token: String,
    conversation_id: String,
}

/// Creates a visitor session and opens its connection.
pub(super) async fn connect(
    http: &reqwest::Client,
    base: &str,
    ws_url: &str,
    site: &str,
    mode: Mode,
    shared: Arc<Shared>,
) -> Option<Visitor> {
    let session = match create_session(http, base, site).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "session failed");
            shared
                .counters
                .session_errors
                .fetch_add(1, Ordering::Relaxed);
            return None;
        }
    };
    match open(ws_url, session, mode, Arc::clone(&shared)).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::debug!(error = %e, "connect failed");
            shared
                .counters
                .connect_errors
                .fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

async fn create_session(http: &reqwest::Client, base: &str, site: &str) -> anyhow::Result<Session> {
    let r: Value = http
        .post(format!("{base}/v1/visitor/sessions"))
        .json(&json!({ "site_key": site }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(Session {
        token: r["token"].as_str().unwrap_or_default().to_string(),
        conversation_id: r["conversation_id"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    })
}

/// Opens one visitor connection (hello + subscribe) and spawns its task; messages arrive on the
/// returned channel (capacity 1: a visitor sends one message at a time).
async fn open(
    ws_url: &str,
    session: Session,
    mode: Mode,
    shared: Arc<Shared>,
) -> anyhow::Result<Visitor> {
    let mut ws = super::connect_socket(ws_url, &session.token).await?;
    let sub =
        json!({ "type": "subscribe", "conversation_id": session.conversation_id, "after_seq": 0 });
    ws.send(WsMessage::text(sub.to_string())).await?;
    let (tx, rx) = mpsc::channel::<&'static str>(1);
    let conversation_id = session.conversation_id.clone();
    tokio::spawn(run(ws, session.conversation_id, mode, rx, shared));
    Ok(Visitor {
        conversation_id,
        messages: tx,
    })
}

/// The visitor's loop: send what arrives on `rx` (one outstanding at a time), time its answer,
/// ping every 30 s.
async fn run(
    mut ws: super::Socket,
    conversation_id: String,
    mode: Mode,
    mut rx: mpsc::Receiver<&'static str>,
    shared: Arc<Shared>,
) {
    let c = &shared.counters;
    let mut outstanding: Option<(String, Instant)> = None;
    let mut handed_off = false;
    let mut ping = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            text = rx.recv(), if outstanding.is_none() && !handed_off => {
                let Some(text) = text else { break };
                let id = format!("lt-{}", shared.next_message.fetch_add(1, Ordering::Relaxed));
                let frame = json!({ "type": "send", "conversation_id": conversation_id,
                                    "client_msg_id": id, "text": text });
                let sent = Instant::now();
                if mode == Mode::Relay {
                    shared.in_flight_insert(&id, sent);
                }
                c.sent.fetch_add(1, Ordering::Relaxed);
                if !send_frame(&mut ws, &frame).await {
                    c.closed_early.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                outstanding = Some((id, sent));
            }
            frame = next_frame(&mut ws, &mut ping) => {
                let Some(v) = frame else {
                    c.closed_early.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                match (mode, v["type"].as_str()) {
                    (Mode::Bot, Some("message")) => {
                        let kind = v["message"]["author"]["kind"].as_str();
                        if matches!(kind, Some("bot") | Some("system")) {
                            if let Some((_, t0)) = outstanding.take() {
                                c.answered.fetch_add(1, Ordering::Relaxed);
                                shared.record_answer(t0.elapsed());
                            }
                        }
                    }
                    (Mode::Bot, Some("state")) if v["state"] != "bot" && !handed_off => {
                        c.handed_off.fetch_add(1, Ordering::Relaxed);
                        handed_off = true;
                        outstanding = None;
                    }
                    (Mode::Relay, Some("ack")) => {
                        let mine = outstanding
                            .as_ref()
                            .is_some_and(|(id, _)| v["client_msg_id"] == id.as_str());
                        if mine {
                            if let Some((_, t0)) = outstanding.take() {
                                c.answered.fetch_add(1, Ordering::Relaxed);
                                shared.record_answer(t0.elapsed());
                            }
                        }
                    }
                    (_, Some("error")) => {
                        c.error_frames.fetch_add(1, Ordering::Relaxed);
                        if let Some((id, _)) = outstanding.take() {
                            shared.in_flight_remove(&id);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    let _ = ws.close(None).await;
}
