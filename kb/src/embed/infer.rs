//! The encoder's inference pass on plain f32 buffers: each sequence's tokens packed end to end (no
//! padding is ever computed), matrix products, attention, GELU and layer norm from `kernels`. The
//! four projection matrices of a layer are packed once, on first use, into f16 column panels
//! (`PackedLayer`, shared by clones of the layer); vectors are read in place from the candle
//! tensors. Fine-tuning keeps candle's differentiable path (`bert.rs`, `finetune/`), which is also
//! this pass's reference in the tests.

use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use candle_core::{Storage, Tensor};

use super::bert::{BertEncoder, LayerWeights, WordEmbeddings};
use super::e5s1::{dequantize_q4, Q4_BLOCK, Q4_BLOCK_BYTES};
use super::kernels::{self, MatRef, PanelsF16};
use crate::error::{KbError, Result};

/// A contiguous f32 CPU tensor's values, borrowed for as long as this lives.
struct Values<'a> {
    guard: Box<dyn Deref<Target = Storage> + 'a>,
    start: usize,
    len: usize,
}

impl<'a> Values<'a> {
    fn of(t: &'a Tensor) -> Result<Self> {
        let (guard, layout) = t.storage_and_layout();
        if !layout.is_contiguous() {
            return Err(KbError::Corrupt("encoder weight is not contiguous".into()));
        }
        let (start, len) = (layout.start_offset(), layout.shape().elem_count());
        Ok(Self {
            guard: Box::new(guard),
            start,
            len,
        })
    }

    fn slice(&self) -> Result<&[f32]> {
        match &**self.guard {
            Storage::Cpu(cpu) => Ok(&cpu.as_slice::<f32>()?[self.start..self.start + self.len]),
            _ => Err(KbError::Corrupt("encoder weight is not on the CPU".into())),
        }
    }
}

/// One layer's projection matrices in f16 column panels, packed on first use.
pub struct PackedLayer {
    qkv: Vec<u16>,
    out: Vec<u16>,
    ffn_in: Vec<u16>,
    ffn_out: Vec<u16>,
}

/// The packed form of a layer, built once and shared by every clone of the layer's weights.
#[derive(Clone, Default)]
pub struct PackedCache(Arc<OnceLock<PackedLayer>>);

impl PackedCache {
    fn get(&self, w: &LayerWeights) -> Result<&PackedLayer> {
        if let Some(packed) = self.0.get() {
            return Ok(packed);
        }
        let pack = |t: &Tensor| -> Result<Vec<u16>> {
            let (rows, cols) = t.dims2()?;
            let values = Values::of(t)?;
            Ok(PanelsF16::pack(values.slice()?, rows, cols))
        };
        let packed = PackedLayer {
            qkv: pack(&w.qkv_w)?,
            out: pack(&w.out_w)?,
            ffn_in: pack(&w.ffn_in_w)?,
            ffn_out: pack(&w.ffn_out_w)?,
        };
        Ok(self.0.get_or_init(|| packed))
    }
}

/// One layer's weights borrowed for a pass.
struct LayerValues<'a> {
    packed: &'a PackedLayer,
    qkv_b: Values<'a>,
    out_b: Values<'a>,
    attn_gamma: Values<'a>,
    attn_beta: Values<'a>,
    ffn_in_b: Values<'a>,
    ffn_out_b: Values<'a>,
    ffn_gamma: Values<'a>,
    ffn_beta: Values<'a>,
}

fn norm_values(norm: &candle_nn::LayerNorm) -> Result<(Values<'_>, Values<'_>)> {
    let beta = norm
        .bias()
        .ok_or_else(|| KbError::Corrupt("layer norm without a shift".into()))?;
    Ok((Values::of(norm.weight())?, Values::of(beta)?))
}

impl<'a> LayerValues<'a> {
    fn of(w: &'a LayerWeights) -> Result<Self> {
        let (attn_gamma, attn_beta) = norm_values(&w.attn_norm)?;
        let (ffn_gamma, ffn_beta) = norm_values(&w.ffn_norm)?;
        Ok(Self {
            packed: w.packed.get(w)?,
            qkv_b: Values::of(&w.qkv_b)?,
            out_b: Values::of(&w.out_b)?,
            attn_gamma,
            attn_beta,
            ffn_in_b: Values::of(&w.ffn_in_b)?,
            ffn_out_b: Values::of(&w.ffn_out_b)?,
            ffn_gamma,
            ffn_beta,
        })
    }
}

/// L2-normalised mean-pooled sentence vectors of `batch` (each sequence already with its special
/// tokens and at most `max_positions` long). Sequences are split across rayon's threads.
pub fn encode(enc: &BertEncoder, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
    let parts = split(batch, rayon::current_num_threads());
    let pooled = |part: &[Vec<u32>]| -> Result<Vec<Vec<f32>>> {
        let states = Pass::new(enc, part)?.run(enc.layers.len())?;
        Ok(pool(&states, part, enc.cfg.hidden))
    };
    if parts.len() <= 1 {
        return pooled(batch);
    }
    use rayon::prelude::*;
    let done: Vec<Result<Vec<Vec<f32>>>> = parts.par_iter().map(|p| pooled(p)).collect();
    let mut out = Vec::with_capacity(batch.len());
    for part in done {
        out.extend(part?);
    }
    Ok(out)
}

