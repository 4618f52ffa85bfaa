//! Following writes made by other processes on a shared (PostgreSQL) store: a `LISTEN` on the
//! store's change channel marks the in-process view stale and reloads it at once, so a change
//! made on any node reaches this node's answers without waiting for the next poll.

use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::postgres::PgListener;

use super::Knowledge;
use crate::store::CHANGE_CHANNEL;

/// Longest wait between two attempts to listen again after the database was lost.
const MAX_RETRY: Duration = Duration::from_secs(30);

impl Knowledge {
    /// Starts following other nodes' writes when the store is PostgreSQL (`None` on SQLite, where
    /// every query reads the generation). Queries still poll the generation once a second, so a
    /// notification lost while the listener reconnects delays a change by a second at most.
    pub fn follow_changes(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let url = self.store.postgres_url()?.to_string();
        let knowledge = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            let mut retry = Duration::from_millis(500);
            loop {
                match listen(&url, &knowledge).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot follow knowledge changes; retrying");
                        tokio::time::sleep(retry).await;
                        retry = (retry * 2).min(MAX_RETRY);
                    }
                }
            }
        }))
    }

    /// Marks the view stale and reloads it if the store's generation moved.
    async fn reload_if_changed(&self) {
        self.index.mark_stale();
        if let Err(e) = self.index.refresh(&self.store).await {
            tracing::warn!(error = %e, "cannot reload the knowledge bases after a change");
        }
    }
}

/// Listens until the knowledge service is dropped (`Ok`) or the database cannot be reached.
async fn listen(url: &str, knowledge: &Weak<Knowledge>) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANGE_CHANNEL).await?;
    // Whatever changed while nobody listened.
    match knowledge.upgrade() {
        Some(k) => k.reload_if_changed().await,
        None => return Ok(()),
    }
    loop {
        // `recv` reconnects by itself after a lost connection (and listens again).
        listener.recv().await?;
        match knowledge.upgrade() {
            Some(k) => k.reload_if_changed().await,
            None => return Ok(()),
        }
    }
}
