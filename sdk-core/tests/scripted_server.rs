//! The client against a scripted server that speaks Kefu's documented protocol (REST session
//! creation, then the WebSocket) and fails the way a real server does during a database hiccup:
//! the first `POST /v1/visitor/sessions` answers 500 `internal`, the first `hello` answers an
//! `internal` error frame and closes with 1011. The client must retry both and then chat.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use kefu_protocol::{Author, AuthorKind, ConversationState, ErrorCode, Message, ServerFrame};
use kefu_sdk_core::{Client, ClientConfig, ConnectionStatus, Event, Listener};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;

#[derive(Default)]
struct Script {
    sessions: AtomicU32,
    hellos: AtomicU32,
}

async fn serve(listener: TcpListener, script: Arc<Script>) {
    while let Ok((stream, _)) = listener.accept().await {
        let script = Arc::clone(&script);
        tokio::spawn(async move {
            let mut head = [0u8; 64];
            let n = stream.peek(&mut head).await.unwrap_or(0);
            let line = String::from_utf8_lossy(&head[..n]).to_string();
            if line.starts_with("POST /v1/visitor/sessions") {
                session(stream, &script).await;
            } else if line.starts_with("GET /v1/ws") {
                websocket(stream, &script).await;
            }
        });
    }
}

/// `POST /v1/visitor/sessions`: 500 `internal` the first time, then a session.
async fn session(mut stream: TcpStream, script: &Script) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    // Read the head and the JSON body (the client sends Content-Length).
    loop {
        let Ok(n) = stream.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        request.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&request).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())
                        .flatten()
                })
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                break;
            }
        }
    }
    let attempt = script.sessions.fetch_add(1, Ordering::SeqCst) + 1;
    let (status, body) = if attempt == 1 {
        (
            "500 Internal Server Error",
            json!({"error": {"code": "internal", "message": "internal error"}}),
        )
    } else {
        (
            "201 Created",
            json!({"token": "tok", "visitor_id": "v1", "conversation_id": "c1"}),
        )
    };
    let body = body.to_string();
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn frame(f: &ServerFrame) -> WsMessage {
    WsMessage::text(serde_json::to_string(f).expect("frame json"))
}

/// `GET /v1/ws`: the first `hello` meets a server fault (`internal`, close 1011); later ones are
/// welcomed, subscriptions get the state, and each message gets an ack and a bot reply.
async fn websocket(stream: TcpStream, script: &Script) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let mut seq = 0;
    while let Some(Ok(WsMessage::Text(text))) = ws.next().await {
        let f: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match f["type"].as_str().unwrap_or("") {
            "hello" => {
                assert_eq!(f["token"], "tok");
                if script.hellos.fetch_add(1, Ordering::SeqCst) == 0 {
                    let fault = ServerFrame::Error {
                        code: ErrorCode::Internal,
                        message: "internal error".into(),
                        client_msg_id: None,
                    };
                    let _ = ws.send(frame(&fault)).await;
                    let _ = ws
                        .send(WsMessage::Close(Some(CloseFrame {
                            code: CloseCode::Error,
                            reason: "internal error: reconnect".into(),
                        })))
                        .await;
                    return;
                }
                let welcome = ServerFrame::Welcome {
                    version: kefu_protocol::PROTOCOL_VERSION,
                    role: "visitor".into(),
                    id: "v1".into(),
                };
                let _ = ws.send(frame(&welcome)).await;
            }
            "subscribe" => {
                let state = ServerFrame::State {
                    conversation_id: "c1".into(),
                    state: ConversationState::Bot,
                    agent: None,
                    offline: false,
                };
                let _ = ws.send(frame(&state)).await;
            }
            "send" => {
                let id = f["client_msg_id"].as_str().unwrap_or("").to_string();
                let text = f["text"].as_str().unwrap_or("").to_string();
                seq += 1;
                let ack = ServerFrame::Ack {
                    client_msg_id: id.clone(),
                    conversation_id: "c1".into(),
                    seq,
                };
                let message = |seq, kind, text: String, client_msg_id| ServerFrame::Message {
                    message: Message {
                        conversation_id: "c1".into(),
                        seq,
                        author: Author { kind, name: None },
                        text,
                        sent_at: "2026-11-30T10:00:00Z".into(),
                        client_msg_id,
                        sources: vec![],
                        quick_replies: vec![],
                        attachments: vec![],
                        route_trace: None,
                    },
                };
                let _ = ws.send(frame(&ack)).await;
                let echo = message(seq, AuthorKind::Visitor, text.clone(), Some(id));
                let _ = ws.send(frame(&echo)).await;
                seq += 1;
                let reply = message(seq, AuthorKind::Bot, format!("你问的是：{text}"), None);
                let _ = ws.send(frame(&reply)).await;
            }
            "ping" => {
                let _ = ws.send(frame(&ServerFrame::Pong)).await;
            }
            _ => {}
        }
    }
}

struct Events {
    tx: mpsc::UnboundedSender<Event>,
    all: Mutex<Vec<Event>>,
}

impl Listener for Events {
    fn on_event(&self, event: Event) {
        if let Ok(mut all) = self.all.lock() {
            all.push(event.clone());
        }
        let _ = self.tx.send(event);
    }
}

#[tokio::test]
async fn a_failed_session_and_a_failed_hello_are_retried_then_the_client_chats() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let script = Arc::new(Script::default());
    tokio::spawn(serve(listener, Arc::clone(&script)));

    let (tx, mut rx) = mpsc::unbounded_channel();
    let events = Arc::new(Events {
        tx,
        all: Mutex::new(vec![]),
    });
    let config = ClientConfig {
        server_url: format!("http://{addr}"),
        site_key: "demo".into(),
        ..Default::default()
    };
    let client = Client::start(config, events.clone()).expect("start");
    let send = client.send("多久发货？");
    let seq = tokio::time::timeout(Duration::from_secs(30), send)
        .await
        .expect("acked in time")
        .expect("acked");
    assert_eq!(seq, 1);
    let reply = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(e) = rx.recv().await {
            if let Event::Message { message } = e {
                if message.author.kind == AuthorKind::Bot {
                    return message;
                }
            }
        }
        panic!("the listener closed")
    })
    .await
    .expect("bot reply in time");
    assert_eq!(reply.text, "你问的是：多久发货？");
    assert_eq!(script.sessions.load(Ordering::SeqCst), 2, "session retried");
    assert_eq!(script.hellos.load(Ordering::SeqCst), 2, "hello retried");
    let all = events.all.lock().expect("events").clone();
    assert!(
        !all.iter().any(|e| matches!(
            e,
            Event::Connection {
                status: ConnectionStatus::Stopped
            }
        )),
        "the client never stopped: {all:?}"
    );
    assert!(all.iter().any(|e| matches!(
        e,
        Event::Connection {
            status: ConnectionStatus::Waiting { .. }
        }
    )));
    client.close();
}
