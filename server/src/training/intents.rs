//! Training an intent model version, shared by `kefu intent train` and the admin API's training
//! job: the optional encoder fine-tuning, the head, saving and activating the version, and the
//! evaluation on a test file kept beside the version (`eval.json`) for the console.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kefu_kb::embed::concat::ConcatEmbedder;
use kefu_kb::embed::{load_batching, BatchingEmbedder};
use kefu_kb::finetune::FineTuneConfig;
use kefu_kb::intent::metrics::Metrics;
use kefu_kb::intent::{self, EmbeddingCache, Event, IntentModel, Mirror, Registry, TrainConfig};
use kefu_kb::{Embedder, KbError};
use serde::{Deserialize, Serialize};

/// How to train one version.
#[derive(Debug, Clone, Default)]
pub struct IntentSettings {
    pub head: TrainConfig,
    /// Calibrate the out-of-scope threshold on this file instead of out-of-fold predictions.
    pub validation: Option<PathBuf>,
    /// Fine-tune the encoder's top layers first.
    pub fine_tune: Option<FineTuneConfig>,
    /// A second stock encoder whose vectors the head reads beside the main encoder's
    /// (`--also-encoder`; see `kefu_kb::embed::concat`).
    pub also_encoder: Option<String>,
    /// Activate the new version at once (the first version always is).
    pub activate: bool,
    /// Evaluate the new version on this labelled file and keep the result with it.
    pub test: Option<PathBuf>,
}

/// The fine-tuned encoder trained with a version.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FineTuneReport {
    pub encoder: String,
    pub layers: usize,
    #[schema(value_type = Object)]
    pub method: kefu_kb::finetune::Method,
    pub seconds: f64,
}

/// A version's evaluation on a labelled test file.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IntentEval {
    /// The test file's name.
    pub data: String,
    #[schema(value_type = Object)]
    pub metrics: Metrics,
    /// The same metrics per language (`zh`, `en`) present in the file.
    #[schema(value_type = Object)]
    pub by_language: BTreeMap<String, Metrics>,
}

/// What training one version did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IntentTrainReport {
    pub version: String,
    pub active: bool,
    pub intents: usize,
    pub train_examples: usize,
    pub oos_examples: usize,
    /// Whether the head has an output trained on the `oos` examples (`--oos-class`, and there
    /// were some).
    pub oos_class: bool,
    /// The second encoder the head reads beside the main one (`--also-encoder`), if any.
    pub also_encoder: Option<String>,
    /// How many records were skipped.
    pub skipped: usize,
    /// The first 20 skipped records, each with its line and why.
    pub skipped_records: Vec<String>,
    pub threshold: f32,
    /// How the threshold was chosen.
    pub calibration_method: String,
    pub train_seconds: f64,
    /// Metrics on the calibration predictions at the chosen threshold.
    #[schema(value_type = Object)]
    pub calibration: Metrics,
    pub data_hash: String,
    pub fine_tune: Option<FineTuneReport>,
    pub eval: Option<IntentEval>,
}

/// Trains intent model versions into the registry.
#[derive(Clone)]
pub struct IntentTrainer {
    /// The running model (heads without fine-tuning classify its vectors).
    embedder: Arc<dyn Embedder>,
    /// The stock model fine-tuning starts from, and where it is installed.
    base_model: String,
    model_dir: PathBuf,
    registry: Registry,
    /// The shared copy of the registry, when knowledge lives in PostgreSQL.
    mirror: Option<Mirror>,
    cache_path: PathBuf,
    /// Labelled files uploaded through the admin API, kept (a version names its data file).
    uploads: PathBuf,
}

const EVAL_FILE: &str = "eval.json";

/// Makes `version` the active model of `registry`, and of every node when `mirror` shares it
/// (pulled first, the new state published after).
pub async fn activate(
    registry: &Registry,
    mirror: Option<&Mirror>,
    version: &str,
) -> Result<(), KbError> {
    if let Some(m) = mirror {
        m.pull().await?;
    }
    registry.activate(version)?;
    if let Some(m) = mirror {
        m.push_state().await?;
    }
    Ok(())
}

