//! The HTTP API in process (`app(state)` + `oneshot`, a real SQLite store, a model-free embedder):
//! the error shape and codes of every kind of rejection, scopes, token revocation, the password
//! policy, origins taken from configuration, and atomic claims within capacity.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use kefu_kb::embed::testing::HashingEmbedder;
use kefu_kb::Knowledge;
use kefu_server::accounts::{Accounts, NewAgent, NewSite};
use kefu_server::conversation::Conversations;
use kefu_server::handoff::Handoff;
use kefu_server::http::app;
use kefu_server::state::{AppState, Limits, Services};
use kefu_server::store::{Role, Store, TokenKind};
use kefu_server::triage::{IntentSlot, KbBatcher, LiveRules, Triage};
use serde_json::{json, Value};
use tower::ServiceExt;

const OWN_ORIGIN: &str = "http://127.0.0.1:8080";

struct Harness {
    state: AppState,
    accounts: Accounts,
    conversations: Arc<Conversations>,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    harness_with(Limits::default()).await
}

async fn harness_with(limits: Limits) -> Harness {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open_sqlite(&dir.path().join("conversations.db"))
        .await
        .expect("store");
    let knowledge = Arc::new(
        Knowledge::open_embedded(
            &dir.path().join("kefu.db"),
            Arc::new(HashingEmbedder::new(64)),
        )
        .await
        .expect("knowledge"),
    );
    let accounts = Accounts::new(store.clone(), vec![OWN_ORIGIN.into()]);
    let triage = Triage {
        rules: LiveRules::open(None, dir.path()).expect("rules"),
        intents: Arc::new(IntentSlot::new()),
        kb: "default".into(),
        fallbacks_before_handoff: 2,
        llm: kefu_server::llm::LiveLlm::open(
            &kefu_server::llm::LlmArgs {
                llm_url: None,
                llm_model: "qwen2.5:7b-instruct".into(),
                llm_api_key: None,
                llm_first_token_timeout: std::time::Duration::from_secs(6),
                llm_timeout: std::time::Duration::from_secs(12),
            },
            dir.path(),
        )
        .expect("llm"),
    };
    let conversations = Conversations::new(
        store.clone(),
        triage,
        Arc::new(KbBatcher::start(Arc::clone(&knowledge), 1)),
        Handoff::new(store.clone(), false),
    );
    let state =
        AppState::new(limits, None).with_trusted_proxies(vec!["10.0.0.2".parse().expect("ip")]);
    let files = kefu_server::attachments::AttachmentFiles::new(dir.path().join("attachments"));
    state.set_ready(Arc::new(Services {
        training: kefu_server::training::Training::new(
            Arc::clone(&knowledge),
            dir.path(),
            dir.path(),
        ),
        privacy: kefu_server::privacy::Privacy::new(
            store.clone(),
            knowledge.store().clone(),
            files.clone(),
        ),
        attachments: kefu_server::attachments::Attachments::new(store.clone(), files),
        knowledge,
        accounts: accounts.clone(),
        conversations: Arc::clone(&conversations),
        analytics: kefu_server::analytics::Analytics::new(
            store.clone(),
            std::time::Duration::from_secs(24 * 3600),
        ),
        webhooks: kefu_server::webhooks::Webhooks::new(store.clone()),
        channels: kefu_server::channels::Channels::new(
            store.clone(),
            accounts.clone(),
            Arc::clone(&conversations),
            kefu_server::channels::wechat::DEFAULT_API_BASE,
        ),
        settings: None,
    }));
    Harness {
        state,
        accounts,
        conversations,
        _dir: dir,
    }
}

impl Harness {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let (status, headers, bytes) = match body {
            Some(b) => {
                let mut all = vec![("content-type", "application/json")];
                all.extend_from_slice(headers);
                self.send(method, path, token, b.to_string().into_bytes(), &all)
                    .await
            }
            None => self.send(method, path, token, vec![], headers).await,
        };
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, value)
    }

    /// One request with a raw body; the response's bytes.
    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut req = req.body(Body::from(body)).expect("request");
        let peer: SocketAddr = "192.0.2.7:5555".parse().expect("addr");
        req.extensions_mut().insert(ConnectInfo(peer));
        let resp = app(self.state.clone())
            .oneshot(req)
            .await
            .expect("response");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, headers, bytes.to_vec())
    }

    async fn agent(&self, name: &str, capacity: u32) -> String {
        self.accounts
            .create_agent(NewAgent {
                name: name.into(),
                display_name: None,
                password: format!("{name} has a long password"),
                capacity,
                role: kefu_server::store::Role::Agent,
            })
            .await
            .expect("agent");
        let (_, token) = self
            .accounts
            .login(name, &format!("{name} has a long password"))
            .await
            .expect("login");
        token.token
    }

    /// A site that only this server's own pages may embed.
    async fn site(&self, key: &str) {
        self.accounts
            .create_site(NewSite {
                key: key.into(),
                ..NewSite::default()
            })
            .await
            .expect("site");
    }

    /// `POST /v1/visitor/sessions` for `site_key`, with extra headers.
    async fn start_session(&self, site_key: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
        let (status, _, body) = self
            .call(
                "POST",
                "/v1/visitor/sessions",
                None,
                Some(json!({ "site_key": site_key })),
                headers,
            )
            .await;
        (status, body)
    }

    async fn admin(&self) -> String {
        self.accounts
            .issue_token(TokenKind::Admin, "tests", None)
            .await
            .expect("admin key")
            .token
    }
}

fn code(v: &Value) -> Option<&str> {
    v["error"]["code"].as_str()
}

