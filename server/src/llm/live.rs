//! The LLM backend in use, replaceable while serving: from `--llm-url` (fixed: the flags win), or
//! set from the admin API and kept in `<data_dir>/llm.toml` (readable by the server's user only,
//! as it may hold the API key), or none. A replacement is checked (the URL must be an http(s)
//! base) and takes effect for the next answer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use serde::{Deserialize, Serialize};

use super::{LlmArgs, LlmClient, LlmConfig, LlmError};

/// The file the console's LLM settings are kept in.
pub const SETTINGS_FILE: &str = "llm.toml";
/// Longest whole answer a backend may take (a bot turn counts as lost after 15 s).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(14);

/// LLM settings as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedLlm {
    pub url: String,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    pub first_token_timeout_ms: u64,
    pub timeout_ms: u64,
}

impl SavedLlm {
    fn config(&self) -> Result<LlmConfig, LlmSettingsError> {
        if self.model.trim().is_empty() || self.model.chars().count() > 200 {
            return Err(LlmSettingsError::Invalid(
                "the model name needs 1-200 characters".into(),
            ));
        }
        if !(100..=MAX_TIMEOUT.as_millis() as u64).contains(&self.first_token_timeout_ms)
            || !(self.first_token_timeout_ms..=MAX_TIMEOUT.as_millis() as u64)
                .contains(&self.timeout_ms)
        {
            return Err(LlmSettingsError::Invalid(format!(
                "timeouts: first token 100 ms or more, the whole answer at least that and at most {} ms",
                MAX_TIMEOUT.as_millis()
            )));
        }
        Ok(LlmConfig {
            url: self.url.trim().to_string(),
            model: self.model.trim().to_string(),
            api_key: self.api_key.clone().filter(|k| !k.is_empty()),
            first_token_timeout: Duration::from_millis(self.first_token_timeout_ms),
            timeout: Duration::from_millis(self.timeout_ms),
        })
    }
}

/// Where the backend in use comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LlmSource {
    /// `--llm-url` (and the other flags): fixed while the server runs.
    Flags,
    /// Set from the admin API (`<data_dir>/llm.toml`).
    Console,
    None,
}

/// Why LLM settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum LlmSettingsError {
    #[error("{0}")]
    Invalid(String),
    #[error("the LLM backend is set by --llm-url for this server; change the flags (or drop them to manage it here)")]
    Pinned,
    #[error("the LLM settings file {path}: {message}")]
    File { path: String, message: String },
}

impl From<LlmError> for LlmSettingsError {
    fn from(e: LlmError) -> Self {
        LlmSettingsError::Invalid(e.to_string())
    }
}

/// The backend in use, swapped whole: an answer is written by the old one or the new one.
pub struct LiveLlm {
    current: ArcSwapOption<LlmClient>,
    /// Where console settings are saved (none: they cannot be changed, e.g. `kefu kb ask`).
    file: Option<PathBuf>,
    pinned: bool,
}

impl LiveLlm {
    /// A backend that cannot be changed (or none).
    pub fn fixed(client: Option<LlmClient>) -> Arc<Self> {
        Arc::new(Self {
            pinned: client.is_some(),
            current: ArcSwapOption::from(client.map(Arc::new)),
            file: None,
        })
    }

