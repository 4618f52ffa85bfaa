//! WebSocket text frames: a client's frame as the server decodes it, and a server's frame as the
//! client core reads it. A decoded frame re-encodes to a frame that decodes to itself; a refusal
//! carries a code from the protocol's vocabulary.
#![no_main]

use kefu_protocol::{decode_client_frame, ErrorCode, ServerFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // WebSocket text frames are UTF-8 by the time they are decoded.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match decode_client_frame(text) {
        Ok(frame) => {
            let again = serde_json::to_string(&frame).expect("a decoded frame encodes");
            assert_eq!(
                decode_client_frame(&again).expect("a re-encoded frame decodes"),
                frame
            );
        }
        Err(e) => assert!(
            ErrorCode::ALL.contains(&e.code),
            "unknown code {:?}",
            e.code
        ),
    }
    if let Ok(frame) = serde_json::from_str::<ServerFrame>(text) {
        let again = serde_json::to_string(&frame).expect("a server frame encodes");
        let back: ServerFrame = serde_json::from_str(&again).expect("a re-encoded frame decodes");
        assert_eq!(back, frame);
    }
});
