//! Global configuration shared by every command: where data and models live and which model runs.
//! Each option also reads a `KEFU_*` environment variable.

use std::path::PathBuf;

use clap::Args;

/// Options every `kefu` command accepts.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Directory for the SQLite database and other state.
    #[arg(long, global = true, env = "KEFU_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Embedding model: multilingual-e5-small (Chinese + English, default) or all-minilm-l6-v2 (English).
    #[arg(long, global = true, env = "KEFU_MODEL", default_value = kefu_kb::DEFAULT_MODEL)]
    pub model: String,
    /// Directory holding the models fetched by scripts/fetch-models.
    #[arg(long, global = true, env = "KEFU_MODEL_DIR", default_value = "models")]
    pub model_dir: PathBuf,
}

impl Config {
    /// The SQLite database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("kefu.db")
    }
}
