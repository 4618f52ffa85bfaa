//! `kefu serve`: bind first (so `/healthz` answers at once), open the conversation store, load the
//! model and knowledge base, import the demo on first start, then report ready.

use std::sync::Arc;

use kefu_kb::knowledge::is_empty;
use kefu_kb::DEFAULT_KB;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::accounts::{credentials::new_password, AccountError, Accounts, NewAgent, NewSite};
use crate::analytics::Analytics;
use crate::cli::ServeArgs;
use crate::config::Config;
use crate::conversation::Conversations;
use crate::handoff::Handoff;
use crate::http::ServeOptions;
use crate::state::{AppState, Limits, Services};
use crate::store::{Role, StoreError};
use crate::training::Training;
use crate::triage::{KbBatcher, LiveRules, Triage};

/// The demo site created on first start (same-origin pages only).
pub const DEMO_SITE: &str = "demo";

/// Runs the server until Ctrl-C or SIGTERM.
pub async fn run(config: &Config, args: ServeArgs) -> anyhow::Result<()> {
    // Fail fast (before binding) on a missing model or a bad rules file.
    kefu_kb::embed::ensure_installed(kefu_kb::embed::base_model(&config.model), &config.model_dir)?;
    let rules = LiveRules::open(args.rules.as_deref(), &config.data_dir)?;
    let limits = Limits {
        max_connections_per_ip: args.max_connections_per_ip,
        frames_per_second: args.frames_per_second,
        sessions_per_minute: args.sessions_per_minute,
        max_upload_bytes: args.max_upload_mb as usize * 1024 * 1024,
    };
    let listener = TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let state =
        AppState::new(limits, install_metrics()).with_trusted_proxies(args.trusted_proxies.clone());
    let options = ServeOptions {
        max_connections: args.max_connections.max(1),
        header_read_timeout: args.header_read_timeout,
        drain_timeout: args.drain_timeout,
        ..ServeOptions::default()
    }
    .within_fd_limit();
    let server = tokio::spawn(crate::http::run(
        listener,
        state.clone(),
        options,
        shutdown_signal(),
    ));
    println!("kefu listening on http://{addr}");

    let store = super::open_store(config).await?;
    let accounts = Accounts::new(store.clone(), own_origins(&args.public_urls, addr));
    if !args.no_demo {
        bootstrap_demo(&accounts).await?;
    }
    let knowledge = Arc::new(super::open_knowledge(config).await?);
    if !args.no_demo && is_empty(knowledge.store(), DEFAULT_KB).await? {
        let r = knowledge
            .import(DEFAULT_KB, kefu_kb::demo::sources(), &|_, _| {})
            .await?;
        tracing::info!(
            entries = r.entries,
            vectors = r.vectors_embedded,
            "loaded the demo knowledge base"
        );
    }
    // On PostgreSQL, other nodes' knowledge changes arrive as notifications.
    let _follow = knowledge.follow_changes();
    let workers = args.inference_workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let retriever = Arc::new(KbBatcher::start(Arc::clone(&knowledge), workers));
    let intents = Arc::new(super::intent_slot(config, Arc::clone(knowledge.embedder())));
    let registry = kefu_kb::intent::Registry::new(&config.data_dir);
    let mirror = kefu_kb::intent::Mirror::new(registry.clone(), knowledge.store());
    if let Some(m) = &mirror {
        m.pull().await?;
    }
    intents.follow(
        registry,
        mirror,
        knowledge.embedder().model_name().to_string(),
    );
    let llm = crate::llm::LiveLlm::open(&args.llm, &config.data_dir)?;
    // In a cluster, the rules file and the console's LLM settings saved on any node reach all.
    let settings = config.shared_database_url().map(|_| {
        crate::shared_settings::SharedSettings::new(
            store.clone(),
            Arc::clone(&rules),
            Arc::clone(&llm),
        )
    });
    if let Some(shared) = &settings {
        shared.pull().await?;
        Arc::clone(shared).follow();
    }
    let triage = Triage {
        rules,
        intents,
        kb: DEFAULT_KB.to_string(),
        fallbacks_before_handoff: args.fallbacks_before_handoff,
        llm,
    };
    let conversations = Conversations::new(
        store.clone(),
        triage,
        retriever,
        Handoff::new(store.clone(), args.auto_assign),
    );
    if let Some(url) = &args.redis_url {
        if config.database_url.is_none() {
            anyhow::bail!("--redis-url joins several servers; they must share one --database-url (PostgreSQL)");
        }
        let node = crate::store::new_id("n_");
        let (cluster, events) =
            crate::cluster::Cluster::start(url, &args.cluster_channel, node.clone()).await?;
        conversations.attach_cluster(cluster, events);
        tracing::info!(%node, channel = %args.cluster_channel, "joined the cluster");
    }
    tokio::spawn(forget_expired_tokens(accounts.clone()));
    // Bot turns a crash cut short (here or on another node) are finished from now on.
    conversations.start_turn_sweeper();
    let channels = crate::channels::Channels::new(
        store.clone(),
        accounts.clone(),
        Arc::clone(&conversations),
        &args.wechat_api_base,
    );
    conversations.attach_channel_sender(channels.clone());
    conversations.start_webhook_worker();
    let analytics = Analytics::new(store.clone(), args.resolution_window)
        .with_embedder(Arc::clone(knowledge.embedder()));
    let forget = analytics.clone();
    let files = config.attachment_files()?;
    tracing::info!(files = %files.describe(), "attachments");
    let attachments = crate::attachments::Attachments::new(store.clone(), files.clone());
    attachments.start_sweeper();
    let privacy = crate::privacy::Privacy::new(store.clone(), knowledge.store().clone(), files)
        .on_erase(Arc::new(move || forget.forget_questions()));
    privacy.start_sweeper();
    state.set_ready(Arc::new(Services {
        privacy,
        attachments,
        training: Training::new(Arc::clone(&knowledge), &config.model_dir, &config.data_dir),
        knowledge,
        accounts,
        conversations,
        analytics,
        webhooks: crate::webhooks::Webhooks::new(store.clone()),
        channels,
        settings,
    }));
    tracing::info!(%addr, model = %config.model, "ready");
    println!("kefu ready (model {})", config.model);
    println!("  demo shop:     http://{addr}/  (the web widget, site `demo`)");
    println!("  chat demo:     http://{addr}/demo");
    println!("  agent console: http://{addr}/console");
    println!("  admin console: http://{addr}/admin  (knowledge, training, analytics, settings)");
    println!(
        "  API:           http://{addr}/v1/  (WebSocket: ws://{addr}/v1/ws, metrics: /metrics)"
    );
    server.await??;
    store.close().await;
    println!("kefu stopped");
    Ok(())
}

