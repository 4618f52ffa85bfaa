//! What each `kefu` subcommand does.

pub mod agent;
pub mod ask;
pub mod intent;
pub mod kb;
pub mod kb_eval;
pub mod kb_tune;
pub mod loadtest;
pub mod serve;
pub mod site;
pub mod train;

use std::sync::Arc;

use kefu_kb::Knowledge;

use crate::accounts::Accounts;
use crate::config::Config;
use crate::store::{Store, TokenKind};

/// Loads the configured model and opens the embedded store + index.
pub async fn open_knowledge(config: &Config) -> anyhow::Result<Knowledge> {
    let model = config.model.clone();
    let dir = config.model_dir.clone();
    let embedder =
        tokio::task::spawn_blocking(move || kefu_kb::load_embedder(&model, &dir)).await??;
    Ok(Knowledge::open_embedded(&config.database_path(), Arc::clone(&embedder)).await?)
}

/// Opens (and migrates) the conversation database.
/// The intent model slot of a serving process: models trained with `--fine-tune` load their
/// encoder from the configured model directory.
pub fn intent_slot(config: &Config) -> crate::triage::IntentSlot {
    let (model, dir) = (config.model.clone(), config.model_dir.clone());
    crate::triage::IntentSlot::with_encoders(std::sync::Arc::new(move |delta| {
        kefu_kb::embed::load_tuned(&model, &dir, delta)
    }))
}

pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir)?;
    }
    Ok(Store::connect(&config.conversation_database_url()).await?)
}

/// Opens the conversation database and the account service over it (for CLI commands, which
/// serve no pages of their own).
pub async fn open_accounts(config: &Config) -> anyhow::Result<(Store, Accounts)> {
    let store = open_store(config).await?;
    let accounts = Accounts::new(store.clone(), vec![]);
    Ok((store, accounts))
}

/// `kefu admin-key`: creates an admin API key and prints it once.
pub async fn admin_key(config: &Config, name: &str) -> anyhow::Result<()> {
    let (store, accounts) = open_accounts(config).await?;
    let key = accounts.issue_token(TokenKind::Admin, name, None).await?;
    store.close().await;
    println!("{}", key.token);
    Ok(())
}
