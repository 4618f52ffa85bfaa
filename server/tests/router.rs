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
use kefu_server::store::{Store, TokenKind};
use kefu_server::triage::{IntentSlot, KbBatcher, RuleSet, Triage};
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
        rules: RuleSet::builtin(),
        intents: Arc::new(IntentSlot::new()),
        kb: "default".into(),
        fallbacks_before_handoff: 2,
        llm: None,
    };
    let conversations = Conversations::new(
        store.clone(),
        triage,
        Arc::new(KbBatcher::start(Arc::clone(&knowledge), 1)),
        Handoff::new(store.clone(), false),
    );
    let state = AppState::new(Limits::default(), None)
        .with_trusted_proxies(vec!["10.0.0.2".parse().expect("ip")]);
    state.set_ready(Arc::new(Services {
        knowledge,
        accounts: accounts.clone(),
        conversations: Arc::clone(&conversations),
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
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let mut req = req.body(body).expect("request");
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
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, value)
    }

    async fn agent(&self, name: &str, capacity: u32) -> String {
        self.accounts
            .create_agent(NewAgent {
                name: name.into(),
                display_name: None,
                password: format!("{name} has a long password"),
                capacity,
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
    let h = harness().await;
    h.site("demo").await;
    h.agent("li", 2).await;
    // Exhaust the visitor-session bucket of one client (120 a minute by default).
    let mut limited = false;
    for _ in 0..130 {
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
