//! Message text to safe markup: a small markdown subset replayed as elements into a `Sink` (the
//! DOM in the browser). Everything from the wire ends up in text nodes: raw HTML is shown as
//! the text it is, links keep only http(s) and mailto targets, images are not supported.
//!
//! Chat messages use a handful of markdown forms (paragraphs, line breaks, `-`/`1.` lists,
//! `>` quotes, fenced code, `**strong**`, `*em*`, `~~del~~`, `` `code` ``, `[text](url)`), so this
//! is a small purpose-built reader rather than a full CommonMark parser: pulldown-cmark alone
//! added 155 KB (68 KB gzip) to the widget's wasm.

/// Where rendered nodes go. Every string handed to `text` is plain text (a DOM text node).
pub trait Sink {
    /// Opens an element (one of `ALLOWED_TAGS`); `href` only for `a`.
    fn open(&mut self, tag: &'static str, href: Option<&str>);
    fn close(&mut self);
    fn text(&mut self, text: &str);
    /// A line break (`br`).
    fn line_break(&mut self);
}

/// Every element the renderer may create.
pub const ALLOWED_TAGS: &[&str] = &[
    "p",
    "em",
    "strong",
    "del",
    "a",
    "ul",
    "ol",
    "li",
    "pre",
    "code",
    "blockquote",
];

/// True for link targets a visitor may follow.
pub fn safe_href(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://") || lower.starts_with("mailto:")
}

/// One block of the message.
#[derive(Debug, PartialEq)]
enum Block<'a> {
    Paragraph(Vec<&'a str>),
    List { ordered: bool, items: Vec<&'a str> },
    Quote(Vec<&'a str>),
    Code(Vec<&'a str>),
}

fn list_item(line: &str) -> Option<(bool, &str)> {
    let t = line.trim_start();
    for bullet in ["- ", "* ", "+ ", "• "] {
        if let Some(rest) = t.strip_prefix(bullet) {
            return Some((false, rest));
        }
    }
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if (1..=3).contains(&digits) {
        let rest = &t[digits..];
        if let Some(item) = rest.strip_prefix(". ").or_else(|| rest.strip_prefix(") ")) {
            return Some((true, item));
        }
    }
    None
}

fn blocks(text: &str) -> Vec<Block<'_>> {
    let mut out: Vec<Block> = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            let mut code = Vec::new();
            for l in lines.by_ref() {
                if l.trim_start().starts_with("```") {
                    break;
                }
                code.push(l);
            }
            out.push(Block::Code(code));
        } else if line.trim().is_empty() {
            // A blank line ends the current block.
            out.push(Block::Paragraph(Vec::new()));
        } else if let Some((ordered, item)) = list_item(line) {
            match out.last_mut() {
                Some(Block::List { ordered: o, items }) if *o == ordered => items.push(item),
                _ => out.push(Block::List {
                    ordered,
                    items: vec![item],
                }),
            }
        } else if let Some(q) = trimmed.strip_prefix('>') {
            let q = q.strip_prefix(' ').unwrap_or(q);
            match out.last_mut() {
                Some(Block::Quote(ls)) => ls.push(q),
                _ => out.push(Block::Quote(vec![q])),
            }
        } else {
            let heading = trimmed.trim_start_matches('#');
            let line = if heading.len() < trimmed.len() && heading.starts_with(' ') {
                heading.trim_start()
            } else {
                line
            };
            match out.last_mut() {
                Some(Block::Paragraph(ls)) if !ls.is_empty() => ls.push(line),
                _ => out.push(Block::Paragraph(vec![line])),
            }
        }
    }
    out.retain(|b| !matches!(b, Block::Paragraph(ls) if ls.is_empty()));
    out
}

/// Renders `markdown` into `sink`.
pub fn render(markdown: &str, sink: &mut impl Sink) {
    for block in blocks(markdown) {
        match block {
            Block::Paragraph(lines) => wrap(sink, "p", |s| lines_inline(s, &lines)),
            Block::Quote(lines) => wrap(sink, "blockquote", |s| lines_inline(s, &lines)),
            Block::Code(lines) => wrap(sink, "pre", |s| {
                wrap(s, "code", |s| s.text(&lines.join("\n")));
            }),
            Block::List { ordered, items } => wrap(sink, if ordered { "ol" } else { "ul" }, |s| {
                for item in items {
                    wrap(s, "li", |s| inline(s, item));
                }
            }),
        }
    }
}

fn wrap<S: Sink>(sink: &mut S, tag: &'static str, body: impl FnOnce(&mut S)) {
    sink.open(tag, None);
    body(sink);
    sink.close();
}

fn lines_inline(sink: &mut impl Sink, lines: &[&str]) {
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            sink.line_break();
        }
        inline(sink, line);
    }
}

