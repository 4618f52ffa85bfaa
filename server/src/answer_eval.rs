//! Answer quality on labelled questions, shared by `kefu kb eval` and the admin API's eval job:
//! each question asked exactly as the chat asks it, judged against its label (expected entries,
//! phrases, citation, or out of scope), then summarised — answer rate, right answers, suggestion
//! and fallback rates, out-of-scope questions held, reply length, latency — overall and per
//! language, with the coverage/precision curve over the answer threshold.

use std::future::Future;

use kefu_kb::Lang;
use serde::{Deserialize, Serialize};

use crate::triage::ask_reply::Asked;

/// Most labelled questions one eval takes.
pub const MAX_QUESTIONS: usize = 5000;

/// One labelled question.
#[derive(Debug, Clone, Deserialize)]
pub struct EvalItem {
    pub question: String,
    /// Entry id(s) that answer it, or "none" for an out-of-scope question; absent: judged by
    /// `answer_contains` alone.
    #[serde(default)]
    pub expect: Option<Expect>,
    /// Phrases of which the reply must contain one (case-insensitive).
    #[serde(default)]
    pub answer_contains: Vec<String>,
    /// Text a citation's title, source or id must contain (e.g. the paragraph's heading).
    #[serde(default)]
    pub cite: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Expect {
    One(String),
    Many(Vec<String>),
}

impl EvalItem {
    pub fn out_of_scope(&self) -> bool {
        matches!(&self.expect, Some(Expect::One(s)) if s == "none")
    }

    pub fn expected_ids(&self) -> Vec<&str> {
        match &self.expect {
            Some(Expect::One(s)) if s != "none" => vec![s.as_str()],
            Some(Expect::Many(v)) => v.iter().map(String::as_str).collect(),
            _ => vec![],
        }
    }
}

/// How one question went.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub question: String,
    pub lang: &'static str,
    pub out_of_scope: bool,
    pub band: &'static str,
    pub decision: String,
    pub mode: &'static str,
    pub reply: String,
    pub cited: Vec<String>,
    /// The best hit's id and score (the curve's input).
    pub top_id: Option<String>,
    pub top_score: Option<f32>,
    /// In scope: answered with an expected entry and phrase. Out of scope: no sourced answer.
    pub correct: bool,
    /// The reply contains an expected phrase (answered or not).
    pub contains: bool,
    /// A citation names the expected place.
    pub cite_ok: bool,
    pub latency_ms: f64,
}

/// Rates over a set of outcomes.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Summary {
    pub questions: usize,
    pub in_scope: usize,
    pub out_of_scope: usize,
    /// In-scope questions answered (band `answer`).
    pub answer_rate: f64,
    /// Answered in-scope questions whose answer is right.
    pub answer_precision: f64,
    /// In-scope questions answered right (the headline).
    pub right_answer_rate: f64,
    pub suggest_rate: f64,
    pub fallback_rate: f64,
    /// Out-of-scope questions that got no sourced answer.
    pub out_of_scope_held: f64,
    /// In-scope questions whose reply contains an expected phrase (when phrases are given).
    pub contains_rate: Option<f64>,
    /// In-scope questions whose citation names the expected place (when given).
    pub cite_rate: Option<f64>,
    pub reply_chars_median: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
}

/// A point of the curve: answering only when the best hit scores at least `threshold`.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct CurvePoint {
    pub threshold: f32,
    /// In-scope questions whose best hit clears the threshold.
    pub coverage: f64,
    /// Of those, the share whose best hit is an expected entry.
    pub precision: f64,
    /// Out-of-scope questions whose best hit clears it (would be answered wrongly).
    pub out_of_scope_answered: f64,
}

/// The answer quality of one set of labelled questions.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Report {
    pub data: String,
    pub overall: Summary,
    pub zh: Option<Summary>,
    pub en: Option<Summary>,
    pub curve: Vec<CurvePoint>,
}

impl Report {
    /// The summaries present, overall first, each with its (text, page) label.
    pub fn summaries(&self) -> Vec<(&'static str, &'static str, &Summary)> {
        [
            ("all", "all", Some(&self.overall)),
            ("zh", "中文", self.zh.as_ref()),
            ("en", "English", self.en.as_ref()),
        ]
        .into_iter()
        .filter_map(|(text, page, s)| s.map(|s| (text, page, s)))
        .collect()
    }
}

/// Parses JSONL labelled questions (blank lines skipped; a bad line is an error naming `name`
/// and the line).
pub fn parse(text: &str, name: &str) -> Result<Vec<EvalItem>, String> {
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let item: EvalItem =
            serde_json::from_str(line).map_err(|e| format!("{name}:{}: {e}", i + 1))?;
        if item.question.trim().is_empty() {
            return Err(format!("{name}:{}: the question is empty", i + 1));
        }
        items.push(item);
        if items.len() > MAX_QUESTIONS {
            return Err(format!("{name}: at most {MAX_QUESTIONS} questions"));
        }
    }
    if items.is_empty() {
        return Err(format!("{name} holds no questions"));
    }
    Ok(items)
}

