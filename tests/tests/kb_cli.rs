//! `kefu kb …` end to end: the real binary, the real model, a real SQLite file.

use kefu_e2e::{kefu, run};
use serde_json::Value;

fn write(dir: &std::path::Path, name: &str, body: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write");
    p
}

#[test]
fn import_query_list_stats_delete() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let faq = write(
        tmp.path(),
        "faq.csv",
        "id,question,answer,alternates,tags\n\
         ship,下单后多久发货？,付款后 24 小时内发货。,什么时候发货|多久发出,shipping\n\
         pay,What payment methods do you accept?,\"Visa, Mastercard and Alipay.\",Can I pay by card?,payment\n",
    );
    let doc = write(
        tmp.path(),
        "guide.md",
        "# Returns\n\nReturns are accepted within 30 days of delivery.\n",
    );

    let mut c = kefu(&data);
    c.args(["kb", "import", "--kb", "shop"]).arg(&faq).arg(&doc);
    let out = run(c);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("3 entries (3 added"), "{stdout}");

    // Re-importing changes nothing.
    let mut c = kefu(&data);
    c.args(["kb", "import", "--kb", "shop"]).arg(&faq).arg(&doc);
    let out = run(c);
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 unchanged"));

    let mut c = kefu(&data);
    c.args([
        "kb",
        "query",
        "--kb",
        "shop",
        "--json",
        "--top-k",
        "2",
        "多久能发货",
        "how can I pay?",
        "tell me a joke",
    ]);
    let out = run(c);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["query"], "多久能发货");
    assert_eq!(lines[0]["band"], "answer");
    assert_eq!(lines[0]["hits"][0]["id"], "ship");
    assert_eq!(lines[0]["hits"][0]["source"], "faq.csv");
    assert!(lines[0]["hits"][0]["score"].as_f64().unwrap_or(0.0) > 0.5);
    assert_eq!(lines[1]["hits"][0]["id"], "pay");
    assert_ne!(lines[2]["band"], "answer");
    for l in &lines {
        let hits = l["hits"].as_array().expect("hits");
        assert!(hits.len() <= 2);
        for h in hits {
            for key in ["id", "question", "answer", "score", "source"] {
                assert!(h.get(key).is_some(), "hit lacks {key}: {h}");
            }
        }
        let scores: Vec<f64> = hits.iter().filter_map(|h| h["score"].as_f64()).collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "hits best first");
    }

    let mut c = kefu(&data);
    c.args(["kb", "list", "--json"]);
    let list: Value = serde_json::from_slice(&run(c).stdout).expect("list json");
    assert_eq!(list[0]["name"], "shop");
    assert_eq!(list[0]["faqs"], 2);
    assert_eq!(list[0]["chunks"], 1);
    // Questions and alternates (5), each FAQ's question + answer (2), the document chunk (1).
    assert_eq!(list[0]["vectors"], 8);

    let mut c = kefu(&data);
    c.args(["kb", "delete", "shop"]);
    assert!(run(c).status.success());
    let mut c = kefu(&data);
    c.args(["kb", "query", "--kb", "shop", "x"]);
    let out = run(c);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("knowledge base 'shop' not found"));
}

#[test]
fn bad_file_is_reported_with_line_and_nothing_is_imported() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let good = write(
        tmp.path(),
        "good.csv",
        "question,answer\n退货运费谁出？,质量问题由我们承担。\n",
    );
    let mut c = kefu(&data);
    c.args(["kb", "import"]).arg(&good);
    assert!(run(c).status.success());

    let bad = write(
        tmp.path(),
        "bad.csv",
        "question,answer\nok?,fine\n\"no answer?\",\n",
    );
    let more = write(
        tmp.path(),
        "more.csv",
        "question,answer\nHow long is delivery?,3-5 days.\n",
    );
    let mut c = kefu(&data);
    c.args(["kb", "import"]).arg(&more).arg(&bad);
    let out = run(c);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.csv:3") && err.contains("answer is empty"),
        "{err}"
    );

    let mut c = kefu(&data);
    c.args(["kb", "list", "--json"]);
    let list: Value = serde_json::from_slice(&run(c).stdout).expect("list json");
    assert_eq!(list[0]["faqs"], 1, "the failed import left nothing behind");

    let unsupported = write(tmp.path(), "x.pptx", "binary");
    let mut c = kefu(&data);
    c.args(["kb", "import"]).arg(&unsupported);
    let out = run(c);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported file type"));
    // A file named .docx that is not one says so.
    let fake = write(tmp.path(), "x.docx", "binary");
    let mut c = kefu(&data);
    c.args(["kb", "import"]).arg(&fake);
    let out = run(c);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a DOCX"));
}

