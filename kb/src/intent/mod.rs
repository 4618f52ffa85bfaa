//! Intent classification, the "model" step of rule-then-model triage: labelled data, a cached
//! embedding pass, a candle-trained head with a calibrated out-of-scope threshold, evaluation with
//! an HTML report, and versioned artifacts the server hot-swaps.

pub mod cache;
pub mod data;
pub mod metrics;
pub mod mirror;
pub mod model;
pub mod registry;
pub mod report;
pub mod train;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

pub use cache::EmbeddingCache;
pub use data::{BadRecord, Dataset, Example, OOS};
pub use metrics::{Metrics, Scored};
pub use mirror::Mirror;
pub use model::{IntentModel, ModelMeta, Prediction};
pub use registry::{ActiveState, Registry};
pub use train::{EpochStats, TrainConfig};

use crate::embed::{BatchingEmbedder, Embedder, TextRole};
use crate::error::{KbError, Result};
use crate::finetune::{self, EncoderDelta, FineTuneConfig, FineTuneEvent, TrainText};

/// Progress of a training or evaluation run, for progress bars.
#[derive(Debug, Clone)]
pub enum Event {
    /// Texts embedded so far (cached ones count at once).
    Embedding { done: usize, total: usize },
    /// One epoch of a phase finished (`calibration fold i/k` or `final`).
    Epoch { phase: String, stats: EpochStats },
    /// Encoder fine-tuning progress.
    FineTune(FineTuneEvent),
}

/// Receives progress events.
pub type Observer<'a> = &'a (dyn Fn(Event) + Send + Sync);

/// Embeds `texts` as queries through the cache.
pub async fn embed_texts(
    embedder: &Arc<dyn Embedder>,
    cache: &EmbeddingCache,
    texts: &[String],
    observer: Observer<'_>,
) -> Result<Vec<Vec<f32>>> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    cache
        .embed(embedder, texts, TextRole::Query, workers, &|done, total| {
            observer(Event::Embedding { done, total })
        })
        .await
}

/// Everyday requests outside any shop's business (chit-chat, general knowledge, travel, cooking,
/// finance, health, technology), 100 Chinese and 100 English: the out-of-scope side of calibration
/// when the operator's data has no `oos` examples.
pub const GENERIC_OOS: &str = include_str!("../../calibration/oos-generic.txt");

/// The generic out-of-scope requests, one per line of `GENERIC_OOS`.
pub fn generic_oos() -> impl Iterator<Item = &'static str> {
    GENERIC_OOS.lines().map(str::trim).filter(|l| !l.is_empty())
}

/// With a fine-tuned encoder, every `HOLDOUT_EVERY`-th example of each intent (and of `oos`) is
/// left out of fine-tuning and calibrates the out-of-scope threshold: out-of-fold predictions of
/// utterances the encoder was tuned on are overconfident and would set the threshold too high.
pub const HOLDOUT_EVERY: usize = 5;

/// Which examples of `dataset` are held out (`true`), by position within each intent.
pub fn holdout(dataset: &Dataset) -> Vec<bool> {
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    dataset
        .examples
        .iter()
        .map(|e| {
            let n = seen.entry(e.intent.as_str()).or_default();
            *n += 1;
            n.is_multiple_of(HOLDOUT_EVERY)
        })
        .collect()
}

