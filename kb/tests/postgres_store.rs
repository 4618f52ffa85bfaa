//! The knowledge store on PostgreSQL, as a cluster's nodes share it: two knowledge services on one
//! database (each its own pool and in-memory index, as two nodes have) see each other's imports,
//! edits and deletions within seconds; imports of the same file at once both succeed without
//! duplicates; the review queue, chat history, intent model versions and fine-tuned retrieval
//! encoders are shared. Each test runs
//! in a fresh schema of `KEFU_TEST_DATABASE_URL` (default the local `test` database).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kefu_kb::embed::testing::HashingEmbedder;
use kefu_kb::ingest::FileKind;
use kefu_kb::intent::{Mirror, Registry};
use kefu_kb::store::{EntryFilter, KbStore};
use kefu_kb::{Band, Knowledge, SourceFile};
use sqlx::Connection;

/// A fresh schema, dropped at the end; `url` connects with it as the search path.
struct Schema {
    base: String,
    name: String,
    url: String,
}

impl Schema {
    async fn create() -> Schema {
        let base = std::env::var("KEFU_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("kefu_kb_{}_{nanos}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(&base)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {base}: {e}"));
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut conn)
            .await
            .expect("create schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
        Schema { base, name, url }
    }

    async fn drop(self) {
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.base).await {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
                .execute(&mut conn)
                .await;
        }
    }
}

/// A node's knowledge service on the shared store, following the others' writes.
async fn node(url: &str) -> Arc<Knowledge> {
    let store = KbStore::connect(url).await.expect("connect");
    assert!(store.is_shared());
    let k = Arc::new(
        Knowledge::with_exact_index(store, Arc::new(HashingEmbedder::new(256)))
            .await
            .expect("knowledge"),
    );
    k.follow_changes().expect("PostgreSQL is followed");
    k
}

fn csv(name: &str, rows: &str) -> SourceFile {
    SourceFile {
        name: name.into(),
        kind: FileKind::FaqCsv,
        text: format!("id,question,answer,alternates\n{rows}"),
    }
}

const NONE: &(dyn Fn(usize, usize) + Sync) = &|_, _| {};

