//! Micro-batching of knowledge queries: concurrent visitor messages are embedded together (one
//! intra-op thread per batch, one batch per worker), which is how 2 cores serve many chats.

use std::sync::Arc;

use kefu_kb::{KbError, Knowledge, Retrieval};
use tokio::sync::{mpsc, oneshot, Mutex};

/// Most queries embedded in one batch.
pub const MAX_BATCH: usize = 32;
/// Hits retrieved per query.
pub const TOP_K: usize = 5;

type Reply = oneshot::Sender<Result<Retrieval, KbError>>;

struct Job {
    kb: String,
    text: String,
    reply: Reply,
}

/// Hands queries to a few worker tasks that batch whatever is waiting.
#[derive(Clone)]
pub struct KbBatcher {
    tx: mpsc::Sender<Job>,
}

impl KbBatcher {
    /// Starts `workers` batching workers over `knowledge`.
    pub fn start(knowledge: Arc<Knowledge>, workers: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>(4096);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..workers.max(1) {
            let rx = Arc::clone(&rx);
            let knowledge = Arc::clone(&knowledge);
            tokio::spawn(async move {
                loop {
                    let batch = {
                        let mut rx = rx.lock().await;
                        let Some(first) = rx.recv().await else {
                            return;
                        };
                        let mut batch = vec![first];
                        while batch.len() < MAX_BATCH {
                            match rx.try_recv() {
                                Ok(job) => batch.push(job),
                                Err(_) => break,
                            }
                        }
                        batch
                    };
                    run_batch(&knowledge, batch).await;
                }
            });
        }
        Self { tx }
    }

    /// Retrieves the best entries for `text` in knowledge base `kb`.
    pub async fn query(&self, kb: &str, text: &str) -> Result<Retrieval, KbError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            kb: kb.to_string(),
            text: text.to_string(),
            reply,
        };
        self.tx
            .send(job)
            .await
            .map_err(|_| KbError::Index("retrieval workers stopped".into()))?;
        rx.await
            .map_err(|_| KbError::Index("retrieval worker dropped the query".into()))?
    }
}

async fn run_batch(knowledge: &Knowledge, batch: Vec<Job>) {
    // Group by knowledge base (almost always one).
    let mut groups: Vec<(String, Vec<Job>)> = Vec::new();
    for job in batch {
        match groups.iter_mut().find(|(kb, _)| *kb == job.kb) {
            Some((_, jobs)) => jobs.push(job),
            None => groups.push((job.kb.clone(), vec![job])),
        }
    }
    for (kb, jobs) in groups {
        let texts: Vec<String> = jobs.iter().map(|j| j.text.clone()).collect();
        match knowledge.query_many(&kb, &texts, TOP_K, &[]).await {
            Ok(results) => {
                for (job, r) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(Ok(r));
                }
            }
            Err(_) if jobs.len() > 1 => {
                // One bad text must not fail its neighbours: retry one by one.
                for job in jobs {
                    let r = knowledge.query(&kb, &job.text, TOP_K, &[]).await;
                    let _ = job.reply.send(r);
                }
            }
            Err(e) => {
                if let Some(job) = jobs.into_iter().next() {
                    let _ = job.reply.send(Err(e));
                }
            }
        }
    }
}
