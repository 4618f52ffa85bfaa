//! A fine-tuned encoder as an artifact: the trained top layers in inference layout, with the stock
//! model they replace layers of. Saved as `encoder.safetensors` + `encoder.json`; applied to a
//! freshly loaded stock encoder, which then has the same shapes and speed as before.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::LayerNorm;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::layer::Method;
use crate::embed::bert::{BertEncoder, LayerWeights};
use crate::error::{KbError, Result};

/// What `encoder.json` says about the delta.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeltaMeta {
    /// The stock model the delta applies to (e.g. `multilingual-e5-small`).
    pub base_model: String,
    /// Index of the first replaced layer; layers from here to the top are replaced.
    pub first_layer: usize,
    pub method: Method,
    /// sha256 (hex, first 12 characters) of the trained weights: names the tuned encoder.
    pub id: String,
    /// The language-centring means measured on the tuned encoder (retrieval encoders; see
    /// `LanguageCentering::measure`); `None` keeps the stock model's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub centering: Option<crate::embed::LanguageMeans>,
}

impl DeltaMeta {
    /// The tuned encoder's model name: `<base>+ft-<id>` (cache keys and artifacts use it).
    pub fn model_name(&self) -> String {
        format!(
            "{}{}{}",
            self.base_model,
            crate::embed::TUNED_SEPARATOR,
            self.id
        )
    }
}

/// Trained layers replacing the top of a stock encoder.
#[derive(Clone)]
pub struct EncoderDelta {
    pub meta: DeltaMeta,
    pub layers: Vec<LayerWeights>,
}

impl std::fmt::Debug for EncoderDelta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncoderDelta")
            .field("meta", &self.meta)
            .field("layers", &self.layers.len())
            .finish()
    }
}

const WEIGHTS: &str = "encoder.safetensors";
const META: &str = "encoder.json";
/// LayerNorm epsilon is not a tensor; the stock encoder's is kept when the delta is applied.
const EPS_PLACEHOLDER: f64 = 1e-12;

fn named(layers: &[LayerWeights]) -> Result<Vec<(String, Tensor)>> {
    let mut out = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let norm = |n: &LayerNorm| -> Result<(Tensor, Tensor)> {
            let b = match n.bias() {
                Some(b) => b.clone(),
                None => n.weight().zeros_like()?,
            };
            Ok((n.weight().clone(), b))
        };
        let (anw, anb) = norm(&l.attn_norm)?;
        let (fnw, fnb) = norm(&l.ffn_norm)?;
        for (name, t) in [
            ("qkv_w", &l.qkv_w),
            ("qkv_b", &l.qkv_b),
            ("out_w", &l.out_w),
            ("out_b", &l.out_b),
            ("attn_norm_w", &anw),
            ("attn_norm_b", &anb),
            ("ffn_in_w", &l.ffn_in_w),
            ("ffn_in_b", &l.ffn_in_b),
            ("ffn_out_w", &l.ffn_out_w),
            ("ffn_out_b", &l.ffn_out_b),
            ("ffn_norm_w", &fnw),
            ("ffn_norm_b", &fnb),
        ] {
            out.push((format!("l{i}.{name}"), t.clone()));
        }
    }
    Ok(out)
}

impl EncoderDelta {
    /// Wraps trained layers, naming them by a hash of their weights.
    pub fn new(
        base_model: &str,
        first_layer: usize,
        method: Method,
        layers: Vec<LayerWeights>,
    ) -> Result<Self> {
        let mut h = Sha256::new();
        for (name, t) in named(&layers)? {
            h.update(name.as_bytes());
            for v in t.flatten_all()?.to_vec1::<f32>()? {
                h.update(v.to_le_bytes());
            }
        }
        let id = hex::encode(h.finalize())[..12].to_string();
        Ok(Self {
            meta: DeltaMeta {
                base_model: base_model.to_string(),
                first_layer,
                method,
                id,
                centering: None,
            },
            layers,
        })
    }

    /// The tuned encoder's model name (see `DeltaMeta::model_name`).
    pub fn model_name(&self) -> String {
        self.meta.model_name()
    }

