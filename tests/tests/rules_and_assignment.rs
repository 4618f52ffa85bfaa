//! Operator rules and automatic assignment end to end: a rules file whose rule replies, sets an
//! intent and calls a webhook (a real HTTP listener here), and round-robin assignment within
//! capacity when `--auto-assign` is on.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use kefu_e2e::chat::{Api, Chat};
use kefu_e2e::{kefu, run, runtime, PgSchema, Server};
use serde_json::{json, Value};

const PASSWORD: &str = "rules-and-assignment";

/// Accepts HTTP requests on loopback and sends each JSON body down the channel, answering 200.
fn webhook_receiver() -> (String, mpsc::Receiver<Value>) {
    webhook_receiver_answering(Arc::new(AtomicBool::new(true)))
}

/// Like `webhook_receiver`, but answers 503 while `accept` is false. Each body sent down the
/// channel carries `_request_line`, `_status` (the answer) and the request's `_idempotency_key`
/// and `_attempt` headers.
fn webhook_receiver_answering(accept: Arc<AtomicBool>) -> (String, mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hooks/kefu", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut length = 0usize;
            let mut line = String::new();
            let mut request_line = String::new();
            let (mut key, mut attempt) = (String::new(), String::new());
            reader.read_line(&mut request_line).expect("request line");
            loop {
                line.clear();
                if reader.read_line(&mut line).expect("header") == 0 || line == "\r\n" {
                    break;
                }
                let Some((name, value)) = line.split_once(':') else {
                    continue;
                };
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "idempotency-key" => key = value.trim().to_string(),
                    "kefu-delivery-attempt" => attempt = value.trim().to_string(),
                    _ => {}
                }
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).expect("body");
            let status = if accept.load(Ordering::SeqCst) {
                200
            } else {
                503
            };
            let _ = stream.write_all(
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            );
            let mut v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            v["_request_line"] = Value::String(request_line.trim().to_string());
            v["_status"] = json!(status);
            v["_idempotency_key"] = Value::String(key);
            v["_attempt"] = Value::String(attempt);
            let _ = tx.send(v);
        }
    });
    (url, rx)
}

/// A rules file whose refund rule calls `hook` and replies.
fn refund_rules(dir: &Path, hook: &str) -> String {
    let rules = dir.join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            r#"
[[rules]]
id = "refund"
priority = 50
regex = "退款|refund"
actions = [
  {{ type = "intent", name = "refund" }},
  {{ type = "webhook", url = "{hook}" }},
  {{ type = "reply", text = "退款申请已收到，我们会在 1-3 个工作日内处理。We got your refund request." }},
]

[[canned]]
title = "退款进度"
text = "您的退款正在处理中。"
"#
        ),
    )
    .expect("write rules");
    rules.to_string_lossy().to_string()
}

#[test]
fn a_rule_replies_sets_an_intent_and_calls_its_webhook() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (hook, received) = webhook_receiver();
    let rules_arg = refund_rules(tmp.path(), &hook);
    let rules = tmp.path().join("rules.toml");
    let mut c = kefu(tmp.path());
    c.args(["agent", "add", "li", "--password", PASSWORD]);
    assert!(run(c).status.success());
    let server = Server::start(tmp.path(), &["--rules", &rules_arg]);
    runtime().block_on(async {
        let api = Api::new(&server.base);
        let (token, conv) = api.visitor("demo").await;
        let mut v = Chat::connect(&server.ws_url(), &token).await;
        v.subscribe(&conv, 0).await;
        v.say(&conv, "r1", "我想申请退款").await;
        let bot = v.message_by("bot").await;
        assert!(
            bot["text"]
                .as_str()
                .unwrap_or("")
                .starts_with("退款申请已收到"),
            "{bot}"
        );

        let hook_body =
            tokio::task::spawn_blocking(move || received.recv_timeout(Duration::from_secs(30)))
                .await
                .expect("join")
                .expect("the webhook was called");
        assert_eq!(hook_body["_request_line"], "POST /hooks/kefu HTTP/1.1");
        assert_eq!(hook_body["event"], "rule_matched");
        assert_eq!(hook_body["conversation_id"], conv.as_str());
        assert_eq!(hook_body["text"], "我想申请退款");
        assert_eq!(hook_body["rule"], "refund");
        assert_eq!(hook_body["intent"], "refund");
        assert_eq!(hook_body["_attempt"], "1");
        assert_eq!(hook_body["_idempotency_key"], format!("{conv}:1:0"));

        let agent = api.agent("li", PASSWORD).await;
        let (_, t) = api
            .get(&format!("/v1/agent/conversations/{conv}"), Some(&agent))
            .await;
        let trace = &t["messages"][1]["route_trace"];
        assert_eq!(trace["decision"], "rule_reply", "{trace}");
        assert_eq!(trace["rule"]["rule_id"], "refund");
        assert_eq!(trace["rule"]["matched"], "退款");
        assert_eq!(trace["intent"]["name"], "refund");
        assert!(
            trace.get("kb").is_none(),
            "the rule decided before retrieval"
        );
        let (_, canned) = api.get("/v1/agent/canned", Some(&agent)).await;
        let titles: Vec<&str> = canned["canned"]
            .as_array()
            .expect("canned")
            .iter()
            .filter_map(|c| c["title"].as_str())
            .collect();
        assert!(
            titles.contains(&"退款进度") && titles.contains(&"Greeting"),
            "{titles:?}"
        );
        // The built-in handoff rule still applies beside the file's rules.
        v.say(&conv, "r2", "转人工").await;
        v.until("queued", |f| f["type"] == "state" && f["state"] == "queued")
            .await;
    });

    // A broken rules file stops the server before it binds, naming the problem.
    std::fs::write(
        &rules,
        "[[rules]]\nid = \"bad\"\nregex = \"(\"\nactions = [{ type = \"handoff\" }]\n",
    )
    .expect("write");
    let mut c = kefu(tmp.path());
    c.args(["serve", "--listen", "127.0.0.1:0", "--rules", &rules_arg]);
    let out = run(c);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rule `bad`") && err.contains("regex"), "{err}");
}

