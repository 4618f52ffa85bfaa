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
use kefu_server::http::openapi::document_json;
use kefu_server::state::{AppState, Limits};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

/// What the API document does not list: pages, assets, probes, the document itself and the
/// WebSocket.
const PAGES: &[&str] = &[
    "/",
    "/admin",
    "/admin.js",
    "/console",
    "/console.js",
    "/demo",
    "/demo.js",
    "/docs/api",
    "/docs/api.js",
    "/healthz",
    "/metrics",
    "/readyz",
    "/v1/openapi.json",
    "/v1/ws",
    "/widget.js",
    "/widget/kefu_widget.js",
    "/widget/kefu_widget_bg.wasm",
];

/// Every route: the API document's paths (so a new endpoint is fuzzed as soon as it is documented)
/// and the pages. Each `{parameter}` becomes `{}`, where the fuzzed path segment goes.
fn routes() -> &'static [String] {
    static ROUTES: OnceLock<Vec<String>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let doc: serde_json::Value =
            serde_json::from_str(document_json()).expect("the API document is JSON");
        let paths = doc["paths"].as_object().expect("the document has paths");
        let mut routes: Vec<String> = paths.keys().map(|p| fill(p)).collect();
        routes.extend(PAGES.iter().map(|p| p.to_string()));
        routes.sort();
        routes.dedup();
        routes
    })
}

/// `/v1/kbs/{kb}/entries/{id}` → `/v1/kbs/{}/entries/{}` (parameters are whole segments).
fn fill(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

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
    let routes = routes();
    let route = routes[usize::from(call.route) % routes.len()].replace("{}", &call.segment);
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
