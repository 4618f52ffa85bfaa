//! Composing the bot's reply from a retrieval: which hits answer (FAQ entries, or sentences
//! extracted from document passages), which are only offered as choices, and when to stay quiet.
//! FAQ entries and document passages have their own thresholds (their scores differ: a question
//! against a question scores higher than a question against a paragraph).

pub mod extract;
pub mod terms;

use serde::{Deserialize, Serialize};

use crate::ingest::heading_in;
use crate::lang::Lang;
use crate::retrieve::{Band, Hit, Thresholds};

/// Most quick replies a `suggest` reply offers.
pub const MAX_CHOICES: usize = 3;
/// Most FAQ entries combined in one answer.
const MAX_COMBINED: usize = 2;
/// Most passages the extractive answer reads from.
const MAX_PASSAGES: usize = 3;
/// Passages scoring within this of the best one are read too.
const PASSAGE_SPREAD: f32 = 0.06;

/// How a knowledge base answers: from FAQ entries only, also with sentences extracted from its
/// documents (the default), or through an LLM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AnswerMode {
    Faq,
    #[default]
    Extractive,
    /// An LLM writes the reply from the retrieved passages (the server's optional backend); the
    /// extractive answer is composed too, as the fallback.
    Llm,
}

impl AnswerMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerMode::Faq => "faq",
            AnswerMode::Extractive => "extractive",
            AnswerMode::Llm => "llm",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "faq" => Some(AnswerMode::Faq),
            "extractive" => Some(AnswerMode::Extractive),
            "llm" => Some(AnswerMode::Llm),
            _ => None,
        }
    }
}

/// What a reply cites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    /// The entry's id (a FAQ id, or `doc:<file>#n` for a passage).
    pub id: String,
    /// The FAQ question, or the document's heading path ("Policies › Loyalty points").
    pub title: String,
    pub source: String,
    pub score: f32,
}

/// The composed reply. `text` is `None` when the knowledge base has nothing to say (the caller
/// falls back or hands off).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reply {
    pub band: Band,
    /// Where the text came from: FAQ answers, or sentences extracted from documents.
    pub mode: AnswerMode,
    pub text: Option<String>,
    pub citations: Vec<Citation>,
    pub quick_replies: Vec<String>,
}

/// Which hits the reply is made of.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan<'a> {
    /// One FAQ entry, or a few compatible ones (same topic tag), answered together.
    Faq(Vec<&'a Hit>),
    /// Document passages confident enough to answer from.
    Document(Vec<&'a Hit>),
    /// FAQ entries offered as quick replies.
    Choices(Vec<&'a Hit>),
    /// Passages relevant enough to offer ("this may help"), not to answer.
    Passage(Vec<&'a Hit>),
    Nothing,
}

impl Plan<'_> {
    pub fn band(&self) -> Band {
        match self {
            Plan::Faq(_) | Plan::Document(_) => Band::Answer,
            Plan::Choices(_) | Plan::Passage(_) => Band::Suggest,
            Plan::Nothing => Band::None,
        }
    }
}

fn is_faq(h: &Hit) -> bool {
    h.kind == "faq"
}

fn speaks(h: &Hit, lang: Option<Lang>) -> bool {
    lang.is_none_or(|l| Lang::detect(&h.answer) == l)
}

/// Decides which hits (sorted best first) make the reply. With `lang`, entries in the visitor's
/// language are preferred over equally good ones in the other language.
pub fn plan<'a>(hits: &'a [Hit], t: &Thresholds, lang: Option<Lang>, mode: AnswerMode) -> Plan<'a> {
    let faqs: Vec<&Hit> = hits.iter().filter(|h| is_faq(h)).collect();
    let docs: Vec<&Hit> = if mode == AnswerMode::Faq {
        Vec::new()
    } else {
        hits.iter().filter(|h| !is_faq(h)).collect()
    };
    let doc_answer = docs.first().filter(|d| d.score >= t.doc_answer);
    // A passage that outscores every FAQ entry answers, although passages usually score lower.
    let doc_leads = doc_answer.is_some_and(|d| faqs.first().is_none_or(|f| d.score > f.score));
    if !doc_leads {
        if let Some(p) = faq_answer(&faqs, t, lang) {
            return p;
        }
    }
    if let Some(top) = doc_answer {
        return Plan::Document(near(&docs, top.score));
    }
    if faqs.first().is_some_and(|f| f.score >= t.suggest) {
        let offered: Vec<&Hit> = faqs
            .iter()
            .copied()
            .filter(|h| h.score >= t.suggest)
            .collect();
        return Plan::Choices(choices(offered, lang));
    }
    if let Some(top) = docs.first().filter(|d| d.score >= t.doc_suggest) {
        return Plan::Passage(near(&docs, top.score));
    }
    Plan::Nothing
}

