//! `kefu train …`: import past conversations (files or Kefu's own), mine FAQ proposals into the
//! review queue, review them, and list the questions the knowledge base cannot answer.

use indicatif::{ProgressBar, ProgressStyle};
use kefu_kb::intent::EmbeddingCache;
use kefu_kb::train::{
    history, mine, review, HistoryConversation, HistoryMessage, MineConfig, Role,
};
use kefu_protocol::AuthorKind;
use serde_json::json;

use crate::cli::{ReviewCommand, TrainCommand};
use crate::config::Config;
use crate::store::rfc3339;
use crate::training::{MineSettings, Training};

fn bar(label: &str) -> anyhow::Result<ProgressBar> {
    let b = ProgressBar::new(0);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{label} [{{bar:30}}] {{pos}}/{{len}} ({{per_sec}}, eta {{eta}})"
        ))?
        .progress_chars("=> "),
    );
    Ok(b)
}

/// Kefu's own stored conversations as training history (system messages left out).
async fn own_conversations(config: &Config) -> anyhow::Result<Vec<HistoryConversation>> {
    let store = super::open_store(config).await?;
    let ids = store.conversation_ids().await?;
    let b = bar("reading conversations")?;
    b.set_length(ids.len() as u64);
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let mut messages = Vec::new();
        let mut after = 0;
        loop {
            let page = store.messages_after(&id, after, 500).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for m in &page {
                let role = match m.author_kind {
                    AuthorKind::Visitor => Role::Visitor,
                    AuthorKind::Agent => Role::Agent,
                    AuthorKind::Bot => Role::Bot,
                    AuthorKind::System => continue,
                };
                messages.push(HistoryMessage {
                    role,
                    text: m.text.clone(),
                    time: Some(rfc3339(m.created_at)),
                });
            }
        }
        if !messages.is_empty() {
            out.push(HistoryConversation { id, messages });
        }
        b.inc(1);
    }
    b.finish_and_clear();
    store.close().await;
    Ok(out)
}

fn print_proposal(p: &review::QueuedProposal) {
    println!(
        "#{} [{}] support {}  {}{}",
        p.id,
        p.status.as_str(),
        p.support,
        p.question,
        p.kb.as_deref()
            .map(|k| format!("  (in '{k}')"))
            .unwrap_or_default()
    );
    if !p.alternates.is_empty() {
        println!("    also: {}", p.alternates.join(" | "));
    }
    println!("    answer: {}", p.answer.replace('\n', " / "));
}

