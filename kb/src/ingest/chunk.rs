//! Splitting section text into overlapping chunks at sentence boundaries (Chinese and English
//! punctuation), measured in characters so that CJK and Latin text get comparable sizes.

use crate::lang::is_han;

/// Target chunk length in characters.
pub const CHUNK_CHARS: usize = 400;
/// Characters of trailing context repeated at the start of the next chunk.
pub const OVERLAP_CHARS: usize = 80;

/// Splits text into sentences, keeping each sentence's closing punctuation.
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' {
            if !cur.trim().is_empty() {
                out.push(cur.trim().to_string());
            }
            cur.clear();
            continue;
        }
        cur.push(c);
        let ends = matches!(c, '。' | '！' | '？' | '；' | '!' | '?' | ';')
            || (c == '.'
                && chars
                    .peek()
                    // Bilingual paragraphs are joined without a space: "year.积分…" ends too.
                    .is_none_or(|n| n.is_whitespace() || is_closing(*n) || is_han(*n)));
        if ends {
            // Keep closing quotes/brackets with their sentence.
            while let Some(&n) = chars.peek() {
                if is_closing(n) {
                    cur.push(n);
                    chars.next();
                } else {
                    break;
                }
            }
            if !cur.trim().is_empty() {
                out.push(cur.trim().to_string());
            }
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

fn is_closing(c: char) -> bool {
    matches!(c, '”' | '’' | '"' | '\'' | ')' | '）' | '」' | '』')
}

/// Joins sentences: a space between Latin text, none at a CJK boundary.
pub fn join(parts: &[String]) -> String {
    let mut s = String::new();
    for p in parts {
        let cjk_boundary =
            s.chars().last().is_some_and(is_cjk) || p.chars().next().is_some_and(is_cjk);
        if !s.is_empty() && !cjk_boundary {
            s.push(' ');
        }
        s.push_str(p);
    }
    s
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3000..=0x303F | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0xFF00..=0xFFEF)
}

fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// Hard-splits an over-long sentence into pieces of at most `max` characters.
fn split_long(s: &str, max: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    chars.chunks(max).map(|c| c.iter().collect()).collect()
}

/// Packs sentences into chunks of about `max` characters; each chunk after the first starts with
/// the previous chunk's last sentences, up to `overlap` characters.
pub fn chunk_text(text: &str, max: usize, overlap: usize) -> Vec<String> {
    let mut sents = Vec::new();
    for s in sentences(text) {
        if char_len(&s) > max {
            sents.extend(split_long(&s, max));
        } else {
            sents.push(s);
        }
    }
    let mut chunks = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut cur_len = 0;
    let mut fresh = 0; // sentences in `cur` not already emitted
    for s in sents {
        let l = char_len(&s);
        if cur_len + l > max && fresh > 0 {
            chunks.push(join(&cur));
            // Carry the tail as overlap.
            let mut tail = Vec::new();
            let mut tail_len = 0;
            for prev in cur.iter().rev() {
                let pl = char_len(prev);
                if tail_len + pl > overlap || tail_len + pl + l > max {
                    break;
                }
                tail.insert(0, prev.clone());
                tail_len += pl;
            }
            cur = tail;
            cur_len = tail_len;
            fresh = 0;
        }
        cur_len += l;
        cur.push(s);
        fresh += 1;
    }
    if fresh > 0 {
        chunks.push(join(&cur));
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_chinese_and_english_sentences() {
        let s =
            sentences("退货需在7天内申请。运费由谁承担？Refunds take 3 days. See “Policy.” Done");
        assert_eq!(
            s,
            vec![
                "退货需在7天内申请。",
                "运费由谁承担？",
                "Refunds take 3 days.",
                "See “Policy.”",
                "Done"
            ]
        );
        // A full stop right before Chinese text ends the English sentence.
        assert_eq!(
            sentences("Points expire next year.积分次年年底过期。"),
            vec!["Points expire next year.", "积分次年年底过期。"]
        );
        // Decimal points are not sentence ends.
        assert_eq!(
            sentences("It costs 3.5 dollars."),
            vec!["It costs 3.5 dollars."]
        );
    }

    #[test]
    fn chunks_respect_size_and_overlap() {
        let text: String = (0..30)
            .map(|i| format!("Sentence number {i} is here. "))
            .collect();
        let chunks = chunk_text(&text, 120, 40);
        assert!(chunks.len() > 3);
        for c in &chunks {
            assert!(c.chars().count() <= 120, "{c}");
        }
        // Each chunk after the first starts with the previous chunk's last sentence.
        for w in chunks.windows(2) {
            let last = sentences(&w[0]).pop().unwrap_or_default();
            assert!(w[1].starts_with(&last), "{:?} -> {:?}", w[0], w[1]);
        }
        // Nothing is lost.
        for i in 0..30 {
            assert!(chunks.iter().any(|c| c.contains(&format!("number {i} "))));
        }
    }

    #[test]
    fn cjk_joins_without_spaces_and_long_runs_are_split() {
        let chunks = chunk_text("第一句。第二句。", 100, 10);
        assert_eq!(chunks, vec!["第一句。第二句。"]);
        let long = "长".repeat(250);
        let chunks = chunk_text(&long, 100, 10);
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks.iter().map(|c| c.chars().count()).sum::<usize>(), 250);
    }

    /// Text of Chinese and English words, sentence ends, quotes, decimals and line breaks.
    fn prose() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let token = prop_oneof![
            Just("退货"),
            Just("需在7天内申请"),
            Just("。"),
            Just("？"),
            Just("！"),
            Just("；"),
            Just("Refunds"),
            Just("take"),
            Just("3.5"),
            Just("days"),
            Just("."),
            Just("?"),
            Just(" "),
            Just("  "),
            Just("\n"),
            Just("“"),
            Just("”"),
            Just(")"),
            Just("长长长长长长长长长长长长长长长长长长长长"),
        ];
        proptest::collection::vec(token, 0..120).prop_map(|t| t.concat())
    }

    fn visible(s: &str) -> impl Iterator<Item = char> + '_ {
        s.chars().filter(|c| !c.is_whitespace())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
        /// Every character of the input is in some chunk (as often as the input has it), and no
        /// chunk holds more than `max` characters besides the spaces that join sentences.
        #[test]
        fn chunks_cover_the_text_within_their_size(
            text in prose(),
            max in 8usize..200,
            overlap_share in 0usize..60,
        ) {
            let overlap = max * overlap_share / 100;
            let chunks = chunk_text(&text, max, overlap);
            let mut wanted = std::collections::HashMap::new();
            visible(&text).for_each(|c| *wanted.entry(c).or_insert(0usize) += 1);
            let mut found = std::collections::HashMap::new();
            for chunk in &chunks {
                proptest::prop_assert!(!chunk.trim().is_empty(), "an empty chunk");
                proptest::prop_assert!(visible(chunk).count() <= max, "{chunk:?} over {max}");
                visible(chunk).for_each(|c| *found.entry(c).or_insert(0usize) += 1);
            }
            for (c, n) in wanted {
                proptest::prop_assert!(found.get(&c).copied().unwrap_or(0) >= n, "{c:?} lost");
            }
            // Sentences are never cut except when one alone is longer than a chunk.
            for s in sentences(&text).iter().filter(|s| s.chars().count() <= max) {
                proptest::prop_assert!(
                    chunks.iter().any(|c| c.contains(s.as_str())),
                    "sentence {s:?} was cut"
                );
            }
        }
    }
}
