//! The `kefu` server library: configuration, CLI, HTTP/WebSocket API, conversations, triage,
//! handoff, storage and the commands behind them.

pub mod accounts;
pub mod analytics;
pub mod answer_eval;
pub mod attachments;
pub mod channels;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod conversation;
pub mod handoff;
pub mod hours;
pub mod http;
pub mod jobs;
pub mod lang;
pub mod llm;
pub mod privacy;
pub mod shared_settings;
pub mod state;
pub mod store;
pub mod training;
pub mod triage;
pub mod webhooks;
