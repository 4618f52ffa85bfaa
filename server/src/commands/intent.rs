//! `kefu intent …`: train a versioned intent model, list / activate / roll back versions, predict,
//! and evaluate with an optional HTML report.

use std::sync::Arc;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use kefu_kb::embed::BatchingEmbedder;
use kefu_kb::finetune::{FineTuneConfig, FineTuneEvent, Method};
use kefu_kb::intent::{self, EmbeddingCache, Event, IntentModel, Registry, TrainConfig};
use kefu_kb::Embedder;
use serde_json::json;

use crate::cli::{FineTuneArgs, IntentCommand};
use crate::config::Config;
use crate::training::intents::{IntentSettings, IntentTrainReport, IntentTrainer};

/// The embedding cache shared by intent training, evaluation and mining.
pub fn cache_path(config: &Config) -> std::path::PathBuf {
    crate::training::cache_path(&config.data_dir)
}

async fn load_embedder(config: &Config) -> anyhow::Result<Arc<dyn Embedder>> {
    super::load_model(config, &config.knowledge_store().await?).await
}

/// The intent model registry's shared copy when `--database-url` is PostgreSQL (pulled into
/// `registry` here, so every subcommand sees every node's versions); `None` otherwise.
pub(crate) async fn shared_registry(
    config: &Config,
    registry: &Registry,
) -> anyhow::Result<Option<kefu_kb::intent::Mirror>> {
    if config.shared_database_url().is_none() {
        return Ok(None);
    }
    let store = config.knowledge_store().await?;
    let mirror = kefu_kb::intent::Mirror::new(registry.clone(), &store);
    if let Some(m) = &mirror {
        m.pull().await?;
    }
    Ok(mirror)
}

/// The stock model under the configured one (intent fine-tuning starts from it).
pub(crate) async fn load_stock(config: &Config) -> anyhow::Result<BatchingEmbedder> {
    Ok(crate::training::intents::load_stock(&config.model, &config.model_dir).await?)
}

/// The embedder a model classifies with: its own fine-tuned encoder, or the configured model;
/// joined with the second encoder it was trained with, if any.
async fn embedder_for(config: &Config, model: &IntentModel) -> anyhow::Result<Arc<dyn Embedder>> {
    let main: Arc<dyn Embedder> = match &model.encoder {
        Some(delta) => Arc::new(load_stock(config).await?.with_delta(delta)?),
        None => load_embedder(config).await?,
    };
    let mut extra = Vec::new();
    for name in kefu_kb::embed::concat::extra_parts(&model.meta.embedding_model) {
        let (name, dir) = (name.to_string(), config.model_dir.clone());
        extra
            .push(tokio::task::spawn_blocking(move || kefu_kb::load_embedder(&name, &dir)).await??);
    }
    Ok(kefu_kb::embed::concat::ConcatEmbedder::join(main, extra)?)
}

/// The fine-tuning settings `a` asks for; what it leaves open comes from `defaults`.
pub(crate) fn fine_tune_config(a: &FineTuneArgs, defaults: FineTuneConfig) -> FineTuneConfig {
    FineTuneConfig {
        layers: a.ft_layers,
        method: match a.ft_method.as_str() {
            "lora" => Method::Lora { rank: a.ft_rank },
            _ => Method::Full,
        },
        epochs: a.ft_epochs,
        batch_pairs: a.ft_batch,
        learning_rate: a.ft_lr.unwrap_or(defaults.learning_rate),
        classify_weight: a.ft_classify,
        seed: a.ft_seed,
        oos_negatives: a.ft_negatives.unwrap_or(defaults.oos_negatives),
        ..defaults
    }
}

/// Progress bars for embedding and epochs (hidden when `quiet`).
pub struct Bars {
    _multi: MultiProgress,
    tune: ProgressBar,
    embed: ProgressBar,
    epochs: ProgressBar,
}