pub fn judge(item: &EvalItem, asked: &Asked) -> Outcome {
    let r = &asked.reply;
    let cited: Vec<String> = r.citations.iter().map(|c| c.id.clone()).collect();
    let reply_lower = r.answer.to_lowercase();
    let contains = !item.answer_contains.is_empty()
        && item
            .answer_contains
            .iter()
            .any(|p| reply_lower.contains(&p.to_lowercase()));
    let cite_ok = item.cite.as_deref().is_some_and(|want| {
        r.citations
            .iter()
            .any(|c| c.title.contains(want) || c.source.contains(want) || c.id.contains(want))
    });
    let answered = r.band == "answer" && !r.citations.is_empty();
    let expected = item.expected_ids();
    let correct = if item.out_of_scope() {
        r.citations.is_empty() || r.band == "none"
    } else {
        let id_ok = expected.is_empty() || cited.iter().any(|c| expected.contains(&c.as_str()));
        let phrase_ok = item.answer_contains.is_empty() || contains;
        answered && id_ok && phrase_ok
    };
    let top = asked
        .decision
        .trace
        .kb
        .as_ref()
        .and_then(|k| k.hits.first());
    Outcome {
        question: item.question.clone(),
        lang: match Lang::detect(&item.question) {
            Lang::Zh => "zh",
            Lang::En => "en",
        },
        out_of_scope: item.out_of_scope(),
        band: r.band,
        decision: format!("{:?}", asked.decision.kind).to_lowercase(),
        mode: r.mode,
        reply: r.answer.clone(),
        cited,
        top_id: top.map(|h| h.id.clone()),
        top_score: top.map(|h| h.score),
        correct,
        contains,
        cite_ok,
        latency_ms: asked.latency_ms,
    }
}

fn rate(n: usize, d: usize) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let i = ((values.len() - 1) as f64 * q).round() as usize;
    values[i]
}

/// Rates over `outcomes` (with their labels).
pub fn summarise(items: &[&EvalItem], outcomes: &[&Outcome]) -> Summary {
    let ins: Vec<usize> = (0..outcomes.len())
        .filter(|&i| !outcomes[i].out_of_scope)
        .collect();
    let oos = outcomes.len() - ins.len();
    let count = |f: &dyn Fn(&Outcome) -> bool| ins.iter().filter(|&&i| f(outcomes[i])).count();
    let answered = count(&|o| o.band == "answer");
    let right = count(&|o| o.correct);
    let with_phrases: Vec<usize> = ins
        .iter()
        .copied()
        .filter(|&i| !items[i].answer_contains.is_empty())
        .collect();
    let with_cite: Vec<usize> = ins
        .iter()
        .copied()
        .filter(|&i| items[i].cite.is_some())
        .collect();
    let mut lengths: Vec<f64> = ins
        .iter()
        .filter(|&&i| outcomes[i].band == "answer")
        .map(|&i| outcomes[i].reply.chars().count() as f64)
        .collect();
    let mut latencies: Vec<f64> = outcomes.iter().map(|o| o.latency_ms).collect();
    Summary {
        questions: outcomes.len(),
        in_scope: ins.len(),
        out_of_scope: oos,
        answer_rate: rate(answered, ins.len()),
        answer_precision: rate(right, answered),
        right_answer_rate: rate(right, ins.len()),
        suggest_rate: rate(count(&|o| o.band == "suggest"), ins.len()),
        fallback_rate: rate(count(&|o| o.band == "none"), ins.len()),
        out_of_scope_held: rate(
            outcomes
                .iter()
                .filter(|o| o.out_of_scope && o.correct)
                .count(),
            oos,
        ),
        contains_rate: (!with_phrases.is_empty()).then(|| {
            rate(
                with_phrases
                    .iter()
                    .filter(|&&i| outcomes[i].contains)
                    .count(),
                with_phrases.len(),
            )
        }),
        cite_rate: (!with_cite.is_empty()).then(|| {
            rate(
                with_cite.iter().filter(|&&i| outcomes[i].cite_ok).count(),
                with_cite.len(),
            )
        }),
        reply_chars_median: quantile(&mut lengths, 0.5),
        latency_ms_p50: quantile(&mut latencies, 0.5),
        latency_ms_p99: quantile(&mut latencies, 0.99),
    }
}

/// Coverage and precision of answering with the best hit, over thresholds 0.20–0.95.
pub fn curve(items: &[EvalItem], outcomes: &[Outcome]) -> Vec<CurvePoint> {
    let ins: Vec<usize> = (0..items.len())
        .filter(|&i| !items[i].out_of_scope())
        .collect();
    let oos = items.len() - ins.len();
    (0..=30)
        .map(|s| {
            let t = 0.20 + 0.025 * s as f32;
            let over = |i: &usize| outcomes[*i].top_score.is_some_and(|x| x >= t);
            let covered: Vec<usize> = ins.iter().copied().filter(over).collect();
            let good = covered
                .iter()
                .filter(|&&i| {
                    let ids = items[i].expected_ids();
                    ids.is_empty() && outcomes[i].correct
                        || outcomes[i]
                            .top_id
                            .as_deref()
                            .is_some_and(|id| ids.contains(&id))
                })
                .count();
            let oos_over = (0..items.len())
                .filter(|i| items[*i].out_of_scope() && over(i))
                .count();
            CurvePoint {
                threshold: t,
                coverage: rate(covered.len(), ins.len()),
                precision: rate(good, covered.len()),
                out_of_scope_answered: rate(oos_over, oos),
            }
        })
        .collect()
}

