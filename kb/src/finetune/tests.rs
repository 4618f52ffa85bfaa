//! Fine-tuning checked on a small random encoder: the trainable pass equals the inference pass,
//! gradients match finite differences, training separates intents, deltas round-trip.

use candle_core::{Device, Tensor};
use candle_nn::LayerNorm;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::embed::bert::{BertConfig, BertEncoder, LayerWeights, WordEmbeddings};

const VOCAB: usize = 40;

fn random(rng: &mut StdRng, shape: &[usize], scale: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-scale..scale)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).expect("ok")
}

fn norm(rng: &mut StdRng, h: usize) -> LayerNorm {
    let w: Vec<f32> = (0..h).map(|_| 1.0 + rng.random_range(-0.1..0.1)).collect();
    LayerNorm::new(
        Tensor::from_vec(w, h, &Device::Cpu).expect("ok"),
        random(rng, &[h], 0.1),
        1e-12,
    )
}

/// A 3-layer encoder with hidden 16, 2 heads, random weights.
fn tiny_encoder(seed: u64) -> BertEncoder {
    let mut rng = StdRng::seed_from_u64(seed);
    let cfg = BertConfig {
        hidden: 16,
        layers: 3,
        heads: 2,
        ffn: 32,
        max_positions: 16,
        layer_norm_eps: 1e-12,
    };
    let (h, f) = (cfg.hidden, cfg.ffn);
    let layers = (0..cfg.layers)
        .map(|_| LayerWeights {
            qkv_w: random(&mut rng, &[h, 3 * h], 0.4),
            qkv_b: random(&mut rng, &[3 * h], 0.1),
            out_w: random(&mut rng, &[h, h], 0.4),
            out_b: random(&mut rng, &[h], 0.1),
            attn_norm: norm(&mut rng, h),
            ffn_in_w: random(&mut rng, &[h, f], 0.4),
            ffn_in_b: random(&mut rng, &[f], 0.1),
            ffn_out_w: random(&mut rng, &[f, h], 0.3),
            ffn_out_b: random(&mut rng, &[h], 0.1),
            ffn_norm: norm(&mut rng, h),
            packed: Default::default(),
        })
        .collect();
    BertEncoder {
        word: WordEmbeddings::Dense(random(&mut rng, &[VOCAB, h], 1.0)),
        positions: random(&mut rng, &[cfg.max_positions, h], 0.2),
        token_type: random(&mut rng, &[h], 0.1),
        embed_norm: norm(&mut rng, h),
        layers,
        cfg,
        device: Device::Cpu,
    }
}