/// Fine-tunes `stock`'s encoder on the labelled utterances of `data` (JSONL/CSV; `oos` examples
/// serve as negatives), leaving out the `holdout` examples, which `train` with
/// `Calibration::Holdout` calibrates on. Blocking and CPU-bound: minutes for thousands of
/// utterances.
pub fn fine_tune_encoder(
    stock: &BatchingEmbedder,
    data: &Path,
    cfg: &FineTuneConfig,
    observer: Observer<'_>,
) -> Result<EncoderDelta> {
    let dataset = data::load(data)?;
    let labels = dataset.intents();
    let index: std::collections::HashMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let held = holdout(&dataset);
    let texts = dataset
        .examples
        .iter()
        .zip(&held)
        .filter(|(_, &h)| !h)
        .map(|(e, _)| {
            Ok(TrainText {
                ids: stock.tokenize(&e.text, TextRole::Query)?,
                label: index.get(e.intent.as_str()).copied(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    finetune::fine_tune(stock.encoder(), stock.model_name(), &texts, cfg, &|e| {
        observer(Event::FineTune(e))
    })
}

/// What `train` produced.
pub struct TrainOutcome {
    pub model: IntentModel,
    /// Records skipped in the training and validation files.
    pub skipped: Vec<BadRecord>,
    /// Metrics on the calibration predictions (validation file, or out-of-fold) at the chosen
    /// threshold.
    pub calibration_metrics: Metrics,
}

/// Where the out-of-scope threshold is calibrated when no validation file is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calibration {
    /// Out-of-fold predictions of the training file (its `oos` examples included).
    OutOfFold,
    /// The `holdout` examples, predicted by a head trained on the others (for a fine-tuned
    /// encoder, which never saw them).
    Holdout,
}

/// Trains a model on `data` (JSONL/CSV). The out-of-scope threshold is calibrated on `validation`
/// when given, else as `calibration` says. The model is returned unsaved.
pub async fn train(
    embedder: &Arc<dyn Embedder>,
    cache: &EmbeddingCache,
    data: &Path,
    validation: Option<&Path>,
    calibration_mode: Calibration,
    cfg: &TrainConfig,
    observer: Observer<'_>,
) -> Result<TrainOutcome> {
    let started = Instant::now();
    let dataset = data::load(data)?;
    let mut skipped = dataset.skipped.clone();
    let labels = dataset.intents();
    if labels.len() < 2 {
        return Err(KbError::InvalidInput(format!(
            "{}: training needs at least two in-scope intents (found {})",
            data.display(),
            labels.len()
        )));
    }
    let valset = match validation {
        Some(p) => {
            let v = data::load(p)?;
            skipped.extend(v.skipped.clone());
            Some(v)
        }
        None => None,
    };
    let mut texts: Vec<String> = dataset.examples.iter().map(|e| e.text.clone()).collect();
    if let Some(v) = &valset {
        texts.extend(v.examples.iter().map(|e| e.text.clone()));
    }
    let vectors = embed_texts(embedder, cache, &texts, observer).await?;
    let (train_vecs, val_vecs) = vectors.split_at(dataset.examples.len());

    let index: std::collections::HashMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let (mut x, mut y, mut oos_x) = (Vec::new(), Vec::new(), Vec::new());
    for (e, v) in dataset.examples.iter().zip(train_vecs) {
        match index.get(e.intent.as_str()) {
            Some(&c) => {
                x.push(v.clone());
                y.push(c);
            }
            None => oos_x.push(v.clone()),
        }
    }

    // Without out-of-scope examples the threshold could only reject in-scope ones: calibrate
    // against the generic out-of-scope set instead (they never train the head).
    let on_generic_oos = valset.is_none() && oos_x.is_empty();
    if on_generic_oos {
        let texts: Vec<String> = generic_oos().map(str::to_string).collect();
        oos_x = embed_texts(embedder, cache, &texts, observer).await?;
    }

    // Training runs inline: CPU-bound, seconds to a minute; callers are the CLI and benchmarks.
    let emit_epoch = |phase: String, stats: EpochStats| observer(Event::Epoch { phase, stats });
    let held_scored = match (&valset, calibration_mode) {
        (None, Calibration::Holdout) => {
            let held = holdout(&dataset);
            let (mut fx, mut fy, mut fit_oos, mut gold, mut hx) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for ((e, v), h) in dataset.examples.iter().zip(train_vecs).zip(&held) {
                match (index.get(e.intent.as_str()), h) {
                    (Some(&c), false) => {
                        fx.push(v.clone());
                        fy.push(c);
                    }
                    (_, true) => {
                        hx.push(v.clone());
                        gold.push(gold_label(&e.intent, |i| index.contains_key(i)));
                    }
                    (None, false) => fit_oos.push(v.clone()),
                }
            }
            if on_generic_oos {
                hx.extend(oos_x.iter().cloned());
                gold.extend(oos_x.iter().map(|_| OOS.to_string()));
            }
            let (head, _) =
                train::train_intents(&fx, &fy, labels.len(), &fit_oos, cfg, &mut |stats| {
                    emit_epoch("calibration".into(), stats)
                })?;
            Some(train::score(&head, &labels, &hx, &gold))
        }
        _ => None,
    };
    let out_of_fold = match (&valset, &held_scored) {
        (Some(_), _) | (None, Some(_)) => None,
        (None, None) => Some(train::out_of_fold(
            &x,
            &y,
            &labels,
            &oos_x,
            !on_generic_oos,
            cfg,
            &mut |fold, folds, stats| emit_epoch(format!("calibration fold {fold}/{folds}"), stats),
        )?),
    };
    // The generic set only calibrates; the operator's out-of-scope examples may train.
    let oos_train: &[Vec<f32>] = if on_generic_oos { &[] } else { &oos_x };
    let (layers, oos_class) =
        train::train_intents(&x, &y, labels.len(), oos_train, cfg, &mut |stats| {
            emit_epoch("final".into(), stats)
        })?;
    let scored = match (&valset, out_of_fold) {
        (Some(v), _) => {
            let gold: Vec<String> = v
                .examples
                .iter()
                .map(|e| gold_label(&e.intent, |i| index.contains_key(i)))
                .collect();
            train::score(&layers, &labels, val_vecs, &gold)
        }
        (None, Some(oof)) => oof,
        (None, None) => held_scored.unwrap_or_default(),
    };
    let (threshold, calibration) = metrics::calibrate(&scored);
    let calibration_metrics = metrics::evaluate(&scored, threshold);
    let meta = ModelMeta {
        version: String::new(),
        created_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
        embedding_model: embedder.model_name().to_string(),
        dim: embedder.dim(),
        labels,
        threshold,
        calibration: match validation {
            None if on_generic_oos => format!(
                "{calibration} (no oos examples in the training file: calibrated against Kefu's generic out-of-scope set, {} utterances)",
                oos_x.len()
            ),
            Some(p) => format!("{calibration} ({})", p.display()),
            None if calibration_mode == Calibration::Holdout => format!(
                "{calibration} (every {HOLDOUT_EVERY}th example of each intent, held out of fine-tuning)"
            ),
            None => format!(
                "{calibration} ({}-fold out-of-fold on the training file)",
                cfg.folds.max(2)
            ),
        },
        hidden: cfg.hidden,
        oos_class,
        data_file: data.display().to_string(),
        data_hash: dataset.hash(),
        train_examples: x.len(),
        oos_examples: if on_generic_oos { 0 } else { oos_x.len() },
        epochs: cfg.epochs,
        train_seconds: started.elapsed().as_secs_f64(),
        metrics: Some(calibration_metrics.clone()),
        validation_file: validation.map(|p| p.display().to_string()),
    };
    Ok(TrainOutcome {
        model: IntentModel::new(meta, layers)?,
        skipped,
        calibration_metrics,
    })
}

/// An evaluation of one model on one labelled file.
pub struct Evaluation {
    pub metrics: Metrics,
    /// The same metrics per language of the examples (`zh`, `en`), for those present.
    pub by_language: std::collections::BTreeMap<String, Metrics>,
    pub scored: Vec<Scored>,
    pub skipped: Vec<BadRecord>,
    /// Seconds spent embedding (cache misses) and classifying.
    pub seconds: f64,
}

/// Evaluates `model` on a labelled file; intents the model does not know count as `oos`.
pub async fn evaluate(
    embedder: &Arc<dyn Embedder>,
    cache: &EmbeddingCache,
    model: &IntentModel,
    data: &Path,
    observer: Observer<'_>,
) -> Result<Evaluation> {
    check_embedder(embedder.as_ref(), model)?;
    let started = Instant::now();
    let dataset = data::load(data)?;
    let texts: Vec<String> = dataset.examples.iter().map(|e| e.text.clone()).collect();
    let vectors = embed_texts(embedder, cache, &texts, observer).await?;
    let scored: Vec<Scored> = dataset
        .examples
        .iter()
        .zip(&vectors)
        .map(|(e, v)| {
            let p = model.predict(v);
            Scored {
                gold: gold_label(&e.intent, |i| model.has_label(i)),
                top: p.top_intent,
                confidence: p.confidence,
            }
        })
        .collect();
    let mut by_language = std::collections::BTreeMap::new();
    for lang in [crate::Lang::Zh, crate::Lang::En] {
        let part: Vec<Scored> = dataset
            .examples
            .iter()
            .zip(&scored)
            .filter(|(e, _)| crate::Lang::detect(&e.text) == lang)
            .map(|(_, s)| s.clone())
            .collect();
        if !part.is_empty() {
            by_language.insert(
                lang.pick("zh", "en").to_string(),
                metrics::evaluate(&part, model.meta.threshold),
            );
        }
    }
    Ok(Evaluation {
        metrics: metrics::evaluate(&scored, model.meta.threshold),
        by_language,
        scored,
        skipped: dataset.skipped,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The label an example is scored against: intents the model does not know are out of scope
/// for it.
fn gold_label(intent: &str, known: impl Fn(&str) -> bool) -> String {
    if known(intent) {
        intent.to_string()
    } else {
        OOS.to_string()
    }
}

/// A model must be used with the embedder it was trained on.
pub fn check_embedder(embedder: &dyn Embedder, model: &IntentModel) -> Result<()> {
    if embedder.model_name() != model.meta.embedding_model {
        return Err(KbError::ModelMismatch {
            kb: format!("intent model {}", model.meta.version),
            built: model.meta.embedding_model.clone(),
            active: embedder.model_name().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fifth_example_of_each_intent_is_held_out() {
        let mut examples = Vec::new();
        for i in 0..12 {
            let intent = if i % 3 == 0 { OOS } else { "refund" };
            examples.push(Example {
                text: format!("t{i}"),
                intent: intent.to_string(),
            });
        }
        let data = Dataset {
            examples,
            skipped: Vec::new(),
        };
        let held = holdout(&data);
        // refund examples are i = 1,2,4,5,7,8,10,11: the 5th is i = 7; oos has only 4.
        let held_at: Vec<usize> = (0..12).filter(|&i| held[i]).collect();
        assert_eq!(held_at, vec![7]);
        assert_eq!(holdout(&data), held, "deterministic");
    }

    #[test]
    fn the_generic_out_of_scope_set_is_bilingual() {
        let lines: Vec<&str> = generic_oos().collect();
        let zh = lines
            .iter()
            .filter(|l| crate::Lang::detect(l) == crate::Lang::Zh)
            .count();
        assert_eq!(lines.len(), 200);
        assert_eq!(zh, 100);
    }
}
