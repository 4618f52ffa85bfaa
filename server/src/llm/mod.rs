//! Optional LLM answers (answer mode `llm`): an OpenAI-compatible chat-completions backend
//! (Ollama, vLLM, llama.cpp's server, LM Studio, DeepSeek, Qwen, OpenAI) writes the reply from the
//! retrieved passages, streamed token by token. `prompt` builds the grounded request, `client`
//! streams it, `guard` checks the answer. Any failure falls back to the local (extractive) answer;
//! the model never decides handoff, rules or webhooks.

pub mod client;
pub mod guard;
pub mod live;
pub mod prompt;

use std::time::Duration;

use serde::Serialize;

pub use client::{Completion, LlmClient};
pub use live::LiveLlm;

/// The backend, from `--llm-url`, `--llm-model`, `--llm-api-key` / `KEFU_LLM_API_KEY`.
#[derive(Debug, Clone, clap::Args)]
pub struct LlmArgs {
    /// OpenAI-compatible API base URL (e.g. http://127.0.0.1:11434/v1 for Ollama); knowledge bases
    /// in answer mode `llm` answer through it. Unset: every knowledge base answers locally.
    #[arg(long, env = "KEFU_LLM_URL")]
    pub llm_url: Option<String>,
    /// The model name the backend serves (e.g. qwen2.5:7b-instruct, deepseek-chat).
    #[arg(long, env = "KEFU_LLM_MODEL", default_value = "qwen2.5:7b-instruct")]
    pub llm_model: String,
    /// Bearer token for the backend, if it needs one.
    #[arg(long, env = "KEFU_LLM_API_KEY", hide_env_values = true)]
    pub llm_api_key: Option<String>,
    /// Longest wait for the first token; the local answer is used after it.
    #[arg(long, env = "KEFU_LLM_FIRST_TOKEN_TIMEOUT", default_value = "6s", value_parser = humantime::parse_duration)]
    pub llm_first_token_timeout: Duration,
    /// Longest whole answer (kept under the 15 s after which a bot turn counts as lost).
    #[arg(long, env = "KEFU_LLM_TIMEOUT", default_value = "12s", value_parser = humantime::parse_duration)]
    pub llm_timeout: Duration,
}

impl LlmArgs {
    /// The client, when a backend is configured.
    pub fn client(&self) -> Result<Option<LlmClient>, LlmError> {
        let Some(url) = &self.llm_url else {
            return Ok(None);
        };
        LlmClient::new(LlmConfig {
            url: url.clone(),
            model: self.llm_model.clone(),
            api_key: self.llm_api_key.clone(),
            first_token_timeout: self.llm_first_token_timeout,
            timeout: self.llm_timeout.min(Duration::from_secs(14)),
        })
        .map(Some)
    }
}

/// Where and how to reach the backend.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    pub url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub first_token_timeout: Duration,
    pub timeout: Duration,
}

/// Why the backend gave no usable answer (logged and metered; the visitor gets the local answer).
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("invalid LLM URL: {0}")]
    Url(String),
    #[error("the LLM backend cannot be reached: {0}")]
    Unreachable(String),
    #[error("the LLM backend answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("no first token within {0:?}")]
    FirstTokenTimeout(Duration),
    #[error("the answer took longer than {0:?}")]
    Timeout(Duration),
    #[error("the LLM stream is malformed: {0}")]
    Malformed(String),
}

impl LlmError {
    /// A short label for metrics and the route trace.
    pub fn label(&self) -> &'static str {
        match self {
            LlmError::Url(_) => "config",
            LlmError::Unreachable(_) => "unreachable",
            LlmError::Status { .. } => "status",
            LlmError::FirstTokenTimeout(_) => "first_token_timeout",
            LlmError::Timeout(_) => "timeout",
            LlmError::Malformed(_) => "malformed",
        }
    }
}

/// What the LLM step did, as the route trace shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LlmTrace {
    pub model: String,
    /// `answered`, `no_answer`, or why the local answer was used instead (`timeout`,
    /// `unreachable`, `rejected_<check>` …).
    pub outcome: String,
    /// The entries the answer cites, in citation order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources_used: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_token_ms: Option<f64>,
    pub total_ms: f64,
}
