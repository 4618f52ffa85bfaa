//! `kefu site …`: sites (websites and apps embedding the chat) with their origin allow-lists and
//! identity-verification secrets (rules in `accounts`).

use serde_json::json;

use crate::accounts::NewSite;
use crate::channels::wechat::WechatSettings;
use crate::channels::ChannelSettings;
use crate::cli::SiteCommand;
use crate::config::Config;
use crate::store::Channel;

/// Runs one `site` subcommand.
pub async fn run(config: &Config, cmd: SiteCommand) -> anyhow::Result<()> {
    let (store, accounts) = super::open_accounts(config).await?;
    let channels = ChannelSettings::new(store.clone(), accounts.clone());
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
            let mut list = Vec::with_capacity(sites.len());
            for s in &sites {
                let names: Vec<&str> = channels
                    .of_site(&s.key)
                    .await?
                    .into_iter()
                    .map(Channel::as_str)
                    .collect();
                list.push((s, names));
            }
            if json {
                let list: Vec<_> = list
                    .iter()
                    .map(|(s, channels)| json!({"key": s.key, "name": s.name, "allowed_origins": s.allowed_origins, "enforce_identity": s.enforce_identity, "channels": channels}))
                    .collect();
                println!("{}", serde_json::to_string(&list)?);
            } else {
                for (s, names) in list {
                    println!(
                        "{}\t{}\torigins: {}\tidentity: {}\tchannels: web{}",
                        s.key,
                        s.name,
                        s.allowed_origins.join(","),
                        if s.enforce_identity {
                            "required"
                        } else {
                            "optional"
                        },
                        names.iter().map(|n| format!(",{n}")).collect::<String>()
                    );
                }
            }
        }
        SiteCommand::Set {
            key,
            api_token,
            no_api,
            wechat_token,
            wechat_app_id,
            wechat_app_secret,
            no_wechat,
            retention_days,
            hours,
            time_zone,
            holidays,
            no_hours,
            attachment_max_mb,
            attachment_kinds,
            json,
        } => {
            let attachments =
                crate::attachments::Attachments::new(store.clone(), config.attachment_files()?);
            let kinds = attachment_kinds
                .as_deref()
                .map(crate::attachments::parse_kinds)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let max_bytes = attachment_max_mb.map(|mb| mb.saturating_mul(1024 * 1024));
            if max_bytes.is_some() || kinds.is_some() {
                attachments
                    .set_limits(&key, max_bytes, kinds.as_deref())
                    .await?;
            }
            let limits = attachments.limits(&key).await?;
            if let (Some(weekly), Some(time_zone)) = (hours, time_zone) {
                let hours = crate::hours::BusinessHours {
                    time_zone,
                    weekly,
                    holidays,
                };
                accounts.set_business_hours(&key, Some(&hours)).await?;
            }
            if no_hours {
                accounts.set_business_hours(&key, None).await?;
            }
            if let Some(days) = retention_days {
                let privacy = crate::privacy::Privacy::new(
                    store.clone(),
                    config.knowledge_store().await?,
                    config.attachment_files()?,
                );
                privacy
                    .set_retention(&key, days, super::privacy::ACTOR)
                    .await?;
            }
            let mut token = None;
            if api_token {
                token = Some(channels.issue_api_token(&key).await?);
            }
            if no_api {
                channels.remove(&key, Channel::Api).await?;
            }
            if let Some(wechat_token) = wechat_token {
                let settings = WechatSettings {
                    token: wechat_token,
                    app_id: wechat_app_id,
                    app_secret: wechat_app_secret,
                };
                channels.set_wechat(&key, settings).await?;
            }
            if no_wechat {
                channels.remove(&key, Channel::Wechat).await?;
            }
            let names: Vec<&str> = channels
                .of_site(&key)
                .await?
                .into_iter()
                .map(Channel::as_str)
                .collect();
            if json {
                println!(
                    "{}",
                    json!({"key": key, "channels": names, "api_token": token, "retention_days": retention_days, "business_hours": accounts.business_hours(&key).await?, "attachments": {"max_bytes": limits.max_bytes, "kinds": crate::attachments::kinds_text(&limits.kinds)}})
                );
            } else {
                if let Some(token) = &token {
                    println!("API channel token (shown once): {token}");
                }
                println!(
                    "site `{key}` channels: web{}",
                    names.iter().map(|n| format!(", {n}")).collect::<String>()
                );
                println!(
                    "attachments: {} up to {} MB",
                    if limits.kinds.is_empty() {
                        "off".to_string()
                    } else {
                        crate::attachments::kinds_text(&limits.kinds)
                    },
                    limits.max_bytes / (1024 * 1024)
                );
            }
        }
    }
    store.close().await;
    Ok(())
}
