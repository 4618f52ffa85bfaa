//! The operator's console, the agent console and the demo chat page in headless Chromium (Debian `chromium`, npm
//! `playwright-core` in tests/browser) against a real `kefu serve`: answer, handoff, claim,
//! messages both ways with typing, hand back, and XSS payloads rendered as inert text.

use std::process::Command;

use kefu_e2e::{workspace_root, Server};

#[test]
fn console_and_demo_page_in_headless_chromium() {
    let dir = workspace_root().join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci` in tests/browser (scripts/test does)"
    );
    let tmp = tempfile::tempdir().expect("tmp");
    kefu_e2e::add_agent(tmp.path(), &[], "wang", "王小二", "browser-test-pw", &[]);
    let server = Server::start(tmp.path(), &[]);
    let mut node = Command::new("node");
    node.current_dir(&dir)
        .arg("console.mjs")
        .arg(&server.base)
        .arg("wang")
        .arg("browser-test-pw");
    if let Some(shots) = std::env::var_os("KEFU_SCREENSHOTS") {
        node.arg(shots);
    }
    let out = node.output().expect("run node (is Node.js installed?)");
    assert!(
        out.status.success(),
        "browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The operator's console (`/admin`) in headless Chromium after a scripted day of conversations:
/// analytics and CSV counts, an unanswered question turned into an FAQ, a document uploaded and
/// answered from, past chats mined into an FAQ that visitors then get, an intent model trained
/// from an upload and switched, the rules file edited (checked inline, followed at once), markup
/// stored as inert text, and agents kept out.
#[test]
fn admin_console_in_headless_chromium() {
    use kefu_e2e::chat::{Api, Chat};
    use serde_json::json;

    let dir = workspace_root().join("tests/browser");
    let tmp = tempfile::tempdir().expect("tmp");
    kefu_e2e::add_agent(
        tmp.path(),
        &[],
        "boss",
        "老板",
        "operator-test-pw",
        &["--role", "admin"],
    );
    // A display name with markup (it must show as text in the console).
    kefu_e2e::add_agent(
        tmp.path(),
        &[],
        "li",
        "<img src=x onerror=\"window.__xss='name'\">小李",
        "agent-test-pw",
        &[],
    );
    let mut site = kefu_e2e::kefu(tmp.path());
    site.args(["site", "add", "shop-web"]);
    assert!(kefu_e2e::run(site).status.success());
    // One intent model version trained on the server (active: it is the first); the console
    // trains the second from an upload.
    let intents = tmp.path().join("intents.jsonl");
    let lines: Vec<String> = [
        ("where is my order", "order_status"),
        ("has my parcel shipped yet", "order_status"),
        ("我的订单到哪了", "order_status"),
        ("快递到哪里了", "order_status"),
        ("I want a refund", "refund"),
        ("how do I get my money back", "refund"),
        ("我要退款", "refund"),
        ("怎么申请退款", "refund"),
    ]
    .iter()
    .map(|(text, intent)| json!({"text": text, "intent": intent}).to_string())
    .collect();
    std::fs::write(&intents, lines.join("\n")).expect("write intents");
    let mut train = kefu_e2e::kefu(tmp.path());
    train.args(["intent", "train", "--data"]).arg(&intents);
    let out = kefu_e2e::run(train);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = Server::start(tmp.path(), &["--no-demo", "--resolution-window", "0s"]);
    kefu_e2e::runtime().block_on(async {
        let api = Api::new(&server.base);
        let (_, login) = api
            .post("/v1/admin/login", None, json!({"name": "boss", "password": "operator-test-pw"}))
            .await;
        let boss = login["token"].as_str().expect("token").to_string();
        let faq = "id,question,answer,alternates\n\
                   returns,怎么退货？,收到商品后 30 天内可在订单页申请退货。,How do I return an item?\n";
        let job = api.upload(&boss, "default", "faq.csv", faq.as_bytes()).await;
        assert_eq!(job["status"], "done", "{job}");
        // Answered.
        let (t1, c1) = api.visitor("shop-web").await;
        let mut v1 = Chat::connect(&server.ws_url(), &t1).await;
        v1.subscribe(&c1, 0).await;
        v1.say(&c1, "m1", "怎么退货？").await;
        v1.message_by("bot").await;
        // Not answered; handed to an agent who resolves it; rated 5.
        let (t2, c2) = api.visitor("shop-web").await;
        let mut v2 = Chat::connect(&server.ws_url(), &t2).await;
        v2.subscribe(&c2, 0).await;
        v2.say(&c2, "m1", "Do you sell laptops?").await;
        v2.message_by("bot").await;
        v2.send(json!({"type": "request_human", "conversation_id": c2})).await;
        v2.message_by("system").await;
        let li = api.agent("li", "agent-test-pw").await;
        for step in ["claim", "resolve"] {
            let (status, body) = api
                .post(&format!("/v1/agent/conversations/{c2}/{step}"), Some(&li), json!({}))
                .await;
            assert_eq!(status, 200, "{step}: {body}");
        }
        let (status, body) = api
            .post(&format!("/v1/conversations/{c2}/rating"), Some(&t2), json!({"score": 5}))
            .await;
        assert_eq!(status, 200, "{body}");
    });
    let expected = json!({
        "conversations": 2, "visitor_messages": 2, "answered": 1, "handoffs": 1, "csat": "5.00",
        "gap": "Do you sell laptops?",
    });
    let mut node = Command::new("node");
    node.current_dir(&dir).arg("admin.mjs").args([
        server.base.as_str(),
        "boss",
        "operator-test-pw",
        "li",
        "agent-test-pw",
        &expected.to_string(),
    ]);
    if let Some(shots) = std::env::var_os("KEFU_SCREENSHOTS") {
        node.arg(shots);
    }
    let out = node.output().expect("run node (is Node.js installed?)");
    assert!(
        out.status.success(),
        "admin console test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The FAQ approved from mined chats answers visitors.
    kefu_e2e::runtime().block_on(async {
        let api = Api::new(&server.base);
        let (token, conv) = api.visitor("shop-web").await;
        let mut v = Chat::connect(&server.ws_url(), &token).await;
        v.subscribe(&conv, 0).await;
        v.say(&conv, "m1", "Is there an app for my phone?").await;
        let reply = v.message_by("bot").await;
        assert!(
            reply["text"]
                .as_str()
                .is_some_and(|t| t.contains("Google Play")),
            "{reply}"
        );
    });
}
