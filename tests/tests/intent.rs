//! The intent model end to end with the real encoder: quality floors on CLINC150 validation, the
//! `kefu intent` life cycle (train, predict, list, activate, rollback) and a running server that
//! hot-swaps the active model and routes its intents.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use kefu_e2e::chat::{Api, Chat};
use kefu_e2e::{add_agent, kefu, run, runtime, workspace_root, Server};
use serde_json::{json, Value};

fn ok(out: std::process::Output) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    (stdout, stderr)
}

fn json_line(s: &str) -> Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Of each in-scope intent, CI keeps every `TRAIN_EVERY`-th training and `VAL_EVERY`-th
/// validation example (a fixed subset: 34 + 10 per intent, all out-of-scope examples); the full
/// set is `kefu intent train/eval` on `scripts/clinc150-jsonl`'s output.
const TRAIN_EVERY: usize = 3;
const VAL_EVERY: usize = 2;

/// Writes the CLINC150 subset as labelled JSONL: train + oos_train, val + oos_val.
fn clinc_jsonl(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let src = std::env::var_os("KEFU_CLINC150").map_or_else(
        || workspace_root().join("tests/fixtures/clinc150/train_val.json"),
        Into::into,
    );
    let raw = std::fs::read(&src).expect("read CLINC150");
    let data: Value = serde_json::from_slice(&raw).expect("CLINC150 JSON");
    let mut out = Vec::new();
    for (name, parts) in [
        ("train", ["train", "oos_train"]),
        ("val", ["val", "oos_val"]),
    ] {
        let path = dir.join(format!("{name}.jsonl"));
        let mut f = std::fs::File::create(&path).expect("create");
        let every = if name == "train" {
            TRAIN_EVERY
        } else {
            VAL_EVERY
        };
        let mut seen: std::collections::HashMap<String, usize> = Default::default();
        for part in parts {
            for item in data[part].as_array().expect("split") {
                let intent = item[1].as_str().expect("intent").to_string();
                let n = seen.entry(intent.clone()).or_default();
                *n += 1;
                if intent != "oos" && !(*n - 1).is_multiple_of(every) {
                    continue;
                }
                let line = json!({"text": item[0], "intent": intent});
                writeln!(f, "{line}").expect("write");
            }
        }
        out.push(path);
    }
    (out[0].clone(), out[1].clone())
}

/// Floors pinned a little under what the linear head reaches on CLINC150 val + oos_val with the
/// threshold calibrated out-of-fold on train + oos_train (96.2% / 57%; training is seeded, see the
/// benchmark).
const MIN_IN_SCOPE_ACCURACY: f64 = 0.955;
const MIN_OOS_RECALL: f64 = 0.50;

#[test]
fn clinc150_validation_meets_the_floors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (train, val) = clinc_jsonl(tmp.path());
    let mut c = kefu(tmp.path());
    c.args(["intent", "train", "--json", "--data"]).arg(&train);
    let (stdout, _) = ok(run(c));
    let trained = json_line(&stdout);
    assert_eq!(trained["version"], "v1");
    assert_eq!(trained["intents"], 150);
    assert_eq!(trained["train_examples"], 5100);
    assert_eq!(trained["oos_examples"], 100);
    eprintln!("trained: {trained}");

    let report = tmp.path().join("report");
    let mut c = kefu(tmp.path());
    c.args(["intent", "eval", "--json", "--data"])
        .arg(&val)
        .arg("--report")
        .arg(&report);
    let (stdout, _) = ok(run(c));
    let m = json_line(&stdout);
    eprintln!("CLINC150 val: {m}");
    assert_eq!(m["n"], 1600);
    let acc = m["in_scope_accuracy"].as_f64().expect("accuracy");
    let recall = m["oos_recall"].as_f64().expect("recall");
    assert!(acc >= MIN_IN_SCOPE_ACCURACY, "in-scope accuracy {acc}");
    assert!(recall >= MIN_OOS_RECALL, "oos recall {recall}");
    assert!(m["oos_precision"].as_f64().expect("precision") > 0.5, "{m}");
    assert!(m["macro_f1"].as_f64().expect("f1") > 0.95, "{m}");

    let html = std::fs::read_to_string(report.join("index.html")).expect("report");
    assert_eq!(html.matches("<svg").count(), 2, "histogram and curve");
    assert!(html.contains("Most confused intent pairs"));
    let saved: Value =
        serde_json::from_slice(&std::fs::read(report.join("metrics.json")).expect("metrics"))
            .expect("metrics json");
    assert_eq!(saved["in_scope_accuracy"], m["in_scope_accuracy"]);

    // A second encoder with the out-of-scope output (measured on this subset: 96.0% / 68%,
    // macro-F1 0.953 against 0.950 for the head on e5 alone).
    let mut c = kefu(tmp.path());
    c.args(["intent", "train", "--json", "--oos-class", "--activate"])
        .args(["--also-encoder", "all-minilm-l6-v2", "--data"])
        .arg(&train);
    let v2 = json_line(&ok(run(c)).0);
    assert_eq!(
        (v2["version"].as_str(), v2["also_encoder"].as_str()),
        (Some("v2"), Some("all-minilm-l6-v2")),
        "{v2}"
    );
    let mut c = kefu(tmp.path());
    c.args(["intent", "eval", "--json", "--data"]).arg(&val);
    let both = json_line(&ok(run(c)).0);
    eprintln!("CLINC150 val, e5 + MiniLM with the out-of-scope output: {both}");
    let f1 = |v: &Value| v["macro_f1"].as_f64().expect("f1");
    assert!(f1(&both) > f1(&m), "both {both}\ne5 {m}");
    assert!(
        both["in_scope_accuracy"].as_f64().expect("accuracy") >= MIN_IN_SCOPE_ACCURACY,
        "{both}"
    );
    assert!(
        both["oos_recall"].as_f64().expect("recall") >= 0.62,
        "{both}"
    );
}

