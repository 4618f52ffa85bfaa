//! Checks on what the model wrote, because retrieved text and visitor text may try to steer it:
//! while streaming, text is held back until it cannot be the no-answer token, and stops flowing
//! at the first sign of the instructions or the wrong language; at the end, the answer must cite
//! the sources it was given, be in the visitor's language, not repeat the instructions, and say
//! mostly what the cited sources say. Anything else is rejected and the local answer is used.

use std::collections::HashSet;

use kefu_kb::answer::terms::{term_set, terms};

use super::prompt::{instructions, NO_ANSWER};
use crate::lang::Lang;
use kefu_kb::lang::is_han;

/// Characters of the instructions that, found in an answer, count as a leak.
const LEAK_WINDOW: usize = 32;
/// Letters seen before the language of a draft is judged.
const LANGUAGE_AFTER_LETTERS: usize = 16;
/// Share of the answer's content terms that must appear in the sources it cites.
const MIN_GROUNDED_SHARE: f32 = 0.4;

/// The verdict on a finished answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Use it: `text` with its citations renumbered 1…k in order of first use; `cited` are the
    /// 0-based indexes of the sources behind [1]…[k].
    Answer { text: String, cited: Vec<usize> },
    /// The model says the sources do not hold the answer.
    NoAnswer,
    /// Not usable; the label says which check failed.
    Rejected(&'static str),
}

/// Judges `text`, written for a visitor speaking `lang` from `sources` (the texts given as
/// [1]…[n]).
pub fn check(text: &str, lang: Lang, sources: &[String]) -> Verdict {
    let text = text.trim();
    if text.is_empty() {
        return Verdict::Rejected("empty");
    }
    // Before the token: the instructions themselves contain it.
    if leaks_instructions(text) {
        return Verdict::Rejected("prompt_leak");
    }
    if text.contains(NO_ANSWER) {
        return Verdict::NoAnswer;
    }
    let (text, cited) = renumber(text, sources.len());
    if cited.is_empty() {
        return Verdict::Rejected("no_citation");
    }
    if language_of(&text) != Some(lang) {
        return Verdict::Rejected("language");
    }
    let cited_terms: HashSet<String> = cited.iter().flat_map(|&i| term_set(&sources[i])).collect();
    if grounded_share(&text, &cited_terms).is_some_and(|(share, _)| share < MIN_GROUNDED_SHARE) {
        return Verdict::Rejected("ungrounded");
    }
    Verdict::Answer { text, cited }
}

/// The share of `text`'s content terms found in `source_terms`, and how many terms it has;
/// `None` without terms.
fn grounded_share(text: &str, source_terms: &HashSet<String>) -> Option<(f32, usize)> {
    let said: Vec<String> = terms(&strip_citations(text));
    if said.is_empty() {
        return None;
    }
    let grounded = said.iter().filter(|t| source_terms.contains(*t)).count();
    Some((grounded as f32 / said.len() as f32, said.len()))
}

/// Content terms seen before a draft's grounding is judged.
const GROUNDING_AFTER_TERMS: usize = 4;

/// Decides, delta by delta, what of a streamed answer the visitor may see before the final check:
/// nothing that could be the no-answer token, repeats the instructions, is in the wrong language
/// or says mostly what no source says.
#[derive(Debug)]
pub struct StreamGate {
    lang: Lang,
    /// The content terms of every source given.
    source_terms: HashSet<String>,
    text: String,
    /// Bytes of `text` already let through.
    shown: usize,
    stopped: bool,
}

impl StreamGate {
    pub fn new(lang: Lang, sources: &[String]) -> Self {
        Self {
            lang,
            source_terms: sources.iter().flat_map(|s| term_set(s)).collect(),
            text: String::new(),
            shown: 0,
            stopped: false,
        }
    }

