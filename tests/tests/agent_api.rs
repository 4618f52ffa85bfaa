//! REST surfaces added for the client SDKs and the widget: an agent's reply over REST (owner
//! only, validated like a `send` frame, idempotent by `client_msg_id`), CORS on the visitor API and
//! the widget files only, and the widget served gzip-compressed.

use kefu_e2e::chat::{Api, Chat};
use kefu_e2e::{add_agent, runtime, Server};
use serde_json::json;

#[test]
fn agent_rest_reply_cors_and_widget_files() {
    let tmp = tempfile::tempdir().expect("tmp");
    add_agent(tmp.path(), &[], "wang", "王小二", "agent-api-pw-1", &[]);
    add_agent(tmp.path(), &[], "li", "李四", "agent-api-pw-2", &[]);
    let server = Server::start(tmp.path(), &[]);
    runtime().block_on(async {
        let api = Api::new(&server.base);
        let (visitor, conv) = api.visitor("demo").await;
        let mut chat = Chat::connect(&server.ws_url(), &visitor).await;
        chat.subscribe(&conv, 0).await;
        chat.send(json!({"type": "request_human", "conversation_id": conv}))
            .await;
        chat.until("queued", |f| f["type"] == "state" && f["state"] == "queued")
            .await;
        let wang = api.agent("wang", "agent-api-pw-1").await;
        let li = api.agent("li", "agent-api-pw-2").await;
        let path = format!("/v1/agent/conversations/{conv}/messages");

        let code = |b: &serde_json::Value| b["error"]["code"].as_str().map(str::to_string);
        let (status, body) = api.post(&path, None, json!({"text": "hi"})).await;
        assert_eq!(
            (status, code(&body).as_deref()),
            (401, Some("unauthorized"))
        );
        let (status, body) = api.post(&path, Some(&wang), json!({"text": "hi"})).await;
        assert_eq!(
            (status, code(&body).as_deref()),
            (409, Some("not_owner")),
            "not claimed yet"
        );
        let (status, _) = api
            .post(
                &format!("/v1/agent/conversations/{conv}/claim"),
                Some(&wang),
                json!({}),
            )
            .await;
        assert_eq!(status, 200);
        let (status, body) = api.post(&path, Some(&li), json!({"text": "hi"})).await;
        assert_eq!((status, code(&body).as_deref()), (409, Some("not_owner")));
        let (status, body) = api.post(&path, Some(&wang), json!({"text": "  "})).await;
        assert_eq!(
            (status, code(&body).as_deref()),
            (400, Some("invalid_input"))
        );
        let long = "长".repeat(4001);
        let (status, body) = api.post(&path, Some(&wang), json!({"text": long})).await;
        assert_eq!((status, code(&body).as_deref()), (413, Some("too_large")));
        let (status, body) = api
            .post(&path, Some(&wang), json!({"text": "hi", "html": "<b>"}))
            .await;
        assert_eq!(
            (status, code(&body).as_deref()),
            (400, Some("invalid_request"))
        );
        let (status, body) = api
            .post(
                &path,
                Some(&wang),
                json!({"text": "hi", "client_msg_id": ""}),
            )
            .await;
        assert_eq!(
            (status, code(&body).as_deref()),
            (400, Some("invalid_input"))
        );

        // A reply, and the same reply retried: one message.
        let reply = json!({"text": "您好，我是王小二。", "client_msg_id": "rest-1"});
        let (status, first) = api.post(&path, Some(&wang), reply.clone()).await;
        assert_eq!(status, 201, "{first}");
        let (status, again) = api.post(&path, Some(&wang), reply).await;
        assert_eq!(
            (status, &again["seq"]),
            (201, &first["seq"]),
            "a retry is not sent twice"
        );
        let m = chat.message_by("agent").await;
        assert_eq!(m["text"], "您好，我是王小二。");
        assert_eq!(m["author"]["name"], "王小二");
        let (_, stored) = api
            .get(
                &format!("/v1/conversations/{conv}/messages"),
                Some(&visitor),
            )
            .await;
        let n = stored["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter(|m| m["text"] == "您好，我是王小二。")
            .count();
        assert_eq!(n, 1);

        // CORS: the visitor API and the widget answer any origin's preflight; the agent API does not.
        let preflight = |path: &str| {
            api.http
                .request(reqwest::Method::OPTIONS, format!("{}{path}", server.base))
                .header("Origin", "https://shop.example")
                .header("Access-Control-Request-Method", "POST")
                .header("Access-Control-Request-Headers", "content-type")
                .send()
        };
        let r = preflight("/v1/visitor/sessions").await.expect("preflight");
        assert_eq!(
            r.headers()
                .get("access-control-allow-origin")
                .map(|v| v.as_bytes()),
            Some(&b"*"[..])
        );
        let r = preflight("/v1/agent/login").await.expect("preflight");
        assert!(r.headers().get("access-control-allow-origin").is_none());

        // The widget files, compressed for browsers that ask.
        for (file, kind) in [
            ("/widget.js", "text/javascript"),
            ("/widget/kefu_widget.js", "text/javascript"),
            ("/widget/kefu_widget_bg.wasm", "application/wasm"),
        ] {
            let r = api
                .http
                .get(format!("{}{file}", server.base))
                .header("Accept-Encoding", "gzip")
                .header("Origin", "https://shop.example")
                .send()
                .await
                .expect("widget file");
            assert_eq!(
                r.status(),
                200,
                "{file}: build the widget first (scripts/build-widget)"
            );
            let h = r.headers();
            assert!(
                h["content-type"].to_str().unwrap_or("").starts_with(kind),
                "{file}"
            );
            assert_eq!(
                h.get("content-encoding").map(|v| v.as_bytes()),
                Some(&b"gzip"[..]),
                "{file}"
            );
            assert_eq!(
                h.get("access-control-allow-origin").map(|v| v.as_bytes()),
                Some(&b"*"[..]),
                "{file}"
            );
        }
    });
}

/// `kefu loadtest --mode relay -- …` against `server`; its JSON report.
fn loadtest(server: &Server, data_dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let mut c = kefu_e2e::kefu(data_dir);
    c.args(["loadtest", "--url", &server.base]).args(args);
    let out = kefu_e2e::run(c);
    assert!(
        out.status.success(),
        "kefu loadtest: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("loadtest prints JSON")
}

/// The load test's relay mode really relays: agents it creates claim every conversation, every
/// visitor message reaches an agent's socket and is timed, and it leaves no conversation owned
/// (a second run signs in to the same accounts). Bot mode still gets the bot's answers.
#[test]
fn loadtest_relays_visitor_messages_to_agents_and_cleans_up() {
    let tmp = tempfile::tempdir().expect("tmp");
    let server = Server::start(tmp.path(), &["--sessions-per-minute", "100000"]);
    let key = kefu_e2e::admin_key(tmp.path());
    let refused = {
        let mut c = kefu_e2e::kefu(tmp.path());
        c.args(["loadtest", "--url", &server.base, "--mode", "relay"])
            .env_remove("KEFU_ADMIN_KEY");
        kefu_e2e::run(c)
    };
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--admin-key"));

    // A second run with the same key reuses its accounts; another key makes its own.
    let other_key = {
        let mut c = kefu_e2e::kefu(tmp.path());
        c.args(["admin-key", "--name", "second"]);
        String::from_utf8_lossy(&kefu_e2e::run(c).stdout)
            .trim()
            .to_string()
    };
    for (admin_key, connections, agents) in
        [(&key, "130", 2), (&key, "20", 1), (&other_key, "10", 1)]
    {
        let r = loadtest(
            &server,
            tmp.path(),
            &[
                "--mode",
                "relay",
                "--admin-key",
                admin_key,
                "--connections",
                connections,
                "--rate",
                "60",
                "--duration",
                "2s",
            ],
        );
        let n: u64 = connections.parse().expect("number");
        assert_eq!(r["mode"], "relay", "{r}");
        assert_eq!(r["agents"], agents, "{r}");
        assert_eq!(r["conversations_claimed"], n, "{r}");
        assert_eq!(r["conversations_subscribed"], n, "{r}");
        let sent = r["messages_sent"].as_u64().expect("sent");
        assert!(sent >= 60.min(n), "{r}");
        assert_eq!(r["messages_relayed"], sent, "{r}");
        assert_eq!(r["messages_acked"], sent, "{r}");
        assert!(r["relay_latency_ms"]["p99"].as_f64().is_some(), "{r}");
        for e in [
            "session",
            "connect",
            "error_frames",
            "closed_early",
            "claim",
            "agent_error_frames",
            "agent_closed",
            "resolve",
            "unrelayed",
        ] {
            assert_eq!(r["errors"][e], 0, "{e}: {r}");
        }
        let agents: serde_json::Value = reqwest::blocking::Client::new()
            .get(server.url("/v1/admin/agents"))
            .bearer_auth(&key)
            .send()
            .expect("agents")
            .json()
            .expect("json");
        for a in agents["agents"].as_array().expect("list") {
            if a["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("loadtest-"))
            {
                assert_eq!(a["active"], 0, "left owning conversations: {a}");
            }
        }
    }

    let r = loadtest(
        &server,
        tmp.path(),
        &["--connections", "4", "--rate", "4", "--duration", "2s"],
    );
    assert_eq!(r["mode"], "bot", "{r}");
    assert!(r["bot_replies"].as_u64().unwrap_or(0) >= 4, "{r}");
    assert_eq!(r["errors"]["unanswered"], 0, "{r}");
}
