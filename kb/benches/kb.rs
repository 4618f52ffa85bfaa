//! Knowledge-engine benchmark printing one JSON object: embedding throughput (sentences/s) for both
//! models at batch 1 and 32 on short questions and ~128-token passages with one intra-op thread,
//! and exact-index search latency at 10k and 100k vectors beside a plain f32 scan of the same
//! vectors, index load and lexical build times and lexical search latency at 10k and 100k
//! passages (`-- search` runs only the index parts).
//!
//! `cargo bench -p kefu-kb --bench kb` (models from `KEFU_MODEL_DIR` or `./models`).

use std::path::PathBuf;
use std::time::Instant;

use kefu_kb::embed::{load_embedder, Embedder, TextRole};
use kefu_kb::index::exact::{dot, ExactIndex};
use kefu_kb::index::lexical::{LexicalDoc, LexicalIndex};
use kefu_kb::index::{IndexedVector, SearchFilter};
use serde_json::{json, Value};

fn model_dir() -> PathBuf {
    std::env::var_os("KEFU_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"))
}

/// Short questions: the demo FAQ questions (both languages).
fn questions() -> Vec<String> {
    kefu_kb::demo::sources()
        .into_iter()
        .filter(|s| s.name.ends_with(".csv"))
        .flat_map(|s| kefu_kb::ingest::parse_text(s.kind, &s.text, &s.name).unwrap_or_default())
        .map(|r| r.question)
        .take(64)
        .collect()
}

/// ~128-token passages (English and Chinese alternating).
fn passages() -> Vec<String> {
    let en = "Orders paid before four in the afternoon on a business day ship the same day, and later orders ship on the next business day. Standard delivery takes three to five business days, while express delivery takes one or two. You can return unused items in their original packaging within thirty days of delivery for a full refund, and refunds are issued within three business days.";
    let zh = "工作日下午四点前付款的订单当天发货，之后付款的订单次日发货。标准快递三到五个工作日送达，加急快递一到两个工作日送达。未使用且包装完好的商品，签收后三十天内可以申请全额退款，仓库收到退货后三个工作日内原路退款，银行到账可能还需要几天。";
    (0..32)
        .map(|i| {
            if i % 2 == 0 {
                en.to_string()
            } else {
                zh.to_string()
            }
        })
        .collect()
}

fn throughput(e: &dyn Embedder, texts: &[String], batch: usize, role: TextRole) -> f64 {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // Warm-up.
    let _ = e.embed(&refs[..batch.min(refs.len())], role);
    let start = Instant::now();
    for chunk in refs.chunks(batch) {
        e.embed(chunk, role).expect("embed");
    }
    texts.len() as f64 / start.elapsed().as_secs_f64()
}

fn bench_model(name: &str) -> Value {
    let e = match load_embedder(name, &model_dir()) {
        Ok(e) => e,
        Err(err) => return json!({ "skipped": err.to_string() }),
    };
    let q = questions();
    let p = passages();
    json!({
        "short_questions": q.len(),
        "short_batch1_per_s": throughput(e.as_ref(), &q, 1, TextRole::Query),
        "short_batch32_per_s": throughput(e.as_ref(), &q, 32, TextRole::Query),
        "passage_batch1_per_s": throughput(e.as_ref(), &p, 1, TextRole::Passage),
        "passage_batch32_per_s": throughput(e.as_ref(), &p, 32, TextRole::Passage),
    })
}