#[test]
fn missing_model_names_the_fetch_script() {
    let tmp = tempfile::tempdir().expect("tmp");
    for args in [
        vec!["kb", "query", "hello"],
        vec!["serve", "--listen", "127.0.0.1:0"],
    ] {
        let mut c = std::process::Command::new(kefu_e2e::kefu_bin());
        c.arg("--data-dir")
            .arg(tmp.path())
            .arg("--model-dir")
            .arg(tmp.path())
            .args(&args);
        let out = run(c);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("scripts/fetch-models"), "{args:?}: {err}");
    }
}

#[test]
fn config_file_sets_defaults_below_the_command_line() {
    let tmp = tempfile::tempdir().expect("tmp");
    let from_file = tmp.path().join("from-file");
    let cfg = write(
        tmp.path(),
        "kefu.toml",
        &format!(
            "data_dir = {:?}\nmodel = \"all-minilm-l6-v2\"\n",
            from_file.display().to_string()
        ),
    );
    let faq = write(
        tmp.path(),
        "faq.csv",
        "question,answer\nHow long is delivery?,3-5 days.\n",
    );
    // No --data-dir: the file's data_dir and model apply.
    let mut c = std::process::Command::new(kefu_e2e::kefu_bin());
    c.arg("--config")
        .arg(&cfg)
        .arg("--model-dir")
        .arg(kefu_e2e::model_dir());
    c.env_remove("KEFU_DATA_DIR").env_remove("KEFU_MODEL");
    c.args(["kb", "import"]).arg(&faq);
    let out = run(c);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = kefu(&from_file);
    c.args(["kb", "list", "--json"]);
    let list: Value = serde_json::from_slice(&run(c).stdout).expect("list json");
    assert_eq!(list[0]["model"], "all-minilm-l6-v2");

    let bad = write(tmp.path(), "bad.toml", "colour = \"blue\"\n");
    let mut c = kefu(tmp.path());
    c.arg("--config").arg(&bad).args(["kb", "list"]);
    let out = run(c);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown setting `colour`"));
}

/// Runs `kefu` in `data` with `args`, expects success, and parses stdout's first line as JSON.
fn json_ok(data: &std::path::Path, args: &[&str]) -> Value {
    let stdout = kefu_e2e::kefu_ok(data, args);
    serde_json::from_str(stdout.lines().next().unwrap_or("")).expect("a JSON line")
}