/// Re-activates the version active before the current one (see `activate` for `mirror`).
pub async fn rollback(
    registry: &Registry,
    mirror: Option<&Mirror>,
) -> Result<Option<String>, KbError> {
    if let Some(m) = mirror {
        m.pull().await?;
    }
    let active = registry.rollback()?;
    if let Some(m) = mirror {
        m.push_state().await?;
    }
    Ok(active)
}

impl IntentTrainer {
    /// A trainer saving into `data_dir`'s registry, published through `mirror` when the
    /// registry is shared (see `shared_registry`).
    pub fn new(
        embedder: Arc<dyn Embedder>,
        model_dir: &Path,
        data_dir: &Path,
        mirror: Option<Mirror>,
    ) -> Self {
        let registry = Registry::new(data_dir);
        Self {
            mirror,
            base_model: kefu_kb::embed::base_model(embedder.model_name()).to_string(),
            embedder,
            model_dir: model_dir.to_path_buf(),
            registry,
            cache_path: super::cache_path(data_dir),
            uploads: data_dir.join("intent-data"),
        }
    }

    /// Refuses a labelled file that is not JSONL or CSV, by its name.
    pub fn check_data_name(name: &str) -> Result<(), KbError> {
        match kefu_kb::ingest::extension(Path::new(name)).as_str() {
            "jsonl" | "json" | "ndjson" | "csv" => Ok(()),
            _ => Err(KbError::UnsupportedFile(format!(
                "{name}: labelled utterances must be .jsonl or .csv"
            ))),
        }
    }

