//! The REST API in process: any method, route, path segment, query, headers and body through the
//! real router (`kefu_server::http::app`) and its extractors. Every answer is a status the API
//! documents, never a crash or a 500, and every refusal is JSON with a code from the one vocabulary.
//! The state is the one a node has before its store opens (handlers answer `not_ready`), so what
//! is exercised is routing, authentication headers, path, query and body parsing, and limits.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use axum::Router;
use http_body_util::BodyExt;
use kefu_protocol::ErrorCode;
use kefu_server::http::app;
use kefu_server::state::{AppState, Limits};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

/// Every route, `{}` standing for the fuzzed path segment.
const ROUTES: &[&str] = &[
    "/",
    "/admin",
    "/console",
    "/demo",
    "/docs/api",
    "/healthz",
    "/metrics",
    "/readyz",
    "/v1/admin/agents",
    "/v1/admin/agents/{}/revoke",
    "/v1/admin/analytics",
    "/v1/admin/audit",
    "/v1/admin/conversations",
    "/v1/admin/conversations/{}",
    "/v1/admin/intents",
    "/v1/admin/intents/rollback",
    "/v1/admin/intents/train",
    "/v1/admin/intents/{}/activate",
    "/v1/admin/jobs",
    "/v1/admin/jobs/{}",
    "/v1/admin/kbs",
    "/v1/admin/kbs/{}",
    "/v1/admin/kbs/{}/ask",
    "/v1/admin/kbs/{}/documents",
    "/v1/admin/kbs/{}/entries",
    "/v1/admin/kbs/demo/entries/{}",
    "/v1/admin/kbs/{}/eval",
    "/v1/admin/kbs/{}/mode",
    "/v1/admin/kbs/{}/thresholds",
    "/v1/admin/keys",
    "/v1/admin/keys/{}/revoke",
    "/v1/admin/llm",
    "/v1/admin/llm/test",
    "/v1/admin/login",
    "/v1/admin/rules",
    "/v1/admin/rules/validate",
    "/v1/admin/sites",
    "/v1/admin/sites/{}/attachments",
    "/v1/admin/sites/{}/hours",
    "/v1/admin/sites/{}/retention",
    "/v1/admin/training/history",
    "/v1/admin/training/mine",
    "/v1/admin/training/proposals",
    "/v1/admin/training/proposals/{}",
    "/v1/admin/training/proposals/{}/approve",
    "/v1/admin/training/proposals/{}/conversations",
    "/v1/admin/training/proposals/{}/reject",
    "/v1/admin/visitors/erase",
    "/v1/admin/webhooks",
    "/v1/admin/webhooks/{}",
    "/v1/admin/webhooks/{}/deliveries",
    "/v1/admin/webhooks/{}/enable",
    "/v1/admin/webhooks/{}/rotate",
    "/v1/agent/agents",
    "/v1/agent/canned",
    "/v1/agent/conversations",
    "/v1/agent/conversations/{}",
    "/v1/agent/conversations/{}/claim",
    "/v1/agent/conversations/{}/handback",
    "/v1/agent/conversations/{}/messages",
    "/v1/agent/conversations/{}/resolve",
    "/v1/agent/conversations/{}/suggestions",
    "/v1/agent/conversations/{}/transfer",
    "/v1/agent/login",
    "/v1/agent/logout",
    "/v1/attachments/{}",
    "/v1/attachments/{}/thumbnail",
    "/v1/channels/api/{}/handoff",
    "/v1/channels/api/{}/messages",
    "/v1/channels/wechat/{}",
    "/v1/conversations/{}/attachments",
    "/v1/conversations/{}/messages",
    "/v1/conversations/{}/rating",
    "/v1/kb/query",
    "/v1/openapi.json",
    "/v1/visitor/conversations",
    "/v1/visitor/sessions",
    "/v1/ws",
    "/widget.js",
];

const METHODS: &[Method] = &[
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
    Method::HEAD,
];

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "text/plain",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    "text/xml",
    "",
];

#[derive(Debug, Arbitrary)]
struct Call {
    method: u8,
    route: u8,
    segment: String,
    query: String,
    authorization: Option<String>,
    content_type: u8,
    origin: Option<String>,
    body: Vec<u8>,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

fn router() -> &'static Router {
    static APP: OnceLock<Router> = OnceLock::new();
    APP.get_or_init(|| app(AppState::new(Limits::default(), None)))
}

fuzz_target!(|call: Call| {
    let route = ROUTES[usize::from(call.route) % ROUTES.len()].replace("{}", &call.segment);
    let uri = if call.query.is_empty() {
        route
    } else {
        format!("{route}?{}", call.query)
    };
    let method = METHODS[usize::from(call.method) % METHODS.len()].clone();
    let head = method == Method::HEAD;
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(a) = &call.authorization {
        builder = builder.header("authorization", a.as_str());
    }
    if let Some(o) = &call.origin {
        builder = builder.header("origin", o.as_str());
    }
    let content_type = CONTENT_TYPES[usize::from(call.content_type) % CONTENT_TYPES.len()];
    if !content_type.is_empty() {
        builder = builder.header("content-type", content_type);
    }
    // Requests hyper itself would refuse (a bad URI or header) never reach the router.
    let Ok(mut request) = builder.body(Body::from(call.body)) else {
        return;
    };
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let (status, body) = runtime().block_on(async {
        let response = router().clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        (status, body)
    });
    assert!(
        !status.is_server_error() || status.as_u16() == 503,
        "{status}: {body:?}"
    );
    // A response to HEAD has no body (HTTP), so only its status can be checked.
    if (status.is_client_error() || status.is_server_error()) && !head {
        let value: serde_json::Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {body:?}"));
        let code = value["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{status}: no code: {value}"));
        assert!(
            ErrorCode::ALL.iter().any(|c| c.as_str() == code),
            "{status}: unknown code {code}"
        );
    }
});
