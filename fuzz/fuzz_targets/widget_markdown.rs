//! The widget's message renderer, which every visitor's browser runs on text from the wire: beyond
//! "no panic", `render::invariants::check` asserts what keeps a message from becoming markup
//! (allowed elements only, proper nesting, safe links, balanced output, all text as text).
#![no_main]

use kefu_widget::render::invariants::check;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(input) = std::str::from_utf8(data) {
        check(input);
    }
});