impl Bars {
    pub fn new(quiet: bool) -> anyhow::Result<Self> {
        let multi = MultiProgress::new();
        if quiet {
            multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let tune = multi.add(ProgressBar::new(0));
        tune.set_style(
            ProgressStyle::with_template("{prefix:>24} [{bar:30}] {pos}/{len} {msg} (eta {eta})")?
                .progress_chars("=> "),
        );
        let embed = multi.add(ProgressBar::new(0));
        embed.set_style(
            ProgressStyle::with_template(
                "embedding [{bar:30}] {pos}/{len} texts ({per_sec}, eta {eta})",
            )?
            .progress_chars("=> "),
        );
        let epochs = multi.add(ProgressBar::new(0));
        epochs.set_style(
            ProgressStyle::with_template("{prefix:>24} [{bar:30}] epoch {pos}/{len} {msg}")?
                .progress_chars("=> "),
        );
        Ok(Self {
            _multi: multi,
            tune,
            embed,
            epochs,
        })
    }

    pub fn observe(&self, e: Event) {
        match e {
            Event::Embedding { done, total } => {
                self.embed.set_length(total as u64);
                self.embed.set_position(done as u64);
            }
            Event::Epoch { phase, stats } => {
                self.epochs.set_prefix(phase);
                self.epochs.set_length(stats.epochs as u64);
                self.epochs.set_position(stats.epoch as u64);
                self.epochs.set_message(format!(
                    "loss {:.4}  train accuracy {:.2}%",
                    stats.loss,
                    stats.accuracy * 100.0
                ));
            }
            Event::FineTune(FineTuneEvent::Frozen { done, total }) => {
                self.tune.set_prefix("fine-tune: frozen layers");
                self.tune.set_length(total as u64);
                self.tune.set_position(done as u64);
                self.tune.set_message("texts");
            }
            Event::FineTune(FineTuneEvent::Step {
                step,
                steps,
                loss,
                texts_per_second,
            }) => {
                if step == 1 {
                    self.tune.reset_eta();
                }
                self.tune.set_prefix("fine-tune: training");
                self.tune.set_length(steps as u64);
                self.tune.set_position(step as u64);
                self.tune.set_message(format!(
                    "steps  loss {loss:.4}  {texts_per_second:.0} texts/s"
                ));
            }
        }
    }

    pub fn finish(&self) {
        self.tune.finish_and_clear();
        self.embed.finish_and_clear();
        self.epochs.finish_and_clear();
    }
}

fn print_trained(r: &IntentTrainReport) {
    let version = &r.version;
    println!(
        "trained intent model {version}: {} intents from {} examples ({} oos, {} skipped) in {:.1} s",
        r.intents, r.train_examples, r.oos_examples, r.skipped, r.train_seconds
    );
    if let Some(f) = &r.fine_tune {
        println!(
            "fine-tuned encoder {} (top {} layers) in {:.1} s, saved with the model",
            f.encoder, f.layers, f.seconds
        );
    }
    let m = &r.calibration;
    println!(
        "out-of-scope threshold {:.3} ({}); on those predictions: in-scope accuracy {:.2}%, oos recall {:.2}%",
        r.threshold,
        r.calibration_method,
        m.in_scope_accuracy * 100.0,
        m.oos_recall * 100.0
    );
    if let Some(e) = &r.eval {
        println!(
            "on {}: in-scope accuracy {:.2}%, oos recall {:.2}% ({} examples)",
            e.data,
            e.metrics.in_scope_accuracy * 100.0,
            e.metrics.oos_recall * 100.0,
            e.metrics.n
        );
    }
    if r.active {
        println!("{version} is now active (a running server switches to it within seconds)");
    } else {
        println!("activate it with: kefu intent activate {version}");
    }
}

fn print_skipped(skipped: &[intent::BadRecord]) {
    for b in skipped.iter().take(20) {
        eprintln!("skipped {b}");
    }
    if skipped.len() > 20 {
        eprintln!("… and {} more skipped records", skipped.len() - 20);
    }
}

fn model_for(registry: &Registry, version: Option<&str>) -> anyhow::Result<IntentModel> {
    match version {
        Some(v) => Ok(registry.load(v)?),
        None => registry.load_active()?.ok_or_else(|| {
            anyhow::anyhow!(
                "no intent model is active: train one with `kefu intent train --data FILE`"
            )
        }),
    }
}

/// Runs one `intent` subcommand.
pub async fn run(config: &Config, cmd: IntentCommand) -> anyhow::Result<()> {
    let registry = Registry::new(&config.data_dir);
    let mirror = shared_registry(config, &registry).await?;
    match cmd {
        IntentCommand::Train {
            data,
            validation,
            hidden,
            epochs,
            learning_rate,
            weight_decay,
            folds,
            oos_class,
            fine_tune,
            tuning,
            also_encoder,
            activate,
            test,
            json,
        } => {
            let trainer = IntentTrainer::new(
                load_embedder(config).await?,
                &config.model_dir,
                &config.data_dir,
                mirror,
            );
            let settings = IntentSettings {
                head: TrainConfig {
                    hidden,
                    epochs,
                    learning_rate,
                    weight_decay,
                    folds,
                    oos_class,
                    ..TrainConfig::default()
                },
                validation,
                fine_tune: fine_tune.then(|| fine_tune_config(&tuning, FineTuneConfig::default())),
                also_encoder,
                activate,
                test,
            };
            let bars = Bars::new(json)?;
            let report = trainer.train(&data, &settings, &|e| bars.observe(e)).await;
            bars.finish();
            let r = report?;
            for b in &r.skipped_records {
                eprintln!("skipped {b}");
            }
            if r.skipped > r.skipped_records.len() {
                eprintln!(
                    "… and {} more skipped records",
                    r.skipped - r.skipped_records.len()
                );
            }
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                print_trained(&r);
            }
        }
        IntentCommand::List { json } => {
            let active = registry.state()?.active;
            let list = registry.list()?;
            if json {
                let rows: Vec<_> = list
                    .iter()
                    .map(|m| json!({"active": active.as_deref() == Some(m.version.as_str()), "meta": m}))
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else if list.is_empty() {
                println!("no intent models yet: kefu intent train --data FILE");
            } else {
                println!("  version  intents  examples  threshold  in-scope acc  oos recall  data");
                for m in &list {
                    let mark = if active.as_deref() == Some(m.version.as_str()) {
                        "*"
                    } else {
                        " "
                    };
                    let (acc, rec) = m
                        .metrics
                        .as_ref()
                        .map(|x| (x.in_scope_accuracy * 100.0, x.oos_recall * 100.0))
                        .unwrap_or((0.0, 0.0));
                    println!(
                        "{mark} {:<8} {:>7}  {:>8}  {:>9.3}  {:>11.2}%  {:>9.2}%  {} ({})",
                        m.version,
                        m.labels.len(),
                        m.train_examples,
                        m.threshold,
                        acc,
                        rec,
                        m.data_file,
                        &m.data_hash[..m.data_hash.len().min(12)]
                    );
                }
            }
        }
        IntentCommand::Activate { version } => {
            crate::training::intents::activate(&registry, mirror.as_ref(), &version).await?;
            println!("{version} is now active");
        }
        IntentCommand::Rollback => {
            match crate::training::intents::rollback(&registry, mirror.as_ref()).await? {
                Some(v) => println!("rolled back: {v} is active again"),
                None => println!("rolled back: no intent model is active now"),
            }
        }
        IntentCommand::Predict {
            json,
            version,
            texts,
        } => {
            let model = model_for(&registry, version.as_deref())?;
            let embedder = embedder_for(config, &model).await?;
            intent::check_embedder(embedder.as_ref(), &model)?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let vectors = {
                let e = Arc::clone(&embedder);
                let owned: Vec<String> = refs.iter().map(|s| s.to_string()).collect();
                tokio::task::spawn_blocking(move || {
                    let r: Vec<&str> = owned.iter().map(String::as_str).collect();
                    e.embed(&r, kefu_kb::TextRole::Query)
                })
                .await??
            };
            for (text, v) in texts.iter().zip(&vectors) {
                let p = model.predict(v);
                if json {
                    println!(
                        "{}",
                        json!({"text": text, "intent": p.intent, "confidence": p.confidence, "in_scope": p.in_scope})
                    );
                } else {
                    println!(
                        "{:<24} {:>6.3}  {}{}",
                        p.intent,
                        p.confidence,
                        text,
                        if p.in_scope {
                            String::new()
                        } else {
                            format!("  (closest: {})", p.top_intent)
                        }
                    );
                }
            }
        }
        IntentCommand::Eval {
            data,
            json,
            report,
            version,
            threshold,
        } => {
            let mut model = model_for(&registry, version.as_deref())?;
            if let Some(t) = threshold {
                if !(0.0..=1.0).contains(&t) {
                    anyhow::bail!("--threshold must be between 0 and 1");
                }
                model.meta.threshold = t;
            }
            let embedder = embedder_for(config, &model).await?;
            let cache = EmbeddingCache::open(&cache_path(config)).await?;
            let bars = Bars::new(json)?;
            let eval =
                intent::evaluate(&embedder, &cache, &model, &data, &|e| bars.observe(e)).await;
            bars.finish();
            cache.close().await;
            let eval = eval?;
            print_skipped(&eval.skipped);
            let m = &eval.metrics;
            if json {
                println!(
                    "{}",
                    json!({
                        "in_scope_accuracy": m.in_scope_accuracy,
                        "oos_recall": m.oos_recall,
                        "oos_precision": m.oos_precision,
                        "macro_f1": m.macro_f1,
                        "n": m.n,
                        "by_language": eval.by_language,
                    })
                );
            } else {
                println!(
                    "model {} on {} ({} examples, {} in scope, {} oos, threshold {:.3}):",
                    model.meta.version,
                    data.display(),
                    m.n,
                    m.n_in_scope,
                    m.n_oos,
                    m.threshold
                );
                println!("  in-scope accuracy  {:.2}%", m.in_scope_accuracy * 100.0);
                println!("  oos recall         {:.2}%", m.oos_recall * 100.0);
                println!("  oos precision      {:.2}%", m.oos_precision * 100.0);
                println!("  macro-F1           {:.4}", m.macro_f1);
                for (lang, l) in &eval.by_language {
                    println!(
                        "  {lang}: {} examples, in-scope accuracy {:.2}%, oos recall {:.2}%",
                        l.n,
                        l.in_scope_accuracy * 100.0,
                        l.oos_recall * 100.0
                    );
                }
            }
            if let Some(dir) = report {
                let path = intent::report::write(
                    &dir,
                    &model.meta,
                    &data.display().to_string(),
                    m,
                    &eval.scored,
                )?;
                eprintln!("report written to {}", path.display());
            }
        }
    }
    Ok(())
}
