//! The web pages the server ships: the operator's console (`/admin`), the agent console and a
//! demo chat page for visitors.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::IntoResponse;

/// Each page's script is its own file from this server (no inline script runs); styles are inline
/// in the page; nothing loads from elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

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

/// `GET /admin`: the operator's console (knowledge, analytics, settings).
pub async fn admin() -> impl IntoResponse {
    page(include_str!("../../assets/admin.html"))
}

/// `GET /admin.js`: the operator's console's script.
pub async fn admin_script() -> impl IntoResponse {
    script(include_str!("../../assets/admin.js"))
}

/// `GET /docs/api`: the REST API reference, rendered from `/v1/openapi.json`.
pub async fn api_reference() -> impl IntoResponse {
    page(include_str!("../../assets/api.html"))
}

/// `GET /docs/api.js`: the API reference's script.
pub async fn api_reference_script() -> impl IntoResponse {
    script(include_str!("../../assets/api.js"))
}

/// `GET /demo`: a chat page for trying the bot as a visitor (site `demo`).
pub async fn demo() -> impl IntoResponse {
    page(include_str!("../../assets/demo.html"))
}

fn script(js: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
        ],
        js,
    )
}

/// `GET /console.js`: the agent console's script.
pub async fn console_script() -> impl IntoResponse {
    script(include_str!("../../assets/console.js"))
}

/// `GET /demo.js`: the demo chat page's script.
pub async fn demo_script() -> impl IntoResponse {
    script(include_str!("../../assets/demo.js"))
}

#[cfg(test)]
mod tests {
    /// Every `<script>` in the pages names its file: the CSP allows no inline script.
    #[test]
    fn pages_have_no_inline_scripts() {
        for html in [
            include_str!("../../assets/admin.html"),
            include_str!("../../assets/api.html"),
            include_str!("../../assets/console.html"),
            include_str!("../../assets/demo.html"),
        ] {
            let tags: Vec<&str> = html
                .match_indices("<script")
                .map(|(i, _)| &html[i..])
                .collect();
            assert!(!tags.is_empty());
            for tag in tags {
                let open = &tag[..tag.find('>').unwrap_or(tag.len())];
                assert!(open.contains(" src=\""), "inline script: {open}");
                assert!(tag[open.len()..].starts_with("></script>"), "{open}");
            }
            assert!(!html.contains(" onclick=") && !html.contains(" onsubmit="));
        }
    }
}
