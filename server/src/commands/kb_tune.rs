//! `kefu kb eval --tune`: thresholds searched on the operator's own labelled questions — the most
//! right answers while out-of-scope questions stay held at the asked rate — which `kefu kb
//! thresholds --from-report` then applies.

use std::path::Path;

use kefu_kb::Thresholds;
use serde::{Deserialize, Serialize};

use super::ask::Asker;
use crate::answer_eval::{judge, summarise, EvalItem, Outcome, Summary};

/// Steps tried on each side of a threshold's current value.
const STEPS: i32 = 6;
const STEP: f32 = 0.02;
/// Moves the search makes at most (each moves one threshold).
const MAX_MOVES: usize = 8;

/// The thresholds picked and how the eval data fares with them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tuned {
    /// The share of out-of-scope questions the search kept held (at least).
    pub min_held: f64,
    /// The tuned thresholds and their rates (flattened: `thresholds`, `right_answer_rate`, …).
    #[serde(flatten)]
    pub after: Rates,
    /// The same rates with the thresholds the knowledge base had.
    pub before: Rates,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Rates {
    pub thresholds: Thresholds,
    pub right_answer_rate: f64,
    pub answer_precision: f64,
    pub out_of_scope_held: f64,
}

impl Rates {
    pub fn of(thresholds: Thresholds, s: &Summary) -> Self {
        Self {
            thresholds,
            right_answer_rate: s.right_answer_rate,
            answer_precision: s.answer_precision,
            out_of_scope_held: s.out_of_scope_held,
        }
    }

    /// Better: holds enough out-of-scope questions, then more right answers, then more precise.
    fn beats(&self, other: &Rates, min_held: f64) -> bool {
        let ok = |r: &Rates| r.out_of_scope_held + 1e-9 >= min_held;
        let key = |r: &Rates| (r.right_answer_rate, r.answer_precision);
        match (ok(self), ok(other)) {
            (true, false) => true,
            (false, true) => false,
            (false, false) => self.out_of_scope_held > other.out_of_scope_held + 1e-9,
            (true, true) => {
                let (a, b) = (key(self), key(other));
                a.0 > b.0 + 1e-9 || ((a.0 - b.0).abs() <= 1e-9 && a.1 > b.1 + 1e-9)
            }
        }
    }
}

/// One threshold the search moves.
#[derive(Clone, Copy)]
enum Knob {
    Answer,
    Margin,
    DocAnswer,
    DocSuggest,
}

impl Knob {
    const ALL: [Knob; 4] = [
        Knob::Answer,
        Knob::Margin,
        Knob::DocAnswer,
        Knob::DocSuggest,
    ];

    fn set(self, t: Thresholds, v: f32) -> Thresholds {
        let v = (v * 1000.0).round() / 1000.0;
        match self {
            Knob::Answer => Thresholds {
                answer: v,
                suggest: t.suggest.min(v),
                ..t
            },
            Knob::Margin => Thresholds { margin: v, ..t },
            Knob::DocAnswer => Thresholds {
                doc_answer: v,
                doc_suggest: t.doc_suggest.min(v),
                ..t
            },
            Knob::DocSuggest => Thresholds {
                doc_suggest: v,
                ..t
            },
        }
    }

    fn get(self, t: &Thresholds) -> f32 {
        match self {
            Knob::Answer => t.answer,
            Knob::Margin => t.margin,
            Knob::DocAnswer => t.doc_answer,
            Knob::DocSuggest => t.doc_suggest,
        }
    }
}

/// Every question asked with `t`.
async fn rates(asker: &Asker<'_>, items: &[EvalItem], t: Thresholds) -> Rates {
    asker.try_thresholds(Some(t));
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(items.len());
    for item in items {
        outcomes.push(judge(item, &asker.ask(&item.question, None).await));
    }
    asker.try_thresholds(None);
    let s = summarise(
        &items.iter().collect::<Vec<_>>(),
        &outcomes.iter().collect::<Vec<_>>(),
    );
    Rates::of(t, &s)
}

/// Refuses data without out-of-scope questions: nothing would then hold the thresholds up.
pub fn check_data(items: &[EvalItem]) -> anyhow::Result<()> {
    if !items.iter().any(EvalItem::out_of_scope) {
        anyhow::bail!(
            "--tune needs out-of-scope questions (\"expect\": \"none\") in the data: without \
             them every threshold would fall until the bot answers everything"
        );
    }
    Ok(())
}

