//! The lexical half of hybrid retrieval: an in-process BM25 index over every entry's text (FAQ
//! question, alternates and answer; a passage's heading and text), with the terms of
//! `answer::terms` (English words, codes such as "11.11" or "SKU-2041" whole, Chinese character
//! bigrams; every Chinese character too, for a question's characters no known bigram covers). It is
//! rebuilt from the store, the one source of truth, whenever the vector index is.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use crate::answer::terms::{han_chars, orphan_chars, terms};
use crate::error::{KbError, Result};
use crate::lang::is_han;

/// BM25 parameters (the usual defaults).
const K1: f32 = 1.2;
const B: f32 = 0.75;

/// One entry's searchable text.
#[derive(Debug, Clone)]
pub struct LexicalDoc {
    pub entry_id: i64,
    pub kb_id: i64,
    pub tags: Vec<String>,
    pub text: String,
}

/// An entry's lexical match: the BM25 score divided by the score of a text holding every query
/// term (so 1.0 means every term, rare ones included, is there; unknown query terms count
/// against the match).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LexicalHit {
    pub entry_id: i64,
    pub score: f32,
}

/// One entry in the index.
struct Doc {
    entry_id: i64,
    /// Length in terms.
    len: u32,
    tags: Vec<String>,
}

#[derive(Default)]
struct Inner {
    /// (kb, term) -> the term's number: postings are a list indexed by it.
    term_ids: HashMap<(i64, String), u32>,
    /// term number -> (document number, term frequency) for each document holding the term.
    postings: Vec<Vec<(u32, u32)>>,
    /// document number -> the entry.
    docs: Vec<Doc>,
    /// kb -> (entries, total length).
    kbs: HashMap<i64, (u32, u64)>,
}

/// The BM25 index.
#[derive(Default)]
pub struct LexicalIndex {
    inner: RwLock<Inner>,
}

impl LexicalIndex {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock_err() -> KbError {
        KbError::Index("lexical index lock poisoned".into())
    }

    /// Replaces the whole content (a rebuild from the store).
    pub fn replace_all(&self, docs: Vec<LexicalDoc>) -> Result<()> {
        let mut fresh = Inner::default();
        let mut counts: HashMap<String, u32> = HashMap::new();
        for d in docs {
            let terms = terms(&d.text);
            let kb = fresh.kbs.entry(d.kb_id).or_default();
            kb.0 += 1;
            kb.1 += terms.len() as u64;
            let doc = u32::try_from(fresh.docs.len())
                .map_err(|_| KbError::Index("too many entries for the lexical index".into()))?;
            fresh.docs.push(Doc {
                entry_id: d.entry_id,
                len: terms.len() as u32,
                tags: d.tags,
            });
            // Each distinct term once per entry, with its count: one lookup in the big map per
            // term instead of one per occurrence.
            counts.clear();
            for t in terms {
                *counts.entry(t).or_default() += 1;
            }
            // Every Chinese character too, for the query's orphan characters (not counted in
            // the length: they repeat what the bigrams hold).
            for c in han_chars(&d.text) {
                counts.entry(c).or_insert(1);
            }
            for (t, tf) in counts.drain() {
                let next = fresh.postings.len() as u32;
                let id = *fresh.term_ids.entry((d.kb_id, t)).or_insert(next);
                if id == next {
                    fresh.postings.push(Vec::new());
                }
                fresh.postings[id as usize].push((doc, tf));
            }
        }
        *self.inner.write().map_err(|_| Self::lock_err())? = fresh;
        Ok(())
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.inner.read().map(|m| m.docs.len()).unwrap_or(0)
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `k` best entries of `kb_id` for `query` (limited to entries with any of `tags` when
    /// given), best first; entries matching no query term are not returned.
    pub fn search(
        &self,
        kb_id: i64,
        tags: &[String],
        query: &str,
        k: usize,
    ) -> Result<Vec<LexicalHit>> {
        let m = self.inner.read().map_err(|_| Self::lock_err())?;
        let Some(&(n, total)) = m.kbs.get(&kb_id) else {
            return Ok(Vec::new());
        };
        let ordered = terms(query);
        let known = |t: &str| m.term_ids.contains_key(&(kb_id, t.to_string()));
        let straddling = straddling_bigrams(&ordered, known);
        let orphans = orphan_chars(query, known);
        let mut q = ordered;
        q.extend(orphans.iter().cloned());
        q.sort();
        q.dedup();
        if q.is_empty() || n == 0 {
            return Ok(Vec::new());
        }
        let n = n as f32;
        let avg = (total as f32 / n).max(1.0);
        let idf = |df: f32| (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
        let mut best_possible = 0.0;
        // Scores by document number, and the documents touched.
        let mut scores = vec![0f32; m.docs.len()];
        let mut touched: Vec<u32> = Vec::new();
        for t in &q {
            let postings = m
                .term_ids
                .get(&(kb_id, t.clone()))
                .map(|&id| &m.postings[id as usize]);
            let w = idf(postings.map_or(0.0, |p| p.len() as f32));
            // Unknown terms count against the match (a topic the base lacks), except bigrams
            // that only straddle two words.
            // An orphan character the base lacks adds nothing: its bigrams already count.
            let unknown_orphan = postings.is_none() && orphans.contains(t);
            if !straddling.contains(t) && !unknown_orphan {
                best_possible += w * (K1 + 1.0);
            }
            for &(doc, tf) in postings.into_iter().flatten() {
                let d = &m.docs[doc as usize];
                if !tags.is_empty() && !d.tags.iter().any(|x| tags.contains(x)) {
                    continue;
                }
                let tf = tf as f32;
                let norm = K1 * (1.0 - B + B * d.len as f32 / avg);
                let score = &mut scores[doc as usize];
                if *score == 0.0 {
                    touched.push(doc);
                }
                *score += w * tf * (K1 + 1.0) / (tf + norm);
            }
        }
        let mut hits: Vec<LexicalHit> = touched
            .into_iter()
            .map(|doc| LexicalHit {
                entry_id: m.docs[doc as usize].entry_id,
                score: (scores[doc as usize] / best_possible).min(1.0),
            })
            .collect();
        hits.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.entry_id.cmp(&b.entry_id))
        });
        hits.truncate(k);
        Ok(hits)
    }
}