/// Deterministic pseudo-random unit vectors.
fn random_unit(seed: &mut u64, dim: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dim)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            (*seed % 20_000) as f32 / 10_000.0 - 1.0
        })
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn bench_search(n: usize) -> Value {
    let dim = 384;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let idx = ExactIndex::new();
    let items: Vec<IndexedVector> = (0..n)
        .map(|i| IndexedVector {
            vector_id: i as i64,
            entry_id: (i / 3) as i64,
            kb_id: 1,
            tags: vec![],
            vector: random_unit(&mut seed, dim),
        })
        .collect();
    let items_copy: Vec<Vec<f32>> = items.iter().map(|i| i.vector.clone()).collect();
    idx.upsert_sync(items).expect("upsert");
    let filter = SearchFilter {
        kb_id: 1,
        tags: vec![],
    };
    let queries: Vec<Vec<f32>> = (0..200).map(|_| random_unit(&mut seed, dim)).collect();
    let time = |search: &dyn Fn(&[f32])| -> Vec<f64> {
        let mut times: Vec<f64> = queries
            .iter()
            .map(|q| {
                let t = Instant::now();
                search(q);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times
    };
    // The index (int8 first pass, f32 re-scoring) and, side by side, a plain f32 scan of the
    // same vectors (what the index did before).
    let indexed = time(&|q| {
        idx.search_sync(q, &filter, 5).expect("search");
    });
    let flat: Vec<f32> = items_copy.iter().flatten().copied().collect();
    let f32_scan = time(&|q| {
        let mut best: Vec<f32> = flat.chunks_exact(dim).map(|row| dot(q, row)).collect();
        best.select_nth_unstable_by(36, |a, b| b.total_cmp(a));
    });
    let summary = |t: &[f64]| {
        json!({
            "mean_ms": t.iter().sum::<f64>() / t.len() as f64,
            "p50_ms": t[t.len() / 2],
            "p99_ms": t[t.len() * 99 / 100],
        })
    };
    let mean = |t: &[f64]| t.iter().sum::<f64>() / t.len() as f64;
    json!({
        "vectors": n,
        "top_k": 5,
        "index": summary(&indexed),
        "f32_scan": summary(&f32_scan),
        "speedup_mean": mean(&f32_scan) / mean(&indexed),
    })
}

/// Start-up: filling the exact index with `n` vectors (what a server does with the rows it reads
/// from SQLite), and building the lexical index over `n` passages; then lexical search latency.
/// Passages are XQuAD's English and Chinese paragraphs, cycled, each with its own code
/// ("SKU-<n>") so that exact terms stay unique; queries are XQuAD's questions.
fn bench_load_and_lexical(n: usize) -> Value {
    let dim = 384;
    let mut seed = 0x51A2_7B00_u64 + n as u64;
    let items: Vec<IndexedVector> = (0..n)
        .map(|i| IndexedVector {
            vector_id: i as i64,
            entry_id: i as i64,
            kb_id: 1,
            tags: vec![],
            vector: random_unit(&mut seed, dim),
        })
        .collect();
    let t = Instant::now();
    ExactIndex::new().replace_all(items).expect("load");
    let vector_load_s = t.elapsed().as_secs_f64();

    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/xquad");
    let read = |f: &str| std::fs::read_to_string(fixtures.join(f)).expect("XQuAD fixture");
    let paragraphs: Vec<String> = ["xquad-en.md", "xquad-zh.md"]
        .iter()
        .flat_map(|f| {
            read(f)
                .lines()
                .filter(|l| l.chars().count() > 80)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let questions: Vec<String> = ["xquad-en.jsonl", "xquad-zh.jsonl"]
        .iter()
        .flat_map(|f| {
            read(f)
                .lines()
                .step_by(12)
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter_map(|v| v["question"].as_str().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect();
    let docs: Vec<LexicalDoc> = (0..n)
        .map(|i| LexicalDoc {
            entry_id: i as i64,
            kb_id: 1,
            tags: vec![],
            text: format!("{} SKU-{i}", paragraphs[i % paragraphs.len()]),
        })
        .collect();
    let lexical = LexicalIndex::new();
    let t = Instant::now();
    lexical.replace_all(docs).expect("lexical build");
    let lexical_build_s = t.elapsed().as_secs_f64();
    let mut times: Vec<f64> = questions
        .iter()
        .map(|q| {
            let t = Instant::now();
            lexical.search(1, &[], q, 20).expect("lexical search");
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    json!({
        "passages": n,
        "vector_index_load_s": vector_load_s,
        "lexical_build_s": lexical_build_s,
        "lexical_search": {
            "queries": times.len(),
            "mean_ms": times.iter().sum::<f64>() / times.len() as f64,
            "p50_ms": times[times.len() / 2],
            "p99_ms": times[times.len() * 99 / 100],
        },
    })
}

fn main() {
    // One intra-op thread, as the server runs each request.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    // `cargo bench` passes `--bench`; `search` alone skips the encoders.
    let only_search = std::env::args().skip(1).any(|a| a == "search");
    let embedding = if only_search {
        json!({})
    } else {
        json!({
            "multilingual-e5-small": bench_model("multilingual-e5-small"),
            "all-minilm-l6-v2": bench_model("all-minilm-l6-v2"),
        })
    };
    let out = json!({
        "threads": std::env::var("RAYON_NUM_THREADS").unwrap_or_default(),
        "embedding": embedding,
        "search": [bench_search(10_000), bench_search(100_000)],
        "load_and_lexical": [bench_load_and_lexical(10_000), bench_load_and_lexical(100_000)],
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
}
