//! Training the intent head with candle: a softmax classifier (optionally one hidden ReLU layer
//! with dropout) over frozen embeddings, AdamW on mini-batches, and out-of-fold predictions for
//! calibrating the out-of-scope threshold without touching the evaluation data.

use candle_core::{DType, Device, Module, Tensor, Var, D};
use candle_nn::{AdamW, Linear, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::error::{KbError, Result};
use crate::intent::metrics::Scored;
use crate::intent::model::{argmax, forward, Dense};

/// Hyper-parameters of one training run.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Hidden units (0 = a linear head).
    pub hidden: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// Dropout on the hidden layer.
    pub dropout: f32,
    /// Folds for out-of-fold calibration predictions (when no validation file is given).
    pub folds: usize,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            hidden: 0,
            epochs: 40,
            batch_size: 64,
            learning_rate: 2e-3,
            // Strong decoupled weight decay keeps the probabilities soft, which is what separates
            // out-of-scope queries by the threshold (CLINC150 val: 1e-4 gives 39% oos recall,
            // 2.0 gives 57%, with in-scope accuracy 95.6% -> 96.2%).
            weight_decay: 2.0,
            dropout: 0.1,
            folds: 5,
            seed: 42,
        }
    }
}

/// Fewest optimizer steps a run takes: small data sets get more epochs so the head converges.
pub const MIN_STEPS: usize = 600;

/// Features fed to the head: the unit-length embedding scaled to unit variance per component.
pub fn input_scale(dim: usize) -> f32 {
    (dim as f32).sqrt()
}

/// Loss and training accuracy after one epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochStats {
    pub epoch: usize,
    pub epochs: usize,
    pub loss: f32,
    pub accuracy: f32,
}

struct Head {
    layers: Vec<Linear>,
}

impl Head {
    fn forward(&self, x: &Tensor, dropout: f32, train: bool) -> candle_core::Result<Tensor> {
        let mut x = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            x = l.forward(&x)?;
            if i + 1 < self.layers.len() {
                x = x.relu()?;
                if train && dropout > 0.0 {
                    x = candle_nn::ops::dropout(&x, dropout)?;
                }
            }
        }
        Ok(x)
    }
}

/// Trains a head on `(x, y)` (`y` are class indices below `classes`) and returns its layers.
pub fn train_head(
    x: &[Vec<f32>],
    y: &[usize],
    classes: usize,
    cfg: &TrainConfig,
    on_epoch: &mut dyn FnMut(EpochStats),
) -> Result<Vec<Dense>> {
    let dim = x.first().map(Vec::len).unwrap_or(0);
    if x.is_empty() || dim == 0 || x.len() != y.len() || classes < 2 {
        return Err(KbError::InvalidInput(
            "training needs examples of at least two intents".into(),
        ));
    }
    let dev = Device::Cpu;
    let scale = input_scale(dim);
    let flat: Vec<f32> = x.iter().flatten().map(|v| v * scale).collect();
    let xs = Tensor::from_vec(flat, (x.len(), dim), &dev)?;
    let ys = Tensor::from_vec(
        y.iter().map(|&c| c as u32).collect::<Vec<_>>(),
        y.len(),
        &dev,
    )?;

    // Seeded initialisation: the same data and settings give the same model.
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let shapes = if cfg.hidden > 0 {
        vec![(dim, cfg.hidden), (cfg.hidden, classes)]
    } else {
        vec![(dim, classes)]
    };
    let mut vars = Vec::new();
    let mut layers = Vec::new();
    for (inputs, outputs) in shapes {
        let bound = 1.0 / (inputs as f32).sqrt();
        let w: Vec<f32> = (0..inputs * outputs)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let w = Var::from_vec(w, (outputs, inputs), &dev)?;
        let b = Var::zeros(outputs, DType::F32, &dev)?;
        layers.push(Linear::new(
            w.as_tensor().clone(),
            Some(b.as_tensor().clone()),
        ));
        vars.push(w);
        vars.push(b);
    }
    let head = Head { layers };
    let mut opt = AdamW::new(
        vars,
        ParamsAdamW {
            lr: cfg.learning_rate,
            weight_decay: cfg.weight_decay,
            ..Default::default()
        },
    )?;
    let mut order: Vec<u32> = (0..x.len() as u32).collect();
    let batch_size = cfg.batch_size.max(1);
    let steps_per_epoch = x.len().div_ceil(batch_size);
    let epochs = cfg.epochs.max(1).max(MIN_STEPS.div_ceil(steps_per_epoch));
    for epoch in 0..epochs {
        // Cosine learning-rate decay over the run.
        let progress = epoch as f64 / epochs as f64;
        opt.set_learning_rate(
            cfg.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        );
        order.shuffle(&mut rng);
        let (mut loss_sum, mut correct, mut seen) = (0f32, 0usize, 0usize);
        for batch in order.chunks(batch_size) {
            let idx = Tensor::from_slice(batch, batch.len(), &dev)?;
            let bx = xs.index_select(&idx, 0)?;
            let by = ys.index_select(&idx, 0)?;
            let logits = head.forward(&bx, cfg.dropout, true)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &by)?;
            opt.backward_step(&loss)?;
            loss_sum += loss.to_scalar::<f32>()? * batch.len() as f32;
            let pred: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
            let gold: Vec<u32> = by.to_vec1()?;
            correct += pred.iter().zip(&gold).filter(|(a, b)| a == b).count();
            seen += batch.len();
        }
        on_epoch(EpochStats {
            epoch: epoch + 1,
            epochs,
            loss: loss_sum / seen.max(1) as f32,
            accuracy: correct as f32 / seen.max(1) as f32,
        });
    }
    let mut out = Vec::new();
    for (i, l) in head.layers.iter().enumerate() {
        let w = l.weight();
        let b = l
            .bias()
            .ok_or_else(|| KbError::InvalidInput(format!("layer {i} has no bias")))?;
        // Fold the input scale into the first layer so inference takes raw embeddings.
        let w = if i == 0 {
            (w * scale as f64)?
        } else {
            w.clone()
        };
        let (outputs, inputs) = w.dims2()?;
        out.push(Dense {
            weight: w.flatten_all()?.to_vec1()?,
            bias: b.to_vec1()?,
            inputs,
            outputs,
        });
    }
    Ok(out)
}

