//! Content terms of a text for lexical matching: English words (lower-cased, light suffix
//! stripping, stop words dropped), numbers and codes kept whole ("11.11", "sku-2041"), and Chinese
//! as overlapping character bigrams (question words such as 什么/怎么 dropped), chat spellings read
//! as the words they stand for (`colloquial`). No dictionary is needed, so any Chinese text
//! segments the same way at import and at query time. A question's characters that no bigram known
//! to the index covers (`orphan_chars`) are terms of their own.

use std::collections::HashSet;
use std::sync::OnceLock;

use crate::lang::is_han;

/// English function words and question words that say nothing about the topic.
const EN_STOP: &[&str] = &[
    "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be",
    "because", "been", "before", "but", "by", "can", "could", "did", "do", "does", "for", "from",
    "get", "got", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "just",
    "me", "my", "of", "on", "or", "our", "please", "so", "than", "that", "the", "their", "them",
    "then", "there", "these", "they", "this", "to", "too", "u", "us", "was", "we", "were", "what",
    "when", "where", "which", "who", "whom", "why", "will", "with", "would", "you", "your",
    "yours", "hi", "hello", "hey", "thanks", "thank", "pls", "plz", "want", "need", "like", "know",
    "tell", "there's", "it's", "i'm", "don't", "doesn't", "im", "dont", "s", "t", "many", "much",
    "long", "some", "should", "way", "ok", "okay", "yes", "no", "not", "still", "there", "here",
    "now",
];

/// Chinese bigrams that only frame a question or a request.
const ZH_STOP: &[&str] = &[
    "什么", "怎么", "如何", "可以", "可不", "不可", "以吗", "我们", "你们", "是否", "多少", "哪些",
    "为什", "为何", "请问", "一下", "这个", "那个", "的话", "能不", "不能", "吗？", "么时", "么办",
    "怎样", "我的", "你的", "有没", "没有", "是不", "不是", "我想", "想问", "问一", "么样", "哪里",
    "哪个", "时候",
];

/// The content terms of `text`, in order of appearance (repeats kept).
pub fn terms(text: &str) -> Vec<String> {
    // Chat spellings count as the words they stand for (啥 is 什么, a question word).
    let text = crate::colloquial::standard(text);
    let mut out = Vec::new();
    let mut word = String::new();
    let mut han: Vec<char> = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if is_han(c) {
            flush_word(&mut word, &mut out);
            han.push(c);
            continue;
        }
        flush_han(&mut han, &mut out);
        let joins_number = c == '.'
            && word.chars().last().is_some_and(|p| p.is_ascii_digit())
            && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit());
        let joins_code = c == '-'
            && !word.is_empty()
            && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric())
            && (word.chars().any(|p| p.is_ascii_digit())
                || chars.get(i + 1).is_some_and(|n| n.is_ascii_digit()));
        if c.is_alphanumeric() || c == '\'' && !word.is_empty() || joins_number || joins_code {
            word.extend(c.to_lowercase());
        } else {
            flush_word(&mut word, &mut out);
        }
    }
    flush_word(&mut word, &mut out);
    flush_han(&mut han, &mut out);
    out
}

/// Characters that carry no topic on their own (particles, pronouns, copulas, auxiliaries).
const ZH_STOP_CHARS: &str =
    "的了吗呢啊吧呀嘛么是有在我你他她它们这那就还也都和与或及被把给让要会能可以想请问什怎哪几多少";

/// The Chinese characters of `text` (chat spellings standardised), each once: the index side of
/// `orphan_chars`.
pub fn han_chars(text: &str) -> HashSet<String> {
    crate::colloquial::standard(text)
        .chars()
        .filter(|&c| is_han(c))
        .map(String::from)
        .collect()
}

/// The content characters of `text` that no bigram term known to an index covers (`known`):
/// 拆 in 茶叶拆了还能退吗 when the index holds 拆封 but neither 叶拆 nor 拆了. Such a character
/// still says what the question is about, though bigram segmentation lost it. Characters of
/// question-word bigrams (什么, 时候) and particles are not content.
pub fn orphan_chars(text: &str, known: impl Fn(&str) -> bool) -> Vec<String> {
    let text = crate::colloquial::standard(text);
    let chars: Vec<char> = text.chars().collect();
    // pairs[i]: the Chinese bigram starting at character i, if any.
    let pairs: Vec<Option<String>> = chars
        .iter()
        .zip(chars.iter().skip(1))
        .map(|(&a, &b)| (is_han(a) && is_han(b)).then(|| [a, b].iter().collect()))
        .collect();
    let pair = |i: usize| pairs.get(i).and_then(Option::as_deref);
    let mut out: Vec<String> = Vec::new();
    for (i, &c) in chars.iter().enumerate() {
        if !is_han(c) || ZH_STOP_CHARS.contains(c) {
            continue;
        }
        let around = [i.checked_sub(1).and_then(pair), pair(i)];
        let covered = around
            .iter()
            .flatten()
            .any(|&b| known(b) || stop_words().contains(b));
        let lone = around.iter().all(Option::is_none);
        let s = c.to_string();
        if !covered && !lone && !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// The distinct content terms of `text`.
pub fn term_set(text: &str) -> HashSet<String> {
    terms(text).into_iter().collect()
}

/// The stop lists as sets (a term is looked up for every word and bigram of every passage).
fn stop_words() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| EN_STOP.iter().chain(ZH_STOP).copied().collect())
}

