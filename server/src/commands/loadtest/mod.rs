//! `kefu loadtest`: many visitors over loopback WebSockets at a fixed total rate, either asking the
//! bot real knowledge-base questions (`--mode bot`) or writing to agents who took their
//! conversations over (`--mode relay`); prints JSON (connections held, messages/s, latency
//! percentiles, errors, server RSS). Bounded in connections, rate and time, and loopback only.

mod agents;
mod visitors;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

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

/// What visitors write to an agent in `--mode relay`, in both languages.
const RELAY_MESSAGES: &[&str] = &[
    "你好，我的包裹显示已签收但我没收到",
    "订单号是 20261205-8831",
    "可以帮我改成顺丰吗？",
    "好的，谢谢！",
    "Hi, my parcel says delivered but it isn't here",
    "The order number is 20261205-8831",
    "Could you send a replacement instead?",
    "Great, thank you!",
];

/// What the visitors do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Ask the bot knowledge-base questions; time each question to the bot's reply.
    Bot,
    /// Agents (accounts `loadtest-<key tag>-1…`, made with `--admin-key`) claim every conversation; time
    /// each visitor message from its send to its arrival on the agent's socket.
    Relay,
}

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
    /// How long to send messages after all connections are open (e.g. 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Messages per second across all connections.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// `bot`: visitors ask the bot; `relay`: visitors write to agents who claimed their
    /// conversations (one agent per 100 connections).
    #[arg(long, value_enum, default_value = "bot")]
    pub mode: Mode,
    /// An admin API key (`kefu admin-key`): `--mode relay` creates its agent accounts with it.
    #[arg(long, env = "KEFU_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// Sessions and connections opened at once during ramp-up.
    #[arg(long, default_value_t = 64)]
    pub ramp_concurrency: usize,
}

#[derive(Default)]
struct Counters {
    session_errors: AtomicU64,
    connect_errors: AtomicU64,
    error_frames: AtomicU64,
    agent_error_frames: AtomicU64,
    /// Agent sockets the server closed before the load test signed its agents out.
    agent_closed: AtomicU64,
    closed_early: AtomicU64,
    /// Messages the visitors sent.
    sent: AtomicU64,
    /// Messages answered: by the bot (`bot`), or acknowledged (`relay`).
    answered: AtomicU64,
    /// Visitor messages delivered to an agent's socket (`relay`).
    relayed: AtomicU64,
    /// Conversations an agent's socket subscribed to (`relay`).
    subscribed: AtomicU64,
    busy_skips: AtomicU64,
    handed_off: AtomicU64,
}

/// What the visitor and agent tasks share: counters, latencies and the messages in flight.
#[derive(Default)]
struct Shared {
    counters: Counters,
    next_message: AtomicU64,
    /// Milliseconds from send to the bot's reply (`bot`) or to the ack (`relay`).
    answer_ms: Mutex<Vec<f64>>,
    /// Milliseconds from a visitor's send to the message on the agent's socket (`relay`).
    relay_ms: Mutex<Vec<f64>>,
    /// Send times of relayed messages not yet seen by an agent, by `client_msg_id`.
    in_flight: Mutex<HashMap<String, Instant>>,
}

impl Shared {
    fn record_answer(&self, took: Duration) {
        lock(&self.answer_ms).push(took.as_secs_f64() * 1e3);
    }

    fn record_relay(&self, took: Duration) {
        lock(&self.relay_ms).push(took.as_secs_f64() * 1e3);
    }

    /// Whether every message sent so far has its answer (and, relaying, reached an agent).
    fn settled(&self, mode: Mode) -> bool {
        let c = &self.counters;
        let sent = c.sent.load(Ordering::Relaxed);
        c.answered.load(Ordering::Relaxed) >= sent
            && (mode == Mode::Bot || c.relayed.load(Ordering::Relaxed) >= sent)
    }

    fn in_flight_insert(&self, id: &str, sent: Instant) {
        lock(&self.in_flight).insert(id.to_string(), sent);
    }

    fn in_flight_remove(&self, id: &str) -> Option<Instant> {
        lock(&self.in_flight).remove(id)
    }
}

/// Locks a mutex of plain data; a panicked holder cannot leave it inconsistent.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket with small buffers (thousands are held at once), says hello with `token`
/// and waits for the welcome, so a connection counts only once it is usable.
async fn connect_socket(ws_url: &str, token: &str) -> anyhow::Result<Socket> {
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(4096);
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(ws_url, Some(config), false).await?;
    let hello = json!({ "type": "hello", "version": 1, "token": token });
    ws.send(WsMessage::text(hello.to_string())).await?;
    match tokio::time::timeout(Duration::from_secs(30), ws.next()).await? {
        Some(Ok(WsMessage::Text(t))) if t.contains("\"welcome\"") => Ok(ws),
        other => anyhow::bail!("no welcome: {other:?}"),
    }
}

