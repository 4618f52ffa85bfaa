//! An operator's chat-history export (JSONL or CSV, chosen by the first byte) as training reads
//! it: every conversation kept has an id of its own and messages within the length limit; bad
//! records are skipped with a reason, never a crash.
#![no_main]

use std::collections::HashSet;

use kefu_kb::train::history::{parse_csv, parse_jsonl, MAX_MESSAGE_CHARS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let parsed = if which % 2 == 0 {
        parse_jsonl(text, "history.jsonl")
    } else {
        match parse_csv(text, "history.csv") {
            Ok(p) => p,
            Err(_) => return,
        }
    };
    let mut ids = HashSet::new();
    for c in &parsed.conversations {
        assert!(!c.id.trim().is_empty());
        assert!(ids.insert(c.id.as_str()), "conversation {} twice", c.id);
        assert!(!c.messages.is_empty());
        for m in &c.messages {
            assert!(!m.text.trim().is_empty());
            assert!(m.text.chars().count() <= MAX_MESSAGE_CHARS);
        }
    }
});
