//! The admin API with a key from `kefu admin-key`: sites and agents created over REST work for
//! visitors and agents at once, and transcripts come with route traces.

use kefu_e2e::chat::{Api, Chat};
use kefu_e2e::{kefu, run, runtime, Server};
use serde_json::json;

#[test]
fn admin_key_manages_sites_agents_and_reads_transcripts() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut c = kefu(tmp.path());
    c.args(["admin-key", "--name", "ops"]);
    let out = run(c);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(key.starts_with("kadm_") && key.len() > 60, "{key}");
    let server = Server::start(tmp.path(), &[]);
    runtime().block_on(async {
        let api = Api::new(&server.base);
        let (status, body) = api.get("/v1/admin/sites", None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));

        let (status, site) = api
            .post(
                "/v1/admin/sites",
                Some(&key),
                json!({"key": "shop-cn", "name": "商城", "allowed_origins": ["https://shop.example/"]}),
            )
            .await;
        assert_eq!(status, 201, "{site}");
        assert_eq!(site["allowed_origins"][0], "https://shop.example");
        let (status, body) = api
            .post("/v1/admin/sites", Some(&key), json!({"key": "shop-cn"}))
            .await;
        assert_eq!((status, body["error"]["code"].as_str()), (409, Some("already_exists")));
        let (status, body) = api
            .post("/v1/admin/sites", Some(&key), json!({"key": "bad key!"}))
            .await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_input")));
        let (_, sites) = api.get("/v1/admin/sites", Some(&key)).await;
        let keys: Vec<&str> = sites["sites"].as_array().expect("sites").iter().filter_map(|s| s["key"].as_str()).collect();
        assert!(keys.contains(&"shop-cn") && keys.contains(&"demo"), "{keys:?}");

        let (status, body) = api
            .post("/v1/admin/agents", Some(&key), json!({"name": "zhao", "display_name": "小赵", "password": "long enough pw"}))
            .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = api
            .post("/v1/admin/agents", Some(&key), json!({"name": "qian", "password": "short"}))
            .await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_input")));
        let agent = api.agent("zhao", "long enough pw").await;
        let (status, _) = api.get("/v1/agent/conversations", Some(&agent)).await;
        assert_eq!(status, 200);

        // A visitor of the new site chats; the admin reads the transcript with traces.
        let (token, conv) = api.visitor("shop-cn").await;
        let mut v = Chat::connect(&server.ws_url(), &token).await;
        v.subscribe(&conv, 0).await;
        v.say(&conv, "m1", "可以开发票吗？").await;
        v.message_by("bot").await;
        let (status, t) = api.get(&format!("/v1/admin/conversations/{conv}"), Some(&key)).await;
        assert_eq!(status, 200, "{t}");
        assert_eq!(t["conversation"]["site_key"], "shop-cn");
        assert!(t["messages"][1]["route_trace"]["kb"]["hits"].is_array(), "{t}");
        let (_, all) = api.get("/v1/admin/conversations?state=bot", Some(&key)).await;
        assert!(all["conversations"].as_array().is_some_and(|l| l.iter().any(|c| c["id"] == conv.as_str())));
        let (status, _) = api.get(&format!("/v1/admin/conversations/{conv}"), Some(&token)).await;
        assert_eq!(status, 403, "a visitor token is not an admin key");
    });
}