/// Local search from `before` (the knowledge base's thresholds and the eval's rates with them):
/// each pass tries every threshold at every
/// step of 0.02 around its current value and takes the single move that serves the eval data
/// best, until no move helps (at most `MAX_MOVES`).
pub async fn tune(
    asker: &Asker<'_>,
    items: &[EvalItem],
    before: Rates,
    min_held: f64,
) -> anyhow::Result<Tuned> {
    check_data(items)?;
    let texts: Vec<String> = items.iter().map(|i| i.question.clone()).collect();
    asker.prefetch(&texts).await?;
    let mut best = before.clone();
    for _ in 0..MAX_MOVES {
        let mut moved: Option<Rates> = None;
        for knob in Knob::ALL {
            let centre = knob.get(&best.thresholds);
            for k in (-STEPS..=STEPS).filter(|&k| k != 0) {
                let v = centre + k as f32 * STEP;
                let t = knob.set(best.thresholds, v);
                if t.validate().is_err() || v < 0.0 {
                    continue;
                }
                let r = rates(asker, items, t).await;
                if r.beats(moved.as_ref().unwrap_or(&best), min_held) {
                    moved = Some(r);
                }
            }
        }
        match moved {
            Some(r) => best = r,
            None => break,
        }
    }
    Ok(Tuned {
        min_held,
        after: best,
        before,
    })
}

/// The command that applies `t` to knowledge base `kb`.
pub fn apply_command(kb: &str, t: &Thresholds) -> String {
    format!(
        "kefu kb thresholds --kb {kb} --answer {} --suggest {} --margin {} --doc-answer {} --doc-suggest {}",
        t.answer, t.suggest, t.margin, t.doc_answer, t.doc_suggest
    )
}

/// The tuned thresholds a report holds: `path` is the report directory or its `metrics.json`.
pub fn from_report(path: &Path) -> anyhow::Result<Thresholds> {
    let file = if path.is_dir() {
        path.join("metrics.json")
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not a report: {e}", file.display()))?;
    let tuned = v.pointer("/summary/tuned/thresholds").ok_or_else(|| {
        anyhow::anyhow!(
            "{} holds no tuned thresholds: run `kefu kb eval --tune --report DIR` first",
            file.display()
        )
    })?;
    let t: Thresholds = serde_json::from_value(tuned.clone())
        .map_err(|e| anyhow::anyhow!("{}: bad tuned thresholds: {e}", file.display()))?;
    t.validate()?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(right: f64, precision: f64, held: f64) -> Rates {
        Rates {
            thresholds: Thresholds::for_model(""),
            right_answer_rate: right,
            answer_precision: precision,
            out_of_scope_held: held,
        }
    }

    #[test]
    fn holding_out_of_scope_questions_comes_before_right_answers() {
        assert!(r(0.90, 0.9, 0.96).beats(&r(0.97, 0.9, 0.90), 0.95));
        assert!(r(0.92, 0.9, 0.95).beats(&r(0.91, 0.99, 1.0), 0.95));
        assert!(r(0.92, 0.95, 0.95).beats(&r(0.92, 0.90, 1.0), 0.95));
        assert!(!r(0.92, 0.90, 0.95).beats(&r(0.92, 0.90, 1.0), 0.95));
        // Neither holds enough: the one holding more wins.
        assert!(r(0.5, 0.5, 0.9).beats(&r(0.99, 0.99, 0.8), 0.95));
    }

    #[test]
    fn knobs_keep_suggest_under_answer() {
        let t = Thresholds::for_model("");
        let lower = Knob::Answer.set(t, t.suggest - 0.05);
        assert!(lower.validate().is_ok());
        assert_eq!(lower.suggest, lower.answer);
        let lower = Knob::DocAnswer.set(t, t.doc_suggest - 0.04);
        assert!(lower.validate().is_ok());
    }

    #[test]
    fn reports_without_tuned_thresholds_say_how_to_get_them() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("metrics.json"), r#"{"summary":{}}"#).expect("write");
        let e = from_report(dir.path()).expect_err("no tuned");
        assert!(e.to_string().contains("--tune"), "{e}");
        let t = Thresholds::for_model("");
        let body = serde_json::json!({"summary": {"tuned": {"thresholds": t}}});
        std::fs::write(dir.path().join("metrics.json"), body.to_string()).expect("write");
        assert_eq!(from_report(dir.path()).expect("tuned"), t);
        let bad = serde_json::json!({"summary": {"tuned": {"thresholds":
            Thresholds { suggest: 0.9, answer: 0.5, ..t }}}});
        std::fs::write(dir.path().join("metrics.json"), bad.to_string()).expect("write");
        assert!(from_report(dir.path()).is_err());
    }
}
