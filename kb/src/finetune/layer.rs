//! One encoder layer made trainable: every weight a `Var` (full fine-tuning), or the stock weights
//! frozen with low-rank adapters (LoRA) on the four projections; a forward pass built only from
//! differentiable candle operations, and the merge back into plain `LayerWeights`.

use candle_core::{Tensor, Var, D};
use candle_nn::LayerNorm;
use rand::rngs::StdRng;
use rand::Rng;

use crate::embed::bert::{attention, BertConfig, LayerWeights};
use crate::error::Result;

/// What a trainable layer learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Method {
    /// Every weight and norm of the layer.
    Full,
    /// Rank-`rank` adapters on Q/K/V, the attention output and both feed-forward projections.
    Lora { rank: usize },
}

/// A tensor that is either trained or kept as it is.
enum Param {
    Tuned(Var),
    Frozen(Tensor),
}

impl Param {
    fn new(t: &Tensor, tuned: bool) -> Result<Self> {
        Ok(if tuned {
            Param::Tuned(Var::from_tensor(t)?)
        } else {
            Param::Frozen(t.clone())
        })
    }

    fn tensor(&self) -> &Tensor {
        match self {
            Param::Tuned(v) => v.as_tensor(),
            Param::Frozen(t) => t,
        }
    }

    fn var(&self) -> Option<Var> {
        match self {
            Param::Tuned(v) => Some(v.clone()),
            Param::Frozen(_) => None,
        }
    }
}

/// Low-rank update `x·A·B·scale` of a projection ([in, r] and [r, out]; B starts at zero so the
/// layer starts as the stock one).
struct Adapter {
    a: Var,
    b: Var,
    scale: f64,
}

/// A projection `x·W + b` with an optional adapter (`W` is stored [in, out]).
struct Proj {
    w: Param,
    b: Param,
    adapter: Option<Adapter>,
}

/// LoRA's scaling numerator: the update is multiplied by `ALPHA / rank`.
const LORA_ALPHA: f64 = 16.0;

impl Proj {
    fn new(w: &Tensor, b: &Tensor, method: Method, rng: &mut StdRng) -> Result<Self> {
        let full = method == Method::Full;
        let adapter = match method {
            Method::Full => None,
            Method::Lora { rank } => {
                let (inputs, outputs) = w.dims2()?;
                // Kaiming-uniform-like A, zero B (as in the LoRA paper's reference code).
                let bound = 1.0 / (inputs as f32).sqrt();
                let a: Vec<f32> = (0..inputs * rank)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect();
                Some(Adapter {
                    a: Var::from_vec(a, (inputs, rank), w.device())?,
                    b: Var::zeros((rank, outputs), w.dtype(), w.device())?,
                    scale: LORA_ALPHA / rank as f64,
                })
            }
        };
        Ok(Self {
            w: Param::new(w, full)?,
            b: Param::new(b, full)?,
            adapter,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(self.w.tensor())?.broadcast_add(self.b.tensor())?;
        Ok(match &self.adapter {
            Some(ad) => (y + (x.matmul(ad.a.as_tensor())?.matmul(ad.b.as_tensor())? * ad.scale)?)?,
            None => y,
        })
    }

    /// The effective weight and bias.
    fn merged(&self) -> Result<(Tensor, Tensor)> {
        let w = match &self.adapter {
            Some(ad) => {
                (self.w.tensor() + (ad.a.as_tensor().matmul(ad.b.as_tensor())? * ad.scale)?)?
            }
            None => self.w.tensor().copy()?,
        };
        Ok((w, self.b.tensor().copy()?))
    }

    fn vars(&self) -> Vec<Var> {
        let mut v: Vec<Var> = [self.w.var(), self.b.var()].into_iter().flatten().collect();
        if let Some(ad) = &self.adapter {
            v.push(ad.a.clone());
            v.push(ad.b.clone());
        }
        v
    }
}

/// A layer norm whose weight and bias may be trained.
struct Norm {
    w: Param,
    b: Param,
    eps: f64,
}

impl Norm {
    fn new(n: &LayerNorm, tuned: bool) -> Result<Self> {
        let bias = match n.bias() {
            Some(b) => b.clone(),
            None => n.weight().zeros_like()?,
        };
        Ok(Self {
            w: Param::new(n.weight(), tuned)?,
            b: Param::new(&bias, tuned)?,
            eps: n.eps(),
        })
    }

    /// Layer normalisation over the last dimension, written out (candle's fused kernel has no
    /// backward pass).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        Ok(normed
            .broadcast_mul(self.w.tensor())?
            .broadcast_add(self.b.tensor())?)
    }

