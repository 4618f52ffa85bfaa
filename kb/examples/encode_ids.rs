//! Support for `scripts/bench-compare`: tokenises the benchmark sentences with Kefu, times Kefu's
//! encoder on those exact token ids (one thread, batch 1 and 32), and prints JSON with the ids, the
//! raw vectors and the rates (also of candle's padded pass over the same weights, the engine before
//! the inference pass), so another runtime can be timed and checked on identical input.
//!
//! `cargo run --release -p kefu-kb --example encode_ids -- MODEL [MODEL_DIR]`

use std::path::PathBuf;
use std::time::Instant;

use kefu_kb::embed::{load_batching, TextRole};
use kefu_kb::KbError;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let mut args = std::env::args().skip(1);
    let model = args
        .next()
        .unwrap_or_else(|| "multilingual-e5-small".into());
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("models"));
    let e = load_batching(&model, &dir, false)?;
    let sentences: Vec<String> = std::io::stdin().lines().collect::<Result<_, _>>()?;
    let ids: Vec<Vec<u32>> = sentences
        .iter()
        .map(|s| e.tokenize(s, TextRole::Query))
        .collect::<Result<_, _>>()?;
    let vectors = e.encode_ids(&ids)?;
    let encoder = e.encoder();
    let kefu = rates(&ids, |chunk| e.encode_ids(chunk).map(drop))?;
    // candle's padded pass over the same weights: the engine before `infer`, timed side by side.
    let candle = rates(&ids, |chunk| encoder.encode_reference(chunk).map(drop))?;
    println!(
        "{}",
        json!({ "model": model, "ids": ids, "vectors": vectors, "kefu": kefu, "kefu_candle_pass": candle })
    );
    Ok(())
}

/// Texts per second at batch 1 and 32, the best of three passes over `ids`.
fn rates(
    ids: &[Vec<u32>],
    encode: impl Fn(&[Vec<u32>]) -> Result<(), KbError>,
) -> Result<serde_json::Map<String, serde_json::Value>, KbError> {
    let mut rates = serde_json::Map::new();
    for batch in [1usize, 32] {
        encode(&ids[..batch.min(ids.len())])?;
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            for chunk in ids.chunks(batch) {
                encode(chunk)?;
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        rates.insert(
            format!("batch{batch}_per_s"),
            json!(ids.len() as f64 / best),
        );
    }
    Ok(rates)
}
