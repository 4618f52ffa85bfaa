//! A small WebSocket + REST client for the end-to-end chat tests (tokio-tungstenite, reqwest).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for one expected frame.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(60);

/// One WebSocket connection.
pub struct Chat {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Every frame received so far, in order.
    pub seen: Vec<Value>,
}

impl Chat {
    /// Connects without saying hello.
    pub async fn open(ws_url: &str, origin: Option<&str>) -> Chat {
        let mut req = ws_url.into_client_request().expect("request");
        if let Some(o) = origin {
            req.headers_mut()
                .insert("Origin", o.parse().expect("origin header"));
        }
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("connect");
        Chat { ws, seen: vec![] }
    }

    /// Connects and says hello; panics unless welcomed.
    pub async fn connect(ws_url: &str, token: &str) -> Chat {
        let mut c = Chat::open(ws_url, None).await;
        c.send(json!({ "type": "hello", "version": 1, "token": token }))
            .await;
        let w = c.next().await;
        assert_eq!(w["type"], "welcome", "{w}");
        c
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_raw(&frame.to_string()).await;
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_string()))
            .await
            .expect("send frame");
    }

    pub async fn send_binary(&mut self, data: Vec<u8>) {
        self.ws
            .send(Message::binary(data))
            .await
            .expect("send binary");
    }

    /// The next JSON frame; a close becomes `{"type": "closed", "code": N}`.
    pub async fn next(&mut self) -> Value {
        loop {
            let m = tokio::time::timeout(FRAME_TIMEOUT, self.ws.next())
                .await
                .expect("timed out waiting for a frame");
            let v = match m {
                Some(Ok(Message::Text(t))) => serde_json::from_str(&t).expect("JSON frame"),
                Some(Ok(Message::Close(f))) => {
                    json!({ "type": "closed", "code": f.map(|f| u16::from(f.code)).unwrap_or(0) })
                }
                None | Some(Err(_)) => json!({ "type": "closed", "code": 0 }),
                Some(Ok(_)) => continue,
            };
            self.seen.push(v.clone());
            return v;
        }
    }

    /// Skips frames until one matches.
    pub async fn until(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let v = self.next().await;
            if pred(&v) {
                return v;
            }
            assert_ne!(
                v["type"], "closed",
                "connection closed while waiting for {what}"
            );
        }
    }

    /// Skips frames until a message by `author` arrives; returns that message.
    pub async fn message_by(&mut self, author: &str) -> Value {
        self.until(&format!("a message by {author}"), |v| {
            v["type"] == "message" && v["message"]["author"]["kind"] == author
        })
        .await["message"]
            .clone()
    }

    /// Sends a message and waits for its ack; returns the seq.
    pub async fn say(&mut self, conversation_id: &str, client_msg_id: &str, text: &str) -> u64 {
        self.send(json!({ "type": "send", "conversation_id": conversation_id,
                          "client_msg_id": client_msg_id, "text": text }))
            .await;
        let ack = self
            .until("ack", |v| {
                (v["type"] == "ack" && v["client_msg_id"] == client_msg_id) || v["type"] == "error"
            })
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
        ack["seq"].as_u64().expect("seq")
    }

    pub async fn subscribe(&mut self, conversation_id: &str, after_seq: u64) {
        self.send(json!({ "type": "subscribe", "conversation_id": conversation_id, "after_seq": after_seq }))
            .await;
    }

    /// Waits for an error frame and returns its code.
    pub async fn error_code(&mut self) -> String {
        let e = self
            .until("an error", |v| {
                v["type"] == "error" || v["type"] == "closed"
            })
            .await;
        assert_eq!(e["type"], "error", "{e}");
        e["code"].as_str().unwrap_or_default().to_string()
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// REST helpers.
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            base: base.to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// A request with an optional bearer token and JSON body: (status, body).
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.expect("request");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// POST with an optional bearer token: (status, body).
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.request(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.request(reqwest::Method::PUT, path, token, Some(body))
            .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, token, None).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.request(reqwest::Method::DELETE, path, token, None)
            .await
    }

    /// `POST /v1/agent/conversations/{conv}/{action}` (`claim`, `handback`, `resolve`) as the
    /// agent `token`: (status, body).
    pub async fn agent_action(&self, token: &str, conv: &str, action: &str) -> (u16, Value) {
        self.post(
            &format!("/v1/agent/conversations/{conv}/{action}"),
            Some(token),
            serde_json::json!({}),
        )
        .await
    }

    /// Asks `question` of knowledge base `default` through the admin API's "try a question"
    /// (`key`: an admin key) until the reply satisfies `done` (or `limit` passes): the reply and
    /// how long it took.
    pub async fn ask_until(
        &self,
        key: &str,
        question: &str,
        limit: std::time::Duration,
        done: impl Fn(&Value) -> bool,
    ) -> (Value, std::time::Duration) {
        let started = std::time::Instant::now();
        loop {
            let (status, r) = self
                .post(
                    "/v1/admin/kbs/default/ask",
                    Some(key),
                    serde_json::json!({ "question": question }),
                )
                .await;
            assert_eq!(status, 200, "{r}");
            if done(&r) {
                return (r, started.elapsed());
            }
            assert!(
                started.elapsed() < limit,
                "{question:?}: not the reply wanted within {limit:?}: {r}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// `ask_until` the bot answers with a reply containing `needle`.
    pub async fn until_answered(
        &self,
        key: &str,
        question: &str,
        needle: &str,
        limit: std::time::Duration,
    ) -> (Value, std::time::Duration) {
        self.ask_until(key, question, limit, |r| {
            r["band"] == "answer" && r["answer"].as_str().is_some_and(|a| a.contains(needle))
        })
        .await
    }

    /// Uploads a file to knowledge base `kb` (`POST /v1/admin/kbs/{kb}/documents`, multipart
    /// field `file`) and waits for its import job to end: the job.
    pub async fn upload(&self, token: &str, kb: &str, file_name: &str, content: &[u8]) -> Value {
        let boundary = "kefu-e2e-boundary-41c7";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(content);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let r = self
            .http
            .post(format!("{}/v1/admin/kbs/{kb}/documents", self.base))
            .bearer_auth(token)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .expect("upload");
        assert_eq!(r.status().as_u16(), 202, "upload {file_name}");
        let accepted: Value = r.json().await.expect("json");
        let id = accepted["job"].as_str().expect("job id").to_string();
        for _ in 0..600 {
            let (status, job) = self.get(&format!("/v1/admin/jobs/{id}"), Some(token)).await;
            assert_eq!(status, 200, "{job}");
            if job["status"] == "done" || job["status"] == "failed" {
                return job;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("import job {id} did not end");
    }

    /// A visitor session on `site`: (token, conversation_id).
    pub async fn visitor(&self, site: &str) -> (String, String) {
        let (status, body) = self
            .post("/v1/visitor/sessions", None, json!({ "site_key": site }))
            .await;
        assert_eq!(status, 201, "{body}");
        (
            body["token"].as_str().expect("token").to_string(),
            body["conversation_id"]
                .as_str()
                .expect("conversation")
                .to_string(),
        )
    }

    /// An agent token.
    pub async fn agent(&self, name: &str, password: &str) -> String {
        let (status, body) = self
            .post(
                "/v1/agent/login",
                None,
                json!({ "name": name, "password": password }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().expect("token").to_string()
    }
}
