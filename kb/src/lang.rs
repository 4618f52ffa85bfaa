//! The language the bot speaks, from the visitor's text: Chinese or English (also used to pick a
//! bilingual document's sentences in the visitor's language).

use serde::Serialize;

/// The language the bot answers in, from the visitor's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    /// Chinese when the text has any CJK ideograph, else English.
    pub fn detect(text: &str) -> Self {
        if text.chars().any(is_han) {
            Lang::Zh
        } else {
            Lang::En
        }
    }

    /// Picks the text in this language.
    pub fn pick(self, zh: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }
}

/// Chinese ideographs (not CJK punctuation).
pub fn is_han(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF)
}
