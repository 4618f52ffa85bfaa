//! What a file is, from its bytes (never from its name or the sender's claim), and the kinds a
//! site may allow.

use std::fmt;

/// A family of files a site allows or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// PNG, JPEG, GIF, WebP (thumbnails are made).
    Image,
    Pdf,
    /// Word, Excel and PowerPoint files (OOXML).
    Office,
    /// Plain UTF-8 text (served as `text/plain`, as a download).
    Text,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Image, Kind::Pdf, Kind::Office, Kind::Text];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Pdf => "pdf",
            Kind::Office => "office",
            Kind::Text => "text",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.label() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A comma-separated list of kinds (`image,pdf`); `none` or an empty list allows nothing.
pub fn parse_kinds(s: &str) -> Result<Vec<Kind>, String> {
    let s = s.trim();
    if s.is_empty() || s.eq_ignore_ascii_case("none") {
        return Ok(vec![]);
    }
    let mut out = Vec::new();
    for part in s.split(',').map(|p| p.trim().to_ascii_lowercase()) {
        let kind = Kind::parse(&part).ok_or_else(|| {
            format!("unknown attachment kind `{part}` (kinds: image, pdf, office, text, or none)")
        })?;
        if !out.contains(&kind) {
            out.push(kind);
        }
    }
    Ok(out)
}

/// The comma-separated form of `kinds`.
pub fn kinds_text(kinds: &[Kind]) -> String {
    kinds
        .iter()
        .map(|k| k.label())
        .collect::<Vec<_>>()
        .join(",")
}

/// The kind and content type of `bytes`, or `None` when they are none of the kinds.
pub fn sniff(bytes: &[u8]) -> Option<(Kind, &'static str)> {
    if let Some(t) = infer::get(bytes) {
        let found = match t.mime_type() {
            m @ ("image/png" | "image/jpeg" | "image/gif" | "image/webp") => (Kind::Image, m),
            "application/pdf" => (Kind::Pdf, "application/pdf"),
            m @ ("application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            | "application/vnd.openxmlformats-officedocument.presentationml.presentation") => {
                (Kind::Office, m)
            }
            _ => return None,
        };
        return Some(found);
    }
    is_text(bytes).then_some((Kind::Text, "text/plain; charset=utf-8"))
}

/// UTF-8 without NULs or other control characters than tab, line feed and carriage return.
fn is_text(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|s| {
        s.chars()
            .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_known_by_their_bytes() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(sniff(png), Some((Kind::Image, "image/png")));
        assert_eq!(
            sniff(b"\xff\xd8\xff\xe0\0\x10JFIF\0"),
            Some((Kind::Image, "image/jpeg"))
        );
        assert_eq!(
            sniff(b"%PDF-1.7\n%\xe2\xe3"),
            Some((Kind::Pdf, "application/pdf"))
        );
        assert_eq!(
            sniff("订单号 12345\n请查收。".as_bytes()),
            Some((Kind::Text, "text/plain; charset=utf-8"))
        );
        // Markup inside text stays text (served as text/plain, downloaded); an HTML page is
        // refused.
        assert_eq!(
            sniff(b"note: <script>alert(1)</script>").map(|k| k.1),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(sniff(b"<html><script>alert(1)</script>"), None);
        assert_eq!(sniff(b"MZ\x90\0\x03\0\0\0"), None, "a Windows program");
        assert_eq!(sniff(b"PK\x03\x04\x14\0\0\0"), None, "a plain zip");
        assert_eq!(sniff(b"bin\0ary"), None);
        assert_eq!(sniff(b"\xff\xfe\xfd"), None, "not UTF-8");
    }

    #[test]
    fn kinds_parse_and_print() {
        assert_eq!(
            parse_kinds("image, PDF,image"),
            Ok(vec![Kind::Image, Kind::Pdf])
        );
        assert_eq!(parse_kinds("none"), Ok(vec![]));
        assert!(parse_kinds("image,exe").is_err());
        assert_eq!(kinds_text(&Kind::ALL), "image,pdf,office,text");
    }
}