#[tokio::test]
async fn every_rejection_is_json_with_a_stable_code() {
    let h = harness().await;
    let (status, headers, body) = h.call("GET", "/v1/agent/login", None, None, &[]).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
    assert!(headers.get("allow").is_some(), "405 keeps its Allow header");
    let (status, headers, body) = h.call("GET", "/v1/nothing", None, None, &[]).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    assert_eq!(
        headers.get("x-content-type-options").map(|v| v.as_bytes()),
        Some(&b"nosniff"[..])
    );

    h.site("demo").await;
    let (status, session) = h.start_session("demo", &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let token = session["token"].as_str().expect("token");
    let conv = session["conversation_id"].as_str().expect("conv");
    let (status, headers, body) = h
        .call(
            "GET",
            &format!("/v1/conversations/{conv}/messages?after_seq=abc"),
            Some(token),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "{body}"
    );
    assert!(headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json")));
    let (status, body) = h.start_session("nope", &[]).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, Some("unknown_site"))
    );
    let (status, headers, _) = h.call("GET", "/console", None, None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers.get("x-content-type-options").map(|v| v.as_bytes()),
        Some(&b"nosniff"[..])
    );
    // The pages run only scripts served by this server: no inline script is allowed.
    for page in ["/console", "/demo"] {
        let (status, headers, _) = h.call("GET", page, None, None, &[]).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let csp = headers
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let script_src = csp
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with("script-src"));
        assert_eq!(script_src, Some("script-src 'self'"), "{page}: {csp}");
    }
    for script in ["/console.js", "/demo.js"] {
        let (status, headers, _) = h.call("GET", script, None, None, &[]).await;
        assert_eq!(status, StatusCode::OK, "{script}");
        assert!(headers
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/javascript")));
    }
}

#[tokio::test]
async fn scopes_are_enforced_and_tokens_revoked() {
    let h = harness().await;
    let admin = h.admin().await;
    let li = h.agent("li", 2).await;
    let query = json!({"query": "多久发货？"});
    let (status, _, body) = h
        .call("POST", "/v1/kb/query", None, Some(query.clone()), &[])
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (status, _, body) = h
        .call(
            "POST",
            "/v1/kb/query",
            Some(&admin),
            Some(query.clone()),
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, Some("kb_not_found")),
        "staff reach it"
    );
    let (status, _, body) = h
        .call(
            "POST",
            "/v1/kb/query",
            Some(&li),
            Some(json!({"query": "x", "top_k": 50})),
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, Some("invalid_input")),
        "top_k capped"
    );
    let (status, _, body) = h.call("GET", "/v1/admin/sites", Some(&li), None, &[]).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );

    let weak = json!({"name": "zhao", "password": "12345678"});
    let (status, _, body) = h
        .call("POST", "/v1/admin/agents", Some(&admin), Some(weak), &[])
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, Some("invalid_input")),
        "{body}"
    );

    let (status, _, _) = h
        .call("GET", "/v1/agent/agents", Some(&li), None, &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = h
        .call("POST", "/v1/agent/logout", Some(&li), None, &[])
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = h
        .call("GET", "/v1/agent/agents", Some(&li), None, &[])
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, Some("unauthorized")),
        "logged out"
    );

    let li2 = {
        let (_, t) = h
            .accounts
            .login("li", "li has a long password")
            .await
            .expect("login");
        t.token
    };
    let (status, _, body) = h
        .call(
            "POST",
            "/v1/admin/agents/li/revoke",
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (status, body["revoked"].as_u64()),
        (StatusCode::OK, Some(1))
    );
    let (status, _, _) = h
        .call("GET", "/v1/agent/agents", Some(&li2), None, &[])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked by the admin");
    let (status, _, body) = h
        .call(
            "POST",
            "/v1/agent/login",
            None,
            Some(json!({"name": "li", "password": "wrong one!"})),
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
    );
}

#[tokio::test]
async fn own_origin_comes_from_configuration_not_the_host_header() {
    let h = harness().await;
    h.accounts
        .create_site(NewSite {
            key: "shop".into(),
            allowed_origins: vec!["https://shop.example".into()],
            ..NewSite::default()
        })
        .await
        .expect("site");
    let spoofed = [("origin", "http://evil.example"), ("host", "evil.example")];
    let (status, resp) = h.start_session("shop", &spoofed).await;
    assert_eq!(
        (status, code(&resp)),
        (StatusCode::FORBIDDEN, Some("origin_not_allowed"))
    );
    for origin in ["https://shop.example", OWN_ORIGIN] {
        let (status, resp) = h.start_session("shop", &[("origin", origin)]).await;
        assert_eq!(status, StatusCode::CREATED, "{origin}: {resp}");
    }
}

#[tokio::test]
async fn zero_width_text_is_blank_and_claims_respect_capacity() {
    let h = harness().await;
    h.site("demo").await;
    let li = h.agent("li", 1).await;
    let mut conversations = Vec::new();
    for _ in 0..10 {
        let (_, s) = h.start_session("demo", &[]).await;
        let who = kefu_server::accounts::Principal::Visitor {
            visitor_id: s["visitor_id"].as_str().expect("visitor").into(),
            site_key: "demo".into(),
        };
        let id = s["conversation_id"].as_str().expect("conv").to_string();
        h.conversations
            .request_human(&who, &id)
            .await
            .expect("queued");
        conversations.push(id);
    }
    let claims = conversations.iter().map(|id| {
        let path = format!("/v1/agent/conversations/{id}/claim");
        let li = li.clone();
        let h = &h;
        async move { h.call("POST", &path, Some(&li), None, &[]).await }
    });
    let results = futures_util::future::join_all(claims).await;
    let won: Vec<_> = results
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::OK)
        .collect();
    assert_eq!(
        won.len(),
        1,
        "capacity 1: exactly one concurrent claim wins"
    );
    assert!(results
        .iter()
        .filter(|(s, _, _)| *s != StatusCode::OK)
        .all(|(s, _, b)| *s == StatusCode::CONFLICT && code(b) == Some("conflict")));

    let mut owned = None;
    for id in &conversations {
        let summary = h.conversations.summary(id).await.expect("summary");
        if summary.is_some_and(|s| s.agent.as_deref() == Some("li")) {
            owned = Some(id.clone());
        }
    }
    let owned = owned.expect("the claimed conversation");
    let (status, _, body) = h
        .call(
            "POST",
            &format!("/v1/agent/conversations/{owned}/messages"),
            Some(&li),
            Some(json!({"text": "\u{200B}\u{200D}\u{FEFF} "})),
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, Some("invalid_input")),
        "{body}"
    );
}

