//! A BERT-family sentence encoder in candle: embeddings, post-norm transformer layers, mean pooling
//! over the attention mask, L2 normalisation. Shared by multilingual-e5-small and all-MiniLM-L6-v2.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::LayerNorm;

use super::activation::gelu_erf;
use super::e5s1::{dequantize_q4, Q4_BLOCK, Q4_BLOCK_BYTES};
use crate::error::Result;

/// Encoder dimensions.
#[derive(Debug, Clone)]
pub struct BertConfig {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub ffn: usize,
    pub max_positions: usize,
    pub layer_norm_eps: f64,
}

/// The word-embedding table: dense f32, or Q4_0 rows dequantised on lookup (the multilingual
/// table is 250k x 384; as f32 it would cost 384 MB, as Q4_0 it is 54 MB). Cloning shares it.
#[derive(Clone)]
pub enum WordEmbeddings {
    Dense(Tensor),
    Q4 {
        blocks: std::sync::Arc<[u8]>,
        rows: usize,
        dim: usize,
    },
}

impl WordEmbeddings {
    fn rows(&self) -> usize {
        match self {
            WordEmbeddings::Dense(t) => t.dims()[0],
            WordEmbeddings::Q4 { rows, .. } => *rows,
        }
    }

    /// Looks up `ids` (flattened [batch*len]) -> [batch*len, hidden].
    fn lookup(&self, ids: &[u32], device: &Device) -> Result<Tensor> {
        match self {
            WordEmbeddings::Dense(table) => {
                let idx = Tensor::from_slice(ids, ids.len(), device)?;
                Ok(table.index_select(&idx, 0)?)
            }
            WordEmbeddings::Q4 { blocks, dim, .. } => {
                let row_bytes = dim / Q4_BLOCK * Q4_BLOCK_BYTES;
                let mut out = vec![0f32; ids.len() * dim];
                for (i, id) in ids.iter().enumerate() {
                    let start = *id as usize * row_bytes;
                    dequantize_q4(
                        &blocks[start..start + row_bytes],
                        &mut out[i * dim..(i + 1) * dim],
                    );
                }
                Ok(Tensor::from_vec(out, (ids.len(), *dim), device)?)
            }
        }
    }
}

/// One encoder layer's weights, with the projections stored transposed ([in, out]) so that the
/// forward pass is a plain `x.matmul(w)`; Q, K and V are fused into one [hidden, 3*hidden] matmul.
#[derive(Clone)]
pub struct LayerWeights {
    pub qkv_w: Tensor,
    pub qkv_b: Tensor,
    pub out_w: Tensor,
    pub out_b: Tensor,
    pub attn_norm: LayerNorm,
    pub ffn_in_w: Tensor,
    pub ffn_in_b: Tensor,
    pub ffn_out_w: Tensor,
    pub ffn_out_b: Tensor,
    pub ffn_norm: LayerNorm,
    /// The projections packed for the inference pass on first use (`infer`); a layer built with
    /// new weights starts with `PackedCache::default()`.
    pub packed: super::infer::PackedCache,
}

/// Source of named weights in PyTorch layout ([out, in] for linear layers).
pub trait WeightSource {
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor>;
}

/// Weight names of one layer in a source.
pub struct LayerNames {
    pub q_w: String,
    pub q_b: String,
    pub k_w: String,
    pub k_b: String,
    pub v_w: String,
    pub v_b: String,
    pub out_w: String,
    pub out_b: String,
    pub attn_norm_w: String,
    pub attn_norm_b: String,
    pub ffn_in_w: String,
    pub ffn_in_b: String,
    pub ffn_out_w: String,
    pub ffn_out_b: String,
    pub ffn_norm_w: String,
    pub ffn_norm_b: String,
}

