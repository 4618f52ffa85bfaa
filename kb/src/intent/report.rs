//! The evaluation report: one self-contained HTML page (inline SVG plots, no scripts) with the
//! headline metrics, confidence histograms in and out of scope, the coverage/accuracy curve over the
//! threshold, and the most confused intent pairs; plus `metrics.json` beside it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{KbError, Result};
use crate::intent::data::OOS;
use crate::intent::metrics::{confused_pairs, coverage_curve, Metrics, Scored};
use crate::intent::model::ModelMeta;

const W: f64 = 640.0;
const H: f64 = 260.0;
const PAD: f64 = 40.0;

fn esc(s: &str) -> String {
    html_escape::encode_text(s).to_string()
}

/// Writes `index.html` and `metrics.json` into `dir`; returns the HTML path.
pub fn write(
    dir: &Path,
    meta: &ModelMeta,
    data_file: &str,
    metrics: &Metrics,
    scored: &[Scored],
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|source| KbError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let json = serde_json::to_vec_pretty(metrics)
        .map_err(|e| KbError::InvalidInput(format!("metrics: {e}")))?;
    let mpath = dir.join("metrics.json");
    std::fs::write(&mpath, json).map_err(|source| KbError::Io {
        path: mpath,
        source,
    })?;
    let html = render(meta, data_file, metrics, scored);
    let path = dir.join("index.html");
    std::fs::write(&path, html).map_err(|source| KbError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// The report page.
pub fn render(meta: &ModelMeta, data_file: &str, m: &Metrics, scored: &[Scored]) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Intent model {v} — evaluation</title>\
         <style>body{{font:14px system-ui,sans-serif;max-width:760px;margin:2em auto;color:#222}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}\
         .num{{text-align:right}}svg{{background:#fafafa;border:1px solid #ddd}}</style></head><body>\
         <h1>Intent model {v}</h1><p>Evaluated on <code>{data}</code> ({n} examples: {nin} in scope, {noos} out of scope). \
         Embedding model <code>{emb}</code>, {labels} intents, threshold {t:.3} ({cal}).</p>",
        v = esc(&meta.version),
        data = esc(data_file),
        n = m.n,
        nin = m.n_in_scope,
        noos = m.n_oos,
        emb = esc(&meta.embedding_model),
        labels = meta.labels.len(),
        t = m.threshold,
        cal = esc(&meta.calibration),
    );
    let _ = write!(
        h,
        "<h2>Metrics</h2><table><tr><th>in-scope accuracy</th><td class=num>{:.2}%</td></tr>\
         <tr><th>out-of-scope recall</th><td class=num>{:.2}%</td></tr>\
         <tr><th>out-of-scope precision</th><td class=num>{:.2}%</td></tr>\
         <tr><th>macro-F1 (oos as a class)</th><td class=num>{:.4}</td></tr></table>",
        m.in_scope_accuracy * 100.0,
        m.oos_recall * 100.0,
        m.oos_precision * 100.0,
        m.macro_f1
    );
    h.push_str("<h2>Confidence of the top intent</h2><p>Blue: in-scope queries; orange: out-of-scope queries; the line is the threshold.</p>");
    h.push_str(&histogram(scored, m.threshold));
    h.push_str("<h2>Coverage and accuracy over the threshold</h2><p>For each threshold: the share of in-scope queries kept in scope (coverage, blue), the accuracy on those kept (green) and the out-of-scope recall (orange).</p>");
    h.push_str(&curve(scored, m.threshold));
    h.push_str("<h2>Most confused intent pairs</h2>");
    let pairs = confused_pairs(scored, m.threshold, 15);
    if pairs.is_empty() {
        h.push_str("<p>No errors.</p>");
    } else {
        h.push_str("<table><tr><th>gold</th><th>predicted</th><th class=num>count</th></tr>");
        for (g, p, n) in pairs {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=num>{n}</td></tr>",
                esc(&g),
                esc(&p)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    h
}

fn axes(svg: &mut String, y_label: &str) {
    let _ = write!(
        svg,
        "<line x1=\"{PAD}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#333\"/>\
         <line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{b}\" stroke=\"#333\"/>",
        b = H - PAD,
        r = W - PAD
    );
    for i in 0..=10 {
        let x = PAD + (W - 2.0 * PAD) * i as f64 / 10.0;
        let _ = write!(
            svg,
            "<text x=\"{x}\" y=\"{y}\" font-size=\"10\" text-anchor=\"middle\">{:.1}</text>",
            i as f64 / 10.0,
            y = H - PAD + 14.0
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{x}\" y=\"{y}\" font-size=\"11\" text-anchor=\"middle\">confidence / threshold</text>\
         <text x=\"12\" y=\"{PAD}\" font-size=\"11\">{}</text>",
        esc(y_label),
        x = W / 2.0,
        y = H - 8.0
    );
}

fn x_of(v: f64) -> f64 {
    PAD + (W - 2.0 * PAD) * v.clamp(0.0, 1.0)
}

fn y_of(v: f64) -> f64 {
    H - PAD - (H - 2.0 * PAD) * v.clamp(0.0, 1.0)
}

fn threshold_line(svg: &mut String, t: f32) {
    let x = x_of(t as f64);
    let _ = write!(
        svg,
        "<line x1=\"{x}\" y1=\"{PAD}\" x2=\"{x}\" y2=\"{b}\" stroke=\"#c00\" stroke-dasharray=\"4 3\"/>",
        b = H - PAD
    );
}

/// Normalised histograms (share of each group per bin) of the top confidence.
fn histogram(scored: &[Scored], t: f32) -> String {
    const BINS: usize = 20;
    let mut counts = [[0usize; BINS]; 2];
    for s in scored {
        let group = usize::from(s.gold == OOS);
        let bin = ((s.confidence.clamp(0.0, 1.0) * BINS as f32) as usize).min(BINS - 1);
        counts[group][bin] += 1;
    }
    let totals = [
        counts[0].iter().sum::<usize>().max(1),
        counts[1].iter().sum::<usize>().max(1),
    ];
    let max_share = (0..2)
        .flat_map(|g| counts[g].iter().map(move |&c| c as f64 / totals[g] as f64))
        .fold(0.0, f64::max)
        .max(1e-9);
    let mut svg = format!(
        "<svg width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"confidence histogram\">"
    );
    axes(&mut svg, &format!("share (max {:.0}%)", max_share * 100.0));
    let bw = (W - 2.0 * PAD) / BINS as f64;
    for (g, color) in [(0usize, "#3b7dd8"), (1, "#e8883a")] {
        for (i, &c) in counts[g].iter().enumerate() {
            let share = c as f64 / totals[g] as f64 / max_share;
            let x = PAD + bw * i as f64 + if g == 0 { 1.0 } else { bw / 2.0 };
            let y = y_of(share);
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"{color}\"><title>{c}</title></rect>",
                w = bw / 2.0 - 1.0,
                h = (H - PAD - y).max(0.0)
            );
        }
    }
    threshold_line(&mut svg, t);
    svg.push_str("</svg>");
    svg
}

fn curve(scored: &[Scored], t: f32) -> String {
    let points = coverage_curve(scored, 50);
    let mut svg = format!(
        "<svg width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"coverage and accuracy\">"
    );
    axes(&mut svg, "share (0–1)");
    type Pick = fn(&crate::intent::metrics::CurvePoint) -> f64;
    let series: [(Pick, &str); 3] = [
        (|p| p.coverage, "#3b7dd8"),
        (|p| p.accuracy, "#2a9d4b"),
        (|p| p.oos_recall, "#e8883a"),
    ];
    for (pick, color) in series {
        let pts: Vec<String> = points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x_of(p.threshold as f64), y_of(pick(p))))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            pts.join(" ")
        );
    }
    threshold_line(&mut svg, t);
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::metrics::evaluate;

    #[test]
    fn report_escapes_labels_and_draws_plots() {
        let scored = vec![
            Scored {
                gold: "<b>退款</b>".into(),
                top: "track".into(),
                confidence: 0.9,
            },
            Scored {
                gold: OOS.into(),
                top: "track".into(),
                confidence: 0.2,
            },
        ];
        let m = evaluate(&scored, 0.5);
        let meta: ModelMeta = serde_json::from_value(serde_json::json!({
            "version": "v1", "created_at": 0, "embedding_model": "e5", "dim": 2,
            "labels": ["track"], "threshold": 0.5, "calibration": "test", "hidden": 0,
            "data_file": "d", "data_hash": "h", "train_examples": 1, "oos_examples": 0,
            "epochs": 1, "train_seconds": 0.0, "metrics": null
        }))
        .expect("meta");
        let html = render(&meta, "val.jsonl", &m, &scored);
        assert!(html.contains("&lt;b&gt;退款&lt;/b&gt;"));
        assert!(!html.contains("<b>退款"));
        assert_eq!(html.matches("<svg").count(), 2);
        assert!(html.contains("<polyline"));
    }
}
