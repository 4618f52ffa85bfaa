//! Retrieval training pairs from a knowledge base's own content: each FAQ entry's question and
//! alternates (as visitor questions) with its answer passage, and each document section's heading
//! with its passages, are one group; generic everyday requests are negatives. Fine-tuning the
//! encoder on these groups pulls a shop's phrasings towards the entry that answers them and pushes
//! neighbouring entries apart.

use super::TrainText;
use crate::embed::{BatchingEmbedder, TextRole};
use crate::error::Result;
use crate::ingest::{chunk, heading_in, EntryKind};
use crate::lang::Lang;
use crate::store::StoredEntry;

/// The groups of `entries` as training texts (label = group), with `negatives` as out-of-scope
/// texts; groups of one text are left out (they cannot form a pair).
pub fn retrieval_texts(
    stock: &BatchingEmbedder,
    entries: &[StoredEntry],
    negatives: &[&str],
) -> Result<Vec<TrainText>> {
    let mut out = Vec::new();
    let mut label = 0;
    for e in entries {
        let group = entry_group(e);
        if group.len() < 2 {
            continue;
        }
        for (text, role) in group {
            out.push(TrainText {
                ids: stock.tokenize(&text, role)?,
                label: Some(label),
            });
        }
        label += 1;
    }
    for n in negatives {
        out.push(TrainText {
            ids: stock.tokenize(n, TextRole::Query)?,
            label: None,
        });
    }
    Ok(out)
}

/// The texts that should land close to each other for one entry, each with its role, as the
/// import embeds them.
pub fn entry_group(e: &StoredEntry) -> Vec<(String, TextRole)> {
    match e.kind {
        EntryKind::Faq => std::iter::once(e.question.clone())
            .chain(e.alternates.iter().cloned())
            .filter(|q| !q.trim().is_empty())
            .map(|q| (q, TextRole::Query))
            .chain(std::iter::once((
                format!("{}\n{}", e.question, e.answer),
                TextRole::Passage,
            )))
            .collect(),
        // The section heading (in each of its languages) as the question a visitor would ask,
        // with the sentences of the section in that language under it.
        EntryKind::Chunk => {
            let section = e.question.rsplit(" > ").next().unwrap_or(&e.question);
            let sentences = chunk::sentences(&e.answer);
            let mut group = Vec::new();
            for lang in [Lang::Zh, Lang::En] {
                let heading = heading_in(section, lang);
                let mine: Vec<&String> = sentences
                    .iter()
                    .filter(|s| Lang::detect(s) == lang)
                    .collect();
                if mine.is_empty() || Lang::detect(heading) != lang {
                    continue;
                }
                group.push((heading.to_string(), TextRole::Query));
                group.extend(
                    mine.into_iter()
                        .map(|s| (format!("{heading}\n{s}"), TextRole::Passage)),
                );
            }
            group
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: EntryKind, question: &str, answer: &str, alternates: &[&str]) -> StoredEntry {
        StoredEntry {
            id: 1,
            kb_id: 1,
            key: "k".into(),
            kind,
            question: question.into(),
            answer: answer.into(),
            alternates: alternates.iter().map(|s| s.to_string()).collect(),
            tags: vec![],
            source: "s".into(),
        }
    }

    #[test]
    fn an_faq_groups_its_questions_with_its_answer() {
        let e = entry(
            EntryKind::Faq,
            "退货政策是什么？",
            "收货后30天内可无理由退货。",
            &["怎么退货", "能退吗"],
        );
        let g = entry_group(&e);
        let roles: Vec<TextRole> = g.iter().map(|(_, r)| *r).collect();
        assert_eq!(
            roles,
            [
                TextRole::Query,
                TextRole::Query,
                TextRole::Query,
                TextRole::Passage
            ]
        );
        assert_eq!(g[1].0, "怎么退货");
        assert_eq!(g[3].0, "退货政策是什么？\n收货后30天内可无理由退货。");
    }

    #[test]
    fn a_bilingual_section_groups_each_heading_with_its_own_language() {
        let e = entry(
            EntryKind::Chunk,
            "Shop policies / 店铺政策 > Loyalty points / 积分规则",
            "Points expire at the end of the next year. Every dollar earns one point.\n\n积分有效期至次年年底。",
            &[],
        );
        let g = entry_group(&e);
        let texts: Vec<&str> = g.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            texts,
            [
                "积分规则",
                "积分规则\n积分有效期至次年年底。",
                "Loyalty points",
                "Loyalty points\nPoints expire at the end of the next year.",
                "Loyalty points\nEvery dollar earns one point.",
            ]
        );
        assert_eq!(g[0].1, TextRole::Query);
        assert!(g[1..].iter().any(|(_, r)| *r == TextRole::Passage));
    }

    #[test]
    fn a_heading_in_one_language_only_groups_that_language() {
        let e = entry(
            EntryKind::Chunk,
            "Guide > Shipping",
            "We ship daily. 每天发货。",
            &[],
        );
        let g = entry_group(&e);
        assert_eq!(g.len(), 2, "{g:?}");
        assert_eq!(g[0].0, "Shipping");
    }
}
