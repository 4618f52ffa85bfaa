//! The web pages the server ships: the agent console and a demo chat page for visitors.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::IntoResponse;

/// Scripts and styles are inline in each page; nothing loads from elsewhere.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn page(html: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CONTENT_SECURITY_POLICY, CSP),
            (CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
}

/// `GET /console`: the agent console.
pub async fn console() -> impl IntoResponse {
    page(include_str!("../../assets/console.html"))
}

/// `GET /demo`: a chat page for trying the bot as a visitor (site `demo`).
pub async fn demo() -> impl IntoResponse {
    page(include_str!("../../assets/demo.html"))
}