/// Asks every question with `ask` (one at a time, as the chat would), judges the replies and
/// summarises them, overall and per language; `progress` hears each question done.
pub async fn measure<F, Fut>(
    ask: F,
    data: &str,
    items: &[EvalItem],
    progress: &(dyn Fn(usize, usize) + Send + Sync),
) -> (Report, Vec<Outcome>)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Asked>,
{
    let mut outcomes = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let asked = ask(item.question.clone()).await;
        outcomes.push(judge(item, &asked));
        progress(i + 1, items.len());
    }
    let all_items: Vec<&EvalItem> = items.iter().collect();
    let all: Vec<&Outcome> = outcomes.iter().collect();
    let by_lang = |lang: &str| {
        let idx: Vec<usize> = (0..items.len())
            .filter(|&i| outcomes[i].lang == lang)
            .collect();
        (!idx.is_empty()).then(|| {
            summarise(
                &idx.iter().map(|&i| &items[i]).collect::<Vec<_>>(),
                &idx.iter().map(|&i| &outcomes[i]).collect::<Vec<_>>(),
            )
        })
    };
    let out = Report {
        data: data.to_string(),
        overall: summarise(&all_items, &all),
        zh: by_lang("zh"),
        en: by_lang("en"),
        curve: curve(items, &outcomes),
    };
    (out, outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(line: &str) -> EvalItem {
        serde_json::from_str(line).expect("item")
    }

    fn outcome(band: &'static str, correct: bool, oos: bool, reply: &str) -> Outcome {
        Outcome {
            question: "q".into(),
            lang: "en",
            out_of_scope: oos,
            band,
            decision: "answer".into(),
            mode: "faq",
            reply: reply.into(),
            cited: vec![],
            top_id: None,
            top_score: Some(0.5),
            correct,
            contains: false,
            cite_ok: false,
            latency_ms: 1.0,
        }
    }

    #[test]
    fn labels_parse_in_every_form() {
        assert_eq!(
            item(r#"{"question":"q","expect":"a"}"#).expected_ids(),
            vec!["a"]
        );
        assert_eq!(
            item(r#"{"question":"q","expect":["a","b"]}"#).expected_ids(),
            vec!["a", "b"]
        );
        assert!(item(r#"{"question":"q","expect":"none"}"#).out_of_scope());
        let x = item(r#"{"question":"q","answer_contains":["1887"],"cite":"Paragraph 3"}"#);
        assert!(!x.out_of_scope() && x.expected_ids().is_empty());
    }

    #[test]
    fn rates_count_in_scope_and_out_of_scope_apart() {
        let items = [
            item(r#"{"question":"a","expect":"x"}"#),
            item(r#"{"question":"b","expect":"x"}"#),
            item(r#"{"question":"c","expect":"none"}"#),
            item(r#"{"question":"d","expect":"none"}"#),
        ];
        let outcomes = [
            outcome("answer", true, false, "12345"),
            outcome("suggest", false, false, "?"),
            outcome("none", true, true, ""),
            outcome("answer", false, true, "wrong"),
        ];
        let s = summarise(
            &items.iter().collect::<Vec<_>>(),
            &outcomes.iter().collect::<Vec<_>>(),
        );
        assert_eq!((s.in_scope, s.out_of_scope), (2, 2));
        assert_eq!(s.answer_rate, 0.5);
        assert_eq!(s.answer_precision, 1.0);
        assert_eq!(s.right_answer_rate, 0.5);
        assert_eq!(s.suggest_rate, 0.5);
        assert_eq!(s.out_of_scope_held, 0.5);
        assert_eq!(s.reply_chars_median, 5.0);
        let points = curve(&items, &outcomes);
        assert_eq!(points.len(), 31);
        assert_eq!(
            (points[0].coverage, points[0].out_of_scope_answered),
            (1.0, 1.0)
        );
    }

    #[test]
    fn questions_parse_with_errors_naming_the_line() {
        assert_eq!(
            parse("{\"question\":\"q\"}\n\n", "f").map(|v| v.len()),
            Ok(1)
        );
        assert_eq!(
            parse("{\"question\":\" \"}", "f").err().as_deref(),
            Some("f:1: the question is empty")
        );
        assert!(parse("\n{bad", "f").is_err_and(|e| e.starts_with("f:2:")));
        assert_eq!(
            parse("", "f").err().as_deref(),
            Some("f holds no questions")
        );
    }
}