fn add_agent(data: &Path, name: &str) {
    kefu_e2e::add_agent(data, &[], name, name, PASSWORD, &["--capacity", "1"]);
}

#[test]
fn auto_assign_is_round_robin_within_capacity() {
    let tmp = tempfile::tempdir().expect("tmp");
    add_agent(tmp.path(), "amy");
    add_agent(tmp.path(), "bo");
    let server = Server::start(tmp.path(), &["--auto-assign"]);
    runtime().block_on(async {
        let api = Api::new(&server.base);
        let amy = api.agent("amy", PASSWORD).await;
        let bo = api.agent("bo", PASSWORD).await;
        let _amy_console = Chat::connect(&server.ws_url(), &amy).await;
        let _bo_console = Chat::connect(&server.ws_url(), &bo).await;

        let mut owners = Vec::new();
        for i in 0..2 {
            let (token, conv) = api.visitor("demo").await;
            let mut v = Chat::connect(&server.ws_url(), &token).await;
            v.subscribe(&conv, 0).await;
            v.send(json!({"type": "request_human", "conversation_id": conv}))
                .await;
            let st = v
                .until("assigned", |f| f["type"] == "state" && f["state"] != "bot")
                .await;
            assert_eq!(st["state"], "agent", "visitor {i}: {st}");
            owners.push(st["agent"].as_str().unwrap_or_default().to_string());
        }
        owners.sort();
        assert_eq!(owners, vec!["amy", "bo"], "one each");

        // Both are at capacity (1): the next conversation waits in the queue.
        let (token, conv) = api.visitor("demo").await;
        let mut v = Chat::connect(&server.ws_url(), &token).await;
        v.subscribe(&conv, 0).await;
        v.send(json!({"type": "request_human", "conversation_id": conv}))
            .await;
        let st = v
            .until("queued", |f| f["type"] == "state" && f["state"] != "bot")
            .await;
        assert_eq!(st["state"], "queued");
        let (status, body) = api
            .post(
                &format!("/v1/agent/conversations/{conv}/claim"),
                Some(&amy),
                json!({}),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("conflict")),
            "capacity: {body}"
        );
    });
}

/// Waits for the receiver's next request (up to `secs`).
fn next_request(received: &mpsc::Receiver<Value>, secs: u64) -> Option<Value> {
    received.recv_timeout(Duration::from_secs(secs)).ok()
}

/// A rule webhook the receiver refuses is retried from the outbox; when its node dies
/// (`kill -9`) with the delivery pending, another node sharing the PostgreSQL database delivers
/// it, once, with the same idempotency key.
#[test]
fn a_refused_webhook_is_retried_and_delivered_by_another_node_after_a_crash() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let accept = Arc::new(AtomicBool::new(false));
    let (hook, received) = webhook_receiver_answering(Arc::clone(&accept));
    let rules = refund_rules(tmp.path(), &hook);
    let schema = PgSchema::create();
    let args = ["--database-url", schema.url.as_str(), "--rules", &rules];
    let mut a = Server::start(&dir_a, &args);
    let conv = runtime().block_on(async {
        let api = Api::new(&a.base);
        let (token, conv) = api.visitor("demo").await;
        let mut v = Chat::connect(&a.ws_url(), &token).await;
        v.subscribe(&conv, 0).await;
        v.say(&conv, "r1", "refund please, 我要退款").await;
        v.message_by("bot").await;
        conv
    });
    // The first attempt is refused; the delivery stays in the outbox.
    let first = next_request(&received, 30).expect("a first attempt");
    assert_eq!(first["_status"], 503);
    assert_eq!(first["_attempt"], "1");
    assert_eq!(first["conversation_id"], conv.as_str());
    let key = first["_idempotency_key"].clone();
    a.kill9();
    while next_request(&received, 0).is_some() {} // attempts A made before it died

    accept.store(true, Ordering::SeqCst);
    let _b = Server::start(&dir_b, &args);
    let delivered = loop {
        let r = next_request(&received, 45).expect("node B delivers it");
        if r["_status"] == 200 {
            break r;
        }
    };
    assert_eq!(delivered["_idempotency_key"], key, "{delivered}");
    assert!(
        delivered["_attempt"]
            .as_str()
            .and_then(|a| a.parse::<u32>().ok())
            > Some(1),
        "{delivered}"
    );
    assert_eq!(delivered["rule"], "refund");
    assert_eq!(delivered["text"], "refund please, 我要退款");
    assert!(
        next_request(&received, 3).is_none(),
        "delivered once, then never again"
    );
}
