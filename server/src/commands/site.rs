//! `kefu site …`: sites (websites and apps embedding the chat) with their origin allow-lists and
//! identity-verification secrets.

use serde_json::json;

use crate::auth::new_token;
use crate::cli::SiteCommand;
use crate::config::Config;
use crate::store::Site;

/// A validated new site; a secret is generated when identity is enforced without one.
pub fn new_site(
    key: &str,
    name: Option<String>,
    origins: Vec<String>,
    identity_secret: Option<String>,
    enforce_identity: bool,
) -> anyhow::Result<Site> {
    if key.is_empty()
        || key.len() > 64
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    {
        anyhow::bail!("site keys are 1-64 letters, digits, `-` or `_`");
    }
    for o in &origins {
        let host = o
            .strip_prefix("https://")
            .or_else(|| o.strip_prefix("http://"))
            .map(|r| r.trim_end_matches('/'));
        let ok = o == "*" || host.is_some_and(|h| !h.is_empty() && !h.contains('/'));
        if !ok {
            anyhow::bail!("origin `{o}` must look like https://shop.example (or be `*`)");
        }
    }
    let identity_secret = match identity_secret {
        Some(s) if s.len() < 16 => anyhow::bail!("identity secrets need at least 16 characters"),
        Some(s) => Some(s),
        None if enforce_identity => Some(new_token("")?),
        None => None,
    };
    Ok(Site {
        key: key.to_string(),
        name: name.unwrap_or_else(|| key.to_string()),
        allowed_origins: origins
            .into_iter()
            .map(|o| o.trim_end_matches('/').to_string())
            .collect(),
        identity_secret,
        enforce_identity,
    })
}

/// Runs one `site` subcommand.
pub async fn run(config: &Config, cmd: SiteCommand) -> anyhow::Result<()> {
    let store = super::open_store(config).await?;
    match cmd {
        SiteCommand::Add {
            key,
            name,
            origins,
            enforce_identity,
            identity_secret,
        } => {
            let site = new_site(&key, name, origins, identity_secret, enforce_identity)?;
            store.create_site(&site).await?;
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
            let sites = store.sites().await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_are_validated() {
        let s = new_site(
            "shop_1",
            None,
            vec!["https://shop.example/".into()],
            None,
            true,
        )
        .expect("valid");
        assert_eq!(s.allowed_origins, vec!["https://shop.example"]);
        assert!(
            s.identity_secret.as_deref().is_some_and(|k| k.len() >= 32),
            "generated"
        );
        assert!(new_site("shop 1", None, vec![], None, false).is_err());
        assert!(new_site("s", None, vec!["shop.example".into()], None, false).is_err());
        assert!(new_site(
            "s",
            None,
            vec!["https://shop.example/path".into()],
            None,
            false
        )
        .is_err());
        assert!(new_site("s", None, vec!["*".into()], None, false).is_ok());
        assert!(new_site("s", None, vec![], Some("short".into()), false).is_err());
    }
}
