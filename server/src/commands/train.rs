//! `kefu train …`: import past conversations (files or Kefu's own), mine FAQ proposals into the
//! review queue, review them, and list the questions the knowledge base cannot answer.

use std::path::Path;

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

fn parse_file(path: &Path) -> anyhow::Result<history::ParsedHistory> {
    let name = path.display().to_string();
    let raw = std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {name}: {e}"))?;
    let text = String::from_utf8(raw).map_err(|_| anyhow::anyhow!("{name}: not UTF-8 text"))?;
    let text = text.trim_start_matches('\u{feff}');
    let ext = kefu_kb::ingest::extension(path);
    match ext.as_str() {
        "jsonl" | "json" | "ndjson" => Ok(history::parse_jsonl(text, &name)),
        "csv" => history::parse_csv(text, &name).map_err(|b| anyhow::anyhow!("{b}")),
        _ => anyhow::bail!("{name}: chat history must be .jsonl or .csv"),
    }
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
            let store = kefu_kb::store::KbStore::open(&config.database_path()).await?;
            let mut reports = Vec::new();
            for path in &files {
                let parsed = parse_file(path)?;
                for b in &parsed.skipped {
                    eprintln!("skipped {b}");
                }
                let source = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("history")
                    .to_string();
                let r = history::store(&store, &source, &parsed.conversations).await?;
                reports
                    .push(json!({"source": source, "skipped": parsed.skipped.len(), "report": r}));
            }
            if from_kefu {
                let own = own_conversations(config).await?;
                let r = history::store(&store, "kefu", &own).await?;
                reports.push(json!({"source": "kefu", "skipped": 0, "report": r}));
            }
            store.pool().close().await;
            for r in &reports {
                if json {
                    println!("{r}");
                } else {
                    let x = &r["report"];
                    println!(
                        "{}: {} conversations added, {} updated, {} unchanged ({} messages stored), {} records skipped",
                        r["source"].as_str().unwrap_or(""),
                        x["added"], x["updated"], x["unchanged"], x["messages"], r["skipped"]
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
            if !(0.0..=1.0).contains(&similarity) {
                anyhow::bail!("--similarity must be between 0 and 1");
            }
            let knowledge = super::open_knowledge(config).await?;
            let conversations = history::load_all(knowledge.store()).await?;
            if conversations.is_empty() {
                anyhow::bail!(
                    "no chat history imported yet: kefu train import FILE (or --from-kefu)"
                );
            }
            let pairs = mine::extract_pairs(&conversations);
            let cache = EmbeddingCache::open(&super::intent::cache_path(config)).await?;
            let cfg = MineConfig {
                min_support,
                similarity,
                ..MineConfig::default()
            };
            let b = bar("embedding")?;
            if json {
                b.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let proposals = mine::propose(knowledge.embedder(), &cache, &pairs, &cfg, &|d, t| {
                b.set_length(t as u64);
                b.set_position(d as u64);
            })
            .await;
            b.finish_and_clear();
            cache.close().await;
            let proposals = proposals?;
            let report = review::enqueue(knowledge.store(), &knowledge, &kb, &proposals).await?;
            if json {
                println!(
                    "{}",
                    json!({"conversations": conversations.len(), "pairs": pairs.len(), "clusters": proposals.len(), "queue": report})
                );
            } else {
                println!(
                    "{} conversations, {} question/answer pairs, {} clusters with support >= {min_support}",
                    conversations.len(),
                    pairs.len(),
                    proposals.len()
                );
                println!(
                    "review queue: {} new, {} updated, {} already reviewed, {} already answered by '{kb}'",
                    report.added, report.updated, report.already_reviewed, report.already_answered
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
            let store = kefu_kb::store::KbStore::open(&config.database_path()).await?;
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
            let store = kefu_kb::store::KbStore::open(&config.database_path()).await?;
            for id in ids {
                let p = review::reject(&store, id).await?;
                println!("rejected #{}: {}", p.id, p.question);
            }
        }
    }
    Ok(())
}
