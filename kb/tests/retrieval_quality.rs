//! Retrieval quality with the real models on the demo knowledge base: paraphrased questions in
//! Chinese and English (some answered only in the other language) must find their entry, and
//! out-of-scope questions must never be answered outright. Floors pin today's measured quality.

use std::path::PathBuf;

use kefu_kb::store::KbStore;
use kefu_kb::{load_embedder, Band, Knowledge};

fn model_dir() -> PathBuf {
    std::env::var_os("KEFU_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"))
}

/// (question, expected entry id). None of these is a stored question or alternate.
const PARAPHRASES_ZH: &[(&str, &str)] = &[
    ("我今天付的款，什么时候能发出来？", "zh-ship-time"),
    ("寄到广东要几天", "zh-ship-delivery"),
    ("买多少钱可以免运费", "zh-ship-fee"),
    ("我的包裹现在到哪里了", "zh-ship-track"),
    ("收件地址写错了还能改吗", "zh-ship-address"),
    ("东西不喜欢可以退吗", "zh-return-policy"),
    ("退回去的邮费要我出吗", "zh-return-fee"),
    ("退的钱几天能回到卡上", "zh-refund-time"),
    ("茶叶没拆封，想换个口味", "zh-exchange"),
    ("快递送来的时候盒子压坏了", "zh-damaged"),
    ("能用微信支付吗", "zh-pay-methods"),
    ("可以收到货再给钱吗", "zh-pay-cod"),
    ("买东西能开票吗", "zh-invoice"),
    ("花呗可以分几期", "zh-installment"),
    ("登录密码想不起来了", "zh-account-password"),
    ("不想要这个账号了，怎么删掉", "zh-account-delete"),
    ("下错单了想取消", "zh-order-cancel"),
    ("你们晚上几点下班", "zh-hours"),
    ("客服热线是多少", "zh-contact"),
    ("茶杯用了半年釉面掉了能换吗", "zh-warranty"),
];

const PARAPHRASES_EN: &[(&str, &str)] = &[
    (
        "I paid this morning, when does it leave the warehouse?",
        "en-ship-time",
    ),
    (
        "how many days for the package to get here",
        "en-ship-delivery",
    ),
    ("What's the minimum order for free shipping?", "en-ship-fee"),
    ("where can I see my tracking link", "en-ship-track"),
    ("Do you deliver to Australia?", "en-ship-abroad"),
    (
        "I want to send back a sweater I don't like",
        "en-return-policy",
    ),
    (
        "the refund still hasn't shown up on my card",
        "en-refund-time",
    ),
    ("The cup I received is cracked", "en-damaged"),
    ("Can I pay with WeChat?", "en-pay-methods"),
    ("My card keeps getting rejected at checkout", "en-pay-fail"),
    (
        "how do I get a reset link for my login",
        "en-account-password",
    ),
    ("Please erase all my personal data", "en-account-delete"),
    (
        "I no longer want the order I just placed",
        "en-order-cancel",
    ),
    ("When are your agents online?", "en-hours"),
    ("what water temperature for longjing", "en-tea-brewing"),
];

const OUT_OF_SCOPE: &[&str] = &[
    "what's the weather tomorrow",
    "tell me a joke",
    "how do I cook braised pork",
    "who won the world cup",
    "write me a poem about the sea",
    "what is the capital of France",
    "明天天气怎么样",
    "给我讲个笑话",
    "红烧肉怎么做",
    "帮我写一首诗",
    "谁是美国第一任总统",
    "how do I fix a flat bicycle tyre",
];

async fn demo_kb(model: &str) -> Knowledge {
    let embedder = load_embedder(model, &model_dir()).expect("run scripts/fetch-models");
    let store = KbStore::in_memory().await.expect("store");
    let k = Knowledge::with_exact_index(store, embedder)
        .await
        .expect("knowledge");
    k.import("demo", kefu_kb::demo::sources(), &|_, _| {})
        .await
        .expect("import demo");
    k
}

struct Score {
    top1: usize,
    top3: usize,
    n: usize,
}

