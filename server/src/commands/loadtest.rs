//! `kefu loadtest`: many visitors over loopback WebSockets asking real knowledge-base questions at
//! a fixed total rate; prints JSON (connections held, messages/s, bot-reply latency percentiles,
//! errors, server RSS). Bounded in connections, rate and time, and loopback only.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Mutex};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Limits that keep a load test from becoming an attack.
pub const MAX_CONNECTIONS: usize = 20_000;
pub const MAX_DURATION: Duration = Duration::from_secs(600);
pub const MAX_RATE: f64 = 5_000.0;

/// Questions the demo knowledge base answers, in both languages.
const QUESTIONS: &[&str] = &[
    "多久能发货？",
    "怎么申请退货？",
    "支持哪些付款方式？",
    "运费怎么算？",
    "可以开发票吗？",
    "订单可以修改地址吗？",
    "How long does shipping take?",
    "How do I return an item?",
    "Which payment methods do you accept?",
    "Do you ship internationally?",
    "Can I change my delivery address?",
    "How do I track my order?",
];

#[derive(Debug, clap::Args)]
pub struct LoadtestArgs {
    /// The server to test (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Site key the visitors use.
    #[arg(long, default_value = "demo")]
    pub site: String,
    /// WebSocket connections to open and hold.
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// How long to send questions after all connections are open (e.g. 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Questions per second across all connections.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Sessions and connections opened at once during ramp-up.
    #[arg(long, default_value_t = 64)]
    pub ramp_concurrency: usize,
}

#[derive(Default)]
struct Counters {
    session_errors: AtomicU64,
    connect_errors: AtomicU64,
    error_frames: AtomicU64,
    closed_early: AtomicU64,
    questions: AtomicU64,
    replies: AtomicU64,
    busy_skips: AtomicU64,
    handed_off: AtomicU64,
}

/// Runs the load test and prints its JSON report.
pub async fn run(args: LoadtestArgs) -> anyhow::Result<()> {
    let base = args.url.trim_end_matches('/').to_string();
    check_loopback(&base)?;
    if args.connections == 0 || args.connections > MAX_CONNECTIONS {
        anyhow::bail!("--connections must be 1-{MAX_CONNECTIONS}");
    }
    if args.duration > MAX_DURATION || args.duration.is_zero() {
        anyhow::bail!("--duration must be at most {}s", MAX_DURATION.as_secs());
    }
    if !(args.rate > 0.0 && args.rate <= MAX_RATE) {
        anyhow::bail!("--rate must be in (0, {MAX_RATE}]");
    }
    let ws_url = format!("ws{}/v1/ws", base.trim_start_matches("http"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let counters = Arc::new(Counters::default());
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));

    // Ramp up: sessions, then connections, `ramp_concurrency` at a time.
    let ramp_started = Instant::now();
    let opened: Vec<Option<mpsc::Sender<&'static str>>> =
        futures_util::stream::iter(0..args.connections)
            .map(|_| {
                let http = http.clone();
                let base = base.clone();
                let ws_url = ws_url.clone();
                let site = args.site.clone();
                let counters = Arc::clone(&counters);
                let latencies = Arc::clone(&latencies);
                async move {
                    let session = match create_session(&http, &base, &site).await {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::debug!(error = %e, "session failed");
                            counters.session_errors.fetch_add(1, Ordering::Relaxed);
                            return None;
                        }
                    };
                    match open_visitor(&ws_url, session, counters.clone(), latencies).await {
                        Ok(tx) => Some(tx),
                        Err(e) => {
                            tracing::debug!(error = %e, "connect failed");
                            counters.connect_errors.fetch_add(1, Ordering::Relaxed);
                            None
                        }
                    }
                }
            })
            .buffer_unordered(args.ramp_concurrency.clamp(1, 1024))
            .collect()
            .await;
    let visitors: Vec<mpsc::Sender<&'static str>> = opened.into_iter().flatten().collect();
    let opened_count = visitors.len();
    let ramp_s = ramp_started.elapsed().as_secs_f64();
    if visitors.is_empty() {
        anyhow::bail!("no connection could be opened to {ws_url}");
    }

    // Ask at a fixed total rate, round robin over the connections.
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut i = 0usize;
    while started.elapsed() < args.duration {
        tick.tick().await;
        let q = QUESTIONS[i % QUESTIONS.len()];
        if visitors[i % visitors.len()].try_send(q).is_err() {
            counters.busy_skips.fetch_add(1, Ordering::Relaxed);
        }
        i += 1;
    }
    let send_s = started.elapsed().as_secs_f64();
    // Let the last answers arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held = visitors.iter().filter(|v| !v.is_closed()).count();
    let server_rss = server_rss(&http, &base).await;
    drop(visitors);

    let mut lat = latencies.lock().await.clone();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| -> Value {
        if lat.is_empty() {
            return Value::Null;
        }
        let idx = ((p / 100.0) * (lat.len() - 1) as f64).round() as usize;
        json!((lat[idx.min(lat.len() - 1)] * 100.0).round() / 100.0)
    };
    let c = &counters;
    let questions = c.questions.load(Ordering::Relaxed);
    let replies = c.replies.load(Ordering::Relaxed);
    let report = json!({
        "url": base,
        "connections_target": args.connections,
        "connections_opened": opened_count,
        "connections_held": held,
        "ramp_up_s": (ramp_s * 100.0).round() / 100.0,
        "duration_s": (send_s * 100.0).round() / 100.0,
        "rate_target": args.rate,
        "questions_sent": questions,
        "bot_replies": replies,
        "questions_per_s": ((questions as f64 / send_s) * 10.0).round() / 10.0,
        "messages_per_s": (((questions + replies) as f64 / send_s) * 10.0).round() / 10.0,
        "bot_reply_latency_ms": { "p50": pct(50.0), "p90": pct(90.0), "p99": pct(99.0), "max": pct(100.0) },
        "errors": {
            "session": c.session_errors.load(Ordering::Relaxed),
            "connect": c.connect_errors.load(Ordering::Relaxed),
            "error_frames": c.error_frames.load(Ordering::Relaxed),
            "closed_early": c.closed_early.load(Ordering::Relaxed),
            "unanswered": questions.saturating_sub(replies),
        },
        "skipped_busy": c.busy_skips.load(Ordering::Relaxed),
        "handed_off": c.handed_off.load(Ordering::Relaxed),
        "server_rss_bytes": server_rss,
        "loadtest_rss_bytes": crate::http::resident_memory_bytes(),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn check_loopback(url: &str) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("--url must be http://… on this machine"))?;
    let host = rest.split('/').next().unwrap_or("");
    let host = host
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(host)
        .trim_matches(['[', ']']);
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        anyhow::bail!("the load test only targets loopback addresses (got `{host}`)");
    }
    Ok(())
}

