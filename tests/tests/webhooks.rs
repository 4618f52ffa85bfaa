//! Event webhooks end to end: a real HTTP receiver in this test gets a conversation's events
//! (created, messages, a knowledge gap, queued, assigned, resolved, rating) from a real `kefu
//! serve`, signed; it
//! refuses the first attempts, the node is killed (`kill -9`) and started again, and still every
//! event arrives and is processed once. Signatures are checked with the recipe the README gives
//! (written out here, not borrowed from the server), which also rejects a tampered body and a
//! replayed old one; after a secret rotation both secrets verify.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use kefu_e2e::chat::{Api, Chat};
use kefu_e2e::Server;
use serde_json::{json, Value};
use sha2::Sha256;

/// The README's recipe: split `Kefu-Signature` into `t` and the `v1` values, refuse a `t` more
/// than `tolerance` seconds from now, and accept when any `v1` equals hex HMAC-SHA256(secret,
/// "<t>.<raw body>") (compared in constant time).
fn verify(header: &str, body: &[u8], secret: &str, now: i64, tolerance: i64) -> Result<(), String> {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1.push(hex::decode(v).map_err(|e| e.to_string())?),
            _ => {}
        }
    }
    let t = t.ok_or("no t")?;
    if (now - t).abs() > tolerance {
        return Err("outside the tolerance".into());
    }
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).map_err(|e| e.to_string())?;
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    if v1.iter().any(|s| mac.clone().verify_slice(s).is_ok()) {
        Ok(())
    } else {
        Err("no signature matches".into())
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What the receiver saw.
#[derive(Default)]
struct Received {
    /// Refuse every delivery (503) while set.
    failing: bool,
    secrets: Vec<String>,
    attempts: usize,
    /// Events processed once each, by id: (type, body).
    events: BTreeMap<String, (String, Value)>,
    /// Deliveries of an event already processed (retries after a lost answer).
    repeats: usize,
    /// One accepted delivery as received: (signature header, raw body).
    sample: Option<(String, Vec<u8>)>,
    bad_signatures: Vec<String>,
}

async fn receive(state: Arc<Mutex<Received>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut r = state.lock().unwrap_or_else(|e| e.into_inner());
    r.attempts += 1;
    if r.failing {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let header = headers
        .get("kefu-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let verified = r
        .secrets
        .iter()
        .any(|s| verify(&header, &body, s, unix_now(), 300).is_ok());
    if !verified {
        r.bad_signatures.push(header);
        return StatusCode::BAD_REQUEST;
    }
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = event["id"].as_str().unwrap_or("").to_string();
    let named = headers
        .get("kefu-event-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(named, id, "Kefu-Event-Id names the body's event");
    let kind = event["type"].as_str().unwrap_or("").to_string();
    match r.events.entry(id) {
        std::collections::btree_map::Entry::Occupied(_) => r.repeats += 1,
        std::collections::btree_map::Entry::Vacant(v) => {
            v.insert((kind, event));
        }
    }
    r.sample = Some((header, body.to_vec()));
    StatusCode::OK
}

/// Starts the receiver on a loopback port: its URL.
fn start_receiver(state: Arc<Mutex<Received>>, rt: &tokio::runtime::Runtime) -> String {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind the receiver");
    let addr = listener.local_addr().expect("address");
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            receive(Arc::clone(&state), headers, body)
        }),
    );
    rt.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/hook")
}

fn kefu_json(data: &std::path::Path, args: &[&str]) -> Value {
    serde_json::from_str(&kefu_e2e::kefu_ok(data, args)).expect("JSON")
}

fn kinds(r: &Received) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (kind, _) in r.events.values() {
        *out.entry(kind.clone()).or_insert(0) += 1;
    }
    out
}

