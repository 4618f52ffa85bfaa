//! The bot's answers, end to end through `kefu kb ask` and `kefu kb eval` (the real binary, the
//! real model): the stable JSON shape, FAQ and document answers in the visitor's language, silence
//! out of scope, and quality floors on the demo eval set and a fixed XQuAD subset.

use std::path::{Path, PathBuf};

use kefu_e2e::{kefu, run, workspace_root};
use serde_json::Value;

fn import(data: &Path, kb: &str, files: &[PathBuf]) {
    let mut c = kefu(data);
    c.args(["kb", "import", "--kb", kb]).args(files);
    run_ok(c);
}

/// Runs a `kefu` command that must succeed (its stderr is the failure message).
fn run_ok(c: std::process::Command) -> std::process::Output {
    let out = run(c);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn demo_files() -> Vec<PathBuf> {
    let dir = workspace_root().join("kb/demo");
    ["faq-zh.csv", "faq-en.csv", "policy.md"]
        .iter()
        .map(|f| dir.join(f))
        .collect()
}

fn ask(data: &Path, kb: &str, questions: &[&str]) -> Vec<Value> {
    let mut c = kefu(data);
    c.args(["kb", "ask", "--kb", kb, "--json"]).args(questions);
    let out = run_ok(c);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn eval(data: &Path, kb: &str, file: &Path, report: Option<&Path>) -> Value {
    eval_with(data, kb, file, report, &[])
}

fn eval_with(data: &Path, kb: &str, file: &Path, report: Option<&Path>, extra: &[&str]) -> Value {
    let mut c = kefu(data);
    c.args(["kb", "eval", "--kb", kb, "--json", "--data"])
        .arg(file)
        .args(extra);
    if let Some(dir) = report {
        c.arg("--report").arg(dir);
    }
    let out = run_ok(c);
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    eprintln!(
        "{}: {}",
        file.display(),
        serde_json::to_string_pretty(&v["overall"]).unwrap_or_default()
    );
    for lang in ["zh", "en"] {
        if !v[lang].is_null() {
            eprintln!("  {lang}: {}", v[lang]);
        }
    }
    v
}

fn rate(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path:?} missing in {v}"))
}

#[test]
fn ask_answers_as_the_bot_does_in_the_stable_json_shape() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    import(&data, "shop", &demo_files());
    let replies = ask(
        &data,
        "shop",
        &[
            "多久发货？",
            "When do my loyalty points expire?",
            "积分有效期多久",
            "How long does shipping take?",
            "can you book me a taxi",
            "转人工",
        ],
    );
    assert_eq!(replies.len(), 6);
    for r in &replies {
        let mut keys: Vec<&str> = r
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "answer",
                "band",
                "citations",
                "mode",
                "query",
                "quick_replies"
            ],
            "{r}"
        );
        for c in r["citations"].as_array().expect("citations") {
            let mut ck: Vec<&str> = c
                .as_object()
                .expect("citation")
                .keys()
                .map(String::as_str)
                .collect();
            ck.sort_unstable();
            assert_eq!(ck, ["id", "source", "title"], "{c}");
        }
    }
    // An FAQ answer, cited.
    assert_eq!(replies[0]["band"], "answer", "{}", replies[0]);
    assert_eq!(replies[0]["mode"], "faq");
    assert_eq!(replies[0]["citations"][0]["id"], "zh-ship-time");
    // A document answer: the sentence that answers, in the visitor's language, cited by heading.
    let points = &replies[1];
    assert_eq!(points["band"], "answer", "{points}");
    assert_eq!(points["mode"], "extractive");
    let text = points["answer"].as_str().unwrap_or("");
    assert!(
        text.contains("end of the following calendar year"),
        "{points}"
    );
    assert!(
        !text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
        "{points}"
    );
    assert!(text.split_whitespace().count() <= 60, "{points}");
    assert!(
        points["citations"][0]["title"]
            .as_str()
            .is_some_and(|t| t.contains("Loyalty points") && !t.contains("积分")),
        "{points}"
    );
    let zh = &replies[2];
    assert_eq!(zh["band"], "answer", "{zh}");
    assert!(
        zh["answer"]
            .as_str()
            .is_some_and(|t| t.contains("次年年底") && !t.contains("Points")),
        "{zh}"
    );
    // A paraphrase of an entry's question answers outright, without "did you mean".
    let shipping = &replies[3];
    assert_eq!(shipping["band"], "answer", "{shipping}");
    assert!(shipping["quick_replies"]
        .as_array()
        .is_some_and(|q| q.is_empty()));
    // Out of scope: no sourced answer.
    assert_ne!(replies[4]["band"], "answer", "{}", replies[4]);
    assert!(
        replies[4]["citations"]
            .as_array()
            .is_some_and(|c| c.is_empty()),
        "{}",
        replies[4]
    );
    // Rules run first: a handoff request is not answered from the knowledge base.
    assert_eq!(replies[5]["band"], "none");
    assert!(
        replies[5]["answer"]
            .as_str()
            .is_some_and(|t| t.contains("人工")),
        "{}",
        replies[5]
    );
}

