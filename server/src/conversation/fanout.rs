//! Fan-out: every committed message, state change, console update and presence change goes to the
//! live connections on this node (the hub) and, in a cluster, to the other nodes.

use std::sync::Arc;

use kefu_protocol::ServerFrame;

use super::Conversations;
use crate::cluster::{Cluster, ClusterEvent};
use crate::handoff::Committed;
use crate::store::StoredMessage;

impl Conversations {
    /// Joins a cluster: live events go to the other nodes, and theirs are delivered here.
    pub fn attach_cluster(
        self: &Arc<Self>,
        cluster: Cluster,
        mut events: tokio::sync::mpsc::Receiver<(String, ClusterEvent)>,
    ) {
        if self.cluster.set(cluster).is_err() {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            while let Some((node, event)) = events.recv().await {
                match event {
                    ClusterEvent::Message {
                        conversation_id,
                        seq,
                        visitor,
                        agent,
                    } => this
                        .hub
                        .publish_message(&conversation_id, seq, &visitor, &agent),
                    ClusterEvent::Frame {
                        conversation_id,
                        json,
                    } => this.hub.publish(&conversation_id, &json, None),
                    ClusterEvent::Console { json } => this.hub.publish_consoles(&json),
                    ClusterEvent::Presence { agents } => {
                        if this.handoff.presence().set_remote(&node, agents) {
                            this.announce_presence().await;
                        }
                    }
                }
            }
        });
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(10));
            loop {
                every.tick().await;
                this.report_presence();
            }
        });
    }

    pub(super) fn to_cluster(&self, event: ClusterEvent) {
        if let Some(c) = self.cluster.get() {
            c.publish(event);
        }
    }

    /// Tells the other nodes which agents have a console open here.
    pub(super) fn report_presence(&self) {
        self.to_cluster(ClusterEvent::Presence {
            agents: self.handoff.presence().local(),
        });
    }

    /// Sends a frame to a conversation's followers on every node (typing, read), except one
    /// local connection (its sender).
    pub fn relay(&self, conversation_id: &str, json: &str, except: Option<u64>) {
        self.hub.publish(conversation_id, json, except);
        self.to_cluster(ClusterEvent::Frame {
            conversation_id: conversation_id.to_string(),
            json: json.to_string(),
        });
    }

    pub(super) fn broadcast_message(&self, m: &StoredMessage) {
        let visitor = ServerFrame::Message {
            message: m.to_wire(false),
        };
        let agent = ServerFrame::Message {
            message: m.to_wire(true),
        };
        if let (Ok(v), Ok(a)) = (
            serde_json::to_string(&visitor),
            serde_json::to_string(&agent),
        ) {
            self.hub.publish_message(&m.conversation_id, m.seq, &v, &a);
            self.to_cluster(ClusterEvent::Message {
                conversation_id: m.conversation_id.clone(),
                seq: m.seq,
                visitor: v,
                agent: a,
            });
        }
    }

    /// Publishes a committed ownership change: its note, the new state, the console row and
    /// the agents' loads.
    pub(super) async fn publish_transition(&self, done: &Committed) {
        metrics::counter!("kefu_messages_total", "author" => "system").increment(1);
        self.broadcast_message(&done.note);
        let c = &done.conversation;
        let agent = match self.handoff.agent_name(c.agent_id.as_deref()).await {
            Ok(name) => name,
            Err(e) => {
                tracing::warn!(error = %e, "agent lookup for a state frame failed");
                None
            }
        };
        let frame = ServerFrame::State {
            conversation_id: c.id.clone(),
            state: c.state,
            agent,
            offline: c.offline,
        };
        if let Ok(json) = serde_json::to_string(&frame) {
            self.relay(&c.id, &json, None);
        }
        self.announce(&c.id).await;
        self.announce_presence().await;
    }

    /// Tells agent consoles that a conversation changed.
    pub(super) async fn announce(&self, conversation_id: &str) {
        if !self.hub.has_consoles() && self.cluster.get().is_none() {
            return;
        }
        match self.summary(conversation_id).await {
            Ok(Some(conversation)) => {
                if let Ok(json) = serde_json::to_string(&ServerFrame::Conversation { conversation })
                {
                    self.hub.publish_consoles(&json);
                    self.to_cluster(ClusterEvent::Console { json });
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "console update failed"),
        }
    }

    /// Sends the online agents with their loads to every console.
    pub(super) async fn announce_presence(&self) {
        match self.handoff.agents_with_load().await {
            Ok(all) => {
                let agents = all
                    .into_iter()
                    .filter(|a| a.online)
                    .map(|a| a.presence)
                    .collect();
                if let Ok(json) = serde_json::to_string(&ServerFrame::Presence { agents }) {
                    self.hub.publish_consoles(&json);
                }
            }
            Err(e) => tracing::warn!(error = %e, "presence update failed"),
        }
    }
}
