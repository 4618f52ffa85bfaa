//! Intent benchmark printing one JSON object: on CLINC150 (train + oos_train -> val + oos_val), the
//! embedding time with a cold cache, the head's training time (out-of-fold calibration + final
//! fit), per-query inference latency (encoder + head, one query at a time), and the validation
//! metrics at the calibrated threshold and at threshold 0.
//!
//! `cargo bench -p kefu-kb --bench intent` (models from `KEFU_MODEL_DIR` or `./models`; data from
//! `KEFU_CLINC150` or the copy in `tests/fixtures/clinc150`; `KEFU_BENCH_HIDDEN=N` for a hidden
//! layer; `KEFU_BENCH_ALSO_ENCODER=all-minilm-l6-v2` for a second encoder beside e5, as
//! `--also-encoder`; `KEFU_BENCH_OOS_CLASS=1` for the out-of-scope output, as `--oos-class`).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use kefu_kb::embed::concat::ConcatEmbedder;
use kefu_kb::embed::{load_embedder, TextRole};
use kefu_kb::intent::{self, metrics, EmbeddingCache, TrainConfig};
use serde_json::{json, Value};

fn model_dir() -> PathBuf {
    std::env::var_os("KEFU_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    // As `kefu intent train` runs: one embedding batch per core, one intra-op thread each.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let src = std::env::var_os("KEFU_CLINC150").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/clinc150/train_val.json")
        },
        PathBuf::from,
    );
    let data: Value = serde_json::from_slice(&std::fs::read(&src)?)?;
    let tmp = tempfile::tempdir()?;
    let mut files = Vec::new();
    for (name, parts) in [
        ("train", ["train", "oos_train"]),
        ("val", ["val", "oos_val"]),
    ] {
        let path = tmp.path().join(format!("{name}.jsonl"));
        let mut f = std::fs::File::create(&path)?;
        for part in parts {
            for item in data[part].as_array().into_iter().flatten() {
                writeln!(f, "{}", json!({"text": item[0], "intent": item[1]}))?;
            }
        }
        files.push(path);
    }
    let hidden: usize = std::env::var("KEFU_BENCH_HIDDEN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let also = std::env::var("KEFU_BENCH_ALSO_ENCODER").ok();
    let cfg = TrainConfig {
        hidden,
        oos_class: std::env::var_os("KEFU_BENCH_OOS_CLASS").is_some(),
        ..TrainConfig::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut embedder = load_embedder(kefu_kb::DEFAULT_MODEL, &model_dir())?;
        if let Some(name) = &also {
            let second = load_embedder(name, &model_dir())?;
            embedder = ConcatEmbedder::join(embedder, vec![second])?;
        }
        let cache = EmbeddingCache::open(&tmp.path().join("cache.db")).await?;
        let dataset = intent::data::load(&files[0])?;
        let texts: Vec<String> = dataset.examples.iter().map(|e| e.text.clone()).collect();
        let started = Instant::now();
        intent::embed_texts(&embedder, &cache, &texts, &|_| {}).await?;
        let embed_seconds = started.elapsed().as_secs_f64();

        // Training with every embedding cached: the head alone.
        let started = Instant::now();
        let outcome = intent::train(
            &embedder,
            &cache,
            &files[0],
            None,
            intent::Calibration::OutOfFold,
            &cfg,
            &|_| {},
        )
        .await?;
        let train_seconds = started.elapsed().as_secs_f64();
        let model = outcome.model;
        let eval = intent::evaluate(&embedder, &cache, &model, &files[1], &|_| {}).await?;
        let at_zero = metrics::evaluate(&eval.scored, 0.0);

        // Latency: one query at a time through the encoder (one intra-op thread) and the head.
        let val = intent::data::load(&files[1])?;
        let queries: Vec<String> = val
            .examples
            .iter()
            .step_by(15)
            .map(|e| e.text.clone())
            .take(200)
            .collect();
        let e = Arc::clone(&embedder);
        let threshold = model.meta.threshold;
        let calibration = model.meta.calibration.clone();
        let model_oos_class = model.meta.oos_class;
        let (encode_ms, head_us) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let mut encode = Vec::new();
            let mut head = Vec::new();
            for q in &queries {
                let t = Instant::now();
                let v = e.embed(&[q.as_str()], TextRole::Query)?;
                encode.push(t.elapsed().as_secs_f64() * 1e3);
                let t = Instant::now();
                let p = model.predict(&v[0]);
                head.push(t.elapsed().as_secs_f64() * 1e6);
                std::hint::black_box(p);
            }
            encode.sort_by(f64::total_cmp);
            head.sort_by(f64::total_cmp);
            Ok((encode, head))
        })
        .await??;
        let m = &eval.metrics;
        let out = json!({
            "dataset": "CLINC150 full: train+oos_train -> val+oos_val",
            "embedding_model": embedder.model_name(),
            "hidden": hidden,
            "oos_class": model_oos_class,
            "train_examples": texts.len(),
            "embed_train_seconds_cold": embed_seconds,
            "embed_texts_per_second": texts.len() as f64 / embed_seconds,
            "head_train_seconds": train_seconds,
            "total_train_seconds_cold": embed_seconds + train_seconds,
            "threshold": threshold,
            "calibration": calibration,
            "val": {
                "in_scope_accuracy": m.in_scope_accuracy,
                "oos_recall": m.oos_recall,
                "oos_precision": m.oos_precision,
                "macro_f1": m.macro_f1,
                "n": m.n,
            },
            "val_threshold_0": {
                "in_scope_accuracy": at_zero.in_scope_accuracy,
                "macro_f1": at_zero.macro_f1,
            },
            "latency_per_query": {
                "encoder_ms_p50": percentile(&encode_ms, 0.5),
                "encoder_ms_p99": percentile(&encode_ms, 0.99),
                "head_us_p50": percentile(&head_us, 0.5),
                "head_us_p99": percentile(&head_us, 0.99),
                "queries": encode_ms.len(),
            },
            "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        anyhow::Ok(())
    })
}