/// The FAQ answer, if the best entry clears the answer threshold: alone when it leads every
/// different answer by the margin, together with close compatible entries, else choices.
fn faq_answer<'a>(faqs: &[&'a Hit], t: &Thresholds, lang: Option<Lang>) -> Option<Plan<'a>> {
    let top = *faqs.first().filter(|f| f.score >= t.answer)?;
    // Entries close to the best one, one per distinct answer.
    let mut close: Vec<&Hit> = Vec::new();
    for h in faqs {
        let near_top = top.score - h.score < t.margin && h.score >= t.suggest;
        if near_top && !close.iter().any(|c| c.answer.trim() == h.answer.trim()) {
            close.push(h);
        }
    }
    // The visitor's language first: a same-language entry that clears the answer threshold
    // beats a slightly better one in the other language.
    if !speaks(top, lang) {
        if let Some(same) = faqs.iter().find(|h| speaks(h, lang) && h.score >= t.answer) {
            close.retain(|h| speaks(h, lang));
            if close.is_empty() {
                close.push(same);
            }
        }
    } else {
        close.retain(|h| speaks(h, lang));
    }
    if close.len() <= 1 {
        return Some(Plan::Faq(vec![close.first().copied().unwrap_or(top)]));
    }
    let first = close[0];
    let compatible: Vec<&Hit> = close
        .iter()
        .copied()
        .filter(|h| h.tags.iter().any(|tag| first.tags.contains(tag)))
        .take(MAX_COMBINED)
        .collect();
    if compatible.len() >= 2 {
        return Some(Plan::Faq(compatible));
    }
    // A rival on another topic that holds under half of the question's wording the best entry
    // holds is no real alternative, however close its score (the best entry always stays).
    close.retain(|h| h.lexical * 2.0 >= first.lexical);
    if close.len() == 1 {
        return Some(Plan::Faq(close));
    }
    Some(Plan::Choices(choices(close, lang)))
}

/// Up to `MAX_CHOICES` entries with distinct questions, the visitor's language first.
fn choices(hits: Vec<&Hit>, lang: Option<Lang>) -> Vec<&Hit> {
    let (mut same, other): (Vec<&Hit>, Vec<&Hit>) = hits.into_iter().partition(|h| speaks(h, lang));
    if same.is_empty() {
        same = other;
    }
    let mut out: Vec<&Hit> = Vec::new();
    for h in same {
        if out.len() < MAX_CHOICES && !out.iter().any(|o| o.question == h.question) {
            out.push(h);
        }
    }
    out
}

fn near<'a>(docs: &[&'a Hit], top: f32) -> Vec<&'a Hit> {
    docs.iter()
        .copied()
        .filter(|d| top - d.score <= PASSAGE_SPREAD)
        .take(MAX_PASSAGES)
        .collect()
}

/// The citation for a hit; a passage is titled by its heading path in the visitor's language
/// where a heading is bilingual ("Loyalty points / 积分规则").
pub fn citation(h: &Hit, lang: Lang) -> Citation {
    let title = if is_faq(h) {
        h.question.clone()
    } else {
        h.question
            .split(" > ")
            .map(|part| heading_in(part, lang))
            .collect::<Vec<_>>()
            .join(" › ")
    };
    Citation {
        id: h.id.clone(),
        title,
        source: h.source.clone(),
        score: h.score,
    }
}

