//! A trained intent classifier: a softmax head (linear, or one hidden ReLU layer) over frozen sentence
//! embeddings, plus the out-of-scope threshold on its top probability. Inference is plain Rust
//! (microseconds per query); the weights are stored as safetensors.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{KbError, Result};
use crate::finetune::EncoderDelta;
use crate::intent::data::OOS;

/// One dense layer, row-major `[out][in]`.
#[derive(Debug, Clone)]
pub struct Dense {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub inputs: usize,
    pub outputs: usize,
}

/// Class probabilities of one input under `layers` (ReLU between layers, softmax at the end).
pub fn forward(layers: &[Dense], x: &[f32]) -> Vec<f32> {
    let mut v = x.to_vec();
    for (i, layer) in layers.iter().enumerate() {
        v = layer.apply(&v);
        if i + 1 < layers.len() {
            v.iter_mut().for_each(|a| *a = a.max(0.0));
        }
    }
    softmax(&mut v);
    v
}

impl Dense {
    fn apply(&self, x: &[f32]) -> Vec<f32> {
        (0..self.outputs)
            .map(|o| {
                let row = &self.weight[o * self.inputs..(o + 1) * self.inputs];
                self.bias[o] + row.iter().zip(x).map(|(w, v)| w * v).sum::<f32>()
            })
            .collect()
    }

    fn from_tensors(weight: &Tensor, bias: &Tensor) -> Result<Self> {
        let (outputs, inputs) = weight.dims2()?;
        let bias: Vec<f32> = bias.to_vec1()?;
        if bias.len() != outputs {
            return Err(KbError::InvalidInput(
                "bias length does not match weight".into(),
            ));
        }
        Ok(Self {
            weight: weight.flatten_all()?.to_vec1()?,
            bias,
            inputs,
            outputs,
        })
    }

    fn tensors(&self) -> Result<(Tensor, Tensor)> {
        Ok((
            Tensor::from_slice(&self.weight, (self.outputs, self.inputs), &Device::Cpu)?,
            Tensor::from_slice(&self.bias, self.outputs, &Device::Cpu)?,
        ))
    }
}

/// The classifier's answer for one text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// The best in-scope intent, or `oos` when its probability is under the threshold.
    pub intent: String,
    /// The best intent's probability (whether or not it clears the threshold).
    pub confidence: f32,
    pub in_scope: bool,
    /// The best in-scope intent even when out of scope (for traces and reports).
    pub top_intent: String,
}

/// Metadata stored beside the weights (`meta.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelMeta {
    pub version: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Embedding model the head was trained on; queries must be embedded with the same one.
    pub embedding_model: String,
    pub dim: usize,
    pub labels: Vec<String>,
    /// Top probability under which a query is out of scope.
    pub threshold: f32,
    /// How the threshold was chosen.
    pub calibration: String,
    pub hidden: usize,
    /// The head has one more output after the labels, trained on the operator's out-of-scope
    /// examples: never predicted, it takes probability away from the intents.
    #[serde(default)]
    pub oos_class: bool,
    pub data_file: String,
    pub data_hash: String,
    pub train_examples: usize,
    pub oos_examples: usize,
    pub epochs: usize,
    pub train_seconds: f64,
    /// Metrics on the validation file (or the held-out calibration split).
    pub metrics: Option<super::metrics::Metrics>,
    #[serde(default)]
    pub validation_file: Option<String>,
}

/// A loaded intent classifier.
#[derive(Debug, Clone)]
pub struct IntentModel {
    pub meta: ModelMeta,
    pub layers: Vec<Dense>,
    /// The fine-tuned encoder the head was trained on (`meta.embedding_model` is its name), saved
    /// with the model; `None` for a head on the stock encoder.
    pub encoder: Option<Arc<EncoderDelta>>,
    index: HashMap<String, usize>,
}