    /// Keeps an uploaded labelled file under the data directory and returns its path
    /// (`<unix ms>-<name>`, so a version's data file is never overwritten).
    pub fn keep_upload(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, KbError> {
        Self::check_data_name(name)?;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| KbError::Io { path, source }
        };
        std::fs::create_dir_all(&self.uploads).map_err(io(&self.uploads))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let mut path = self.uploads.join(format!("{now}-{name}"));
        let mut n = 1;
        while path.exists() {
            n += 1;
            path = self.uploads.join(format!("{now}-{n}-{name}"));
        }
        std::fs::write(&path, bytes).map_err(io(&path))?;
        Ok(path)
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The shared copy of the registry, if any.
    pub fn mirror(&self) -> Option<&Mirror> {
        self.mirror.as_ref()
    }

    /// Brings the local registry up to the shared one (nothing to do without one).
    pub async fn pull(&self) -> Result<(), KbError> {
        if let Some(m) = &self.mirror {
            m.pull().await?;
        }
        Ok(())
    }

    /// Makes `version` the active model, on every node when the registry is shared.
    pub async fn activate(&self, version: &str) -> Result<(), KbError> {
        activate(&self.registry, self.mirror.as_ref(), version).await
    }

    /// Re-activates the version active before the current one (see `Registry::rollback`).
    pub async fn rollback(&self) -> Result<Option<String>, KbError> {
        rollback(&self.registry, self.mirror.as_ref()).await
    }

    /// Loads the stock model (fine-tuning trains a copy of its top layers).
    pub async fn load_stock(&self) -> Result<BatchingEmbedder, KbError> {
        load_stock(&self.base_model, &self.model_dir).await
    }

    /// The second encoder `name` asks for: a stock model other than the main one.
    async fn load_also(&self, name: &str) -> Result<Arc<dyn Embedder>, KbError> {
        let model = kefu_kb::embed::ModelName::parse(name)?;
        if model.as_str() == self.base_model {
            return Err(KbError::InvalidInput(format!(
                "{name} is already the main encoder; --also-encoder names a different one"
            )));
        }
        let dir = self.model_dir.clone();
        tokio::task::spawn_blocking(move || kefu_kb::load_embedder(model.as_str(), &dir))
            .await
            .map_err(|e| KbError::InvalidInput(format!("loading {name}: {e}")))?
    }

    /// Trains a version on `data` (JSONL/CSV `text`, `intent`; `oos` marks out-of-scope
    /// examples), saves it, activates it when asked (or when it is the first), and evaluates it
    /// on `settings.test`. `observer` hears every progress event.
    pub async fn train(
        &self,
        data: &Path,
        settings: &IntentSettings,
        observer: intent::Observer<'_>,
    ) -> Result<IntentTrainReport, KbError> {
        let tune_started = std::time::Instant::now();
        let tuned = match &settings.fine_tune {
            Some(cfg) => {
                let stock = self.load_stock().await?;
                let delta = tokio::task::block_in_place(|| {
                    intent::fine_tune_encoder(&stock, data, cfg, observer)
                })?;
                let encoder: Arc<dyn Embedder> = Arc::new(stock.with_delta(&delta)?);
                Some((encoder, delta))
            }
            None => None,
        };
        let tune_seconds = tune_started.elapsed().as_secs_f64();
        let main = tuned
            .as_ref()
            .map_or_else(|| Arc::clone(&self.embedder), |(e, _)| Arc::clone(e));
        let embedder = match &settings.also_encoder {
            Some(name) => ConcatEmbedder::join(main, vec![self.load_also(name).await?])?,
            None => main,
        };
        let cache = EmbeddingCache::open(&self.cache_path).await?;
        let calibration = if tuned.is_some() {
            intent::Calibration::Holdout
        } else {
            intent::Calibration::OutOfFold
        };
        let outcome = intent::train(
            &embedder,
            &cache,
            data,
            settings.validation.as_deref(),
            calibration,
            &settings.head,
            observer,
        )
        .await;
        let mut outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                cache.close().await;
                return Err(e);
            }
        };
        outcome.model.encoder = tuned.map(|(_, d)| Arc::new(d));
        // Numbered after every version any node saved.
        if let Err(e) = self.pull().await {
            cache.close().await;
            return Err(e);
        }
        let version = self.registry.save(&mut outcome.model)?;
        let active = settings.activate || self.registry.state()?.active.is_none();
        if active {
            self.registry.activate(&version)?;
        }
        let eval = match &settings.test {
            Some(test) => Some(
                self.evaluate(&embedder, &cache, &outcome.model, test, observer)
                    .await,
            ),
            None => None,
        };
        cache.close().await;
        let eval = eval.transpose()?;
        // Published with its evaluation, then activated everywhere.
        if let Some(m) = &self.mirror {
            m.push_version(&version).await?;
            if active {
                m.push_state().await?;
            }
        }
        let meta = &outcome.model.meta;
        Ok(IntentTrainReport {
            active,
            intents: meta.labels.len(),
            train_examples: meta.train_examples,
            oos_examples: meta.oos_examples,
            oos_class: meta.oos_class,
            also_encoder: kefu_kb::embed::concat::extra_parts(&meta.embedding_model)
                .first()
                .map(|s| s.to_string()),
            skipped: outcome.skipped.len(),
            skipped_records: outcome
                .skipped
                .iter()
                .take(20)
                .map(|b| b.to_string())
                .collect(),
            threshold: meta.threshold,
            calibration_method: meta.calibration.clone(),
            train_seconds: meta.train_seconds,
            calibration: outcome.calibration_metrics.clone(),
            data_hash: meta.data_hash.clone(),
            fine_tune: outcome.model.encoder.as_ref().map(|d| FineTuneReport {
                encoder: kefu_kb::embed::concat::parts(&meta.embedding_model)
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                layers: d.layers.len(),
                method: d.meta.method,
                seconds: tune_seconds,
            }),
            eval,
            version,
        })
    }

    /// Evaluates `model` on `test` and keeps the result with the version.
    async fn evaluate(
        &self,
        embedder: &Arc<dyn Embedder>,
        cache: &EmbeddingCache,
        model: &IntentModel,
        test: &Path,
        observer: intent::Observer<'_>,
    ) -> Result<IntentEval, KbError> {
        let e = intent::evaluate(embedder, cache, model, test, observer).await?;
        let eval = IntentEval {
            data: test
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
            metrics: e.metrics,
            by_language: e.by_language,
        };
        let path = self
            .registry
            .dir()
            .join(&model.meta.version)
            .join(EVAL_FILE);
        let json = serde_json::to_vec_pretty(&eval)
            .map_err(|e| KbError::InvalidInput(format!("evaluation: {e}")))?;
        std::fs::write(&path, json).map_err(|source| KbError::Io { path, source })?;
        Ok(eval)
    }

    /// The evaluation kept with `version`, if it was trained with a test file.
    pub fn eval_of(&self, version: &str) -> Option<IntentEval> {
        let raw = std::fs::read(self.registry.dir().join(version).join(EVAL_FILE)).ok()?;
        serde_json::from_slice(&raw).ok()
    }
}

