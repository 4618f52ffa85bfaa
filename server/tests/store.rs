//! The conversation store against real databases: SQLite (a file in a temp dir) and PostgreSQL
//! (`KEFU_TEST_DATABASE_URL`, default the local server's `test` database, in a fresh schema).

use kefu_protocol::{AuthorKind, ConversationState, Source};
use kefu_server::analytics::{date_of, Analytics, ReportRequest};
use kefu_server::store::{
    now_ms, Agent, Append, AttachmentLimits, AttachmentRecord, BotTurn, Channel, ChannelReply,
    FallbackCount, NewMessage, Require, Role, Site, Store, StoreError, TokenKind, TokenRecord,
    Transition, Visitor, WebhookEndpoint, PASSIVE_HOLD_MS,
};
use std::time::Duration;

const PG_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/test";

async fn sqlite_store(dir: &tempfile::TempDir) -> Store {
    Store::open_sqlite(&dir.path().join("conversations.db"))
        .await
        .expect("open sqlite")
}

/// A store in a new PostgreSQL schema, so runs never see each other's rows; and the schema.
async fn postgres_store() -> (Store, String) {
    let base = std::env::var("KEFU_TEST_DATABASE_URL").unwrap_or_else(|_| PG_DEFAULT.into());
    let schema = format!("kefu_test_{}", &kefu_server::store::new_id("")[..12]);
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&base)
        .await
        .expect(
            "PostgreSQL must be reachable at KEFU_TEST_DATABASE_URL (default 127.0.0.1:5432/test)",
        );
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await
        .expect("create schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    let store = Store::connect(&format!("{base}{sep}options=-c%20search_path%3D{schema}"))
        .await
        .expect("connect to PostgreSQL");
    (store, schema)
}

/// A test on SQLite (a file in a temp dir) and one on PostgreSQL (a fresh schema, dropped after)
/// running the same `exercise` function.
macro_rules! on_both_stores {
    ($exercise:ident => $sqlite:ident, $postgres:ident) => {
        #[tokio::test]
        async fn $sqlite() {
            let dir = tempfile::tempdir().expect("tempdir");
            $exercise(&sqlite_store(&dir).await).await;
        }

        #[tokio::test]
        async fn $postgres() {
            let (store, schema) = postgres_store().await;
            $exercise(&store).await;
            store.close().await;
            drop_schema(&schema).await;
        }
    };
}

fn msg(kind: AuthorKind, text: &str, id: Option<&str>) -> NewMessage {
    NewMessage {
        client_msg_id: id.map(str::to_string),
        ..NewMessage::text(kind, text)
    }
}

fn committed(a: Append) -> (u64, u32) {
    match a {
        Append::Committed {
            message,
            bot_fallbacks,
            state,
        } => {
            assert_ne!(
                state,
                ConversationState::Resolved,
                "committed into a resolved conversation"
            );
            (message.seq, bot_fallbacks)
        }
        other => panic!("expected a commit, got {other:?}"),
    }
}