    /// Writes `encoder.safetensors` and `encoder.json` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|source| KbError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let tensors: HashMap<String, Tensor> = named(&self.layers)?.into_iter().collect();
        candle_core::safetensors::save(&tensors, dir.join(WEIGHTS))?;
        let meta = serde_json::to_vec_pretty(&self.meta)
            .map_err(|e| KbError::InvalidInput(format!("encoder metadata: {e}")))?;
        let path = dir.join(META);
        std::fs::write(&path, meta).map_err(|source| KbError::Io { path, source })
    }

    /// Whether `dir` holds a delta.
    pub fn exists(dir: &Path) -> bool {
        dir.join(META).is_file()
    }

    /// Reads only `encoder.json` of a delta written by `save` (to list saved encoders).
    pub fn read_meta(dir: &Path) -> Result<DeltaMeta> {
        let path = dir.join(META);
        let text = std::fs::read(&path).map_err(|source| KbError::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|e| KbError::ModelFormat {
            path,
            reason: e.to_string(),
        })
    }

    /// Reads a delta written by `save`.
    pub fn load(dir: &Path) -> Result<Self> {
        let meta = Self::read_meta(dir)?;
        let path = dir.join(WEIGHTS);
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu)?;
        let get = |name: String| -> Result<Tensor> {
            tensors
                .get(&name)
                .cloned()
                .ok_or_else(|| KbError::ModelFormat {
                    path: path.clone(),
                    reason: format!("missing tensor {name}"),
                })
        };
        let mut layers = Vec::new();
        for i in 0.. {
            if !tensors.contains_key(&format!("l{i}.qkv_w")) {
                break;
            }
            let t = |n: &str| get(format!("l{i}.{n}"));
            layers.push(LayerWeights {
                qkv_w: t("qkv_w")?,
                qkv_b: t("qkv_b")?,
                out_w: t("out_w")?,
                out_b: t("out_b")?,
                attn_norm: LayerNorm::new(t("attn_norm_w")?, t("attn_norm_b")?, EPS_PLACEHOLDER),
                ffn_in_w: t("ffn_in_w")?,
                ffn_in_b: t("ffn_in_b")?,
                ffn_out_w: t("ffn_out_w")?,
                ffn_out_b: t("ffn_out_b")?,
                ffn_norm: LayerNorm::new(t("ffn_norm_w")?, t("ffn_norm_b")?, EPS_PLACEHOLDER),
                packed: Default::default(),
            });
        }
        Ok(Self { meta, layers })
    }

    /// Replaces the top layers of `encoder` (a stock `base_model`) with the trained ones, after
    /// checking every shape.
    pub fn apply(&self, encoder: &mut BertEncoder) -> Result<()> {
        let bad = |reason: String| KbError::ModelFormat {
            path: WEIGHTS.into(),
            reason,
        };
        if self.meta.first_layer + self.layers.len() != encoder.layers.len() {
            return Err(bad(format!(
                "the delta replaces layers {}..{} of an encoder with {}",
                self.meta.first_layer,
                self.meta.first_layer + self.layers.len(),
                encoder.layers.len()
            )));
        }
        for (i, new) in self.layers.iter().enumerate() {
            let old = &encoder.layers[self.meta.first_layer + i];
            for (a, b) in [
                (&new.qkv_w, &old.qkv_w),
                (&new.out_w, &old.out_w),
                (&new.ffn_in_w, &old.ffn_in_w),
                (&new.ffn_out_w, &old.ffn_out_w),
                (&new.qkv_b, &old.qkv_b),
                (&new.ffn_in_b, &old.ffn_in_b),
            ] {
                if a.dims() != b.dims() {
                    return Err(bad(format!(
                        "layer {}: shape {:?} where the model has {:?}",
                        self.meta.first_layer + i,
                        a.dims(),
                        b.dims()
                    )));
                }
            }
        }
        for (i, new) in self.layers.iter().enumerate() {
            let slot = &mut encoder.layers[self.meta.first_layer + i];
            let eps = slot.attn_norm.eps();
            let mut l = new.clone();
            l.attn_norm = with_eps(&new.attn_norm, eps);
            l.ffn_norm = with_eps(&new.ffn_norm, slot.ffn_norm.eps());
            *slot = l;
        }
        Ok(())
    }
}

fn with_eps(n: &LayerNorm, eps: f64) -> LayerNorm {
    match n.bias() {
        Some(b) => LayerNorm::new(n.weight().clone(), b.clone(), eps),
        None => LayerNorm::new_no_bias(n.weight().clone(), eps),
    }
}
