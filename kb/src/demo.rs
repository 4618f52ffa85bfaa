//! The demo knowledge base (a small online shop, Chinese and English) compiled into the binary so
//! that `kefu serve` answers questions on first start with zero setup.

use crate::ingest::FileKind;
use crate::knowledge::SourceFile;

/// The demo files: name, kind, content.
const FILES: &[(&str, FileKind, &str)] = &[
    (
        "faq-zh.csv",
        FileKind::FaqCsv,
        include_str!("../demo/faq-zh.csv"),
    ),
    (
        "faq-en.csv",
        FileKind::FaqCsv,
        include_str!("../demo/faq-en.csv"),
    ),
    (
        "policy.md",
        FileKind::Markdown,
        include_str!("../demo/policy.md"),
    ),
];

/// The demo knowledge base as importable sources.
pub fn sources() -> Vec<SourceFile> {
    FILES
        .iter()
        .map(|(name, kind, text)| SourceFile {
            name: (*name).to_string(),
            kind: *kind,
            text: (*text).to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::parse_text;

    #[test]
    fn demo_files_parse_with_enough_entries_in_both_languages() {
        let mut zh = 0;
        let mut en = 0;
        for s in sources() {
            let recs = parse_text(s.kind, &s.text, &s.name).expect("demo parses");
            assert!(!recs.is_empty());
            if s.name == "faq-zh.csv" {
                zh = recs.len();
            }
            if s.name == "faq-en.csv" {
                en = recs.len();
            }
        }
        assert!(zh >= 30 && en >= 30, "zh {zh}, en {en}");
    }
}