fn flush_word(word: &mut String, out: &mut Vec<String>) {
    let w = word.trim_end_matches('\'');
    if !w.is_empty() && !stop_words().contains(w) {
        let stem = stem(w);
        if !stem.is_empty() {
            out.push(stem);
        }
    }
    word.clear();
}

fn flush_han(han: &mut Vec<char>, out: &mut Vec<String>) {
    if han.len() == 1 {
        // A lone ideograph between Latin text or punctuation ("买 iPhone") is still a term.
        out.push(han[0].to_string());
    }
    let mut bigram = String::new();
    for pair in han.windows(2) {
        bigram.clear();
        bigram.extend(pair);
        if !stop_words().contains(bigram.as_str()) {
            out.push(bigram.clone());
        }
    }
    han.clear();
}

/// Light English suffix stripping so "points"/"point", "expires"/"expired"/"expire",
/// "shipping"/"ship", "returned"/"return" meet. Words with digits are codes and stay whole.
fn stem(w: &str) -> String {
    if w.chars().any(|c| c.is_ascii_digit()) || !w.is_ascii() {
        return w.to_string();
    }
    let w = w.strip_suffix("'s").unwrap_or(w);
    let cut = |suffix: &str| w.strip_suffix(suffix).filter(|s| s.len() >= 3);
    let base = if let Some(s) = cut("ies") {
        format!("{s}y")
    } else if let Some(s) = cut("ing").or_else(|| cut("ed")) {
        undouble(s)
    } else if ["sses", "shes", "ches", "xes"]
        .iter()
        .any(|x| w.ends_with(x))
    {
        w[..w.len() - 2].to_string()
    } else if w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") {
        w[..w.len() - 1].to_string()
    } else {
        w.to_string()
    };
    match base.strip_suffix('e') {
        Some(s) if s.len() >= 4 => s.to_string(),
        _ => base,
    }
}

/// "shipp" -> "ship", "stopp" -> "stop" (after stripping -ing/-ed).
fn undouble(s: &str) -> String {
    let b = s.as_bytes();
    let n = b.len();
    if n >= 4 && b[n - 1] == b[n - 2] && !matches!(b[n - 1], b'l' | b's' | b'z') {
        return s[..n - 1].to_string();
    }
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_words_are_normalised_and_stop_words_dropped() {
        assert_eq!(terms("When do my Points expire?"), vec!["point", "expir"]);
        assert_eq!(
            terms("expired expires expiring"),
            vec!["expir", "expir", "expir"]
        );
        assert_eq!(
            terms("Points expire at the end"),
            vec!["point", "expir", "end"]
        );
        assert_eq!(
            terms("shipping shipped ships"),
            vec!["ship", "ship", "ship"]
        );
        assert_eq!(terms("refunds refunded"), vec!["refund", "refund"]);
        assert_eq!(terms("deliveries delivery"), vec!["delivery", "delivery"]);
    }

    #[test]
    fn numbers_and_codes_stay_whole() {
        assert_eq!(
            terms("Singles' Day (11.11) sale"),
            vec!["singl", "day", "11.11", "sale"]
        );
        assert_eq!(terms("Is SKU-2041 in stock?"), vec!["sku-2041", "stock"]);
        assert_eq!(
            terms("order A1234-B, 3.5 kg"),
            vec!["order", "a1234-b", "3.5", "kg"]
        );
        assert_eq!(terms("well-known"), vec!["well", "known"]);
    }

    #[test]
    fn chinese_becomes_bigrams_without_question_words() {
        assert_eq!(
            terms("积分什么时候过期？"),
            vec!["积分", "分什", "候过", "过期"]
        );
        assert_eq!(terms("买 iPhone 吗"), vec!["买", "iphon", "吗"]);
        let t = term_set("积分有效期至次年年底");
        assert!(t.contains("积分") && t.contains("年底"));
    }

    #[test]
    fn characters_no_known_bigram_covers_are_orphans() {
        // The index knows 茶叶 and 能退 (from 拆封的茶叶, 能退吗), not 叶拆 or 拆了: 拆 is lost
        // between bigrams; particles (了, 还) and question words are never content.
        let known = |b: &str| ["茶叶", "能退", "退吗"].contains(&b);
        assert_eq!(orphan_chars("茶叶拆了还能退吗", known), vec!["拆"]);
        // Every character covered, or alone between Latin text: no orphans.
        assert!(orphan_chars("茶叶能退吗", known).is_empty());
        assert!(orphan_chars("买 iPhone", known).is_empty());
        // Chat spellings read first; characters of question-word bigrams are not content.
        assert!(orphan_chars("啥时候", |_| false).is_empty());
        assert_eq!(
            han_chars("拆封的茶"),
            ["拆", "封", "的", "茶"].map(String::from).into()
        );
    }

    #[test]
    fn chat_spellings_are_the_words_they_stand_for() {
        assert_eq!(terms("积分啥时候过期"), terms("积分什么时候过期"));
        assert_eq!(terms("咋退货"), terms("怎么退货"));
        assert_eq!(terms("when do u ship pls"), vec!["ship"]);
    }
}
