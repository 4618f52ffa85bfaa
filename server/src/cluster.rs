//! Scale-out: several `kefu` nodes behind a load balancer share one PostgreSQL database (the
//! source of truth for seqs, ownership and dedupe); Redis pub/sub carries each node's live events
//! (committed messages, state/typing/read frames, console updates, agent presence) to the others,
//! which deliver them to their own connections. Losing Redis loses only live delivery: clients
//! catch up from the database when they resume.

use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Events queued for publishing before new ones are dropped (Redis down or slow).
const PUBLISH_QUEUE: usize = 10_000;

/// One live event, as it travels between nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClusterEvent {
    /// A committed message: the visitor's and the agent's (with route trace) serialised frames.
    Message {
        conversation_id: String,
        seq: u64,
        visitor: String,
        agent: String,
    },
    /// Any other frame for a conversation's followers (state, typing, read).
    Frame {
        conversation_id: String,
        json: String,
    },
    /// A frame for every agent console.
    Console { json: String },
    /// The agent ids with a console open on the sending node (sent on change and every 10 s).
    Presence { agents: Vec<String> },
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    node: String,
    event: ClusterEvent,
}

/// Why the cluster link could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// This node's link to the others.
pub struct Cluster {
    node_id: String,
    publish: mpsc::Sender<String>,
}

impl Cluster {
    /// Connects to Redis at `url` and starts publishing and listening on `channel`. Events from
    /// other nodes arrive on the returned receiver with the sending node's id.
    pub async fn start(
        url: &str,
        channel: &str,
        node_id: String,
    ) -> Result<(Self, mpsc::Receiver<(String, ClusterEvent)>), ClusterError> {
        let client = redis::Client::open(url)?;
        // Fail fast on a wrong URL or an unreachable server.
        let publisher = client.get_multiplexed_async_connection().await?;
        let (publish, queue) = mpsc::channel(PUBLISH_QUEUE);
        tokio::spawn(run_publisher(
            client.clone(),
            publisher,
            channel.to_string(),
            queue,
        ));
        let (deliver, events) = mpsc::channel(PUBLISH_QUEUE);
        tokio::spawn(run_subscriber(
            client,
            channel.to_string(),
            node_id.clone(),
            deliver,
        ));
        Ok((Self { node_id, publish }, events))
    }

    /// Queues an event for the other nodes; never blocks (drops it, counted, when the queue is full).
    pub fn publish(&self, event: ClusterEvent) {
        let envelope = Envelope {
            node: self.node_id.clone(),
            event,
        };
        let Ok(json) = serde_json::to_string(&envelope) else {
            return;
        };
        if self.publish.try_send(json).is_err() {
            metrics::counter!("kefu_cluster_events_dropped_total").increment(1);
        }
    }
}

async fn run_publisher(
    client: redis::Client,
    mut conn: redis::aio::MultiplexedConnection,
    channel: String,
    mut queue: mpsc::Receiver<String>,
) {
    while let Some(json) = queue.recv().await {
        loop {
            let sent: redis::RedisResult<()> = redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(&json)
                .query_async(&mut conn)
                .await;
            match sent {
                Ok(()) => {
                    metrics::counter!("kefu_cluster_events_published_total").increment(1);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cluster publish failed; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    match client.get_multiplexed_async_connection().await {
                        Ok(c) => conn = c,
                        Err(_) => {
                            metrics::counter!("kefu_cluster_events_dropped_total").increment(1);
                            break;
                        }
                    }
                }
            }
        }
    }
}

async fn run_subscriber(
    client: redis::Client,
    channel: String,
    node_id: String,
    deliver: mpsc::Sender<(String, ClusterEvent)>,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if let Err(e) = pubsub.subscribe(&channel).await {
                    tracing::warn!(error = %e, "cluster subscribe failed");
                } else {
                    backoff = Duration::from_millis(200);
                    let mut stream = pubsub.on_message();
                    while let Some(msg) = stream.next().await {
                        let Ok(payload) = msg.get_payload::<String>() else {
                            continue;
                        };
                        let Ok(envelope) = serde_json::from_str::<Envelope>(&payload) else {
                            tracing::warn!("ignoring a malformed cluster event");
                            continue;
                        };
                        if envelope.node == node_id {
                            continue;
                        }
                        if deliver.send((envelope.node, envelope.event)).await.is_err() {
                            return;
                        }
                    }
                    tracing::warn!("cluster subscription ended; reconnecting");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cluster subscriber cannot reach Redis"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_stable_wire_forms() {
        let e = Envelope {
            node: "n_1".into(),
            event: ClusterEvent::Frame {
                conversation_id: "c".into(),
                json: "{}".into(),
            },
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap_or_default(),
            r#"{"node":"n_1","event":{"kind":"frame","conversation_id":"c","json":"{}"}}"#
        );
        let p: Envelope =
            serde_json::from_str(r#"{"node":"n_2","event":{"kind":"presence","agents":["a_1"]}}"#)
                .expect("parse");
        assert_eq!(
            p.event,
            ClusterEvent::Presence {
                agents: vec!["a_1".into()]
            }
        );
    }
}