async fn score(k: &Knowledge, cases: &[(&str, &str)]) -> Score {
    let texts: Vec<String> = cases.iter().map(|c| c.0.to_string()).collect();
    let results = k.query_many("demo", &texts, 3, &[]).await.expect("query");
    let mut s = Score {
        top1: 0,
        top3: 0,
        n: cases.len(),
    };
    // The demo has every topic in both languages ("zh-hours" / "en-hours"): retrieval finds the
    // topic, and the composer picks the visitor's language among close entries.
    let topic = |id: &str| {
        id.strip_prefix("zh-")
            .or_else(|| id.strip_prefix("en-"))
            .unwrap_or(id)
            .to_string()
    };
    for ((q, gold), r) in cases.iter().zip(&results) {
        let ids: Vec<String> = r.hits.iter().map(|h| topic(&h.id)).collect();
        let gold = &topic(gold);
        if ids.first() == Some(gold) {
            s.top1 += 1;
        } else {
            eprintln!(
                "miss@1 {q:?}: expected {gold}, got {ids:?} ({:?})",
                r.hits.first().map(|h| h.score)
            );
        }
        if ids.contains(gold) {
            s.top3 += 1;
        }
    }
    eprintln!("recall@1 {}/{}  recall@3 {}/{}", s.top1, s.n, s.top3, s.n);
    s
}

async fn oos_answered(k: &Knowledge, questions: &[&str]) -> Vec<String> {
    let texts: Vec<String> = questions.iter().map(|q| q.to_string()).collect();
    let results = k.query_many("demo", &texts, 3, &[]).await.expect("query");
    results
        .iter()
        .filter(|r| r.band == Band::Answer)
        .map(|r| format!("{} -> {} ({:.3})", r.query, r.hits[0].id, r.hits[0].score))
        .collect()
}

#[tokio::test]
async fn e5_retrieval_quality_on_demo_kb() {
    let k = demo_kb("multilingual-e5-small").await;
    let zh = score(&k, PARAPHRASES_ZH).await;
    let en = score(&k, PARAPHRASES_EN).await;
    let answered = oos_answered(&k, OUT_OF_SCOPE).await;
    eprintln!("out-of-scope answered: {answered:?}");
    assert!(
        zh.top1 * 100 >= zh.n * FLOOR_ZH_TOP1,
        "zh recall@1 {}/{}",
        zh.top1,
        zh.n
    );
    assert!(
        en.top1 * 100 >= en.n * FLOOR_EN_TOP1,
        "en recall@1 {}/{}",
        en.top1,
        en.n
    );
    assert!(
        answered.is_empty(),
        "out-of-scope questions answered: {answered:?}"
    );

    // The exact entries answer outright, in both languages.
    let exact = k
        .query_many(
            "demo",
            &["下单后多久发货？".into(), "I forgot my password.".into()],
            3,
            &[],
        )
        .await
        .expect("query");
    assert!(exact.iter().all(|r| r.band == Band::Answer), "{exact:?}");
}

#[tokio::test]
async fn minilm_retrieval_quality_on_english_demo_questions() {
    let k = demo_kb("all-minilm-l6-v2").await;
    let en = score(&k, PARAPHRASES_EN).await;
    let english_oos: Vec<&str> = OUT_OF_SCOPE
        .iter()
        .copied()
        .filter(|q| q.is_ascii())
        .collect();
    let answered = oos_answered(&k, &english_oos).await;
    assert!(
        en.top1 * 100 >= en.n * FLOOR_MINILM_EN_TOP1,
        "en recall@1 {}/{}",
        en.top1,
        en.n
    );
    assert!(
        answered.is_empty(),
        "out-of-scope questions answered: {answered:?}"
    );
}

// Floors in percent, set a case or so under what was measured when they were pinned
// (hybrid retrieval on the consistent demo, topic in either language: e5 zh 20/20, en 12/15 = 80%;
// before: e5 zh 18/20, en 13/16 on the old demo; MiniLM en see its test's output), so
// that floating-point differences between CPUs cannot flip them but a real regression does.
const FLOOR_ZH_TOP1: usize = 85;
const FLOOR_EN_TOP1: usize = 75;
const FLOOR_MINILM_EN_TOP1: usize = 68;
