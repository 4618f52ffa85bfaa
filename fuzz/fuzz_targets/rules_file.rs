//! An operator's rules file (TOML or YAML, chosen by the first byte) as `kefu serve --rules` and the
//! admin API load it, then matched against visitor messages. A file is accepted or refused with a
//! reason; an accepted file's rules match any message without a crash.
#![no_main]

use kefu_server::triage::RuleSet;
use libfuzzer_sys::fuzz_target;

const MESSAGES: &[&str] = &[
    "转人工",
    "I want a refund for order 12345",
    "退货怎么办？",
    "",
    "HUMAN!!!",
];

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let format = if which % 2 == 0 { "toml" } else { "yaml" };
    let Ok(rules) = RuleSet::parse(text, format, "rules") else {
        return;
    };
    for message in MESSAGES.iter().copied().chain([text]) {
        if let Some(m) = rules.evaluate(message) {
            assert!(!m.actions.is_empty(), "a match with nothing to do");
        }
    }
    let _ = rules.counts();
});