/// The unknown Chinese bigrams of `terms` (in text order) that overlap a known neighbour: "分什"
/// in 积分什么 (积分 known) is an artefact of bigram segmentation, not a missing topic; "等于" in
/// 1+1等于几 with no known neighbour is a topic the knowledge base lacks.
fn straddling_bigrams(terms: &[String], known: impl Fn(&str) -> bool) -> HashSet<String> {
    let han_pair = |t: &str| t.chars().count() == 2 && t.chars().all(is_han);
    let overlaps = |a: &str, b: &str| a.chars().last() == b.chars().next();
    let mut out = HashSet::new();
    for (i, t) in terms.iter().enumerate() {
        if !han_pair(t) || known(t) {
            continue;
        }
        let before = i
            .checked_sub(1)
            .map(|j| &terms[j])
            .is_some_and(|p| han_pair(p) && known(p) && overlaps(p, t));
        let after = terms
            .get(i + 1)
            .is_some_and(|n| han_pair(n) && known(n) && overlaps(t, n));
        if before || after {
            out.insert(t.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(entry_id: i64, kb_id: i64, text: &str, tags: &[&str]) -> LexicalDoc {
        LexicalDoc {
            entry_id,
            kb_id,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            text: text.into(),
        }
    }

    fn index() -> LexicalIndex {
        let i = LexicalIndex::new();
        i.replace_all(vec![
            doc(
                1,
                1,
                "Is SKU-2041 in stock? The SKU-2041 teapot ships in May.",
                &["stock"],
            ),
            doc(
                2,
                1,
                "Singles' Day (11.11) dispatch takes 72 hours longer.",
                &["shipping"],
            ),
            doc(3, 1, "积分有效期至次年年底。", &[]),
            doc(4, 1, "Gift cards never expire.", &["payment"]),
            doc(5, 2, "SKU-2041 belongs to another knowledge base.", &[]),
        ])
        .expect("build");
        i
    }

    #[test]
    fn exact_terms_find_their_entries_within_one_knowledge_base() {
        let i = index();
        let hits = i.search(1, &[], "sku-2041", 5).expect("search");
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].entry_id, 1);
        assert!(hits[0].score > 0.5, "{hits:?}");
        assert_eq!(
            i.search(1, &[], "is 11.11 slower", 5).expect("search")[0].entry_id,
            2
        );
        assert_eq!(
            i.search(1, &[], "积分什么时候过期", 5).expect("search")[0].entry_id,
            3
        );
    }

    #[test]
    fn unknown_terms_lower_the_match_and_tags_filter() {
        let i = index();
        let full = i.search(1, &[], "gift cards expire", 5).expect("search")[0].score;
        let partial = i.search(1, &[], "gift laptops", 5).expect("search")[0].score;
        assert!(partial < full, "{partial} < {full}");
        assert!(i
            .search(1, &["shipping".into()], "gift cards", 5)
            .expect("search")
            .is_empty());
        assert!(i
            .search(1, &[], "the and of", 5)
            .expect("search")
            .is_empty());
        assert!(i.search(9, &[], "gift", 5).expect("search").is_empty());
    }

    #[test]
    fn a_character_lost_between_bigrams_still_finds_its_entry() {
        let i = LexicalIndex::new();
        i.replace_all(vec![
            doc(1, 1, "已拆封的茶叶不支持退货。", &[]),
            doc(2, 1, "茶叶请密封保存。", &[]),
        ])
        .expect("build");
        // 拆了 is no term of either entry; 拆 (an orphan) is one of entry 1's characters.
        let hits = i.search(1, &[], "茶叶拆了", 5).expect("search");
        assert_eq!(hits[0].entry_id, 1, "{hits:?}");
        assert!(hits[0].score > hits[1].score, "{hits:?}");
        // A character the knowledge base lacks adds nothing, and costs nothing beyond its
        // bigrams.
        let with = i.search(1, &[], "茶叶砸了", 5).expect("search");
        let without = i.search(1, &[], "茶叶了", 5).expect("search");
        assert!(with[0].score <= without[0].score, "{with:?} {without:?}");
    }

    #[test]
    fn bigrams_straddling_two_words_do_not_count_as_missing_topics() {
        // 积分什么时候过期: "分什" and "候过" only straddle words around the known 积分 and 过期…
        let known = |t: &str| ["积分", "过期"].contains(&t);
        let terms = crate::answer::terms::terms("积分什么时候过期");
        let straddling = straddling_bigrams(&terms, known);
        assert!(straddling.contains("分什"), "{straddling:?} of {terms:?}");
        assert!(!straddling.contains("积分"));
        // …while a topic the base lacks (等于) still lowers the match of 1+1等于几.
        let topic = straddling_bigrams(&crate::answer::terms::terms("1+1等于几"), known);
        assert!(topic.is_empty(), "{topic:?}");
    }
}