impl LayerWeights {
    /// Loads one layer from `src`, transposing and fusing as the forward pass wants.
    pub fn load(src: &dyn WeightSource, names: &LayerNames, cfg: &BertConfig) -> Result<Self> {
        let (h, f) = (cfg.hidden, cfg.ffn);
        let t = |n: &str, shape: &[usize]| src.tensor(n, shape);
        let lin_t = |n: &str, rows: usize, cols: usize| -> Result<Tensor> {
            Ok(t(n, &[rows, cols])?.t()?.contiguous()?)
        };
        let qkv_w = Tensor::cat(
            &[
                lin_t(&names.q_w, h, h)?,
                lin_t(&names.k_w, h, h)?,
                lin_t(&names.v_w, h, h)?,
            ],
            1,
        )?
        .contiguous()?;
        let qkv_b = Tensor::cat(
            &[
                t(&names.q_b, &[h])?,
                t(&names.k_b, &[h])?,
                t(&names.v_b, &[h])?,
            ],
            0,
        )?;
        let norm = |w: &str, b: &str| -> Result<LayerNorm> {
            Ok(LayerNorm::new(t(w, &[h])?, t(b, &[h])?, cfg.layer_norm_eps))
        };
        Ok(Self {
            qkv_w,
            qkv_b,
            out_w: lin_t(&names.out_w, h, h)?,
            out_b: t(&names.out_b, &[h])?,
            attn_norm: norm(&names.attn_norm_w, &names.attn_norm_b)?,
            ffn_in_w: lin_t(&names.ffn_in_w, f, h)?,
            ffn_in_b: t(&names.ffn_in_b, &[f])?,
            ffn_out_w: lin_t(&names.ffn_out_w, h, f)?,
            ffn_out_b: t(&names.ffn_out_b, &[h])?,
            ffn_norm: norm(&names.ffn_norm_w, &names.ffn_norm_b)?,
            packed: Default::default(),
        })
    }
}

/// A padded batch ready for the layers.
pub struct EncoderInput {
    /// [batch*len, hidden]
    pub hidden: Tensor,
    /// [batch, len]: 1 for real tokens, 0 for padding.
    pub mask: Tensor,
    /// [batch, 1, 1, len]: the additive attention bias of the mask.
    pub bias: Tensor,
    pub batch: usize,
    pub len: usize,
}

/// Additive attention bias: 0 for real tokens, a large negative for padding.
pub fn attention_bias(mask: &Tensor) -> Result<Tensor> {
    let (b, len) = mask.dims2()?;
    Ok(((mask.clone() - 1.0)? * 1e9)?.reshape((b, 1, 1, len))?)
}

/// Multi-head self-attention from the fused Q/K/V projection ([batch*len, 3*hidden]) to the
/// per-token context ([batch*len, hidden]), before the output projection. `softmax` normalises
/// the last dimension (the fused kernel for inference, a differentiable one for fine-tuning).
pub fn attention(
    qkv: &Tensor,
    bias: &Tensor,
    cfg: &BertConfig,
    (b, len): (usize, usize),
    softmax: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let h = cfg.hidden;
    let heads = cfg.heads;
    let hd = h / heads;
    let split = |i: usize| -> Result<Tensor> {
        Ok(qkv
            .narrow(1, i * h, h)?
            .reshape((b, len, heads, hd))?
            .transpose(1, 2)?
            .contiguous()?)
    };
    let (q, k, v) = (split(0)?, split(1)?, split(2)?);
    let scale = 1.0 / (hd as f64).sqrt();
    let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(bias)?;
    let probs = softmax(&scores)?;
    Ok(probs
        .matmul(&v)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b * len, h))?)
}

/// Mean pooling over real tokens, then L2 normalisation: [batch*len, hidden] -> [batch, hidden].
/// Built from differentiable operations only (fine-tuning backpropagates through it).
pub fn mean_pool(x: &Tensor, mask: &Tensor, b: usize, len: usize) -> Result<Tensor> {
    let h = x.dim(1)?;
    let x = x.reshape((b, len, h))?;
    let summed = x.broadcast_mul(&mask.unsqueeze(2)?)?.sum(1)?;
    let counts = mask.sum_keepdim(1)?.clamp(1.0, f64::MAX)?;
    let mean = summed.broadcast_div(&counts)?;
    let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    Ok(mean.broadcast_div(&norm)?)
}