/// Queries `k` until `done` holds for the best hit's answer (or panics after 5 s); the time taken.
async fn until(k: &Knowledge, question: &str, done: impl Fn(Option<&str>) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        // A node that has not seen the knowledge base yet does not know it.
        let r = match k.query("shop", question, 3, &[]).await {
            Err(kefu_kb::KbError::KbNotFound(_)) => None,
            other => Some(other.expect("query")),
        };
        let best = r
            .as_ref()
            .filter(|r| r.band == Band::Answer)
            .and_then(|r| r.hits.first().map(|h| h.answer.as_str()));
        if done(best) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{question}: still {best:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_see_each_others_writes_within_seconds() {
    let schema = Schema::create().await;
    let (a, b) = (node(&schema.url).await, node(&schema.url).await);
    a.import(
        "shop",
        vec![csv(
            "faq.csv",
            "ship,多久发货？,付款后 48 小时内发货。,什么时候发货\n\
             pay,How can I pay?,Visa and Alipay.,payment methods\n",
        )],
        NONE,
    )
    .await
    .expect("import on A");
    let took = until(&b, "多久发货？", |a| {
        a.is_some_and(|a| a.contains("48"))
    })
    .await;
    eprintln!("an import on A answered on B after {took:?}");

    // An edit (a re-import with a new answer) and a deletion on B reach A.
    b.import(
        "shop",
        vec![csv(
            "faq.csv",
            "ship,多久发货？,付款后 24 小时内发货。,什么时候发货\n",
        )],
        NONE,
    )
    .await
    .expect("import on B");
    until(&a, "多久发货？", |a| {
        a.is_some_and(|a| a.contains("24"))
    })
    .await;
    let page = b
        .entries(
            "shop",
            &EntryFilter {
                text: Some("pay".into()),
                limit: 10,
                ..EntryFilter::default()
            },
        )
        .await
        .expect("entries");
    assert_eq!(page.total, 1, "search by text on PostgreSQL");
    b.delete_entry("shop", page.entries[0].id)
        .await
        .expect("delete");
    until(&a, "How can I pay?", |a| {
        a.is_none_or(|a| !a.contains("Visa"))
    })
    .await;
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_import_on_two_nodes_at_once_writes_each_entry_once() {
    let schema = Schema::create().await;
    let (a, b) = (node(&schema.url).await, node(&schema.url).await);
    let rows: String = (0..40)
        .map(|i| format!("q{i},问题 {i} 怎么办？,答案 {i}。,question {i}\n"))
        .collect();
    let (ra, rb) = tokio::join!(
        a.import("shop", vec![csv("faq.csv", &rows)], NONE),
        b.import("shop", vec![csv("faq.csv", &rows)], NONE),
    );
    ra.expect("import on A");
    rb.expect("import on B");
    let list = a.store().list().await.expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].faqs, 40, "{list:?}");
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intent_model_versions_and_their_activation_are_mirrored() {
    let schema = Schema::create().await;
    let store = KbStore::connect(&schema.url).await.expect("connect");
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let (reg_a, reg_b) = (Registry::new(dir_a.path()), Registry::new(dir_b.path()));
    let a = Mirror::new(reg_a.clone(), &store).expect("shared");
    let b = Mirror::new(reg_b.clone(), &store).expect("shared");
    // A model's files, as a trainer on node A wrote them.
    let v1 = dir_a.path().join("intents/v1");
    std::fs::create_dir_all(&v1).expect("dir");
    let meta = serde_json::json!({
        "version": "v1", "created_at": 0, "embedding_model": "m", "dim": 2,
        "labels": ["退款", "track"], "threshold": 0.5, "calibration": "test", "hidden": 0,
        "data_file": "d.jsonl", "data_hash": "h", "train_examples": 2, "oos_examples": 0,
        "epochs": 1, "train_seconds": 0.0
    });
    std::fs::write(v1.join("meta.json"), meta.to_string()).expect("meta");
    std::fs::write(v1.join("model.safetensors"), b"weights").expect("weights");
    a.push_version("v1").await.expect("push");
    a.push_version("v1")
        .await
        .expect("pushing the same version again is a no-op");
    std::fs::write(v1.join("model.safetensors"), b"other weights").expect("weights");
    assert!(
        a.push_version("v1").await.is_err(),
        "a different v1 is a conflict"
    );
    std::fs::write(v1.join("model.safetensors"), b"weights").expect("weights");
    // Activated on A (the weights are not a loadable model: the state as `activate` writes it).
    reg_a
        .write_state(&kefu_kb::intent::ActiveState {
            active: Some("v1".into()),
            history: vec!["v1".into()],
        })
        .expect("state");
    a.push_state().await.expect("push state");

    assert!(b.pull().await.expect("pull"), "B had nothing");
    assert!(reg_b.has("v1"));
    assert_eq!(
        reg_b.files("v1").expect("files"),
        reg_a.files("v1").expect("files")
    );
    assert_eq!(reg_b.state().expect("state").active.as_deref(), Some("v1"));
    assert!(
        !b.pull().await.expect("pull"),
        "nothing new the second time"
    );
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fine_tuned_retrieval_encoders_are_copied_to_the_nodes_that_need_them() {
    use kefu_kb::finetune::shared::{fetch, fetch_all, publish};
    let schema = Schema::create().await;
    let store = KbStore::connect(&schema.url).await.expect("connect");
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let (enc_a, enc_b) = (dir_a.path().join("encoders"), dir_b.path().join("encoders"));
    // An encoder's files, as `kefu kb encoder train` saved them on node A.
    let saved = enc_a.join("0a1b2c");
    std::fs::create_dir_all(&saved).expect("dir");
    std::fs::write(saved.join("encoder.json"), br#"{"id": "0a1b2c"}"#).expect("meta");
    std::fs::write(saved.join("layers.safetensors"), b"weights").expect("weights");
    publish(&store, &enc_a, "0a1b2c").await.expect("publish");
    publish(&store, &enc_a, "0a1b2c")
        .await
        .expect("publishing the same files again is a no-op");
    std::fs::write(saved.join("layers.safetensors"), b"other weights").expect("weights");
    assert!(
        publish(&store, &enc_a, "0a1b2c").await.is_err(),
        "other files under the same id are a conflict"
    );
    std::fs::write(saved.join("layers.safetensors"), b"weights").expect("weights");

    // Node B loads it on first use: copied into its own encoders directory first.
    assert!(fetch(&store, &enc_b, "0a1b2c").await.expect("fetch"));
    assert_eq!(
        kefu_kb::files::read_files(&enc_b.join("0a1b2c")).expect("files"),
        kefu_kb::files::read_files(&saved).expect("files")
    );
    assert!(!fetch(&store, &enc_b, "ffffff").await.expect("unknown id"));
    assert!(!fetch(&store, &enc_b, "../x").await.expect("not an id"));
    // A third node listing encoders gets every one.
    let dir_c = tempfile::tempdir().expect("tmp");
    let enc_c = dir_c.path().join("encoders");
    assert_eq!(fetch_all(&store, &enc_c).await.expect("fetch all"), 1);
    assert_eq!(fetch_all(&store, &enc_c).await.expect("fetch all"), 0);
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_history_and_the_review_queue_are_shared() {
    use kefu_kb::train::history::{self, HistoryConversation, HistoryMessage, Role};
    let schema = Schema::create().await;
    let a = KbStore::connect(&schema.url).await.expect("connect");
    let b = KbStore::connect(&schema.url).await.expect("connect");
    let conv = HistoryConversation {
        id: "c1".into(),
        messages: vec![
            HistoryMessage {
                role: Role::Visitor,
                text: "有学生优惠吗？".into(),
                time: None,
            },
            HistoryMessage {
                role: Role::Agent,
                text: "学生凭学生证享 9 折。".into(),
                time: Some("2026-11-30T10:00:00Z".into()),
            },
        ],
    };
    let r = history::store(&a, "chats.jsonl", std::slice::from_ref(&conv))
        .await
        .expect("store");
    assert_eq!(r.added, 1);
    let again = history::store(&b, "chats.jsonl", std::slice::from_ref(&conv))
        .await
        .expect("store again");
    assert_eq!(
        again.unchanged, 1,
        "re-importing on another node is idempotent"
    );
    let all = history::load_all(&b).await.expect("load");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].id, "chats.jsonl/c1");
    assert_eq!(all[0].messages[1].text, "学生凭学生证享 9 折。");
    let list = kefu_kb::train::review::list(&b, None).await.expect("queue");
    assert!(list.is_empty());
    schema.drop().await;
}