#[test]
fn a_retrieval_encoder_is_trained_on_the_knowledge_base_switched_to_and_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let faq = write(
        tmp.path(),
        "faq.csv",
        "id,question,answer,alternates\n\
         ship,下单后多久发货？,付款后 24 小时内发货。,什么时候发货|多久发出\n\
         pay,What payment methods do you accept?,\"Visa, Mastercard and Alipay.\",Can I pay by card?\n\
         refund,退款多久到账？,退款在 3-5 个工作日内原路退回。,钱什么时候退回来\n\
         track,How do I track my order?,Use the tracking link in your shipping email.,Where is my parcel?\n\
         invoice,可以开发票吗？,可以，在订单页申请电子发票。,怎么开发票\n\
         size,How do I choose my size?,See the size chart on each product page.,What size should I get?\n",
    );
    let doc = write(
        tmp.path(),
        "guide.md",
        "# Returns 退货\n\nReturns are accepted within 30 days of delivery. 收货后 30 天内可退货。\n",
    );
    let questions = write(
        tmp.path(),
        "eval.jsonl",
        "{\"question\": \"多久能发货\", \"expect\": \"ship\"}\n\
         {\"question\": \"can I pay with a card\", \"expect\": \"pay\"}\n\
         {\"question\": \"what is the capital of France\", \"expect\": \"none\"}\n",
    );
    let mut c = kefu(&data);
    c.args(["kb", "import", "--kb", "shop"]).arg(&faq).arg(&doc);
    assert!(run(c).status.success());

    // One trained layer keeps the test short; the demo numbers are in the README.
    let trained = json_ok(
        &data,
        &[
            "kb",
            "encoder",
            "train",
            "--kb",
            "shop",
            "--json",
            "--ft-layers",
            "1",
        ],
    );
    let name = trained["encoder"]
        .as_str()
        .expect("encoder name")
        .to_string();
    let id = name
        .strip_prefix("multilingual-e5-small+ft-")
        .expect("a tuned e5 name")
        .to_string();
    assert_eq!(
        trained["groups"], 7,
        "six FAQ entries and one section: {trained}"
    );
    assert_eq!(trained["layers"], 1, "{trained}");
    let meta: Value = serde_json::from_slice(
        &std::fs::read(data.join("encoders").join(&id).join("encoder.json")).expect("meta"),
    )
    .expect("json");
    assert_eq!(
        meta["centering"]["zh"].as_array().map(Vec::len),
        Some(384),
        "the tuned encoder's own language means are stored"
    );
    let listed = json_ok(&data, &["kb", "encoder", "list", "--json"]);
    assert_eq!(listed[0]["model"], name.as_str(), "{listed}");
    assert_eq!(
        listed[0]["knowledge_bases"],
        serde_json::json!([]),
        "{listed}"
    );

    // Switch, with the answer-quality eval before and after.
    let q = questions.to_str().expect("utf-8 path");
    let switched = json_ok(
        &data,
        &[
            "kb", "encoder", "activate", "--kb", "shop", &id, "--eval", q, "--json",
        ],
    );
    assert_eq!(switched["switch"]["from"], "multilingual-e5-small");
    assert_eq!(switched["switch"]["to"], name.as_str());
    assert_eq!(switched["switch"]["entries"], 7);
    for when in ["before", "after"] {
        assert_eq!(switched[when]["overall"]["questions"], 3, "{switched}");
    }
    let listed = json_ok(&data, &["kb", "encoder", "list", "--json"]);
    assert_eq!(listed[0]["knowledge_bases"], serde_json::json!(["shop"]));
    let kbs = json_ok(&data, &["kb", "list", "--json"]);
    assert_eq!(kbs[0]["model"], name.as_str());

    // Queries embed with the tuned encoder (the configured model is still the stock one), and
    // re-importing the same files embeds nothing.
    let hit = json_ok(
        &data,
        &["kb", "query", "--kb", "shop", "--json", "多久能发货"],
    );
    assert_eq!(hit["hits"][0]["id"], "ship", "{hit}");
    let hit = json_ok(
        &data,
        &["kb", "query", "--kb", "shop", "--json", "can I pay by card"],
    );
    assert_eq!(hit["hits"][0]["id"], "pay", "{hit}");
    let mut c = kefu(&data);
    c.args(["kb", "import", "--kb", "shop", "--json"])
        .arg(&faq)
        .arg(&doc);
    let again: Value = serde_json::from_slice(&run(c).stdout).expect("import json");
    assert_eq!(
        (
            again["unchanged"].as_u64(),
            again["vectors_embedded"].as_u64()
        ),
        (Some(7), Some(0))
    );

    // The tuned encoder can also be the running model, for every knowledge base and intent model.
    let hit = json_ok(
        &data,
        &[
            "--model",
            &name,
            "kb",
            "query",
            "--kb",
            "shop",
            "--json",
            "多久能发货",
        ],
    );
    assert_eq!(hit["hits"][0]["id"], "ship", "{hit}");

    // Back to the stock model; an unknown encoder is refused and changes nothing.
    let back = json_ok(
        &data,
        &[
            "kb", "encoder", "activate", "--kb", "shop", "stock", "--json",
        ],
    );
    assert_eq!(back["switch"]["to"], "multilingual-e5-small");
    let mut c = kefu(&data);
    c.args(["kb", "encoder", "activate", "--kb", "shop", "0123456789ab"]);
    let out = run(c);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no fine-tuned encoder"), "{err}");
    let kbs = json_ok(&data, &["kb", "list", "--json"]);
    assert_eq!(kbs[0]["model"], "multilingual-e5-small");
}
