//! The server's URLs: the configured base URL checked (http/https with a host; a path prefix such
//! as `/kefu` kept), REST endpoints below it, and the WebSocket URL with the site key. Native
//! builds parse with the `url` crate; the wasm widget uses the browser's own URL parser
//! (`web_sys::Url`), which keeps the `url` crate's Unicode tables out of the widget.

use crate::error::ClientError;

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The base URL, its path ending in `/` so that endpoints resolve below it.
    base: String,
}

impl Endpoints {
    /// Checks `server_url` (`http://host:port`, `https://host/prefix`, …).
    pub fn new(server_url: &str) -> Result<Self, ClientError> {
        imp::base(server_url.trim())
            .map(|base| Self { base })
            .ok_or_else(|| {
                ClientError::InvalidInput(
                    "server_url must be an http://host… or https://host… URL".into(),
                )
            })
    }

    /// A REST endpoint: `path` (relative, e.g. `v1/visitor/sessions`) below the base.
    pub fn rest(&self, path: &str) -> String {
        format!("{}{}", self.base, path.trim_start_matches('/'))
    }

    /// The WebSocket endpoint for `site_key` (`ws` for `http`, `wss` for `https`).
    pub fn websocket(&self, site_key: &str) -> String {
        imp::websocket(&self.rest("v1/ws"), site_key)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use url::Url;

    pub fn base(text: &str) -> Option<String> {
        let mut url = Url::parse(text).ok()?;
        if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
            return None;
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        url.set_query(None);
        url.set_fragment(None);
        Some(url.into())
    }

    pub fn websocket(endpoint: &str, site_key: &str) -> String {
        let Ok(mut url) = Url::parse(endpoint) else {
            return endpoint.to_string();
        };
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        // http(s) → ws(s) is a change between special schemes, which `Url` allows.
        let _ = url.set_scheme(scheme);
        url.query_pairs_mut().append_pair("site_key", site_key);
        url.into()
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use web_sys::Url;

    pub fn base(text: &str) -> Option<String> {
        let url = Url::new(text).ok()?;
        if !matches!(url.protocol().as_str(), "http:" | "https:") || url.host().is_empty() {
            return None;
        }
        let path = url.pathname();
        if !path.ends_with('/') {
            url.set_pathname(&format!("{path}/"));
        }
        url.set_search("");
        url.set_hash("");
        Some(url.href())
    }

    pub fn websocket(endpoint: &str, site_key: &str) -> String {
        let Ok(url) = Url::new(endpoint) else {
            return endpoint.to_string();
        };
        let scheme = if url.protocol() == "https:" {
            "wss:"
        } else {
            "ws:"
        };
        url.set_protocol(scheme);
        url.search_params().append("site_key", site_key);
        url.href()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_is_checked_and_endpoints_resolve_below_it() {
        for bad in ["ftp://x", "http://", "not a url", ""] {
            assert!(
                matches!(Endpoints::new(bad), Err(ClientError::InvalidInput(_))),
                "{bad}"
            );
        }
        let e = Endpoints::new("https://chat.example.com").expect("base");
        assert_eq!(
            e.rest("v1/visitor/sessions"),
            "https://chat.example.com/v1/visitor/sessions"
        );
        assert_eq!(
            e.websocket("a b/商&x=1"),
            "wss://chat.example.com/v1/ws?site_key=a+b%2F%E5%95%86%26x%3D1"
        );
        // A server behind a path prefix keeps it; a query or fragment on the base is dropped.
        let e = Endpoints::new("http://127.0.0.1:8080/kefu?x=1#top").expect("base");
        assert_eq!(
            e.websocket("demo"),
            "ws://127.0.0.1:8080/kefu/v1/ws?site_key=demo"
        );
    }
}
