//! Training from chat history with the real encoder: import a small bilingual history (JSONL and
//! CSV, with bad records), mine FAQ proposals into the review queue, review them, see approved
//! entries answer in the knowledge base, and list the questions it cannot answer.

use std::path::Path;

use kefu_e2e::{kefu, run, workspace_root};
use serde_json::Value;

fn ok(out: std::process::Output) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    (stdout, stderr)
}

fn kefu_json(dir: &Path, args: &[&str]) -> Value {
    let mut c = kefu(dir);
    c.args(args);
    let (stdout, _) = ok(run(c));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn queue(dir: &Path, status: &str) -> Vec<Value> {
    kefu_json(
        dir,
        &["train", "review", "list", "--json", "--status", status],
    )
    .as_array()
    .expect("list")
    .clone()
}

#[test]
fn mined_faqs_go_through_review_into_the_knowledge_base() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let fixtures = workspace_root().join("tests/fixtures/history");
    let jsonl = fixtures.join("chat-history.jsonl");
    let csv = fixtures.join("chat-history.csv");
    let demo = workspace_root().join("kb/demo");
    let mut c = kefu(dir);
    c.args(["kb", "import"])
        .arg(demo.join("faq-zh.csv"))
        .arg(demo.join("faq-en.csv"));
    ok(run(c));

    // Import: bad records are reported with file and line, and skipped.
    let mut c = kefu(dir);
    c.args(["train", "import", "--json"]).arg(&jsonl).arg(&csv);
    let (stdout, stderr) = ok(run(c));
    let reports: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(reports[0]["report"]["added"], 13, "{reports:?}");
    assert_eq!(reports[0]["skipped"], 2);
    assert_eq!(reports[1]["report"]["added"], 2);
    assert_eq!(reports[1]["skipped"], 1);
    assert!(
        stderr.contains("chat-history.jsonl:14: message 1: role must be"),
        "{stderr}"
    );
    assert!(
        stderr.contains("chat-history.jsonl:15: not a conversation"),
        "{stderr}"
    );
    assert!(
        stderr.contains("chat-history.csv:6: role must be"),
        "{stderr}"
    );
    // Re-importing changes nothing.
    let mut c = kefu(dir);
    c.args(["train", "import", "--json"]).arg(&jsonl);
    let (stdout, _) = ok(run(c));
    let again: Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(again["report"]["unchanged"], 13);
    assert_eq!(again["report"]["added"], 0);

    // Gaps before mining: the app question (asked 3 times, in both files) tops the list.
    let gaps = kefu_json(dir, &["train", "gaps", "--json"]);
    let top = &gaps[0];
    assert_eq!(top["count"], 3, "{gaps}");
    assert!(
        top["question"].as_str().unwrap_or("").contains("app"),
        "{gaps}"
    );
    let all: Vec<String> = gaps
        .as_array()
        .expect("gaps")
        .iter()
        .flat_map(|g| g["examples"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e.as_str().map(str::to_string))
        .collect();
    assert!(all.iter().any(|q| q.contains("代理")), "{gaps}");
    assert!(
        !all.iter().any(|q| q.contains("多久发货")),
        "the demo knowledge base answers shipping times: {gaps}"
    );

    // Mine: three clusters proposed (app, student discount, 代理), shipping already answered.
    let mined = kefu_json(dir, &["train", "mine", "--json"]);
    assert_eq!(mined["conversations"], 15);
    assert_eq!(mined["queue"]["added"], 3, "{mined}");
    assert_eq!(mined["queue"]["already_answered"], 1, "{mined}");
    let pending = queue(dir, "pending");
    assert_eq!(pending.len(), 3);
    let find = |needle: &str| -> Value {
        pending
            .iter()
            .find(|p| {
                let all = format!("{} {}", p["question"], p["alternates"]);
                all.contains(needle)
            })
            .unwrap_or_else(|| panic!("no proposal about {needle}: {pending:?}"))
            .clone()
    };
    let app = find("app");
    assert_eq!(app["support"], 3);
    // The conversations it came from are kept as examples (source file / conversation id).
    let sources = app["conversations"].as_array().cloned().unwrap_or_default();
    assert_eq!(sources.len(), 3, "{app}");
    assert!(sources.iter().all(|c| c
        .as_str()
        .is_some_and(|c| c.contains(".jsonl/") || c.contains(".csv/"))));
    assert_eq!(app["lang"], "en");
    assert!(app["answer"].as_str().unwrap_or("").contains("Demo Shop"));
    let student = find("student");
    assert_eq!(student["support"], 3);
    assert_eq!(student["alternates"].as_array().map(Vec::len), Some(2));
    let agency = find("代理");
    assert_eq!(agency["lang"], "zh");
    assert!(agency["answer"]
        .as_str()
        .unwrap_or("")
        .contains("partner@example.com"));

    // Review: edit + approve the app entry, approve the student one, reject the other.
    let id = |p: &Value| p["id"].as_i64().expect("id").to_string();
    let mut c = kefu(dir);
    c.args([
        "train",
        "review",
        "edit",
        &id(&app),
        "--answer",
        "Yes: get the Demo Shop app from the App Store or Google Play.",
    ]);
    ok(run(c));
    let mut c = kefu(dir);
    c.args(["train", "review", "approve", &id(&app), &id(&student)]);
    let (stdout, _) = ok(run(c));
    assert_eq!(stdout.matches("approved #").count(), 2, "{stdout}");
    let mut c = kefu(dir);
    c.args(["train", "review", "reject", &id(&agency)]);
    ok(run(c));
    let mut c = kefu(dir);
    c.args(["train", "review", "reject", &id(&app)]);
    let out = run(c);
    assert!(
        !out.status.success(),
        "an approved entry cannot be rejected"
    );
    assert_eq!(queue(dir, "approved").len(), 2);
    assert_eq!(queue(dir, "rejected").len(), 1);
    assert!(queue(dir, "pending").is_empty());

    // The approved entries answer now, with the edit, cited to the reviewed source.
    let mut c = kefu(dir);
    c.args([
        "kb",
        "query",
        "--json",
        "Is there a mobile app?",
        "学生有折扣吗？",
    ]);
    let (stdout, _) = ok(run(c));
    let answers: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(answers[0]["band"], "answer", "{answers:?}");
    let hit = &answers[0]["hits"][0];
    assert_eq!(hit["source"], "reviewed-faq");
    assert!(hit["answer"]
        .as_str()
        .unwrap_or("")
        .starts_with("Yes: get the Demo Shop app"));

    // Mining again is idempotent: reviewed clusters are left alone, nothing new is queued.
    let again = kefu_json(dir, &["train", "mine", "--json"]);
    assert_eq!(again["queue"]["added"], 0, "{again}");
    assert_eq!(again["queue"]["updated"], 0, "{again}");
    assert!(queue(dir, "pending").is_empty());
    // And the app question is no longer a gap.
    let gaps = kefu_json(dir, &["train", "gaps", "--json"]);
    assert!(
        !gaps.to_string().contains("mobile app"),
        "answered questions are no longer gaps: {gaps}"
    );
}