    /// The backend of `kefu serve`: the flags when `--llm-url` is given, else the saved console
    /// settings in `data_dir`, else none.
    pub fn open(args: &LlmArgs, data_dir: &Path) -> Result<Arc<Self>, LlmSettingsError> {
        let file = data_dir.join(SETTINGS_FILE);
        if let Some(client) = args.client()? {
            return Ok(Arc::new(Self {
                current: ArcSwapOption::from_pointee(client),
                file: Some(file),
                pinned: true,
            }));
        }
        let saved = match std::fs::read_to_string(&file) {
            Ok(text) => {
                Some(
                    toml::from_str::<SavedLlm>(&text).map_err(|e| LlmSettingsError::File {
                        path: file.display().to_string(),
                        message: e.to_string(),
                    })?,
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(LlmSettingsError::File {
                    path: file.display().to_string(),
                    message: e.to_string(),
                })
            }
        };
        let client = match saved {
            Some(s) => Some(LlmClient::new(s.config()?)?),
            None => None,
        };
        Ok(Arc::new(Self {
            current: ArcSwapOption::from(client.map(Arc::new)),
            file: Some(file),
            pinned: false,
        }))
    }

    /// The backend in use now, if any.
    pub fn current(&self) -> Option<Arc<LlmClient>> {
        self.current.load_full()
    }

    pub fn source(&self) -> LlmSource {
        match (self.current.load().is_some(), self.pinned) {
            (true, true) => LlmSource::Flags,
            (true, false) => LlmSource::Console,
            (false, _) => LlmSource::None,
        }
    }

    /// Whether the admin API may change it.
    pub fn editable(&self) -> bool {
        !self.pinned && self.file.is_some()
    }

    fn file(&self) -> Result<&Path, LlmSettingsError> {
        match &self.file {
            Some(f) if !self.pinned => Ok(f),
            _ => Err(LlmSettingsError::Pinned),
        }
    }

    /// Checks `saved`, writes it (owner-only permissions) and puts it in use. An `api_key` of
    /// `None` keeps the key in use.
    pub fn replace(&self, mut saved: SavedLlm) -> Result<(), LlmSettingsError> {
        let file = self.file()?;
        if saved.api_key.is_none() {
            saved.api_key = self.current().and_then(|c| c.config().api_key.clone());
        }
        let client = LlmClient::new(saved.config()?)?;
        let text = toml::to_string(&saved).map_err(|e| LlmSettingsError::Invalid(e.to_string()))?;
        write_private(file, &text).map_err(|e| LlmSettingsError::File {
            path: file.display().to_string(),
            message: e.to_string(),
        })?;
        self.current.store(Some(Arc::new(client)));
        Ok(())
    }

    /// The saved settings file's text (none saved, or the flags fix the backend: `None`).
    pub fn saved_text(&self) -> Option<String> {
        std::fs::read_to_string(self.file().ok()?).ok()
    }

    /// Puts a saved settings text in use (`None`: no backend), as another node saved it.
    pub fn apply_text(&self, text: Option<&str>) -> Result<(), LlmSettingsError> {
        match text {
            None => self.clear(),
            Some(text) => {
                let saved = toml::from_str::<SavedLlm>(text)
                    .map_err(|e| LlmSettingsError::Invalid(e.to_string()))?;
                self.replace(saved)
            }
        }
    }

    /// Stops using a backend: answer mode `llm` answers locally again.
    pub fn clear(&self) -> Result<(), LlmSettingsError> {
        let file = self.file()?;
        match std::fs::remove_file(file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(LlmSettingsError::File {
                    path: file.display().to_string(),
                    message: e.to_string(),
                })
            }
        }
        self.current.store(None);
        Ok(())
    }
}

/// Writes `text` to `path` through a temporary file readable by the owner only.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options.open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(url: &str) -> SavedLlm {
        SavedLlm {
            url: url.into(),
            model: "qwen2.5:7b-instruct".into(),
            api_key: Some("sk-test".into()),
            first_token_timeout_ms: 6000,
            timeout_ms: 12000,
        }
    }

    #[test]
    fn console_settings_are_checked_saved_privately_and_used_at_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let args = LlmArgs {
            llm_url: None,
            llm_model: "m".into(),
            llm_api_key: None,
            llm_first_token_timeout: Duration::from_secs(6),
            llm_timeout: Duration::from_secs(12),
        };
        let live = LiveLlm::open(&args, dir.path()).expect("open");
        assert_eq!(live.source(), LlmSource::None);
        assert!(live.replace(saved("ftp://x")).is_err());
        let mut slow = saved("http://127.0.0.1:9/v1");
        slow.timeout_ms = 60_000;
        assert!(matches!(
            live.replace(slow),
            Err(LlmSettingsError::Invalid(_))
        ));
        assert!(live.current().is_none(), "nothing changed");
        live.replace(saved("http://127.0.0.1:9/v1"))
            .expect("replace");
        assert_eq!(live.source(), LlmSource::Console);
        assert_eq!(
            live.current().map(|c| c.model().to_string()).as_deref(),
            Some("qwen2.5:7b-instruct")
        );
        // Saved for the next start, readable by the owner only; the key is kept when not sent.
        let file = dir.path().join(SETTINGS_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&file).expect("file").permissions().mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
        let mut no_key = saved("http://127.0.0.1:9/v1");
        no_key.api_key = None;
        live.replace(no_key).expect("replace");
        let again = LiveLlm::open(&args, dir.path()).expect("reopen");
        assert_eq!(
            again
                .current()
                .and_then(|c| c.config().api_key.clone())
                .as_deref(),
            Some("sk-test")
        );
        again.clear().expect("clear");
        assert_eq!(again.source(), LlmSource::None);
        assert!(!file.exists());
        // The flags win and cannot be changed here.
        let flags = LlmArgs {
            llm_url: Some("http://127.0.0.1:9/v1".into()),
            ..args
        };
        let pinned = LiveLlm::open(&flags, dir.path()).expect("flags");
        assert_eq!(pinned.source(), LlmSource::Flags);
        assert!(matches!(pinned.clear(), Err(LlmSettingsError::Pinned)));
    }
}
