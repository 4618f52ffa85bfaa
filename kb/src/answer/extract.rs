//! Extractive answers from document passages: the sentences that best answer the question, in the
//! visitor's language when the passage has both, with a neighbour kept for context, within a
//! length budget. Only text from the passages is ever returned.

use std::collections::{HashMap, HashSet};

use super::terms::{term_set, terms};
use crate::ingest::chunk::{join, sentences};
use crate::lang::Lang;
use crate::retrieve::Hit;

/// Length budget of an extract: about this many Chinese characters…
pub const MAX_ZH_CHARS: usize = 120;
/// …or English words (a single longer sentence is kept whole rather than cut).
pub const MAX_EN_WORDS: usize = 60;
/// Sentences at most in one extract.
const MAX_SENTENCES: usize = 3;
/// A best sentence shorter than this (zh chars / en words) takes a neighbour along.
const SHORT_ZH: usize = 30;
const SHORT_EN: usize = 12;
/// Weight of the passage's retrieval score against the sentence's lexical score.
const PASSAGE_WEIGHT: f32 = 4.0;
/// Added to the score of the sentence whose own vector matched the question best (about what
/// sharing two rare terms with the question scores).
const MATCHED_BONUS: f32 = 2.0;
/// An English answer of one sentence longer than this (words) is cut to the clauses that answer.
const LONG_EN_WORDS: usize = 20;
/// Words the cut keeps at most, and at least when the sentence has them.
const CLAUSE_WORDS: usize = 18;
const MIN_CLAUSE_WORDS: usize = 8;

/// The chosen sentences and the passage they came from (an index into the input).
#[derive(Debug, Clone, PartialEq)]
pub struct Extract {
    pub text: String,
    pub passage: usize,
    /// Whether the chosen sentence shares a content term with the question or is the sentence
    /// whose own vector matched it best (an extract with neither is offered, never given as the
    /// answer).
    pub grounded: bool,
}

struct Sentence {
    passage: usize,
    /// Position within its passage.
    pos: usize,
    text: String,
    terms: HashSet<String>,
    len: usize,
    /// The sentence whose own vector matched the query best (`Hit::matched`).
    matched: bool,
}

/// Picks the answer sentences for `query` from `passages` (best first).
pub fn extract(query: &str, lang: Lang, passages: &[&Hit]) -> Option<Extract> {
    let all = split(passages);
    if all.is_empty() {
        return None;
    }
    // Bilingual documents: keep the visitor's language when the passages have it.
    let in_lang: Vec<&Sentence> = all
        .iter()
        .filter(|s| Lang::detect(&s.text) == lang)
        .collect();
    let pool: Vec<&Sentence> = if in_lang.is_empty() {
        all.iter().collect()
    } else {
        in_lang
    };
    let q = term_set(query);
    let (scores, lexical) = score(&q, &pool, passages);
    let best = (0..pool.len()).max_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(b.cmp(&a)))?;
    let mut chosen = vec![best];
    let short = |s: &Sentence| match lang {
        Lang::Zh => s.len < SHORT_ZH,
        Lang::En => s.len < SHORT_EN,
    };
    let budget = match lang {
        Lang::Zh => MAX_ZH_CHARS,
        Lang::En => MAX_EN_WORDS,
    };
    // Grow with the better-scoring neighbour (same passage, adjacent) while it helps and fits.
    while chosen.len() < MAX_SENTENCES {
        let used: usize = chosen.iter().map(|&i| pool[i].len).sum();
        let first = chosen.iter().map(|&i| pool[i].pos).min().unwrap_or(0);
        let last = chosen.iter().map(|&i| pool[i].pos).max().unwrap_or(0);
        let p = pool[best].passage;
        let neighbour = (0..pool.len())
            .filter(|&i| pool[i].passage == p && !chosen.contains(&i))
            .filter(|&i| pool[i].pos + 1 == first || pool[i].pos == last + 1)
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(b.cmp(&a)));
        let Some(n) = neighbour else { break };
        let helps = (scores[n] > 0.0 && scores[n] > 0.5 * scores[best])
            || (chosen.len() == 1 && short(pool[best]));
        let fits = used + pool[n].len <= budget;
        if !(helps && fits) {
            break;
        }
        chosen.push(n);
    }
    chosen.sort_by_key(|&i| pool[i].pos);
    let parts: Vec<String> = chosen.iter().map(|&i| pool[i].text.clone()).collect();
    let text = match (lang, chosen.as_slice()) {
        (Lang::En, [only]) if pool[*only].len > LONG_EN_WORDS => clauses(&pool[*only].text, &q),
        _ => join(&parts),
    };
    Some(Extract {
        text,
        passage: pool[best].passage,
        grounded: lexical[best] > 0.0 || pool[best].matched,
    })
}

