//! The rules in force while serving, and the file they come from: read, checked and replaced from
//! the admin API with the same checks as at start-up. A replacement is written to the file
//! (atomically) and takes effect for the next message; the file is what the next start loads.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Serialize;

use super::rules::{RuleSet, RulesError};

/// The file `kefu serve` keeps the operator's rules in when no `--rules` is given.
pub const DEFAULT_FILE: &str = "rules.toml";

/// Longest rules text accepted from the admin API.
pub const MAX_RULES_BYTES: usize = 256 * 1024;

/// What a rules file starts as when there is none yet.
const STARTER: &str = r#"# Kefu rules (TOML). Rules run before the intent model and the knowledge base, highest priority
# first. The built-in rules (handoff words such as "转人工" / "human", greetings) stay on unless
# builtin_rules = false. Saved from the console, changes apply to the next message.
builtin_rules = true

# [[rules]]
# id = "complaint-handoff"
# priority = 50
# keywords = ["投诉", "complaint"]
# actions = [{ type = "handoff" }]

# [[canned]]
# title = "感谢 / Thanks"
# text = "感谢您的耐心等待。Thank you for your patience."
"#;

/// The rules file as the console shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RulesView {
    /// Where the rules are kept (none: only the built-in rules, nowhere to save).
    pub path: Option<String>,
    /// `toml` or `yaml`.
    pub format: String,
    /// Whether the file exists yet (if not, `text` is a starter).
    pub exists: bool,
    pub text: String,
    #[serde(flatten)]
    pub summary: RulesSummary,
}

/// What a checked rules text holds.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct RulesSummary {
    pub rules: usize,
    pub canned: usize,
    pub intents: usize,
}

impl From<&RuleSet> for RulesSummary {
    fn from(set: &RuleSet) -> Self {
        let (rules, canned, intents) = set.counts();
        Self {
            rules,
            canned,
            intents,
        }
    }
}

/// Why rules could not be replaced.
#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    #[error(transparent)]
    Invalid(#[from] RulesError),
    #[error("the rules are fixed for this server (it was started without a rules file)")]
    NoFile,
    #[error("the rules have at most {MAX_RULES_BYTES} bytes")]
    TooLarge,
    #[error("cannot write the rules file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// The rules in force, swapped whole: a message is triaged by the old set or the new one.
pub struct LiveRules {
    current: ArcSwap<RuleSet>,
    /// The file they are kept in, when there is one to save to.
    file: Option<PathBuf>,
}

impl LiveRules {
    /// Rules that cannot be replaced (tests, `kefu kb ask`).
    pub fn fixed(set: RuleSet) -> Arc<Self> {
        Arc::new(Self {
            current: ArcSwap::from_pointee(set),
            file: None,
        })
    }

    /// The rules of `kefu serve`: the `--rules` file when given (it must exist), else
    /// `<data_dir>/rules.toml` when it exists, else the built-in rules (saved there on the first
    /// replacement).
    pub fn open(explicit: Option<&Path>, data_dir: &Path) -> Result<Arc<Self>, RulesError> {
        let (file, set) = match explicit {
            Some(path) => (path.to_path_buf(), RuleSet::load(path)?),
            None => {
                let path = data_dir.join(DEFAULT_FILE);
                let set = if path.is_file() {
                    RuleSet::load(&path)?
                } else {
                    RuleSet::builtin()
                };
                (path, set)
            }
        };
        Ok(Arc::new(Self {
            current: ArcSwap::from_pointee(set),
            file: Some(file),
        }))
    }

    /// The rules in force now.
    pub fn current(&self) -> Arc<RuleSet> {
        self.current.load_full()
    }

    fn format(&self) -> String {
        match &self.file {
            Some(path) => match kefu_kb::ingest::extension(path).as_str() {
                "yaml" | "yml" => "yaml".to_string(),
                _ => "toml".to_string(),
            },
            None => "toml".to_string(),
        }
    }

    /// The file's text (or a starter when there is none yet) and what is in force.
    pub fn view(&self) -> RulesView {
        let text = self.file_text();
        RulesView {
            path: self.file.as_ref().map(|p| p.display().to_string()),
            format: self.format(),
            exists: text.is_some(),
            text: text.unwrap_or_else(|| STARTER.to_string()),
            summary: RulesSummary::from(self.current().as_ref()),
        }
    }

    /// The rules file's text, when there is one.
    pub fn file_text(&self) -> Option<String> {
        std::fs::read_to_string(self.file.as_ref()?).ok()
    }

    /// Checks `text` as the rules file would be checked at start-up.
    pub fn check(&self, text: &str) -> Result<(RuleSet, RulesSummary), ReplaceError> {
        if text.len() > MAX_RULES_BYTES {
            return Err(ReplaceError::TooLarge);
        }
        let shown = self
            .file
            .as_ref()
            .and_then(|p| p.file_name())
            .map_or_else(|| "rules".to_string(), |n| n.to_string_lossy().to_string());
        let set = RuleSet::parse(text, &self.format(), &shown)?;
        let summary = RulesSummary::from(&set);
        Ok((set, summary))
    }

    /// Checks `text`, writes it to the rules file (a temporary file renamed over it) and puts
    /// it in force.
    pub fn replace(&self, text: &str) -> Result<RulesSummary, ReplaceError> {
        let (set, summary) = self.check(text)?;
        let path = self.file.as_ref().ok_or(ReplaceError::NoFile)?;
        let write = |e: std::io::Error| ReplaceError::Write {
            path: path.display().to_string(),
            source: e,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(write)?;
        }
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        std::fs::write(&tmp, text).map_err(write)?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            write(e)
        })?;
        self.current.store(Arc::new(set));
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_is_checked_saved_and_in_force_at_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let live = LiveRules::open(None, dir.path()).expect("open");
        let view = live.view();
        assert!(!view.exists);
        assert_eq!(view.format, "toml");
        // The starter is itself a valid file.
        live.check(&view.text).expect("starter is valid");
        assert!(live.current().evaluate("退款纠纷").is_none());

        let bad = "[[rules]]\nid = \"x\"\nregex = \"(\"\nactions = [{ type = \"handoff\" }]\n";
        let e = live.replace(bad).expect_err("bad regex").to_string();
        assert!(e.contains("rule `x`: regex"), "{e}");
        assert!(!dir.path().join(DEFAULT_FILE).exists(), "nothing written");

        let good = "[[rules]]\nid = \"dispute\"\nkeywords = [\"退款纠纷\"]\nactions = [{ type = \"handoff\" }]\n";
        let summary = live.replace(good).expect("replace");
        assert!(summary.rules >= 1);
        let m = live
            .current()
            .evaluate("我有退款纠纷")
            .expect("the new rule matches");
        assert_eq!(m.rule_id, "dispute");
        // The next start loads the saved file.
        let again = LiveRules::open(None, dir.path()).expect("reopen");
        assert!(again.current().evaluate("退款纠纷").is_some());
        assert!(again.view().exists);
        assert!(LiveRules::fixed(RuleSet::builtin())
            .replace(good)
            .is_err_and(|e| matches!(e, ReplaceError::NoFile)));
    }

    #[test]
    fn yaml_files_are_checked_as_yaml() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("rules.yaml");
        std::fs::write(&path, "rules: []\n").expect("write");
        let live = LiveRules::open(Some(&path), dir.path()).expect("open");
        assert_eq!(live.view().format, "yaml");
        assert!(live.check("rules: [").is_err());
        live.replace("canned:\n  - title: Hi\n    text: Hello\n")
            .expect("yaml replace");
        assert!(live.current().canned().iter().any(|c| c.title == "Hi"));
    }
}
