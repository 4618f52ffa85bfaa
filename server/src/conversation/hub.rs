//! The live-session registry: which open connections follow which conversation, and which are
//! agent consoles. Publishing never blocks: a connection whose queue is full is told to close, and
//! its client resumes from its last seq.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, Notify};

/// Frames queued per connection before it counts as too slow.
pub const CONNECTION_QUEUE: usize = 512;

/// Something to send on one connection.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A committed message; the connection skips seqs it already sent (replay overlap).
    Message {
        conversation_id: Arc<str>,
        seq: u64,
        visitor_json: Arc<str>,
        agent_json: Arc<str>,
    },
    /// Any other frame, already serialised.
    Frame(Arc<str>),
}

/// Whether the connection is a visitor's or an agent's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Visitor,
    Agent,
}

/// One connection's handle in the hub.
#[derive(Clone)]
pub struct ConnectionHandle {
    pub id: u64,
    pub role: Role,
    tx: mpsc::Sender<Outbound>,
    /// Signalled when the connection fell behind and must close.
    pub kicked: Arc<Notify>,
}

impl ConnectionHandle {
    fn deliver(&self, item: Outbound) -> bool {
        match self.tx.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.kicked.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

#[derive(Default)]
struct Registry {
    /// conversation id -> connections following it.
    followers: HashMap<String, Vec<ConnectionHandle>>,
    /// Agent console connections (queue and presence updates).
    consoles: Vec<ConnectionHandle>,
}

/// The registry of live connections.
#[derive(Default)]
pub struct Hub {
    registry: Mutex<Registry>,
    next_id: AtomicU64,
}

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the maps inconsistent (every update is a
        // single push or retain), so a poisoned lock is still usable.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new connection: its handle and the queue its writer drains.
    pub fn connect(&self, role: Role) -> (ConnectionHandle, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(CONNECTION_QUEUE);
        let handle = ConnectionHandle {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            role,
            tx,
            kicked: Arc::new(Notify::new()),
        };
        if role == Role::Agent {
            self.lock().consoles.push(handle.clone());
        }
        (handle, rx)
    }

    /// Forgets a closed connection everywhere.
    pub fn disconnect(&self, conn_id: u64) {
        let mut r = self.lock();
        r.consoles.retain(|h| h.id != conn_id);
        r.followers.retain(|_, v| {
            v.retain(|h| h.id != conn_id);
            !v.is_empty()
        });
    }

    /// The connection follows `conversation_id` from now on.
    pub fn follow(&self, handle: &ConnectionHandle, conversation_id: &str) {
        let mut r = self.lock();
        let v = r.followers.entry(conversation_id.to_string()).or_default();
        if !v.iter().any(|h| h.id == handle.id) {
            v.push(handle.clone());
        }
    }

    /// Sends a committed message to every follower of its conversation.
    pub fn publish_message(&self, conversation_id: &str, seq: u64, visitor: &str, agent: &str) {
        let item = Outbound::Message {
            conversation_id: Arc::from(conversation_id),
            seq,
            visitor_json: Arc::from(visitor),
            agent_json: Arc::from(agent),
        };
        self.each_follower(conversation_id, |h| h.deliver(item.clone()));
    }

    /// Sends a frame to every follower of a conversation, optionally skipping one connection.
    pub fn publish(&self, conversation_id: &str, json: &str, except: Option<u64>) {
        let frame: Arc<str> = Arc::from(json);
        self.each_follower(conversation_id, |h| {
            Some(h.id) == except || h.deliver(Outbound::Frame(Arc::clone(&frame)))
        });
    }

    /// Sends a frame to every agent console.
    pub fn publish_consoles(&self, json: &str) {
        let frame: Arc<str> = Arc::from(json);
        let consoles = self.lock().consoles.clone();
        for h in consoles {
            h.deliver(Outbound::Frame(Arc::clone(&frame)));
        }
    }

    fn each_follower(&self, conversation_id: &str, mut f: impl FnMut(&ConnectionHandle) -> bool) {
        let handles = self
            .lock()
            .followers
            .get(conversation_id)
            .cloned()
            .unwrap_or_default();
        for h in &handles {
            f(h);
        }
    }

    /// Whether any agent console is connected (cheap: checked on every message).
    pub fn has_consoles(&self) -> bool {
        !self.lock().consoles.is_empty()
    }

    /// Open connections (visitors, agents).
    pub fn counts(&self) -> (usize, usize) {
        let r = self.lock();
        let agents = r.consoles.len();
        let mut ids: Vec<u64> = r
            .followers
            .values()
            .flatten()
            .filter(|h| h.role == Role::Visitor)
            .map(|h| h.id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        (ids.len(), agents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_messages_and_a_full_queue_kicks() {
        let hub = Hub::new();
        let (visitor, mut vrx) = hub.connect(Role::Visitor);
        let (agent, mut arx) = hub.connect(Role::Agent);
        hub.follow(&visitor, "c1");
        hub.follow(&agent, "c1");
        hub.follow(&visitor, "c1");
        hub.publish_message("c1", 1, "v", "a");
        match vrx.recv().await {
            Some(Outbound::Message { visitor_json, .. }) => assert_eq!(&*visitor_json, "v"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(arx.recv().await, Some(Outbound::Message { .. })));
        assert!(vrx.try_recv().is_err(), "followed twice, delivered once");
        hub.publish_consoles("q");
        assert!(matches!(arx.recv().await, Some(Outbound::Frame(f)) if &*f == "q"));
        assert!(vrx.try_recv().is_err(), "visitors get no console frames");

        for i in 0..=CONNECTION_QUEUE as u64 {
            hub.publish("c1", "x", Some(agent.id));
            let _ = i;
        }
        tokio::time::timeout(std::time::Duration::from_secs(1), visitor.kicked.notified())
            .await
            .expect("the slow connection is kicked");
        hub.disconnect(visitor.id);
        assert_eq!(hub.counts(), (0, 1));
    }
}