/// A long English sentence cut to the clause sharing most terms with the question and its
/// neighbours, within `CLAUSE_WORDS` (text taken verbatim; "…" marks a cut).
fn clauses(sentence: &str, query: &HashSet<String>) -> String {
    // Clause boundaries: after a comma, semicolon, colon or dash followed by a space.
    let mut bounds = vec![0];
    let chars: Vec<(usize, char)> = sentence.char_indices().collect();
    for w in chars.windows(2) {
        if matches!(w[0].1, ',' | ';' | ':' | '–' | '—') && w[1].1 == ' ' {
            bounds.push(w[1].0 + 1);
        }
    }
    bounds.push(sentence.len());
    let pieces: Vec<&str> = bounds.windows(2).map(|b| &sentence[b[0]..b[1]]).collect();
    if pieces.len() < 2 {
        return sentence.to_string();
    }
    let words = |i: usize| pieces[i].split_whitespace().count();
    let overlap = |i: usize| {
        terms(pieces[i])
            .into_iter()
            .filter(|t| query.contains(t))
            .count()
    };
    let Some(best) = (0..pieces.len()).max_by(|&a, &b| overlap(a).cmp(&overlap(b)).then(b.cmp(&a)))
    else {
        return sentence.to_string();
    };
    let (mut first, mut last) = (best, best);
    let mut used = words(best);
    // Grow towards the neighbour that shares more (the earlier one on a tie), while it fits or
    // the clause is still too short to stand alone.
    loop {
        let before = first.checked_sub(1);
        let after = (last + 1 < pieces.len()).then_some(last + 1);
        let next = match (before, after) {
            (Some(b), Some(a)) => {
                if overlap(a) > overlap(b) {
                    a
                } else {
                    b
                }
            }
            (Some(b), None) => b,
            (None, Some(a)) => a,
            (None, None) => break,
        };
        if used + words(next) > CLAUSE_WORDS && used >= MIN_CLAUSE_WORDS {
            break;
        }
        used += words(next);
        first = first.min(next);
        last = last.max(next);
    }
    let cut = sentence[bounds[first]..bounds[last + 1]]
        .trim()
        .trim_end_matches([',', ';', ':', '–', '—'])
        .trim_end();
    let mut out = String::new();
    if first > 0 {
        out.push('…');
    }
    out.push_str(cut);
    if last + 1 < pieces.len() {
        out.push('…');
    }
    out
}

/// Every sentence of every passage once (chunks overlap, so a sentence may repeat).
fn split(passages: &[&Hit]) -> Vec<Sentence> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (p, hit) in passages.iter().enumerate() {
        for (pos, text) in sentences(&hit.answer).into_iter().enumerate() {
            if !seen.insert(text.clone()) {
                continue;
            }
            let len = match Lang::detect(&text) {
                Lang::Zh => text.chars().filter(|c| !c.is_whitespace()).count(),
                Lang::En => text.split_whitespace().count(),
            };
            out.push(Sentence {
                passage: p,
                pos,
                matched: hit.matched.as_deref() == Some(text.as_str()),
                terms: terms(&text).into_iter().collect(),
                text,
                len,
            });
        }
    }
    out
}