/// The hidden states after the first `layers` layers, one `[len_i, hidden]` row-major buffer per
/// sequence: the frozen prefix of fine-tuning.
pub fn hidden_states(
    enc: &BertEncoder,
    batch: &[Vec<u32>],
    layers: usize,
) -> Result<Vec<Vec<f32>>> {
    let h = enc.cfg.hidden;
    let states = Pass::new(enc, batch)?.run(layers.min(enc.layers.len()))?;
    let mut out = Vec::with_capacity(batch.len());
    let mut start = 0;
    for seq in batch {
        out.push(states[start * h..(start + seq.len()) * h].to_vec());
        start += seq.len();
    }
    Ok(out)
}

/// `batch` cut into at most `threads` consecutive runs of about equal token counts.
fn split(batch: &[Vec<u32>], threads: usize) -> Vec<&[Vec<u32>]> {
    let total: usize = batch.iter().map(Vec::len).sum();
    // Below a few hundred tokens a second thread costs more than it saves.
    if threads <= 1 || batch.len() < 2 || total < 256 {
        return vec![batch];
    }
    let share = total.div_ceil(threads.min(batch.len()));
    let mut parts = Vec::new();
    let (mut start, mut tokens) = (0, 0);
    for (i, seq) in batch.iter().enumerate() {
        tokens += seq.len();
        if tokens >= share {
            parts.push(&batch[start..=i]);
            (start, tokens) = (i + 1, 0);
        }
    }
    if start < batch.len() {
        parts.push(&batch[start..]);
    }
    parts
}

/// Mean over each sequence's rows of `states`, then L2 normalisation.
fn pool(states: &[f32], batch: &[Vec<u32>], h: usize) -> Vec<Vec<f32>> {
    let mut start = 0;
    batch
        .iter()
        .map(|seq| {
            let mut mean = vec![0f32; h];
            for row in states[start * h..(start + seq.len()) * h].chunks_exact(h) {
                for (m, v) in mean.iter_mut().zip(row) {
                    *m += v;
                }
            }
            start += seq.len();
            let count = seq.len().max(1) as f32;
            let norm = mean
                .iter()
                .map(|m| (m / count) * (m / count))
                .sum::<f32>()
                .sqrt()
                .max(1e-12);
            mean.iter_mut().for_each(|m| *m = *m / count / norm);
            mean
        })
        .collect()
}

/// One forward pass over a batch: the token rows of every sequence end to end, and the scratch
/// buffers every layer reuses.
struct Pass<'e> {
    enc: &'e BertEncoder,
    lens: Vec<usize>,
    /// [tokens, hidden]
    x: Vec<f32>,
}

impl<'e> Pass<'e> {
    /// Word + position + type embeddings, normalised.
    fn new(enc: &'e BertEncoder, batch: &[Vec<u32>]) -> Result<Self> {
        let h = enc.cfg.hidden;
        let lens: Vec<usize> = batch.iter().map(Vec::len).collect();
        let tokens: usize = lens.iter().sum();
        let mut x = vec![0f32; tokens * h];
        let ids = batch.iter().flatten().copied();
        match &enc.word {
            WordEmbeddings::Dense(table) => {
                let table = Values::of(table)?;
                let table = table.slice()?;
                for (row, id) in x.chunks_exact_mut(h).zip(ids) {
                    let start = id as usize * h;
                    let src = table.get(start..start + h).ok_or_else(|| {
                        KbError::InvalidInput(format!("token id {id} out of range"))
                    })?;
                    row.copy_from_slice(src);
                }
            }
            WordEmbeddings::Q4 { blocks, dim, .. } => {
                let row_bytes = dim / Q4_BLOCK * Q4_BLOCK_BYTES;
                for (row, id) in x.chunks_exact_mut(h).zip(ids) {
                    let start = id as usize * row_bytes;
                    let src = blocks.get(start..start + row_bytes).ok_or_else(|| {
                        KbError::InvalidInput(format!("token id {id} out of range"))
                    })?;
                    dequantize_q4(src, row);
                }
            }
        }
        let positions = Values::of(&enc.positions)?;
        let positions = positions.slice()?;
        let token_type = Values::of(&enc.token_type)?;
        let token_type = token_type.slice()?;
        let mut rows = x.chunks_exact_mut(h);
        for &len in &lens {
            if len * h > positions.len() {
                return Err(KbError::InvalidInput(format!(
                    "{len} tokens exceed the model's {} positions",
                    enc.cfg.max_positions
                )));
            }
            for (t, row) in rows.by_ref().take(len).enumerate() {
                for ((v, p), y) in row.iter_mut().zip(&positions[t * h..]).zip(token_type) {
                    *v += p + y;
                }
            }
        }
        let (gamma, beta) = norm_values(&enc.embed_norm)?;
        let eps = enc.cfg.layer_norm_eps as f32;
        kernels::add_layer_norm(&mut x, None, gamma.slice()?, beta.slice()?, eps);
        Ok(Self { enc, lens, x })
    }

