//! `kefu kb …`: import, query, ask, eval, list, stats, delete, reindex, thresholds, mode.

use indicatif::{ProgressBar, ProgressStyle};
use kefu_kb::answer::AnswerMode;
use kefu_kb::store::ThresholdOverrides;
use kefu_kb::{Knowledge, Retrieval};
use serde_json::json;

use super::ask::{AskReply, Asker};
use crate::cli::KbCommand;
use crate::config::Config;

/// Repeated fallbacks before a handoff, as `kefu serve` defaults (each question asked is the first
/// of its conversation, so this only matters for rules and intents that hand off).
pub(crate) const FALLBACKS: u32 = 2;

/// A progress bar over texts being embedded (`verb`: "embedding", "re-embedding"); hidden when
/// `quiet`. Returns the bar and the callback the knowledge service reports to.
pub(crate) fn texts_bar(
    verb: &str,
    quiet: bool,
) -> anyhow::Result<(ProgressBar, impl Fn(usize, usize) + Sync)> {
    let bar = ProgressBar::new(0);
    if quiet {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    } else {
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{spinner}} {verb} [{{bar:30}}] {{pos}}/{{len}} texts ({{per_sec}}, eta {{eta}})"
            ))?
            .progress_chars("=> "),
        );
    }
    let handle = bar.clone();
    let progress = move |done: usize, total: usize| {
        handle.set_length(total as u64);
        handle.set_position(done as u64);
    };
    Ok((bar, progress))
}

