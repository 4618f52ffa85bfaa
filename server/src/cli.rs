//! The `kefu` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;

/// Kefu: a self-hosted customer-service chatbot.
#[derive(Debug, Parser)]
#[command(name = "kefu", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (loads the demo knowledge base on first start).
    Serve(ServeArgs),
    /// Manage knowledge bases.
    #[command(subcommand)]
    Kb(KbCommand),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "KEFU_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Do not load the demo knowledge base into an empty default knowledge base.
    #[arg(long, env = "KEFU_NO_DEMO")]
    pub no_demo: bool,
}

#[derive(Debug, Subcommand)]
pub enum KbCommand {
    /// Import FAQ files (.csv .json .yaml) and documents (.md .html .txt); directories recursively.
    Import {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long, default_value = kefu_kb::DEFAULT_KB)]
        kb: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask questions; prints the band and the best hits for each TEXT.
    Query {
        #[arg(long, default_value = kefu_kb::DEFAULT_KB)]
        kb: String,
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        /// Only entries with any of these tags (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// One JSON object per TEXT, one per line.
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        texts: Vec<String>,
    },
    /// List knowledge bases with their entry counts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one knowledge base's counts and thresholds.
    Stats {
        #[arg(long, default_value = kefu_kb::DEFAULT_KB)]
        kb: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a knowledge base and everything in it.
    Delete { name: String },
    /// Set a knowledge base's thresholds (omitted values return to the model defaults).
    Thresholds {
        #[arg(long, default_value = kefu_kb::DEFAULT_KB)]
        kb: String,
        #[arg(long)]
        answer: Option<f32>,
        #[arg(long)]
        suggest: Option<f32>,
        #[arg(long)]
        margin: Option<f32>,
    },
}