/// Inline spans: `code`, **strong**, *em* / _em_, ~~del~~, [text](url). Unclosed markers are text.
fn inline(sink: &mut impl Sink, text: &str) {
    let mut plain_start = 0;
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < bytes.len() {
        let rest = &text[i..];
        // `_` marks emphasis only at a word start (not inside snake_case).
        let word_start = !text[..i].ends_with(|c: char| c.is_alphanumeric());
        let underscore_ok = word_start || !rest.starts_with('_');
        let span = if !underscore_ok {
            None
        } else if let Some(after) = rest.strip_prefix('`') {
            after
                .find('`')
                .map(|end| (2 + end, Span::Code(&after[..end])))
        } else if let Some(m) = ["**", "__", "~~"].into_iter().find(|m| rest.starts_with(m)) {
            closing(&rest[2..], m).map(|end| {
                let inner = &rest[2..2 + end];
                let tag = if m == "~~" { "del" } else { "strong" };
                (4 + end, Span::Nested(tag, inner))
            })
        } else if rest.starts_with('*') || rest.starts_with('_') {
            let m = &rest[..1];
            closing(&rest[1..], m).map(|end| (2 + end, Span::Nested("em", &rest[1..1 + end])))
        } else if rest.starts_with('[') {
            link(rest)
        } else {
            None
        };
        match span {
            Some((len, span)) => {
                if plain_start < i {
                    sink.text(&text[plain_start..i]);
                }
                match span {
                    Span::Code(c) => wrap(sink, "code", |s| s.text(c)),
                    Span::Nested(tag, inner) => wrap(sink, tag, |s| inline(s, inner)),
                    Span::Link(label, href) => {
                        sink.open("a", Some(href));
                        inline(sink, label);
                        sink.close();
                    }
                    Span::Text(t) => sink.text(t),
                }
                i += len;
                plain_start = i;
            }
            None => i += rest.chars().next().map_or(1, char::len_utf8),
        }
    }
    if plain_start < text.len() {
        sink.text(&text[plain_start..]);
    }
}

