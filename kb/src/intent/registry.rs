//! Versioned intent models on disk: `<data>/intents/vN/` (weights + `meta.json`) and `state.json`
//! naming the active version and the activation history. Every write is a rename, so a reader (the
//! running server) sees the old state or the new one, never half of either.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{KbError, Result};
use crate::files::io;
use crate::intent::model::{read_meta, IntentModel, ModelMeta};

/// The active version and the versions activated before it (oldest first, active last).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveState {
    pub active: Option<String>,
    pub history: Vec<String>,
}

/// The model directory.
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
}

impl Registry {
    /// The registry under `data_dir/intents` (created on first save).
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("intents"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Version numbers present, ascending.
    fn numbers(&self) -> Result<Vec<u32>> {
        let mut v = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if let Some(n) = name.strip_prefix('v').and_then(|n| n.parse::<u32>().ok()) {
                if entry.path().join("meta.json").is_file() {
                    v.push(n);
                }
            }
        }
        v.sort_unstable();
        Ok(v)
    }

    /// Saves `model` as the next version (its `meta.version` is set here) and returns the version.
    pub fn save(&self, model: &mut IntentModel) -> Result<String> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let tmp = self.dir.join(format!(".tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let mut n = self.numbers()?.last().copied().unwrap_or(0) + 1;
        loop {
            let version = format!("v{n}");
            model.meta.version = version.clone();
            model.save(&tmp)?;
            let target = self.dir.join(&version);
            match std::fs::rename(&tmp, &target) {
                Ok(()) => return Ok(version),
                // Another trainer took this number: try the next.
                Err(_) if target.exists() => n += 1,
                Err(e) => return Err(io(&target)(e)),
            }
        }
    }

    /// Metadata of every version, oldest first.
    pub fn list(&self) -> Result<Vec<ModelMeta>> {
        self.numbers()?
            .into_iter()
            .map(|n| read_meta(&self.dir.join(format!("v{n}"))))
            .collect()
    }

    /// The activation state (empty when nothing was ever activated).
    pub fn state(&self) -> Result<ActiveState> {
        let path = self.state_path();
        match std::fs::read(&path) {
            Ok(raw) => serde_json::from_slice(&raw).map_err(|e| KbError::ModelFormat {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ActiveState::default()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Replaces the activation state (written whole, by rename).
    pub fn write_state(&self, state: &ActiveState) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let tmp = self.dir.join(format!(".state-{}.json", std::process::id()));
        let raw = serde_json::to_vec_pretty(state)
            .map_err(|e| KbError::InvalidInput(format!("state: {e}")))?;
        std::fs::write(&tmp, raw).map_err(io(&tmp))?;
        std::fs::rename(&tmp, self.state_path()).map_err(io(&self.state_path()))
    }

    /// Whether version `version` is present.
    pub fn has(&self, version: &str) -> bool {
        is_version_name(version) && self.dir.join(version).join("meta.json").is_file()
    }

    /// A version's files (name, content), for copying it elsewhere.
    pub fn files(&self, version: &str) -> Result<Vec<(String, Vec<u8>)>> {
        if !self.has(version) {
            return Err(KbError::NotFound(format!(
                "no intent model version '{version}'"
            )));
        }
        crate::files::read_files(&self.dir.join(version))
    }

    /// Writes version `version` from its files (copied from elsewhere); a version already present
    /// is left as it is. The files appear at once (written aside, then renamed).
    pub fn install(&self, version: &str, files: &[(String, Vec<u8>)]) -> Result<()> {
        if !is_version_name(version) {
            return Err(KbError::InvalidInput(format!(
                "intent model version '{version}' has an invalid name"
            )));
        }
        crate::files::install(&self.dir, version, files, || self.has(version))
    }

    /// Loads a version (checking it is readable) without activating it.
    pub fn load(&self, version: &str) -> Result<IntentModel> {
        let dir = self.dir.join(version);
        if version.contains(['/', '\\']) || !dir.join("meta.json").is_file() {
            return Err(KbError::NotFound(format!(
                "no intent model version '{version}' (see `kefu intent list`)"
            )));
        }
        IntentModel::load(&dir)
    }

    /// Makes `version` the active model.
    pub fn activate(&self, version: &str) -> Result<()> {
        self.load(version)?;
        let mut state = self.state()?;
        if state.active.as_deref() == Some(version) {
            return Ok(());
        }
        state.history.push(version.to_string());
        state.active = Some(version.to_string());
        self.write_state(&state)
    }

    /// Re-activates the version active before the current one; returns it (None: no model active
    /// any more).
    pub fn rollback(&self) -> Result<Option<String>> {
        let mut state = self.state()?;
        if state.active.is_none() {
            return Err(KbError::InvalidInput("no intent model is active".into()));
        }
        state.history.pop();
        state.active = state.history.last().cloned();
        self.write_state(&state)?;
        Ok(state.active)
    }

    /// The active model, if any.
    pub fn load_active(&self) -> Result<Option<IntentModel>> {
        match self.state()?.active {
            Some(v) => self.load(&v).map(Some),
            None => Ok(None),
        }
    }
}

/// `v` followed by digits: the only version names a registry makes.
fn is_version_name(version: &str) -> bool {
    version
        .strip_prefix('v')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::data::OOS;
    use crate::intent::model::Dense;

    fn model() -> IntentModel {
        let meta = ModelMeta {
            version: String::new(),
            created_at: 0,
            embedding_model: "m".into(),
            dim: 2,
            labels: vec!["退款".into(), "track".into()],
            threshold: 0.5,
            calibration: "test".into(),
            hidden: 0,
            oos_class: false,
            data_file: "d.jsonl".into(),
            data_hash: "h".into(),
            train_examples: 2,
            oos_examples: 0,
            epochs: 1,
            train_seconds: 0.0,
            metrics: None,
            validation_file: None,
        };
        let layer = Dense {
            weight: vec![1.0, 0.0, 0.0, 1.0],
            bias: vec![0.0, 0.0],
            inputs: 2,
            outputs: 2,
        };
        IntentModel::new(meta, vec![layer]).expect("model")
    }

    #[test]
    fn versions_activate_and_roll_back() {
        let tmp = tempfile::tempdir().expect("tmp");
        let reg = Registry::new(tmp.path());
        assert!(reg.load_active().expect("empty").is_none());
        let v1 = reg.save(&mut model()).expect("save");
        let v2 = reg.save(&mut model()).expect("save");
        assert_eq!((v1.as_str(), v2.as_str()), ("v1", "v2"));
        assert!(reg.activate("v9").is_err());
        reg.activate(&v1).expect("activate");
        reg.activate(&v2).expect("activate");
        let active = reg.load_active().expect("load").expect("active");
        assert_eq!(active.meta.version, "v2");
        let p = active.predict(&[0.1, 0.9]);
        assert_eq!(p.intent, "track");
        assert_eq!(reg.rollback().expect("rollback").as_deref(), Some("v1"));
        assert_eq!(reg.rollback().expect("rollback"), None);
        assert!(reg.rollback().is_err());
        assert_eq!(reg.list().expect("list").len(), 2);
        assert!(reg.load("../v1").is_err());
    }

    #[test]
    fn an_out_of_scope_output_is_kept_and_never_predicted() {
        let mut m = model();
        m.meta.oos_class = true;
        // Outputs: 退款, track, and the out-of-scope output, which wins on the third axis.
        let layer = Dense {
            weight: vec![4.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 4.0],
            bias: vec![0.0; 3],
            inputs: 3,
            outputs: 3,
        };
        m.meta.dim = 3;
        assert!(
            IntentModel::new(m.meta.clone(), vec![m.layers[0].clone()]).is_err(),
            "two outputs for two labels plus the out-of-scope one"
        );
        let mut m = IntentModel::new(m.meta.clone(), vec![layer]).expect("model");
        let tmp = tempfile::tempdir().expect("tmp");
        let reg = Registry::new(tmp.path());
        let v1 = reg.save(&mut m).expect("save");
        let loaded = reg.load(&v1).expect("load");
        assert!(loaded.meta.oos_class);
        let p = loaded.predict(&[1.0, 0.0, 0.0]);
        assert_eq!((p.intent.as_str(), p.in_scope), ("退款", true));
        let p = loaded.predict(&[0.0, 0.0, 1.0]);
        assert_eq!(p.intent, OOS, "{p:?}");
        assert!(!p.in_scope && p.confidence < 0.5, "{p:?}");
        assert!(["退款", "track"].contains(&p.top_intent.as_str()), "{p:?}");
    }
}
