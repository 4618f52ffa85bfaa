//! `kefu visitor erase` and `kefu audit` (rules in `privacy`); a site's retention is set with
//! `kefu site set KEY --retention-days N`.

use crate::cli::VisitorCommand;
use crate::config::Config;
use crate::privacy::{Privacy, VisitorRef};
use crate::store::Channel;

/// Who the CLI's changes are recorded as in the audit log.
pub const ACTOR: &str = "cli";

/// The privacy service over the stores `config` names (no model is loaded).
pub async fn open(config: &Config) -> anyhow::Result<(crate::store::Store, Privacy)> {
    let store = super::open_store(config).await?;
    let kb = config.knowledge_store().await?;
    Ok((
        store.clone(),
        Privacy::new(store, kb, config.attachment_files()?),
    ))
}

/// Runs `kefu visitor erase`.
pub async fn erase(config: &Config, cmd: VisitorCommand) -> anyhow::Result<()> {
    let VisitorCommand::Erase {
        site,
        visitor_id,
        user_id,
        channel,
        json,
    } = cmd;
    let who = match (visitor_id, user_id) {
        (Some(id), _) => VisitorRef::Id(id),
        (None, Some(user_id)) => VisitorRef::User {
            channel: Channel::parse(&channel)
                .ok_or_else(|| anyhow::anyhow!("--channel is one of web, api, wechat"))?,
            user_id,
        },
        (None, None) => anyhow::bail!("name the visitor with --visitor-id or --user-id"),
    };
    let (store, privacy) = open(config).await?;
    let erased = privacy.erase(&site, &who, ACTOR).await?;
    store.close().await;
    if json {
        println!("{}", serde_json::to_string(&erased)?);
    } else {
        println!(
            "erased visitor {}: {} conversations, {} messages, {} ratings, {} undelivered webhooks, {} tokens; training history: {} conversations, {} messages; proposals: {} changed, {} removed",
            erased.visitor_id,
            erased.conversations,
            erased.messages,
            erased.ratings,
            erased.deliveries,
            erased.tokens,
            erased.history_conversations,
            erased.history_messages,
            erased.proposals_changed,
            erased.proposals_removed
        );
        println!("a running server forgets the question texts it remembers for analytics on its next erasure through the admin API, or when it restarts");
    }
    Ok(())
}

/// Runs `kefu audit`.
pub async fn audit(config: &Config, limit: u32, json: bool) -> anyhow::Result<()> {
    let (store, privacy) = open(config).await?;
    let entries = privacy.audit_log(limit).await?;
    store.close().await;
    if json {
        println!("{}", serde_json::to_string(&entries)?);
    } else {
        for e in entries {
            println!(
                "{}\t{}\t{}\t{}\t{}\t{}",
                crate::store::rfc3339(e.at),
                e.actor,
                e.action,
                e.site_key.unwrap_or_default(),
                e.subject.unwrap_or_default(),
                e.detail
            );
        }
    }
    Ok(())
}
