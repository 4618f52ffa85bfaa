//! The server's URLs: the configured base URL checked (http/https with a host; a path prefix such
//! as `/kefu` kept), REST endpoints below it, and the WebSocket URL with the site key. Several
//! base URLs (comma-separated: the nodes of a cluster) are tried in turn, moving to the next one
//! each time a connection is lost or cannot be made. Native
//! builds parse with the `url` crate; the wasm widget uses the browser's own URL parser
//! (`web_sys::Url`), which keeps the `url` crate's Unicode tables out of the widget.

use crate::error::ClientError;

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The base URLs, each path ending in `/` so that endpoints resolve below it.
    bases: Vec<String>,
    /// The one in use.
    current: usize,
}

impl Endpoints {
    /// Checks `server_url`: one URL (`http://host:port`, `https://host/prefix`, …) or several
    /// separated by commas (the nodes of one cluster).
    pub fn new(server_url: &str) -> Result<Self, ClientError> {
        let bases = server_url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(imp::base)
            .collect::<Option<Vec<_>>>()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| {
                ClientError::InvalidInput(
                    "server_url must be an http://host… or https://host… URL, or several \
                     separated by commas"
                        .into(),
                )
            })?;
        Ok(Self { bases, current: 0 })
    }

    /// Moves to the next base URL (after a connection was lost or refused); with one URL, stays.
    pub fn next_server(&mut self) {
        self.current = (self.current + 1) % self.bases.len();
    }

    /// A REST endpoint: `path` (relative, e.g. `v1/visitor/sessions`) below the base in use.
    pub fn rest(&self, path: &str) -> String {
        format!(
            "{}{}",
            self.bases[self.current],
            path.trim_start_matches('/')
        )
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

    #[test]
    fn several_servers_are_tried_in_turn() {
        let mut e = Endpoints::new(" http://a:8080 , https://b/kefu,").expect("two servers");
        assert_eq!(e.websocket("demo"), "ws://a:8080/v1/ws?site_key=demo");
        e.next_server();
        assert_eq!(e.rest("v1/x"), "https://b/kefu/v1/x");
        e.next_server();
        assert_eq!(e.rest("v1/x"), "http://a:8080/v1/x");
        assert!(
            matches!(
                Endpoints::new("http://a:8080,ftp://b"),
                Err(ClientError::InvalidInput(_))
            ),
            "every URL is checked"
        );
        assert!(matches!(
            Endpoints::new(" , "),
            Err(ClientError::InvalidInput(_))
        ));
    }
}
