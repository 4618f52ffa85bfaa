//! The conversation server end to end: real `kefu serve` processes, real WebSockets, the real
//! model. Bot answers with sources, handoff (request, repeated fallback), agent claim / reply /
//! transfer / hand back, resume without loss or duplicates, kill -9 durability, and the
//! documented error codes for bad frames and cross-conversation access.

use std::path::Path;
use std::time::Duration;

use kefu_e2e::chat::{Api, Chat};
use kefu_e2e::{kefu, run, runtime, Server};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse 马";

fn add_agent(data: &Path, name: &str, display: &str) {
    kefu_e2e::add_agent(data, &[], name, display, PASSWORD, &[]);
}

/// The first frame of each type after skipping others is not enough for ordering checks; this
/// collects the conversation's message seqs seen on a connection.
fn message_seqs(frames: &[Value], conversation: &str) -> Vec<u64> {
    frames
        .iter()
        .filter(|v| v["type"] == "message" && v["message"]["conversation_id"] == conversation)
        .filter_map(|v| v["message"]["seq"].as_u64())
        .collect()
}

#[test]
fn bot_answers_with_a_source_and_hands_off_when_asked() {
    let tmp = tempfile::tempdir().expect("tmp");
    let server = Server::start(tmp.path(), &[]);
    runtime().block_on(async {
        let api = Api::new(&server.base);
        let (token, conv) = api.visitor("demo").await;
        let mut v = Chat::connect(&server.ws_url(), &token).await;
        v.subscribe(&conv, 0).await;
        let state = v.until("state", |f| f["type"] == "state").await;
        assert_eq!(state["state"], "bot");

        let seq = v.say(&conv, "q1", "下单后多久发货？").await;
        assert_eq!(seq, 1);
        let bot = v.message_by("bot").await;
        assert_eq!(bot["seq"], 2);
        assert_eq!(bot["sources"][0]["id"], "zh-ship-time", "{bot}");
        assert_eq!(bot["sources"][0]["source"], "faq-zh.csv");
        assert!(
            bot.get("route_trace").is_none(),
            "visitors never see traces"
        );

        let seq = v.say(&conv, "q2", "How long does delivery take?").await;
        assert_eq!(seq, 3);
        let bot = v.message_by("bot").await;
        assert!(
            bot["sources"][0]["id"]
                .as_str()
                .unwrap_or("")
                .contains("ship"),
            "{bot}"
        );

        // An explicit request: no agent is online, so an offline message is taken.
        v.say(&conv, "q3", "我要转人工").await;
        let sys = v.message_by("system").await;
        assert!(
            sys["text"].as_str().unwrap_or("").contains("没有在线"),
            "{sys}"
        );
        let state = v.until("queued", |f| f["type"] == "state").await;
        assert_eq!(state["state"], "queued");
        // While queued the bot stays silent; the message is stored for the agents.
        v.say(&conv, "q4", "我的订单号是 A1001").await;

        // The console API shows the queue (offline message) and the route traces.
        add_agent(tmp.path(), "li", "小李");
        let agent = api.agent("li", PASSWORD).await;
        let (_, queue) = api
            .get("/v1/agent/conversations?state=queued", Some(&agent))
            .await;
        let item = &queue["conversations"][0];
        assert_eq!(item["id"], conv.as_str());
        assert_eq!(item["offline"], true);
        assert_eq!(item["last_text"], "我的订单号是 A1001");
        let (_, t) = api
            .get(&format!("/v1/agent/conversations/{conv}"), Some(&agent))
            .await;
        let msgs = t["messages"].as_array().expect("messages");
        assert_eq!(
            msgs.iter()
                .map(|m| m["seq"].as_u64().unwrap_or(0))
                .collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5, 6, 7]
        );
        let trace = &msgs[1]["route_trace"];
        assert_eq!(trace["decision"], "answer", "{trace}");
        assert_eq!(trace["kb"]["band"], "answer");
        assert_eq!(trace["kb"]["hits"][0]["id"], "zh-ship-time");
        assert!(
            trace["kb"]["hits"][0]["score"].as_f64().unwrap_or(0.0)
                >= trace["kb"]["thresholds"]["answer"].as_f64().unwrap_or(1.0)
        );
        assert_eq!(msgs[5]["author"]["kind"], "system");
        assert_eq!(
            msgs[5]["route_trace"]["handoff"]["reason"], "rule",
            "{}",
            msgs[5]
        );
        assert_eq!(msgs[5]["route_trace"]["rule"]["rule_id"], "builtin-handoff");
        assert_eq!(msgs[6]["author"]["kind"], "visitor");

        let (status, suggestions) = api
            .get(
                &format!("/v1/agent/conversations/{conv}/suggestions"),
                Some(&agent),
            )
            .await;
        assert_eq!(status, 200, "{suggestions}");
        assert_eq!(suggestions["question"], "我的订单号是 A1001");

        let (_, metrics) = (
            0,
            reqwest::get(server.url("/metrics"))
                .await
                .expect("metrics")
                .text()
                .await
                .expect("text"),
        );
        assert!(metrics.contains("kefu_messages_total"), "{metrics}");
        assert!(metrics.contains("kefu_handoffs_total"));
        assert!(metrics.contains("kefu_bot_reply_seconds"));
    });
}

