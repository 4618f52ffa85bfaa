//! `kefu agent …`: create agents, set passwords, list them.

use serde_json::json;

use crate::auth::{hash_password, new_password};
use crate::cli::AgentCommand;
use crate::config::Config;
use crate::store::{new_id, Agent};

/// Longest agent login name.
pub const MAX_AGENT_NAME: usize = 64;

/// A validated new agent with its password hashed.
pub async fn new_agent(
    name: &str,
    display_name: Option<String>,
    password: &str,
    capacity: u32,
) -> anyhow::Result<Agent> {
    validate_name(name)?;
    if password.chars().count() < 8 {
        anyhow::bail!("the password must have at least 8 characters");
    }
    if capacity == 0 || capacity > 100 {
        anyhow::bail!("capacity must be 1-100");
    }
    let display_name = display_name.unwrap_or_else(|| name.to_string());
    if display_name.trim().is_empty() || display_name.chars().count() > 64 {
        anyhow::bail!("the display name must have 1-64 characters");
    }
    let password = password.to_string();
    let password_hash = tokio::task::spawn_blocking(move || hash_password(&password)).await??;
    Ok(Agent {
        id: new_id("a_"),
        name: name.to_string(),
        display_name,
        password_hash,
        capacity,
    })
}

fn validate_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || name.len() > MAX_AGENT_NAME
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        anyhow::bail!("agent names are 1-{MAX_AGENT_NAME} letters, digits, `-`, `_` or `.`");
    }
    Ok(())
}

/// Runs one `agent` subcommand.
pub async fn run(config: &Config, cmd: AgentCommand) -> anyhow::Result<()> {
    let store = super::open_store(config).await?;
    match cmd {
        AgentCommand::Add {
            name,
            display_name,
            password,
            capacity,
        } => {
            let generated = password.is_none();
            let password = match password {
                Some(p) => p,
                None => new_password()?,
            };
            let agent = new_agent(&name, display_name, &password, capacity).await?;
            store.create_agent(&agent).await?;
            println!(
                "created agent `{}` (capacity {})",
                agent.name, agent.capacity
            );
            if generated {
                println!("password: {password}");
            }
        }
        AgentCommand::SetPassword { name, password } => {
            let generated = password.is_none();
            let password = match password {
                Some(p) => p,
                None => new_password()?,
            };
            if password.chars().count() < 8 {
                anyhow::bail!("the password must have at least 8 characters");
            }
            let p = password.clone();
            let hash = tokio::task::spawn_blocking(move || hash_password(&p)).await??;
            store.set_agent_password(&name, &hash).await?;
            println!("password of `{name}` changed");
            if generated {
                println!("password: {password}");
            }
        }
        AgentCommand::List { json } => {
            let agents = store.agents().await?;
            if json {
                let list: Vec<_> = agents
                    .iter()
                    .map(|a| json!({"name": a.name, "display_name": a.display_name, "capacity": a.capacity}))
                    .collect();
                println!("{}", serde_json::to_string(&list)?);
            } else {
                for a in agents {
                    println!("{}\t{}\tcapacity {}", a.name, a.display_name, a.capacity);
                }
            }
        }
    }
    store.close().await;
    Ok(())
}
