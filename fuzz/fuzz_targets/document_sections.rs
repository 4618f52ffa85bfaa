//! An uploaded document (Markdown, HTML or plain text, chosen by the first byte) as the import
//! reads it: sections under heading paths, chunks of bounded size, and the texts each chunk
//! embeds.
#![no_main]

use kefu_kb::ingest::chunk::CHUNK_CHARS;
use kefu_kb::ingest::{parse_text, EntryKind, FileKind};
use kefu_kb::SourceFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let (kind, name) = match which % 3 {
        0 => (FileKind::Markdown, "guide.md"),
        1 => (FileKind::Html, "guide.html"),
        _ => (FileKind::Text, "guide.txt"),
    };
    let Ok(file) = SourceFile::from_bytes(name, kind, bytes) else {
        return;
    };
    let records = parse_text(file.kind, &file.text, &file.name).expect("documents always parse");
    for r in &records {
        assert_eq!(r.kind, EntryKind::Chunk);
        let visible = r.answer.chars().filter(|c| !c.is_whitespace()).count();
        assert!(visible <= CHUNK_CHARS, "a chunk of {visible} characters");
        assert!(!r.answer.trim().is_empty(), "an empty chunk");
        assert!(!r.embed_texts().is_empty());
    }
});