#[test]
fn repeated_fallbacks_hand_off() {
    let tmp = tempfile::tempdir().expect("tmp");
    let server = Server::start(tmp.path(), &["--fallbacks-before-handoff", "2"]);
    runtime().block_on(async {
        let api = Api::new(&server.base);
        let (token, conv) = api.visitor("demo").await;
        let mut v = Chat::connect(&server.ws_url(), &token).await;
        v.subscribe(&conv, 0).await;
        v.say(&conv, "f1", "Who won the football world cup in 1966?")
            .await;
        let bot = v.message_by("bot").await;
        assert!(
            bot["text"].as_str().unwrap_or("").starts_with("Sorry"),
            "{bot}"
        );
        v.say(&conv, "f2", "Recommend a recipe for lasagna with spinach")
            .await;
        let sys = v.message_by("system").await;
        assert!(
            sys["text"]
                .as_str()
                .unwrap_or("")
                .contains("No agent is online"),
            "{sys}"
        );
        let state = v.until("queued", |f| f["type"] == "state").await;
        assert_eq!(state["state"], "queued");
    });
}

#[test]
fn agent_claims_replies_transfers_and_hands_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    add_agent(tmp.path(), "li", "小李");
    add_agent(tmp.path(), "amy", "Amy");
    let server = Server::start(tmp.path(), &[]);
    runtime().block_on(async {
        let api = Api::new(&server.base);
        let li = api.agent("li", PASSWORD).await;
        let amy = api.agent("amy", PASSWORD).await;
        let mut a = Chat::connect(&server.ws_url(), &li).await;
        let presence = a.until("presence", |f| f["type"] == "presence").await;
        assert!(presence["agents"].as_array().is_some_and(|l| l.iter().any(|x| x["name"] == "li")));

        let (token, conv) = api.visitor("demo").await;
        let mut v = Chat::connect(&server.ws_url(), &token).await;
        v.subscribe(&conv, 0).await;
        v.say(&conv, "h1", "I want to talk to a human").await;
        let sys = v.message_by("system").await;
        assert!(sys["text"].as_str().unwrap_or("").contains("Connecting you"), "{sys}");
        let queued = a
            .until("queue update", |f| f["type"] == "conversation" && f["conversation"]["state"] == "queued")
            .await;
        assert_eq!(queued["conversation"]["id"], conv.as_str());

        // Sending before claiming is refused; claiming twice is refused.
        a.send(json!({"type": "send", "conversation_id": conv, "client_msg_id": "early", "text": "hi"})).await;
        assert_eq!(a.error_code().await, "not_owner");
        let (status, body) = api.post(&format!("/v1/agent/conversations/{conv}/claim"), Some(&li), json!({})).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = api.post(&format!("/v1/agent/conversations/{conv}/claim"), Some(&amy), json!({})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")), "{body}");
        // The system note comes first, then the state change.
        let joined = v.message_by("system").await;
        assert!(joined["text"].as_str().unwrap_or("").contains("小李"), "{joined}");
        let st = v.until("state agent", |f| f["type"] == "state" && f["state"] == "agent").await;
        assert_eq!(st["agent"], "li");

        a.subscribe(&conv, 0).await;
        a.send(json!({"type": "typing", "conversation_id": conv, "typing": true})).await;
        let typing = v.until("typing", |f| f["type"] == "typing").await;
        assert_eq!(typing["author"]["kind"], "agent");
        assert_eq!(typing["typing"], true);
        let seq = a.say(&conv, "a1", "您好，我是小李，请问有什么可以帮您？").await;
        let m = v.message_by("agent").await;
        assert_eq!((m["seq"].as_u64(), m["author"]["name"].as_str()), (Some(seq), Some("小李")));
        // The bot never answers while an agent owns the conversation.
        v.say(&conv, "v2", "How long does shipping take?").await;
        let from_visitor = a.message_by("visitor").await;
        assert_eq!(from_visitor["text"], "How long does shipping take?");
        v.send(json!({"type": "read", "conversation_id": conv, "seq": seq})).await;
        let read = a.until("read", |f| f["type"] == "read").await;
        assert_eq!(read["seq"], seq);

        // Transfer to Amy (online), who hands back to the bot.
        let mut b = Chat::connect(&server.ws_url(), &amy).await;
        let (status, body) = api
            .post(&format!("/v1/agent/conversations/{conv}/transfer"), Some(&li), json!({"agent": "amy"}))
            .await;
        assert_eq!(status, 200, "{body}");
        let st = v.until("state amy", |f| f["type"] == "state" && f["agent"] == "amy").await;
        assert_eq!(st["state"], "agent");
        let (status, body) = api.post(&format!("/v1/agent/conversations/{conv}/handback"), Some(&li), json!({})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (409, Some("not_owner")));
        b.subscribe(&conv, 0).await;
        let (status, _) = api.post(&format!("/v1/agent/conversations/{conv}/handback"), Some(&amy), json!({})).await;
        assert_eq!(status, 200);
        v.until("state bot", |f| f["type"] == "state" && f["state"] == "bot").await;
        v.say(&conv, "v3", "支持哪些付款方式？").await;
        let bot = v.message_by("bot").await;
        assert!(!bot["sources"].as_array().map(Vec::is_empty).unwrap_or(true), "{bot}");
        let seen_by_amy = b.message_by("bot").await;
        assert!(seen_by_amy.get("route_trace").is_some(), "agents see the trace");

        // Every message arrived once, in order, on the visitor's connection.
        let seqs = message_seqs(&v.seen, &conv);
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(seqs, sorted, "in order, no duplicates");
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "no gaps");

        let (status, _) = api.post(&format!("/v1/agent/conversations/{conv}/resolve"), Some(&amy), json!({})).await;
        assert_eq!(status, 200);
        v.until("resolved", |f| f["type"] == "state" && f["state"] == "resolved").await;
        v.send(json!({"type": "send", "conversation_id": conv, "client_msg_id": "late", "text": "还在吗"})).await;
        assert_eq!(v.error_code().await, "conversation_closed");
        let (status, body) = api.post("/v1/visitor/conversations", Some(&token), json!({})).await;
        assert_eq!(status, 201);
        assert_ne!(body["conversation_id"], conv.as_str(), "a new conversation");
    });
}

