//! Agent presence: who is online (has a console connected here, or on another node as last
//! reported), and the round-robin choice of an online agent with free capacity.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A node's presence report counts this long (nodes report every 10 s).
pub const REMOTE_PRESENCE_TTL: Duration = Duration::from_secs(30);

/// Online agents and the round-robin cursor.
#[derive(Default)]
pub struct Presence {
    inner: Mutex<PresenceInner>,
}

#[derive(Default)]
struct PresenceInner {
    /// agent id -> open console connections.
    online: BTreeMap<String, u32>,
    /// The agent id assigned last.
    last_assigned: Option<String>,
    /// Other nodes' online agents, with when they reported.
    remote: HashMap<String, (Vec<String>, Instant)>,
}

impl PresenceInner {
    fn online_set(&self) -> BTreeSet<String> {
        let mut all: BTreeSet<String> = self.online.keys().cloned().collect();
        for (agents, at) in self.remote.values() {
            if at.elapsed() < REMOTE_PRESENCE_TTL {
                all.extend(agents.iter().cloned());
            }
        }
        all
    }
}

/// An agent's load, for assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentLoad {
    pub agent_id: String,
    pub active: u32,
    pub capacity: u32,
}

impl Presence {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PresenceInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A console connected; true when the agent was offline before.
    pub fn connected(&self, agent_id: &str) -> bool {
        let mut p = self.lock();
        let n = p.online.entry(agent_id.to_string()).or_insert(0);
        *n += 1;
        *n == 1
    }

    /// A console closed; true when the agent is now offline.
    pub fn disconnected(&self, agent_id: &str) -> bool {
        let mut p = self.lock();
        match p.online.get_mut(agent_id) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                p.online.remove(agent_id);
                true
            }
            None => false,
        }
    }

    pub fn is_online(&self, agent_id: &str) -> bool {
        self.lock().online_set().contains(agent_id)
    }

    /// Online agent ids (here and on other nodes), sorted.
    pub fn online(&self) -> Vec<String> {
        self.lock().online_set().into_iter().collect()
    }

    /// Agent ids with a console open on this node.
    pub fn local(&self) -> Vec<String> {
        self.lock().online.keys().cloned().collect()
    }

    /// Another node reported its online agents; true when that changed who is online.
    pub fn set_remote(&self, node: &str, agents: Vec<String>) -> bool {
        let mut p = self.lock();
        let before = p.online_set();
        p.remote.insert(node.to_string(), (agents, Instant::now()));
        p.online_set() != before
    }

    /// The next online agent after the last one assigned (round robin) whose load is under
    /// capacity; records it as assigned.
    pub fn pick(&self, loads: &[AgentLoad]) -> Option<String> {
        let mut p = self.lock();
        let online = p.online_set();
        let candidates: Vec<&AgentLoad> = loads
            .iter()
            .filter(|l| online.contains(&l.agent_id) && l.active < l.capacity)
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let start = match &p.last_assigned {
            Some(last) => candidates
                .iter()
                .position(|l| l.agent_id > *last)
                .unwrap_or(0),
            None => 0,
        };
        let chosen = candidates[start].agent_id.clone();
        p.last_assigned = Some(chosen.clone());
        Some(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(id: &str, active: u32, capacity: u32) -> AgentLoad {
        AgentLoad {
            agent_id: id.into(),
            active,
            capacity,
        }
    }

    #[test]
    fn round_robin_skips_offline_and_full_agents() {
        let p = Presence::new();
        assert!(p.connected("a"));
        assert!(!p.connected("a"), "second console of the same agent");
        p.connected("b");
        p.connected("c");
        let loads = [
            load("a", 0, 2),
            load("b", 2, 2),
            load("c", 0, 2),
            load("d", 0, 5),
        ];
        assert_eq!(p.pick(&loads).as_deref(), Some("a"));
        assert_eq!(p.pick(&loads).as_deref(), Some("c"), "b is full, d offline");
        assert_eq!(p.pick(&loads).as_deref(), Some("a"), "wraps around");
        assert!(!p.disconnected("a"));
        assert!(p.disconnected("a"));
        assert_eq!(p.pick(&loads).as_deref(), Some("c"));
        assert_eq!(p.pick(&[load("b", 2, 2)]), None);
        assert_eq!(p.online(), vec!["b".to_string(), "c".to_string()]);
        assert!(p.set_remote("n_2", vec!["d".into()]));
        assert!(!p.set_remote("n_2", vec!["d".into()]), "unchanged");
        assert!(p.is_online("d"));
        assert_eq!(p.local(), vec!["b".to_string(), "c".to_string()]);
        assert_eq!(p.pick(&[load("d", 0, 1)]).as_deref(), Some("d"));
    }
}