    /// Runs the first `layers` layers; the hidden states, [tokens, hidden].
    fn run(mut self, layers: usize) -> Result<Vec<f32>> {
        let cfg = &self.enc.cfg;
        let (h, f) = (cfg.hidden, cfg.ffn);
        let tokens: usize = self.lens.iter().sum();
        let longest = self.lens.iter().copied().max().unwrap_or(0);
        let mut scratch = Scratch {
            qkv: vec![0f32; tokens * 3 * h],
            ctx: vec![0f32; tokens * h],
            sum: vec![0f32; tokens * h],
            mid: vec![0f32; tokens * f],
            scores: vec![0f32; longest * longest],
            keys_t: vec![0f32; longest * (h / cfg.heads)],
        };
        for layer in &self.enc.layers[..layers] {
            self.layer(&LayerValues::of(layer)?, &mut scratch)?;
        }
        Ok(self.x)
    }

    fn layer<'a>(&mut self, w: &LayerValues<'a>, s: &mut Scratch) -> Result<()> {
        let cfg = &self.enc.cfg;
        let (h, f) = (cfg.hidden, cfg.ffn);
        let tokens = self.x.len() / h;
        let eps = cfg.layer_norm_eps as f32;
        let x = MatRef::new(&self.x, tokens, h, h);
        let panels = |data: &'a [u16], rows: usize, cols: usize| PanelsF16 { data, rows, cols };
        kernels::sgemm_panels(
            x,
            panels(&w.packed.qkv, h, 3 * h),
            Some(w.qkv_b.slice()?),
            &mut s.qkv,
            3 * h,
        );
        self.attention(s);
        kernels::sgemm_panels(
            MatRef::new(&s.ctx, tokens, h, h),
            panels(&w.packed.out, h, h),
            Some(w.out_b.slice()?),
            &mut s.sum,
            h,
        );
        let (g, b) = (w.attn_gamma.slice()?, w.attn_beta.slice()?);
        kernels::add_layer_norm(&mut self.x, Some(&s.sum), g, b, eps);
        kernels::sgemm_panels(
            MatRef::new(&self.x, tokens, h, h),
            panels(&w.packed.ffn_in, h, f),
            Some(w.ffn_in_b.slice()?),
            &mut s.mid,
            f,
        );
        kernels::gelu_in_place(&mut s.mid);
        kernels::sgemm_panels(
            MatRef::new(&s.mid, tokens, f, f),
            panels(&w.packed.ffn_out, f, h),
            Some(w.ffn_out_b.slice()?),
            &mut s.sum,
            h,
        );
        let (g, b) = (w.ffn_gamma.slice()?, w.ffn_beta.slice()?);
        kernels::add_layer_norm(&mut self.x, Some(&s.sum), g, b, eps);
        Ok(())
    }

    /// Self-attention of each sequence over its own tokens, head by head: `qkv` → `ctx`.
    fn attention(&self, s: &mut Scratch) {
        let cfg = &self.enc.cfg;
        let h = cfg.hidden;
        let hd = h / cfg.heads;
        let row = 3 * h;
        let scale = 1.0 / (hd as f32).sqrt();
        let mut start = 0;
        for &len in &self.lens {
            if len == 0 {
                continue;
            }
            let qkv = &s.qkv[start * row..(start + len) * row];
            for head in 0..cfg.heads {
                let (q, k, v) = (head * hd, h + head * hd, 2 * h + head * hd);
                // Kᵀ for this head: [hd, len].
                let keys_t = &mut s.keys_t[..hd * len];
                for t in 0..len {
                    for d in 0..hd {
                        keys_t[d * len + t] = qkv[t * row + k + d];
                    }
                }
                let scores = &mut s.scores[..len * len];
                kernels::sgemm(
                    MatRef::new(&qkv[q..], len, hd, row),
                    MatRef::new(keys_t, hd, len, len),
                    None,
                    scores,
                    len,
                );
                for r in scores.chunks_exact_mut(len) {
                    kernels::softmax_scaled(r, scale);
                }
                kernels::sgemm(
                    MatRef::new(scores, len, len, len),
                    MatRef::new(&qkv[v..], len, hd, row),
                    None,
                    &mut s.ctx[start * h + head * hd..],
                    h,
                );
            }
            start += len;
        }
    }
}

/// Buffers one pass reuses across its layers.
struct Scratch {
    /// [tokens, 3 × hidden]: the fused Q/K/V projection.
    qkv: Vec<f32>,
    /// [tokens, hidden]: attention's output before its projection.
    ctx: Vec<f32>,
    /// [tokens, hidden]: a projection about to be added back to the residual stream.
    sum: Vec<f32>,
    /// [tokens, ffn]
    mid: Vec<f32>,
    /// [len, len] of the longest sequence.
    scores: Vec<f32>,
    /// [head dim, len] of the longest sequence.
    keys_t: Vec<f32>,
}