#[test]
fn resume_after_disconnect_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let server = Server::start(tmp.path(), &[]);
    runtime().block_on(async {
        let api = Api::new(&server.base);
        let (token, conv) = api.visitor("demo").await;
        let mut v = Chat::connect(&server.ws_url(), &token).await;
        v.subscribe(&conv, 0).await;
        v.say(&conv, "r1", "怎么申请退货？").await;
        let bot = v.message_by("bot").await;
        let last_seen = bot["seq"].as_u64().expect("seq");
        // Ask and leave before the answer arrives.
        v.say(&conv, "r2", "Which payment methods do you accept?")
            .await;
        v.close().await;
        tokio::time::sleep(Duration::from_millis(1500)).await;

        let mut again = Chat::connect(&server.ws_url(), &token).await;
        again.subscribe(&conv, last_seen).await;
        let missed_visitor = again.message_by("visitor").await;
        assert_eq!(missed_visitor["seq"], last_seen + 1);
        assert_eq!(missed_visitor["client_msg_id"], "r2");
        let missed_bot = again.message_by("bot").await;
        assert_eq!(missed_bot["seq"], last_seen + 2);
        // Resending an acknowledged message is acknowledged again with the same seq, once.
        let seq = again
            .say(&conv, "r2", "Which payment methods do you accept?")
            .await;
        assert_eq!(seq, last_seen + 1);
        again.send(json!({"type": "ping"})).await;
        again.until("pong", |f| f["type"] == "pong").await;
        let seqs = message_seqs(&again.seen, &conv);
        assert_eq!(
            seqs,
            vec![last_seen + 1, last_seen + 2],
            "exactly what was missed"
        );
        let (_, page) = api
            .get(
                &format!("/v1/conversations/{conv}/messages?after_seq=0"),
                Some(&token),
            )
            .await;
        assert_eq!(page["messages"].as_array().map(Vec::len), Some(4), "{page}");
        assert!(page["messages"][1].get("route_trace").is_none());

        // History pages backwards.
        again
            .send(json!({"type": "history", "conversation_id": conv, "before_seq": 4, "limit": 2}))
            .await;
        let h = again.until("history", |f| f["type"] == "history").await;
        assert_eq!(h["has_more"], true);
        assert_eq!(h["messages"][0]["seq"], 2);
        assert_eq!(h["messages"][1]["seq"], 3);
    });
}

