//! Micro-batching of query embeddings: concurrent visitor messages are embedded together (one
//! intra-op thread per batch, one batch per worker), which is how 2 cores serve many chats. The
//! vector then serves both the intent model and the knowledge search.

use std::sync::Arc;

use kefu_kb::{KbError, Knowledge, Retrieval};
use tokio::sync::{mpsc, oneshot, Mutex};

/// Most queries embedded in one batch.
pub const MAX_BATCH: usize = 32;
/// Hits retrieved per query.
pub const TOP_K: usize = 5;

type Reply = oneshot::Sender<Result<Vec<f32>, KbError>>;

struct Job {
    text: String,
    reply: Reply,
}

/// Hands texts to a few worker tasks that embed whatever is waiting as one batch.
#[derive(Clone)]
pub struct KbBatcher {
    tx: mpsc::Sender<Job>,
    knowledge: Arc<Knowledge>,
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
        Self { tx, knowledge }
    }

    /// The query vector of `text`, embedded together with whatever else is waiting.
    pub async fn embed(&self, text: &str) -> Result<Vec<f32>, KbError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            text: text.to_string(),
            reply,
        };
        self.tx
            .send(job)
            .await
            .map_err(|_| KbError::Index("embedding workers stopped".into()))?;
        rx.await
            .map_err(|_| KbError::Index("embedding worker dropped the query".into()))?
    }

    /// Searches knowledge base `kb` with an embedded query.
    pub async fn search(
        &self,
        kb: &str,
        text: &str,
        vector: &[f32],
        tags: &[String],
    ) -> Result<Retrieval, KbError> {
        self.knowledge.search(kb, text, vector, TOP_K, tags).await
    }
}

async fn run_batch(knowledge: &Knowledge, batch: Vec<Job>) {
    let texts: Vec<String> = batch.iter().map(|j| j.text.clone()).collect();
    match knowledge.embed_queries(&texts).await {
        Ok(vectors) => {
            for (job, v) in batch.into_iter().zip(vectors) {
                let _ = job.reply.send(Ok(v));
            }
        }
        Err(_) if batch.len() > 1 => {
            // One bad text must not fail its neighbours: retry one by one.
            for job in batch {
                let r = knowledge
                    .embed_queries(std::slice::from_ref(&job.text))
                    .await
                    .and_then(|mut v| v.pop().ok_or_else(|| KbError::Index("no vector".into())));
                let _ = job.reply.send(r);
            }
        }
        Err(e) => {
            if let Some(job) = batch.into_iter().next() {
                let _ = job.reply.send(Err(e));
            }
        }
    }
}
