//! A scripted OpenAI-compatible chat-completions server for the LLM tests (no model can run
//! here): `POST /v1/chat/completions` answers from the request itself, streamed as server-sent
//! events the way OpenAI, Ollama, vLLM and DeepSeek document them. What it does depends on the
//! visitor's question in the request's data:
//! - `slow` / `慢`: the first token after 3 s;
//! - `broken` / `故障`: HTTP 500;
//! - `no idea` / `不知道`: `NO_ANSWER`, in two pieces;
//! - `echo` / `回显`: the request body itself (what a model that repeats its input would say);
//! - `refund me` / `退款给我`: a promise no source makes, with a citation (a model that followed an
//!   injected instruction);
//! - `switch` / `切换`: an answer in the other language;
//! - anything else: source 1's answer, first sentence, with `[1]`, in eight pieces 200 ms apart.
//!
//! Every request body is kept for the test to read.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The running server; stops with the test process.
pub struct ScriptedLlm {
    /// The API base to give `--llm-url` (`http://127.0.0.1:PORT/v1`).
    pub base: String,
    requests: Arc<Mutex<Vec<Value>>>,
}

impl ScriptedLlm {
    /// Starts on a free loopback port, on its own thread and runtime.
    pub fn start() -> ScriptedLlm {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&requests);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("listener");
                while let Ok((stream, _)) = listener.accept().await {
                    let kept = Arc::clone(&kept);
                    tokio::spawn(async move {
                        let _ = serve(stream, kept).await;
                    });
                }
            });
        });
        ScriptedLlm {
            base: format!("http://127.0.0.1:{port}/v1"),
            requests,
        }
    }

    /// Every request body received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// The data document of a request (the user message after `Data (JSON):`).
pub fn request_data(request: &Value) -> Value {
    let user = request["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    let json = user.split_once('\n').map(|(_, j)| j).unwrap_or("");
    serde_json::from_str(json).unwrap_or(Value::Null)
}

async fn serve(mut stream: TcpStream, kept: Arc<Mutex<Vec<Value>>>) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 8192];
    let body = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&request).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())
                        .flatten()
                })
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                break request[end + 4..end + 4 + length].to_vec();
            }
        }
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Ok(mut k) = kept.lock() {
        k.push(body.clone());
    }
    let data = request_data(&body);
    let question = data["question"].as_str().unwrap_or("").to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| question.contains(w));
    if has(&["broken", "故障"]) {
        let body =
            json!({"error": {"message": "the model crashed", "type": "server_error"}}).to_string();
        let head = format!(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        return stream.shutdown().await;
    }
    let chinese = data["answer_language"] == "zh";
    let (pieces, pause): (Vec<String>, Duration) = if has(&["no idea", "不知道"]) {
        (
            vec!["NO_".into(), "ANSWER".into()],
            Duration::from_millis(50),
        )
    } else if has(&["echo", "回显"]) {
        (split(&body.to_string(), 8), Duration::from_millis(20))
    } else if has(&["refund me", "退款给我"]) {
        let promise = if chinese {
            "好消息：您的全部货款将原路退还，另外再送您一张代金券 [1]。"
        } else {
            "Good news: your money will be returned in full, plus a bonus voucher for you [1]."
        };
        (split(promise, 3), Duration::from_millis(50))
    } else if has(&["switch", "切换"]) {
        let other = if chinese {
            "Orders ship the same day when paid before four in the afternoon [1]."
        } else {
            "工作日下午四点前付款的订单当天发货 [1]。"
        };
        (split(other, 3), Duration::from_millis(50))
    } else {
        (split(&first_answer(&data), 8), Duration::from_millis(200))
    };
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await?;
    if has(&["slow", "慢"]) {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    for piece in pieces {
        let chunk = json!({
            "id": "chatcmpl-scripted", "object": "chat.completion.chunk", "model": body["model"],
            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}],
        });
        stream
            .write_all(format!("data: {chunk}\n\n").as_bytes())
            .await?;
        stream.flush().await?;
        tokio::time::sleep(pause).await;
    }
    let usage = json!({"id": "chatcmpl-scripted", "choices": [],
                       "usage": {"prompt_tokens": 321, "completion_tokens": 12, "total_tokens": 333}});
    stream
        .write_all(format!("data: {usage}\n\ndata: [DONE]\n\n").as_bytes())
        .await?;
    stream.shutdown().await
}

/// Source 1's answer (after `A:` for a FAQ entry), first sentence, cited.
fn first_answer(data: &Value) -> String {
    let text = data["sources"][0]["text"].as_str().unwrap_or("");
    let answer = text.split_once("\nA: ").map(|(_, a)| a).unwrap_or(text);
    let end = answer
        .char_indices()
        .find(|(_, c)| matches!(c, '。' | '！' | '？'))
        .map(|(i, c)| i + c.len_utf8())
        .or_else(|| answer.find(". ").map(|i| i + 1))
        .unwrap_or(answer.len());
    let sentence = answer[..end].trim();
    match sentence.strip_suffix('。') {
        Some(s) => format!("{s} [1]。"),
        None => format!("{sentence} [1]"),
    }
}

/// `text` in `n` pieces (at character boundaries).
fn split(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(n.max(1)).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}
