//! `kefu agent …`: create agents, set passwords, revoke sessions, list them (rules in `accounts`).

use serde_json::json;

use crate::accounts::credentials::new_password;
use crate::accounts::NewAgent;
use crate::cli::AgentCommand;
use crate::config::Config;
use crate::store::Role;

/// Runs one `agent` subcommand.
pub async fn run(config: &Config, cmd: AgentCommand) -> anyhow::Result<()> {
    let (store, accounts) = super::open_accounts(config).await?;
    match cmd {
        AgentCommand::Add {
            name,
            display_name,
            password,
            capacity,
            role,
        } => {
            let generated = password.is_none();
            let password = match password {
                Some(p) => p,
                None => new_password()?,
            };
            let agent = accounts
                .create_agent(NewAgent {
                    name,
                    display_name,
                    password: password.clone(),
                    capacity,
                    role: parse_role(&role)?,
                })
                .await?;
            println!(
                "created {} `{}` (capacity {})",
                agent.role.as_str(),
                agent.name,
                agent.capacity
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
            let revoked = accounts.set_agent_password(&name, &password).await?;
            println!("password of `{name}` changed; {revoked} session(s) signed out");
            if generated {
                println!("password: {password}");
            }
        }
        AgentCommand::SetRole { name, role } => {
            accounts.set_role(&name, parse_role(&role)?).await?;
            println!("`{name}` is now {role}");
        }
        AgentCommand::Revoke { name } => {
            let revoked = accounts.revoke_agent_sessions(&name).await?;
            println!("{revoked} session(s) of `{name}` signed out");
        }
        AgentCommand::List { json } => {
            let agents = accounts.agents().await?;
            if json {
                let list: Vec<_> = agents
                    .iter()
                    .map(|a| json!({"name": a.name, "display_name": a.display_name, "capacity": a.capacity, "role": a.role}))
                    .collect();
                println!("{}", serde_json::to_string(&list)?);
            } else {
                for a in agents {
                    println!(
                        "{}\t{}\t{}\tcapacity {}",
                        a.name,
                        a.display_name,
                        a.role.as_str(),
                        a.capacity
                    );
                }
            }
        }
    }
    store.close().await;
    Ok(())
}

fn parse_role(role: &str) -> anyhow::Result<Role> {
    Role::parse(role).ok_or_else(|| anyhow::anyhow!("unknown role {role:?}: agent or admin"))
}
