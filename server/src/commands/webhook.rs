//! `kefu webhook …`: event webhook endpoints (rules in `webhooks`).

use crate::cli::WebhookCommand;
use crate::config::Config;
use crate::webhooks::Webhooks;

/// Runs one `webhook` subcommand.
pub async fn run(config: &Config, cmd: WebhookCommand) -> anyhow::Result<()> {
    let webhooks = Webhooks::new(super::open_store(config).await?);
    match cmd {
        WebhookCommand::Add {
            site,
            url,
            events,
            json,
        } => {
            let added = webhooks.add(&site, &url, &events).await?;
            if json {
                println!("{}", serde_json::to_string(&added)?);
            } else {
                let e = &added.endpoint;
                println!("added webhook endpoint {} for site `{}`", e.id, e.site_key);
                println!("url:    {}", e.url);
                println!("events: {}", events_text(&e.events));
                println!(
                    "secret: {}  (shown this once: keep it to verify Kefu-Signature)",
                    added.secret
                );
            }
        }
        WebhookCommand::List { site, json } => {
            let list = webhooks.list(site.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else if list.is_empty() {
                println!("no webhook endpoints yet: kefu webhook add --site KEY --url URL");
            } else {
                for e in list {
                    let state = match (&e.enabled, &e.disabled_reason) {
                        (true, _) => "enabled".to_string(),
                        (false, Some(r)) => format!("disabled ({r})"),
                        (false, None) => "disabled".to_string(),
                    };
                    println!(
                        "{}  {}  {}  [{}]  {state}",
                        e.id,
                        e.site_key,
                        e.url,
                        events_text(&e.events)
                    );
                }
            }
        }
        WebhookCommand::Remove { id } => {
            webhooks.remove(&id).await?;
            println!("removed webhook endpoint {id}");
        }
        WebhookCommand::Rotate { id } => {
            let rotated = webhooks.rotate(&id).await?;
            println!("new secret for {id}: {}", rotated.secret);
            println!("the previous secret keeps signing deliveries for 24 hours");
        }
        WebhookCommand::Enable { id } => {
            webhooks.enable(&id).await?;
            println!("enabled webhook endpoint {id}; deliveries that waited go out now");
        }
        WebhookCommand::Deliveries { id, limit, json } => {
            let list = webhooks.deliveries(&id, limit).await?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else {
                for d in list {
                    println!(
                        "{}  {:<22} {:<9} attempts {}  {}",
                        d.event_id,
                        d.event_type,
                        d.status,
                        d.attempts,
                        d.last_error.as_deref().unwrap_or("")
                    );
                }
            }
        }
    }
    Ok(())
}

fn events_text(events: &[String]) -> String {
    if events.is_empty() {
        "every event".to_string()
    } else {
        events.join(", ")
    }
}
