//! Intent evaluation: in-scope accuracy (an in-scope query called out of scope is wrong),
//! out-of-scope recall and precision, macro-F1 with `oos` as a class, and the threshold search used
//! for calibration.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::intent::data::OOS;

/// The headline numbers of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub in_scope_accuracy: f64,
    pub oos_recall: f64,
    pub oos_precision: f64,
    pub macro_f1: f64,
    pub n: usize,
    pub n_in_scope: usize,
    pub n_oos: usize,
    pub threshold: f32,
}

/// One scored example: the gold intent, the best in-scope intent and its probability.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub gold: String,
    pub top: String,
    pub confidence: f32,
}

impl Scored {
    /// The label predicted at `threshold`.
    pub fn predicted(&self, threshold: f32) -> &str {
        if self.confidence >= threshold {
            &self.top
        } else {
            OOS
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Computes the metrics at `threshold`.
pub fn evaluate(scored: &[Scored], threshold: f32) -> Metrics {
    let (mut in_n, mut in_ok, mut oos_n, mut oos_hit, mut oos_pred) = (0, 0, 0, 0, 0);
    // Per class: (true positives, predicted, gold).
    let mut per: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for s in scored {
        let pred = s.predicted(threshold);
        let gold_oos = s.gold == OOS;
        if gold_oos {
            oos_n += 1;
            if pred == OOS {
                oos_hit += 1;
            }
        } else {
            in_n += 1;
            if pred == s.gold {
                in_ok += 1;
            }
        }
        if pred == OOS {
            oos_pred += 1;
        }
        per.entry(pred).or_default().1 += 1;
        let g = per.entry(s.gold.as_str()).or_default();
        g.2 += 1;
        if pred == s.gold {
            g.0 += 1;
        }
    }
    let f1s: Vec<f64> = per
        .values()
        .map(|&(tp, pred, gold)| {
            let (p, r) = (ratio(tp, pred), ratio(tp, gold));
            if p + r == 0.0 {
                0.0
            } else {
                2.0 * p * r / (p + r)
            }
        })
        .collect();
    Metrics {
        in_scope_accuracy: ratio(in_ok, in_n),
        oos_recall: ratio(oos_hit, oos_n),
        oos_precision: ratio(oos_hit, oos_pred),
        macro_f1: if f1s.is_empty() {
            0.0
        } else {
            f1s.iter().sum::<f64>() / f1s.len() as f64
        },
        n: scored.len(),
        n_in_scope: in_n,
        n_oos: oos_n,
        threshold,
    }
}

/// Picks the threshold that maximises macro-F1 with `oos` as a class on held-out predictions: it
/// trades in-scope accuracy against out-of-scope recall the way the metric weighs them (oos is one
/// class among the intents). With no out-of-scope examples, it keeps 98% of the correctly
/// classified in-scope examples in scope.
pub fn calibrate(scored: &[Scored]) -> (f32, String) {
    let has_oos = scored.iter().any(|s| s.gold == OOS);
    if !has_oos {
        let mut correct: Vec<f32> = scored
            .iter()
            .filter(|s| s.top == s.gold)
            .map(|s| s.confidence)
            .collect();
        correct.sort_by(f32::total_cmp);
        let t = correct.get(correct.len() / 50).copied().unwrap_or(0.0);
        return (
            t,
            "2nd percentile of correct held-out confidences (no oos examples)".into(),
        );
    }
    // Candidate thresholds: a grid fine enough for the metric, plus 0.
    let mut best = (f64::MIN, 0.0f32);
    for i in 0..=200 {
        let t = i as f32 / 200.0;
        let m = evaluate(scored, t);
        if m.macro_f1 > best.0 + 1e-12 {
            best = (m.macro_f1, t);
        }
    }
    (
        best.1,
        "max macro-F1 (oos as a class) on held-out predictions".into(),
    )
}

/// Accuracy of the in-scope examples kept at each threshold, against the share kept (coverage).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurvePoint {
    pub threshold: f32,
    pub coverage: f64,
    pub accuracy: f64,
    pub oos_recall: f64,
}

/// Coverage/accuracy over `steps` thresholds from 0 to 1.
pub fn coverage_curve(scored: &[Scored], steps: usize) -> Vec<CurvePoint> {
    let in_scope: Vec<&Scored> = scored.iter().filter(|s| s.gold != OOS).collect();
    (0..=steps)
        .map(|i| {
            let t = i as f32 / steps as f32;
            let kept: Vec<&&Scored> = in_scope.iter().filter(|s| s.confidence >= t).collect();
            let correct = kept.iter().filter(|s| s.top == s.gold).count();
            CurvePoint {
                threshold: t,
                coverage: ratio(kept.len(), in_scope.len()),
                accuracy: ratio(correct, kept.len()),
                oos_recall: evaluate(scored, t).oos_recall,
            }
        })
        .collect()
}

/// The most frequent (gold, predicted) confusions at `threshold`, `oos` included.
pub fn confused_pairs(
    scored: &[Scored],
    threshold: f32,
    top: usize,
) -> Vec<(String, String, usize)> {
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for s in scored {
        let p = s.predicted(threshold);
        if p != s.gold {
            *counts.entry((s.gold.clone(), p.to_string())).or_default() += 1;
        }
    }
    let mut v: Vec<(String, String, usize)> =
        counts.into_iter().map(|((g, p), n)| (g, p, n)).collect();
    v.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    v.truncate(top);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(gold: &str, top: &str, c: f32) -> Scored {
        Scored {
            gold: gold.into(),
            top: top.into(),
            confidence: c,
        }
    }

    #[test]
    fn metrics_count_oos_rejections_of_in_scope_as_wrong() {
        let data = vec![
            s("refund", "refund", 0.9),
            s("refund", "refund", 0.3), // rejected as oos at 0.5: wrong
            s("track", "refund", 0.8),  // wrong intent
            s("oos", "track", 0.2),     // caught
            s("oos", "track", 0.7),     // missed
        ];
        let m = evaluate(&data, 0.5);
        assert!((m.in_scope_accuracy - 1.0 / 3.0).abs() < 1e-9);
        assert!((m.oos_recall - 0.5).abs() < 1e-9);
        assert!((m.oos_precision - 0.5).abs() < 1e-9);
        assert_eq!((m.n, m.n_in_scope, m.n_oos), (5, 3, 2));
        // Classes: refund (p 1/2, r 1/2), track (p 0/1, r 0), oos (p 1/2, r 1/2).
        assert!((m.macro_f1 - (0.5 + 0.0 + 0.5) / 3.0).abs() < 1e-9);
        let pairs = confused_pairs(&data, 0.5, 10);
        assert_eq!(pairs.len(), 3);
    }

    #[test]
    fn calibration_separates_in_scope_from_oos() {
        let data = vec![
            s("a", "a", 0.95),
            s("a", "a", 0.9),
            s("b", "b", 0.8),
            s("oos", "a", 0.4),
            s("oos", "b", 0.5),
        ];
        let (t, _) = calibrate(&data);
        assert!(t > 0.5 && t <= 0.8, "threshold {t}");
        let m = evaluate(&data, t);
        assert_eq!((m.in_scope_accuracy, m.oos_recall), (1.0, 1.0));
        let curve = coverage_curve(&data, 10);
        assert_eq!(curve[0].coverage, 1.0);
        assert_eq!(curve[10].coverage, 0.0);
    }
}
