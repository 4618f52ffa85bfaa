//! `kefu site …`: sites (websites and apps embedding the chat) with their origin allow-lists and
//! identity-verification secrets (rules in `accounts`).

use serde_json::json;

use crate::accounts::NewSite;
use crate::cli::SiteCommand;
use crate::config::Config;

/// Runs one `site` subcommand.
pub async fn run(config: &Config, cmd: SiteCommand) -> anyhow::Result<()> {
    let (store, accounts) = super::open_accounts(config).await?;
    match cmd {
        SiteCommand::Add {
            key,
            name,
            origins,
            enforce_identity,
            identity_secret,
        } => {
            let site = accounts
                .create_site(NewSite {
                    key,
                    name,
                    allowed_origins: origins,
                    identity_secret,
                    enforce_identity,
                })
                .await?;
            println!("created site `{}`", site.key);
            println!(
                "allowed origins: {}",
                if site.allowed_origins.is_empty() {
                    "(this server's own pages only)".to_string()
                } else {
                    site.allowed_origins.join(", ")
                }
            );
            if let Some(secret) = &site.identity_secret {
                println!("identity secret: {secret}");
                println!(
                    "identity verification: {}",
                    if site.enforce_identity {
                        "required"
                    } else {
                        "optional"
                    }
                );
            }
        }
        SiteCommand::List { json } => {
            let sites = accounts.sites().await?;
            if json {
                let list: Vec<_> = sites
                    .iter()
                    .map(|s| json!({"key": s.key, "name": s.name, "allowed_origins": s.allowed_origins, "enforce_identity": s.enforce_identity}))
                    .collect();
                println!("{}", serde_json::to_string(&list)?);
            } else {
                for s in sites {
                    println!(
                        "{}\t{}\torigins: {}\tidentity: {}",
                        s.key,
                        s.name,
                        s.allowed_origins.join(","),
                        if s.enforce_identity {
                            "required"
                        } else {
                            "optional"
                        }
                    );
                }
            }
        }
    }
    store.close().await;
    Ok(())
}