/// The whole encoder. Cloning shares every weight (candle tensors and the word table are
/// reference-counted), so a fine-tuned copy costs only the layers it replaces.
#[derive(Clone)]
pub struct BertEncoder {
    pub cfg: BertConfig,
    pub word: WordEmbeddings,
    /// [max_positions, hidden]
    pub positions: Tensor,
    /// [hidden]: token type 0 (sentence encoders only ever use type 0).
    pub token_type: Tensor,
    pub embed_norm: LayerNorm,
    pub layers: Vec<LayerWeights>,
    pub device: Device,
}

impl BertEncoder {
    /// Vocabulary rows of the word-embedding table.
    pub fn vocab_rows(&self) -> usize {
        self.word.rows()
    }

    /// Encodes a batch of token-id sequences (each already with its special tokens and at most
    /// `max_positions` long) into L2-normalised mean-pooled sentence vectors (`infer`'s pass).
    pub fn encode(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        super::infer::encode(self, batch)
    }

    /// The same vectors from candle's padded, differentiable operations: the reference that
    /// `encode`'s plain-buffer pass is tested against.
    pub fn encode_reference(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let input = self.embed_input(batch)?;
        let x = self.run_layers(&input, 0..self.layers.len())?;
        let out = mean_pool(&x, &input.mask, input.batch, input.len)?.to_dtype(DType::F32)?;
        Ok(out.to_vec2::<f32>()?)
    }

    /// The hidden states after the first `layers` layers, one `[len_i, hidden]` row-major buffer
    /// per sequence (padding removed): the frozen prefix of fine-tuning.
    pub fn hidden_states(&self, batch: &[Vec<u32>], layers: usize) -> Result<Vec<Vec<f32>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        super::infer::hidden_states(self, batch, layers)
    }

    /// Word + position + type embeddings, normalised, for a padded batch.
    pub fn embed_input(&self, batch: &[Vec<u32>]) -> Result<EncoderInput> {
        let b = batch.len();
        let len = batch.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let h = self.cfg.hidden;
        let mut ids = vec![0u32; b * len];
        let mut mask = vec![0f32; b * len];
        for (i, seq) in batch.iter().enumerate() {
            ids[i * len..i * len + seq.len()].copy_from_slice(seq);
            mask[i * len..i * len + seq.len()].fill(1.0);
        }
        let dev = &self.device;
        let words = self.word.lookup(&ids, dev)?.reshape((b, len, h))?;
        let pos = self.positions.narrow(0, 0, len)?;
        let x = words.broadcast_add(&pos)?.broadcast_add(&self.token_type)?;
        let hidden = self.embed_norm.forward(&x)?.reshape((b * len, h))?;
        let mask = Tensor::from_vec(mask, (b, len), dev)?;
        let bias = attention_bias(&mask)?;
        Ok(EncoderInput {
            hidden,
            mask,
            bias,
            batch: b,
            len,
        })
    }

    /// Runs `layers` over the input's hidden states ([batch*len, hidden] in and out).
    pub fn run_layers(
        &self,
        input: &EncoderInput,
        layers: std::ops::Range<usize>,
    ) -> Result<Tensor> {
        let mut x = input.hidden.clone();
        for layer in &self.layers[layers] {
            x = self.layer_forward(layer, &x, &input.bias, input.batch, input.len)?;
        }
        Ok(x)
    }

    fn layer_forward(
        &self,
        w: &LayerWeights,
        x: &Tensor,
        bias: &Tensor,
        b: usize,
        len: usize,
    ) -> Result<Tensor> {
        let qkv = x.matmul(&w.qkv_w)?.broadcast_add(&w.qkv_b)?;
        let ctx = attention(&qkv, bias, &self.cfg, (b, len), |s| {
            Ok(candle_nn::ops::softmax_last_dim(s)?)
        })?;
        let attn = ctx.matmul(&w.out_w)?.broadcast_add(&w.out_b)?;
        let x = w.attn_norm.forward(&(x + attn)?)?;
        let mid = gelu_erf(&x.matmul(&w.ffn_in_w)?.broadcast_add(&w.ffn_in_b)?)?;
        let ffn = mid.matmul(&w.ffn_out_w)?.broadcast_add(&w.ffn_out_b)?;
        Ok(w.ffn_norm.forward(&(x + ffn)?)?)
    }
}
