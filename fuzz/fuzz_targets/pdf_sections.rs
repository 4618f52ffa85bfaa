//! An uploaded PDF as the import reads it: its text as Markdown sections under their heading
//! paths, then chunk records. A file the reader cannot handle is an error, never a crash. (The
//! reader's own panics, pdf-extract's and lopdf's, are caught by the import and kept from
//! libFuzzer's aborting panic hook by the import's hook; any other panic is a crash.)
#![no_main]

use kefu_kb::ingest::{parse_text, FileKind};
use kefu_kb::SourceFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = SourceFile::from_bytes("upload.pdf", FileKind::Pdf, data) else {
        return;
    };
    assert_eq!(file.kind, FileKind::Markdown);
    let records = parse_text(file.kind, &file.text, &file.name).expect("its Markdown parses");
    for r in &records {
        assert!(!r.answer.trim().is_empty(), "an empty chunk");
    }
});
