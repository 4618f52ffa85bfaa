//! What each `kefu` subcommand does.

pub mod kb;
pub mod serve;

use std::sync::Arc;

use kefu_kb::Knowledge;

use crate::config::Config;

/// Loads the configured model and opens the embedded store + index.
pub async fn open_knowledge(config: &Config) -> anyhow::Result<Knowledge> {
    let model = config.model.clone();
    let dir = config.model_dir.clone();
    let embedder =
        tokio::task::spawn_blocking(move || kefu_kb::load_embedder(&model, &dir)).await??;
    Ok(Knowledge::open_embedded(&config.database_path(), Arc::clone(&embedder)).await?)
}
