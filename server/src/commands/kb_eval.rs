//! `kefu kb eval`: answer quality on labelled questions (`answer_eval`), asked exactly as the chat
//! asks them, printed as text or JSON, optionally with thresholds searched on the data (`--tune`)
//! and an HTML page with every question and the coverage/precision curve over the answer threshold.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::ask::Asker;
use super::kb_tune::{apply_command, tune as tune_thresholds, Rates, Tuned};
pub use crate::answer_eval::{CurvePoint, EvalItem, Outcome, Report, Summary};

/// What `kefu kb eval` reports: the measurement, and the thresholds searched (`--tune`).
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    #[serde(flatten)]
    pub report: Report,
    /// Thresholds searched on this data (`--tune`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tuned: Option<Tuned>,
}

/// Reads JSONL labelled questions (blank lines skipped; a bad line is an error naming it).
pub fn load(path: &Path) -> anyhow::Result<Vec<EvalItem>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    crate::answer_eval::parse(&text, &path.display().to_string()).map_err(anyhow::Error::msg)
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

/// Asks every question as the chat would and summarises the outcomes.
pub async fn measure(asker: &Asker<'_>, data: &Path, items: &[EvalItem]) -> (Report, Vec<Outcome>) {
    crate::answer_eval::measure(
        |q: String| async move { asker.ask(&q, None).await },
        &data.display().to_string(),
        items,
        &|_, _| {},
    )
    .await
}

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
    let (measured, outcomes) = measure(asker, data, &items).await;
    let tuned = match tune {
        Some(min_held) => {
            let before = Rates::of(asker.thresholds(), &measured.overall);
            Some(tune_thresholds(asker, &items, before, min_held).await?)
        }
        None => None,
    };
    let out = EvalReport {
        report: measured,
        tuned,
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
        for (name, _, s) in out.report.summaries() {
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
fn render(r: &EvalReport, outcomes: &[Outcome]) -> String {
    let tuned = &r.tuned;
    let r = &r.report;
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
    if let Some(t) = tuned {
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
    use crate::answer_eval::{curve, summarise};

    #[test]
    fn the_report_page_draws_the_curve() {
        let items: Vec<EvalItem> =
            crate::answer_eval::parse("{\"question\":\"a\",\"expect\":\"x\"}", "d").expect("items");
        let outcomes = vec![Outcome {
            question: "a".into(),
            lang: "en",
            out_of_scope: false,
            band: "answer",
            decision: "answer".into(),
            mode: "faq",
            reply: "<b>x</b>".into(),
            cited: vec!["x".into()],
            top_id: Some("x".into()),
            top_score: Some(0.5),
            correct: true,
            contains: false,
            cite_ok: false,
            latency_ms: 1.0,
        }];
        let s = summarise(
            &items.iter().collect::<Vec<_>>(),
            &outcomes.iter().collect::<Vec<_>>(),
        );
        let page = render(
            &EvalReport {
                report: Report {
                    data: "d".into(),
                    overall: s.clone(),
                    zh: None,
                    en: Some(s),
                    curve: curve(&items, &outcomes),
                },
                tuned: None,
            },
            &outcomes,
        );
        assert!(page.contains("<svg") && page.contains("&lt;b&gt;x"));
    }
}
