//! Training the bot on past chats, shared by `kefu train` and the admin API: chat history read
//! from a file's bytes and stored, and FAQ proposals mined from it into the review queue (the
//! queue itself is `kefu_kb::train::review`), and the intent model versions (`intents`).

pub mod intents;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kefu_kb::intent::EmbeddingCache;
use kefu_kb::train::{history, mine, review, HistoryConversation, MineConfig};
use kefu_kb::{KbError, Knowledge};
use serde::Serialize;

/// What importing one history file did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HistoryReport {
    pub source: String,
    #[schema(value_type = Object)]
    pub report: history::HistoryImport,
    /// Records skipped, each with its line and why (the first 20).
    pub skipped: Vec<String>,
    pub skipped_count: usize,
}

/// What a mining run did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MineReport {
    pub conversations: usize,
    pub pairs: usize,
    pub clusters: usize,
    #[schema(value_type = Object)]
    pub queue: review::QueueReport,
}

/// How mining groups questions.
#[derive(Debug, Clone, Copy)]
pub struct MineSettings {
    /// Questions asked at least this often are proposed.
    pub min_support: usize,
    /// Cosine similarity at which questions count as the same.
    pub similarity: f32,
}

impl MineSettings {
    /// Refuses settings that cannot work.
    pub fn check(&self) -> Result<(), KbError> {
        if !(0.0..=1.0).contains(&self.similarity) || !(1..=1000).contains(&self.min_support) {
            return Err(KbError::InvalidInput(
                "similarity must be between 0 and 1 and min_support 1-1000".into(),
            ));
        }
        Ok(())
    }
}

impl Default for MineSettings {
    fn default() -> Self {
        Self {
            min_support: 2,
            similarity: 0.72,
        }
    }
}

/// The training service.
#[derive(Clone)]
pub struct Training {
    knowledge: Arc<Knowledge>,
    /// The embedding cache shared with intent training.
    cache_path: PathBuf,
    /// Intent model versions: training them, which one is active.
    intents: intents::IntentTrainer,
}

impl Training {
    /// Training over `knowledge`; fine-tuned intent encoders start from the stock model in
    /// `model_dir`; history, caches and models live in `data_dir`.
    pub fn new(knowledge: Arc<Knowledge>, model_dir: &Path, data_dir: &Path) -> Self {
        Self {
            intents: intents::IntentTrainer::new(
                Arc::clone(knowledge.embedder()),
                model_dir,
                data_dir,
                kefu_kb::intent::Mirror::new(
                    kefu_kb::intent::Registry::new(data_dir),
                    knowledge.store(),
                ),
            ),
            knowledge,
            cache_path: cache_path(data_dir),
        }
    }

    /// The intent models trained here; a running server follows the active one within seconds
    /// of a change.
    pub fn intents(&self) -> &kefu_kb::intent::Registry {
        self.intents.registry()
    }

    /// Trains intent model versions.
    pub fn intent_trainer(&self) -> &intents::IntentTrainer {
        &self.intents
    }

    /// Parses a history file's bytes (`.jsonl`/`.json`/`.ndjson` or `.csv`, by `name`) and stores
    /// its conversations under `name` (re-importing is idempotent; bad records are skipped and
    /// reported).
    pub async fn import_history(&self, name: &str, bytes: &[u8]) -> Result<HistoryReport, KbError> {
        let parsed = parse_history(name, bytes)?;
        self.store_history(name, &parsed.conversations, &parsed.skipped)
            .await
    }

    /// Stores conversations under `source`.
    pub async fn store_history(
        &self,
        source: &str,
        conversations: &[HistoryConversation],
        skipped: &[kefu_kb::intent::BadRecord],
    ) -> Result<HistoryReport, KbError> {
        let report = history::store(self.knowledge.store(), source, conversations).await?;
        Ok(HistoryReport {
            source: source.to_string(),
            report,
            skipped: skipped.iter().take(20).map(|b| b.to_string()).collect(),
            skipped_count: skipped.len(),
        })
    }

    /// Mines question → agent-answer pairs from the stored history, clusters near-duplicates and
    /// queues FAQ proposals that `kb` does not answer yet. `progress` counts texts embedded.
    pub async fn mine(
        &self,
        kb: &str,
        settings: MineSettings,
        progress: &(dyn Fn(usize, usize) + Send + Sync),
    ) -> Result<MineReport, KbError> {
        settings.check()?;
        let k = &self.knowledge;
        let conversations = history::load_all(k.store()).await?;
        if conversations.is_empty() {
            return Err(KbError::InvalidInput(
                "no chat history imported yet: import a history file first".into(),
            ));
        }
        let pairs = mine::extract_pairs(&conversations);
        let cache = EmbeddingCache::open(&self.cache_path).await?;
        let cfg = MineConfig {
            min_support: settings.min_support,
            similarity: settings.similarity,
            ..MineConfig::default()
        };
        let proposals = mine::propose(k.embedder(), &cache, &pairs, &cfg, progress).await;
        cache.close().await;
        let proposals = proposals?;
        let queue = review::enqueue(k.store(), k, kb, &proposals).await?;
        Ok(MineReport {
            conversations: conversations.len(),
            pairs: pairs.len(),
            clusters: proposals.len(),
            queue,
        })
    }
}

/// Where the embedding cache of training lives.
pub fn cache_path(data_dir: &Path) -> PathBuf {
    data_dir.join("embedding-cache.db")
}

/// A history file's conversations, by its name's extension.
pub fn parse_history(name: &str, bytes: &[u8]) -> Result<history::ParsedHistory, KbError> {
    let text = std::str::from_utf8(bytes).map_err(|_| KbError::Parse {
        file: name.to_string(),
        line: 0,
        message: "not UTF-8 text".into(),
    })?;
    let text = text.trim_start_matches('\u{feff}');
    match kefu_kb::ingest::extension(Path::new(name)).as_str() {
        "jsonl" | "json" | "ndjson" => Ok(history::parse_jsonl(text, name)),
        "csv" => history::parse_csv(text, name).map_err(|b| KbError::Parse {
            file: name.to_string(),
            line: 0,
            message: b.to_string(),
        }),
        _ => Err(KbError::UnsupportedFile(format!(
            "{name}: chat history must be .jsonl or .csv"
        ))),
    }
}