enum Span<'a> {
    Code(&'a str),
    Nested(&'static str, &'a str),
    Link(&'a str, &'a str),
    Text(&'a str),
}

/// Where a non-empty span closed by `marker` ends in `s` (not right after whitespace).
fn closing(s: &str, marker: &str) -> Option<usize> {
    if s.starts_with(char::is_whitespace) {
        return None;
    }
    let end = s.find(marker)?;
    let inner = &s[..end];
    (!inner.is_empty() && !inner.ends_with(char::is_whitespace)).then_some(end)
}

/// `[label](url)`: a link when the target is safe, else just the label.
fn link(rest: &str) -> Option<(usize, Span<'_>)> {
    let close = rest.find("](")?;
    let label = &rest[1..close];
    let after = &rest[close + 2..];
    let end = after.find(')')?;
    let url = after[..end].trim();
    let len = close + 2 + end + 1;
    if label.is_empty() || label.contains('[') {
        return None;
    }
    Some(if safe_href(url) {
        (len, Span::Link(label, url))
    } else {
        (len, Span::Text(label))
    })
}

/// Renders to an HTML string with every text escaped (tests and previews).
pub fn to_html(markdown: &str) -> String {
    struct Html {
        out: String,
        stack: Vec<&'static str>,
    }
    impl Sink for Html {
        fn open(&mut self, tag: &'static str, href: Option<&str>) {
            match href {
                Some(h) => self.out.push_str(&format!("<a href=\"{}\">", escape(h))),
                None => self.out.push_str(&format!("<{tag}>")),
            }
            self.stack.push(tag);
        }
        fn close(&mut self) {
            if let Some(tag) = self.stack.pop() {
                self.out.push_str(&format!("</{tag}>"));
            }
        }
        fn text(&mut self, text: &str) {
            self.out.push_str(&escape(text));
        }
        fn line_break(&mut self) {
            self.out.push_str("<br>");
        }
    }
    fn escape(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    }
    let mut h = Html {
        out: String::new(),
        stack: Vec::new(),
    };
    render(markdown, &mut h);
    h.out
}

/// The renderer's safety invariants, checked on everything it emits for any input (the property
/// tests and the fuzz target call `check`): only the allowed elements, properly nested (inline
/// inside block, list items inside lists, no link in a link); every link http(s) or mailto; every
/// open element closed; every text a piece of the input; and the HTML form escapes everything that
/// is not one of those elements.
#[cfg(any(test, fuzzing))]
pub mod invariants {
    use super::{render, safe_href, to_html, Sink, ALLOWED_TAGS};

    const BLOCKS: &[&str] = &["p", "ul", "ol", "pre", "blockquote"];
    const INLINE: &[&str] = &["em", "strong", "del", "a", "code"];

    struct Checked<'a> {
        input: &'a str,
        stack: Vec<&'static str>,
    }

    impl Sink for Checked<'_> {
        fn open(&mut self, tag: &'static str, href: Option<&str>) {
            assert!(ALLOWED_TAGS.contains(&tag), "element {tag} is not allowed");
            assert_eq!(href.is_some(), tag == "a", "only links have a target");
            if let Some(h) = href {
                assert!(safe_href(h), "unsafe link target {h:?}");
                let lower = h.trim().to_ascii_lowercase();
                assert!(
                    ["https://", "http://", "mailto:"]
                        .iter()
                        .any(|p| lower.starts_with(p)),
                    "link target {h:?}"
                );
            }
            let parent = self.stack.last().copied();
            match tag {
                t if BLOCKS.contains(&t) => assert!(parent.is_none(), "{t} inside {parent:?}"),
                "li" => assert!(matches!(parent, Some("ul" | "ol")), "li inside {parent:?}"),
                "code" if parent == Some("pre") => {}
                t => {
                    assert!(INLINE.contains(&t), "unexpected {t}");
                    assert!(parent.is_some(), "{t} outside a block");
                    assert!(
                        !matches!(parent, Some("ul" | "ol")),
                        "{t} directly in a list"
                    );
                    if t == "a" {
                        assert!(!self.stack.contains(&"a"), "a link inside a link");
                    }
                }
            }
            self.stack.push(tag);
        }

        fn close(&mut self) {
            assert!(
                self.stack.pop().is_some(),
                "closed more elements than it opened"
            );
        }

        fn text(&mut self, text: &str) {
            assert!(!self.stack.is_empty(), "text outside any element");
            // A code block's lines are joined with line feeds; every other text is a slice of the input.
            for piece in text.split('\n') {
                assert!(
                    self.input.contains(piece),
                    "text {piece:?} is not from the input"
                );
            }
        }

        fn line_break(&mut self) {
            assert!(
                matches!(self.stack.last().copied(), Some("p" | "blockquote")),
                "line break inside {:?}",
                self.stack.last()
            );
        }
    }

    /// Every `<` in the HTML form starts one of the renderer's own tags; `>` and `"` appear only there.
    pub fn check_html(html: &str) {
        let mut rest = html;
        while let Some(start) = rest.find(['<', '>', '"']) {
            let tail = &rest[start..];
            assert!(tail.starts_with('<'), "stray {:?} in {html:?}", &tail[..1]);
            let end = tail.find('>').expect("a tag ends");
            let tag = &tail[1..end];
            let name = tag.strip_prefix('/').unwrap_or(tag);
            let ok = tag == "br"
                || ALLOWED_TAGS.contains(&name)
                || tag
                    .strip_prefix("a href=\"")
                    .and_then(|h| h.strip_suffix('"'))
                    .is_some_and(|h| !h.contains(['"', '<', '>']));
            assert!(ok, "unexpected tag <{tag}> in {html:?}");
            rest = &tail[end + 1..];
        }
    }

    /// Renders `input` and panics on the first broken invariant.
    pub fn check(input: &str) {
        let mut sink = Checked {
            input,
            stack: Vec::new(),
        };
        render(input, &mut sink);
        assert!(sink.stack.is_empty(), "unclosed {:?}", sink.stack);
        check_html(&to_html(input));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_the_small_element_set() {
        assert_eq!(
            to_html("**包邮** on orders over *99*\n\n- one\n- two"),
            "<p><strong>包邮</strong> on orders over <em>99</em></p><ul><li>one</li><li>two</li></ul>"
        );
        assert_eq!(
            to_html("see [the FAQ](https://shop.example/faq)"),
            "<p>see <a href=\"https://shop.example/faq\">the FAQ</a></p>"
        );
        assert_eq!(to_html("`SKU-42`"), "<p><code>SKU-42</code></p>");
        assert_eq!(
            to_html("工作日发货\n周末顺延\n\n1. 下单\n2. 付款"),
            "<p>工作日发货<br>周末顺延</p><ol><li>下单</li><li>付款</li></ol>"
        );
        assert_eq!(
            to_html("> quoted\n```\n<b>x</b>\n```"),
            "<blockquote>quoted</blockquote><pre><code>&lt;b&gt;x&lt;/b&gt;</code></pre>"
        );
        assert_eq!(to_html("a * b * c, 2*3"), "<p>a * b * c, 2*3</p>");
        assert_eq!(to_html("~~old~~ new"), "<p><del>old</del> new</p>");
        assert_eq!(to_html("order_id_here"), "<p>order_id_here</p>");
    }

    #[test]
    fn html_from_the_wire_is_text_and_unsafe_links_are_dropped() {
        let out = to_html("<img src=x onerror=alert(1)> <script>alert(2)</script>");
        assert!(!out.contains("<img") && !out.contains("<script"), "{out}");
        assert!(out.contains("&lt;img src=x onerror=alert(1)&gt;"), "{out}");
        let out = to_html("[click](javascript:alert(1)) [x](data:text/html,hi)");
        assert!(!out.contains("href"), "{out}");
        assert!(out.contains("click"), "{out}");
        let out = to_html("[a](https://ok.example\" onmouseover=\"x)");
        assert!(
            out.contains("&quot; onmouseover=&quot;"),
            "quotes stay inside the attribute: {out}"
        );
        let out = to_html("<div onclick=\"x()\">\nblock html\n</div>");
        assert!(!out.contains("<div"), "{out}");
    }

    #[test]
    fn only_allowed_tags_are_ever_opened_and_every_open_is_closed() {
        struct Tags(Vec<&'static str>, i32);
        impl Sink for Tags {
            fn open(&mut self, tag: &'static str, _: Option<&str>) {
                self.0.push(tag);
                self.1 += 1;
            }
            fn close(&mut self) {
                self.1 -= 1;
            }
            fn text(&mut self, _: &str) {}
            fn line_break(&mut self) {}
        }
        let mut t = Tags(Vec::new(), 0);
        render(
            "# h\n> q\n\n1. a\n\n```\ncode\n```\n\n~~old~~ <b>x</b> **[l](http://a)** *_x_* `",
            &mut t,
        );
        assert!(
            t.0.iter().all(|tag| ALLOWED_TAGS.contains(tag)),
            "{:?}",
            t.0
        );
        assert_eq!(t.1, 0, "balanced");
    }

    /// Message text built from the renderer's own syntax, hostile targets and plain words.
    fn markdownish() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let token = prop_oneof![
            Just("**"),
            Just("__"),
            Just("*"),
            Just("_"),
            Just("~~"),
            Just("`"),
            Just("```"),
            Just("\n"),
            Just("\n\n"),
            Just("> "),
            Just("- "),
            Just("1. "),
            Just("# "),
            Just("["),
            Just("]("),
            Just(")"),
            Just("https://shop.example/a"),
            Just("javascript:alert(1)"),
            Just("mailto:a@b.example"),
            Just("<script>"),
            Just("\""),
            Just(" "),
            Just("包邮"),
            Just("word"),
            Just("snake_case"),
        ];
        proptest::collection::vec(token, 0..40).prop_map(|t| t.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn any_message_renders_within_the_invariants(text in markdownish()) {
            invariants::check(&text);
        }

        #[test]
        fn any_unicode_renders_within_the_invariants(text in "\\PC{0,200}") {
            invariants::check(&text);
        }
    }
}