async fn exercise(store: &Store) {
    // Sites, agents, tokens.
    let site = Site {
        key: "shop".into(),
        name: "商店 Shop".into(),
        allowed_origins: vec!["https://shop.example".into()],
        identity_secret: Some("0123456789abcdef".into()),
        enforce_identity: true,
    };
    store.create_site(&site).await.expect("site");
    assert!(matches!(
        store.create_site(&site).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(store.site("shop").await.expect("get"), Some(site.clone()));
    let agent = Agent {
        id: "a_1".into(),
        name: "li".into(),
        display_name: "小李".into(),
        password_hash: "x".into(),
        capacity: 2,
        role: Role::Agent,
    };
    store.create_agent(&agent).await.expect("agent");
    assert_eq!(
        store.agent_by_name("li").await.expect("get"),
        Some(agent.clone())
    );
    store
        .insert_token(
            "h-live",
            &TokenRecord {
                kind: TokenKind::Agent,
                subject: "a_1".into(),
                site_key: None,
                expires_at: now_ms() + 60_000,
            },
        )
        .await
        .expect("token");
    store
        .insert_token(
            "h-old",
            &TokenRecord {
                kind: TokenKind::Visitor,
                subject: "v".into(),
                site_key: Some("shop".into()),
                expires_at: now_ms() - 1,
            },
        )
        .await
        .expect("token");
    assert_eq!(
        store.token("h-live").await.expect("token").map(|t| t.kind),
        Some(TokenKind::Agent)
    );
    assert_eq!(store.token("h-old").await.expect("token"), None, "expired");
    assert_eq!(store.delete_expired_tokens().await.expect("gc"), 1);

    // Visitors: a verified user id maps to one visitor.
    let v1 = store
        .visitor_for("shop", Some("user-7"), Some("王"))
        .await
        .expect("visitor");
    let v2 = store
        .visitor_for("shop", Some("user-7"), None)
        .await
        .expect("visitor");
    assert_eq!(v1.id, v2.id);
    let anon = store
        .visitor_for("shop", None, None)
        .await
        .expect("visitor");
    assert_ne!(anon.id, v1.id);

    // Messages: gap-free seqs, dedupe by client_msg_id.
    let c = store.create_conversation(&v1).await.expect("conversation");
    assert_eq!(c.state, ConversationState::Bot);
    let (s1, _) = committed(
        store
            .append(
                &c.id,
                Require::Open,
                &msg(AuthorKind::Visitor, "多久发货？", Some("m1")),
            )
            .await
            .expect("append"),
    );
    assert_eq!(s1, 1);
    match store
        .append(
            &c.id,
            Require::Open,
            &msg(AuthorKind::Visitor, "again", Some("m1")),
        )
        .await
        .expect("dup")
    {
        Append::Duplicate(m) => {
            assert_eq!((m.seq, m.text.as_str()), (1, "多久发货？"));
        }
        other => panic!("{other:?}"),
    }
    let bot = NewMessage {
        sources: vec![Source {
            id: "zh-ship".into(),
            title: "多久发货？".into(),
            source: "faq-zh.csv".into(),
            score: 0.8,
        }],
        route_trace: Some(serde_json::json!({"decision": "fallback"})),
        fallbacks: FallbackCount::Increment,
        ..NewMessage::text(AuthorKind::Bot, "Sorry")
    };
    let (s2, fb) = committed(
        store
            .append(&c.id, Require::State(ConversationState::Bot), &bot)
            .await
            .expect("bot"),
    );
    assert_eq!((s2, fb), (2, 1));

    // Concurrent commits still get distinct, gap-free seqs.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        let id = c.id.clone();
        tasks.push(tokio::spawn(async move {
            store
                .append(
                    &id,
                    Require::Open,
                    &msg(
                        AuthorKind::Visitor,
                        &format!("n{i}"),
                        Some(&format!("p{i}")),
                    ),
                )
                .await
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(committed(t.await.expect("join").expect("append")).0);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (3..23).collect::<Vec<u64>>());

    // State machine: bot -> queued -> agent (owner only) -> bot -> resolved.
    let note = msg(AuthorKind::System, "转人工", None);
    let queued = Transition {
        from: &[ConversationState::Bot],
        to: ConversationState::Queued,
        agent_id: None,
        owner: None,
        offline: true,
        within_capacity: false,
    };
    let (cq, m) = store
        .transition(&c.id, &queued, &note)
        .await
        .expect("to queued")
        .expect("allowed");
    assert_eq!(
        (cq.state, cq.offline, m.seq),
        (ConversationState::Queued, true, 23)
    );
    assert!(store
        .transition(&c.id, &queued, &note)
        .await
        .expect("again")
        .is_none());
    assert!(
        matches!(
            store
                .append(&c.id, Require::State(ConversationState::Bot), &bot)
                .await
                .expect("refused"),
            Append::Refused(_)
        ),
        "the bot cannot answer a queued conversation"
    );
    let claim = Transition {
        from: &[ConversationState::Queued],
        to: ConversationState::Agent,
        agent_id: Some("a_1"),
        owner: None,
        offline: false,
        within_capacity: false,
    };
    store
        .transition(&c.id, &claim, &note)
        .await
        .expect("claim")
        .expect("allowed");
    assert_eq!(
        store.active_counts().await.expect("counts"),
        vec![("a_1".to_string(), 1)]
    );
    assert!(matches!(
        store
            .append(
                &c.id,
                Require::Owner("a_2"),
                &msg(AuthorKind::Agent, "hi", Some("x"))
            )
            .await
            .expect("refused"),
        Append::Refused(_)
    ));
    committed(
        store
            .append(
                &c.id,
                Require::Owner("a_1"),
                &msg(AuthorKind::Agent, "您好", Some("a-1")),
            )
            .await
            .expect("agent msg"),
    );
    let back = Transition {
        from: &[ConversationState::Agent],
        to: ConversationState::Bot,
        agent_id: None,
        owner: Some("a_2"),
        offline: false,
        within_capacity: false,
    };
    assert!(store
        .transition(&c.id, &back, &note)
        .await
        .expect("not owner")
        .is_none());
    let back = Transition {
        owner: Some("a_1"),
        ..back
    };
    store
        .transition(&c.id, &back, &note)
        .await
        .expect("hand back")
        .expect("owner");
    let done = Transition {
        from: &[ConversationState::Bot],
        to: ConversationState::Resolved,
        agent_id: None,
        owner: None,
        offline: false,
        within_capacity: false,
    };
    store
        .transition(&c.id, &done, &note)
        .await
        .expect("resolve")
        .expect("allowed");
    assert!(matches!(
        store
            .append(
                &c.id,
                Require::Open,
                &msg(AuthorKind::Visitor, "late", Some("late"))
            )
            .await
            .expect("closed"),
        Append::Refused(_)
    ));

    // Reads: after, before, listings, the route trace round-trips.
    let all = store.messages_after(&c.id, 0, 100).await.expect("after");
    assert_eq!(all.len(), 27);
    assert!(all.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    assert_eq!(
        all[1].route_trace,
        Some(serde_json::json!({"decision": "fallback"}))
    );
    assert_eq!(all[1].sources[0].id, "zh-ship");
    let before = store.messages_before(&c.id, 5, 2).await.expect("before");
    assert_eq!(before.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![3, 4]);
    let last = store
        .last_visitor_text(&c.id)
        .await
        .expect("last")
        .unwrap_or_default();
    assert!(last.starts_with('n'), "{last}");
    let listing = store
        .conversation_listing(&[ConversationState::Resolved], 10)
        .await
        .expect("listing");
    assert_eq!(listing.len(), 1);
    assert_eq!(listing[0].visitor_name.as_deref(), Some("王"));
    assert_eq!(listing[0].last_text.as_deref(), Some("转人工"));
    assert!(store
        .open_conversation(&v1.id)
        .await
        .expect("open")
        .is_none());
    assert!(matches!(
        store
            .append(
                "c_missing",
                Require::Open,
                &msg(AuthorKind::Visitor, "x", None)
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn sqlite_store_keeps_order_ownership_and_dedupe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = sqlite_store(&dir).await;
    exercise(&store).await;
    store.close().await;
    // Reopening the file keeps everything (and migrations are idempotent).
    let again = sqlite_store(&dir).await;
    let c = again
        .conversation_listing(&[ConversationState::Resolved], 1)
        .await
        .expect("listing");
    assert_eq!(c[0].conversation.last_seq, 27);
}

#[tokio::test]
async fn postgres_store_keeps_order_ownership_and_dedupe() {
    let (store, schema) = postgres_store().await;
    exercise(&store).await;
    store.close().await;
    drop_schema(&schema).await;
}

/// Pending bot turns are recorded with the visitor message and ended by the reply; a stale one is
/// leased by exactly one caller. Concurrent claims never exceed an agent's capacity.
async fn exercise_turns_and_capacity(store: &Store) {
    store
        .create_site(&Site {
            key: "s2".into(),
            name: "s2".into(),
            allowed_origins: vec![],
            identity_secret: None,
            enforce_identity: false,
        })
        .await
        .expect("site");
    let visitor: Visitor = store.visitor_for("s2", None, None).await.expect("visitor");
    let c = store.create_conversation(&visitor).await.expect("conv");
    let ask = NewMessage {
        bot_turn: BotTurn::Start,
        ..msg(AuthorKind::Visitor, "多久发货？", Some("q-1"))
    };
    let (seq, _) = committed(
        store
            .append(&c.id, Require::Open, &ask)
            .await
            .expect("append"),
    );
    let later = now_ms() + 60_000;
    let stale = store.stale_turns(later, 10).await.expect("stale");
    assert_eq!(stale.len(), 1, "the visitor message left a pending turn");
    assert_eq!(
        (stale[0].conversation_id.as_str(), stale[0].seq),
        (c.id.as_str(), seq)
    );
    assert!(store.lease_turn(&stale[0]).await.expect("lease"));
    assert!(
        !store.lease_turn(&stale[0]).await.expect("lease"),
        "one taker only"
    );
    let second = NewMessage {
        bot_turn: BotTurn::Start,
        ..msg(AuthorKind::Visitor, "还有别的吗", Some("q-2"))
    };
    let (seq2, _) = committed(
        store
            .append(&c.id, Require::Open, &second)
            .await
            .expect("append"),
    );
    let reply = NewMessage {
        bot_turn: BotTurn::Finish(seq),
        ..msg(AuthorKind::Bot, "当天发货", None)
    };
    committed(
        store
            .append(&c.id, Require::State(ConversationState::Bot), &reply)
            .await
            .expect("reply"),
    );
    let stale = store.stale_turns(later, 10).await.expect("stale");
    assert_eq!(
        stale.iter().map(|t| t.seq).collect::<Vec<_>>(),
        vec![seq2],
        "the reply to the first question leaves the second pending"
    );
    store.finish_turn(&c.id, seq2).await.expect("finish");
    assert!(store
        .stale_turns(later, 10)
        .await
        .expect("stale")
        .is_empty());

    // Ten queued conversations, one agent with capacity 1, ten claims at once.
    let agent = Agent {
        id: "a_cap".into(),
        name: "cap".into(),
        display_name: "Cap".into(),
        password_hash: "x".into(),
        capacity: 1,
        role: Role::Agent,
    };
    store.create_agent(&agent).await.expect("agent");
    let mut ids = Vec::new();
    for _ in 0..10 {
        let v = store.visitor_for("s2", None, None).await.expect("visitor");
        ids.push(store.create_conversation(&v).await.expect("conv").id);
    }
    let mut tasks = Vec::new();
    for id in ids {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let claim = Transition {
                from: &[ConversationState::Bot, ConversationState::Queued],
                to: ConversationState::Agent,
                agent_id: Some("a_cap"),
                owner: None,
                offline: false,
                within_capacity: true,
            };
            store
                .transition(&id, &claim, &msg(AuthorKind::System, "joined", None))
                .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        if t.await.expect("join").expect("claim").is_some() {
            won += 1;
        }
    }
    assert_eq!(won, 1, "capacity 1 means one claim wins");
    let active = store.active_counts().await.expect("counts");
    assert_eq!(active, vec![("a_cap".to_string(), 1)]);
}

on_both_stores!(exercise_turns_and_capacity => sqlite_store_records_turns_and_caps_claims, postgres_store_records_turns_and_caps_claims);

/// The webhook outbox: recorded once per id, due until leased, leased by one caller at a time,
/// rescheduled on failure, never due again once delivered or given up.
async fn exercise_outbox(store: &Store) {
    let body = r#"{"event":"rule_matched"}"#;
    for _ in 0..2 {
        store
            .enqueue_webhook("c_o:1:0", "c_o", "http://127.0.0.1:9/h", body)
            .await
            .expect("enqueue");
    }
    store
        .enqueue_webhook("c_o:2:0", "c_o", "http://127.0.0.1:9/h", body)
        .await
        .expect("enqueue");
    let now = now_ms() + 1;
    let due = store.due_webhooks(now, 10).await.expect("due");
    assert_eq!(
        due.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["c_o:1:0", "c_o:2:0"],
        "the same id twice is recorded once"
    );
    assert_eq!((due[0].attempts, due[0].body.as_str()), (0, body));
    let lease = now + 30_000;
    assert!(store
        .lease_webhook(&due[0], now, lease)
        .await
        .expect("lease"));
    assert!(
        !store
            .lease_webhook(&due[0], now, lease)
            .await
            .expect("lease"),
        "one taker at a time"
    );
    let due_now = store.due_webhooks(now, 10).await.expect("due");
    assert_eq!(due_now.len(), 1, "a leased delivery is not due");
    // Once the lease has run out (its node died) another caller may take it.
    let due_later = store.due_webhooks(lease + 1, 10).await.expect("due");
    assert_eq!(due_later.len(), 2);
    assert_eq!(due_later[0].attempts, 1, "the attempt was counted");

    store
        .webhook_failed("c_o:1:0", "503", Some(now + 5_000))
        .await
        .expect("failed");
    let ids = |v: Vec<kefu_server::store::OutboxDelivery>| {
        v.into_iter().map(|d| d.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(store.due_webhooks(now, 10).await.expect("due")),
        ["c_o:2:0"]
    );
    assert_eq!(
        ids(store.due_webhooks(now + 5_000, 10).await.expect("due")),
        ["c_o:2:0", "c_o:1:0"],
        "due again at its retry time, soonest first"
    );
    store.webhook_delivered("c_o:1:0").await.expect("delivered");
    store
        .webhook_failed("c_o:2:0", "gone", None)
        .await
        .expect("given up");
    assert!(store
        .due_webhooks(lease * 2, 10)
        .await
        .expect("due")
        .is_empty());
}

on_both_stores!(exercise_outbox => sqlite_outbox_leases_each_delivery_once, postgres_outbox_leases_each_delivery_once);

/// Commits a visitor message.
async fn visitor_says(store: &Store, conversation_id: &str, text: &str) {
    let appended = store
        .append(
            conversation_id,
            Require::Open,
            &msg(AuthorKind::Visitor, text, None),
        )
        .await
        .expect("append");
    committed(appended);
}

/// Event webhooks in the store: an event is recorded for each enabled, subscribed endpoint in the
/// transaction of its cause; the attempt that reaches the failure limit disables the endpoint
/// (once), whose deliveries then wait; enabling it again lets them out.
async fn exercise_event_endpoints(store: &Store) {
    let site = Site {
        key: "events".into(),
        name: "事件 Events".into(),
        allowed_origins: vec![],
        identity_secret: None,
        enforce_identity: false,
    };
    store.create_site(&site).await.expect("site");
    let endpoint = |id: &str, events: &[&str]| {
        let events = events.iter().map(|e| e.to_string()).collect();
        WebhookEndpoint::new(
            id,
            "events",
            "https://crm.example/hook",
            events,
            "whsec_test".into(),
        )
    };
    store
        .create_endpoint(&endpoint("we_all", &[]))
        .await
        .expect("endpoint");
    store
        .create_endpoint(&endpoint("we_csat", &["csat.submitted"]))
        .await
        .expect("endpoint");
    let visitor = store
        .visitor_for("events", None, None)
        .await
        .expect("visitor");
    let conv = store
        .create_conversation(&visitor)
        .await
        .expect("conversation");
    visitor_says(store, &conv.id, "你好 hello").await;
    let logged = |id: &'static str| async move {
        store
            .endpoint_deliveries(id, 50)
            .await
            .expect("log")
            .iter()
            .map(|d| {
                serde_json::from_str::<serde_json::Value>(&d.body).expect("body")["type"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect::<std::collections::BTreeSet<_>>()
    };
    let types = |l: &[&str]| {
        l.iter()
            .map(|t| t.to_string())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        logged("we_all").await,
        types(&["conversation.created", "message.created"])
    );
    assert!(
        logged("we_csat").await.is_empty(),
        "not subscribed to those"
    );
    store.rate(&conv.id, 4, Some("好")).await.expect("rate");
    assert_eq!(logged("we_csat").await, types(&["csat.submitted"]));

    // Failures against a limit of 3: the third disables it, and only the third says so.
    let mut disabled_by = Vec::new();
    for _ in 0..4 {
        let attempt = store.endpoint_attempted("we_all", false, 3);
        disabled_by.push(attempt.await.expect("count"));
    }
    assert_eq!(disabled_by, [false, false, true, false]);
    let disabled = store
        .endpoint("we_all")
        .await
        .expect("get")
        .expect("endpoint");
    assert!(!disabled.enabled);
    assert_eq!(
        disabled.disabled_reason.as_deref(),
        Some("disabled after 3 failed attempts in a row")
    );
    let due_for = |id: &'static str| async move {
        store
            .due_webhooks(now_ms() + 1, 100)
            .await
            .expect("due")
            .iter()
            .filter(|d| d.event.as_ref().is_some_and(|e| e.endpoint_id == id))
            .count()
    };
    assert_eq!(
        due_for("we_all").await,
        0,
        "a disabled endpoint's deliveries wait"
    );
    visitor_says(store, &conv.id, "still there?").await;
    let log = store.endpoint_deliveries("we_all", 50).await.expect("log");
    assert_eq!(
        log.len(),
        3,
        "nothing new is recorded for it (the rating was)"
    );
    assert!(store.enable_endpoint("we_all").await.expect("enable"));
    assert_eq!(due_for("we_all").await, 3, "enabled again, they go out");
    let enabled = store
        .endpoint("we_all")
        .await
        .expect("get")
        .expect("endpoint");
    assert_eq!((enabled.enabled, enabled.failures_in_a_row), (true, 0));
    let due = store.due_webhooks(now_ms() + 1, 100).await.expect("due");
    let signed = due
        .iter()
        .find_map(|d| d.event.clone())
        .expect("an event delivery");
    assert_eq!(signed.secrets, ["whsec_test"]);
    assert!(store.delete_endpoint("we_all").await.expect("delete"));
    assert_eq!(
        due_for("we_all").await,
        0,
        "a removed endpoint's deliveries are dropped"
    );
}

on_both_stores!(exercise_event_endpoints => sqlite_events_reach_subscribed_endpoints_until_disabled, postgres_events_reach_subscribed_endpoints_until_disabled);

/// Analytics count what was stored: bot outcomes, handoffs by reason, agent times, resolution
/// without an agent (after the quiet window), CSAT, unanswered questions, per site.
async fn exercise_analytics(store: &Store) {
    for key in ["a-shop", "b-shop"] {
        store
            .create_site(&Site {
                key: key.into(),
                name: key.into(),
                allowed_origins: vec![],
                identity_secret: None,
                enforce_identity: false,
            })
            .await
            .expect("site");
    }
    store
        .create_agent(&Agent {
            id: "a_an".into(),
            name: "an".into(),
            display_name: "安".into(),
            password_hash: "x".into(),
            capacity: 3,
            role: Role::Agent,
        })
        .await
        .expect("agent");
    let visitor = |site: &'static str| async move {
        let v = store.visitor_for(site, None, None).await.expect("visitor");
        store.create_conversation(&v).await.expect("conversation")
    };
    let say = |id: String, kind: AuthorKind, text: &'static str, outcome: Option<&'static str>| async move {
        let m = NewMessage {
            outcome,
            ..NewMessage::text(kind, text)
        };
        let require = match kind {
            AuthorKind::Agent => Require::Owner("a_an"),
            _ => Require::Open,
        };
        committed(store.append(&id, require, &m).await.expect("append"));
    };
    // 1: answered, then a fallback; never handed off.
    let c1 = visitor("a-shop").await;
    say(c1.id.clone(), AuthorKind::Visitor, "怎么退货？", None).await;
    say(
        c1.id.clone(),
        AuthorKind::Bot,
        "30 天内可退货。",
        Some("answer"),
    )
    .await;
    say(
        c1.id.clone(),
        AuthorKind::Visitor,
        "你们卖笔记本电脑吗",
        None,
    )
    .await;
    say(c1.id.clone(), AuthorKind::Bot, "抱歉……", Some("fallback")).await;
    // 2: the visitor asks for a human; an agent claims, answers and resolves; rated 4.
    let c2 = visitor("a-shop").await;
    say(c2.id.clone(), AuthorKind::Visitor, "人工", None).await;
    let handoff = NewMessage {
        handoff_reason: Some("requested"),
        ..NewMessage::text(AuthorKind::System, "正在转接")
    };
    let queued = Transition {
        from: &[ConversationState::Bot],
        to: ConversationState::Queued,
        agent_id: None,
        owner: None,
        offline: false,
        within_capacity: false,
    };
    store
        .transition(&c2.id, &queued, &handoff)
        .await
        .expect("queue")
        .expect("queued");
    let note = NewMessage::text(AuthorKind::System, "note");
    let claim = Transition {
        from: &[ConversationState::Queued],
        to: ConversationState::Agent,
        agent_id: Some("a_an"),
        ..queued
    };
    store
        .transition(&c2.id, &claim, &note)
        .await
        .expect("claim")
        .expect("claimed");
    say(c2.id.clone(), AuthorKind::Agent, "您好", None).await;
    say(c2.id.clone(), AuthorKind::Agent, "还有吗？", None).await;
    let resolve = Transition {
        from: &[ConversationState::Agent],
        to: ConversationState::Resolved,
        agent_id: None,
        owner: Some("a_an"),
        ..queued
    };
    store
        .transition(&c2.id, &resolve, &note)
        .await
        .expect("resolve")
        .expect("resolved");
    store
        .rate(&c2.id, 4, Some("很快 fast"))
        .await
        .expect("rate");
    // 3: suggestions only; rated 2 (then re-rated 1: the last rating counts).
    let c3 = visitor("a-shop").await;
    say(
        c3.id.clone(),
        AuthorKind::Visitor,
        "Do you sell laptops?",
        None,
    )
    .await;
    say(
        c3.id.clone(),
        AuthorKind::Bot,
        "Did you mean…",
        Some("suggest"),
    )
    .await;
    store.rate(&c3.id, 2, None).await.expect("rate");
    store.rate(&c3.id, 1, None).await.expect("rate again");
    assert_eq!(
        store.rating(&c3.id).await.expect("rating").map(|r| r.score),
        Some(1)
    );
    // Another site's conversation.
    let other = visitor("b-shop").await;
    say(other.id.clone(), AuthorKind::Visitor, "hello", None).await;

    // Yesterday and today: a run across midnight still sees everything.
    let today = date_of(now_ms());
    let yesterday = date_of(now_ms() - 86_400_000);
    let request = |site: Option<&str>| ReportRequest {
        from: yesterday.clone(),
        to: today.clone(),
        offset_minutes: 0,
        site: site.map(str::to_string),
    };
    // A zero window: every conversation is quiet long enough.
    let r = Analytics::new(store.clone(), Duration::ZERO)
        .report(&request(Some("a-shop")))
        .await
        .expect("report");
    assert_eq!((r.conversations, r.visitor_messages), (3, 4));
    assert_eq!(
        (
            r.bot_replies.answered,
            r.bot_replies.suggested,
            r.bot_replies.fallback
        ),
        (1, 1, 1)
    );
    assert_eq!(r.resolved_without_agent, 2, "conversations 1 and 3");
    assert_eq!(r.handoffs.total, 1);
    assert_eq!(r.handoffs.by_reason.get("requested"), Some(&1));
    assert_eq!(r.agents.first_response_s.count, 1);
    assert_eq!(r.agents.time_to_resolve_s.count, 1);
    assert_eq!(
        (r.csat.count, r.csat.mean, r.csat.scores),
        (2, Some(2.5), [1, 0, 0, 1, 0])
    );
    assert_eq!(r.days.len(), 2);
    assert_eq!(r.days[1].date, today);
    let per_day = |f: fn(&kefu_server::analytics::Day) -> u64| r.days.iter().map(f).sum::<u64>();
    assert_eq!(
        (
            per_day(|d| d.conversations),
            per_day(|d| d.visitor_messages),
            per_day(|d| d.handoffs)
        ),
        (3, 4, 1)
    );
    assert_eq!(r.busiest_hours.iter().sum::<u64>(), 4);
    let gaps: Vec<&str> = r
        .top_unanswered
        .iter()
        .map(|g| g.question.as_str())
        .collect();
    assert_eq!(gaps.len(), 2, "{gaps:?}");
    assert!(gaps.contains(&"Do you sell laptops?") && gaps.contains(&"你们卖笔记本电脑吗"));

    // Every site; and the default day-long window: nothing is resolved yet.
    let all = Analytics::new(store.clone(), Duration::from_secs(86_400))
        .report(&request(None))
        .await
        .expect("report");
    assert_eq!((all.conversations, all.visitor_messages), (4, 5));
    assert_eq!(all.resolved_without_agent, 0);
    // Two days before: nothing.
    let before = date_of(now_ms() - 2 * 86_400_000);
    let none = Analytics::new(store.clone(), Duration::ZERO)
        .report(&ReportRequest {
            from: before.clone(),
            to: before,
            offset_minutes: 0,
            site: None,
        })
        .await
        .expect("report");
    assert_eq!((none.conversations, none.visitor_messages), (0, 0));
}

/// A new open site `key` and a first anonymous visitor of it.
async fn site_with_visitor(store: &Store, key: &str) -> Visitor {
    store
        .create_site(&Site {
            key: key.into(),
            name: format!("{key} 小店"),
            allowed_origins: vec![],
            identity_secret: None,
            enforce_identity: false,
        })
        .await
        .expect("site");
    store.visitor_for(key, None, None).await.expect("visitor")
}

/// The agent's suggestions look up the visitor's last question, not a typed handoff request.
async fn exercise_last_question(store: &Store) {
    let v = site_with_visitor(store, "q-shop").await;
    let c = store.create_conversation(&v).await.expect("conversation");
    for (kind, text) in [
        (AuthorKind::Visitor, "发票怎么开？"),
        (AuthorKind::Bot, "订单页可以申请电子发票。"),
        (AuthorKind::Visitor, "人工"),
        (AuthorKind::System, "正在为您转接人工客服，请稍候。"),
    ] {
        committed(
            store
                .append(&c.id, Require::Open, &NewMessage::text(kind, text))
                .await
                .expect("append"),
        );
    }
    let q = store.last_visitor_question(&c.id).await.expect("question");
    assert_eq!(q.as_deref(), Some("发票怎么开？"));
    assert_eq!(
        store
            .last_visitor_text(&c.id)
            .await
            .expect("text")
            .as_deref(),
        Some("人工")
    );
}

on_both_stores!(exercise_last_question => sqlite_last_question_skips_handoff_requests, postgres_last_question_skips_handoff_requests);

on_both_stores!(exercise_analytics => sqlite_analytics_count_what_happened, postgres_analytics_count_what_happened);

async fn drop_schema(schema: &str) {
    let base = std::env::var("KEFU_TEST_DATABASE_URL").unwrap_or_else(|_| PG_DEFAULT.into());
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&base)
        .await
        .expect("connect");
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut conn)
        .await
        .expect("drop schema");
}

/// Channel visitors and replies: a channel's user is one visitor per `(site, channel, user id)`,
/// apart from a web visitor with the same id; their conversation carries the channel; bot and
/// system replies to a WeChat user wait in the outbox for the passive reply, which takes each
/// at most once and never one a worker has leased; visitor messages and web replies are not
/// queued.
async fn exercise_channel_replies(store: &Store) {
    store
        .create_site(&Site {
            key: "wx-shop".into(),
            name: "微信小店".into(),
            allowed_origins: vec![],
            identity_secret: None,
            enforce_identity: false,
        })
        .await
        .expect("site");
    let v = store
        .channel_visitor("wx-shop", Channel::Wechat, "oUser1", None)
        .await
        .expect("visitor");
    let again = store
        .channel_visitor("wx-shop", Channel::Wechat, "oUser1", Some("ignored"))
        .await
        .expect("visitor");
    assert_eq!(v.id, again.id, "one visitor per channel user");
    let web = store
        .visitor_for("wx-shop", Some("oUser1"), None)
        .await
        .expect("web visitor");
    assert_ne!(
        web.id, v.id,
        "a verified web user with the same id is someone else"
    );
    let conv = store.create_conversation(&v).await.expect("conversation");
    assert_eq!(
        (conv.channel, conv.channel_user.as_deref()),
        (Channel::Wechat, Some("oUser1"))
    );
    let read = store
        .conversation(&conv.id)
        .await
        .expect("read")
        .expect("conversation");
    assert_eq!(read.channel_user.as_deref(), Some("oUser1"));
    let web_conv = store.create_conversation(&web).await.expect("conversation");
    assert_eq!(
        (web_conv.channel, web_conv.channel_user),
        (Channel::Web, None)
    );

    let say = |id: String, kind: AuthorKind, text: &'static str| async move {
        committed(
            store
                .append(&id, Require::Open, &NewMessage::text(kind, text))
                .await
                .expect("append"),
        )
    };
    say(conv.id.clone(), AuthorKind::Visitor, "多久发货？").await;
    say(conv.id.clone(), AuthorKind::Bot, "48 小时内发货。").await;
    say(conv.id.clone(), AuthorKind::System, "正在转接人工客服…").await;
    say(web_conv.id.clone(), AuthorKind::Visitor, "hi").await;
    say(web_conv.id.clone(), AuthorKind::Bot, "Hello!").await;

    let channel_due = |at: i64| async move {
        store
            .due_webhooks(at, 100)
            .await
            .expect("due")
            .into_iter()
            .filter(|d| d.channel.is_some())
            .collect::<Vec<_>>()
    };
    assert!(
        channel_due(now_ms()).await.is_empty(),
        "held for the passive reply"
    );
    let later = now_ms() + PASSIVE_HOLD_MS + 1;
    let due = channel_due(later).await;
    assert_eq!(
        due.len(),
        2,
        "the bot's and the system's replies, not the visitor's"
    );
    assert!(due.iter().all(|d| d.channel == Some(Channel::Wechat)));
    let first: ChannelReply = serde_json::from_str(&due[0].body).expect("reply body");
    assert_eq!(
        (first.site_key.as_str(), first.user.as_str()),
        ("wx-shop", "oUser1")
    );

    let taken = store.take_queued_reply(&conv.id, 1).await.expect("take");
    assert_eq!(taken.map(|r| r.text).as_deref(), Some("48 小时内发货。"));
    let left = channel_due(later).await;
    assert_eq!(left.len(), 1, "a taken reply is not sent again");
    assert!(store
        .lease_webhook(&left[0], later, later + 30_000)
        .await
        .expect("lease"));
    assert_eq!(
        store.take_queued_reply(&conv.id, 1).await.expect("take"),
        None,
        "a reply a worker leased is the worker's"
    );
    assert_eq!(
        store.take_queued_reply(&conv.id, 3).await.expect("take"),
        None
    );
}

on_both_stores!(exercise_channel_replies => sqlite_channel_replies_are_queued_held_and_taken_once, postgres_channel_replies_are_queued_held_and_taken_once);

/// Erasure and retention in the store: erasing a visitor removes their conversations, messages,
/// rating, undelivered event deliveries, tokens and row, leaves others alone, and is audited with
/// counts only; retention deletes what is idle past the cutoff once, auditing only runs that
/// deleted something.
async fn exercise_privacy(store: &Store) {
    store
        .create_site(&Site {
            key: "p-shop".into(),
            name: "隐私小店".into(),
            allowed_origins: vec![],
            identity_secret: None,
            enforce_identity: false,
        })
        .await
        .expect("site");
    store
        .create_endpoint(&WebhookEndpoint::new(
            "we_p",
            "p-shop",
            "http://127.0.0.1:9/hook",
            vec![],
            "whsec_p".into(),
        ))
        .await
        .expect("endpoint");
    let gone = store
        .visitor_for("p-shop", Some("user-42"), Some("王芳"))
        .await
        .expect("visitor");
    let kept = store
        .channel_visitor("p-shop", Channel::Api, "line:U7", None)
        .await
        .expect("visitor");
    let c1 = store.create_conversation(&gone).await.expect("conv");
    let c2 = store.create_conversation(&kept).await.expect("conv");
    visitor_says(store, &c1.id, "我的手机号是 13800000000").await;
    visitor_says(store, &c2.id, "hello").await;
    store.rate(&c1.id, 2, Some("慢")).await.expect("rate");
    store
        .insert_token(
            "h-erase",
            &TokenRecord {
                kind: TokenKind::Visitor,
                subject: gone.id.clone(),
                site_key: Some("p-shop".into()),
                expires_at: now_ms() + 60_000,
            },
        )
        .await
        .expect("token");

    let erased = store.erase_visitor(&gone, "cli").await.expect("erase");
    assert_eq!(erased.conversation_ids, [c1.id.as_str()]);
    assert_eq!(
        (
            erased.messages,
            erased.ratings,
            erased.tokens,
            erased.visitors
        ),
        (1, 1, 1, 1)
    );
    assert!(
        erased.deliveries >= 3,
        "created, message, rating events: {erased:?}"
    );
    assert!(store.conversation(&c1.id).await.expect("read").is_none());
    assert!(store.visitor(&gone.id).await.expect("read").is_none());
    assert!(store.token("h-erase").await.expect("read").is_none());
    assert!(store
        .endpoint_deliveries("we_p", 100)
        .await
        .expect("log")
        .iter()
        .all(|d| !d.body.contains("13800000000")));
    assert!(store.conversation(&c2.id).await.expect("read").is_some());
    let log = store.audit_log(10).await.expect("audit");
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].action.as_str(), log[0].subject.as_deref()),
        ("visitor.erased", Some(gone.id.as_str()))
    );
    assert_eq!(log[0].detail["messages"], 1);
    assert!(!log[0].detail.to_string().contains("13800000000"));

    assert!(store.set_retention("p-shop", 30, "cli").await.expect("set"));
    assert!(!store.set_retention("nope", 30, "cli").await.expect("set"));
    assert!(store
        .retention_policies()
        .await
        .expect("policies")
        .contains(&("p-shop".to_string(), 30)));
    let nothing = store
        .delete_expired("p-shop", now_ms() - 86_400_000)
        .await
        .expect("retention");
    assert!(nothing.conversation_ids.is_empty(), "nothing is that old");
    let swept = store
        .delete_expired("p-shop", now_ms() + 1)
        .await
        .expect("retention");
    assert_eq!(swept.conversation_ids, [c2.id.as_str()]);
    assert_eq!(swept.visitors, 1, "the visitor left with nothing");
    let again = store
        .delete_expired("p-shop", now_ms() + 1)
        .await
        .expect("retention");
    assert_eq!(again, Default::default());
    let mut actions: Vec<String> = store
        .audit_log(10)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.action)
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        ["retention.deleted", "retention.set", "visitor.erased"]
    );
}

on_both_stores!(exercise_privacy => sqlite_erasure_and_retention_delete_what_they_name, postgres_erasure_and_retention_delete_what_they_name);

fn upload(id: &str, conversation_id: &str, uploader: &str, created_at: i64) -> AttachmentRecord {
    AttachmentRecord {
        id: id.into(),
        site_key: "a-shop".into(),
        conversation_id: conversation_id.into(),
        uploader_kind: AuthorKind::Visitor,
        uploader_id: uploader.into(),
        name: "收据.png".into(),
        content_type: "image/png".into(),
        size: 1234,
        width: Some(64),
        height: Some(32),
        thumbnail: true,
        seq: None,
        created_at,
    }
}

/// Attachments in the store: a message carries its sender's unsent uploads to the conversation
/// (bound in its transaction, each once, in the order named), every read brings them with signed
/// links, a refused binding commits nothing, unsent uploads expire, limits are kept per site, and
/// erasure names the files to delete.
async fn exercise_attachments(store: &Store) {
    let v = site_with_visitor(store, "a-shop").await;
    let other = store
        .visitor_for("a-shop", None, None)
        .await
        .expect("visitor");
    let c = store.create_conversation(&v).await.expect("conv");
    let now = now_ms();
    for a in [
        upload("att_a", &c.id, &v.id, now),
        upload("att_b", &c.id, &v.id, now),
        upload("att_theirs", &c.id, &other.id, now),
        upload("att_old", &c.id, &v.id, now - 2 * 86_400_000),
    ] {
        store.insert_attachment(&a).await.expect("insert");
    }
    let send = |ids: &[&str], client: &str| NewMessage {
        author_id: Some(v.id.clone()),
        client_msg_id: Some(client.into()),
        attachments: ids.iter().map(|s| s.to_string()).collect(),
        ..NewMessage::text(AuthorKind::Visitor, "")
    };
    // Someone else's upload, or an unknown id: nothing is committed.
    for ids in [&["att_a", "att_theirs"][..], &["att_a", "att_nope"][..]] {
        let r = store
            .append(&c.id, Require::Open, &send(ids, "m-x"))
            .await
            .expect("append");
        assert_eq!(r, Append::UnknownAttachment, "{ids:?}");
    }
    assert_eq!(
        store
            .conversation(&c.id)
            .await
            .expect("c")
            .map(|c| c.last_seq),
        Some(0)
    );
    let Append::Committed { message, .. } = store
        .append(
            &c.id,
            Require::Open,
            &send(&["att_b", "att_a", "att_b"], "m-1"),
        )
        .await
        .expect("append")
    else {
        panic!("not committed");
    };
    let names: Vec<&str> = message.attachments.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(names, ["att_b", "att_a"], "in the order named, once each");
    let read = store
        .message(&c.id, message.seq)
        .await
        .expect("read")
        .expect("message");
    assert_eq!(read.attachments.len(), 2);
    let a = &read.attachments[1];
    assert_eq!(
        (a.name.as_str(), a.size, a.width),
        ("收据.png", 1234, Some(64))
    );
    assert!(a.url.starts_with("/v1/attachments/att_a?exp="), "{}", a.url);
    assert!(a
        .thumbnail_url
        .as_deref()
        .is_some_and(|t| t.starts_with("/v1/attachments/att_a/thumbnail?")));
    // The same upload cannot go out again; a resend of the same message is the same message.
    let again = store
        .append(&c.id, Require::Open, &send(&["att_a"], "m-2"))
        .await
        .expect("append");
    assert_eq!(again, Append::UnknownAttachment);
    let resend = store
        .append(&c.id, Require::Open, &send(&["att_b", "att_a"], "m-1"))
        .await
        .expect("append");
    assert!(matches!(resend, Append::Duplicate(m) if m.seq == message.seq));
    assert_eq!(
        store
            .attachment("att_a")
            .await
            .expect("read")
            .and_then(|r| r.seq),
        Some(message.seq)
    );

    // Unsent uploads older than the cutoff go; sent ones and recent ones stay.
    let gone = store
        .delete_unsent_attachments(now - 86_400_000)
        .await
        .expect("sweep");
    assert_eq!(gone, vec!["att_old".to_string()]);
    assert!(store
        .attachment("att_theirs")
        .await
        .expect("read")
        .is_some());

    // Limits per site.
    let limits = AttachmentLimits {
        max_bytes: Some(2_000_000),
        kinds: Some("image,pdf".into()),
    };
    store
        .set_attachment_limits("a-shop", &limits)
        .await
        .expect("set");
    assert_eq!(
        store.attachment_limits("a-shop").await.expect("get"),
        limits
    );
    assert!(matches!(
        store.set_attachment_limits("no-shop", &limits).await,
        Err(StoreError::NotFound(_))
    ));

    // Erasing the visitor names every attachment of their conversations.
    let deleted = store.erase_visitor(&v, "test").await.expect("erase");
    let mut ids = deleted.attachment_ids.clone();
    ids.sort();
    assert_eq!(ids, ["att_a", "att_b", "att_theirs"]);
    assert!(store.attachment("att_a").await.expect("read").is_none());
}

on_both_stores!(exercise_attachments => sqlite_attachments_bind_once_and_are_erased, postgres_attachments_bind_once_and_are_erased);