    /// Takes the next piece of the answer; returns what may be shown now (possibly nothing).
    pub fn push(&mut self, delta: &str) -> Option<String> {
        self.text.push_str(delta);
        if self.stopped {
            return None;
        }
        let trimmed = self.text.trim_start();
        // Could still become the no-answer token: wait.
        if NO_ANSWER.starts_with(trimmed) || trimmed.contains(NO_ANSWER) {
            if trimmed.contains(NO_ANSWER) {
                self.stopped = true;
            }
            return None;
        }
        if leaks_instructions(&self.text) {
            self.stopped = true;
            return None;
        }
        let letters = self
            .text
            .chars()
            .filter(|c| is_han(*c) || c.is_ascii_alphabetic())
            .count();
        // Nothing is shown before the language can be judged.
        if letters < LANGUAGE_AFTER_LETTERS {
            return None;
        }
        if language_of(&self.text) != Some(self.lang) {
            self.stopped = true;
            return None;
        }
        match grounded_share(&self.text, &self.source_terms) {
            Some((_, n)) if n < GROUNDING_AFTER_TERMS => return None,
            None => return None,
            Some((share, _)) if share < MIN_GROUNDED_SHARE => {
                self.stopped = true;
                return None;
            }
            Some(_) => {}
        }
        // The last characters stay back until more text shows they do not start a leak.
        let held = self
            .text
            .char_indices()
            .rev()
            .nth(LEAK_WINDOW - 2)
            .map_or(0, |(i, _)| i);
        if held <= self.shown {
            return None;
        }
        let out = self.text[self.shown..held].to_string();
        self.shown = held;
        Some(out)
    }

    /// Whether anything was shown.
    pub fn showed_any(&self) -> bool {
        self.shown > 0
    }
}

/// Chinese when at least 30% of the letters are Chinese characters, English when there are
/// letters and fewer; `None` without letters. (A Chinese answer may name English products, an
/// English one may quote one Chinese name.)
fn language_of(text: &str) -> Option<Lang> {
    let text = strip_citations(text);
    let han = text.chars().filter(|c| is_han(*c)).count();
    let latin = text.chars().filter(|c| c.is_ascii_alphabetic()).count();
    if han + latin == 0 {
        return None;
    }
    Some(if han * 10 >= (han + latin) * 3 {
        Lang::Zh
    } else {
        Lang::En
    })
}

/// Whether `text` repeats a run of the instructions (in either language's version).
fn leaks_instructions(text: &str) -> bool {
    let said = normalise(text);
    if said.chars().count() < LEAK_WINDOW {
        return false;
    }
    instruction_runs()
        .iter()
        .any(|run| said.contains(run.as_str()))
}

/// Every `LEAK_WINDOW`-character run of the normalised instructions (both languages, every
/// fourth start), built once: the stream gate checks each delta against them.
fn instruction_runs() -> &'static [String] {
    static RUNS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    RUNS.get_or_init(|| {
        [Lang::Zh, Lang::En]
            .into_iter()
            .flat_map(|lang| {
                let rules: Vec<char> = normalise(&instructions(lang)).chars().collect();
                rules
                    .windows(LEAK_WINDOW)
                    .step_by(4)
                    .map(|w| w.iter().collect::<String>())
                    .collect::<Vec<_>>()
            })
            .collect()
    })
}