/// Composes the reply to `query` (in `lang`) from its hits, sorted best first.
pub fn compose(query: &str, lang: Lang, hits: &[Hit], t: &Thresholds, mode: AnswerMode) -> Reply {
    let p = plan(hits, t, Some(lang), mode);
    let band = p.band();
    let reply = |band, mode, text: Option<String>, cited: Vec<&Hit>, quick: Vec<String>| Reply {
        band,
        mode,
        text,
        citations: cited.iter().map(|h| citation(h, lang)).collect(),
        quick_replies: quick,
    };
    match p {
        Plan::Faq(entries) => {
            let text = entries
                .iter()
                .map(|h| h.answer.trim())
                .collect::<Vec<_>>()
                .join("\n\n");
            reply(band, AnswerMode::Faq, Some(text), entries, vec![])
        }
        Plan::Document(passages) | Plan::Passage(passages) => {
            let Some(e) = extract::extract(query, lang, &passages) else {
                return reply(band, AnswerMode::Extractive, None, vec![], vec![]);
            };
            // A passage answers only through a sentence that shares a term with the question.
            let band = if e.grounded { band } else { Band::Suggest };
            let text = if band == Band::Answer {
                e.text
            } else {
                format!(
                    "{}\n\n{}",
                    lang.pick("这段资料可能对您有帮助：", "This may help:"),
                    e.text
                )
            };
            reply(
                band,
                AnswerMode::Extractive,
                Some(text),
                vec![passages[e.passage]],
                vec![],
            )
        }
        Plan::Choices(entries) => {
            let quick = entries.iter().map(|h| h.question.clone()).collect();
            let text = lang.pick(
                "我不太确定您的意思，您是想问以下问题吗？",
                "I'm not sure I understood. Did you mean one of these?",
            );
            reply(band, AnswerMode::Faq, Some(text.to_string()), vec![], quick)
        }
        Plan::Nothing => reply(band, mode, None, vec![], vec![]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faq(id: &str, q: &str, a: &str, score: f32, tags: &[&str]) -> Hit {
        Hit {
            id: id.into(),
            question: q.into(),
            answer: a.into(),
            score,
            lexical: 0.0,
            source: "faq.csv".into(),
            kind: "faq".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            matched: None,
        }
    }

    fn doc(id: &str, text: &str, score: f32) -> Hit {
        Hit {
            id: id.into(),
            question: "Shop policies / 店铺政策 > Loyalty points / 积分规则".into(),
            answer: text.into(),
            score,
            lexical: 0.0,
            source: "policy.md > Loyalty points".into(),
            kind: "chunk".into(),
            tags: vec![],
            matched: None,
        }
    }

    const T: Thresholds = Thresholds {
        answer: 0.55,
        suggest: 0.40,
        margin: 0.04,
        doc_answer: 0.45,
        doc_suggest: 0.38,
    };

    #[test]
    fn one_clear_faq_entry_answers_with_its_citation() {
        let hits = [
            faq(
                "ship",
                "When will my order ship?",
                "Same day before 4 pm.",
                0.8,
                &["shipping"],
            ),
            faq("pay", "How can I pay?", "Cards.", 0.5, &["payment"]),
        ];
        let r = compose(
            "when do you ship",
            Lang::En,
            &hits,
            &T,
            AnswerMode::Extractive,
        );
        assert_eq!(r.band, Band::Answer);
        assert_eq!(r.mode, AnswerMode::Faq);
        assert_eq!(r.text.as_deref(), Some("Same day before 4 pm."));
        assert_eq!(r.citations[0].id, "ship");
    }

    #[test]
    fn close_compatible_entries_are_answered_together_incompatible_ones_offered() {
        let hits = [
            faq(
                "t",
                "When will my order ship?",
                "Ships the same day.",
                0.70,
                &["shipping"],
            ),
            faq(
                "d",
                "How long does delivery take?",
                "3-5 days.",
                0.68,
                &["shipping"],
            ),
            faq("g", "Gift cards?", "From ¥100.", 0.67, &["payment"]),
        ];
        let r = compose(
            "how long does shipping take",
            Lang::En,
            &hits,
            &T,
            AnswerMode::Extractive,
        );
        assert_eq!(r.band, Band::Answer);
        assert_eq!(r.text.as_deref(), Some("Ships the same day.\n\n3-5 days."));
        assert_eq!(r.citations.len(), 2);
        let hits = [
            faq(
                "t",
                "When will my order ship?",
                "Ships the same day.",
                0.70,
                &["shipping"],
            ),
            faq("g", "Gift cards?", "From ¥100.", 0.68, &["payment"]),
        ];
        let r = compose("ship a gift", Lang::En, &hits, &T, AnswerMode::Extractive);
        assert_eq!(r.band, Band::Suggest);
        assert_eq!(
            r.quick_replies,
            vec!["When will my order ship?", "Gift cards?"]
        );
    }

    #[test]
    fn a_close_rival_on_another_topic_without_the_questions_wording_is_no_alternative() {
        let worded = |mut h: Hit, lexical: f32| {
            h.lexical = lexical;
            h
        };
        let returns = worded(
            faq(
                "r",
                "怎么申请退货？",
                "未拆封的茶叶可以退货。",
                0.63,
                &["returns"],
            ),
            0.22,
        );
        let storage = |lexical| {
            worded(
                faq("s", "茶叶怎么保存？", "密封避光。", 0.61, &["tea"]),
                lexical,
            )
        };
        let reply = |rival_wording| {
            let hits = [returns.clone(), storage(rival_wording)];
            compose(
                "茶叶拆了还能退吗",
                Lang::Zh,
                &hits,
                &T,
                AnswerMode::Extractive,
            )
        };
        // 茶叶拆了还能退吗: the storage entry scores close but holds little of the wording.
        let r = reply(0.08);
        assert_eq!(r.band, Band::Answer);
        assert_eq!(r.citations.len(), 1);
        assert_eq!(r.citations[0].id, "r");
        // A rival holding as much of the wording stays a real choice.
        let r = reply(0.2);
        assert_eq!(r.band, Band::Suggest);
        assert_eq!(r.quick_replies.len(), 2);
    }

    #[test]
    fn the_visitors_language_wins_among_good_entries() {
        let hits = [
            faq("zh", "多久发货？", "当天发货。", 0.72, &["shipping"]),
            faq(
                "en",
                "When will my order ship?",
                "Same day.",
                0.70,
                &["shipping"],
            ),
        ];
        let r = compose(
            "when do you ship",
            Lang::En,
            &hits,
            &T,
            AnswerMode::Extractive,
        );
        assert_eq!(r.text.as_deref(), Some("Same day."));
        let r = compose("多久发货", Lang::Zh, &hits, &T, AnswerMode::Extractive);
        assert_eq!(r.text.as_deref(), Some("当天发货。"));
    }

    #[test]
    fn documents_answer_with_extracted_sentences_and_a_heading_citation() {
        let text = "Every 1 yuan spent earns 1 point. Points expire at the end of the following calendar year.\n积分有效期至次年年底。";
        let hits = [
            doc("doc:policy.md#3", text, 0.50),
            faq("g", "Gift cards?", "Never expire.", 0.45, &[]),
        ];
        let r = compose(
            "when do points expire",
            Lang::En,
            &hits,
            &T,
            AnswerMode::Extractive,
        );
        assert_eq!(r.band, Band::Answer);
        assert_eq!(r.mode, AnswerMode::Extractive);
        assert!(
            r.text
                .as_deref()
                .is_some_and(|t| t.contains("Points expire")),
            "{r:?}"
        );
        assert_eq!(r.citations[0].title, "Shop policies › Loyalty points");
        let r = compose("积分多久过期", Lang::Zh, &hits, &T, AnswerMode::Extractive);
        assert_eq!(r.text.as_deref(), Some("积分有效期至次年年底。"));
        assert_eq!(r.citations[0].title, "店铺政策 › 积分规则");
        // FAQ-only mode ignores documents: the gift card entry is only a choice.
        let r = compose(
            "when do points expire",
            Lang::En,
            &hits,
            &T,
            AnswerMode::Faq,
        );
        assert_eq!(r.band, Band::Suggest);
        assert!(r.citations.is_empty());
    }

    #[test]
    fn weak_hits_stay_quiet() {
        let hits = [
            faq("g", "Gift cards?", "From ¥100.", 0.30, &[]),
            doc("doc:p#0", "Points expire.", 0.30),
        ];
        let r = compose(
            "do you sell laptops",
            Lang::En,
            &hits,
            &T,
            AnswerMode::Extractive,
        );
        assert_eq!(r.band, Band::None);
        assert_eq!(r.text, None);
        assert!(r.citations.is_empty());
    }
}
