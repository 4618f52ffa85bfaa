//! Global configuration shared by every command: where data and models live and which model runs.
//! Each option also reads a `KEFU_*` environment variable, and an optional TOML file
//! (`--config FILE` or `KEFU_CONFIG`) supplies defaults: command line > environment > file > built-in.

use std::path::PathBuf;

use clap::Args;

/// Options every `kefu` command accepts.
///
/// `config` is read before parsing (see `apply_config_file`); it is declared here for `--help`.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// TOML file of settings (keys as the long options, e.g. `data_dir = "/var/lib/kefu"`).
    #[arg(long, global = true, env = "KEFU_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for the SQLite database and other state.
    #[arg(long, global = true, env = "KEFU_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Embedding model: multilingual-e5-small (Chinese + English, default) or all-minilm-l6-v2 (English).
    #[arg(long, global = true, env = "KEFU_MODEL", default_value = kefu_kb::DEFAULT_MODEL)]
    pub model: String,
    /// Directory holding the models fetched by scripts/fetch-models.
    #[arg(long, global = true, env = "KEFU_MODEL_DIR", default_value = "models")]
    pub model_dir: PathBuf,
    /// Conversation database: `postgres://…` to share one database between several servers;
    /// default: SQLite in the data directory (`conversations.db`).
    #[arg(long, global = true, env = "KEFU_DATABASE_URL")]
    pub database_url: Option<String>,
}

impl Config {
    /// The SQLite database file of the knowledge base.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("kefu.db")
    }

    /// The conversation database URL.
    pub fn conversation_database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("conversations.db").display()
            )
        })
    }
}

/// Reads the TOML settings file named by `--config FILE`/`--config=FILE` in `args` or by
/// `KEFU_CONFIG`, and exports each setting as its `KEFU_*` environment variable unless that variable
/// is already set, so that clap sees file values as defaults below the command line and environment.
/// Call before any thread is started.
pub fn apply_config_file(args: &[String]) -> Result<(), String> {
    let from_args = args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--config=").map(str::to_string).or_else(|| {
            (a == "--config")
                .then(|| args.get(i + 1).cloned())
                .flatten()
        })
    });
    let Some(path) = from_args.or_else(|| std::env::var("KEFU_CONFIG").ok()) else {
        return Ok(());
    };
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("cannot read config {path}: {e}"))?;
    let table: toml::Table = text.parse().map_err(|e| format!("config {path}: {e}"))?;
    for (key, value) in table {
        let var = format!("KEFU_{}", key.to_ascii_uppercase().replace('-', "_"));
        if !CONFIG_KEYS.contains(&var.as_str()) {
            return Err(format!("config {path}: unknown setting `{key}`"));
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(format!(
                    "config {path}: `{key}` must be a string, number or boolean, not {other}"
                ))
            }
        };
        if std::env::var_os(&var).is_none() {
            std::env::set_var(var, text);
        }
    }
    Ok(())
}

/// Environment variables a config file may set.
const CONFIG_KEYS: &[&str] = &[
    "KEFU_DATA_DIR",
    "KEFU_MODEL",
    "KEFU_MODEL_DIR",
    "KEFU_LISTEN",
    "KEFU_NO_DEMO",
    "KEFU_DATABASE_URL",
    "KEFU_RULES",
    "KEFU_FALLBACKS_BEFORE_HANDOFF",
    "KEFU_AUTO_ASSIGN",
    "KEFU_MAX_CONNECTIONS_PER_IP",
    "KEFU_FRAMES_PER_SECOND",
    "KEFU_SESSIONS_PER_MINUTE",
    "KEFU_INFERENCE_WORKERS",
    "KEFU_REDIS_URL",
    "KEFU_CLUSTER_CHANNEL",
    "KEFU_PUBLIC_URL",
    "KEFU_TRUSTED_PROXIES",
    "KEFU_MAX_CONNECTIONS",
    "KEFU_HEADER_READ_TIMEOUT",
    "KEFU_DRAIN_TIMEOUT",
];