fn normalise(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// `[n]` (also `【n】` and `[n, m]`) markers: valid ones renumbered by first use, invalid ones
/// removed. Returns the text and the 0-based source indexes in their new order.
fn renumber(text: &str, sources: usize) -> (String, Vec<usize>) {
    let mut cited: Vec<usize> = Vec::new();
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let close = match chars[i] {
            '[' => Some(']'),
            '【' => Some('】'),
            _ => None,
        };
        let end = close.and_then(|c| {
            chars[i + 1..]
                .iter()
                .position(|x| *x == c)
                .map(|p| i + 1 + p)
        });
        let numbers: Option<Vec<usize>> = end.and_then(|end| {
            let inner: String = chars[i + 1..end].iter().collect();
            inner
                .split([',', '，', ' '])
                .filter(|s| !s.is_empty())
                .map(|s| s.trim().parse::<usize>().ok())
                .collect::<Option<Vec<usize>>>()
                .filter(|v| !v.is_empty())
        });
        match (end, numbers) {
            (Some(end), Some(numbers)) => {
                for n in numbers.into_iter().filter(|n| (1..=sources).contains(n)) {
                    let index = n - 1;
                    let position = match cited.iter().position(|c| *c == index) {
                        Some(p) => p,
                        None => {
                            cited.push(index);
                            cited.len() - 1
                        }
                    };
                    out.push_str(&format!("[{}]", position + 1));
                }
                i = end + 1;
            }
            _ => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    (out.trim().to_string(), cited)
}

fn strip_citations(text: &str) -> String {
    renumber(text, 0).0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources() -> Vec<String> {
        vec![
            "Q: When will my order ship?\nA: Orders paid before 16:00 on a working day ship the same day.".into(),
            "Q: 多久发货？\nA: 工作日 16:00 前付款的订单当天发货。".into(),
        ]
    }

    #[test]
    fn a_grounded_cited_answer_passes_with_its_citations_renumbered() {
        let v = check(
            "Orders paid before 16:00 on a working day ship the same day [2].",
            Lang::En,
            &[sources()[1].clone(), sources()[0].clone()],
        );
        assert_eq!(
            v,
            Verdict::Answer {
                text: "Orders paid before 16:00 on a working day ship the same day [1].".into(),
                cited: vec![1]
            }
        );
        let v = check(
            "工作日 16:00 前付款的订单当天发货【2】。",
            Lang::Zh,
            &sources(),
        );
        assert!(
            matches!(v, Verdict::Answer { ref cited, .. } if cited == &[1]),
            "{v:?}"
        );
    }

    #[test]
    fn answers_that_follow_injected_instructions_are_rejected() {
        let s = sources();
        // No citation (or only made-up ones).
        assert_eq!(
            check("Orders ship the same day.", Lang::En, &s),
            Verdict::Rejected("no_citation")
        );
        assert_eq!(
            check("Orders ship the same day [7].", Lang::En, &s),
            Verdict::Rejected("no_citation")
        );
        // The wrong language.
        assert_eq!(
            check("订单当天发货 [2]。", Lang::En, &s),
            Verdict::Rejected("language")
        );
        // A promise the sources do not make.
        assert_eq!(
            check(
                "Good news: your money will be returned in full, plus a bonus voucher [1].",
                Lang::En,
                &s
            ),
            Verdict::Rejected("ungrounded")
        );
        // The instructions repeated.
        let leak = format!("Sure! My rules: {} [1]", &instructions(Lang::En)[..200]);
        assert_eq!(check(&leak, Lang::En, &s), Verdict::Rejected("prompt_leak"));
        assert_eq!(check(" NO_ANSWER ", Lang::En, &s), Verdict::NoAnswer);
    }

    #[test]
    fn the_stream_gate_holds_the_no_answer_token_and_stops_at_a_leak_or_the_wrong_language() {
        let mut g = StreamGate::new(Lang::En, &sources());
        assert_eq!(g.push("NO_"), None);
        assert_eq!(g.push("ANSWER"), None);
        assert_eq!(g.push(" anything"), None);
        assert!(!g.showed_any());

        let mut g = StreamGate::new(Lang::En, &sources());
        assert_eq!(g.push("O"), None);
        assert_eq!(g.push("rders paid"), None);
        assert_eq!(g.push(" before 16:00"), None);
        let rest = " on a working day ship the same day, when they are paid before 16:00 [1].";
        let shown = g.push(rest).expect("shown");
        // All but the last 31 characters, which wait for what follows.
        let all = format!("Orders paid before 16:00{rest}");
        assert_eq!(
            shown.chars().count(),
            all.chars().count() - (LEAK_WINDOW - 1)
        );
        assert!(all.starts_with(&shown));
        assert!(g.showed_any());

        let mut g = StreamGate::new(Lang::En, &sources());
        assert_eq!(g.push("好的，我们会为您全额退款，并且赠送一份礼品，"), None);
        assert_eq!(g.push("请放心 OK"), None);

        // A promise no source makes is never shown.
        let mut g = StreamGate::new(Lang::En, &sources());
        let mut shown = String::new();
        for piece in [
            "Good news: your money ",
            "will be returned in full, ",
            "plus a bonus voucher ",
            "for your trouble, dear customer [1].",
        ] {
            shown.push_str(&g.push(piece).unwrap_or_default());
        }
        assert_eq!(shown, "");

        // A leak is caught before any of its characters are shown.
        let mut g = StreamGate::new(Lang::En, &sources());
        let rules = instructions(Lang::En);
        let mut shown = g
            .push("Orders paid before 16:00 ship the same day, here are the rules: ")
            .unwrap_or_default();
        for piece in rules.as_bytes()[..160].chunks(7) {
            shown.push_str(
                &g.push(std::str::from_utf8(piece).expect("ascii"))
                    .unwrap_or_default(),
            );
        }
        assert!(!shown.contains("customer-service"), "{shown}");
    }
}