#[tokio::test]
async fn login_buckets_are_separate_and_proxies_are_trusted_only_when_named() {
    // Six a minute: one token back every ten seconds, so a slow machine cannot refill the bucket
    // between exhausting it and the forged request (the default, 120 a minute, refills in 0.5 s).
    let h = harness_with(Limits {
        sessions_per_minute: 6,
        ..Limits::default()
    })
    .await;
    h.site("demo").await;
    h.agent("li", 2).await;
    // Exhaust the visitor-session bucket of one client.
    let mut limited = false;
    for _ in 0..10 {
        let (status, _) = h.start_session("demo", &[]).await;
        limited |= status == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(limited, "visitor sessions are rate-limited");
    let login = json!({"name": "li", "password": "li has a long password"});
    let (status, _, body) = h
        .call("POST", "/v1/agent/login", None, Some(login), &[])
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "visitors do not lock agents out: {body}"
    );
    // The peer (192.0.2.7) is no trusted proxy: its X-Forwarded-For is ignored, so it stays limited.
    let (status, _) = h
        .start_session("demo", &[("x-forwarded-for", "198.51.100.1")])
        .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "forged forwarding headers change nothing"
    );
}

/// A multipart form with file fields (field name, file name, content).
fn files_form(files: &[(&str, &str, &[u8])]) -> (Vec<u8>, String) {
    let boundary = "kefu-test-boundary-7d1e";
    let mut body = Vec::new();
    for (field, file_name, content) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/form-data; boundary={boundary}"))
}

impl Harness {
    async fn upload(
        &self,
        token: &str,
        kb: &str,
        file_name: &str,
        content: &[u8],
    ) -> (StatusCode, Value) {
        self.post_files(
            &format!("/v1/admin/kbs/{kb}/documents"),
            token,
            &[("file", file_name, content)],
        )
        .await
    }

