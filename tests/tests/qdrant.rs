//! Knowledge vectors in Qdrant: the `VectorIndex` itself, the knowledge service over it (import
//! in batches, search with tag filters, delete, a switch of encoder, reindex from the store), and
//! two `kefu serve` nodes sharing one PostgreSQL database and one Qdrant collection.
//!
//! Runs against the Qdrant at `QDRANT_URL` when it is set; otherwise against the scripted Qdrant
//! gRPC server of `kefu_e2e::qdrant` (no Qdrant server can be installed on this machine), and
//! says so on stderr.

use std::sync::Arc;
use std::time::Duration;

use kefu_e2e::chat::Api;
use kefu_e2e::qdrant::TestQdrant;
use kefu_e2e::{PgSchema, Server};
use kefu_kb::embed::testing::HashingEmbedder;
use kefu_kb::index::qdrant::{QdrantIndex, UPSERT_BATCH};
use kefu_kb::index::{IndexedVector, KbSpace, SearchFilter, VectorIndex};
use kefu_kb::ingest::FileKind;
use kefu_kb::knowledge::SourceFile;
use kefu_kb::store::KbStore;
use kefu_kb::{Embedder, KbError, Knowledge, TextRole};

/// A collection prefix no other test run uses, so runs against one real Qdrant never collide.
fn prefix(test: &str) -> String {
    format!("t{}_{test}", std::process::id())
}