#[test]
fn short_follow_ups_are_read_with_the_previous_question() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    import(&data, "shop", &demo_files());
    let mut c = kefu(&data);
    c.args(["kb", "ask", "--kb", "shop", "--json", "--conversation"])
        .args([
            "运费怎么算",
            "那退货呢？",
            "How much is shipping?",
            "and to Hong Kong?",
        ]);
    let out = run_ok(c);
    let replies: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let cited = |i: usize| {
        replies[i]["citations"][0]["id"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(cited(0), "zh-ship-fee", "{}", replies[0]);
    assert_eq!(cited(1), "zh-return-fee", "{}", replies[1]);
    assert_eq!(cited(2), "en-ship-fee", "{}", replies[2]);
    assert_eq!(cited(3), "en-ship-abroad", "{}", replies[3]);
}

#[test]
fn demo_eval_set_meets_its_floors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    import(&data, "demo", &demo_files());
    let report = tmp.path().join("report");
    let v = eval_with(
        &data,
        "demo",
        &workspace_root().join("tests/fixtures/answers/demo.jsonl"),
        Some(&report),
        &["--tune"],
    );
    assert!(rate(&v, &["zh", "in_scope"]) >= 100.0 && rate(&v, &["en", "in_scope"]) >= 100.0);
    assert!(rate(&v, &["overall", "out_of_scope"]) >= 40.0);
    for lang in ["zh", "en"] {
        let right = rate(&v, &[lang, "right_answer_rate"]);
        assert!(right >= DEMO_RIGHT_FLOOR, "{lang} right answers {right}");
    }
    let held = rate(&v, &["overall", "out_of_scope_held"]);
    assert!(held >= DEMO_OOS_HELD_FLOOR, "out of scope held {held}");
    let html = std::fs::read_to_string(report.join("index.html")).expect("report page");
    assert!(html.contains("<svg") && html.contains("积分什么时候过期"));
    assert!(html.contains("Tuned thresholds / 调优后的阈值"));
    // --tune searched thresholds from the defaults: never worse on this data, out of scope held.
    let tuned = &v["tuned"];
    let (now, after) = (
        rate(tuned, &["before", "right_answer_rate"]),
        rate(tuned, &["right_answer_rate"]),
    );
    assert!(after >= now, "tuned right answers {after} < {now}");
    assert!(
        rate(tuned, &["out_of_scope_held"]) >= 0.95 || rate(tuned, &["out_of_scope_held"]) >= held
    );
    // …and `kefu kb thresholds --from-report` applies exactly what the report holds.
    let mut c = kefu(&data);
    c.args(["kb", "thresholds", "--kb", "demo", "--from-report"])
        .arg(&report);
    let out = run_ok(c);
    let applied: Value = serde_json::from_slice(&out.stdout).expect("thresholds JSON");
    assert_eq!(applied, tuned["thresholds"]);
    let mut c = kefu(&data);
    c.args(["kb", "thresholds", "--kb", "demo", "--from-report"])
        .arg(tmp.path().join("no-such-report"));
    let out = run(c);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn xquad_subset_answers_from_documents() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let fixtures = workspace_root().join("tests/fixtures/xquad");
    for lang in ["en", "zh"] {
        let kb = format!("xquad-{lang}");
        import(&data, &kb, &[fixtures.join(format!("xquad-{lang}-ci.md"))]);
        let v = eval(
            &data,
            &kb,
            &fixtures.join(format!("xquad-{lang}-ci.jsonl")),
            None,
        );
        let contains = rate(&v, &["overall", "contains_rate"]);
        let cite = rate(&v, &["overall", "cite_rate"]);
        let median = rate(&v, &["overall", "reply_chars_median"]);
        let (contains_floor, median_ceiling) = match lang {
            "en" => (XQUAD_EN_CONTAINS_FLOOR, XQUAD_EN_MEDIAN_CEILING),
            _ => (XQUAD_ZH_CONTAINS_FLOOR, XQUAD_ZH_MEDIAN_CEILING),
        };
        assert!(
            contains >= contains_floor,
            "{lang}: gold span in {contains}"
        );
        assert!(
            cite >= XQUAD_CITE_FLOOR,
            "{lang}: right paragraph cited {cite}"
        );
        assert!(
            median <= median_ceiling,
            "{lang}: median reply {median} chars"
        );
    }
    // Questions without out-of-scope ones cannot tune thresholds: refused before asking any.
    let mut c = kefu(&data);
    c.args(["kb", "eval", "--kb", "xquad-en", "--tune", "--data"])
        .arg(fixtures.join("xquad-en-ci.jsonl"));
    let out = run(c);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--tune needs out-of-scope questions"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// Floors a few points under what was measured when they were pinned (demo: zh 95.5% / en 97.2%
// right answers, 95% out of scope held; XQuAD subset: gold span in 69.5% (en, long sentences cut
// to their answering clauses) / 84.5% (zh) of replies, right paragraph cited 95.8% / 97.7%,
// median reply 105 (en) / 61 (zh) chars), so that CPU floating-point differences cannot flip them
// but a real regression does.
const DEMO_RIGHT_FLOOR: f64 = 0.91;
const DEMO_OOS_HELD_FLOOR: f64 = 0.92;
const XQUAD_EN_CONTAINS_FLOOR: f64 = 0.65;
const XQUAD_ZH_CONTAINS_FLOOR: f64 = 0.78;
const XQUAD_CITE_FLOOR: f64 = 0.92;
const XQUAD_EN_MEDIAN_CEILING: f64 = 125.0;
const XQUAD_ZH_MEDIAN_CEILING: f64 = 90.0;

/// PDF and DOCX documents (tests/fixtures/ingest, made by scripts/make-ingest-fixtures with
/// LibreOffice) answer with their facts, cited by heading path; a scanned PDF is refused.
#[test]
fn pdf_and_docx_documents_answer_with_their_heading_paths() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = workspace_root().join("tests/fixtures/ingest");
    for (kb, file) in [("pdf", "care-guide.pdf"), ("docx", "care-guide.docx")] {
        import(tmp.path(), kb, &[dir.join(file)]);
        let replies = ask(
            tmp.path(),
            kb,
            &[
                "紫砂壶保修多久？",
                "How long is the clay teapot warranty?",
                "泡完茶以后壶要怎么清洁？",
            ],
        );
        assert_eq!(replies.len(), 3);
        let expect = [
            ("18 个月", "保修期限 Warranty period"),
            ("18-month", "保修期限 Warranty period"),
            ("晾干", "日常清洁 Daily cleaning"),
        ];
        for (reply, (fact, heading)) in replies.iter().zip(expect) {
            assert!(
                reply["band"] == "answer" || reply["band"] == "suggest",
                "{file}: {reply}"
            );
            let answer = reply["answer"].as_str().unwrap_or("");
            assert!(answer.contains(fact), "{file}: {reply}");
            let cited = &reply["citations"][0];
            assert!(
                cited["source"].as_str().unwrap_or("").contains(file)
                    && cited["title"].as_str().unwrap_or("").contains(heading),
                "{file}: {reply}"
            );
        }
        assert_eq!(replies[0]["band"], "answer", "{file}: {}", replies[0]);
        assert_eq!(replies[1]["band"], "answer", "{file}: {}", replies[1]);
        // The reply is in the visitor's language: no English sentence in a Chinese answer.
        assert!(!replies[0]["answer"]
            .as_str()
            .unwrap_or("")
            .contains("warranty"));
    }
    let mut c = kefu(tmp.path());
    c.args(["kb", "import", "--kb", "scans"])
        .arg(dir.join("scanned.pdf"));
    let out = run(c);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("scanned.pdf") && err.contains("no text layer"),
        "{err}"
    );
    let mut c = kefu(tmp.path());
    c.args(["kb", "list", "--json"]);
    let list: Value = serde_json::from_slice(&run(c).stdout).expect("list");
    assert!(
        !list
            .as_array()
            .expect("list")
            .iter()
            .any(|k| k["name"] == "scans"),
        "nothing was imported: {list}"
    );
}