const PASSWORD: &str = "intent-hot-swap";

/// A server with `rules` (TOML) and agent `mei`.
fn serve_with_rules(dir: &Path, rules: &str) -> Server {
    let path = dir.join("rules.toml");
    std::fs::write(&path, rules).expect("rules");
    add_agent(dir, &[], "mei", "Mei", PASSWORD, &[]);
    let rules_arg = path.to_string_lossy().to_string();
    Server::start(dir, &["--rules", &rules_arg])
}

/// The route traces of a conversation's messages, oldest first, as agent `mei` sees them.
async fn route_traces(api: &Api, conv: &str) -> Vec<Value> {
    let agent = api.agent("mei", PASSWORD).await;
    let (_, t) = api
        .get(&format!("/v1/agent/conversations/{conv}"), Some(&agent))
        .await;
    t["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m.get("route_trace"))
        .filter(|tr| !tr.is_null())
        .cloned()
        .collect()
}

#[test]
fn versions_predict_and_hot_swap_into_a_running_server() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = workspace_root().join("tests/fixtures/intents/shop-intents.jsonl");

    // Train v1: bad records are reported with their line and skipped.
    let mut c = kefu(tmp.path());
    c.args(["intent", "train", "--json", "--data"]).arg(&data);
    let (stdout, stderr) = ok(run(c));
    let v1 = json_line(&stdout);
    assert_eq!(v1["version"], "v1");
    assert_eq!(v1["active"], true, "the first version is activated");
    assert_eq!(v1["intents"], 3);
    assert_eq!(v1["skipped"], 2);
    assert!(
        stderr.contains("shop-intents.jsonl:45: text is empty"),
        "{stderr}"
    );
    assert!(stderr.contains("shop-intents.jsonl:46:"), "{stderr}");

    let mut c = kefu(tmp.path());
    c.args([
        "intent",
        "predict",
        "--json",
        "我的快递怎么还没到",
        "Where is my parcel right now?",
        "请问可以开发票吗",
    ]);
    let (stdout, _) = ok(run(c));
    let preds: Vec<Value> = stdout.lines().map(json_line).collect();
    assert_eq!(preds.len(), 3);
    assert_eq!(preds[0]["text"], "我的快递怎么还没到");
    assert_eq!(preds[0]["intent"], "track_order", "{preds:?}");
    assert_eq!(preds[1]["intent"], "track_order", "{preds:?}");
    assert_eq!(preds[2]["intent"], "invoice", "{preds:?}");
    for p in &preds {
        assert_eq!(p["in_scope"], true);
        let conf = p["confidence"].as_f64().expect("confidence");
        assert!((0.0..=1.0).contains(&conf));
    }

    // v2 is saved but not activated while v1 is active; activate and roll back.
    let mut c = kefu(tmp.path());
    c.args(["intent", "train", "--json", "--hidden", "32", "--data"])
        .arg(&data);
    let (stdout, _) = ok(run(c));
    assert_eq!(json_line(&stdout)["active"], false);
    let list = |dir: &Path| -> Vec<(String, bool)> {
        let mut c = kefu(dir);
        c.args(["intent", "list", "--json"]);
        let (stdout, _) = ok(run(c));
        json_line(&stdout)
            .as_array()
            .expect("list")
            .iter()
            .map(|r| {
                (
                    r["meta"]["version"].as_str().unwrap_or("").to_string(),
                    r["active"].as_bool().unwrap_or(false),
                )
            })
            .collect()
    };
    assert_eq!(
        list(tmp.path()),
        vec![("v1".into(), true), ("v2".into(), false)]
    );
    let mut c = kefu(tmp.path());
    c.args(["intent", "activate", "v2"]);
    ok(run(c));
    assert_eq!(list(tmp.path())[1], ("v2".into(), true));
    let mut c = kefu(tmp.path());
    c.args(["intent", "activate", "v9"]);
    let out = run(c);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no intent model version 'v9'"));
    for expected in ["v1 is active again", "no intent model is active now"] {
        let mut c = kefu(tmp.path());
        c.args(["intent", "rollback"]);
        let (stdout, _) = ok(run(c));
        assert!(stdout.contains(expected), "{stdout}");
    }

    // A server with no active model; the rules file routes `refund` to a human.
    let server = serve_with_rules(
        tmp.path(),
        "[[intents]]\nname = \"refund\"\nactions = [{ type = \"handoff\" }]\n\n[[intents]]\nname = \"invoice\"\ntags = [\"invoice\"]\n",
    );
    runtime().block_on(async {
        let api = Api::new(&server.base);
        let (token, conv) = api.visitor("demo").await;
        let mut v = Chat::connect(&server.ws_url(), &token).await;
        v.subscribe(&conv, 0).await;
        v.say(&conv, "m1", "这个订单我想退款").await;
        let bot = v.message_by("bot").await;
        assert!(bot["text"].as_str().is_some());

        // Activate v1 from the CLI while the server runs: it switches within its poll period.
        let mut c = kefu(tmp.path());
        c.args(["intent", "activate", "v1"]);
        ok(run(c));
        tokio::time::sleep(Duration::from_millis(4500)).await;
        v.say(&conv, "m2", "我要申请退款").await;
        let st = v
            .until("handoff", |f| {
                f["type"] == "state" && f["state"] == "queued"
            })
            .await;
        assert_eq!(st["state"], "queued");

        let traces = route_traces(&api, &conv).await;
        assert_eq!(traces[0]["intent"]["status"], "no_model", "{traces:?}");
        let routed = traces
            .iter()
            .find(|tr| tr["decision"] == "handoff")
            .expect("a handoff trace");
        assert_eq!(routed["intent"]["name"], "refund", "{routed}");
        assert_eq!(routed["intent"]["status"], "in_scope");
        assert_eq!(routed["intent"]["model"], "v1");
        assert_eq!(routed["intent"]["routed"], true);
        assert_eq!(routed["handoff"]["reason"], "intent");
        assert!(routed.get("kb").is_none(), "routed before retrieval");

        // A second visitor: the invoice intent limits retrieval to invoice-tagged entries.
        let (token, conv2) = api.visitor("demo").await;
        let mut v2 = Chat::connect(&server.ws_url(), &token).await;
        v2.subscribe(&conv2, 0).await;
        v2.say(&conv2, "i1", "请问怎么开发票").await;
        let answer = v2.message_by("bot").await;
        assert!(
            answer["text"].as_str().unwrap_or("").contains("发票"),
            "{answer}"
        );
        let trace = route_traces(&api, &conv2).await.remove(0);
        assert_eq!(trace["intent"]["name"], "invoice", "{trace}");
        assert_eq!(trace["kb"]["tags"], json!(["invoice"]), "{trace}");
        v.close().await;
        v2.close().await;
    });
    drop(server);

    // Kefu's own conversations feed training history.
    let mut c = kefu(tmp.path());
    c.args(["train", "import", "--from-kefu", "--json"]);
    let (stdout, _) = ok(run(c));
    let r = json_line(stdout.lines().next().expect("a report line"));
    assert_eq!(r["source"], "kefu");
    assert_eq!(r["report"]["added"], 2, "{r}");
    assert!(r["report"]["messages"].as_u64().unwrap_or(0) >= 4, "{r}");
}

