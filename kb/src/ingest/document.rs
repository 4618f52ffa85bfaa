//! Documents (Markdown, HTML, plain text) as sections under their heading path, then chunk records.

use pulldown_cmark::{Event, HeadingLevel, Parser, Tag, TagEnd};
use scraper::{Html, Node};

use super::chunk::{chunk_text, CHUNK_CHARS, OVERLAP_CHARS};
use super::{EntryKind, Record};

/// Text under one heading path.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Section {
    /// Enclosing headings, outermost first.
    pub headings: Vec<String>,
    pub text: String,
}

fn push_heading(stack: &mut Vec<(usize, String)>, level: usize, title: String) {
    while stack.last().is_some_and(|(l, _)| *l >= level) {
        stack.pop();
    }
    stack.push((level, title));
}

fn flush(sections: &mut Vec<Section>, stack: &[(usize, String)], text: &mut String) {
    if !text.trim().is_empty() {
        sections.push(Section {
            headings: stack.iter().map(|(_, t)| t.clone()).collect(),
            text: text.trim().to_string(),
        });
    }
    text.clear();
}

fn level_of(h: HeadingLevel) -> usize {
    match h {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// Markdown -> sections.
pub fn markdown_sections(md: &str) -> Vec<Section> {
    let mut sections = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut text = String::new();
    let mut heading: Option<(usize, String)> = None;
    for ev in Parser::new(md) {
        match ev {
            Event::Start(Tag::Heading { level, .. }) => {
                flush(&mut sections, &stack, &mut text);
                heading = Some((level_of(level), String::new()));
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((l, t)) = heading.take() {
                    push_heading(&mut stack, l, t.trim().to_string());
                }
            }
            Event::Text(t) | Event::Code(t) => match heading.as_mut() {
                Some((_, h)) => h.push_str(&t),
                None => text.push_str(&t),
            },
            Event::SoftBreak => text.push(' '),
            Event::HardBreak
            | Event::End(TagEnd::Paragraph)
            | Event::End(TagEnd::Item)
            | Event::End(TagEnd::CodeBlock)
            | Event::End(TagEnd::TableRow) => text.push('\n'),
            Event::End(TagEnd::TableCell) => text.push(' '),
            _ => {}
        }
    }
    flush(&mut sections, &stack, &mut text);
    sections
}

const BLOCK_TAGS: &[&str] = &[
    "p",
    "div",
    "li",
    "tr",
    "br",
    "section",
    "article",
    "blockquote",
    "pre",
    "table",
    "ul",
    "ol",
    "dd",
    "dt",
];
const SKIP_TAGS: &[&str] = &[
    "script", "style", "noscript", "template", "head", "nav", "svg",
];

/// HTML -> sections (text of `<body>`, headings `h1`–`h6`; scripts and styles dropped).
pub fn html_sections(html: &str) -> Vec<Section> {
    let doc = Html::parse_document(html);
    let mut sections = Vec::new();
    let mut stack = Vec::new();
    let mut text = String::new();
    walk(doc.tree.root(), &mut sections, &mut stack, &mut text);
    flush(&mut sections, &stack, &mut text);
    sections
}

fn walk(
    node: ego_tree::NodeRef<'_, Node>,
    sections: &mut Vec<Section>,
    stack: &mut Vec<(usize, String)>,
    text: &mut String,
) {
    for child in node.children() {
        match child.value() {
            Node::Text(t) => push_collapsed(text, t),
            Node::Element(e) => {
                let name = e.name();
                if SKIP_TAGS.contains(&name) {
                    continue;
                }
                let heading = name
                    .strip_prefix('h')
                    .and_then(|d| d.parse::<usize>().ok())
                    .filter(|l| (1..=6).contains(l));
                if let Some(level) = heading {
                    flush(sections, stack, text);
                    let title: String = child
                        .descendants()
                        .filter_map(|d| d.value().as_text().map(|t| t.to_string()))
                        .collect::<String>();
                    push_heading(
                        stack,
                        level,
                        title.split_whitespace().collect::<Vec<_>>().join(" "),
                    );
                    continue;
                }
                let block = BLOCK_TAGS.contains(&name);
                if block {
                    text.push('\n');
                }
                walk(child, sections, stack, text);
                if block {
                    text.push('\n');
                }
            }
            _ => {}
        }
    }
}

/// Appends text with whitespace runs folded to one space (none at a line start).
fn push_collapsed(out: &mut String, t: &str) {
    for c in t.chars() {
        if c.is_whitespace() {
            if !out.is_empty() && !out.ends_with([' ', '\n']) {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
}

/// Plain text -> one section per blank-line-separated block (no headings).
pub fn text_sections(txt: &str) -> Vec<Section> {
    txt.split("\n\n")
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(|b| Section {
            headings: Vec::new(),
            text: b.to_string(),
        })
        .collect()
}

/// Lines of one paragraph as one line: joined with a space, except between two Chinese (or other
/// CJK) characters, where a wrapped line has none.
pub fn join_lines(lines: &[String]) -> String {
    let mut out = String::new();
    for line in lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
        let glued =
            out.chars().last().is_some_and(is_cjk) && line.chars().next().is_some_and(is_cjk);
        if !out.is_empty() && !glued {
            out.push(' ');
        }
        out.push_str(line);
    }
    out
}

fn is_cjk(c: char) -> bool {
    crate::lang::is_han(c)
        || matches!(c, '\u{3000}'..='\u{303f}' | '\u{ff00}'..='\u{ffef}' | '\u{3040}'..='\u{30ff}')
}

/// Sections written as Markdown that `markdown_sections` reads back unchanged: each heading path
/// as headings, each line of text as a paragraph with every ASCII punctuation character
/// backslash-escaped (CommonMark lets any of them be escaped, so no text becomes markup).
pub fn sections_markdown(sections: &[Section]) -> String {
    let mut out = String::new();
    let mut open: Vec<String> = Vec::new();
    for s in sections {
        let same = open
            .iter()
            .zip(&s.headings)
            .take_while(|(a, b)| a == b)
            .count();
        // A section whose path is a prefix of the open one needs its last heading again.
        let start = if same == s.headings.len() && same > 0 && same < open.len() {
            same - 1
        } else {
            same
        };
        for (depth, h) in s.headings.iter().enumerate().skip(start) {
            out.push_str(&"#".repeat((depth + 1).min(6)));
            out.push(' ');
            out.push_str(&escape_markdown(h));
            out.push_str("\n\n");
        }
        open = s.headings.clone();
        for line in s.text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            out.push_str(&escape_markdown(line));
            out.push_str("\n\n");
        }
    }
    out
}

fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
    {
        if c.is_ascii_punctuation() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Chunks every section into records keyed `file#n`, titled by heading path (or the file name).
pub fn records(sections: Vec<Section>, file: &str) -> Vec<Record> {
    let stem = std::path::Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(file)
        .to_string();
    let mut out = Vec::new();
    for s in sections {
        let title = if s.headings.is_empty() {
            stem.clone()
        } else {
            s.headings.join(" > ")
        };
        for chunk in chunk_text(&s.text, CHUNK_CHARS, OVERLAP_CHARS) {
            let n = out.len();
            out.push(Record {
                key: format!("doc:{file}#{n}"),
                kind: EntryKind::Chunk,
                question: title.clone(),
                answer: chunk,
                alternates: Vec::new(),
                tags: Vec::new(),
                source: format!("{file} > {title}"),
                source_file: file.to_string(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_keeps_heading_paths() {
        let md = "# 退货政策\n\n收到商品 7 天内可申请退货。\n\n## Refunds\n\nRefunds go back to the original\npayment method.\n\n- item one\n- item two\n\n# Shipping\n\nWe ship daily.";
        let s = markdown_sections(md);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].headings, vec!["退货政策"]);
        assert_eq!(s[1].headings, vec!["退货政策", "Refunds"]);
        assert!(s[1].text.contains("original payment method."));
        assert!(s[1].text.contains("item two"));
        assert_eq!(s[2].headings, vec!["Shipping"]);
    }

    #[test]
    fn html_drops_scripts_and_keeps_headings() {
        let html = "<html><head><title>x</title><style>p{}</style></head><body><h1>Help</h1><p>Call us <b>any</b> time.</p><script>alert(1)</script><h2>Hours</h2><ul><li>Mon–Fri</li><li>9–18</li></ul></body></html>";
        let s = html_sections(html);
        assert_eq!(s[0].headings, vec!["Help"]);
        assert_eq!(s[0].text, "Call us any time.");
        assert!(!s.iter().any(|x| x.text.contains("alert")));
        assert_eq!(s[1].headings, vec!["Help", "Hours"]);
        assert!(s[1].text.contains("Mon–Fri") && s[1].text.contains("9–18"));
    }

    #[test]
    fn sections_survive_markdown_unchanged() {
        let sections = vec![
            Section {
                headings: vec!["1. 退货政策 #1".into()],
                text: "收到商品 7 天内可申请退货。\n# not a heading *nor emphasis* [x](y) <b>&amp; `c`".into(),
            },
            Section {
                headings: vec!["1. 退货政策 #1".into(), "- Refunds_".into()],
                text: "2. Refunds go back to the original payment method.\n> \\ quoted?".into(),
            },
            Section {
                headings: vec!["1. 退货政策 #1".into()],
                text: "Back under the first heading.".into(),
            },
        ];
        assert_eq!(markdown_sections(&sections_markdown(&sections)), sections);
    }

    #[test]
    fn wrapped_lines_join_with_spaces_except_inside_chinese() {
        let lines = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            join_lines(&lines(&["Refunds go back to the", "original method."])),
            "Refunds go back to the original method."
        );
        assert_eq!(
            join_lines(&lines(&[
                "收到商品后七天内可以",
                "申请退货，运费由买家承担。"
            ])),
            "收到商品后七天内可以申请退货，运费由买家承担。"
        );
    }

    #[test]
    fn records_are_keyed_by_file_and_position() {
        let r = records(text_sections("first block\n\nsecond block"), "notes.txt");
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].key, "doc:notes.txt#1");
        assert_eq!(r[0].question, "notes");
        assert_eq!(r[0].kind, EntryKind::Chunk);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]
        /// Any outline of headings (levels 1–4) and paragraphs: every paragraph's section carries
        /// exactly the headings above it, outermost first, and its text.
        #[test]
        fn markdown_sections_keep_heading_paths(
            outline in proptest::collection::vec(
                (0usize..5, "[a-z退货政策]{1,8}", "[a-z包邮 ]{0,20}"),
                0..30,
            )
        ) {
            let mut md = String::new();
            let mut stack: Vec<(usize, String)> = Vec::new();
            let mut expected = Vec::new();
            for (i, (level, title, words)) in outline.into_iter().enumerate() {
                if level == 0 {
                    // A paragraph, tagged so it can be found.
                    let text = format!("p{i} {words}").trim().to_string();
                    md.push_str(&format!("{text}\n\n"));
                    expected.push((stack.iter().map(|(_, t)| t.clone()).collect::<Vec<_>>(), text));
                } else {
                    md.push_str(&format!("{} {title}\n\n", "#".repeat(level)));
                    while stack.last().is_some_and(|(l, _)| *l >= level) {
                        stack.pop();
                    }
                    stack.push((level, title));
                }
            }
            let sections = markdown_sections(&md);
            let found: Vec<(Vec<String>, String)> = sections
                .iter()
                .flat_map(|s| s.text.lines().map(|l| (s.headings.clone(), l.trim().to_string())))
                .filter(|(_, l)| !l.is_empty())
                .collect();
            proptest::prop_assert_eq!(found, expected);
        }
    }
}
