//! What each `kefu` subcommand does.

pub mod agent;
pub mod ask;
pub mod intent;
pub mod kb;
pub mod kb_encoder;
pub mod kb_eval;
pub mod kb_tune;
pub mod loadtest;
pub mod privacy;
pub mod serve;
pub mod site;
pub mod train;
pub mod webhook;

use std::sync::Arc;

use kefu_kb::Knowledge;

use crate::accounts::Accounts;
use crate::config::Config;
use crate::store::{Store, TokenKind};

/// Loads the configured model and opens the knowledge store with its vector index: Qdrant when
/// `--qdrant-url` is set, else the exact in-process index loaded from the store.
pub async fn open_knowledge(config: &Config) -> anyhow::Result<Knowledge> {
    let store = config.knowledge_store().await?;
    let embedder = load_model(config, &store).await?;
    let loader = encoder_loader(config, Arc::clone(&embedder), store.clone());
    let knowledge = match config.vector_index().await? {
        Some(index) => Knowledge::with_outside_index(store, Arc::clone(&embedder), index).await?,
        None => Knowledge::with_exact_index(store, Arc::clone(&embedder)).await?,
    };
    Ok(knowledge.with_encoder_loader(loader))
}

/// Builds the fine-tuned retrieval encoders that knowledge bases were switched to (`kefu kb
/// encoder activate`) from `<data_dir>/encoders/` (copied there first from the shared database
/// when `store` is PostgreSQL and another node trained it): a copy of the running model sharing
/// every weight the tuned layers do not replace, or a separate load when that cannot be copied.
pub fn encoder_loader(
    config: &Config,
    running: Arc<dyn kefu_kb::Embedder>,
    store: kefu_kb::store::KbStore,
) -> kefu_kb::knowledge::EncoderLoader {
    let model_dir = config.model_dir.clone();
    let encoders = kefu_kb::embed::encoders_dir(&config.data_dir);
    Arc::new(move |name: &str| {
        let Some((base, id)) = name.split_once(kefu_kb::embed::TUNED_SEPARATOR) else {
            return kefu_kb::load_embedder(name, &model_dir);
        };
        // The loader runs on a blocking thread of the runtime.
        tokio::runtime::Handle::current()
            .block_on(kefu_kb::finetune::shared::fetch(&store, &encoders, id))?;
        let delta = kefu_kb::embed::load_delta(&encoders, name, id)?;
        running
            .tuned(&delta)
            .unwrap_or_else(|| kefu_kb::embed::load_tuned(base, &model_dir, &delta))
    })
}

/// Loads the configured model: a stock one, or a fine-tuned retrieval encoder
/// (`<stock>+ft-<id>`, see `kefu kb encoder`; copied from `store` first when shared).
pub async fn load_model(
    config: &Config,
    store: &kefu_kb::store::KbStore,
) -> anyhow::Result<Arc<dyn kefu_kb::Embedder>> {
    let model = config.model.clone();
    let dir = config.model_dir.clone();
    let encoders = kefu_kb::embed::encoders_dir(&config.data_dir);
    if let Some((_, id)) = model.split_once(kefu_kb::embed::TUNED_SEPARATOR) {
        kefu_kb::finetune::shared::fetch(store, &encoders, id).await?;
    }
    Ok(
        tokio::task::spawn_blocking(move || kefu_kb::embed::load_named(&model, &dir, &encoders))
            .await??,
    )
}

/// The intent model slot of a serving process: a model trained with `--fine-tune` gets its
/// encoder as a copy of `stock` (the running embedder) with the tuned layers swapped in, sharing
/// everything else; an embedder that cannot be copied so loads it from the model directory. A
/// second encoder (`--also-encoder`) is loaded once per process and kept.
pub fn intent_slot(
    config: &Config,
    stock: Arc<dyn kefu_kb::Embedder>,
) -> crate::triage::IntentSlot {
    let model = kefu_kb::embed::base_model(&config.model).to_string();
    let dir = config.model_dir.clone();
    let tuned_dir = dir.clone();
    let loaded = std::sync::Mutex::new(std::collections::HashMap::new());
    crate::triage::IntentSlot::with_encoders(crate::triage::intent::EncoderLoaders {
        tuned: Arc::new(move |delta| {
            stock
                .tuned(delta)
                .unwrap_or_else(|| kefu_kb::embed::load_tuned(&model, &tuned_dir, delta))
        }),
        stock: Arc::new(move |name| {
            let mut loaded = loaded.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = loaded.get(name) {
                return Ok(Arc::clone(e));
            }
            let e = kefu_kb::load_embedder(name, &dir)?;
            loaded.insert(name.to_string(), Arc::clone(&e));
            Ok(e)
        }),
    })
}

/// Opens (and migrates) the conversation database.
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
