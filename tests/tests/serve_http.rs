//! `kefu serve` end to end: demo knowledge base loaded on first start, the query API (staff
//! only), and clear errors for bad requests while the server keeps serving.

use kefu_e2e::Server;
use serde_json::{json, Value};

/// A client that sends an admin key made with `kefu admin-key` on every request.
fn staff_client(data_dir: &std::path::Path) -> reqwest::blocking::Client {
    let key = kefu_e2e::admin_key(data_dir);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {key}").parse().expect("header"),
    );
    reqwest::blocking::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

fn post(client: &reqwest::blocking::Client, url: &str, body: &Value) -> (u16, Value) {
    let r = client.post(url).json(body).send().expect("request");
    (r.status().as_u16(), r.json().expect("json body"))
}

fn get(client: &reqwest::blocking::Client, url: &str) -> Value {
    client
        .get(url)
        .send()
        .expect("request")
        .json()
        .expect("json body")
}

#[test]
fn serves_demo_kb_and_rejects_bad_requests() {
    let tmp = tempfile::tempdir().expect("tmp");
    let server = Server::start(tmp.path(), &[]);
    let client = staff_client(tmp.path());
    let url = server.url("/v1/kb/query");

    // Visitors chat; the raw query endpoint is for staff.
    let (status, body) = post(
        &reqwest::blocking::Client::new(),
        &url,
        &json!({ "query": "多久发货？" }),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );

    let health: Value = get(&client, &server.url("/healthz"));
    assert_eq!(health["status"], "ok");
    let ready: Value = get(&client, &server.url("/readyz"));
    assert_eq!(ready["model"], "multilingual-e5-small");
    assert!(ready["vectors"].as_u64().unwrap_or(0) > 100, "{ready}");

    let (status, body) = post(&client, &url, &json!({ "query": "下单后多久发货？" }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["band"], "answer");
    assert_eq!(body["hits"][0]["id"], "zh-ship-time");
    assert_eq!(body["hits"][0]["source"], "faq-zh.csv");

    let (status, body) = post(
        &client,
        &url,
        &json!({ "query": "I forgot my password", "top_k": 2 }),
    );
    assert_eq!(status, 200);
    assert_eq!(body["hits"][0]["id"], "en-account-password");
    assert_eq!(body["hits"].as_array().map(Vec::len), Some(2));

    let (_, body) = post(&client, &url, &json!({ "query": "给我讲个笑话" }));
    assert_ne!(body["band"], "answer");

    // Bad input: stable codes, and the server keeps serving.
    let r = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .expect("request");
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(
        r.json::<Value>().expect("json")["error"]["code"],
        "invalid_json"
    );
    let cases = [
        (json!({ "query": "hi", "kb": "nope" }), 404, "kb_not_found"),
        (json!({ "query": "   " }), 400, "invalid_input"),
        (json!({ "query": "hi", "top_k": 0 }), 400, "invalid_input"),
        (
            json!({ "query": "hi", "top_k": 1000 }),
            400,
            "invalid_input",
        ),
        (json!({ "query": 42 }), 400, "invalid_request"),
        (
            json!({ "query": "hi", "extra": true }),
            400,
            "invalid_request",
        ),
        (json!({ "query": "长".repeat(2001) }), 400, "invalid_input"),
    ];
    for (body, want_status, want_code) in cases {
        let (status, resp) = post(&client, &url, &body);
        assert_eq!(status, want_status, "{body} -> {resp}");
        assert_eq!(resp["error"]["code"], want_code, "{body} -> {resp}");
        assert!(resp["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let big = "x".repeat(70 * 1024);
    let (status, resp) = post(&client, &url, &json!({ "query": big }));
    assert_eq!(status, 413);
    assert_eq!(resp["error"]["code"], "payload_too_large");
    let r = client
        .get(server.url("/v1/nothing"))
        .send()
        .expect("request");
    assert_eq!(r.status().as_u16(), 404);

    let (status, body) = post(&client, &url, &json!({ "query": "退货运费谁承担" }));
    assert_eq!(status, 200);
    assert_eq!(body["hits"][0]["id"], "zh-return-fee");
}

#[test]
fn restart_keeps_the_knowledge_base_without_reimporting() {
    let tmp = tempfile::tempdir().expect("tmp");
    let first = Server::start(tmp.path(), &[]);
    drop(first);
    let db = tmp.path().join("kefu.db");
    assert!(db.is_file());
    let server = Server::start(tmp.path(), &[]);
    let client = reqwest::blocking::Client::new();
    let ready: Value = get(&client, &server.url("/readyz"));
    // Same vector count as a single import: the demo was not loaded twice.
    let mut c = kefu_e2e::kefu(tmp.path());
    c.args(["kb", "list", "--json"]);
    let list: Value = serde_json::from_slice(&kefu_e2e::run(c).stdout).expect("list json");
    assert_eq!(list[0]["vectors"], ready["vectors"]);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
}

#[test]
fn imports_from_the_cli_reach_a_running_server() {
    let tmp = tempfile::tempdir().expect("tmp");
    let server = Server::start(tmp.path(), &["--no-demo"]);
    let faq = tmp.path().join("faq.csv");
    std::fs::write(
        &faq,
        "id,question,answer\nwarranty,保修期多久？,电子产品保修两年。\n",
    )
    .expect("write");
    let mut c = kefu_e2e::kefu(tmp.path());
    c.args(["kb", "import", "--kb", "support"]).arg(&faq);
    let out = kefu_e2e::run(c);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let client = staff_client(tmp.path());
    let (status, body) = post(
        &client,
        &server.url("/v1/kb/query"),
        &json!({ "query": "保修多长时间", "kb": "support" }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hits"][0]["id"], "warranty");
}
