//! Global configuration shared by every command: where data and models live and which model runs.
//! Every setting is a command-line option that also reads a `KEFU_*` environment variable; an
//! optional TOML file (`--config FILE` or `KEFU_CONFIG`) supplies defaults for the same settings:
//! command line > environment > file > built-in. The options declared with clap are the one list of
//! settings — a file key is the option's environment variable without `KEFU_`, in lower case.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use clap::Args;

/// Options every `kefu` command accepts.
///
/// `config` is read before parsing (see `with_file_defaults`); it is declared here for `--help`.
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
    /// Database of conversations and, when it is PostgreSQL, of the knowledge bases and training
    /// data too: `postgres://…` to share one database between several servers; default: SQLite
    /// in the data directory (`conversations.db`, knowledge in `kefu.db`).
    #[arg(long, global = true, env = "KEFU_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Qdrant's gRPC endpoint (e.g. `http://qdrant:6334`): knowledge vectors are searched there,
    /// one collection per knowledge base and encoder, instead of in each process's memory. The
    /// knowledge store stays the source of truth (`kefu kb reindex` rebuilds the collections).
    #[arg(long, global = true, env = "KEFU_QDRANT_URL")]
    pub qdrant_url: Option<String>,
    /// API key for Qdrant, when it requires one.
    #[arg(
        long,
        global = true,
        env = "KEFU_QDRANT_API_KEY",
        hide_env_values = true
    )]
    pub qdrant_api_key: Option<String>,
    /// Prefix of Kefu's Qdrant collection names (`<prefix>_kb<id>_<model>`), so that several
    /// deployments can share one Qdrant.
    #[arg(long, global = true, env = "KEFU_QDRANT_PREFIX", default_value = kefu_kb::index::qdrant::DEFAULT_PREFIX)]
    pub qdrant_prefix: String,
    /// Directory of the files visitors and agents send (default: `attachments` in the data
    /// directory). Servers sharing one database must share it too (a network mount), or keep
    /// attachments in a bucket (`--attachments-s3-bucket`).
    #[arg(long, global = true, env = "KEFU_ATTACHMENTS_DIR")]
    pub attachments_dir: Option<PathBuf>,
    /// Keep attachments in this S3-compatible bucket instead of a directory (AWS S3, MinIO,
    /// Cloudflare R2, Alibaba OSS, …; with the endpoint and keys below).
    #[arg(long, global = true, env = "KEFU_ATTACHMENTS_S3_BUCKET", requires_all = ["attachments_s3_endpoint", "attachments_s3_access_key_id", "attachments_s3_secret_access_key"])]
    pub attachments_s3_bucket: Option<String>,
    /// The bucket's endpoint, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://minio:9000`
    /// (path-style requests).
    #[arg(long, global = true, env = "KEFU_ATTACHMENTS_S3_ENDPOINT")]
    pub attachments_s3_endpoint: Option<String>,
    #[arg(
        long,
        global = true,
        env = "KEFU_ATTACHMENTS_S3_REGION",
        default_value = "us-east-1"
    )]
    pub attachments_s3_region: String,
    #[arg(long, global = true, env = "KEFU_ATTACHMENTS_S3_ACCESS_KEY_ID")]
    pub attachments_s3_access_key_id: Option<String>,
    #[arg(
        long,
        global = true,
        env = "KEFU_ATTACHMENTS_S3_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub attachments_s3_secret_access_key: Option<String>,
    /// Key prefix of Kefu's objects in the bucket.
    #[arg(
        long,
        global = true,
        env = "KEFU_ATTACHMENTS_S3_PREFIX",
        default_value = "attachments"
    )]
    pub attachments_s3_prefix: String,
}

impl Config {
    /// Where attachments' files are kept: the bucket when one is named, else the directory.
    pub fn attachment_files(&self) -> anyhow::Result<crate::attachments::AttachmentFiles> {
        use crate::attachments::{AttachmentFiles, BucketSettings};
        let Some(bucket) = &self.attachments_s3_bucket else {
            return Ok(AttachmentFiles::new(
                self.attachments_dir
                    .clone()
                    .unwrap_or_else(|| self.data_dir.join("attachments")),
            ));
        };
        let settings = BucketSettings {
            endpoint: self.attachments_s3_endpoint.clone().unwrap_or_default(),
            bucket: bucket.clone(),
            region: self.attachments_s3_region.clone(),
            access_key_id: self
                .attachments_s3_access_key_id
                .clone()
                .unwrap_or_default(),
            secret_access_key: self
                .attachments_s3_secret_access_key
                .clone()
                .unwrap_or_default(),
            prefix: self.attachments_s3_prefix.clone(),
        };
        AttachmentFiles::bucket(&settings).map_err(anyhow::Error::msg)
    }

    /// The PostgreSQL database shared by a cluster, when `--database-url` names one.
    pub fn shared_database_url(&self) -> Option<&str> {
        self.database_url
            .as_deref()
            .filter(|url| kefu_kb::store::is_postgres(url))
    }

    /// Opens the knowledge store: the shared PostgreSQL database (`shared_database_url`), else
    /// the SQLite file `kefu.db` in the data directory.
    pub async fn knowledge_store(&self) -> Result<kefu_kb::store::KbStore, kefu_kb::KbError> {
        match self.shared_database_url() {
            Some(url) => kefu_kb::store::KbStore::connect(url).await,
            None => kefu_kb::store::KbStore::open(&self.data_dir.join("kefu.db")).await,
        }
    }

