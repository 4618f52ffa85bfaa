//! Scale-out end to end: two `kefu serve` processes share one PostgreSQL schema and a Redis
//! pub/sub channel. A visitor on node A is handed to an agent whose console is on node B, and
//! messages, state changes, typing and queue updates cross between them live.

use std::time::{Duration, Instant};

use kefu_e2e::chat::{Api, Chat};
use kefu_e2e::{PgSchema, Server};
use serde_json::json;

const PASSWORD: &str = "cluster-test-pw";

/// A fresh PostgreSQL schema and the `serve` flags that share it and a Redis channel named after
/// `test` (so tests running at once never see each other's events).
fn shared_engines(test: &str) -> (PgSchema, Vec<String>) {
    let redis =
        std::env::var("KEFU_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let schema = PgSchema::create();
    let args = vec![
        "--database-url".to_string(),
        schema.url.clone(),
        "--redis-url".to_string(),
        redis,
        "--cluster-channel".to_string(),
        format!("kefu:test:{test}:{}", std::process::id()),
    ];
    (schema, args)
}

#[test]
fn two_nodes_share_conversations_over_postgres_and_redis() {
    let (schema, args) = shared_engines("conversations");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let db = schema.url.clone();
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    kefu_e2e::add_agent(
        dir_a.path(),
        &["--database-url", &db],
        "li",
        "小李",
        PASSWORD,
        &[],
    );
    let a = Server::start(dir_a.path(), &args);
    let b = Server::start(dir_b.path(), &args);

    let rt = kefu_e2e::runtime();
    rt.block_on(async {
        let api_a = Api::new(&a.base);
        let api_b = Api::new(&b.base);
        let agent = api_b.agent("li", PASSWORD).await;
        let mut console = Chat::connect(&b.ws_url(), &agent).await;

        // Node A learns that li is online on node B.
        let started = Instant::now();
        loop {
            let (_, agents) = api_a.get("/v1/agent/agents", Some(&agent)).await;
            let online = agents["agents"]
                .as_array()
                .is_some_and(|l| l.iter().any(|x| x["name"] == "li" && x["online"] == true));
            if online {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "presence never reached node A: {agents}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let (token, conv) = api_a.visitor("demo").await;
        let mut v = Chat::connect(&a.ws_url(), &token).await;
        v.subscribe(&conv, 0).await;
        v.say(&conv, "c1", "我要转人工").await;
        let sys = v.message_by("system").await;
        assert!(
            sys["text"].as_str().unwrap_or("").contains("正在为您转接"),
            "an agent is online on B: {sys}"
        );
        let queued = console
            .until("queue update from A", |f| {
                f["type"] == "conversation"
                    && f["conversation"]["id"] == conv.as_str()
                    && f["conversation"]["state"] == "queued"
            })
            .await;
        assert_eq!(queued["conversation"]["offline"], false);

        let (status, body) = api_b.agent_action(&agent, &conv, "claim").await;
        assert_eq!(status, 200, "{body}");
        let joined = v.message_by("system").await;
        assert!(
            joined["text"].as_str().unwrap_or("").contains("小李"),
            "{joined}"
        );
        let st = v
            .until("state from B", |f| {
                f["type"] == "state" && f["state"] == "agent"
            })
            .await;
        assert_eq!(st["agent"], "li");

        console.subscribe(&conv, 0).await;
        let seq = console.say(&conv, "b1", "您好，我在另一台服务器上。").await;
        let m = v.message_by("agent").await;
        assert_eq!(
            (m["seq"].as_u64(), m["text"].as_str()),
            (Some(seq), Some("您好，我在另一台服务器上。"))
        );

        v.send(json!({"type": "typing", "conversation_id": conv, "typing": true}))
            .await;
        let typing = console
            .until("typing from A", |f| f["type"] == "typing")
            .await;
        assert_eq!(typing["author"]["kind"], "visitor");
        let vseq = v.say(&conv, "a2", "收到，谢谢").await;
        let from_visitor = console.message_by("visitor").await;
        assert_eq!(from_visitor["seq"].as_u64(), Some(vseq));
        assert_eq!(vseq, seq + 1, "one sequence across nodes");

        let (status, _) = api_b.agent_action(&agent, &conv, "handback").await;
        assert_eq!(status, 200);
        v.until("back to the bot", |f| {
            f["type"] == "state" && f["state"] == "bot"
        })
        .await;
        v.say(&conv, "a3", "支持哪些付款方式？").await;
        let bot = v.message_by("bot").await;
        assert!(
            !bot["sources"].as_array().map(Vec::is_empty).unwrap_or(true),
            "{bot}"
        );
        let seen_on_b = console.message_by("bot").await;
        assert_eq!(seen_on_b["seq"], bot["seq"]);

        let metrics = reqwest::get(a.url("/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        assert!(
            metrics.contains("kefu_cluster_events_published_total"),
            "{metrics}"
        );
    });
}

/// Three nodes keep their knowledge bases and training data in the one PostgreSQL database:
/// started together, they all load the demo without colliding; a file uploaded on node A answers on
/// B and C within a few seconds; an FAQ mined from chat history and approved, and an intent
/// model trained and activated, from node A's command line take effect on B and C.
#[test]
fn three_nodes_share_knowledge_and_training_over_postgres() {
    let (schema, args) = shared_engines("kb");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let db = schema.url.clone();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tmp")).collect();
    // Started at once, every node finds the demo missing and imports it: the imports queue on
    // the generation row instead of colliding on the same keys (and every node starts).
    let nodes: Vec<Server> = Server::start_together(&dirs, &args);
    let global = ["--database-url", db.as_str()];
    let mut c = kefu_e2e::kefu(dirs[0].path());
    c.args(global).args(["admin-key", "--name", "cluster"]);
    let out = kefu_e2e::run(c);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8_lossy(&out.stdout).trim().to_string();

    let rt = kefu_e2e::runtime();
    rt.block_on(async {
        let apis: Vec<Api> = nodes.iter().map(|n| Api::new(&n.base)).collect();
        let (_, kbs) = apis[2].get("/v1/admin/kbs", Some(&key)).await;
        let demo = kbs["kbs"]
            .as_array()
            .and_then(|l| l.iter().find(|k| k["name"] == "default"))
            .cloned()
            .unwrap_or_else(|| panic!("no demo knowledge base: {kbs}"));
        for api in &apis {
            let (r, _) = api.until_answered(&key,
                "支持哪些付款方式？",
                "",
                Duration::from_secs(5),
            )
            .await;
            assert!(!r["citations"].as_array().map(Vec::is_empty).unwrap_or(true), "{r}");
        }

        // An import on node A answers on B and C.
        let faq = "id,question,answer,alternates\n\
                   bike,Do you sell bicycles?,Yes: the Kefu Cruiser city bicycle costs $499 and ships in 3 days.,你们卖自行车吗？\n";
        let job = apis[0].upload(&key, "default", "bikes.csv", faq.as_bytes()).await;
        assert_eq!(job["status"], "done", "{job}");
        for api in &apis[1..] {
            let (r, took) = api.until_answered(&key,
                "Do you sell bicycles?",
                "$499",
                Duration::from_secs(5),
            )
            .await;
            assert_eq!(r["citations"][0]["source"], "bikes.csv", "{r}");
            eprintln!("an upload on node A answered on another node after {took:?}");
        }
        let (_, after) = apis[1].get("/v1/admin/kbs", Some(&key)).await;
        let default = after["kbs"]
            .as_array()
            .and_then(|l| l.iter().find(|k| k["name"] == "default"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            default["faqs"].as_i64(),
            demo["faqs"].as_i64().map(|n| n + 1),
            "the demo was loaded once, plus the upload: {default}"
        );
    });

    // Training from node A's command line: history imported, mined, one proposal approved.
    let fixtures = kefu_e2e::workspace_root().join("tests/fixtures/history");
    let train = |extra: &[&str]| -> String {
        let mut c = kefu_e2e::kefu(dirs[0].path());
        c.args(global).arg("train").args(extra);
        let out = kefu_e2e::run(c);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "kefu train {extra:?}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    train(&[
        "import",
        fixtures.join("chat-history.jsonl").to_str().expect("path"),
    ]);
    train(&["mine"]);
    let pending: serde_json::Value =
        serde_json::from_str(train(&["review", "list", "--json", "--status", "pending"]).trim())
            .expect("json");
    let student = pending
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|p| format!("{} {}", p["question"], p["alternates"]).contains("student"))
        })
        .unwrap_or_else(|| panic!("no student-discount proposal: {pending}"));
    let id = student["id"].as_i64().expect("id").to_string();
    train(&["review", "approve", &id]);
    rt.block_on(async {
        for node in &nodes[1..] {
            let api = Api::new(&node.base);
            let (_, proposals) = api
                .get("/v1/admin/training/proposals?status=approved", Some(&key))
                .await;
            assert_eq!(
                proposals["proposals"].as_array().map(Vec::len),
                Some(1),
                "the review queue is shared: {proposals}"
            );
            let (r, _) = api
                .until_answered(&key, "学生有折扣吗？", "", Duration::from_secs(5))
                .await;
            assert_eq!(r["citations"][0]["source"], "reviewed-faq", "{r}");
        }
    });

    // An intent model trained (and so activated) from node A's command line classifies on B and C.
    let mut c = kefu_e2e::kefu(dirs[0].path());
    c.args(global)
        .args(["intent", "train", "--json", "--data"])
        .arg(kefu_e2e::workspace_root().join("tests/fixtures/intents/shop-intents.jsonl"));
    let out = kefu_e2e::run(c);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    rt.block_on(async {
        for node in &nodes[1..] {
            let api = Api::new(&node.base);
            let (r, took) = api.ask_until(&key,
                "我的快递怎么还没到",
                Duration::from_secs(15),
                |r| r["trace"]["intent"]["model"] == "v1",
            )
            .await;
            assert_eq!(r["trace"]["intent"]["name"], "track_order", "{r}");
            eprintln!(
                "an intent model activated on node A classified on another node after {took:?}"
            );
        }

        // Rules and LLM settings saved in node A's console apply on B and C.
        let apis: Vec<Api> = nodes.iter().map(|n| Api::new(&n.base)).collect();
        let rules = "[[rules]]\nid = \"bulk-order\"\npriority = 60\nkeywords = [\"批发\", \"wholesale\"]\nactions = [{ type = \"handoff\" }]\n";
        let (status, saved) = apis[0]
            .put("/v1/admin/rules", Some(&key), json!({ "text": rules }))
            .await;
        assert_eq!(status, 200, "{saved}");
        let llm = json!({"url": "http://127.0.0.1:9/v1", "model": "qwen2.5:7b-instruct", "api_key": "sk-cluster"});
        let (status, saved) = apis[0].put("/v1/admin/llm", Some(&key), llm).await;
        assert_eq!(status, 200, "{saved}");
        for api in &apis[1..] {
            let (r, took) = api
                .ask_until(&key, "我想批发一百件", Duration::from_secs(10), |r| {
                    r["trace"]["rule"]["rule_id"] == "bulk-order"
                })
                .await;
            eprintln!("rules saved on node A applied on another node after {took:?}: {r}");
            let (_, view) = api.get("/v1/admin/rules", Some(&key)).await;
            assert_eq!(view["text"], rules, "{view}");
            let started = Instant::now();
            loop {
                let (_, llm) = api.get("/v1/admin/llm", Some(&key)).await;
                if llm["source"] == "console" {
                    assert_eq!(llm["model"], "qwen2.5:7b-instruct", "{llm}");
                    assert_eq!(llm["api_key_set"], true, "the key travels too: {llm}");
                    break;
                }
                assert!(started.elapsed() < Duration::from_secs(10), "{llm}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let (status, _) = apis[1].delete("/v1/admin/llm", Some(&key)).await;
        assert_eq!(status, 200);
        let started = Instant::now();
        loop {
            let (_, llm) = apis[2].get("/v1/admin/llm", Some(&key)).await;
            if llm["source"] == "none" {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "{llm}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

/// Collects a chat client's events.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<kefu_sdk_core::Event>>);

impl kefu_sdk_core::Listener for Recorder {
    fn on_event(&self, event: kefu_sdk_core::Event) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(event);
    }
}

impl Recorder {
    /// The visitor token and conversation id, once the session started.
    fn session(&self) -> Option<(String, String)> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find_map(|e| match e {
                kefu_sdk_core::Event::SessionStarted {
                    token,
                    conversation_id,
                    ..
                } => Some((token.clone(), conversation_id.clone())),
                _ => None,
            })
    }
}

/// Under a steady visitor load on three nodes, node A is killed (`kill -9`): the client core,
/// given every node's URL, reconnects to another, and every acknowledged message is stored exactly
/// once, with the seq it was acknowledged with, in order.
#[test]
fn visitors_fail_over_to_another_node_when_one_is_killed() {
    const VISITORS: usize = 6;
    const PER_VISITOR: usize = 16;
    let (_schema, args) = shared_engines("failover");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tmp")).collect();
    let mut nodes: Vec<Server> = dirs
        .iter()
        .map(|d| Server::start(d.path(), &args))
        .collect();
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    let rt = kefu_e2e::runtime();
    let visitors = rt.block_on(async {
        let mut visitors = Vec::new();
        for i in 0..VISITORS {
            // Each starts on node i % 3 and knows all three.
            let urls = (0..3)
                .map(|k| bases[(i + k) % 3].as_str())
                .collect::<Vec<_>>()
                .join(",");
            let recorder = std::sync::Arc::new(Recorder::default());
            let client = kefu_sdk_core::Client::start(
                kefu_sdk_core::ClientConfig {
                    server_url: urls,
                    site_key: "demo".into(),
                    user_id: None,
                    user_hash: None,
                    name: None,
                    resume: None,
                },
                recorder.clone(),
            )
            .expect("client");
            visitors.push((client, recorder));
        }
        visitors
    });
    // Each visitor sends a message every 150 ms and records what was acknowledged.
    let senders: Vec<_> = visitors
        .iter()
        .enumerate()
        .map(|(i, (client, _))| {
            let client = client.clone();
            rt.spawn(async move {
                let mut acked = Vec::new();
                for n in 0..PER_VISITOR {
                    let text = format!("访客{i} 第{n}条 / visitor {i} message {n}");
                    let seq = tokio::time::timeout(Duration::from_secs(30), client.send(&text))
                        .await
                        .unwrap_or_else(|_| panic!("{text}: no ack within 30 s"))
                        .unwrap_or_else(|e| panic!("{text}: {e}"));
                    acked.push((text, seq));
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1200));
    nodes[0].kill9();
    let acked: Vec<Vec<(String, u64)>> = rt.block_on(async {
        let mut all = Vec::new();
        for s in senders {
            all.push(s.await.expect("sender"));
        }
        all
    });
    rt.block_on(async {
        let api = Api::new(&bases[1]);
        for ((client, recorder), acked) in visitors.iter().zip(&acked) {
            assert_eq!(acked.len(), PER_VISITOR);
            let (token, conv) = recorder.session().expect("session started");
            let (status, page) = api
                .get(
                    &format!("/v1/conversations/{conv}/messages?after_seq=0&limit=100"),
                    Some(&token),
                )
                .await;
            assert_eq!(status, 200, "{page}");
            let stored = page["messages"].as_array().expect("messages");
            let seqs: Vec<u64> = stored.iter().filter_map(|m| m["seq"].as_u64()).collect();
            assert_eq!(
                seqs,
                (1..=seqs.len() as u64).collect::<Vec<_>>(),
                "gap-free, in order"
            );
            for (text, seq) in acked {
                let copies: Vec<&serde_json::Value> = stored
                    .iter()
                    .filter(|m| m["text"] == text.as_str())
                    .collect();
                assert_eq!(copies.len(), 1, "{text}: stored once, not {}", copies.len());
                assert_eq!(copies[0]["seq"].as_u64(), Some(*seq), "{text}");
            }
            client.close();
        }
    });
}