fn unit(x: f32, y: f32, z: f32) -> Vec<f32> {
    let n = (x * x + y * y + z * z).sqrt();
    vec![x / n, y / n, z / n]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_qdrant_index_routes_each_knowledge_base_to_its_collection() {
    let qdrant = TestQdrant::get();
    let idx = QdrantIndex::connect(&qdrant.url, None, &prefix("index"))
        .await
        .expect("connect");
    let space = |kb_id, model: &str| KbSpace {
        kb_id,
        model: model.into(),
        dim: 3,
    };
    let created = idx
        .sync_spaces(&[space(1, "e5"), space(2, "e5")], true)
        .await
        .expect("sync");
    assert_eq!(created, vec![1, 2], "both collections are new");
    let again = idx
        .sync_spaces(&[space(1, "e5"), space(2, "e5")], true)
        .await
        .expect("sync again");
    assert!(again.is_empty(), "nothing to create the second time");

    let item = |vector_id, entry_id, kb_id, tags: &[&str], vector| IndexedVector {
        vector_id,
        entry_id,
        kb_id,
        tags: tags.iter().map(|s| s.to_string()).collect(),
        vector,
    };
    idx.upsert(vec![
        item(1, 10, 1, &["ship"], unit(1.0, 0.0, 0.0)),
        item(2, 10, 1, &["ship"], unit(0.9, 0.1, 0.0)),
        item(3, 11, 1, &["pay"], unit(0.7, 0.7, 0.0)),
        item(4, 12, 2, &[], unit(1.0, 0.0, 0.0)),
    ])
    .await
    .expect("upsert");
    let q = unit(1.0, 0.05, 0.0);
    let kb1 = SearchFilter {
        kb_id: 1,
        tags: vec![],
    };
    let hits = idx.search(&q, &kb1, 5).await.expect("search");
    assert_eq!(
        hits.iter().map(|h| h.entry_id).collect::<Vec<_>>(),
        vec![10, 11],
        "one hit per entry, only knowledge base 1's"
    );
    let tagged = SearchFilter {
        kb_id: 1,
        tags: vec!["pay".into()],
    };
    let hits = idx.search(&q, &tagged, 5).await.expect("search by tag");
    assert_eq!(
        hits.iter().map(|h| h.entry_id).collect::<Vec<_>>(),
        vec![11]
    );
    // An entry found only by the lexical index gets its best vector's cosine (entry 10: its
    // closer vector); entries of another knowledge base are not scored.
    let scored = idx
        .score_entries(&q, &kb1, &[10, 12])
        .await
        .expect("score entries");
    assert_eq!(scored.len(), 1, "{scored:?}");
    assert_eq!((scored[0].entry_id, scored[0].vector_id), (10, 1));

    idx.remove_entries(&[10]).await.expect("remove");
    assert_eq!(idx.len().await.expect("len"), 2);

    // Knowledge base 1 moves to another encoder and 2 is gone: with `prune`, their old
    // collections are dropped and 1 gets a new, empty one.
    let created = idx
        .sync_spaces(&[space(1, "e5+ft-7")], true)
        .await
        .expect("sync after a switch");
    assert_eq!(created, vec![1]);
    assert_eq!(idx.len().await.expect("len"), 0);
    assert!(idx.search(&q, &kb1, 5).await.expect("search").is_empty());
    if let Some(state) = &qdrant.scripted {
        let names: Vec<String> = state.collections().into_keys().collect();
        assert_eq!(names, vec![format!("{}_kb1_e5_ft-7", prefix("index"))]);
    }
    idx.drop_space(1).await.expect("clean up");
    assert!(QdrantIndex::connect(&qdrant.url, None, "no spaces allowed")
        .await
        .is_err());
}

/// A stand-in for a fine-tuned encoder: the hashing embedder's vectors reversed, so a query
/// embedded by one only matches vectors stored by the same one.
struct Reversed(HashingEmbedder);

const TUNED: &str = "test-hashing+ft-q1";

impl Embedder for Reversed {
    fn model_name(&self) -> &str {
        TUNED
    }
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn embed(&self, texts: &[&str], role: TextRole) -> kefu_kb::error::Result<Vec<Vec<f32>>> {
        let mut out = self.0.embed(texts, role)?;
        out.iter_mut().for_each(|v| v.reverse());
        Ok(out)
    }
}

async fn knowledge_on(store: KbStore, url: &str, prefix: &str) -> Knowledge {
    let index = QdrantIndex::connect(url, None, prefix)
        .await
        .expect("connect");
    let loader: kefu_kb::knowledge::EncoderLoader = Arc::new(|name: &str| {
        if name == TUNED {
            Ok(Arc::new(Reversed(HashingEmbedder::new(64))) as Arc<dyn Embedder>)
        } else {
            Err(KbError::UnknownModel(name.to_string()))
        }
    });
    Knowledge::with_outside_index(store, Arc::new(HashingEmbedder::new(64)), Arc::new(index))
        .await
        .expect("knowledge on qdrant")
        .with_encoder_loader(loader)
}

/// 300 FAQ entries (more vectors than one upsert batch), every third tagged `vip`.
fn big_faq() -> SourceFile {
    let mut text = String::from("id,question,answer,alternates,tags\n");
    for i in 0..300 {
        let tags = if i % 3 == 0 { "vip" } else { "" };
        text.push_str(&format!(
            "f{i},How do I use coupon code SAVE{i}?,Enter SAVE{i} at checkout.,优惠码 SAVE{i} 怎么用？,{tags}\n"
        ));
    }
    SourceFile {
        name: "coupons.csv".into(),
        kind: FileKind::FaqCsv,
        text,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knowledge_on_qdrant_imports_searches_switches_deletes_and_reindexes() {
    let qdrant = TestQdrant::get();
    let prefix = prefix("kb");
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("kefu.db");
    let k = knowledge_on(
        KbStore::open(&db).await.expect("store"),
        &qdrant.url,
        &prefix,
    )
    .await;

    let report = k
        .import("shop", vec![big_faq()], &|_, _| {})
        .await
        .expect("import");
    assert_eq!(report.entries, 300);
    let vectors = report.vectors_embedded;
    assert!(vectors > UPSERT_BATCH, "{vectors} vectors");
    if let Some(state) = &qdrant.scripted {
        assert!(
            state.largest_upsert() <= UPSERT_BATCH,
            "upserts are batched: {}",
            state.largest_upsert()
        );
        let collection = format!("{prefix}_kb1_test-hashing");
        assert_eq!(state.collections().get(&collection), Some(&vectors));
    }
    let r = k
        .query("shop", "How do I use coupon code SAVE42?", 3, &[])
        .await
        .expect("query");
    assert_eq!(r.hits[0].id, "f42", "{:?}", r.hits);
    let vip = k
        .query("shop", "coupon code SAVE42", 5, &["vip".into()])
        .await
        .expect("query by tag");
    assert!(
        !vip.hits.is_empty() && vip.hits.iter().all(|h| h.tags == ["vip"]),
        "{:?}",
        vip.hits
    );

    // Another process (a second node) opening the same store finds the collection filled.
    let other = knowledge_on(
        KbStore::open(&db).await.expect("store"),
        &qdrant.url,
        &prefix,
    )
    .await;
    let r = other
        .query("shop", "优惠码 SAVE7 怎么用？", 3, &[])
        .await
        .expect("query on the other process");
    assert_eq!(r.hits[0].id, "f7", "{:?}", r.hits);

    // A switch of encoder fills a collection for the new one and drops the old one.
    k.switch_encoder("shop", TUNED, &|_, _| {})
        .await
        .expect("switch");
    let r = k
        .query("shop", "How do I use coupon code SAVE42?", 3, &[])
        .await
        .expect("query after the switch");
    assert_eq!(r.hits[0].id, "f42", "{:?}", r.hits);
    if let Some(state) = &qdrant.scripted {
        let names: Vec<String> = state.collections().into_keys().collect();
        assert_eq!(names, vec![format!("{prefix}_kb1_test-hashing_ft-q1")]);
    }

    // Qdrant loses the collection: reindex rebuilds it from the store.
    let raw = QdrantIndex::connect(&qdrant.url, None, &prefix)
        .await
        .expect("connect");
    raw.sync_spaces(&[], true).await.expect("drop everything");
    assert!(k
        .query("shop", "How do I use coupon code SAVE42?", 3, &[])
        .await
        .map(|r| r.hits.is_empty())
        .unwrap_or(true));
    let rebuilt = k.reindex(Some("shop")).await.expect("reindex");
    assert_eq!(rebuilt, vectors);
    let r = k
        .query("shop", "How do I use coupon code SAVE42?", 3, &[])
        .await
        .expect("query after reindex");
    assert_eq!(r.hits[0].id, "f42", "{:?}", r.hits);

    // Deleting the knowledge base drops its collection.
    assert_eq!(k.delete("shop").await.expect("delete"), 300);
    if let Some(state) = &qdrant.scripted {
        assert!(state.collections().is_empty(), "{:?}", state.collections());
    }
}

#[test]
fn two_nodes_share_one_qdrant_collection_over_postgres() {
    let qdrant = TestQdrant::get();
    let prefix = prefix("serve");
    let schema = PgSchema::create();
    let args = [
        "--database-url",
        schema.url.as_str(),
        "--qdrant-url",
        qdrant.url.as_str(),
        "--qdrant-prefix",
        prefix.as_str(),
    ];
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("tmp")).collect();
    let nodes: Vec<Server> = Server::start_together(&dirs, &args);
    let kefu = |extra: &[&str]| -> String {
        let mut c = kefu_e2e::kefu(dirs[0].path());
        c.args(args).args(extra);
        let out = kefu_e2e::run(c);
        assert!(
            out.status.success(),
            "kefu {extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let key = kefu(&["admin-key", "--name", "qdrant"]);

    let rt = kefu_e2e::runtime();
    rt.block_on(async {
        let apis: Vec<Api> = nodes.iter().map(|n| Api::new(&n.base)).collect();
        let (_, kbs) = apis[1].get("/v1/admin/kbs", Some(&key)).await;
        let demo_vectors = kbs["kbs"]
            .as_array()
            .and_then(|l| l.iter().find(|k| k["name"] == "default"))
            .and_then(|k| k["vectors"].as_u64())
            .unwrap_or_else(|| panic!("no demo knowledge base: {kbs}"));
        for api in &apis {
            api.until_answered(&key, "支持哪些付款方式？", "", Duration::from_secs(5))
                .await;
        }
        if let Some(state) = &qdrant.scripted {
            let collections = state.collections();
            assert_eq!(collections.len(), 1, "one collection for both nodes: {collections:?}");
            let (name, points) = collections.into_iter().next().unwrap_or_default();
            assert_eq!(name, format!("{prefix}_kb1_multilingual-e5-small"));
            assert_eq!(points as u64, demo_vectors, "the demo was loaded once");
        }

        // An upload on node A is searched on node B through the shared collection.
        let faq = "id,question,answer,alternates\n\
                   bike,Do you sell bicycles?,Yes: the Kefu Cruiser city bicycle costs $499 and ships in 3 days.,你们卖自行车吗？\n";
        let job = apis[0].upload(&key, "default", "bikes.csv", faq.as_bytes()).await;
        assert_eq!(job["status"], "done", "{job}");
        let (r, _) = apis[1]
            .until_answered(&key, "你们卖自行车吗？", "$499", Duration::from_secs(5))
            .await;
        assert_eq!(r["citations"][0]["source"], "bikes.csv", "{r}");
    });

    // `kefu kb reindex` rebuilds the collection from PostgreSQL; the nodes keep answering.
    let report: serde_json::Value =
        serde_json::from_str(&kefu(&["kb", "reindex", "--json"])).expect("reindex JSON");
    assert_eq!(report["index"], "qdrant", "{report}");
    assert!(report["vectors"].as_u64().unwrap_or(0) > 0, "{report}");
    rt.block_on(async {
        for node in &nodes {
            let api = Api::new(&node.base);
            api.until_answered(
                &key,
                "Do you sell bicycles?",
                "$499",
                Duration::from_secs(5),
            )
            .await;
        }
    });
    if let Some(state) = &qdrant.scripted {
        let points: usize = state.collections().values().sum();
        assert_eq!(Some(points as u64), report["vectors"].as_u64());
    }
    kefu(&["kb", "delete", "default"]);
    if let Some(state) = &qdrant.scripted {
        assert!(state.collections().is_empty(), "{:?}", state.collections());
    }
}