    /// POSTs a multipart form of file fields (field name, file name, content) to `path`.
    async fn post_files(
        &self,
        path: &str,
        token: &str,
        files: &[(&str, &str, &[u8])],
    ) -> (StatusCode, Value) {
        let (body, content_type) = files_form(files);
        let (status, _, bytes) = self
            .send(
                "POST",
                path,
                Some(token),
                body,
                &[("content-type", &content_type)],
            )
            .await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Polls a job until it ends.
    async fn job(&self, token: &str, id: &str) -> Value {
        for _ in 0..500 {
            let (status, _, job) = self
                .call(
                    "GET",
                    &format!("/v1/admin/jobs/{id}"),
                    Some(token),
                    None,
                    &[],
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{job}");
            if job["status"] == "done" || job["status"] == "failed" {
                return job;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("job {id} did not end");
    }

    async fn operator(&self, name: &str, role: Role) {
        self.accounts
            .create_agent(NewAgent {
                name: name.into(),
                display_name: None,
                password: format!("{name} has a long password"),
                capacity: 2,
                role,
            })
            .await
            .expect("operator");
    }
}

#[tokio::test]
async fn operators_sign_in_by_role_and_agents_never_reach_admin_routes() {
    let h = harness().await;
    h.operator("boss", Role::Admin).await;
    let agent = h.agent("li", 2).await;
    let login = |name: &str, password: &str| json!({"name": name, "password": password});
    let (status, _, body) = h
        .call(
            "POST",
            "/v1/admin/login",
            None,
            Some(login("li", "li has a long password")),
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "an agent is not an admin"
    );
    let (status, _, body) = h
        .call(
            "POST",
            "/v1/admin/login",
            None,
            Some(login("boss", "wrong password!")),
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
    );
    let (status, _, body) = h
        .call(
            "POST",
            "/v1/admin/login",
            None,
            Some(login("boss", "boss has a long password")),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["account"]["role"], "admin");
    let boss = body["token"].as_str().expect("token").to_string();

    for path in [
        "/v1/admin/kbs",
        "/v1/admin/jobs",
        "/v1/admin/sites",
        "/v1/admin/agents",
    ] {
        let (status, _, body) = h.call("GET", path, Some(&boss), None, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let (status, _, body) = h.call("GET", path, Some(&agent), None, &[]).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{path}"
        );
    }
    let (status, _, _) = h
        .call("GET", "/v1/agent/conversations", Some(&boss), None, &[])
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an admin's login opens the agent console"
    );
    let (status, _, body) = h
        .call(
            "GET",
            "/v1/admin/analytics?from=2026-12-01&to=2026-12-01",
            Some(&agent),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );

    // Demoted: the same token loses the admin routes at once.
    h.accounts
        .set_role("boss", Role::Agent)
        .await
        .expect("demote");
    let (status, _, _) = h.call("GET", "/v1/admin/kbs", Some(&boss), None, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = h
        .call("GET", "/v1/agent/conversations", Some(&boss), None, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "still an agent");
}

#[tokio::test]
async fn knowledge_bases_are_managed_over_the_admin_api() {
    let h = harness_with(Limits {
        max_upload_bytes: 4096,
        ..Limits::default()
    })
    .await;
    let admin = h.admin().await;
    let csv = "id,question,answer,alternates,tags\n\
               returns,怎么退货？,收到商品 30 天内可申请退货。,退货流程|How do I return an item?,售后\n\
               shipping,How long does shipping take?,Orders ship within 48 hours.,多久发货,shipping\n";
    let (status, body) = h.upload(&admin, "shop", "faq.csv", csv.as_bytes()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let job = h.job(&admin, body["job"].as_str().expect("job id")).await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(
        (job["result"]["entries"].as_u64(), job["progress"].as_f64()),
        (Some(2), Some(1.0))
    );
    let doc = "# 会员积分 Points\n\n积分在获得后 12 个月过期。Points expire 12 months after they are earned.\n";
    let (_, body) = h.upload(&admin, "shop", "policy.md", doc.as_bytes()).await;
    let job = h.job(&admin, body["job"].as_str().expect("job id")).await;
    assert_eq!(job["status"], "done", "{job}");

    let (status, _, kbs) = h
        .call("GET", "/v1/admin/kbs", Some(&admin), None, &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    let shop = kbs["kbs"]
        .as_array()
        .expect("kbs")
        .iter()
        .find(|k| k["name"] == "shop")
        .expect("shop")
        .clone();
    assert_eq!(
        (shop["faqs"].as_i64(), shop["mode"].as_str()),
        (Some(2), Some("extractive"))
    );
    assert!(shop["chunks"].as_i64() >= Some(1), "{shop}");

    // Browse and search.
    let (_, _, page) = h
        .call(
            "GET",
            "/v1/admin/kbs/shop/entries?q=%E9%80%80%E8%B4%A7",
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["entries"][0]["key"], "id:returns");
    let (_, _, page) = h
        .call(
            "GET",
            "/v1/admin/kbs/shop/entries?kind=chunk&limit=10",
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert!(
        page["entries"]
            .as_array()
            .is_some_and(|e| !e.is_empty() && e.iter().all(|x| x["kind"] == "chunk")),
        "{page}"
    );
    let (status, _, body) = h
        .call(
            "GET",
            "/v1/admin/kbs/shop/entries?limit=0",
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, Some("invalid_input"))
    );
    let (status, _, body) = h
        .call(
            "GET",
            "/v1/admin/kbs/shop/entries?kind=pdf",
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, Some("invalid_input"))
    );

    // Write, edit, delete an FAQ; the payload stays text.
    let xss = "<img src=x onerror=alert(1)>礼品卡？";
    let (status, _, created) = h
        .call("POST", "/v1/admin/kbs/shop/entries", Some(&admin),
              Some(json!({"question": xss, "answer": "Gift cards from $10.", "alternates": ["gift card"], "tags": ["gift"]})), &[])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["question"], xss);
    let id = created["id"].as_i64().expect("id");
    let (status, _, body) = h
        .call(
            "POST",
            "/v1/admin/kbs/shop/entries",
            Some(&admin),
            Some(json!({"question": xss, "answer": "again"})),
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    let (status, _, body) = h
        .call(
            "POST",
            "/v1/admin/kbs/shop/entries",
            Some(&admin),
            Some(json!({"question": " ", "answer": "x"})),
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, Some("invalid_input"))
    );
    let (status, _, edited) = h
        .call(
            "PUT",
            &format!("/v1/admin/kbs/shop/entries/{id}"),
            Some(&admin),
            Some(json!({"question": "礼品卡怎么用？", "answer": "礼品卡 10 元起。"})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(
        (edited["id"].as_i64(), edited["answer"].as_str()),
        (Some(id), Some("礼品卡 10 元起。"))
    );
    let chunk_id = page["entries"][0]["id"].as_i64().expect("chunk id");
    let (status, _, body) = h
        .call(
            "PUT",
            &format!("/v1/admin/kbs/shop/entries/{chunk_id}"),
            Some(&admin),
            Some(json!({"question": "q", "answer": "a"})),
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, Some("invalid_input")),
        "passages change by upload"
    );
    let (status, _, _) = h
        .call(
            "DELETE",
            &format!("/v1/admin/kbs/shop/entries/{id}"),
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = h
        .call(
            "GET",
            &format!("/v1/admin/kbs/shop/entries/{id}"),
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    // Thresholds and mode.
    let (status, _, body) = h
        .call(
            "PUT",
            "/v1/admin/kbs/shop/thresholds",
            Some(&admin),
            Some(json!({"answer": 0.2, "suggest": 0.5})),
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, Some("invalid_input"))
    );
    let (status, _, body) = h
        .call(
            "PUT",
            "/v1/admin/kbs/shop/thresholds",
            Some(&admin),
            Some(json!({"answer": 0.6, "suggest": 0.4})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["overrides"]["margin"], Value::Null);
    let (status, _, body) = h
        .call(
            "PUT",
            "/v1/admin/kbs/shop/mode",
            Some(&admin),
            Some(json!({"mode": "faq"})),
            &[],
        )
        .await;
    assert_eq!(
        (status, body["mode"].as_str()),
        (StatusCode::OK, Some("faq"))
    );
    let (status, _, body) = h
        .call(
            "PUT",
            "/v1/admin/kbs/shop/mode",
            Some(&admin),
            Some(json!({"mode": "poetry"})),
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, Some("invalid_input"))
    );
    let (_, _, shop) = h
        .call("GET", "/v1/admin/kbs/shop", Some(&admin), None, &[])
        .await;
    assert_eq!(
        (
            shop["mode"].as_str(),
            shop["thresholds"]["answer"]
                .as_f64()
                .map(|v| (v * 100.0).round())
        ),
        (Some("faq"), Some(60.0))
    );

    // Try a question: the chat's reply shape with its trace.
    let (status, _, asked) = h
        .call(
            "POST",
            "/v1/admin/kbs/shop/ask",
            Some(&admin),
            Some(json!({"question": "怎么退货？"})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{asked}");
    assert_eq!(asked["query"], "怎么退货？");
    assert!(
        asked["band"].is_string() && asked["mode"].is_string() && asked["citations"].is_array(),
        "{asked}"
    );
    assert_eq!(asked["trace"]["kb"]["kb"], "shop", "{asked}");
    let (status, _, body) = h
        .call(
            "POST",
            "/v1/admin/kbs/nope/ask",
            Some(&admin),
            Some(json!({"question": "x"})),
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, Some("kb_not_found"))
    );
    let (status, _, body) = h
        .call(
            "POST",
            "/v1/admin/kbs/shop/ask",
            Some(&admin),
            Some(json!({"question": ""})),
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, Some("invalid_input"))
    );

    // Bad uploads: refused at once, or a failed job that says why; nothing is written.
    let (status, body) = h.upload(&admin, "shop", "tool.exe", b"MZ...").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, Some("unsupported_file"))
    );
    let (status, body) = h.upload(&admin, "shop", "big.md", &vec![b'a'; 8192]).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );
    let (status, body) = h.upload(&admin, "shop", "empty.csv", b"").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, Some("invalid_input"))
    );
    let (status, body) = h
        .upload(&admin, "bad%20name%21", "faq.csv", csv.as_bytes())
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, Some("invalid_input"))
    );
    let (status, _, body) = h
        .call(
            "POST",
            "/v1/admin/kbs/shop/documents",
            Some(&admin),
            Some(json!({"file": "faq.csv"})),
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "{body}"
    );
    let (status, body) = h
        .upload(
            &admin,
            "shop",
            "broken.csv",
            b"question,answer\n,no question\n",
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let job = h.job(&admin, body["job"].as_str().expect("job id")).await;
    assert_eq!(
        (job["status"].as_str(), job["error"]["code"].as_str()),
        (Some("failed"), Some("parse_error")),
        "{job}"
    );
    let (_, _, page) = h
        .call(
            "GET",
            "/v1/admin/kbs/shop/entries?kind=faq",
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(page["total"], 2, "the failed import wrote nothing");
    let (status, _, body) = h
        .call("GET", "/v1/admin/jobs/job_nope", Some(&admin), None, &[])
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    // Delete the knowledge base.
    let (status, _, body) = h
        .call("DELETE", "/v1/admin/kbs/shop", Some(&admin), None, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = h
        .call("GET", "/v1/admin/kbs/shop", Some(&admin), None, &[])
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, Some("kb_not_found"))
    );
}