fn batch() -> Vec<Vec<u32>> {
    vec![vec![1, 5, 9, 2], vec![1, 7, 2], vec![1, 30, 31, 32, 33, 2]]
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Runs the encoder with its top layers replaced by `trainable`, through the training path.
fn trainable_pass(enc: &BertEncoder, trainable: &[TrainableLayer]) -> Vec<Vec<f32>> {
    let texts: Vec<TrainText> = batch()
        .into_iter()
        .map(|ids| TrainText { ids, label: None })
        .collect();
    let first = enc.layers.len() - trainable.len();
    let prefix = frozen_prefix(enc, &texts, first, &|_| {}).expect("ok");
    forward(enc, trainable, &prefix, &[0, 1, 2])
        .expect("ok")
        .to_vec2()
        .expect("ok")
}

#[test]
fn the_training_pass_equals_the_inference_pass() {
    let enc = tiny_encoder(1);
    // candle's f32 pass: the inference pass's own weights are rounded to f16 (checked below).
    let reference = enc.encode_reference(&batch()).expect("ok");
    let mut rng = StdRng::seed_from_u64(2);
    for method in [Method::Full, Method::Lora { rank: 4 }] {
        for top in 1..=3 {
            let layers: Vec<TrainableLayer> = enc.layers[3 - top..]
                .iter()
                .map(|w| TrainableLayer::new(w, method, &mut rng).expect("ok"))
                .collect();
            let got = trainable_pass(&enc, &layers);
            // The frozen prefix comes from the inference pass (projections rounded to f16).
            assert!(
                max_diff(&got, &reference) < 1e-3,
                "{method:?} top {top}: {}",
                max_diff(&got, &reference)
            );
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    let enc = tiny_encoder(3);
    let texts: Vec<TrainText> = batch()
        .into_iter()
        .chain([vec![1, 6, 2]])
        .map(|ids| TrainText { ids, label: None })
        .collect();
    let prefix = frozen_prefix(&enc, &texts, 1, &|_| {}).expect("ok");
    let mut rng = StdRng::seed_from_u64(4);
    let layers: Vec<TrainableLayer> = enc.layers[1..]
        .iter()
        .map(|w| TrainableLayer::new(w, Method::Full, &mut rng).expect("ok"))
        .collect();
    let loss_of = |layers: &[TrainableLayer]| -> Tensor {
        let emb = forward(&enc, layers, &prefix, &[0, 1, 2, 3]).expect("ok");
        contrastive_loss(&emb, 2, 20.0).expect("ok")
    };
    let loss = loss_of(&layers);
    let grads = loss.backward().expect("ok");
    // Check a few coordinates of every trained tensor of the lower trained layer.
    let mut checked = 0;
    for var in layers[0].vars() {
        let g = grads
            .get(var.as_tensor())
            .expect("every var has a gradient");
        let g = g.flatten_all().expect("ok").to_vec1::<f32>().expect("ok");
        let base = var
            .as_tensor()
            .flatten_all()
            .expect("ok")
            .to_vec1::<f32>()
            .expect("ok");
        for k in [0, base.len() / 2, base.len() - 1] {
            let eps = 1e-2f32;
            let at = |delta: f32| -> f32 {
                let mut v = base.clone();
                v[k] += delta;
                var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).expect("ok"))
                    .expect("ok");
                loss_of(&layers).to_scalar::<f32>().expect("ok")
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
            at(0.0);
            let tolerance = 2e-2 + 5e-2 * numeric.abs();
            assert!(
                (numeric - g[k]).abs() < tolerance,
                "coordinate {k}: analytic {} numeric {numeric}",
                g[k]
            );
            checked += 1;
        }
    }
    assert!(checked >= 30, "checked {checked} coordinates");
}

/// Two intents whose utterances share one marker token; before training the markers barely
/// matter next to the random filler tokens.
fn two_intents() -> Vec<TrainText> {
    let mut rng = StdRng::seed_from_u64(9);
    let mut texts = Vec::new();
    for i in 0..40 {
        let label = i % 2;
        let marker = if label == 0 { 3 } else { 4 };
        let mut ids = vec![1, marker];
        for _ in 0..4 {
            ids.push(rng.random_range(10..VOCAB as u32));
        }
        ids.push(2);
        texts.push(TrainText {
            ids,
            label: Some(label),
        });
    }
    texts
}

/// Mean cosine within intents minus mean cosine across them.
fn separation(enc: &BertEncoder, texts: &[TrainText]) -> f32 {
    let ids: Vec<Vec<u32>> = texts.iter().map(|t| t.ids.clone()).collect();
    let v = enc.encode(&ids).expect("ok");
    let (mut same, mut ns, mut diff, mut nd) = (0.0, 0, 0.0, 0);
    for i in 0..v.len() {
        for j in i + 1..v.len() {
            let c: f32 = v[i].iter().zip(&v[j]).map(|(a, b)| a * b).sum();
            if texts[i].label == texts[j].label {
                same += c;
                ns += 1;
            } else {
                diff += c;
                nd += 1;
            }
        }
    }
    same / ns as f32 - diff / nd as f32
}

#[test]
fn training_separates_intents_deterministically_for_each_method() {
    let texts = two_intents();
    for method in [Method::Full, Method::Lora { rank: 4 }] {
        let cfg = FineTuneConfig {
            layers: 2,
            method,
            epochs: 30.0,
            batch_pairs: 2,
            learning_rate: 3e-3,
            ..FineTuneConfig::default()
        };
        let stock = tiny_encoder(5);
        let before = separation(&stock, &texts);
        let delta = fine_tune(&stock, "tiny", &texts, &cfg, &|_| {}).expect("ok");
        let again = fine_tune(&stock, "tiny", &texts, &cfg, &|_| {}).expect("ok");
        assert_eq!(delta.meta.id, again.meta.id, "same seed, same weights");
        let mut tuned = tiny_encoder(5);
        delta.apply(&mut tuned).expect("ok");
        let after = separation(&tuned, &texts);
        assert!(
            after > before + 0.2,
            "{method:?}: separation {before} -> {after}"
        );
        // The untouched bottom layer is the stock one.
        assert_eq!(
            tuned.layers[0].qkv_w.to_vec2::<f32>().expect("ok"),
            stock.layers[0].qkv_w.to_vec2::<f32>().expect("ok")
        );
    }
}

#[test]
fn a_saved_delta_loads_and_applies_to_the_same_vectors() {
    let texts = two_intents();
    let stock = tiny_encoder(6);
    let cfg = FineTuneConfig {
        layers: 1,
        epochs: 2.0,
        batch_pairs: 2,
        learning_rate: 1e-3,
        ..FineTuneConfig::default()
    };
    let delta = fine_tune(&stock, "tiny", &texts, &cfg, &|_| {}).expect("ok");
    let dir = tempfile::tempdir().expect("ok");
    delta.save(dir.path()).expect("ok");
    assert!(EncoderDelta::exists(dir.path()));
    let loaded = EncoderDelta::load(dir.path()).expect("ok");
    assert_eq!(loaded.meta, delta.meta);
    let (mut a, mut b) = (tiny_encoder(6), tiny_encoder(6));
    delta.apply(&mut a).expect("ok");
    loaded.apply(&mut b).expect("ok");
    assert_eq!(
        a.encode(&batch()).expect("ok"),
        b.encode(&batch()).expect("ok")
    );
    assert_ne!(
        a.encode(&batch()).expect("ok"),
        stock.encode(&batch()).expect("ok")
    );
}

#[test]
fn a_delta_for_another_shape_is_refused() {
    let texts = two_intents();
    let stock = tiny_encoder(7);
    let cfg = FineTuneConfig {
        layers: 1,
        epochs: 1.0,
        batch_pairs: 2,
        ..FineTuneConfig::default()
    };
    let mut delta = fine_tune(&stock, "tiny", &texts, &cfg, &|_| {}).expect("ok");
    delta.meta.first_layer = 0;
    assert!(delta.apply(&mut tiny_encoder(7)).is_err());
}

#[test]
fn bad_settings_and_data_are_refused() {
    let stock = tiny_encoder(8);
    let texts = two_intents();
    let cfg = FineTuneConfig {
        layers: 4,
        ..FineTuneConfig::default()
    };
    assert!(fine_tune(&stock, "tiny", &texts, &cfg, &|_| {}).is_err());
    let one_intent: Vec<TrainText> = texts.into_iter().filter(|t| t.label == Some(0)).collect();
    assert!(fine_tune(
        &stock,
        "tiny",
        &one_intent,
        &FineTuneConfig::default(),
        &|_| {}
    )
    .is_err());
}

/// A byte-level "tokenizer" over the tiny encoder, to run the tiny encoder as an embedder.
struct TinyModel {
    encoder: BertEncoder,
}

impl crate::embed::EmbedModel for TinyModel {
    fn tokenize(&self, text: &str, _role: crate::TextRole) -> crate::error::Result<Vec<u32>> {
        let mut ids = vec![1];
        ids.extend(text.bytes().take(12).map(|b| 10 + u32::from(b) % 30));
        ids.push(2);
        Ok(ids)
    }

    fn encoder(&self) -> &BertEncoder {
        &self.encoder
    }

    fn encoder_mut(&mut self) -> &mut BertEncoder {
        &mut self.encoder
    }

    fn with_encoder(&self, encoder: BertEncoder) -> Box<dyn crate::embed::EmbedModel> {
        Box::new(TinyModel { encoder })
    }
}

#[test]
fn a_tuned_copy_shares_the_stock_model_and_leaves_it_unchanged() {
    use crate::embed::{BatchingEmbedder, Embedder};
    let texts = two_intents();
    let cfg = FineTuneConfig {
        layers: 1,
        batch_pairs: 2,
        ..FineTuneConfig::default()
    };
    let delta = fine_tune(&tiny_encoder(10), "tiny", &texts, &cfg, &|_| {}).expect("tune");
    let stock = BatchingEmbedder::new(
        "tiny",
        Box::new(TinyModel {
            encoder: tiny_encoder(10),
        }),
    );
    let probe = ["refund please", "where is it"];
    let before = stock.embed(&probe, crate::TextRole::Query).expect("embed");
    let copy = stock.tuned(&delta).expect("tunable").expect("tuned");
    assert_eq!(copy.model_name(), delta.model_name());
    let fresh = BatchingEmbedder::new(
        "tiny",
        Box::new(TinyModel {
            encoder: tiny_encoder(10),
        }),
    )
    .with_delta(&delta)
    .expect("apply");
    let tuned = copy.embed(&probe, crate::TextRole::Query).expect("embed");
    assert_eq!(
        tuned,
        fresh.embed(&probe, crate::TextRole::Query).expect("embed")
    );
    assert_ne!(tuned, before);
    assert_eq!(
        stock.embed(&probe, crate::TextRole::Query).expect("embed"),
        before,
        "the stock embedder is untouched"
    );
    let mut other = delta.clone();
    other.meta.base_model = "another".into();
    assert!(stock.tuned(&other).expect("tunable").is_err());
}

#[test]
fn the_plain_buffer_pass_equals_candles_padded_pass() {
    let enc = tiny_encoder(11);
    let longest: Vec<u32> = (0..16).map(|i| (i * 7 % VOCAB) as u32).collect();
    for b in [
        vec![vec![3]],
        vec![vec![1, 2]],
        batch(),
        vec![longest.clone(), vec![4], vec![1, 5, 2]],
    ] {
        let fast = enc.encode(&b).expect("encode");
        let reference = enc.encode_reference(&b).expect("reference");
        // The inference pass multiplies by the projections rounded to f16 (relative error
        // ≤ 2^-11 per weight): equal within that rounding, for vectors and hidden states.
        let diff = max_diff(&fast, &reference);
        assert!(diff < 2e-3, "{b:?}: {diff}");
        // The frozen prefix of fine-tuning: the states after two layers, padding removed.
        let input = enc.embed_input(&b).expect("input");
        let states = enc.run_layers(&input, 0..2).expect("layers");
        let flat = states
            .flatten_all()
            .expect("flat")
            .to_vec1::<f32>()
            .expect("vec");
        let h = enc.cfg.hidden;
        let want: Vec<Vec<f32>> = b
            .iter()
            .enumerate()
            .map(|(i, s)| flat[i * input.len * h..(i * input.len + s.len()) * h].to_vec())
            .collect();
        let got = enc.hidden_states(&b, 2).expect("states");
        let diff = max_diff(&got, &want);
        assert!(diff < 5e-3, "{b:?}: {diff}");
    }
    let out_of_range = enc.encode(&[vec![1, VOCAB as u32]]);
    assert!(
        out_of_range.is_err(),
        "a token id past the table is an error"
    );
}