/// Scores `x` against gold labels: the best class and its probability.
pub fn score(layers: &[Dense], labels: &[String], x: &[Vec<f32>], gold: &[String]) -> Vec<Scored> {
    x.iter()
        .zip(gold)
        .map(|(v, g)| {
            let (best, conf) = argmax(&forward(layers, v));
            Scored {
                gold: g.clone(),
                top: labels.get(best).cloned().unwrap_or_default(),
                confidence: conf,
            }
        })
        .collect()
}

/// Out-of-fold predictions: each in-scope example is scored by a head trained without its fold;
/// out-of-scope examples (`oos_x`) by every fold's head in turn (one fold each, round robin).
#[allow(clippy::too_many_arguments)]
pub fn out_of_fold(
    x: &[Vec<f32>],
    y: &[usize],
    labels: &[String],
    oos_x: &[Vec<f32>],
    cfg: &TrainConfig,
    on_fold: &mut dyn FnMut(usize, usize, EpochStats),
) -> Result<Vec<Scored>> {
    let folds = cfg.folds.max(2);
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0x5eed);
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.shuffle(&mut rng);
    let mut out = Vec::with_capacity(x.len() + oos_x.len());
    for fold in 0..folds {
        let held: Vec<usize> = order.iter().copied().skip(fold).step_by(folds).collect();
        let held_set: std::collections::HashSet<usize> = held.iter().copied().collect();
        let (mut tx, mut ty) = (Vec::new(), Vec::new());
        for i in 0..x.len() {
            if !held_set.contains(&i) {
                tx.push(x[i].clone());
                ty.push(y[i]);
            }
        }
        let layers = train_head(&tx, &ty, labels.len(), cfg, &mut |s| {
            on_fold(fold + 1, folds, s)
        })?;
        let hx: Vec<Vec<f32>> = held.iter().map(|&i| x[i].clone()).collect();
        let hy: Vec<String> = held.iter().map(|&i| labels[y[i]].clone()).collect();
        out.extend(score(&layers, labels, &hx, &hy));
        let ox: Vec<Vec<f32>> = oos_x.iter().skip(fold).step_by(folds).cloned().collect();
        let oy = vec![crate::intent::data::OOS.to_string(); ox.len()];
        out.extend(score(&layers, labels, &ox, &oy));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_linear_head_learns_separable_classes() {
        // Three clusters around orthogonal directions.
        let mut rng = StdRng::seed_from_u64(1);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..150 {
            let c = i % 3;
            let mut v: Vec<f32> = (0..8)
                .map(|_| rand::Rng::random_range(&mut rng, -0.1..0.1))
                .collect();
            v[c] += 1.0;
            x.push(v);
            y.push(c);
        }
        let cfg = TrainConfig {
            epochs: 20,
            learning_rate: 0.05,
            weight_decay: 1e-4,
            ..Default::default()
        };
        let mut last = None;
        let layers = train_head(&x, &y, 3, &cfg, &mut |s| last = Some(s)).expect("train");
        let last = last.expect("epochs ran");
        assert_eq!(last.epoch, last.epochs);
        assert_eq!(
            last.epochs,
            MIN_STEPS.div_ceil(3),
            "small data gets more epochs"
        );
        assert!(last.accuracy > 0.95, "{last:?}");
        let labels: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let gold: Vec<String> = y.iter().map(|&c| labels[c].clone()).collect();
        let scored = score(&layers, &labels, &x, &gold);
        let ok = scored.iter().filter(|s| s.top == s.gold).count();
        assert!(ok >= 145, "{ok}/150");
        let hidden = TrainConfig {
            hidden: 16,
            epochs: 20,
            learning_rate: 0.05,
            weight_decay: 1e-4,
            ..Default::default()
        };
        let layers = train_head(&x, &y, 3, &hidden, &mut |_| {}).expect("train mlp");
        assert_eq!(layers.len(), 2);
    }
}