struct Session {
    token: String,
    conversation_id: String,
}

async fn create_session(http: &reqwest::Client, base: &str, site: &str) -> anyhow::Result<Session> {
    let r: Value = http
        .post(format!("{base}/v1/visitor/sessions"))
        .json(&json!({ "site_key": site }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(Session {
        token: r["token"].as_str().unwrap_or_default().to_string(),
        conversation_id: r["conversation_id"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    })
}

/// Opens one visitor connection (hello + subscribe) and spawns its task; questions arrive on the
/// returned channel (capacity 1: a visitor asks one question at a time).
async fn open_visitor(
    ws_url: &str,
    session: Session,
    counters: Arc<Counters>,
    latencies: Arc<Mutex<Vec<f64>>>,
) -> anyhow::Result<mpsc::Sender<&'static str>> {
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(4096);
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(ws_url, Some(config), false).await?;
    let hello = json!({ "type": "hello", "version": 1, "token": session.token });
    ws.send(WsMessage::text(hello.to_string())).await?;
    let sub =
        json!({ "type": "subscribe", "conversation_id": session.conversation_id, "after_seq": 0 });
    ws.send(WsMessage::text(sub.to_string())).await?;
    // Wait for the welcome so a connection counts only once it is really usable.
    let welcome = tokio::time::timeout(Duration::from_secs(30), ws.next()).await?;
    match welcome {
        Some(Ok(WsMessage::Text(t))) if t.contains("\"welcome\"") => {}
        other => anyhow::bail!("no welcome: {other:?}"),
    }
    let (tx, mut rx) = mpsc::channel::<&'static str>(1);
    tokio::spawn(async move {
        let mut outstanding: Option<Instant> = None;
        let mut handed_off = false;
        let mut n = 0u64;
        let mut ping = tokio::time::interval(Duration::from_secs(30));
        loop {
            tokio::select! {
                q = rx.recv(), if outstanding.is_none() && !handed_off => {
                    let Some(q) = q else { break };
                    n += 1;
                    let frame = json!({ "type": "send", "conversation_id": session.conversation_id,
                                        "client_msg_id": format!("lt-{n}"), "text": q });
                    if ws.send(WsMessage::text(frame.to_string())).await.is_err() {
                        counters.closed_early.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    counters.questions.fetch_add(1, Ordering::Relaxed);
                    outstanding = Some(Instant::now());
                }
                _ = ping.tick() => {
                    if ws.send(WsMessage::text(r#"{"type":"ping"}"#)).await.is_err() {
                        counters.closed_early.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
                frame = ws.next() => {
                    let text = match frame {
                        Some(Ok(WsMessage::Text(t))) => t,
                        Some(Ok(_)) => continue,
                        _ => {
                            counters.closed_early.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    };
                    let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                    match v["type"].as_str() {
                        Some("message") => {
                            let kind = v["message"]["author"]["kind"].as_str();
                            if matches!(kind, Some("bot") | Some("system")) {
                                if let Some(t0) = outstanding.take() {
                                    counters.replies.fetch_add(1, Ordering::Relaxed);
                                    latencies.lock().await.push(t0.elapsed().as_secs_f64() * 1e3);
                                }
                            }
                        }
                        Some("state") if v["state"] != "bot" && !handed_off => {
                            counters.handed_off.fetch_add(1, Ordering::Relaxed);
                            handed_off = true;
                            outstanding = None;
                        }
                        Some("error") => {
                            counters.error_frames.fetch_add(1, Ordering::Relaxed);
                            outstanding = None;
                        }
                        _ => {}
                    }
                }
            }
        }
        let _ = ws.close(None).await;
    });
    Ok(tx)
}

async fn server_rss(http: &reqwest::Client, base: &str) -> Option<u64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let values: BTreeMap<&str, &str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .collect();
    values
        .get("kefu_process_resident_memory_bytes")
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
}
