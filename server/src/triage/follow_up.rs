//! Short follow-up questions ("那退货呢？", "and for express?") mean little alone: the knowledge
//! search reads them together with the visitor's previous question.

/// Weight of the previous question's vector in a follow-up's.
const CONTEXT_WEIGHT: f32 = 0.5;
/// Longest follow-up, in Chinese characters / English words.
const MAX_ZH_CHARS: usize = 10;
const MAX_EN_WORDS: usize = 5;

const ZH_OPENERS: &[&str] = &["那", "那么", "还有", "如果是", "要是"];
const ZH_ENDINGS: &[&str] = &["呢", "呢？", "呢?"];
const EN_OPENERS: &[&str] = &[
    "and ",
    "what about",
    "how about",
    "and for",
    "what if",
    "same for",
    "also ",
    "or ",
];

/// True when `text` reads as a follow-up to an earlier question.
pub fn is_follow_up(text: &str) -> bool {
    let t = text.trim();
    if t.is_empty() {
        return false;
    }
    if t.chars().any(kefu_kb::lang::is_han) {
        let n = t.chars().filter(|c| !c.is_whitespace()).count();
        return n <= MAX_ZH_CHARS
            && (ZH_OPENERS.iter().any(|o| t.starts_with(o))
                || ZH_ENDINGS.iter().any(|e| t.ends_with(e)));
    }
    let lower = t.to_lowercase();
    lower.split_whitespace().count() <= MAX_EN_WORDS
        && EN_OPENERS.iter().any(|o| lower.starts_with(o))
}

/// The text to search with: the previous question and the follow-up together, when `text` is a
/// follow-up to `previous`.
pub fn search_text(text: &str, previous: Option<&str>) -> Option<String> {
    let previous = previous.map(str::trim).filter(|p| !p.is_empty())?;
    is_follow_up(text).then(|| format!("{previous} {}", text.trim()))
}

/// The follow-up's query vector: its own, with the previous question's mixed in at half weight
/// (the new question leads; the old one supplies the topic), normalised.
pub fn blend(current: &[f32], previous: &[f32]) -> Vec<f32> {
    let mixed: Vec<f32> = current
        .iter()
        .zip(previous)
        .map(|(c, p)| c + CONTEXT_WEIGHT * p)
        .collect();
    let norm = mixed.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        return current.to_vec();
    }
    mixed.iter().map(|x| x / norm).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_follow_ups_join_the_previous_question() {
        assert!(is_follow_up("那退货呢？"));
        assert!(is_follow_up("乌龙茶呢"));
        assert!(is_follow_up("and for express?"));
        assert!(is_follow_up("What about Canada?"));
        assert!(!is_follow_up("多久发货？"));
        assert!(!is_follow_up("How do I return an item?"));
        assert!(!is_follow_up(
            "and what is the best way to store green tea at home?"
        ));
        assert_eq!(
            search_text("那退货呢？", Some("运费怎么算")).as_deref(),
            Some("运费怎么算 那退货呢？")
        );
        assert_eq!(search_text("那退货呢？", None), None);
        assert_eq!(search_text("怎么退货", Some("运费怎么算")), None);
    }

    #[test]
    fn the_blend_leans_on_the_new_question_and_stays_normalised() {
        let v = blend(&[1.0, 0.0], &[0.0, 1.0]);
        assert!((v[0] * v[0] + v[1] * v[1] - 1.0).abs() < 1e-6);
        assert!(v[0] > v[1]);
    }
}
