//! The load test's agents (`--mode relay`): accounts created through the admin API (named after
//! the admin key, their passwords derived from it), signed in, one console socket each; they claim
//! the visitors' conversations over REST, subscribe to them, and time each visitor message from
//! its send to its arrival on the agent's socket. Afterwards they resolve what they claimed and
//! sign out.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::{next_frame, send_frame, Shared};

/// Conversations one load-test agent takes: the largest capacity an account may have.
pub(super) const CONVERSATIONS_PER_AGENT: usize = 100;

/// Subscribe frames an agent socket sends per second, under the server's default frame limit.
const SUBSCRIBES_PER_SECOND: f64 = 15.0;

/// A signed-in agent with its console socket.
pub(super) struct Agent {
    pub name: String,
    token: String,
    subscribe: mpsc::UnboundedSender<String>,
}

/// The password of load-test agent `name`: derived from the admin key, so a later run with the
/// same key signs in to the accounts an earlier run created, and nobody without the key can.
fn password_for(admin_key: &str, name: &str) -> String {
    let digest = Sha256::digest(format!("kefu loadtest agent\n{admin_key}\n{name}"));
    hex::encode(&digest[..16])
}

/// The tag in load-test agent names: six hex digits of a hash of the admin key, so runs with
/// different keys use different accounts.
fn key_tag(admin_key: &str) -> String {
    hex::encode(&Sha256::digest(format!("kefu loadtest key tag\n{admin_key}"))[..3])
}

/// Creates (or reuses) `count` agents named `loadtest-<key tag>-1…`, signs each in and opens its
/// socket.
pub(super) async fn sign_in(
    http: &reqwest::Client,
    base: &str,
    ws_url: &str,
    admin_key: &str,
    count: usize,
    shared: &Arc<Shared>,
) -> anyhow::Result<Vec<Agent>> {
    let mut agents = Vec::with_capacity(count);
    let tag = key_tag(admin_key);
    for i in 1..=count {
        let name = format!("loadtest-{tag}-{i}");
        let password = password_for(admin_key, &name);
        let created = http
            .post(format!("{base}/v1/admin/agents"))
            .bearer_auth(admin_key)
            .json(
                &json!({ "name": name, "display_name": format!("Load test {i} 压测"),
                           "password": password, "capacity": CONVERSATIONS_PER_AGENT }),
            )
            .send()
            .await?;
        let status = created.status().as_u16();
        if status != 201 && status != 409 {
            let body = created.text().await.unwrap_or_default();
            anyhow::bail!("creating agent {name} failed ({status}): {body}");
        }
        let login = http
            .post(format!("{base}/v1/agent/login"))
            .json(&json!({ "name": name, "password": password }))
            .send()
            .await?;
        if !login.status().is_success() {
            let status = login.status().as_u16();
            let body = login.text().await.unwrap_or_default();
            anyhow::bail!(
                "agent {name} could not sign in ({status}): {body}; an account of that name \
                 that this admin key's load test did not make is in the way"
            );
        }
        let token = login.json::<Value>().await?["token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let socket = super::connect_socket(ws_url, &token).await?;
        let (subscribe, requests) = mpsc::unbounded_channel();
        tokio::spawn(run(socket, requests, Arc::clone(shared)));
        agents.push(Agent {
            name,
            token,
            subscribe,
        });
    }
    Ok(agents)
}

/// Claims `conversation_id` for `agent` and asks its socket to subscribe; false if the claim failed.
pub(super) async fn claim(
    http: &reqwest::Client,
    base: &str,
    agent: &Agent,
    conversation_id: &str,
) -> bool {
    let claimed = http
        .post(format!(
            "{base}/v1/agent/conversations/{conversation_id}/claim"
        ))
        .bearer_auth(&agent.token)
        .send()
        .await;
    match claimed {
        Ok(r) if r.status().is_success() => agent.subscribe.send(conversation_id.into()).is_ok(),
        Ok(r) => {
            tracing::debug!(status = %r.status(), agent = %agent.name, "claim refused");
            false
        }
        Err(e) => {
            tracing::debug!(error = %e, "claim failed");
            false
        }
    }
}

/// Resolves a claimed conversation; false if that failed.
pub(super) async fn resolve(
    http: &reqwest::Client,
    base: &str,
    agent: &Agent,
    conversation_id: &str,
) -> bool {
    http.post(format!(
        "{base}/v1/agent/conversations/{conversation_id}/resolve"
    ))
    .bearer_auth(&agent.token)
    .send()
    .await
    .is_ok_and(|r| r.status().is_success())
}

/// Signs the agent out (its socket closes with the token).
pub(super) async fn sign_out(http: &reqwest::Client, base: &str, agent: Agent) {
    let _ = http
        .post(format!("{base}/v1/agent/logout"))
        .bearer_auth(&agent.token)
        .send()
        .await;
}

/// The agent socket's loop: subscribe to claimed conversations (paced), count each subscription
/// once its `state` frame arrives, and time visitor messages as they are delivered.
async fn run(
    mut ws: super::Socket,
    mut requests: mpsc::UnboundedReceiver<String>,
    shared: Arc<Shared>,
) {
    let c = &shared.counters;
    let mut pending: HashSet<String> = HashSet::new();
    let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / SUBSCRIBES_PER_SECOND));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut may_subscribe = true;
    let mut ping = tokio::time::interval(Duration::from_secs(30));
    let mut requests_open = true;
    loop {
        tokio::select! {
            _ = pace.tick(), if !may_subscribe => may_subscribe = true,
            id = requests.recv(), if may_subscribe && requests_open => {
                let Some(id) = id else {
                    requests_open = false;
                    continue;
                };
                let sub = json!({ "type": "subscribe", "conversation_id": id, "after_seq": 0 });
                if !send_frame(&mut ws, &sub).await {
                    c.closed_early.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                pending.insert(id);
                may_subscribe = false;
            }
            frame = next_frame(&mut ws, &mut ping) => {
                let Some(v) = frame else {
                    c.agent_closed.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                match v["type"].as_str() {
                    Some("message") if v["message"]["author"]["kind"] == "visitor" => {
                        if let Some(sent) = v["message"]["client_msg_id"]
                            .as_str()
                            .and_then(|id| shared.in_flight_remove(id))
                        {
                            c.relayed.fetch_add(1, Ordering::Relaxed);
                            shared.record_relay(sent.elapsed());
                        }
                    }
                    Some("state") => {
                        if let Some(id) = v["conversation_id"].as_str() {
                            if pending.remove(id) {
                                c.subscribed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    Some("error") => {
                        c.agent_error_frames.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        }
    }
}
