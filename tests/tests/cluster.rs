//! Scale-out end to end: two `kefu serve` processes share one PostgreSQL schema and a Redis
//! pub/sub channel. A visitor on node A is handed to an agent whose console is on node B, and
//! messages, state changes, typing and queue updates cross between them live.

use std::time::{Duration, Instant};

use kefu_e2e::chat::{Api, Chat};
use kefu_e2e::{PgSchema, Server};
use serde_json::json;

const PASSWORD: &str = "cluster-test-pw";

#[test]
fn two_nodes_share_conversations_over_postgres_and_redis() {
    let redis =
        std::env::var("KEFU_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let schema = PgSchema::create();
    let db = schema.url.clone();
    let channel = format!("kefu:test:{}", std::process::id());
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
    let args = [
        "--database-url",
        &db,
        "--redis-url",
        &redis,
        "--cluster-channel",
        &channel,
    ];
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

        let (status, body) = api_b
            .post(
                &format!("/v1/agent/conversations/{conv}/claim"),
                Some(&agent),
                json!({}),
            )
            .await;
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

        let (status, _) = api_b
            .post(
                &format!("/v1/agent/conversations/{conv}/handback"),
                Some(&agent),
                json!({}),
            )
            .await;
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
