//! An uploaded attachment: its kind found from the bytes, an image decoded within bounds into a
//! JPEG thumbnail of at most 320 px a side, and the name it was sent under cleaned. The first two
//! input bytes give the name's length; the name comes first, then the file.
#![no_main]

use kefu_server::attachments::thumbnail::make;
use kefu_server::attachments::{clean_name, sniff, Kind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let split = usize::from(u16::from_le_bytes(*len)).min(rest.len());
    let (name, bytes) = rest.split_at(split);

    let name = clean_name(&String::from_utf8_lossy(name));
    assert!(!name.is_empty() && name != "." && name != "..");
    assert!(!name.contains(['/', '\\']) && !name.chars().any(char::is_control));
    assert!(name.chars().count() <= 200);

    let Some((kind, content_type)) = sniff(bytes) else {
        return;
    };
    match kind {
        Kind::Image => {
            assert!(content_type.starts_with("image/"));
            if let Ok(t) = make(bytes) {
                assert!(t.width > 0 && t.height > 0);
                assert!(t.jpeg.starts_with(&[0xff, 0xd8]) && t.jpeg.ends_with(&[0xff, 0xd9]));
            }
        }
        Kind::Text => {
            let text = std::str::from_utf8(bytes).expect("text is UTF-8");
            assert!(!text.contains('\0'));
        }
        Kind::Pdf | Kind::Office => {}
    }
});
