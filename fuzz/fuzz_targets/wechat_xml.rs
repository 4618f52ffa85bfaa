//! A message WeChat posts to the server URL (XML): parsed into its fields or refused with a
//! reason; the passive reply built for it is XML that reads back to the same user, account and
//! (fitted) text, whatever the text holds (CDATA ends included).
#![no_main]

use kefu_server::channels::wechat::{fit, parse_message, text_reply};
use libfuzzer_sys::fuzz_target;

/// XML parsers turn every line ending into a line feed.
fn lines(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(m) = parse_message(xml) else {
        return;
    };
    assert!(!m.account.trim().is_empty() && !m.user.trim().is_empty());
    let text = m.content.clone().unwrap_or_default();
    let reply = text_reply(&m.user, &m.account, &text, 1_700_000_000);
    let back = parse_message(&reply).expect("our reply is WeChat XML");
    assert_eq!(back.account, lines(&m.user));
    assert_eq!(back.user, lines(&m.account));
    assert_eq!(back.kind, "text");
    assert_eq!(back.content.as_deref(), Some(lines(&fit(&text)).as_str()));
});