/// An operator signs in, loads the knowledge base from files, tries questions (answered from the
/// FAQ and from the document, with citations and the trace), and after a scripted day of
/// conversations (answered, fallen back, handed off, resolved, rated) reads exactly those counts
/// in analytics, JSON and CSV.
#[test]
fn an_operator_loads_knowledge_tries_questions_and_reads_analytics() {
    let tmp = tempfile::tempdir().expect("tmp");
    for (name, role) in [("boss", "admin"), ("zhao", "agent")] {
        let mut c = kefu(tmp.path());
        c.args([
            "agent",
            "add",
            name,
            "--role",
            role,
            "--password",
            "long enough pw",
        ]);
        let out = run(c);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let server = Server::start(tmp.path(), &["--no-demo", "--resolution-window", "0s"]);
    runtime().block_on(async {
        let api = Api::new(&server.base);
        let (status, login) = api
            .post("/v1/admin/login", None, json!({"name": "boss", "password": "long enough pw"}))
            .await;
        assert_eq!(status, 200, "{login}");
        let boss = login["token"].as_str().expect("token").to_string();
        let (status, _) = api
            .post("/v1/admin/login", None, json!({"name": "zhao", "password": "long enough pw"}))
            .await;
        assert_eq!(status, 403, "agents have no admin login");

        let faq = "id,question,answer,alternates\n\
                   returns,怎么退货？,收到商品后 30 天内可在订单页申请退货。,退货流程|How do I return an item?\n\
                   shipping,How long does shipping take?,Orders ship within 48 hours and arrive in 3-5 days.,多久发货|配送要多久\n";
        let job = api.upload(&boss, "shop", "faq.csv", faq.as_bytes()).await;
        assert_eq!(job["status"], "done", "{job}");
        let policy = "# 会员积分 Loyalty points\n\n\
                      积分在获得之日起 12 个月后过期。Points expire 12 months after the day they are earned.\n\n\
                      # 隐私 Privacy\n\n\
                      我们不会出售您的个人信息。We never sell your personal data.\n";
        let job = api.upload(&boss, "shop", "policy.md", policy.as_bytes()).await;
        assert_eq!(job["status"], "done", "{job}");

        let (status, r) = api
            .post("/v1/admin/kbs/shop/ask", Some(&boss), json!({"question": "积分什么时候过期？"}))
            .await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(r["band"], "answer", "{r}");
        assert!(r["answer"].as_str().is_some_and(|a| a.contains("12")), "{r}");
        assert!(r["citations"][0]["source"].as_str().is_some_and(|s| s.contains("policy.md")), "{r}");
        assert!(r["trace"]["kb"]["hits"].is_array(), "{r}");
        let (_, r) = api
            .post("/v1/admin/kbs/shop/ask", Some(&boss), json!({"question": "How do I return an item?"}))
            .await;
        assert_eq!((r["band"].as_str(), r["mode"].as_str()), (Some("answer"), Some("faq")), "{r}");
        assert!(r["answer"].as_str().is_some_and(|a| a.contains("30")), "{r}");

        // The bot answers visitors from what was uploaded (the chat uses `default`: load it too).
        let job = api.upload(&boss, "default", "faq.csv", faq.as_bytes()).await;
        assert_eq!(job["status"], "done", "{job}");
        let (status, _) = api
            .post("/v1/admin/sites", Some(&boss), json!({"key": "shop-web"}))
            .await;
        assert_eq!(status, 201);
        // Visitor 1: answered.
        let (t1, c1) = api.visitor("shop-web").await;
        let mut v1 = Chat::connect(&server.ws_url(), &t1).await;
        v1.subscribe(&c1, 0).await;
        v1.say(&c1, "m1", "怎么退货？").await;
        let reply = v1.message_by("bot").await;
        assert!(reply["text"].as_str().is_some_and(|t| t.contains("30")), "{reply}");
        // Visitor 2: not answered, asks for a human; an agent answers and resolves; rated 4.
        let (t2, c2) = api.visitor("shop-web").await;
        let mut v2 = Chat::connect(&server.ws_url(), &t2).await;
        v2.subscribe(&c2, 0).await;
        v2.say(&c2, "m1", "Do you sell laptops?").await;
        v2.message_by("bot").await;
        v2.send(json!({"type": "request_human", "conversation_id": c2})).await;
        v2.message_by("system").await;
        let zhao = api.agent("zhao", "long enough pw").await;
        let (status, body) = api.post(&format!("/v1/agent/conversations/{c2}/claim"), Some(&zhao), json!({})).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = api
            .post(&format!("/v1/agent/conversations/{c2}/messages"), Some(&zhao), json!({"text": "We only sell accessories.", "client_msg_id": "z1"}))
            .await;
        assert!(status < 300, "{body}");
        let (status, body) = api.post(&format!("/v1/agent/conversations/{c2}/resolve"), Some(&zhao), json!({})).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = api
            .post(&format!("/v1/conversations/{c2}/rating"), Some(&t2), json!({"score": 4, "comment": "有帮助"}))
            .await;
        assert_eq!(status, 200, "{body}");

        let today = kefu_server::analytics::date_of(kefu_server::store::now_ms());
        let (status, a) = api
            .get(&format!("/v1/admin/analytics?from={today}&to={today}&site=shop-web"), Some(&boss))
            .await;
        assert_eq!(status, 200, "{a}");
        assert_eq!((a["conversations"].as_u64(), a["visitor_messages"].as_u64()), (Some(2), Some(2)), "{a}");
        assert_eq!(a["bot_replies"]["answered"], 1, "{a}");
        assert_eq!(
            a["bot_replies"]["suggested"].as_u64().unwrap_or(0) + a["bot_replies"]["fallback"].as_u64().unwrap_or(0),
            1,
            "{a}"
        );
        assert_eq!(a["handoffs"]["by_reason"]["requested"], 1, "{a}");
        assert_eq!(a["resolved_without_agent"], 1, "{a}");
        assert_eq!((a["csat"]["count"].as_u64(), a["csat"]["mean"].as_f64()), (Some(1), Some(4.0)), "{a}");
        assert_eq!(a["agents"]["first_response_s"]["count"], 1, "{a}");
        assert_eq!(a["top_unanswered"][0]["question"], "Do you sell laptops?", "{a}");
        let csv = reqwest::Client::new()
            .get(server.url(&format!("/v1/admin/analytics?from={today}&to={today}&site=shop-web&format=csv")))
            .bearer_auth(&boss)
            .send()
            .await
            .expect("csv")
            .text()
            .await
            .expect("text");
        assert!(csv.contains(&format!("{today},2,2,1,")), "{csv}");

        // Gaps are clustered by meaning within a language: other wordings of a question join
        // its gap as examples, the most frequent wording leading; an unrelated question and
        // another language stay apart.
        for q in [
            "Are laptops sold in your shop?",
            "你们卖笔记本电脑吗？",
            "有没有笔记本电脑卖？",
            "Can I pay with bitcoin?",
            "Do you sell laptops?",
        ] {
            let (t, c) = api.visitor("shop-web").await;
            let mut v = Chat::connect(&server.ws_url(), &t).await;
            v.subscribe(&c, 0).await;
            v.say(&c, "g1", q).await;
            v.message_by("bot").await;
        }
        let (_, a) = api
            .get(&format!("/v1/admin/analytics?from={today}&to={today}&site=shop-web"), Some(&boss))
            .await;
        let gaps = a["top_unanswered"].as_array().cloned().unwrap_or_default();
        let summary: Vec<(String, u64, String)> = gaps
            .iter()
            .map(|g| {
                (
                    g["question"].as_str().unwrap_or("").to_string(),
                    g["count"].as_u64().unwrap_or(0),
                    g["examples"].to_string(),
                )
            })
            .collect();
        assert_eq!(summary.len(), 3, "{summary:?}");
        assert_eq!((summary[0].0.as_str(), summary[0].1), ("Do you sell laptops?", 3), "{summary:?}");
        assert!(summary[0].2.contains("Are laptops sold"), "{summary:?}");
        assert_eq!(summary[1].1, 2, "the Chinese wordings together: {summary:?}");
        assert!(summary[1].0.contains("笔记本") && summary[1].2.contains("笔记本"), "{summary:?}");
        assert_eq!((summary[2].0.as_str(), summary[2].1), ("Can I pay with bitcoin?", 1), "{summary:?}");
    });
}

/// The OpenAPI document describes the running server: schemathesis (PyPI, installed by
/// scripts/test into tests/.venv) generates requests for every operation from it, with a fixed,
/// bounded number of examples (deterministic generation), signed in as an operator (whose token
/// reaches the admin and agent routes); no response may be a server error, and every response
/// must match its documented schema. `logout` and `revoke` are left out: they would end the
/// run's own session.
#[test]
fn the_openapi_document_holds_under_schemathesis() {
    let st = kefu_e2e::workspace_root().join("tests/.venv/bin/schemathesis");
    assert!(
        st.is_file(),
        "schemathesis is not installed: scripts/test installs it into tests/.venv"
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let mut c = kefu(tmp.path());
    c.args([
        "agent",
        "add",
        "boss",
        "--role",
        "admin",
        "--password",
        "long enough pw",
    ]);
    assert!(run(c).status.success());
    let server = Server::start(tmp.path(), &["--sessions-per-minute", "1000000"]);
    let token = runtime().block_on(async {
        let api = Api::new(&server.base);
        let (status, doc) = api.get("/v1/openapi.json", None).await;
        assert_eq!(status, 200);
        assert!(
            doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
            "{doc}"
        );
        let (status, login) = api
            .post(
                "/v1/admin/login",
                None,
                json!({"name": "boss", "password": "long enough pw"}),
            )
            .await;
        assert_eq!(status, 200, "{login}");
        login["token"].as_str().expect("token").to_string()
    });
    // Run from the temp dir: schemathesis keeps a cache in its working directory.
    let out = std::process::Command::new(st)
        .current_dir(tmp.path())
        .args([
            "run",
            &server.url("/v1/openapi.json"),
            "--header",
            &format!("Authorization: Bearer {token}"),
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-examples",
            "20",
            "--generation-deterministic",
            "--exclude-path",
            "/v1/agent/logout",
            "--exclude-path",
            "/v1/admin/agents/{name}/revoke",
        ])
        .output()
        .expect("run schemathesis");
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
