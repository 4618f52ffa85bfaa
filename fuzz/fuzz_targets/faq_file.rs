//! An uploaded FAQ file (CSV, JSON or YAML, chosen by the first byte) as the import reads it: the
//! bytes become a source file, its records, and the texts each record embeds. Accepted records
//! have a question, an answer and a key unique in the file.
#![no_main]

use std::collections::HashSet;

use kefu_kb::ingest::{parse_text, FileKind};
use kefu_kb::SourceFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let (kind, name) = match which % 3 {
        0 => (FileKind::FaqCsv, "faq.csv"),
        1 => (FileKind::FaqJson, "faq.json"),
        _ => (FileKind::FaqYaml, "faq.yaml"),
    };
    let Ok(file) = SourceFile::from_bytes(name, kind, bytes) else {
        return;
    };
    let Ok(records) = parse_text(file.kind, &file.text, &file.name) else {
        return;
    };
    let mut keys = HashSet::new();
    for r in &records {
        assert!(!r.question.trim().is_empty() && !r.answer.trim().is_empty());
        assert!(keys.insert(r.key.as_str()), "duplicate key {}", r.key);
        assert_eq!(r.source_file, name);
        assert!(!r.embed_texts().is_empty());
    }
});