    fn merged(&self) -> Result<LayerNorm> {
        Ok(LayerNorm::new(
            self.w.tensor().copy()?,
            self.b.tensor().copy()?,
            self.eps,
        ))
    }

    fn vars(&self) -> Vec<Var> {
        [self.w.var(), self.b.var()].into_iter().flatten().collect()
    }
}

/// One trainable encoder layer.
pub struct TrainableLayer {
    qkv: Proj,
    out: Proj,
    attn_norm: Norm,
    ffn_in: Proj,
    ffn_out: Proj,
    ffn_norm: Norm,
}

impl TrainableLayer {
    /// Starts from `w`, training what `method` says; adapters are initialised from `rng`.
    pub fn new(w: &LayerWeights, method: Method, rng: &mut StdRng) -> Result<Self> {
        let full = method == Method::Full;
        Ok(Self {
            qkv: Proj::new(&w.qkv_w, &w.qkv_b, method, rng)?,
            out: Proj::new(&w.out_w, &w.out_b, method, rng)?,
            attn_norm: Norm::new(&w.attn_norm, full)?,
            ffn_in: Proj::new(&w.ffn_in_w, &w.ffn_in_b, method, rng)?,
            ffn_out: Proj::new(&w.ffn_out_w, &w.ffn_out_b, method, rng)?,
            ffn_norm: Norm::new(&w.ffn_norm, full)?,
        })
    }

    /// The same computation as the encoder's inference pass, differentiably.
    /// `x`: [batch*len, hidden]; `bias`: [batch, 1, 1, len].
    pub fn forward(
        &self,
        cfg: &BertConfig,
        x: &Tensor,
        bias: &Tensor,
        b: usize,
        len: usize,
    ) -> Result<Tensor> {
        let qkv = self.qkv.forward(x)?;
        let ctx = attention(&qkv, bias, cfg, (b, len), |s| {
            Ok(candle_nn::ops::softmax(s, D::Minus1)?)
        })?;
        let attn = self.out.forward(&ctx)?;
        let x = self.attn_norm.forward(&(x + attn)?)?;
        let mid = self.ffn_in.forward(&x)?.gelu_erf()?;
        let ffn = self.ffn_out.forward(&mid)?;
        self.ffn_norm.forward(&(x + ffn)?)
    }

    /// Everything this layer trains.
    pub fn vars(&self) -> Vec<Var> {
        let mut v = Vec::new();
        v.extend(self.qkv.vars());
        v.extend(self.out.vars());
        v.extend(self.attn_norm.vars());
        v.extend(self.ffn_in.vars());
        v.extend(self.ffn_out.vars());
        v.extend(self.ffn_norm.vars());
        v
    }

    /// The trained layer as plain inference weights (adapters merged in): same shapes, same speed.
    pub fn merged(&self) -> Result<LayerWeights> {
        let (qkv_w, qkv_b) = self.qkv.merged()?;
        let (out_w, out_b) = self.out.merged()?;
        let (ffn_in_w, ffn_in_b) = self.ffn_in.merged()?;
        let (ffn_out_w, ffn_out_b) = self.ffn_out.merged()?;
        Ok(LayerWeights {
            qkv_w,
            qkv_b,
            out_w,
            out_b,
            attn_norm: self.attn_norm.merged()?,
            ffn_in_w,
            ffn_in_b,
            ffn_out_w,
            ffn_out_b,
            ffn_norm: self.ffn_norm.merged()?,
            packed: Default::default(),
        })
    }
}
