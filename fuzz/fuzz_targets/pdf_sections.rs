//! An uploaded PDF as the import reads it: its text as Markdown sections under their heading
//! paths, then chunk records. A file the reader cannot handle is an error, never a crash.
#![no_main]

use std::sync::Once;

use kefu_kb::ingest::{parse_text, FileKind};
use kefu_kb::SourceFile;
use libfuzzer_sys::fuzz_target;

/// libFuzzer's panic hook aborts on every panic, even one the code catches. The import catches
/// the PDF reader's own panics (pdf-extract and lopdf) and refuses the file, so those are let
/// through silently; any other panic is still a crash.
fn let_the_reader_panic() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_reader = info.location().is_some_and(|l| {
                let file = l.file();
                file.contains("/pdf-extract-") || file.contains("/lopdf-")
            });
            if !in_reader {
                fuzzer_hook(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    let_the_reader_panic();
    let Ok(file) = SourceFile::from_bytes("upload.pdf", FileKind::Pdf, data) else {
        return;
    };
    assert_eq!(file.kind, FileKind::Markdown);
    let records = parse_text(file.kind, &file.text, &file.name).expect("its Markdown parses");
    for r in &records {
        assert!(!r.answer.trim().is_empty(), "an empty chunk");
    }
});