impl IntentModel {
    pub fn new(meta: ModelMeta, layers: Vec<Dense>) -> Result<Self> {
        let Some(last) = layers.last() else {
            return Err(KbError::InvalidInput(
                "an intent model needs a layer".into(),
            ));
        };
        let outputs = meta.labels.len() + usize::from(meta.oos_class);
        if last.outputs != outputs || layers[0].inputs != meta.dim {
            return Err(KbError::InvalidInput(
                "intent model shape does not match its labels".into(),
            ));
        }
        let index = meta
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), i))
            .collect();
        Ok(Self {
            meta,
            layers,
            encoder: None,
            index,
        })
    }

    /// Class probabilities for one embedding.
    pub fn probabilities(&self, embedding: &[f32]) -> Vec<f32> {
        forward(&self.layers, embedding)
    }

    /// Predicts with the stored threshold.
    pub fn predict(&self, embedding: &[f32]) -> Prediction {
        self.predict_with(embedding, self.meta.threshold)
    }

    /// Predicts with a given threshold.
    pub fn predict_with(&self, embedding: &[f32], threshold: f32) -> Prediction {
        let p = self.probabilities(embedding);
        // The best intent: an out-of-scope output after the labels is never one.
        let (best, conf) = argmax(&p[..self.meta.labels.len()]);
        let top = self.meta.labels.get(best).cloned().unwrap_or_default();
        let in_scope = conf >= threshold;
        Prediction {
            intent: if in_scope {
                top.clone()
            } else {
                OOS.to_string()
            },
            confidence: conf,
            in_scope,
            top_intent: top,
        }
    }

    /// Whether the model knows this intent.
    pub fn has_label(&self, intent: &str) -> bool {
        self.index.contains_key(intent)
    }

    /// Writes `model.safetensors` and `meta.json` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|source| KbError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut tensors = HashMap::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let (w, b) = layer.tensors()?;
            tensors.insert(format!("layer{i}.weight"), w);
            tensors.insert(format!("layer{i}.bias"), b);
        }
        candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
        if let Some(delta) = &self.encoder {
            delta.save(dir)?;
        }
        let meta = serde_json::to_vec_pretty(&self.meta)
            .map_err(|e| KbError::InvalidInput(format!("model metadata: {e}")))?;
        let path = dir.join("meta.json");
        std::fs::write(&path, meta).map_err(|source| KbError::Io { path, source })?;
        Ok(())
    }

    /// Reads a model saved by `save`.
    pub fn load(dir: &Path) -> Result<Self> {
        let meta = read_meta(dir)?;
        let path = dir.join("model.safetensors");
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu)?;
        let mut layers = Vec::new();
        for i in 0.. {
            let (Some(w), Some(b)) = (
                tensors.get(&format!("layer{i}.weight")),
                tensors.get(&format!("layer{i}.bias")),
            ) else {
                break;
            };
            layers.push(Dense::from_tensors(w, b)?);
        }
        let mut model = Self::new(meta, layers).map_err(|e| KbError::ModelFormat {
            path,
            reason: e.to_string(),
        })?;
        if EncoderDelta::exists(dir) {
            model.encoder = Some(Arc::new(EncoderDelta::load(dir)?));
        }
        Ok(model)
    }
}

/// Reads `meta.json` of a saved model.
pub fn read_meta(dir: &Path) -> Result<ModelMeta> {
    let path = dir.join("meta.json");
    let raw = std::fs::read(&path).map_err(|source| KbError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice(&raw).map_err(|e| KbError::ModelFormat {
        path,
        reason: e.to_string(),
    })
}

/// Index and value of the largest element.
pub fn argmax(p: &[f32]) -> (usize, f32) {
    p.iter().enumerate().fold(
        (0, f32::MIN),
        |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc },
    )
}

/// In-place softmax.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::MIN, f32::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    if sum > 0.0 {
        x.iter_mut().for_each(|v| *v /= sum);
    }
}
