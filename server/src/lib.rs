//! The `kefu` server library: configuration, CLI, HTTP API and the commands behind them.

pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod http;
pub mod state;
