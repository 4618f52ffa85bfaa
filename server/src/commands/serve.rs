//! `kefu serve`: bind first (so `/healthz` answers at once), load the model and knowledge base,
//! import the demo on first start, then report ready.

use std::sync::Arc;

use kefu_kb::knowledge::is_empty;
use kefu_kb::DEFAULT_KB;
use tokio::net::TcpListener;

use crate::cli::ServeArgs;
use crate::config::Config;
use crate::state::AppState;

/// Runs the server until Ctrl-C or SIGTERM.
pub async fn run(config: &Config, args: ServeArgs) -> anyhow::Result<()> {
    // Fail fast (before binding) when the model is not installed.
    kefu_kb::embed::ensure_installed(&config.model, &config.model_dir)?;
    let listener = TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let state = AppState::new();
    let server = tokio::spawn(crate::http::run(listener, state.clone(), shutdown_signal()));
    println!("kefu listening on http://{addr}");
    println!("  health:   http://{addr}/healthz  (ready: /readyz)");
    println!("  kb query: POST http://{addr}/v1/kb/query  {{\"query\": \"多久发货？\"}}");

    let knowledge = super::open_knowledge(config).await?;
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
    state.set_ready(Arc::new(knowledge));
    tracing::info!(%addr, model = %config.model, "ready");
    println!("kefu ready (model {})", config.model);
    server.await??;
    Ok(())
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