/// Runs one `train` subcommand.
pub async fn run(config: &Config, cmd: TrainCommand) -> anyhow::Result<()> {
    match cmd {
        TrainCommand::Import {
            files,
            from_kefu,
            json,
        } => {
            if files.is_empty() && !from_kefu {
                anyhow::bail!("give history files (.jsonl, .csv) or --from-kefu");
            }
            let knowledge = std::sync::Arc::new(super::open_knowledge(config).await?);
            let training = Training::new(knowledge, &config.model_dir, &config.data_dir);
            let mut reports = Vec::new();
            for path in &files {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("history")
                    .to_string();
                let bytes = std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
                let r = training.import_history(&name, &bytes).await?;
                for b in &r.skipped {
                    eprintln!("skipped {b}");
                }
                reports.push(r);
            }
            if from_kefu {
                let own = own_conversations(config).await?;
                reports.push(training.store_history("kefu", &own, &[]).await?);
            }
            for r in &reports {
                if json {
                    println!(
                        "{}",
                        json!({"source": r.source, "skipped": r.skipped_count, "report": r.report})
                    );
                } else {
                    let x = &r.report;
                    println!(
                        "{}: {} conversations added, {} updated, {} unchanged ({} messages stored), {} records skipped",
                        r.source, x.added, x.updated, x.unchanged, x.messages, r.skipped_count
                    );
                }
            }
        }
        TrainCommand::Mine {
            kb,
            min_support,
            similarity,
            json,
        } => {
            let knowledge = std::sync::Arc::new(super::open_knowledge(config).await?);
            let training = Training::new(knowledge, &config.model_dir, &config.data_dir);
            let b = bar("embedding")?;
            if json {
                b.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let settings = MineSettings {
                min_support,
                similarity,
            };
            let report = training
                .mine(&kb, settings, &|d, t| {
                    b.set_length(t as u64);
                    b.set_position(d as u64);
                })
                .await;
            b.finish_and_clear();
            let r = report?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{} conversations, {} question/answer pairs, {} clusters with support >= {min_support}",
                    r.conversations, r.pairs, r.clusters
                );
                println!(
                    "review queue: {} new, {} updated, {} already reviewed, {} already answered by '{kb}'",
                    r.queue.added, r.queue.updated, r.queue.already_reviewed, r.queue.already_answered
                );
                println!("next: kefu train review list");
            }
        }
        TrainCommand::Review(cmd) => run_review(config, cmd).await?,
        TrainCommand::Gaps {
            kb,
            top,
            similarity,
            json,
        } => {
            let knowledge = super::open_knowledge(config).await?;
            let conversations = history::load_all(knowledge.store()).await?;
            let cache = EmbeddingCache::open(&super::intent::cache_path(config)).await?;
            let cfg = MineConfig {
                similarity,
                ..MineConfig::default()
            };
            let b = bar("embedding")?;
            if json {
                b.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let gaps = mine::gaps(
                &knowledge,
                &cache,
                &kb,
                &conversations,
                &cfg,
                top,
                &|d, t| {
                    b.set_length(t as u64);
                    b.set_position(d as u64);
                },
            )
            .await;
            b.finish_and_clear();
            cache.close().await;
            let gaps = gaps?;
            if json {
                println!("{}", serde_json::to_string(&gaps)?);
            } else if gaps.is_empty() {
                println!("no unanswered questions in the imported history");
            } else {
                println!("most frequent questions '{kb}' cannot answer:");
                for g in &gaps {
                    println!(
                        "{:>5}x  {}  (best score {:.2})",
                        g.count, g.question, g.best_score
                    );
                    if g.examples.len() > 1 {
                        println!("        also: {}", g.examples[1..].join(" | "));
                    }
                }
            }
        }
    }
    Ok(())
}

async fn run_review(config: &Config, cmd: ReviewCommand) -> anyhow::Result<()> {
    match cmd {
        ReviewCommand::List { status, json } => {
            let store = config.knowledge_store().await?;
            let status = status.as_deref().map(review::Status::parse).transpose()?;
            let list = review::list(&store, status).await?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else if list.is_empty() {
                println!("the review queue is empty");
            } else {
                list.iter().for_each(print_proposal);
            }
        }
        ReviewCommand::Approve { ids, kb } => {
            let knowledge = super::open_knowledge(config).await?;
            for id in ids {
                let (p, r) = review::approve(knowledge.store(), &knowledge, id, &kb).await?;
                println!(
                    "approved #{} into '{kb}' ({} added, {} updated): {}",
                    p.id, r.added, r.updated, p.question
                );
            }
        }
        ReviewCommand::Edit {
            id,
            question,
            answer,
            alternates,
        } => {
            let knowledge = super::open_knowledge(config).await?;
            let alternates = alternates.map(|a| a.split('|').map(str::to_string).collect());
            let p = review::edit(
                knowledge.store(),
                &knowledge,
                id,
                question,
                answer,
                alternates,
            )
            .await?;
            print_proposal(&p);
        }
        ReviewCommand::Reject { ids } => {
            let store = config.knowledge_store().await?;
            for id in ids {
                let p = review::reject(&store, id).await?;
                println!("rejected #{}: {}", p.id, p.question);
            }
        }
    }
    Ok(())
}