/// `kefu intent eval --json` of `version` on the shop test set.
fn shop_eval(dir: &Path, version: &str, threshold: Option<&str>) -> Value {
    let test = workspace_root().join("tests/fixtures/intents/shop-test.jsonl");
    let mut c = kefu(dir);
    c.args(["intent", "eval", "--json", "--version", version, "--data"])
        .arg(&test);
    if let Some(t) = threshold {
        c.args(["--threshold", t]);
    }
    json_line(&ok(run(c)).0)
}

#[test]
fn a_fine_tuned_encoder_beats_the_stock_one_on_the_shop_set_and_serves() {
    let tmp = tempfile::tempdir().expect("tmp");
    let train = workspace_root().join("tests/fixtures/intents/shop-train.jsonl");
    let mut c = kefu(tmp.path());
    c.args(["intent", "train", "--json", "--fine-tune", "--data"])
        .arg(&train);
    let (stdout, _) = ok(run(c));
    let v1 = json_line(&stdout);
    assert_eq!(v1["version"], "v1");
    let tuned = &v1["fine_tune"];
    assert_eq!(tuned["layers"], 4, "{v1}");
    assert_eq!(tuned["method"]["kind"], "full", "{v1}");
    let encoder = tuned["encoder"].as_str().expect("encoder name");
    assert!(
        encoder.starts_with("multilingual-e5-small+ft-"),
        "{encoder}"
    );
    let dir = tmp.path().join("intents/v1");
    assert!(
        dir.join("encoder.safetensors").is_file(),
        "{}",
        dir.display()
    );
    let meta: Value =
        serde_json::from_slice(&std::fs::read(dir.join("meta.json")).expect("meta")).expect("json");
    assert_eq!(meta["embedding_model"], encoder);
    assert!(
        meta["calibration"]
            .as_str()
            .unwrap_or("")
            .contains("held out of fine-tuning"),
        "{meta}"
    );

    // The same head on the stock encoder, for comparison.
    let mut c = kefu(tmp.path());
    c.args(["intent", "train", "--json", "--data"]).arg(&train);
    assert_eq!(json_line(&ok(run(c)).0)["version"], "v2");

    // Held-out shop questions, 20 intents, 140 in scope per language (measured with the default
    // settings: stock 90.7% zh / 88.6% en, fine-tuned 90.7% / 91.4% at threshold 0; 89.3% / 87.1%
    // and 90.7% / 88.6% at the calibrated thresholds).
    let (tuned, stock) = (
        shop_eval(tmp.path(), "v1", Some("0")),
        shop_eval(tmp.path(), "v2", Some("0")),
    );
    let acc = |v: &Value| v["in_scope_accuracy"].as_f64().expect("accuracy");
    assert!(
        acc(&tuned) > acc(&stock) + 0.01,
        "tuned {tuned}\nstock {stock}"
    );
    for lang in ["zh", "en"] {
        assert!(acc(&tuned["by_language"][lang]) >= 0.88, "{lang}: {tuned}");
        assert!(acc(&stock["by_language"][lang]) >= 0.86, "{lang}: {stock}");
    }
    let calibrated = shop_eval(tmp.path(), "v1", None);
    for lang in ["zh", "en"] {
        assert!(
            acc(&calibrated["by_language"][lang]) >= 0.86,
            "{lang}: {calibrated}"
        );
    }

    // Without the shop's own out-of-scope examples the threshold is calibrated against the
    // generic set (measured on the test set: 86.4% in scope, 55% out-of-scope recall).
    let no_oos = tmp.path().join("no-oos.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&train)
        .expect("train")
        .lines()
        .filter(|l| !l.contains("\"oos\""))
        .map(String::from)
        .collect();
    std::fs::write(&no_oos, lines.join("\n")).expect("write");
    let mut c = kefu(tmp.path());
    c.args(["intent", "train", "--json", "--data"]).arg(&no_oos);
    let v3 = json_line(&ok(run(c)).0);
    assert_eq!(v3["version"], "v3");
    assert_eq!(v3["oos_examples"], 0, "{v3}");
    assert_eq!(v3["calibration"]["n_oos"], 200, "the generic set: {v3}");
    assert!(v3["threshold"].as_f64().unwrap_or(0.0) > 0.2, "{v3}");
    let generic = shop_eval(tmp.path(), "v3", None);
    assert!(acc(&generic) >= 0.84, "{generic}");
    assert!(
        generic["oos_recall"].as_f64().unwrap_or(0.0) >= 0.4,
        "{generic}"
    );

    // `predict` classifies with the model's own encoder.
    let mut c = kefu(tmp.path());
    c.args([
        "intent",
        "predict",
        "--json",
        "我的快递怎么还没到",
        "Where is my parcel right now?",
        "请问可以开发票吗",
    ]);
    let (stdout, _) = ok(run(c));
    let preds: Vec<Value> = stdout.lines().map(json_line).collect();
    let intents: Vec<&str> = preds
        .iter()
        .map(|p| p["intent"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        intents,
        ["track_order", "track_order", "invoice"],
        "{preds:?}"
    );

    // A running server loads the tuned encoder beside the stock one and routes with it.
    routes_refund_to_an_agent_with_v1(tmp.path(), "我要申请退款");
}

/// A server with a rule that hands `refund` to an agent: `text` is classified as `refund` by the
/// active model v1 and queued for an agent.
fn routes_refund_to_an_agent_with_v1(dir: &Path, text: &str) {
    let server = serve_with_rules(
        dir,
        "[[intents]]\nname = \"refund\"\nactions = [{ type = \"handoff\" }]\n",
    );
    runtime().block_on(async {
        let api = Api::new(&server.base);
        let (token, conv) = api.visitor("demo").await;
        let mut v = Chat::connect(&server.ws_url(), &token).await;
        v.subscribe(&conv, 0).await;
        v.say(&conv, "m1", text).await;
        let st = v
            .until("handoff", |f| {
                f["type"] == "state" && f["state"] == "queued"
            })
            .await;
        assert_eq!(st["state"], "queued");
        let trace = route_traces(&api, &conv).await.remove(0);
        assert_eq!(trace["intent"]["name"], "refund", "{trace}");
        assert_eq!(trace["intent"]["model"], "v1", "{trace}");
        v.close().await;
    });
}

#[test]
fn a_second_encoder_reads_beside_the_first_and_serves() {
    let tmp = tempfile::tempdir().expect("tmp");
    let train = workspace_root().join("tests/fixtures/intents/shop-train.jsonl");
    let mut c = kefu(tmp.path());
    c.args(["intent", "train", "--json", "--data"])
        .arg(&train)
        .args(["--also-encoder", "all-minilm-l6-v2"]);
    let v1 = json_line(&ok(run(c)).0);
    assert_eq!(v1["version"], "v1");
    assert_eq!(v1["also_encoder"], "all-minilm-l6-v2", "{v1}");
    let meta: Value = serde_json::from_slice(
        &std::fs::read(tmp.path().join("intents/v1/meta.json")).expect("meta"),
    )
    .expect("json");
    assert_eq!(
        meta["embedding_model"],
        "multilingual-e5-small|all-minilm-l6-v2"
    );
    assert_eq!(meta["dim"], 768, "384 + 384");
    // The same head on e5 alone, for comparison; its e5 vectors come from the cache.
    let mut c = kefu(tmp.path());
    c.args(["intent", "train", "--json", "--data"]).arg(&train);
    let v2 = json_line(&ok(run(c)).0);
    assert_eq!(v2["also_encoder"], Value::Null, "{v2}");

    // Held-out shop questions at threshold 0 (measured: e5 + MiniLM zh 91.4% / en 91.4%, e5
    // alone zh 90.7% / en 88.6%): English gains, Chinese loses nothing.
    let (both, e5) = (
        shop_eval(tmp.path(), "v1", Some("0")),
        shop_eval(tmp.path(), "v2", Some("0")),
    );
    let acc = |v: &Value, lang: &str| {
        v["by_language"][lang]["in_scope_accuracy"]
            .as_f64()
            .expect("accuracy")
    };
    assert!(
        acc(&both, "en") >= acc(&e5, "en") + 0.01,
        "both {both}\ne5 {e5}"
    );
    assert!(acc(&both, "en") >= 0.90, "{both}");
    assert!(
        acc(&both, "zh") >= acc(&e5, "zh") - 0.015,
        "both {both}\ne5 {e5}"
    );

    // `predict` reads the active v1 with both encoders, and so does a running server.
    let mut c = kefu(tmp.path());
    c.args([
        "intent",
        "predict",
        "--json",
        "我的快递怎么还没到",
        "Where is my parcel right now?",
    ]);
    let (stdout, _) = ok(run(c));
    let intents: Vec<String> = stdout
        .lines()
        .map(|l| json_line(l)["intent"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(intents, ["track_order", "track_order"], "{stdout}");
    routes_refund_to_an_agent_with_v1(tmp.path(), "I want my money back for this order");
}
