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
