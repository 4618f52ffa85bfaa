//! `kefu kb eval`: answer quality on labelled questions, asked exactly as the chat asks them.
//! Reports the answer rate, how many answers are right, suggestion and fallback rates, how often
//! out-of-scope questions are kept from a sourced answer, reply length and latency — overall and
//! per language — and optionally an HTML page with every question and the coverage/precision
//! curve over the answer threshold.

use std::fmt::Write as _;
use std::path::Path;

use kefu_kb::Lang;
use serde::{Deserialize, Serialize};

use super::ask::{Asked, Asker};
use super::kb_tune::{apply_command, tune as tune_thresholds, Rates, Tuned};

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

    fn expected_ids(&self) -> Vec<&str> {
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
#[derive(Debug, Clone, Serialize, PartialEq)]
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
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CurvePoint {
    pub threshold: f32,
    /// In-scope questions whose best hit clears the threshold.
    pub coverage: f64,
    /// Of those, the share whose best hit is an expected entry.
    pub precision: f64,
    /// Out-of-scope questions whose best hit clears it (would be answered wrongly).
    pub out_of_scope_answered: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub data: String,
    pub overall: Summary,
    pub zh: Option<Summary>,
    pub en: Option<Summary>,
    pub curve: Vec<CurvePoint>,
    /// Thresholds searched on this data (`--tune`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tuned: Option<Tuned>,
}

impl Report {
    /// The summaries present, overall first, each with its (text, page) label.
    fn summaries(&self) -> Vec<(&'static str, &'static str, &Summary)> {
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

/// Reads JSONL labelled questions (blank lines skipped; a bad line is an error naming it).
pub fn load(path: &Path) -> anyhow::Result<Vec<EvalItem>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let item: EvalItem = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))?;
        if item.question.trim().is_empty() {
            anyhow::bail!("{}:{}: the question is empty", path.display(), i + 1);
        }
        items.push(item);
    }
    if items.is_empty() {
        anyhow::bail!("{} holds no questions", path.display());
    }
    Ok(items)
}

/// Judges one reply against its label.
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

/// What `run` is asked to do besides measuring.
pub struct EvalOptions<'a> {
    pub json: bool,
    pub report: Option<&'a Path>,
    /// Search thresholds keeping at least this share of out-of-scope questions held.
    pub tune: Option<f64>,
    /// The knowledge base (named in the command that applies tuned thresholds).
    pub kb: &'a str,
}

/// Asks every question and summarises the outcomes, overall and per language.
pub async fn measure(asker: &Asker<'_>, data: &Path, items: &[EvalItem]) -> (Report, Vec<Outcome>) {
    let mut outcomes = Vec::with_capacity(items.len());
    for item in items {
        let asked = asker.ask(&item.question, None).await;
        outcomes.push(judge(item, &asked));
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
        data: data.display().to_string(),
        overall: summarise(&all_items, &all),
        zh: by_lang("zh"),
        en: by_lang("en"),
        curve: curve(items, &outcomes),
        tuned: None,
    };
    (out, outcomes)
}

/// Asks every question, prints the summary, and writes the report when asked.
pub async fn run(asker: &Asker<'_>, data: &Path, opts: EvalOptions<'_>) -> anyhow::Result<()> {
    let EvalOptions {
        json,
        report,
        tune,
        kb,
    } = opts;
    let items = load(data)?;
    if tune.is_some() {
        super::kb_tune::check_data(&items)?;
    }
    let (out, outcomes) = measure(asker, data, &items).await;
    let out = match tune {
        Some(min_held) => {
            let before = Rates::of(asker.thresholds(), &out.overall);
            Report {
                tuned: Some(tune_thresholds(asker, &items, before, min_held).await?),
                ..out
            }
        }
        None => out,
    };
    if let Some(dir) = report {
        std::fs::create_dir_all(dir)?;
        let detail = serde_json::json!({ "summary": &out, "questions": &outcomes });
        std::fs::write(
            dir.join("metrics.json"),
            serde_json::to_vec_pretty(&detail)?,
        )?;
        std::fs::write(dir.join("index.html"), render(&out, &outcomes))?;
    }
    if json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        for (name, _, s) in out.summaries() {
            println!(
                "{name:>3}: {} questions ({} in scope): right answers {:.1}%, answered {:.1}% (precision {:.1}%), suggested {:.1}%, fell back {:.1}%, out of scope held {:.1}%, median reply {} chars, latency p50 {:.1} ms p99 {:.1} ms",
                s.questions,
                s.in_scope,
                100.0 * s.right_answer_rate,
                100.0 * s.answer_rate,
                100.0 * s.answer_precision,
                100.0 * s.suggest_rate,
                100.0 * s.fallback_rate,
                100.0 * s.out_of_scope_held,
                s.reply_chars_median,
                s.latency_ms_p50,
                s.latency_ms_p99
            );
        }
        if let Some(t) = &out.tuned {
            println!(
                "tuned on this data (out of scope held ≥ {:.0}%): right answers {:.1}% → {:.1}%, precision {:.1}% → {:.1}%, out of scope held {:.1}% → {:.1}%",
                100.0 * t.min_held,
                100.0 * t.before.right_answer_rate,
                100.0 * t.after.right_answer_rate,
                100.0 * t.before.answer_precision,
                100.0 * t.after.answer_precision,
                100.0 * t.before.out_of_scope_held,
                100.0 * t.after.out_of_scope_held
            );
            println!("apply with: {}", apply_command(kb, &t.after.thresholds));
            if let Some(dir) = report {
                println!(
                    "       or: kefu kb thresholds --kb {kb} --from-report {}",
                    dir.display()
                );
            }
        }
    }
    Ok(())
}

fn esc(s: &str) -> String {
    html_escape::encode_text(s).to_string()
}

