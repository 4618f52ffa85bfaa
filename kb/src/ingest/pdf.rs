//! Text PDFs (Chinese and English) as sections: the text of each page (pdf-extract), split at the
//! headings of the document outline (bookmarks), so chunks keep their heading path. A PDF with no
//! text layer (a scan) is an error, never an empty import.

use super::document::{join_lines, Section};
use crate::error::{KbError, Result};

/// The sections of a PDF, in page order.
pub fn sections(bytes: &[u8], file: &str) -> Result<Vec<Section>> {
    let parse = |message: String| KbError::Parse {
        file: file.to_string(),
        line: 0,
        message,
    };
    let (pages, outline) = guarded(|| read(bytes))
        .ok_or_else(|| parse(UNREADABLE.into()))?
        .map_err(|e| parse(format!("cannot read the PDF: {e}")))?;
    if pages.iter().all(|p| p.trim().is_empty()) {
        return Err(parse(
            "the PDF has no text layer (a scanned or image-only PDF): run OCR on it first, or import its text"
                .into(),
        ));
    }
    let mut sections = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut text: Vec<String> = Vec::new();
    // The outline is in reading order: each line is checked against the next few titles
    // (a title the text does not show is skipped).
    let mut next = 0;
    for line in pages.iter().flat_map(|p| p.lines()).map(normalise) {
        let found = outline
            .iter()
            .enumerate()
            .skip(next)
            .take(OUTLINE_LOOKAHEAD)
            .find(|(_, (_, title))| *title == line);
        if let Some((i, (level, title))) = found {
            flush(&mut sections, &stack, &mut text);
            while stack.last().is_some_and(|(l, _)| l >= level) {
                stack.pop();
            }
            stack.push((*level, title.clone()));
            next = i + 1;
            continue;
        }
        text.push(line);
    }
    flush(&mut sections, &stack, &mut text);
    Ok(sections)
}

/// Why a PDF the reader gave up on is refused.
const UNREADABLE: &str =
    "cannot read the PDF: its structure is damaged or uses features the reader does not support";

/// Runs the PDF reader, which panics on some damaged or unusual files instead of returning an
/// error (found by fuzzing, `pdf_sections`): such a file is refused (`None`), and the import, or
/// the server, carries on. The reader's panic is logged at debug level instead of being printed
/// as a crash (`quiet_reader_panics`).
fn guarded<T>(read: impl FnOnce() -> T) -> Option<T> {
    quiet_reader_panics();
    READING.with(|r| r.set(true));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).ok();
    READING.with(|r| r.set(false));
    out
}

thread_local! {
    /// Set while `guarded` runs the reader on this thread.
    static READING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs, once, a panic hook in front of the one before it: a panic raised inside the PDF
/// reader's crates while `guarded` runs it becomes a debug log line (the file is refused anyway);
/// every other panic, Kefu's own code in `read` included, still goes to the previous hook (the
/// default message, or the fuzzer's abort).
fn quiet_reader_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // `try_with`: a panic while this thread's locals are being destroyed still reaches
            // the previous hook instead of panicking inside this one.
            let reading = READING.try_with(|r| r.get()).unwrap_or(false);
            if reading && info.location().is_some_and(|l| is_reader_source(l.file())) {
                tracing::debug!(panic = %info, "the PDF reader gave up on a file");
            } else {
                previous(info);
            }
        }));
    });
}

/// Whether a source file belongs to the PDF reader's crates (pdf-extract and lopdf).
fn is_reader_source(file: &str) -> bool {
    file.contains("/pdf-extract-") || file.contains("/lopdf-")
}

/// The document outline (bookmarks) as (level, title), in reading order.
type Outline = Vec<(usize, String)>;

/// The text of each page, and the outline (empty when the PDF has none).
fn read(bytes: &[u8]) -> std::result::Result<(Vec<String>, Outline), String> {
    let mut doc = pdf_extract::Document::load_mem(bytes).map_err(|e| e.to_string())?;
    if doc.is_encrypted() {
        // Encrypted with an empty user password (print or copy restrictions only).
        doc.decrypt("").map_err(|e| e.to_string())?;
    }
    let page_ids = doc.get_pages();
    check_page_tree(&doc, page_ids.values().copied())?;
    let mut pages = Vec::new();
    for number in page_ids.into_keys() {
        let mut text = String::new();
        let mut output = pdf_extract::PlainTextOutput::new(&mut text);
        // As pdf-extract's own page loop: the pages up to the first it cannot read.
        if pdf_extract::output_doc_page(&doc, &mut output, number).is_err() {
            break;
        }
        pages.push(text);
    }
    Ok((pages, outline(&doc)))
}