/// Loads the stock model under `model` (a tuned model's name names its stock one) from
/// `model_dir`, off the async threads.
pub async fn load_stock(model: &str, model_dir: &Path) -> Result<BatchingEmbedder, KbError> {
    let (model, dir) = (
        kefu_kb::embed::base_model(model).to_string(),
        model_dir.to_path_buf(),
    );
    tokio::task::spawn_blocking(move || load_batching(&model, &dir, true))
        .await
        .map_err(|e| KbError::InvalidInput(format!("model loading task: {e}")))?
}

/// Turns training events into one fraction 0..1 that only grows: fine-tuning (when asked) takes
/// the first 60%, embedding the next part, the head's epochs (calibration folds, then the final
/// fit) the rest.
pub struct TrainProgress {
    fine_tune: bool,
    /// Epochs expected over every phase (folds + the final fit).
    epochs_total: usize,
    epochs_seen: std::sync::atomic::AtomicUsize,
    best: std::sync::Mutex<f64>,
}

impl TrainProgress {
    pub fn new(settings: &IntentSettings) -> Self {
        let phases = if settings.validation.is_some() {
            1
        } else {
            settings.head.folds.max(1) + 1
        };
        Self {
            fine_tune: settings.fine_tune.is_some(),
            epochs_total: (phases * settings.head.epochs).max(1),
            epochs_seen: Default::default(),
            best: Default::default(),
        }
    }

    /// The fraction done after `event`.
    pub fn observe(&self, event: &Event) -> f64 {
        use kefu_kb::finetune::FineTuneEvent;
        let ratio = |done: usize, total: usize| {
            if total == 0 {
                1.0
            } else {
                (done as f64 / total as f64).min(1.0)
            }
        };
        let (start, width) = if self.fine_tune {
            (0.6, 0.4)
        } else {
            (0.0, 1.0)
        };
        let f = match event {
            Event::FineTune(FineTuneEvent::Frozen { done, total }) => 0.1 * ratio(*done, *total),
            Event::FineTune(FineTuneEvent::Step { step, steps, .. }) => {
                0.1 + 0.5 * ratio(*step, *steps)
            }
            Event::Embedding { done, total } => start + width * 0.4 * ratio(*done, *total),
            Event::Epoch { .. } => {
                let seen = self
                    .epochs_seen
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    + 1;
                start + width * (0.4 + 0.6 * ratio(seen, self.epochs_total))
            }
        };
        let mut best = self.best.lock().unwrap_or_else(|p| p.into_inner());
        *best = best.max(f.min(0.99));
        *best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_kb::intent::EpochStats;

    #[test]
    fn progress_only_grows_and_ends_below_one() {
        let settings = IntentSettings {
            head: TrainConfig {
                epochs: 2,
                folds: 2,
                ..TrainConfig::default()
            },
            ..IntentSettings::default()
        };
        let p = TrainProgress::new(&settings);
        let epoch = || Event::Epoch {
            phase: "final".into(),
            stats: EpochStats {
                epoch: 1,
                epochs: 2,
                loss: 0.5,
                accuracy: 0.5,
            },
        };
        let a = p.observe(&Event::Embedding { done: 5, total: 10 });
        assert!((a - 0.2).abs() < 1e-9, "{a}");
        let b = p.observe(&epoch());
        assert!(b > a);
        // A late embedding event (the test file) never moves it back.
        assert_eq!(p.observe(&Event::Embedding { done: 0, total: 10 }), b);
        for _ in 0..10 {
            p.observe(&epoch());
        }
        assert!((p.observe(&epoch()) - 0.99).abs() < 1e-9);
    }
}