#[tokio::test]
async fn visitors_rate_their_own_conversations_and_analytics_read_them() {
    let h = harness().await;
    let admin = h.admin().await;
    h.site("demo").await;
    let (_, session) = h.start_session("demo", &[]).await;
    let token = session["token"].as_str().expect("token");
    let conv = session["conversation_id"].as_str().expect("conv");
    let rate = |score: Value| json!({"score": score, "comment": "很好 great"});
    let path = format!("/v1/conversations/{conv}/rating");
    for bad in [json!(0), json!(6), json!("5")] {
        let (status, _, body) = h
            .call("POST", &path, Some(token), Some(rate(bad.clone())), &[])
            .await;
        assert!(status.is_client_error(), "{bad}: {body}");
    }
    let (status, _, body) = h
        .call("POST", &path, Some(&admin), Some(rate(json!(5))), &[])
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "staff do not rate"
    );
    let (_, other) = h.start_session("demo", &[]).await;
    let (status, _, body) = h
        .call(
            "POST",
            &path,
            other["token"].as_str(),
            Some(rate(json!(5))),
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "not their conversation"
    );
    let (status, _, body) = h
        .call("POST", &path, Some(token), Some(rate(json!(5))), &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rating"]["score"], 5);
    let (_, _, t) = h
        .call(
            "GET",
            &format!("/v1/admin/conversations/{conv}"),
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(t["rating"]["comment"], "很好 great", "{t}");

    let today = kefu_server::analytics::date_of(kefu_server::store::now_ms());
    let (status, _, report) = h
        .call(
            "GET",
            &format!("/v1/admin/analytics?from={today}&to={today}"),
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        (
            report["conversations"].as_u64(),
            report["csat"]["count"].as_u64()
        ),
        (Some(2), Some(1))
    );
    let (status, headers, csv) = h
        .send(
            "GET",
            &format!("/v1/admin/analytics?from={today}&to={today}&format=csv"),
            Some(&admin),
            vec![],
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .is_ok_and(|t| t.starts_with("text/csv")));
    let csv = String::from_utf8(csv).expect("utf-8");
    assert!(
        csv.starts_with("date,conversations,") && csv.contains(&format!("{today},2,")),
        "{csv}"
    );
    for bad in [
        "from=2026-12-01",
        "from=yesterday&to=2026-12-01",
        "from=2026-12-02&to=2026-12-01",
        "from=2026-12-01&to=2026-12-01&format=xml",
    ] {
        let (status, _, body) = h
            .call(
                "GET",
                &format!("/v1/admin/analytics?{bad}"),
                Some(&admin),
                None,
                &[],
            )
            .await;
        assert!(
            status == StatusCode::BAD_REQUEST && code(&body).is_some(),
            "{bad}: {body}"
        );
    }
}

#[tokio::test]
async fn training_over_the_admin_api_reports_its_errors() {
    let h = harness().await;
    let admin = h.admin().await;
    let (status, body) = h
        .post_files(
            "/v1/admin/training/history",
            &admin,
            &[("file", "history.txt", b"hello")],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, Some("unsupported_file"))
    );

    // Mining before any history: the job fails and says why.
    let (status, _, body) = h
        .call(
            "POST",
            "/v1/admin/training/mine",
            Some(&admin),
            Some(json!({})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let job = h.job(&admin, body["job"].as_str().expect("job")).await;
    assert_eq!(
        (job["status"].as_str(), job["error"]["code"].as_str()),
        (Some("failed"), Some("invalid_input")),
        "{job}"
    );
    let (status, _, body) = h
        .call(
            "POST",
            "/v1/admin/training/mine",
            Some(&admin),
            Some(json!({"similarity": 3.0})),
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, Some("invalid_input"))
    );

    // A history file with one good and one bad record.
    let history = "{\"id\": \"c1\", \"messages\": [{\"role\": \"visitor\", \"text\": \"有发票吗\"}, {\"role\": \"agent\", \"text\": \"可以开电子发票。\"}]}\n{\"id\": 7}\n";
    let (status, accepted) = h
        .post_files(
            "/v1/admin/training/history",
            &admin,
            &[("file", "chats.jsonl", history.as_bytes())],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let job = h.job(&admin, accepted["job"].as_str().expect("job")).await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(
        (
            job["result"]["report"]["added"].as_u64(),
            job["result"]["skipped_count"].as_u64()
        ),
        (Some(1), Some(1)),
        "{job}"
    );

    let (status, _, body) = h
        .call(
            "GET",
            "/v1/admin/training/proposals?status=maybe",
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, Some("invalid_input"))
    );
    let (status, _, body) = h
        .call(
            "GET",
            "/v1/admin/training/proposals",
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (status, body["proposals"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );
    for (method, path, body) in [
        (
            "POST",
            "/v1/admin/training/proposals/99/approve",
            Some(json!({})),
        ),
        ("POST", "/v1/admin/training/proposals/99/reject", None),
        (
            "PUT",
            "/v1/admin/training/proposals/99",
            Some(json!({"answer": "x"})),
        ),
    ] {
        let (status, _, body) = h.call(method, path, Some(&admin), body, &[]).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{method} {path}"
        );
    }
    let agent = h.agent("li", 2).await;
    let (status, _, _) = h
        .call(
            "GET",
            "/v1/admin/training/proposals",
            Some(&agent),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn intent_versions_over_the_admin_api() {
    let h = harness().await;
    let admin = h.admin().await;
    let (status, _, body) = h
        .call("GET", "/v1/admin/intents", Some(&admin), None, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["active"].clone(),
            body["versions"].as_array().map(Vec::len)
        ),
        (Value::Null, Some(0))
    );
    let (status, _, body) = h
        .call(
            "POST",
            "/v1/admin/intents/v9/activate",
            Some(&admin),
            Some(json!({})),
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "{body}"
    );
    let (status, _, body) = h
        .call(
            "POST",
            "/v1/admin/intents/rollback",
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, Some("invalid_input")),
        "nothing to roll back: {body}"
    );
}

/// Labelled utterances in JSONL, both languages.
fn intent_lines(pairs: &[(&str, &str)]) -> Vec<u8> {
    pairs
        .iter()
        .map(|(text, intent)| json!({"text": text, "intent": intent}).to_string())
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

impl Harness {
    /// Posts an intent training form; the job's final view when accepted, else the error body.
    async fn train_intents(
        &self,
        token: &str,
        query: &str,
        files: &[(&str, &str, &[u8])],
    ) -> (StatusCode, Value) {
        let (status, body) = self
            .post_files(&format!("/v1/admin/intents/train{query}"), token, files)
            .await;
        if status != StatusCode::ACCEPTED {
            return (status, body);
        }
        let job = self.job(token, body["job"].as_str().expect("job")).await;
        (status, job)
    }
}

#[tokio::test]
async fn intent_models_are_trained_over_the_admin_api() {
    let h = harness().await;
    let admin = h.admin().await;
    let train = intent_lines(&[
        ("where is my order", "order_status"),
        ("has my parcel shipped", "order_status"),
        ("track my package", "order_status"),
        ("我的订单到哪了", "order_status"),
        ("快递到哪里了", "order_status"),
        ("包裹发货了吗", "order_status"),
        ("I want a refund", "refund"),
        ("give me my money back", "refund"),
        ("refund my order please", "refund"),
        ("我要退款", "refund"),
        ("怎么申请退款", "refund"),
        ("钱能退给我吗", "refund"),
    ]);
    let test = intent_lines(&[
        ("where is my order now", "order_status"),
        ("我的订单到哪了呀", "order_status"),
        ("I want a refund now", "refund"),
        ("我要退款呀", "refund"),
    ]);

    // Refused at once: wrong kinds, no `file`, an agent.
    for files in [
        vec![("file", "intents.txt", &b"x"[..])],
        vec![
            ("file", "intents.jsonl", &train[..]),
            ("test", "test.pdf", &b"x"[..]),
        ],
    ] {
        let (status, body) = h.train_intents(&admin, "", &files).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, Some("unsupported_file")),
            "{body}"
        );
    }
    let (status, body) = h
        .train_intents(&admin, "", &[("test", "test.jsonl", &test)])
        .await;
    assert_eq!(code(&body), Some("invalid_request"), "{status} {body}");
    let agent = h.agent("li", 3).await;
    let (status, body) = h
        .train_intents(&agent, "", &[("file", "intents.jsonl", &train)])
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );

    // Trained as a job, evaluated on the test file; the first version is active.
    let (_, job) = h
        .train_intents(
            &admin,
            "",
            &[
                ("file", "intents.jsonl", &train),
                ("test", "test.jsonl", &test),
            ],
        )
        .await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["progress"], 1.0);
    let r = &job["result"];
    assert_eq!(
        (r["version"].as_str(), r["active"].as_bool()),
        (Some("v1"), Some(true))
    );
    assert_eq!(
        (r["intents"].as_u64(), r["train_examples"].as_u64()),
        (Some(2), Some(12))
    );
    assert_eq!(r["eval"]["metrics"]["n"], 4, "{r}");
    assert_eq!(r["eval"]["by_language"]["zh"]["n"], 2, "{r}");
    assert_eq!(r["eval"]["by_language"]["en"]["n"], 2, "{r}");
    assert_eq!(r["oos_class"], false, "{r}");
    // A second version waits to be activated unless asked; asked for, it trains an out-of-scope
    // output on the data's `oos` examples.
    let mut with_oos = train.clone();
    with_oos.push(b'\n');
    with_oos.extend(intent_lines(&[
        ("what's the weather like", "oos"),
        ("今天天气怎么样", "oos"),
        ("tell me a joke", "oos"),
        ("给我讲个笑话", "oos"),
    ]));
    let (_, job) = h
        .train_intents(
            &admin,
            "?activate=false&oos_class=true",
            &[("file", "intents.jsonl", &with_oos)],
        )
        .await;
    assert_eq!(
        (job["status"].as_str(), job["result"]["active"].as_bool()),
        (Some("done"), Some(false)),
        "{job}"
    );
    assert_eq!(
        (&job["result"]["oos_class"], &job["result"]["oos_examples"]),
        (&json!(true), &json!(4)),
        "{job}"
    );
    let (_, _, list) = h
        .call("GET", "/v1/admin/intents", Some(&admin), None, &[])
        .await;
    assert_eq!(list["active"], "v1", "{list}");
    let versions = list["versions"].as_array().cloned().unwrap_or_default();
    assert_eq!(versions.len(), 2);
    assert_eq!(
        versions[0]["eval"]["data"]
            .as_str()
            .map(|d| d.ends_with("test.jsonl")),
        Some(true)
    );
    assert!(versions[0]["data_file"]
        .as_str()
        .is_some_and(|d| d.ends_with("-intents.jsonl")));
    assert_eq!(versions[1]["eval"], Value::Null);
    assert_eq!(
        (&versions[0]["oos_class"], &versions[1]["oos_class"]),
        (&json!(false), &json!(true))
    );

    // Failures are the job's: one intent only, and a fine-tune without the stock model here.
    let (_, job) = h
        .train_intents(
            &admin,
            "",
            &[(
                "file",
                "one.jsonl",
                &intent_lines(&[("hi", "greet"), ("hello", "greet")]),
            )],
        )
        .await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(job["error"]["code"].is_string(), "{job}");
    let (_, job) = h
        .train_intents(
            &admin,
            "?fine_tune=true",
            &[("file", "intents.jsonl", &train)],
        )
        .await;
    assert_eq!(job["status"], "failed", "{job}");
    // A second encoder is named: an unknown name is refused at once, one not installed here
    // fails the job.
    let (status, body) = h
        .train_intents(
            &admin,
            "?also_encoder=gpt-9",
            &[("file", "intents.jsonl", &train)],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, Some("unknown_model")),
        "{body}"
    );
    let (_, job) = h
        .train_intents(
            &admin,
            "?also_encoder=all-minilm-l6-v2",
            &[("file", "intents.jsonl", &train)],
        )
        .await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "unavailable", "{job}");
    let (_, _, list) = h
        .call("GET", "/v1/admin/intents", Some(&admin), None, &[])
        .await;
    assert_eq!(
        list["versions"].as_array().map(Vec::len),
        Some(2),
        "failed jobs save nothing"
    );
}

