//! The network, the second place where native and browser differ: one JSON POST (visitor
//! sessions) and one WebSocket of text frames. Native: reqwest and tokio-tungstenite (rustls).
//! Browser: `fetch` and the browser WebSocket through gloo-net (connected once the open event
//! fired).

use serde_json::Value;

use crate::error::ClientError;

/// Result of a REST call: the decoded body, or the server's `{"error": {code, message}}`.
fn rest_result(status: u16, body: Value) -> Result<Value, ClientError> {
    if (200..300).contains(&status) {
        return Ok(body);
    }
    // A body without the API's error shape (a proxy's error page): name the code by status, so a
    // 5xx is retried like the server's own `internal`.
    let code = body["error"]["code"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            if status >= 500 || status == 429 {
                kefu_protocol::ErrorCode::Internal.as_str().to_string()
            } else {
                kefu_protocol::ErrorCode::InvalidRequest
                    .as_str()
                    .to_string()
            }
        });
    let message = body["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("HTTP {status}"));
    Err(ClientError::Server { code, message })
}

/// True for refusals that retrying cannot fix: the protocol's definite refusals (unknown site,
/// identity required or invalid, origin refused, unsupported version) and requests the client
/// itself got wrong. Server faults, load shedding, start-up and network trouble are transient:
/// the driver retries them with backoff.
pub fn is_permanent(e: &ClientError) -> bool {
    match e {
        ClientError::Server { code, .. } => kefu_protocol::ErrorCode::parse(code).stops_client(),
        ClientError::InvalidInput(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refusal(status: u16, body: Value) -> ClientError {
        rest_result(status, body)
            .err()
            .unwrap_or(ClientError::Closed)
    }

    #[test]
    fn server_faults_are_retried_and_definite_refusals_stop() {
        let body = |code: &str| json!({"error": {"code": code, "message": "m"}});
        assert!(
            !is_permanent(&refusal(500, body("internal"))),
            "database hiccup"
        );
        assert!(!is_permanent(&refusal(503, body("overloaded"))));
        assert!(!is_permanent(&refusal(503, body("not_ready"))));
        assert!(!is_permanent(&refusal(429, body("rate_limited"))));
        assert!(
            !is_permanent(&refusal(502, Value::Null)),
            "a proxy's error page"
        );
        assert!(
            !is_permanent(&refusal(500, body("some_new_code"))),
            "unknown codes"
        );
        assert!(!is_permanent(&ClientError::Network("reset".into())));
        for code in [
            "unknown_site",
            "identity_invalid",
            "identity_required",
            "origin_not_allowed",
        ] {
            assert!(is_permanent(&refusal(403, body(code))), "{code}");
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::*;
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as WsMessage;

    type Ws = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    fn client() -> &'static reqwest::Client {
        static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
        CLIENT.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(20))
                .build()
                .unwrap_or_default()
        })
    }

    /// POSTs `body` as JSON, with a bearer token when given.
    pub async fn post_json(
        url: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<Value, ClientError> {
        let mut req = client().post(url).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        answer(req).await
    }

    /// Sends `req` and reads the REST answer.
    async fn answer(req: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        let resp = req
            .send()
            .await
            .map_err(|e| ClientError::Network(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        rest_result(status, body)
    }

    /// POSTs `bytes` as the body (a file upload) with a bearer token.
    pub async fn post_bytes(url: &str, token: &str, bytes: Vec<u8>) -> Result<Value, ClientError> {
        let req = client()
            .post(url)
            .bearer_auth(token)
            .header("Content-Type", "application/octet-stream")
            .body(bytes);
        answer(req).await
    }

    /// An open WebSocket carrying text frames.
    pub struct Socket {
        ws: Ws,
    }

    impl Socket {
        pub async fn connect(url: &str) -> Result<Socket, ClientError> {
            let (ws, _) = tokio_tungstenite::connect_async(url)
                .await
                .map_err(|e| ClientError::Network(e.to_string()))?;
            Ok(Socket { ws })
        }

        pub async fn send(&mut self, text: String) -> Result<(), ClientError> {
            self.ws
                .send(WsMessage::text(text))
                .await
                .map_err(|e| ClientError::Network(e.to_string()))
        }

        /// The next text frame; `None` once the socket closed.
        pub async fn recv(&mut self) -> Option<Result<String, ClientError>> {
            loop {
                match self.ws.next().await? {
                    Ok(WsMessage::Text(t)) => return Some(Ok(t.to_string())),
                    Ok(WsMessage::Close(_)) => return None,
                    Ok(_) => continue,
                    Err(e) => return Some(Err(ClientError::Network(e.to_string()))),
                }
            }
        }

        pub async fn close(mut self) {
            let _ = self.ws.close(None).await;
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::*;
    use futures::{SinkExt, StreamExt};
    use gloo_net::websocket::{futures::WebSocket, Message as WsMessage};

    /// POSTs `body` as JSON with `fetch`, with a bearer token when given.
    pub async fn post_json(
        url: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<Value, ClientError> {
        let mut req = gloo_net::http::Request::post(url);
        if let Some(t) = token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let req = req
            .json(body)
            .map_err(|e| ClientError::InvalidInput(e.to_string()))?;
        answer(req).await
    }

    /// Sends `req` with `fetch` and reads the REST answer.
    async fn answer(req: gloo_net::http::Request) -> Result<Value, ClientError> {
        let resp = req
            .send()
            .await
            .map_err(|e| ClientError::Network(e.to_string()))?;
        let status = resp.status();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        rest_result(status, body)
    }

    /// POSTs `bytes` as the body (a file upload) with `fetch` and a bearer token.
    pub async fn post_bytes(url: &str, token: &str, bytes: Vec<u8>) -> Result<Value, ClientError> {
        let body = js_sys::Uint8Array::from(bytes.as_slice());
        let req = gloo_net::http::Request::post(url)
            .header("Authorization", &format!("Bearer {token}"))
            .header("Content-Type", "application/octet-stream")
            .body(body)
            .map_err(|e| ClientError::InvalidInput(e.to_string()))?;
        answer(req).await
    }

    /// An open browser WebSocket carrying text frames.
    pub struct Socket {
        ws: WebSocket,
    }

    impl Socket {
        /// Resolves once the socket's open event fired.
        pub async fn connect(url: &str) -> Result<Socket, ClientError> {
            let ws = WebSocket::open(url).map_err(|e| ClientError::Network(e.to_string()))?;
            let mut socket = Socket { ws };
            // gloo-net queues sends until open; wait for it so "connected" is true.
            loop {
                match socket.ws.state() {
                    gloo_net::websocket::State::Open => return Ok(socket),
                    gloo_net::websocket::State::Connecting => {
                        crate::platform::sleep(std::time::Duration::from_millis(20)).await
                    }
                    _ => {
                        return match socket.ws.next().await {
                            Some(Err(e)) => Err(ClientError::Network(e.to_string())),
                            _ => Err(ClientError::Network("the socket closed".into())),
                        }
                    }
                }
            }
        }

        pub async fn send(&mut self, text: String) -> Result<(), ClientError> {
            self.ws
                .send(WsMessage::Text(text))
                .await
                .map_err(|e| ClientError::Network(e.to_string()))
        }

        pub async fn recv(&mut self) -> Option<Result<String, ClientError>> {
            loop {
                match self.ws.next().await? {
                    Ok(WsMessage::Text(t)) => return Some(Ok(t)),
                    Ok(WsMessage::Bytes(_)) => continue,
                    Err(gloo_net::websocket::WebSocketError::ConnectionClose(_)) => return None,
                    Err(e) => return Some(Err(ClientError::Network(e.to_string()))),
                }
            }
        }

        pub async fn close(self) {
            let _ = self.ws.close(Some(1000), None);
        }
    }
}

pub use imp::*;