    /// The outside vector index, when `--qdrant-url` names one (connected and answering).
    pub async fn vector_index(
        &self,
    ) -> Result<Option<std::sync::Arc<dyn kefu_kb::index::VectorIndex>>, kefu_kb::KbError> {
        let Some(url) = &self.qdrant_url else {
            return Ok(None);
        };
        let index = kefu_kb::index::qdrant::QdrantIndex::connect(
            url,
            self.qdrant_api_key.as_deref().filter(|k| !k.is_empty()),
            &self.qdrant_prefix,
        )
        .await?;
        Ok(Some(std::sync::Arc::new(index)))
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

/// A settings file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("config {path}: unknown setting `{key}`")]
    UnknownSetting { path: PathBuf, key: String },
    #[error("config {path}: `{key}` must be a string, number, boolean or a list of them")]
    BadValue { path: PathBuf, key: String },
}

/// `cmd` with the settings of the file named by `--config FILE` / `--config=FILE` in `args` (or by
/// `KEFU_CONFIG`) as the defaults of the options they name, so that the command line and the
/// environment still win. A key no option reads from the environment is an error.
pub fn with_file_defaults(
    cmd: clap::Command,
    args: &[String],
) -> Result<clap::Command, ConfigError> {
    let Some(path) = config_path(args) else {
        return Ok(cmd);
    };
    let mut cmd = cmd;
    for (key, values) in read_settings(&path)? {
        let env = format!("KEFU_{}", key.to_ascii_uppercase().replace('-', "_"));
        let mut found = false;
        cmd = set_defaults(cmd, &env, &values, &mut found);
        if !found {
            return Err(ConfigError::UnknownSetting { path, key });
        }
    }
    Ok(cmd)
}

/// The settings file's path: the command line first, then `KEFU_CONFIG`.
fn config_path(args: &[String]) -> Option<PathBuf> {
    let from_args = args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--config=").map(str::to_string).or_else(|| {
            (a == "--config")
                .then(|| args.get(i + 1).cloned())
                .flatten()
        })
    });
    from_args
        .or_else(|| std::env::var("KEFU_CONFIG").ok())
        .map(PathBuf::from)
}

/// The file's settings as option values (a list gives several).
fn read_settings(path: &Path) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let table: toml::Table = text.parse().map_err(|source| ConfigError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    table
        .into_iter()
        .map(|(key, value)| {
            let values = match value {
                toml::Value::Array(items) => items.into_iter().map(scalar).collect(),
                other => scalar(other).map(|v| vec![v]),
            };
            match values {
                Some(values) => Ok((key, values)),
                None => Err(ConfigError::BadValue {
                    path: path.to_path_buf(),
                    key,
                }),
            }
        })
        .collect()
}

fn scalar(value: toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Sets `values` as the default of every option in `cmd` and its subcommands that reads `env`.
fn set_defaults(
    mut cmd: clap::Command,
    env: &str,
    values: &[String],
    found: &mut bool,
) -> clap::Command {
    let ids: Vec<clap::Id> = cmd
        .get_arguments()
        .filter(|a| a.get_env() == Some(OsStr::new(env)))
        .map(|a| a.get_id().clone())
        .collect();
    for id in ids {
        *found = true;
        cmd = cmd.mut_arg(id, |a| a.default_values(values.to_vec()));
    }
    let subcommands: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in subcommands {
        cmd = cmd.mut_subcommand(name, |s| set_defaults(s, env, values, found));
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    use crate::cli::{Cli, Command};

    fn load(file: &str, args: &[&str]) -> Result<Cli, ConfigError> {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("kefu.toml");
        std::fs::write(&path, file).expect("write");
        let mut argv: Vec<String> = vec!["kefu".into(), "--config".into()];
        argv.push(path.display().to_string());
        argv.extend(args.iter().map(|a| a.to_string()));
        let cmd = with_file_defaults(Cli::command(), &argv)?;
        Ok(Cli::from_arg_matches(&cmd.try_get_matches_from(&argv).expect("parse")).expect("cli"))
    }

    #[test]
    fn file_settings_are_defaults_below_the_command_line() {
        let file = "data_dir = \"/srv/kefu\"\nlisten = \"0.0.0.0:9000\"\nauto_assign = true\n\
                    public_url = [\"https://a.example\", \"https://b.example\"]\n\
                    drain_timeout = \"3s\"\n";
        let cli = load(file, &["serve", "--listen", "127.0.0.1:7000"]).expect("load");
        assert_eq!(cli.config.data_dir, PathBuf::from("/srv/kefu"));
        let Command::Serve(serve) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(serve.listen.to_string(), "127.0.0.1:7000");
        assert!(serve.auto_assign);
        assert_eq!(
            serve.public_urls,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(serve.drain_timeout, std::time::Duration::from_secs(3));
    }

    #[test]
    fn unknown_and_unusable_settings_are_refused() {
        assert!(matches!(
            load("colour = \"blue\"\n", &["kb", "list"]),
            Err(ConfigError::UnknownSetting { key, .. }) if key == "colour"
        ));
        assert!(matches!(
            load("[listen]\nport = 1\n", &["kb", "list"]),
            Err(ConfigError::BadValue { key, .. }) if key == "listen"
        ));
        assert!(matches!(
            load("listen = \n", &["kb", "list"]),
            Err(ConfigError::Parse { .. })
        ));
    }
}
