//! Faults below the server, end to end: the conversation database going away and coming back
//! (PostgreSQL behind a TCP relay that the test cuts, as a stopped or unreachable database looks
//! to the server), and a bot turn cut by `kill -9` between the visitor's ack and the reply.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kefu_e2e::chat::{Api, Chat};
use kefu_e2e::{PgSchema, Server};
use kefu_protocol::AuthorKind;
use kefu_server::store::{BotTurn, NewMessage, Require, Store};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP relay to PostgreSQL. `cut` drops every relayed connection and closes new ones at once
/// (the database is gone); `restore` relays again.
struct Relay {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay addr");
        let up = Arc::new(AtomicBool::new(true));
        let (cut, cuts) = watch::channel(0u64);
        let relay_up = Arc::clone(&up);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !relay_up.load(Ordering::Acquire) {
                    continue; // dropped: the client sees the connection closed
                }
                let mut cuts = cuts.clone();
                // Only cuts after this connection opened end it.
                cuts.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Relay { addr, up, cut }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::Release);
        self.cut.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::Release);
    }
}

#[test]
fn a_database_outage_answers_unavailable_and_the_server_recovers() {
    let schema = PgSchema::create();
    // The schema's URL with the relay in place of PostgreSQL's own address.
    let target: SocketAddr = "127.0.0.1:5432".parse().expect("pg addr");
    let rt = kefu_e2e::runtime();
    let relay = rt.block_on(Relay::start(target));
    assert!(
        schema.url.contains("127.0.0.1:5432"),
        "this test relays to 127.0.0.1:5432: {}",
        schema.url
    );
    let db = schema
        .url
        .replace("127.0.0.1:5432", &relay.addr.to_string());
    let dir = tempfile::tempdir().expect("tmp");
    let server = Server::start(dir.path(), &["--database-url", &db]);

    rt.block_on(async {
        let api = Api::new(&server.base);
        let (token, conv) = api.visitor("demo").await;
        let mut chat = Chat::connect(&server.ws_url(), &token).await;
        chat.subscribe(&conv, 0).await;
        chat.say(&conv, "before", "多久发货？").await;
        let reply = chat.message_by("bot").await;
        assert!(!reply["text"].as_str().unwrap_or("").is_empty(), "{reply}");

        // The database goes away: REST and WebSocket answer a clear, retryable code, in bounded
        // time, and the server keeps serving what needs no database.
        relay.cut();
        let started = Instant::now();
        let (status, body) = api
            .post("/v1/visitor/sessions", None, json!({ "site_key": "demo" }))
            .await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "unavailable", "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the outage answer took {:?}",
            started.elapsed()
        );
        chat.send(json!({ "type": "send", "conversation_id": conv,
                          "client_msg_id": "during", "text": "还在吗？" }))
            .await;
        let code = chat.error_code().await;
        assert_eq!(code, "unavailable");
        let (status, _) = api.get("/healthz", None).await;
        assert_eq!(status, 200);

        // It comes back: the same connection and new sessions work again without a restart.
        relay.restore();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = api
                .post("/v1/visitor/sessions", None, json!({ "site_key": "demo" }))
                .await;
            if status == 201 {
                break;
            }
            assert_eq!(status, 503, "{body}");
            assert!(Instant::now() < deadline, "no recovery: {body}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        chat.say(&conv, "after", "怎么退货？").await;
        let reply = chat.message_by("bot").await;
        assert!(!reply["text"].as_str().unwrap_or("").is_empty(), "{reply}");
    });
    drop(server);
    drop(schema);
}

#[test]
fn a_bot_turn_cut_by_kill9_is_answered_after_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(dir.path(), &[]);
    let rt = kefu_e2e::runtime();
    let (token, visitor_id, conv) = rt.block_on(async {
        let api = Api::new(&server.base);
        let (status, body) = api
            .post("/v1/visitor/sessions", None, json!({ "site_key": "demo" }))
            .await;
        assert_eq!(status, 201, "{body}");
        let field = |k: &str| body[k].as_str().expect(k).to_string();
        (
            field("token"),
            field("visitor_id"),
            field("conversation_id"),
        )
    });
    server.kill9();

    // What the server commits before it acks a visitor message, with the process gone before
    // the reply: the message and its pending turn, in one transaction.
    let seq = rt.block_on(async {
        let store = Store::open_sqlite(&dir.path().join("conversations.db"))
            .await
            .expect("store");
        let msg = NewMessage {
            author_id: Some(visitor_id.clone()),
            client_msg_id: Some("cut-by-kill9".into()),
            bot_turn: BotTurn::Start,
            ..NewMessage::text(AuthorKind::Visitor, "多久发货？")
        };
        let appended = store
            .append(&conv, Require::Open, &msg)
            .await
            .expect("append");
        store.close().await;
        match appended {
            kefu_server::store::Append::Committed { message, .. } => message.seq,
            other => panic!("not committed: {other:?}"),
        }
    });

    let server = Server::start(dir.path(), &[]);
    rt.block_on(async {
        let mut chat = Chat::connect(&server.ws_url(), &token).await;
        chat.subscribe(&conv, seq).await;
        let reply = chat.message_by("bot").await;
        assert!(reply["seq"].as_u64().is_some_and(|s| s > seq), "{reply}");
        assert!(
            reply["text"].as_str().is_some_and(|t| t.contains("发货")),
            "the reply answers the cut message: {reply}"
        );
        // Exactly one reply: nothing else arrives for the same turn.
        chat.send(json!({ "type": "ping" })).await;
        let next = chat
            .until("pong", |v| v["type"] == "pong" || v["type"] == "message")
            .await;
        assert_eq!(next["type"], "pong", "a second reply: {next}");
    });
}
