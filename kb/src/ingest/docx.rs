//! Word documents (DOCX) as sections: the paragraphs of `word/document.xml` in order, headings
//! recognised by their outline level or their style ("heading 1"…, as Word and LibreOffice store
//! the built-in styles whatever the interface language).

use std::collections::HashMap;
use std::io::Read;

use super::document::Section;
use crate::error::{KbError, Result};

/// Largest `word/*.xml` part read (a text document is far smaller).
const MAX_PART_BYTES: u64 = 32 * 1024 * 1024;

/// The sections of a DOCX file, in document order.
pub fn sections(bytes: &[u8], file: &str) -> Result<Vec<Section>> {
    let parse = |message: String| KbError::Parse {
        file: file.to_string(),
        line: 0,
        message,
    };
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| parse(format!("not a DOCX (zip) file: {e}")))?;
    let document = read_part(&mut zip, "word/document.xml", file)?
        .ok_or_else(|| parse("not a Word document: word/document.xml is missing".into()))?;
    let heading_styles = match read_part(&mut zip, "word/styles.xml", file)? {
        Some(xml) => heading_levels(&xml).map_err(|e| parse(format!("word/styles.xml: {e}")))?,
        None => HashMap::new(),
    };
    let doc = roxmltree::Document::parse(&document)
        .map_err(|e| parse(format!("word/document.xml: {e}")))?;

    let mut sections = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut paragraphs: Vec<String> = Vec::new();
    let flush = |sections: &mut Vec<Section>, stack: &[(usize, String)], p: &mut Vec<String>| {
        if !p.is_empty() {
            sections.push(Section {
                headings: stack.iter().map(|(_, t)| t.clone()).collect(),
                text: p.join("\n"),
            });
            p.clear();
        }
    };
    for p in doc.descendants().filter(|n| is_w(n, "p")) {
        let text = paragraph_text(p);
        if text.is_empty() {
            continue;
        }
        match heading_level(p, &heading_styles) {
            Some(level) => {
                flush(&mut sections, &stack, &mut paragraphs);
                while stack.last().is_some_and(|(l, _)| *l >= level) {
                    stack.pop();
                }
                stack.push((level, text));
            }
            None => paragraphs.push(text),
        }
    }
    flush(&mut sections, &stack, &mut paragraphs);
    if sections.is_empty() {
        return Err(parse("the document has no text".into()));
    }
    Ok(sections)
}

/// One XML part of the package, if present.
fn read_part(
    zip: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>,
    name: &str,
    file: &str,
) -> Result<Option<String>> {
    let parse = |e: &dyn std::fmt::Display| KbError::Parse {
        file: file.to_string(),
        line: 0,
        message: format!("{name}: {e}"),
    };
    let part = match zip.by_name(name) {
        Ok(part) => part,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(parse(&e)),
    };
    let mut text = String::new();
    part.take(MAX_PART_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| parse(&e))?;
    Ok(Some(text))
}

/// An element in WordprocessingML's main namespace with this local name.
fn is_w(n: &roxmltree::Node<'_, '_>, name: &str) -> bool {
    n.is_element()
        && n.tag_name().name() == name
        && n.tag_name()
            .namespace()
            .is_some_and(|ns| ns.ends_with("/wordprocessingml/2006/main"))
}

/// The `w:val` attribute (in the main namespace).
fn val<'a>(n: roxmltree::Node<'a, '_>) -> Option<&'a str> {
    n.attributes()
        .find(|a| a.name() == "val")
        .map(|a| a.value())
}

/// A paragraph's text: its runs' text, tabs as spaces, line breaks as spaces.
fn paragraph_text(p: roxmltree::Node<'_, '_>) -> String {
    let mut out = String::new();
    for n in p.descendants() {
        if is_w(&n, "t") {
            out.push_str(n.text().unwrap_or(""));
        } else if is_w(&n, "tab") || is_w(&n, "br") {
            out.push(' ');
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// 1-based heading level: the paragraph's own outline level, else its style's.
fn heading_level(p: roxmltree::Node<'_, '_>, styles: &HashMap<String, usize>) -> Option<usize> {
    let props = p.children().find(|n| is_w(n, "pPr"))?;
    if let Some(level) = props
        .children()
        .find(|n| is_w(n, "outlineLvl"))
        .and_then(val)
        .and_then(|v| v.parse::<usize>().ok())
    {
        return (level < 9).then_some(level + 1);
    }
    let style = props.children().find(|n| is_w(n, "pStyle")).and_then(val)?;
    styles.get(style).copied()
}

/// Style id → heading level, for paragraph styles with an outline level or named "heading N"
/// ("Title" counts as level 1).
fn heading_levels(
    styles_xml: &str,
) -> std::result::Result<HashMap<String, usize>, roxmltree::Error> {
    let doc = roxmltree::Document::parse(styles_xml)?;
    let mut out = HashMap::new();
    for style in doc.descendants().filter(|n| is_w(n, "style")) {
        let Some(id) = style.attributes().find(|a| a.name() == "styleId") else {
            continue;
        };
        let outline = style
            .descendants()
            .find(|n| is_w(n, "outlineLvl"))
            .and_then(val)
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|l| *l < 9)
            .map(|l| l + 1);
        let name = style
            .children()
            .find(|n| is_w(n, "name"))
            .and_then(val)
            .unwrap_or("")
            .to_ascii_lowercase();
        let by_name = match name.strip_prefix("heading ") {
            Some(n) => n.trim().parse::<usize>().ok(),
            None => (name == "title").then_some(1),
        };
        if let Some(level) = outline.or(by_name) {
            out.insert(id.value().to_string(), level);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_docx_keeps_its_heading_paths_in_both_languages() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/ingest/care-guide.docx");
        let bytes = std::fs::read(&path).expect("fixture");
        let s = sections(&bytes, "care-guide.docx").expect("sections");
        assert_eq!(s.len(), 4, "{s:?}");
        assert_eq!(
            s[2].headings,
            ["保修服务 Warranty service", "保修期限 Warranty period"]
        );
        assert_eq!(
            s[2].text,
            "紫砂壶自签收之日起享受 18 个月保修，烧制裂纹可免费换新。\nClay teapots carry an 18-month warranty from delivery; firing cracks are replaced free of charge."
        );
        assert_eq!(
            s[1].headings,
            ["紫砂壶保养 Clay teapot care", "日常清洁 Daily cleaning"]
        );
    }

    #[test]
    fn other_files_are_clear_errors() {
        let e = sections(b"plain text", "notes.docx").expect_err("not a zip");
        assert!(e.to_string().contains("not a DOCX"), "{e}");
    }
}