/// Page-tree nesting read at most.
const MAX_PAGE_TREE_DEPTH: usize = 64;

/// Refuses a page tree whose `Parent` links loop (found by fuzzing, `pdf_sections`: the reader
/// follows them for inherited attributes and never returns) or nest absurdly deep.
fn check_page_tree(
    doc: &pdf_extract::Document,
    pages: impl Iterator<Item = pdf_extract::ObjectId>,
) -> std::result::Result<(), String> {
    for page in pages {
        let mut seen = std::collections::HashSet::from([page]);
        let mut at = page;
        while let Some(parent) = doc
            .get_dictionary(at)
            .ok()
            .and_then(|d| d.get(b"Parent").ok())
            .and_then(|p| p.as_reference().ok())
        {
            if !seen.insert(parent) || seen.len() > MAX_PAGE_TREE_DEPTH {
                return Err("the page tree loops back on itself".into());
            }
            at = parent;
        }
    }
    Ok(())
}

/// Outline titles looked ahead for the next heading line.
const OUTLINE_LOOKAHEAD: usize = 3;
/// Outline entries read at most (a hostile file cannot make the walk unbounded).
const MAX_OUTLINE_ENTRIES: usize = 10_000;
/// Outline depth read at most.
const MAX_OUTLINE_DEPTH: usize = 16;

/// The document outline.
fn outline(doc: &pdf_extract::Document) -> Outline {
    let mut out = Vec::new();
    let first = doc
        .catalog()
        .and_then(|c| c.get(b"Outlines"))
        .and_then(|o| doc.dereference(o))
        .and_then(|(_, o)| o.as_dict())
        .and_then(|d| d.get(b"First"))
        .and_then(|f| f.as_reference());
    if let Ok(first) = first {
        let mut seen = std::collections::HashSet::new();
        walk_outline(doc, first, 1, &mut out, &mut seen);
    }
    out
}

fn walk_outline(
    doc: &pdf_extract::Document,
    mut id: pdf_extract::ObjectId,
    level: usize,
    out: &mut Vec<(usize, String)>,
    seen: &mut std::collections::HashSet<pdf_extract::ObjectId>,
) {
    while level <= MAX_OUTLINE_DEPTH && seen.len() < MAX_OUTLINE_ENTRIES && seen.insert(id) {
        let Ok(item) = doc.get_dictionary(id) else {
            return;
        };
        if let Ok(title) = item.get(b"Title").and_then(|t| t.as_str()) {
            let title = normalise(&text_string(title));
            if !title.is_empty() {
                out.push((level, title));
            }
        }
        if let Ok(child) = item.get(b"First").and_then(|c| c.as_reference()) {
            walk_outline(doc, child, level + 1, out, seen);
        }
        match item.get(b"Next").and_then(|n| n.as_reference()) {
            Ok(next) => id = next,
            Err(_) => return,
        }
    }
}