/// Origins of this server's own pages: every `--public-url`, and the listen address (as
/// `localhost` and `127.0.0.1` when it listens on every interface).
fn own_origins(public_urls: &[String], addr: std::net::SocketAddr) -> Vec<String> {
    let mut out: Vec<String> = public_urls
        .iter()
        .map(|u| u.trim_end_matches('/').to_string())
        .collect();
    let port = addr.port();
    if addr.ip().is_unspecified() || addr.ip().is_loopback() {
        out.push(format!("http://127.0.0.1:{port}"));
        out.push(format!("http://localhost:{port}"));
        out.push(format!("http://[::1]:{port}"));
    } else {
        out.push(format!("http://{addr}"));
    }
    out
}

/// On first start: the `demo` site, and an agent account whose password is printed once.
async fn bootstrap_demo(accounts: &Accounts) -> anyhow::Result<()> {
    if accounts.site(DEMO_SITE).await?.is_none() {
        let site = NewSite {
            key: DEMO_SITE.into(),
            name: Some("Demo".into()),
            ..NewSite::default()
        };
        // Another server sharing the database may have created it a moment ago.
        if let Err(e) = accounts.create_site(site).await {
            return already_there(e);
        }
        println!(
            "created site `{DEMO_SITE}` (this server's own pages only; `kefu site add` for yours)"
        );
    }
    if accounts.agents().await?.is_empty() {
        // First run: an agent for the agent console and an operator for the admin console.
        for (name, display, role) in [
            ("agent", "Agent", Role::Agent),
            ("admin", "Admin", Role::Admin),
        ] {
            let password = new_password()?;
            let account = NewAgent {
                name: name.into(),
                display_name: Some(display.into()),
                password: password.clone(),
                capacity: 5,
                role,
            };
            if let Err(e) = accounts.create_agent(account).await {
                return already_there(e);
            }
            println!(
                "created {} `{name}` with password {password}  (change it: kefu agent set-password {name})",
                role.as_str()
            );
        }
    }
    Ok(())
}

fn already_there(e: AccountError) -> anyhow::Result<()> {
    match e {
        AccountError::Store(StoreError::AlreadyExists(_)) => Ok(()),
        other => Err(other.into()),
    }
}

/// Deletes expired tokens once an hour.
async fn forget_expired_tokens(accounts: Accounts) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every.tick().await;
        match accounts.forget_expired_tokens().await {
            Ok(n) if n > 0 => tracing::info!(tokens = n, "forgot expired tokens"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not delete expired tokens"),
        }
    }
}

/// The Prometheus recorder (once per process; later calls reuse the first).
fn install_metrics() -> Option<PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<PrometheusHandle>> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("kefu_bot_reply_seconds".into()),
                    &[
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    ],
                )
                .ok()?;
            builder.install_recorder().ok()
        })
        .clone()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