/// BM25-style overlap of each sentence with the query terms (IDF over the candidate sentences),
/// and that plus the passage's retrieval score relative to the best passage.
fn score(query: &HashSet<String>, pool: &[&Sentence], passages: &[&Hit]) -> (Vec<f32>, Vec<f32>) {
    let n = pool.len() as f32;
    let mut df: HashMap<&str, f32> = HashMap::new();
    for s in pool {
        for t in query {
            if s.terms.contains(t) {
                *df.entry(t.as_str()).or_default() += 1.0;
            }
        }
    }
    let avg_len = pool
        .iter()
        .map(|s| s.terms.len().max(1) as f32)
        .sum::<f32>()
        / n.max(1.0);
    let top = passages.first().map_or(0.0, |h| h.score);
    let lexical: Vec<f32> = pool
        .iter()
        .map(|s| {
            let norm = 0.5 + 0.5 * s.terms.len().max(1) as f32 / avg_len;
            query
                .iter()
                .filter(|t| s.terms.contains(*t))
                .map(|t| {
                    let d = df.get(t.as_str()).copied().unwrap_or(0.0);
                    (1.0 + (n - d + 0.5) / (d + 0.5)).ln() * 2.2 / (1.0 + 1.2 * norm)
                })
                .sum()
        })
        .collect();
    let total = pool
        .iter()
        .zip(&lexical)
        .map(|(s, l)| {
            let matched = if s.matched { MATCHED_BONUS } else { 0.0 };
            l + matched + PASSAGE_WEIGHT * (passages[s.passage].score - top)
        })
        .collect();
    (total, lexical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(text: &str, score: f32) -> Hit {
        Hit {
            id: "doc:p.md#0".into(),
            question: "Policy".into(),
            answer: text.into(),
            score,
            lexical: 0.0,
            source: "p.md > Policy".into(),
            kind: "chunk".into(),
            tags: vec![],
            matched: None,
        }
    }

    const POINTS: &str =
        "Every 1 yuan spent earns 1 point. 100 points are worth 1 yuan at checkout. \
        Points expire at the end of the following calendar year.\n\
        每消费 1 元积 1 分，100 积分可抵扣 1 元。积分有效期至次年年底。";

    #[test]
    fn picks_the_answering_sentence_in_the_visitors_language() {
        let p = passage(POINTS, 0.5);
        let e = extract("When do my points expire?", Lang::En, &[&p]).expect("extract");
        assert!(e.text.contains("Points expire at the end"), "{}", e.text);
        assert!(!e.text.contains('积'), "{}", e.text);
        let e = extract("积分什么时候过期", Lang::Zh, &[&p]).expect("extract");
        assert!(e.text.contains("积分有效期至次年年底"), "{}", e.text);
        assert!(!e.text.contains("Points"), "{}", e.text);
    }

    #[test]
    fn stays_within_the_budget_and_keeps_order() {
        let long: String = (0..20)
            .map(|i| format!("Rule {i} says the warehouse opens at {i} am on weekdays. "))
            .collect();
        let p = passage(&long, 0.6);
        let e = extract("when does the warehouse open", Lang::En, &[&p]).expect("extract");
        assert!(
            e.text.split_whitespace().count() <= MAX_EN_WORDS,
            "{}",
            e.text
        );
        assert!(!e.text.is_empty());
    }

    #[test]
    fn a_long_english_sentence_is_cut_to_the_clauses_that_answer() {
        let p = passage(
            "The museum, which was founded in 1851 by a group of merchants from the northern \
             provinces, moved to its current building on the river in 1902, after a fire had \
             destroyed the old hall, and it now holds more than two million objects.",
            0.6,
        );
        let e = extract(
            "When did the museum move to its current building?",
            Lang::En,
            &[&p],
        )
        .expect("extract");
        assert!(
            e.text
                .contains("moved to its current building on the river in 1902"),
            "{}",
            e.text
        );
        assert!(
            e.text.split_whitespace().count() <= CLAUSE_WORDS + 1,
            "{}",
            e.text
        );
        assert!(e.text.ends_with('…'), "{}", e.text);
        // Short sentences stay whole.
        let p = passage("Points expire at the end of the following year.", 0.6);
        let e = extract("do points expire", Lang::En, &[&p]).expect("extract");
        assert_eq!(e.text, "Points expire at the end of the following year.");
    }

    #[test]
    fn the_sentence_whose_own_vector_matched_answers_without_shared_words() {
        const AUTHENTIC: &str = "Every tea comes directly from its tea garden. Every batch has a \
            certificate of origin. If an item is proven to be counterfeit, we refund ten times \
            the purchase price.";
        let mut p = passage(AUTHENTIC, 0.5);
        let e = extract("what if I get a fake product", Lang::En, &[&p]).expect("extract");
        assert!(
            !e.grounded,
            "no shared term and no matched sentence: {}",
            e.text
        );
        p.matched = Some(
            "If an item is proven to be counterfeit, we refund ten times the purchase price."
                .into(),
        );
        let e = extract("what if I get a fake product", Lang::En, &[&p]).expect("extract");
        assert!(e.grounded);
        assert!(
            e.text.contains("ten times the purchase price"),
            "{}",
            e.text
        );
        assert!(!e.text.contains("tea garden"), "{}", e.text);
    }

    #[test]
    fn a_better_passage_wins_over_a_weaker_one_with_the_same_words() {
        let weak = passage("Gift cards never expire.", 0.40);
        let strong = passage("Points expire at the end of the following year.", 0.55);
        let e = extract("do points expire", Lang::En, &[&strong, &weak]).expect("extract");
        assert_eq!(e.passage, 0);
        assert!(e.text.starts_with("Points expire"));
        assert!(e.grounded);
        let e = extract("capital of France", Lang::En, &[&strong]).expect("extract");
        assert!(!e.grounded, "no shared term: {}", e.text);
    }
}