/// The report page: summary table, the curve as inline SVG, then every question.
fn render(r: &Report, outcomes: &[Outcome]) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Answer quality — {data}</title>\
         <style>body{{font:14px system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}}\
         .bad{{background:#fde8e8}}.num{{text-align:right}}svg{{background:#fafafa;border:1px solid #ddd}}</style></head>\
         <body><h1>Answer quality / 回答质量</h1><p>Data: <code>{data}</code></p><table><tr><th></th>\
         <th>questions</th><th>right answers</th><th>answered</th><th>precision</th><th>suggested</th>\
         <th>fell back</th><th>out of scope held</th><th>median reply</th><th>p50 ms</th><th>p99 ms</th></tr>",
        data = esc(&r.data)
    );
    for (_, name, s) in r.summaries() {
        let _ = write!(
            h,
            "<tr><td>{name}</td><td class=num>{}</td><td class=num>{:.1}%</td><td class=num>{:.1}%</td>\
             <td class=num>{:.1}%</td><td class=num>{:.1}%</td><td class=num>{:.1}%</td><td class=num>{:.1}%</td>\
             <td class=num>{}</td><td class=num>{:.1}</td><td class=num>{:.1}</td></tr>",
            s.questions,
            100.0 * s.right_answer_rate,
            100.0 * s.answer_rate,
            100.0 * s.answer_precision,
            100.0 * s.suggest_rate,
            100.0 * s.fallback_rate,
            100.0 * s.out_of_scope_held,
            s.reply_chars_median,
            s.latency_ms_p50,
            s.latency_ms_p99
        );
    }
    h.push_str("</table>");
    if let Some(t) = &r.tuned {
        let _ = write!(
            h,
            "<h2>Tuned thresholds / 调优后的阈值</h2><p>Searched on this data, keeping at least {:.0}% of \
             out-of-scope questions held / 在本数据上搜索，至少保持 {:.0}% 的范围外问题不作答。</p>\
             <table><tr><th></th><th>answer</th><th>suggest</th><th>margin</th><th>doc answer</th>\
             <th>doc suggest</th><th>right answers</th><th>precision</th><th>out of scope held</th></tr>",
            100.0 * t.min_held,
            100.0 * t.min_held
        );
        for (name, r) in [("now / 当前", &t.before), ("tuned / 调优", &t.after)] {
            let x = &r.thresholds;
            let _ = write!(
                h,
                "<tr><td>{name}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td>\
                 <td class=num>{}</td><td class=num>{}</td><td class=num>{:.1}%</td><td class=num>{:.1}%</td>\
                 <td class=num>{:.1}%</td></tr>",
                x.answer,
                x.suggest,
                x.margin,
                x.doc_answer,
                x.doc_suggest,
                100.0 * r.right_answer_rate,
                100.0 * r.answer_precision,
                100.0 * r.out_of_scope_held
            );
        }
        let _ = write!(
            h,
            "</table><p>Apply / 应用：<code>kefu kb thresholds --from-report DIR</code></p>"
        );
    }
    h.push_str("<h2>Best-hit threshold / 阈值曲线</h2><p>Blue: coverage of in-scope questions; green: precision of the best hit; red: out-of-scope questions over the threshold.</p>");
    let (w, ht, pad) = (640.0, 240.0, 30.0);
    let x = |t: f32| pad + (f64::from(t) - 0.2) / 0.75 * (w - 2.0 * pad);
    let y = |v: f64| ht - pad - v * (ht - 2.0 * pad);
    let _ = write!(
        h,
        "<svg width={w} height={ht} xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for (color, pick) in [
        (
            "#2563eb",
            (|p: &CurvePoint| p.coverage) as fn(&CurvePoint) -> f64,
        ),
        ("#16a34a", |p: &CurvePoint| p.precision),
        ("#dc2626", |p: &CurvePoint| p.out_of_scope_answered),
    ] {
        let pts: Vec<String> = r
            .curve
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.threshold), y(pick(p))))
            .collect();
        let _ = write!(
            h,
            "<polyline fill=none stroke=\"{color}\" stroke-width=2 points=\"{}\"/>",
            pts.join(" ")
        );
    }
    for t in [0.2f32, 0.4, 0.6, 0.8] {
        let _ = write!(
            h,
            "<text x={:.0} y={:.0} font-size=10>{t:.1}</text>",
            x(t),
            ht - 10.0
        );
    }
    h.push_str("</svg><h2>Questions / 问题</h2><table><tr><th>question</th><th>band</th><th>decision</th><th>top hit</th><th>score</th><th>reply</th><th>cited</th><th>ok</th></tr>");
    for o in outcomes {
        let _ = write!(
            h,
            "<tr{cls}><td>{q}{oos}</td><td>{band}</td><td>{d}</td><td>{top}</td><td class=num>{score}</td><td>{reply}</td><td>{cited}</td><td>{ok}</td></tr>",
            cls = if o.correct { "" } else { " class=bad" },
            q = esc(&o.question),
            oos = if o.out_of_scope { " <i>(out of scope)</i>" } else { "" },
            band = o.band,
            d = esc(&o.decision),
            top = esc(o.top_id.as_deref().unwrap_or("")),
            score = o.top_score.map(|s| format!("{s:.3}")).unwrap_or_default(),
            reply = esc(&o.reply),
            cited = esc(&o.cited.join(", ")),
            ok = if o.correct { "✓" } else { "✗" },
        );
    }
    h.push_str("</table></body></html>");
    h
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
        assert!(render(
            &Report {
                data: "d".into(),
                overall: s.clone(),
                zh: None,
                en: Some(s),
                curve: curve(&items, &outcomes),
                tuned: None
            },
            &outcomes
        )
        .contains("<svg"));
    }
}