#[test]
fn kill_9_keeps_every_acknowledged_message() {
    kill_9_round_trip(&[]);
}

#[test]
fn kill_9_keeps_every_acknowledged_message_on_postgres() {
    let schema = kefu_e2e::PgSchema::create();
    kill_9_round_trip(&["--database-url", &schema.url]);
}

fn kill_9_round_trip(db: &[&str]) {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut args = vec!["--frames-per-second", "200"];
    args.extend_from_slice(db);
    let mut server = Server::start(tmp.path(), &args);
    let rt = runtime();
    let (token, conv, acked) = rt.block_on(async {
        let api = Api::new(&server.base);
        let (token, conv) = api.visitor("demo").await;
        let mut v = Chat::connect(&server.ws_url(), &token).await;
        let mut acked = Vec::new();
        for i in 0..30 {
            let text = if i % 2 == 0 {
                format!("第{i}条：多久发货？")
            } else {
                format!("message {i}: refund policy?")
            };
            let id = format!("k{i}");
            let seq = v.say(&conv, &id, &text).await;
            acked.push((id, seq, text));
        }
        (token, conv, acked)
    });
    // No graceful anything: SIGKILL right after the last ack.
    server.kill9();
    let server = Server::start(tmp.path(), db);
    rt.block_on(async {
        let mut v = Chat::connect(&server.ws_url(), &token).await;
        v.subscribe(&conv, 0).await;
        let state = v.until("state", |f| f["type"] == "state").await;
        let api = Api::new(&server.base);
        let (_, page) = api
            .get(
                &format!("/v1/conversations/{conv}/messages?after_seq=0&limit=100"),
                Some(&token),
            )
            .await;
        let stored: Vec<&Value> = page["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .collect();
        for (id, seq, text) in &acked {
            let m = stored
                .iter()
                .find(|m| m["client_msg_id"] == id.as_str())
                .unwrap_or_else(|| panic!("acknowledged message {id} lost"));
            assert_eq!(
                (m["seq"].as_u64(), m["text"].as_str()),
                (Some(*seq), Some(text.as_str()))
            );
        }
        let seqs: Vec<u64> = stored.iter().filter_map(|m| m["seq"].as_u64()).collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "gap-free after restart"
        );
        assert!(
            state["state"] == "bot" || state["state"] == "queued",
            "{state}"
        );
        // The client resumes: resending everything makes no duplicates.
        for (id, seq, text) in acked.iter().take(5) {
            assert_eq!(v.say(&conv, id, text).await, *seq);
        }
        let (_, after) = api
            .get(
                &format!("/v1/conversations/{conv}/messages?after_seq=0&limit=100"),
                Some(&token),
            )
            .await;
        let ids: Vec<&str> = after["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter_map(|m| m["client_msg_id"].as_str())
            .collect();
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(ids.len(), unique.len(), "no duplicate client_msg_id");
    });
}

#[test]
fn bad_frames_and_foreign_conversations_get_documented_codes() {
    let tmp = tempfile::tempdir().expect("tmp");
    add_agent(tmp.path(), "li", "小李");
    let mut c = kefu(tmp.path());
    c.args([
        "site",
        "add",
        "secure",
        "--origin",
        "https://shop.example",
        "--enforce-identity",
        "--identity-secret",
        "0123456789abcdef0123",
    ]);
    assert!(run(c).status.success());
    let mut server = Server::start(tmp.path(), &[]);
    runtime().block_on(async {
        let api = Api::new(&server.base);
        let (token_a, conv_a) = api.visitor("demo").await;
        let (token_b, conv_b) = api.visitor("demo").await;
        let mut a = Chat::connect(&server.ws_url(), &token_a).await;
        a.say(&conv_a, "keep", "请保留这条消息").await;

        let mut x = Chat::open(&server.ws_url(), None).await;
        x.send(json!({"type": "subscribe", "conversation_id": conv_a})).await;
        assert_eq!(x.error_code().await, "unauthorized");
        x.send(json!({"type": "hello", "version": 1, "token": "kv_forged"})).await;
        assert_eq!(x.error_code().await, "unauthorized");
        x.send(json!({"type": "hello", "version": 9, "token": token_b})).await;
        assert_eq!(x.error_code().await, "unsupported_version");
        x.send(json!({"type": "hello", "version": 1, "token": token_b})).await;
        x.until("welcome", |f| f["type"] == "welcome").await;
        for (frame, code) in [
            ("not json".to_string(), "invalid_frame"),
            (r#"{"type":"dance"}"#.to_string(), "unknown_type"),
            (r#"{"type":"send","conversation_id":"c"}"#.to_string(), "invalid_frame"),
            (json!({"type":"send","conversation_id":conv_b,"client_msg_id":"big","text":"长".repeat(4001)}).to_string(), "too_large"),
            (json!({"type":"ping","pad":"x".repeat(20_000)}).to_string(), "too_large"),
            (json!({"type":"send","conversation_id":conv_b,"client_msg_id":"","text":"hi"}).to_string(), "invalid_input"),
            (json!({"type":"history","conversation_id":conv_b,"before_seq":9,"limit":1000}).to_string(), "invalid_input"),
            (json!({"type":"subscribe","conversation_id":conv_a}).to_string(), "forbidden"),
            (json!({"type":"send","conversation_id":conv_a,"client_msg_id":"steal","text":"hi"}).to_string(), "forbidden"),
            (json!({"type":"typing","conversation_id":conv_a,"typing":true}).to_string(), "forbidden"),
            (json!({"type":"subscribe","conversation_id":"c_nope"}).to_string(), "not_found"),
        ] {
            x.send_raw(&frame).await;
            assert_eq!(x.error_code().await, code, "{}", &frame[..frame.len().min(80)]);
        }
        x.send_binary(vec![1, 2, 3]).await;
        assert_eq!(x.error_code().await, "invalid_frame");
        // The connection is still up after all of that.
        x.send(json!({"type": "ping"})).await;
        x.until("pong", |f| f["type"] == "pong").await;

        // Per-connection rate limit.
        for _ in 0..100 {
            x.send(json!({"type": "ping"})).await;
        }
        assert_eq!(x.error_code().await, "rate_limited");

        // REST scopes.
        let (status, body) = api.get("/v1/agent/conversations", Some(&token_a)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));
        let (status, body) = api.get("/v1/agent/conversations", None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));
        let agent = api.agent("li", PASSWORD).await;
        let (status, _) = api.get("/v1/admin/sites", Some(&agent)).await;
        assert_eq!(status, 403, "agents are not admins");
        let (status, body) = api.get(&format!("/v1/conversations/{conv_a}/messages"), Some(&token_b)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));
        let (status, body) = api.post("/v1/agent/login", None, json!({"name": "li", "password": "wrong password"})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_credentials")));

        // Identity verification and origins.
        let (status, body) = api.post("/v1/visitor/sessions", None, json!({"site_key": "secure"})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("identity_required")));
        let (status, body) = api.post("/v1/visitor/sessions", None, json!({"site_key": "secure", "user_id": "u1", "user_hash": "00"})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("identity_invalid")));
        let hash = hmac_hex("0123456789abcdef0123", "u1");
        let (status, body) = api.post("/v1/visitor/sessions", None, json!({"site_key": "secure", "user_id": "u1", "user_hash": hash})).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["verified"], true);
        let verified_token = body["token"].as_str().unwrap_or_default().to_string();
        let evil = api
            .http
            .post(server.url("/v1/visitor/sessions"))
            .header("Origin", "https://evil.example")
            .json(&json!({"site_key": "secure", "user_id": "u1", "user_hash": hash}))
            .send()
            .await
            .expect("request");
        assert_eq!(evil.status().as_u16(), 403);
        let mut o = Chat::open(&server.ws_url(), Some("https://evil.example")).await;
        o.send(json!({"type": "hello", "version": 1, "token": verified_token})).await;
        assert_eq!(o.error_code().await, "origin_not_allowed");
        let closed = o.until("close", |f| f["type"] == "closed").await;
        assert_eq!(closed["code"], 1008);
        let mut ok = Chat::open(&server.ws_url(), Some("https://shop.example")).await;
        ok.send(json!({"type": "hello", "version": 1, "token": verified_token})).await;
        ok.until("welcome", |f| f["type"] == "welcome").await;

        // Nothing stored was lost: A's message is intact.
        let (_, page) = api.get(&format!("/v1/conversations/{conv_a}/messages"), Some(&token_a)).await;
        assert_eq!(page["messages"][0]["text"], "请保留这条消息");
        assert_eq!(page["messages"][0]["seq"], 1);
        a.send(json!({"type": "ping"})).await;
        a.until("pong", |f| f["type"] == "pong").await;
    });
    // Graceful shutdown closes sockets with 1001.
    let rt = runtime();
    let mut live = rt.block_on(async {
        let api = Api::new(&server.base);
        let (token, _) = api.visitor("demo").await;
        Chat::connect(&server.ws_url(), &token).await
    });
    assert!(server.terminate(), "clean exit on SIGTERM");
    let closed = rt.block_on(live.until("close", |f| f["type"] == "closed"));
    assert_eq!(closed["code"], 1001);
}

/// hex(HMAC-SHA256(key, msg)), computed independently of the server (RFC 2104 over sha2).
fn hmac_hex(key: &str, msg: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key.as_bytes());
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg.as_bytes())
        .finalize();
    let outer = Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize();
    hex::encode(outer)
}
