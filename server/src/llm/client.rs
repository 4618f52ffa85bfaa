//! The OpenAI-compatible chat-completions call: `POST {url}/chat/completions` with
//! `"stream": true`, read as server-sent events (`data: {chunk}` … `data: [DONE]`, the format
//! OpenAI, Ollama's `/v1`, vLLM, llama.cpp's server, LM Studio and DeepSeek document), with a
//! first-token and a total deadline. A backend that answers one JSON body instead is read too.

use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::time::timeout_at;

use super::prompt::ChatMessage;
use super::{LlmConfig, LlmError};

/// Most tokens an answer may take (three short sentences need far fewer).
const MAX_TOKENS: u32 = 400;
/// Characters of an error body kept for the log.
const ERROR_BODY_CHARS: usize = 300;

/// The streamed answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Completion {
    pub text: String,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    /// When the first token arrived, from the request's start.
    pub first_token: Option<Duration>,
}

/// A client for one backend and model.
#[derive(Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    config: LlmConfig,
}

impl LlmClient {
    pub fn new(config: LlmConfig) -> Result<Self, LlmError> {
        let endpoint = chat_endpoint(&config.url)?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.first_token_timeout)
            .user_agent(concat!("kefu/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LlmError::Url(e.to_string()))?;
        Ok(Self {
            http,
            endpoint,
            config,
        })
    }

    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// Where and how the backend is reached (the API key stays inside).
    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// The chat-completions endpoint requests go to.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    /// Sends `messages` and streams the answer: `on_delta` gets each piece of text as it comes.
    pub async fn stream(
        &self,
        messages: &[ChatMessage],
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Completion, LlmError> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started + self.config.timeout);
        let first_deadline = deadline.min(tokio::time::Instant::from_std(
            started + self.config.first_token_timeout,
        ));
        let body = json!({
            "model": self.config.model,
            "messages": messages,
            "stream": true,
            "stream_options": { "include_usage": true },
            "temperature": 0.1,
            "max_tokens": MAX_TOKENS,
        });
        let mut request = self.http.post(self.endpoint.clone()).json(&body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        let first_timeout = LlmError::FirstTokenTimeout(self.config.first_token_timeout);
        let response = timeout_at(first_deadline, request.send())
            .await
            .map_err(|_| first_timeout)?
            .map_err(|e| LlmError::Unreachable(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(LlmError::Status {
                status: status.as_u16(),
                body: text.chars().take(ERROR_BODY_CHARS).collect(),
            });
        }
        let is_json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/json"));
        if is_json {
            return self.whole(response, deadline, started, on_delta).await;
        }
        let mut out = Completion::default();
        let mut events = response.bytes_stream().eventsource();
        loop {
            let limit = if out.first_token.is_none() {
                first_deadline
            } else {
                deadline
            };
            let next = timeout_at(limit, events.next()).await.map_err(|_| {
                if out.first_token.is_none() {
                    LlmError::FirstTokenTimeout(self.config.first_token_timeout)
                } else {
                    LlmError::Timeout(self.config.timeout)
                }
            })?;
            let Some(event) = next else {
                break; // the stream ended without [DONE]: what came is the answer
            };
            let event = event.map_err(|e| LlmError::Malformed(e.to_string()))?;
            let data = event.data.trim();
            if data == "[DONE]" {
                break;
            }
            if data.is_empty() {
                continue;
            }
            let chunk: Value =
                serde_json::from_str(data).map_err(|e| LlmError::Malformed(e.to_string()))?;
            if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
                return Err(LlmError::Malformed(format!("error in the stream: {error}")));
            }
            if let Some(delta) = chunk["choices"][0]["delta"]["content"].as_str() {
                if !delta.is_empty() {
                    out.first_token.get_or_insert_with(|| started.elapsed());
                    out.text.push_str(delta);
                    on_delta(delta);
                }
            }
            read_usage(&chunk, &mut out);
        }
        Ok(out)
    }

    /// A backend that ignored `stream` and answered one JSON body.
    async fn whole(
        &self,
        response: reqwest::Response,
        deadline: tokio::time::Instant,
        started: Instant,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Completion, LlmError> {
        let body: Value = timeout_at(deadline, response.json())
            .await
            .map_err(|_| LlmError::Timeout(self.config.timeout))?
            .map_err(|e| LlmError::Malformed(e.to_string()))?;
        let text = body["choices"][0]["message"]["content"]
            .as_str()
            .ok_or_else(|| LlmError::Malformed("no choices[0].message.content".into()))?
            .to_string();
        let mut out = Completion {
            first_token: Some(started.elapsed()),
            ..Completion::default()
        };
        on_delta(&text);
        out.text = text;
        read_usage(&body, &mut out);
        Ok(out)
    }
}

fn read_usage(chunk: &Value, out: &mut Completion) {
    if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
        out.prompt_tokens = usage["prompt_tokens"].as_u64().or(out.prompt_tokens);
        out.completion_tokens = usage["completion_tokens"]
            .as_u64()
            .or(out.completion_tokens);
    }
}

/// `{base}/chat/completions` (a URL already naming the endpoint is kept).
fn chat_endpoint(base: &str) -> Result<reqwest::Url, LlmError> {
    let base = base.trim().trim_end_matches('/');
    let full = if base.ends_with("/chat/completions") {
        base.to_string()
    } else {
        format!("{base}/chat/completions")
    };
    let url = reqwest::Url::parse(&full).map_err(|e| LlmError::Url(format!("{base}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(LlmError::Url(format!(
            "{base}: must be http:// or https://"
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_the_chat_completions_path_below_the_base() {
        for (base, want) in [
            (
                "http://127.0.0.1:11434/v1",
                "http://127.0.0.1:11434/v1/chat/completions",
            ),
            (
                "https://api.deepseek.com/v1/",
                "https://api.deepseek.com/v1/chat/completions",
            ),
            (
                "http://gpu:8000/v1/chat/completions",
                "http://gpu:8000/v1/chat/completions",
            ),
        ] {
            assert_eq!(chat_endpoint(base).expect(base).as_str(), want);
        }
        assert!(chat_endpoint("ftp://x/v1").is_err());
        assert!(chat_endpoint("not a url").is_err());
    }
}