#[tokio::test]
async fn the_rules_file_is_checked_replaced_and_followed_over_the_admin_api() {
    let h = harness().await;
    let admin = h.admin().await;
    let (status, _, view) = h
        .call("GET", "/v1/admin/rules", Some(&admin), None, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(
        (view["exists"].as_bool(), view["format"].as_str()),
        (Some(false), Some("toml"))
    );
    assert!(view["text"]
        .as_str()
        .is_some_and(|t| t.contains("builtin_rules = true")));
    assert!(view["path"]
        .as_str()
        .is_some_and(|p| p.ends_with("rules.toml")));

    let broken =
        "[[rules]]\nid = \"invoice\"\nregex = \"(发票\"\nactions = [{ type = \"handoff\" }]\n";
    let (status, _, check) = h
        .call(
            "POST",
            "/v1/admin/rules/validate",
            Some(&admin),
            Some(json!({"text": broken})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(check["valid"], false);
    assert!(
        check["error"]
            .as_str()
            .is_some_and(|e| e.contains("rule `invoice`: regex")),
        "{check}"
    );
    let (_, _, check) = h
        .call(
            "POST",
            "/v1/admin/rules/validate",
            Some(&admin),
            Some(json!({"text": "rules = ["})),
            &[],
        )
        .await;
    assert!(
        check["error"]
            .as_str()
            .is_some_and(|e| e.contains("line 1")),
        "syntax errors say where: {check}"
    );
    let (_, _, body) = h
        .call(
            "PUT",
            "/v1/admin/rules",
            Some(&admin),
            Some(json!({"text": broken})),
            &[],
        )
        .await;
    assert_eq!(code(&body), Some("invalid_input"), "{body}");
    let (_, _, body) = h
        .call(
            "PUT",
            "/v1/admin/rules",
            Some(&admin),
            Some(json!({"text": "#".repeat(300_000)})),
            &[],
        )
        .await;
    assert_eq!(code(&body), Some("payload_too_large"), "{body}");
    let agent = h.agent("li", 3).await;
    let (status, _, _) = h
        .call(
            "PUT",
            "/v1/admin/rules",
            Some(&agent),
            Some(json!({"text": "rules = []"})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let good = "[[rules]]\nid = \"invoice\"\npriority = 20\nkeywords = [\"发票\", \"invoice\"]\n\
                actions = [{ type = \"reply\", text = \"电子发票在订单页下载。\" }]\n";
    let (status, _, summary) = h
        .call(
            "PUT",
            "/v1/admin/rules",
            Some(&admin),
            Some(json!({"text": good})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert!(
        summary["rules"].as_u64().is_some_and(|n| n >= 2),
        "built-in rules stay: {summary}"
    );
    let (_, _, view) = h
        .call("GET", "/v1/admin/rules", Some(&admin), None, &[])
        .await;
    assert_eq!(
        (view["exists"].as_bool(), view["text"].as_str()),
        (Some(true), Some(good))
    );
    // In force for the next question, without a restart.
    let csv = "id,question,answer\nreturns,怎么退货？,收到商品后 30 天内可退。\n";
    let (_, body) = h.upload(&admin, "default", "faq.csv", csv.as_bytes()).await;
    let job = h.job(&admin, body["job"].as_str().expect("job id")).await;
    assert_eq!(job["status"], "done", "{job}");
    let (status, _, reply) = h
        .call(
            "POST",
            "/v1/admin/kbs/default/ask",
            Some(&admin),
            Some(json!({"question": "我要开发票"})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["answer"], "电子发票在订单页下载。", "{reply}");
    assert_eq!(reply["trace"]["rule"]["rule_id"], "invoice", "{reply}");
}

#[tokio::test]
async fn the_llm_settings_say_none_is_configured_and_proposal_examples_need_a_proposal() {
    let h = harness().await;
    let admin = h.admin().await;
    let (status, _, llm) = h
        .call("GET", "/v1/admin/llm", Some(&admin), None, &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (llm["source"].as_str(), llm["editable"].as_bool()),
        (Some("none"), Some(true)),
        "{llm}"
    );
    assert_eq!(
        (llm["configured"].as_bool(), llm["api_key_set"].as_bool()),
        (Some(false), Some(false))
    );
    let (status, _, body) = h
        .call("POST", "/v1/admin/llm/test", Some(&admin), None, &[])
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, Some("conflict")),
        "{body}"
    );
    let (status, _, body) = h
        .call(
            "GET",
            "/v1/admin/training/proposals/999/conversations",
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "{body}"
    );
}

#[tokio::test]
async fn the_answer_quality_eval_runs_as_a_job_over_the_admin_api() {
    let h = harness().await;
    let admin = h.admin().await;
    let csv = "id,question,answer\nreturns,怎么退货？,收到商品后 30 天内可退。\nship,How long does delivery take?,Three to five days.\n";
    let (_, body) = h.upload(&admin, "shop", "faq.csv", csv.as_bytes()).await;
    let job = h.job(&admin, body["job"].as_str().expect("job id")).await;
    assert_eq!(job["status"], "done", "{job}");
    let eval = |name: &'static str, kb: &'static str, content: &'static str| {
        let (h, admin) = (&h, admin.clone());
        async move {
            h.post_files(
                &format!("/v1/admin/kbs/{kb}/eval"),
                &admin,
                &[("file", name, content.as_bytes())],
            )
            .await
        }
    };
    let (status, body) = eval("q.csv", "shop", "question\n").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, Some("unsupported_file"))
    );
    let (_, body) = eval("q.jsonl", "shop", "{\"question\":\"a\"}\n{oops\n").await;
    assert_eq!(code(&body), Some("invalid_input"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("q.jsonl:2:")),
        "{body}"
    );
    let (status, body) = eval("q.jsonl", "nowhere", "{\"question\":\"a\"}\n").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, Some("kb_not_found")),
        "{body}"
    );

    let labelled =
        "{\"question\":\"怎么退货？\",\"expect\":\"returns\",\"answer_contains\":[\"30 天\"]}\n\
                    {\"question\":\"How long does delivery take?\",\"expect\":\"ship\"}\n\
                    {\"question\":\"Do you sell laptops?\",\"expect\":\"none\"}\n";
    let (status, body) = eval("labelled.jsonl", "shop", labelled).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let job = h.job(&admin, body["job"].as_str().expect("job")).await;
    assert_eq!(
        (job["status"].as_str(), job["progress"].as_f64()),
        (Some("done"), Some(1.0)),
        "{job}"
    );
    let r = &job["result"];
    let all = &r["report"]["overall"];
    assert_eq!(
        (all["questions"].as_u64(), all["in_scope"].as_u64()),
        (Some(3), Some(2)),
        "{r}"
    );
    assert_eq!(
        all["right_answer_rate"], 1.0,
        "the exact questions are answered right: {r}"
    );
    assert_eq!(r["report"]["zh"]["questions"], 1);
    assert_eq!(r["report"]["en"]["questions"], 2);
    assert_eq!(r["report"]["curve"].as_array().map(Vec::len), Some(31));
    assert_eq!(r["questions"].as_array().map(Vec::len), Some(3));
    assert_eq!(r["questions"][0]["cited"][0], "returns", "{r}");
}

#[tokio::test]
async fn admin_api_keys_are_issued_listed_and_revoked() {
    let h = harness().await;
    let admin = h.admin().await;
    let (status, _, issued) = h
        .call(
            "POST",
            "/v1/admin/keys",
            Some(&admin),
            Some(json!({"name": "crm-sync"})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let key = issued["key"].as_str().expect("key").to_string();
    assert!(key.starts_with("kadm_"));
    // The new key works, and the list shows names, never keys.
    let (status, _, list) = h.call("GET", "/v1/admin/keys", Some(&key), None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let names: Vec<&str> = list["keys"]
        .as_array()
        .map(|a| a.iter().filter_map(|k| k["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        names.contains(&"crm-sync") && names.contains(&"tests"),
        "{list}"
    );
    assert!(!list.to_string().contains(&key), "keys are never listed");
    for bad in ["", "has space", "<script>", &"x".repeat(65)] {
        let (_, _, body) = h
            .call(
                "POST",
                "/v1/admin/keys",
                Some(&admin),
                Some(json!({"name": bad})),
                &[],
            )
            .await;
        assert_eq!(code(&body), Some("invalid_input"), "{bad}: {body}");
    }
    let agent = h.agent("li", 3).await;
    let (status, _, _) = h
        .call(
            "POST",
            "/v1/admin/keys",
            Some(&agent),
            Some(json!({"name": "x"})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Revoked: it stops working at once; an unknown name is not found.
    let (status, _, body) = h
        .call(
            "POST",
            "/v1/admin/keys/crm-sync/revoke",
            Some(&admin),
            Some(json!({})),
            &[],
        )
        .await;
    assert_eq!(
        (status, body["revoked"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{body}"
    );
    let (status, _, _) = h.call("GET", "/v1/admin/keys", Some(&key), None, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, body) = h
        .call(
            "POST",
            "/v1/admin/keys/crm-sync/revoke",
            Some(&admin),
            Some(json!({})),
            &[],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "{body}"
    );
}

#[tokio::test]
async fn the_llm_backend_is_set_and_removed_over_the_admin_api() {
    let h = harness().await;
    let admin = h.admin().await;
    let put = |body: Value| {
        let (h, admin) = (&h, admin.clone());
        async move {
            h.call("PUT", "/v1/admin/llm", Some(&admin), Some(body), &[])
                .await
        }
    };
    let (_, _, body) = put(json!({"url": "ftp://models.example", "model": "m"})).await;
    assert_eq!(code(&body), Some("invalid_input"), "{body}");
    let (_, _, body) =
        put(json!({"url": "http://127.0.0.1:9/v1", "model": "m", "timeout_ms": 60000})).await;
    assert_eq!(code(&body), Some("invalid_input"), "{body}");
    let (status, _, body) = put(json!({"url": "http://127.0.0.1:9/v1", "model": "qwen2.5:7b-instruct", "api_key": "sk-secret"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["source"].as_str(),
            body["model"].as_str(),
            body["api_key_set"].as_bool()
        ),
        (Some("console"), Some("qwen2.5:7b-instruct"), Some(true)),
        "{body}"
    );
    assert!(
        !body.to_string().contains("sk-secret"),
        "the key is never shown"
    );
    // The test request reports the unreachable backend as its outcome, not as an error.
    let (status, _, t) = h
        .call("POST", "/v1/admin/llm/test", Some(&admin), None, &[])
        .await;
    assert_eq!(
        (status, t["ok"].as_bool(), t["error"].as_str()),
        (StatusCode::OK, Some(false), Some("unreachable")),
        "{t}"
    );
    let (status, _, body) = h
        .call("DELETE", "/v1/admin/llm", Some(&admin), None, &[])
        .await;
    assert_eq!(
        (status, body["configured"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{body}"
    );
    let agent = h.agent("li", 3).await;
    let (status, _, _) = h
        .call(
            "PUT",
            "/v1/admin/llm",
            Some(&agent),
            Some(json!({"url": "http://x/v1", "model": "m"})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