/// One read from a socket: a JSON frame, something else (binary, control, unparsable), or the end.
enum Incoming {
    Frame(Value),
    Other,
    Closed,
}

async fn read_frame(ws: &mut Socket) -> Incoming {
    match ws.next().await {
        Some(Ok(WsMessage::Text(t))) => {
            serde_json::from_str(&t).map_or(Incoming::Other, Incoming::Frame)
        }
        Some(Ok(_)) => Incoming::Other,
        _ => Incoming::Closed,
    }
}

/// The next JSON frame from the server, pinging every `ping` tick (the server closes a connection
/// silent for 120 s); None once the connection is closed.
async fn next_frame(ws: &mut Socket, ping: &mut tokio::time::Interval) -> Option<Value> {
    loop {
        tokio::select! {
            _ = ping.tick() => {
                if !send_frame(ws, &json!({ "type": "ping" })).await {
                    return None;
                }
            }
            frame = read_frame(ws) => match frame {
                Incoming::Frame(v) => return Some(v),
                Incoming::Other => {}
                Incoming::Closed => return None,
            },
        }
    }
}

/// Sends `frame`; false once the connection is gone.
async fn send_frame(ws: &mut Socket, frame: &Value) -> bool {
    ws.send(WsMessage::text(frame.to_string())).await.is_ok()
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
    let admin_key = match (args.mode, args.admin_key.as_deref()) {
        (Mode::Relay, None) => {
            anyhow::bail!("--mode relay needs --admin-key (make one with `kefu admin-key`)")
        }
        (_, key) => key.map(str::to_string),
    };
    let ws_url = format!("ws{}/v1/ws", base.trim_start_matches("http"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let shared = Arc::new(Shared::default());
    let concurrency = args.ramp_concurrency.clamp(1, 1024);

    // Ramp up: sessions, then connections, `ramp_concurrency` at a time.
    let ramp_started = Instant::now();
    let opened: Vec<Option<visitors::Visitor>> = futures_util::stream::iter(0..args.connections)
        .map(|_| {
            visitors::connect(
                &http,
                &base,
                &ws_url,
                &args.site,
                args.mode,
                Arc::clone(&shared),
            )
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut visitors: Vec<visitors::Visitor> = opened.into_iter().flatten().collect();
    let opened_count = visitors.len();
    if visitors.is_empty() {
        anyhow::bail!("no connection could be opened to {ws_url}");
    }

    // Relay: agents claim every conversation (round robin) and subscribe to it before anyone
    // writes.
    let mut relay = None;
    if let Some(key) = admin_key.as_deref().filter(|_| args.mode == Mode::Relay) {
        let count = visitors.len().div_ceil(agents::CONVERSATIONS_PER_AGENT);
        let team = agents::sign_in(&http, &base, &ws_url, key, count, &shared).await?;
        let claimed: Vec<bool> = futures_util::stream::iter(visitors.iter().enumerate())
            .map(|(i, v)| {
                let agent = &team[i % team.len()];
                agents::claim(&http, &base, agent, &v.conversation_id)
            })
            .buffered(concurrency)
            .collect()
            .await;
        let mut owners = Vec::new();
        let mut kept = Vec::new();
        for (i, (v, ok)) in visitors.into_iter().zip(claimed).enumerate() {
            if ok {
                owners.push((i % count, v.conversation_id.clone()));
                kept.push(v);
            }
        }
        let claim_errors = opened_count - kept.len();
        visitors = kept;
        if visitors.is_empty() {
            anyhow::bail!("no conversation could be claimed by the load-test agents");
        }
        let wait_until = Instant::now() + Duration::from_secs(120);
        while (shared.counters.subscribed.load(Ordering::Relaxed) as usize) < owners.len()
            && Instant::now() < wait_until
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        relay = Some((team, owners, claim_errors));
    }
    let ramp_s = ramp_started.elapsed().as_secs_f64();

    // Send at a fixed total rate, round robin over the connections.
    let texts = match args.mode {
        Mode::Bot => QUESTIONS,
        Mode::Relay => RELAY_MESSAGES,
    };
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut i = 0usize;
    while started.elapsed() < args.duration {
        tick.tick().await;
        let text = texts[i % texts.len()];
        if visitors[i % visitors.len()]
            .messages
            .try_send(text)
            .is_err()
        {
            shared.counters.busy_skips.fetch_add(1, Ordering::Relaxed);
        }
        i += 1;
    }
    let send_s = started.elapsed().as_secs_f64();
    // Let the last answers arrive: up to 3 s, until two checks 50 ms apart find nothing queued
    // and everything sent answered.
    let settle_until = Instant::now() + Duration::from_secs(3);
    let quiet = |vs: &[visitors::Visitor]| {
        vs.iter()
            .all(|v| v.messages.capacity() == v.messages.max_capacity())
            && shared.settled(args.mode)
    };
    let mut quiet_checks = 0;
    while Instant::now() < settle_until && quiet_checks < 2 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        quiet_checks = if quiet(&visitors) {
            quiet_checks + 1
        } else {
            0
        };
    }
    let held = visitors.iter().filter(|v| !v.messages.is_closed()).count();
    let server_rss = server_rss(&http, &base).await;
    drop(visitors);

    let c = &shared.counters;
    let sent = c.sent.load(Ordering::Relaxed);
    let answered = c.answered.load(Ordering::Relaxed);
    let relayed = c.relayed.load(Ordering::Relaxed);
    let per_s = |n: u64| ((n as f64 / send_s) * 10.0).round() / 10.0;
    let mut report = json!({
        "mode": args.mode,
        "url": base,
        "connections_target": args.connections,
        "connections_opened": opened_count,
        "connections_held": held,
        "ramp_up_s": (ramp_s * 100.0).round() / 100.0,
        "duration_s": (send_s * 100.0).round() / 100.0,
        "rate_target": args.rate,
        "errors": {
            "session": c.session_errors.load(Ordering::Relaxed),
            "connect": c.connect_errors.load(Ordering::Relaxed),
            "error_frames": c.error_frames.load(Ordering::Relaxed),
            "closed_early": c.closed_early.load(Ordering::Relaxed),
        },
        "skipped_busy": c.busy_skips.load(Ordering::Relaxed),
        "server_rss_bytes": server_rss,
        "loadtest_rss_bytes": crate::http::resident_memory_bytes(),
    });
    let answer_ms = percentiles(&lock(&shared.answer_ms));
    match relay {
        None => {
            report["questions_sent"] = json!(sent);
            report["bot_replies"] = json!(answered);
            report["questions_per_s"] = json!(per_s(sent));
            report["messages_per_s"] = json!(per_s(sent + answered));
            report["bot_reply_latency_ms"] = answer_ms;
            report["errors"]["unanswered"] = json!(sent.saturating_sub(answered));
            report["handed_off"] = json!(c.handed_off.load(Ordering::Relaxed));
        }
        Some((team, owners, claim_errors)) => {
            report["agents"] = json!(team.len());
            report["conversations_claimed"] = json!(owners.len());
            report["conversations_subscribed"] = json!(c.subscribed.load(Ordering::Relaxed));
            report["messages_sent"] = json!(sent);
            report["messages_acked"] = json!(answered);
            report["messages_relayed"] = json!(relayed);
            report["relayed_per_s"] = json!(per_s(relayed));
            report["ack_latency_ms"] = answer_ms;
            report["relay_latency_ms"] = percentiles(&lock(&shared.relay_ms));
            report["errors"]["claim"] = json!(claim_errors);
            report["errors"]["agent_error_frames"] =
                json!(c.agent_error_frames.load(Ordering::Relaxed));
            report["errors"]["agent_closed"] = json!(c.agent_closed.load(Ordering::Relaxed));
            report["errors"]["unrelayed"] = json!(sent.saturating_sub(relayed));
            // Leave nothing behind: resolve what was claimed, sign the agents out.
            let resolved: Vec<bool> = futures_util::stream::iter(owners.iter())
                .map(|(a, id)| agents::resolve(&http, &base, &team[*a], id))
                .buffer_unordered(concurrency)
                .collect()
                .await;
            report["errors"]["resolve"] = json!(resolved.iter().filter(|ok| !**ok).count());
            for agent in team {
                agents::sign_out(&http, &base, agent).await;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// p50/p90/p99/max of `samples` (milliseconds, two decimals); nulls when there are none.
fn percentiles(samples: &[f64]) -> Value {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let pct = |p: f64| -> Value {
        if v.is_empty() {
            return Value::Null;
        }
        let idx = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        json!((v[idx.min(v.len() - 1)] * 100.0).round() / 100.0)
    };
    json!({ "p50": pct(50.0), "p90": pct(90.0), "p99": pct(99.0), "max": pct(100.0) })
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