/// A PDF text string: UTF-16 with a byte-order mark, else (PDFDocEncoding, close to Latin-1)
/// byte by byte.
fn text_string(bytes: &[u8]) -> String {
    let utf16 = |big: bool| {
        let units: Vec<u16> = bytes[2..]
            .chunks_exact(2)
            .map(|c| {
                if big {
                    u16::from_be_bytes([c[0], c[1]])
                } else {
                    u16::from_le_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16_lossy(&units)
    };
    match bytes {
        [0xfe, 0xff, ..] => utf16(true),
        [0xff, 0xfe, ..] => utf16(false),
        _ => match std::str::from_utf8(bytes) {
            Ok(s) => s.to_string(),
            Err(_) => bytes.iter().map(|&b| b as char).collect(),
        },
    }
}

/// One line with its runs of spaces collapsed.
fn normalise(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Ends the section being read: its lines become paragraphs. PDF text has no paragraph marks
/// (blank lines appear between wrapped lines too), so a line continues the paragraph unless the
/// one before ended a sentence; wrapped lines are joined, without a space between Chinese
/// characters.
fn flush(sections: &mut Vec<Section>, stack: &[(usize, String)], lines: &mut Vec<String>) {
    let mut paragraphs: Vec<Vec<String>> = Vec::new();
    for line in lines.drain(..).filter(|l| !l.is_empty()) {
        match paragraphs.last_mut() {
            Some(p) if !p.last().is_some_and(|l| ends_sentence(l)) => p.push(line),
            _ => paragraphs.push(vec![line]),
        }
    }
    if paragraphs.is_empty() {
        return;
    }
    sections.push(Section {
        headings: stack.iter().map(|(_, t)| t.clone()).collect(),
        text: paragraphs
            .iter()
            .map(|p| join_lines(p))
            .collect::<Vec<_>>()
            .join("\n"),
    });
}

fn ends_sentence(line: &str) -> bool {
    line.trim_end().ends_with([
        '.', '!', '?', ':', ';', '。', '！', '？', '：', '；', '」', '”', '"', ')', '）',
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/ingest")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn a_pdf_the_reader_panics_on_is_refused_not_a_crash() {
        // Found by fuzzing (pdf_sections): two bytes changed in a small text PDF make
        // pdf-extract panic while reading a font name.
        let err =
            sections(&seed("crash-pdf-extract-panics.pdf"), "damaged.pdf").expect_err("refused");
        assert!(err.to_string().contains(UNREADABLE), "{err}");
    }

    #[test]
    fn the_readers_panic_is_logged_not_printed() {
        use std::io::Write;
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Log(Arc<Mutex<Vec<u8>>>);
        impl Write for Log {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("log").extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            sections(&seed("crash-pdf-extract-panics.pdf"), "damaged.pdf").expect_err("refused")
        });
        let text = String::from_utf8(log.0.lock().expect("log").clone()).expect("UTF-8");
        assert!(text.contains("the PDF reader gave up"), "{text}");
        assert!(
            text.contains("pdf-extract"),
            "the panic's location is logged: {text}"
        );
        // Kefu's own panics are never hidden, even inside `guarded`.
        assert!(is_reader_source(
            "/cargo/registry/src/x/pdf-extract-0.10.0/src/lib.rs"
        ));
        assert!(is_reader_source(
            "/cargo/registry/src/x/lopdf-0.42.0/src/reader.rs"
        ));
        assert!(!is_reader_source("kb/src/ingest/pdf.rs"));
    }

    #[test]
    fn a_page_tree_that_loops_is_refused_instead_of_read_forever() {
        // Found by fuzzing (pdf_sections): a page that is its own parent sent the reader round
        // the loop for good.
        let err =
            sections(&seed("timeout-page-is-its-own-parent.pdf"), "loop.pdf").expect_err("refused");
        assert!(err.to_string().contains("loops back"), "{err}");
    }

    /// A committed fuzzing input (`fuzz/seeds/pdf_sections`).
    fn seed(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/seeds/pdf_sections")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn a_text_pdf_keeps_its_heading_paths_in_both_languages() {
        let s = sections(&fixture("care-guide.pdf"), "care-guide.pdf").expect("sections");
        let warranty = s
            .iter()
            .find(|s| s.text.contains("18 个月保修"))
            .expect("the warranty section");
        assert_eq!(
            warranty.headings,
            ["保修服务 Warranty service", "保修期限 Warranty period"]
        );
        assert!(warranty.text.contains("18-month warranty"), "{warranty:?}");
        // Wrapped English lines are joined with a space; nothing of the next section leaks in.
        assert!(!warranty.text.contains("摔落"));
        let first = s
            .iter()
            .find(|s| s.text.contains("洗洁精"))
            .expect("first use");
        assert_eq!(
            first.headings,
            ["紫砂壶保养 Clay teapot care", "开壶 First use"]
        );
        assert!(first.text.contains("Never use dish soap."), "{first:?}");
    }

    #[test]
    fn a_scanned_pdf_is_a_clear_error() {
        let e = sections(&fixture("scanned.pdf"), "scanned.pdf").expect_err("no text layer");
        assert!(e.to_string().contains("no text layer"), "{e}");
        let e = sections(b"%PDF-1.4 not really", "broken.pdf").expect_err("broken");
        assert!(e.to_string().contains("broken.pdf"), "{e}");
    }
}
