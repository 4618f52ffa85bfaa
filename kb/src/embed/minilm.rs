//! all-MiniLM-L6-v2 from plain safetensors + `tokenizer.json` (English; faster than e5).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::LayerNorm;
use tokenizers::{Tokenizer, TruncationParams};

use super::bert::{
    BertConfig, BertEncoder, LayerNames, LayerWeights, WeightSource, WordEmbeddings,
};
use super::{EmbedModel, TextRole};
use crate::error::{KbError, Result};

/// Longest input in tokens: the packaged tokenizer pads everything to a fixed 128, which we replace
/// with padding to the batch's longest sequence and truncation at 256.
pub const MAX_TOKENS: usize = 256;

struct SafetensorWeights {
    tensors: HashMap<String, Tensor>,
    path: std::path::PathBuf,
}

impl WeightSource for SafetensorWeights {
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| KbError::ModelFormat {
                path: self.path.clone(),
                reason: format!("missing tensor {name}"),
            })?
            .to_dtype(DType::F32)?;
        if t.dims() != shape {
            return Err(KbError::ModelFormat {
                path: self.path.clone(),
                reason: format!("tensor {name} has shape {:?}, expected {shape:?}", t.dims()),
            });
        }
        Ok(t)
    }
}

/// all-MiniLM-L6-v2, ready to embed.
pub struct MiniLmModel {
    tokenizer: std::sync::Arc<Tokenizer>,
    encoder: BertEncoder,
}

impl MiniLmModel {
    /// Loads `model.safetensors`, `config.json` and `tokenizer.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        let raw = std::fs::read_to_string(&cfg_path).map_err(|source| KbError::Io {
            path: cfg_path.clone(),
            source,
        })?;
        let json: serde_json::Value =
            serde_json::from_str(&raw).map_err(|e| KbError::ModelFormat {
                path: cfg_path.clone(),
                reason: e.to_string(),
            })?;
        let field = |k: &str| -> Result<usize> {
            json[k]
                .as_u64()
                .map(|v| v as usize)
                .ok_or_else(|| KbError::ModelFormat {
                    path: cfg_path.clone(),
                    reason: format!("missing {k}"),
                })
        };
        let cfg = BertConfig {
            hidden: field("hidden_size")?,
            layers: field("num_hidden_layers")?,
            heads: field("num_attention_heads")?,
            ffn: field("intermediate_size")?,
            max_positions: field("max_position_embeddings")?,
            layer_norm_eps: json["layer_norm_eps"].as_f64().unwrap_or(1e-12),
        };
        let device = Device::Cpu;
        let weights_path = dir.join("model.safetensors");
        let src = SafetensorWeights {
            tensors: candle_core::safetensors::load(&weights_path, &device)?,
            path: weights_path,
        };
        let h = cfg.hidden;
        let vocab = field("vocab_size")?;
        let word =
            WordEmbeddings::Dense(src.tensor("embeddings.word_embeddings.weight", &[vocab, h])?);
        let positions = src.tensor(
            "embeddings.position_embeddings.weight",
            &[cfg.max_positions, h],
        )?;
        let token_type = src
            .tensor("embeddings.token_type_embeddings.weight", &[2, h])?
            .get(0)?;
        let embed_norm = LayerNorm::new(
            src.tensor("embeddings.LayerNorm.weight", &[h])?,
            src.tensor("embeddings.LayerNorm.bias", &[h])?,
            cfg.layer_norm_eps,
        );
        let layers = (0..cfg.layers)
            .map(|l| LayerWeights::load(&src, &layer_names(l), &cfg))
            .collect::<Result<Vec<_>>>()?;

        let tok_path = dir.join("tokenizer.json");
        let mut tokenizer =
            Tokenizer::from_file(&tok_path).map_err(|e| KbError::Tokenizer(e.to_string()))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS.min(cfg.max_positions),
                ..Default::default()
            }))
            .map_err(|e| KbError::Tokenizer(e.to_string()))?;
        let encoder = BertEncoder {
            cfg,
            word,
            positions,
            token_type,
            embed_norm,
            layers,
            device,
        };
        Ok(Self {
            tokenizer: std::sync::Arc::new(tokenizer),
            encoder,
        })
    }
}

fn layer_names(l: usize) -> LayerNames {
    let n = |s: &str| format!("encoder.layer.{l}.{s}");
    LayerNames {
        q_w: n("attention.self.query.weight"),
        q_b: n("attention.self.query.bias"),
        k_w: n("attention.self.key.weight"),
        k_b: n("attention.self.key.bias"),
        v_w: n("attention.self.value.weight"),
        v_b: n("attention.self.value.bias"),
        out_w: n("attention.output.dense.weight"),
        out_b: n("attention.output.dense.bias"),
        attn_norm_w: n("attention.output.LayerNorm.weight"),
        attn_norm_b: n("attention.output.LayerNorm.bias"),
        ffn_in_w: n("intermediate.dense.weight"),
        ffn_in_b: n("intermediate.dense.bias"),
        ffn_out_w: n("output.dense.weight"),
        ffn_out_b: n("output.dense.bias"),
        ffn_norm_w: n("output.LayerNorm.weight"),
        ffn_norm_b: n("output.LayerNorm.bias"),
    }
}

impl EmbedModel for MiniLmModel {
    fn tokenize(&self, text: &str, _role: TextRole) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| KbError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    fn encoder(&self) -> &BertEncoder {
        &self.encoder
    }

    fn encoder_mut(&mut self) -> &mut BertEncoder {
        &mut self.encoder
    }

    fn with_encoder(&self, encoder: BertEncoder) -> Box<dyn EmbedModel> {
        Box::new(Self {
            tokenizer: std::sync::Arc::clone(&self.tokenizer),
            encoder,
        })
    }
}