/// Runs one `kb` subcommand.
pub async fn run(config: &Config, cmd: KbCommand) -> anyhow::Result<()> {
    match cmd {
        KbCommand::Encoder(cmd) => super::kb_encoder::run(config, cmd).await?,
        KbCommand::Import { paths, kb, json } => {
            let k = super::open_knowledge(config).await?;
            let (bar, progress) = texts_bar("embedding", false)?;
            let report = k.import_paths(&kb, &paths, &progress).await;
            bar.finish_and_clear();
            let r = report?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "imported {} files into '{kb}': {} entries ({} added, {} updated, {} unchanged, {} removed), {} texts embedded",
                    r.files, r.entries, r.added, r.updated, r.unchanged, r.removed, r.vectors_embedded
                );
            }
        }
        KbCommand::Query {
            kb,
            top_k,
            tags,
            json,
            texts,
        } => {
            let k = super::open_knowledge(config).await?;
            let results = k.query_many(&kb, &texts, top_k, &tags).await?;
            for r in &results {
                if json {
                    println!("{}", serde_json::to_string(&query_json(r))?);
                } else {
                    print_retrieval(r);
                }
            }
        }
        KbCommand::List { json } => {
            let store = config.knowledge_store().await?;
            let list = store.list().await?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else if list.is_empty() {
                println!("no knowledge bases yet: run `kefu kb import FILE…`");
            } else {
                println!(
                    "{:<20} {:<24} {:>6} {:>7} {:>8} {:>8}",
                    "NAME", "MODEL", "FAQS", "CHUNKS", "VECTORS", "SOURCES"
                );
                for c in list {
                    println!(
                        "{:<20} {:<24} {:>6} {:>7} {:>8} {:>8}",
                        c.name, c.model, c.faqs, c.chunks, c.vectors, c.sources
                    );
                }
            }
        }
        KbCommand::Stats { kb, json } => {
            let store = config.knowledge_store().await?;
            let info = store
                .get_kb(&kb)
                .await?
                .ok_or_else(|| kefu_kb::KbError::KbNotFound(kb.clone()))?;
            let counts = store.list().await?.into_iter().find(|c| c.name == kb);
            let t = Knowledge::thresholds(&info);
            let out = json!({ "kb": kb, "counts": counts, "thresholds": t, "dim": info.dim });
            if json {
                println!("{out}");
            } else {
                println!("{}", serde_json::to_string_pretty(&out)?);
            }
        }
        KbCommand::Delete { name } => {
            let n = super::open_knowledge(config).await?.delete(&name).await?;
            println!("deleted knowledge base '{name}' ({n} entries)");
        }
        KbCommand::Reindex { kb, json } => {
            let started = std::time::Instant::now();
            let k = super::open_knowledge(config).await?;
            let vectors = k.reindex(kb.as_deref()).await?;
            let seconds = started.elapsed().as_secs_f64();
            let index = if config.qdrant_url.is_some() {
                "qdrant"
            } else {
                "in-process"
            };
            let which = kb.as_deref().unwrap_or("every knowledge base");
            if json {
                println!(
                    "{}",
                    json!({ "index": index, "kb": kb, "vectors": vectors, "seconds": seconds })
                );
            } else if index == "qdrant" {
                println!(
                    "rebuilt Qdrant from the store ({which}): {vectors} vectors in {seconds:.1} s"
                );
            } else {
                println!(
                    "no --qdrant-url: the in-process index is rebuilt from the store at every start ({vectors} vectors now)"
                );
            }
        }
        KbCommand::Thresholds {
            kb,
            answer,
            suggest,
            margin,
            doc_answer,
            doc_suggest,
            from_report,
        } => {
            let overrides = match from_report {
                Some(path) => ThresholdOverrides::all(super::kb_tune::from_report(&path)?),
                None => ThresholdOverrides {
                    answer,
                    suggest,
                    margin,
                    doc_answer,
                    doc_suggest,
                },
            };
            let store = config.knowledge_store().await?;
            let wanted = store.set_thresholds(&kb, &overrides).await?;
            println!("{}", serde_json::to_string(&wanted)?);
        }
        KbCommand::Mode { kb, mode } => {
            let store = config.knowledge_store().await?;
            let mode = AnswerMode::parse(&mode)
                .ok_or_else(|| anyhow::anyhow!("unknown answer mode {mode:?}"))?;
            store.set_answer_mode(&kb, mode).await?;
            println!("knowledge base '{kb}' answers in {} mode", mode.as_str());
        }
        KbCommand::Ask {
            kb,
            rules,
            json,
            conversation,
            texts,
            llm,
        } => {
            let k = super::open_knowledge(config).await?;
            let asker = Asker::new(config, &k, &kb, rules.as_deref(), FALLBACKS)
                .await?
                .with_llm(llm.client()?);
            for asked in asker.ask_many(&texts, conversation).await? {
                if json {
                    println!("{}", serde_json::to_string(&asked.reply)?);
                } else {
                    print_reply(&asked.reply);
                }
            }
        }
        KbCommand::Eval {
            kb,
            data,
            rules,
            json,
            report,
            tune,
            min_held,
            llm,
        } => {
            let k = super::open_knowledge(config).await?;
            let asker = Asker::new(config, &k, &kb, rules.as_deref(), FALLBACKS)
                .await?
                .with_llm(llm.client()?);
            let opts = super::kb_eval::EvalOptions {
                json,
                report: report.as_deref(),
                tune: tune.then_some(min_held),
                kb: &kb,
            };
            super::kb_eval::run(&asker, &data, opts).await?;
        }
    }
    Ok(())
}

/// The stable JSON shape of one query result (used by the CLI and checked by tests).
pub fn query_json(r: &Retrieval) -> serde_json::Value {
    json!({
        "query": r.query,
        "band": r.band.as_str(),
        "hits": r.hits.iter().map(|h| json!({
            "id": h.id,
            "question": h.question,
            "answer": h.answer,
            "score": h.score,
            "lexical": h.lexical,
            "source": h.source,
        })).collect::<Vec<_>>(),
    })
}

fn print_retrieval(r: &Retrieval) {
    println!("{}  [{}]", r.query, r.band.as_str());
    for (i, h) in r.hits.iter().enumerate() {
        println!(
            "  {}. {:.3}  {}  ({})",
            i + 1,
            h.score,
            h.question,
            h.source
        );
        println!("     {}", h.answer);
    }
}

fn print_reply(r: &AskReply) {
    println!("{}  [{} · {}]", r.query, r.band, r.mode);
    for line in r.answer.lines() {
        println!("  {line}");
    }
    for c in &r.citations {
        println!("  — {} ({})", c.title, c.source);
    }
    for q in &r.quick_replies {
        println!("  ▸ {q}");
    }
}