#[test]
fn signed_events_reach_the_receiver_once_through_refusals_and_a_killed_node() {
    let rt = kefu_e2e::runtime();
    let received = Arc::new(Mutex::new(Received {
        failing: true,
        ..Received::default()
    }));
    let url = start_receiver(Arc::clone(&received), &rt);
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path();
    kefu_e2e::add_agent(data, &[], "mei", "小美", "webhook-test-pw", &[]);
    let mut node = Server::start(data, &[]);

    // Bad input is refused with stable codes; then the endpoint is added for every event.
    let mut c = kefu_e2e::kefu(data);
    c.args([
        "webhook",
        "add",
        "--site",
        "demo",
        "--url",
        "http://crm.example.com/hook",
    ]);
    assert!(
        !kefu_e2e::run(c).status.success(),
        "plain http to another host"
    );
    let added = kefu_json(
        data,
        &["webhook", "add", "--site", "demo", "--url", &url, "--json"],
    );
    let secret = added["secret"].as_str().expect("secret").to_string();
    let endpoint = added["id"].as_str().expect("id").to_string();
    assert!(secret.starts_with("whsec_"), "{added}");
    received
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .secrets
        .push(secret.clone());

    let rated = rt.block_on(async {
        let api = Api::new(&node.base);
        let (status, body) = api
            .post(
                "/v1/admin/webhooks",
                None,
                json!({"site_key": "demo", "url": url}),
            )
            .await;
        assert_eq!(status, 401, "the admin API needs a key: {body}");
        let agent = api.agent("mei", "webhook-test-pw").await;
        let mut console = Chat::connect(&node.ws_url(), &agent).await;
        let (token, conv) = api.visitor("demo").await;
        let mut v = Chat::connect(&node.ws_url(), &token).await;
        v.subscribe(&conv, 0).await;
        // Nothing in the knowledge base answers this: a fallback reply, and a `kb.gap` event.
        v.say(&conv, "w0", "xqzv plorbt wungle frimp?").await;
        let fallback = v.message_by("bot").await;
        assert!(
            fallback["text"].as_str().is_some_and(|t| !t.is_empty()),
            "{fallback}"
        );
        v.say(&conv, "w1", "我要转人工").await;
        v.message_by("system").await;
        let (status, body) = api.agent_action(&agent, &conv, "claim").await;
        assert_eq!(status, 200, "{body}");
        console.subscribe(&conv, 0).await;
        console.say(&conv, "a1", "您好，我是小美。").await;
        let (status, body) = api.agent_action(&agent, &conv, "resolve").await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = api
            .post(
                &format!("/v1/conversations/{conv}/rating"),
                Some(&token),
                json!({"score": 5, "comment": "很好 great"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        conv
    });

    // The receiver refused the first attempts; the node dies with deliveries pending.
    let started = Instant::now();
    while received.lock().unwrap_or_else(|e| e.into_inner()).attempts < 5 {
        assert!(started.elapsed() < Duration::from_secs(20), "no attempts");
        std::thread::sleep(Duration::from_millis(50));
    }
    node.kill9();
    received.lock().unwrap_or_else(|e| e.into_inner()).failing = false;
    let node = Server::start(data, &[]);

    // Every event arrives: the conversation's six kinds, and its messages.
    let wanted = kefu_server::store::EVENT_TYPES;
    let started = Instant::now();
    loop {
        let (ok, seen) = {
            let r = received.lock().unwrap_or_else(|e| e.into_inner());
            let k = kinds(&r);
            let ok = wanted.iter().all(|w| k.contains_key(*w)) && k["message.created"] >= 5;
            (ok, format!("{k:?}"))
        };
        if ok {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not every event arrived: {seen}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Deliveries still in flight settle, then: each event once, all about this conversation.
    std::thread::sleep(Duration::from_millis(1500));
    let log = kefu_json(
        data,
        &[
            "webhook",
            "deliveries",
            &endpoint,
            "--limit",
            "100",
            "--json",
        ],
    );
    {
        let r = received.lock().unwrap_or_else(|e| e.into_inner());
        assert!(r.bad_signatures.is_empty(), "{:?}", r.bad_signatures);
        let k = kinds(&r);
        for once in [
            "conversation.created",
            "conversation.queued",
            "conversation.assigned",
            "conversation.resolved",
            "csat.submitted",
        ] {
            assert_eq!(k[once], 1, "{once}: {k:?}");
        }
        let convs: BTreeSet<&str> = r
            .events
            .values()
            .filter_map(|(_, e)| e["data"]["conversation_id"].as_str())
            .collect();
        assert_eq!(convs, BTreeSet::from([rated.as_str()]));
        let rating = r
            .events
            .values()
            .find(|(k, _)| k == "csat.submitted")
            .map(|(_, e)| e["data"].clone())
            .unwrap_or_default();
        assert_eq!(
            (rating["score"].as_i64(), rating["comment"].as_str()),
            (Some(5), Some("很好 great"))
        );
        let texts: Vec<&str> = r
            .events
            .values()
            .filter(|(k, _)| k == "message.created")
            .filter_map(|(_, e)| e["data"]["text"].as_str())
            .collect();
        assert!(texts.contains(&"我要转人工"), "{texts:?}");
        assert!(texts.contains(&"您好，我是小美。"), "{texts:?}");
        let delivered = log
            .as_array()
            .map(|l| l.iter().filter(|d| d["status"] == "delivered").count())
            .unwrap_or(0);
        assert_eq!(
            delivered,
            r.events.len(),
            "the log lists each event delivered: {log}"
        );

        // The recipe rejects a tampered body and a replay outside the tolerance.
        let (header, body) = r.sample.clone().expect("a delivery");
        let t: i64 = header
            .split(',')
            .find_map(|p| p.strip_prefix("t="))
            .and_then(|t| t.parse().ok())
            .expect("t");
        verify(&header, &body, &secret, t, 300).expect("as delivered");
        let mut tampered = body.clone();
        tampered.extend_from_slice(b" ");
        assert!(verify(&header, &tampered, &secret, t, 300).is_err());
        assert!(
            verify(&header, &body, &secret, t + 301, 300).is_err(),
            "a replay"
        );
        assert!(verify(&header, &body, "whsec_wrong", t, 300).is_err());
    }

    // After a rotation, deliveries carry both signatures: either secret verifies.
    let mut c = kefu_e2e::kefu(data);
    c.args(["webhook", "rotate", &endpoint]);
    let out = kefu_e2e::run(c);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let new_secret = stdout
        .split_whitespace()
        .find(|w| w.starts_with("whsec_"))
        .expect("new secret")
        .to_string();
    rt.block_on(async {
        let api = Api::new(&node.base);
        let (token, conv) = api.visitor("demo").await;
        let mut v = Chat::connect(&node.ws_url(), &token).await;
        v.subscribe(&conv, 0).await;
        v.say(&conv, "w2", "rotation check").await;
    });
    let started = Instant::now();
    loop {
        let sample = {
            let r = received.lock().unwrap_or_else(|e| e.into_inner());
            r.events
                .values()
                .any(|(_, e)| e["data"]["text"] == "rotation check")
                .then(|| r.sample.clone())
                .flatten()
        };
        if let Some((header, body)) = sample {
            if header.matches("v1=").count() == 2 {
                let t: i64 = header
                    .split(',')
                    .find_map(|p| p.strip_prefix("t="))
                    .and_then(|t| t.parse().ok())
                    .expect("t");
                verify(&header, &body, &new_secret, t, 300).expect("new secret");
                verify(&header, &body, &secret, t, 300).expect("old secret, still in its overlap");
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no rotated delivery"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
