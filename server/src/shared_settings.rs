//! The operator's settings files shared by a cluster: the rules file and the console's LLM
//! settings. On PostgreSQL, a change saved through the admin API on any node is published to the
//! `shared_settings` table, and every node applies the newest version — writes its own file and
//! puts it in force, with the same checks as a change made there — within `FOLLOW_EVERY`; a node
//! that starts applies what the table holds. A node whose LLM backend is fixed by `--llm-url`
//! keeps it. On SQLite (one node) nothing is published.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::llm::live::LiveLlm;
use crate::store::{SharedSetting, Store, StoreError};
use crate::triage::LiveRules;

/// How often a node looks for settings saved on other nodes.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(2);

/// The setting names.
const RULES: &str = "rules";
const LLM: &str = "llm";

/// The shared settings of one node.
pub struct SharedSettings {
    store: Store,
    rules: Arc<LiveRules>,
    llm: Arc<LiveLlm>,
    /// Setting name → the version this node has applied or published.
    seen: Mutex<HashMap<String, i64>>,
}

impl SharedSettings {
    /// The settings of a node whose database is shared (PostgreSQL).
    pub fn new(store: Store, rules: Arc<LiveRules>, llm: Arc<LiveLlm>) -> Arc<Self> {
        Arc::new(Self {
            store,
            rules,
            llm,
            seen: Mutex::new(HashMap::new()),
        })
    }

    /// Publishes the rules file as this node saved it.
    pub async fn rules_saved(&self) -> Result<(), StoreError> {
        self.publish(RULES, self.rules.file_text()).await
    }

    /// Publishes the LLM settings as this node saved (or removed) them.
    pub async fn llm_saved(&self) -> Result<(), StoreError> {
        self.publish(LLM, self.llm.saved_text()).await
    }

    async fn publish(&self, name: &str, content: Option<String>) -> Result<(), StoreError> {
        let version = self.store.publish_setting(name, content.as_deref()).await?;
        self.seen_lock().insert(name.to_string(), version);
        Ok(())
    }

    fn seen_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies every setting saved elsewhere since this node last looked; returns how many.
    pub async fn pull(&self) -> Result<usize, StoreError> {
        let mut applied = 0;
        for setting in self.store.shared_settings().await? {
            let newer = self
                .seen_lock()
                .get(&setting.name)
                .is_none_or(|v| setting.version > *v);
            if newer {
                self.apply(&setting).await;
                self.seen_lock()
                    .insert(setting.name.clone(), setting.version);
                applied += 1;
            }
        }
        Ok(applied)
    }

    /// Puts one setting in force here (a text that does not pass this node's checks is logged
    /// and left alone: the node keeps what it had).
    async fn apply(&self, setting: &SharedSetting) {
        let (rules, llm, content) = (
            Arc::clone(&self.rules),
            Arc::clone(&self.llm),
            setting.content.clone(),
        );
        let name = setting.name.clone();
        let outcome = tokio::task::spawn_blocking(move || match name.as_str() {
            RULES => match content {
                Some(text) if rules.file_text().as_deref() != Some(text.as_str()) => rules
                    .replace(&text)
                    .map(|_| true)
                    .map_err(|e| e.to_string()),
                _ => Ok(false),
            },
            LLM if llm.editable() && llm.saved_text() != content => llm
                .apply_text(content.as_deref())
                .map(|_| true)
                .map_err(|e| e.to_string()),
            _ => Ok(false),
        })
        .await;
        match outcome {
            Ok(Ok(true)) => tracing::info!(
                setting = %setting.name,
                version = setting.version,
                "applied a setting saved on another node"
            ),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(
                setting = %setting.name,
                version = setting.version,
                error = %e,
                "a setting saved on another node does not pass this node's checks; kept the old one"
            ),
            Err(e) => tracing::warn!(error = %e, "applying a shared setting failed"),
        }
    }

    /// Applies settings saved on other nodes every `FOLLOW_EVERY` until the task is dropped.
    pub fn follow(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(FOLLOW_EVERY).await;
                if let Err(e) = self.pull().await {
                    tracing::warn!(error = %e, "could not read the shared settings");
                }
            }
        })
    }
}
