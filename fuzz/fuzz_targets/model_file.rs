//! The `E5S1` embedding-model file: every count, offset and size in it is checked against the file,
//! so a truncated or hostile file is refused with a reason, and a file that loads tokenises and
//! embeds text within its own bounds.
#![no_main]

use std::path::Path;

use kefu_kb::embed::e5::E5Model;
use kefu_kb::embed::e5s1::E5S1File;
use kefu_kb::embed::EmbedModel;
use kefu_kb::TextRole;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = E5S1File::parse(Path::new("fuzz.bin"), data.to_vec()) else {
        return;
    };
    let hidden = file.header.hidden;
    let Ok(model) = E5Model::from_file(file) else {
        return;
    };
    for text in ["退货政策 return policy", "", "ＡＢＣ１２３ 　 x"] {
        let ids = model
            .tokenize(text, TextRole::Query)
            .expect("any text tokenises");
        if let Ok(vectors) = model.encode(&[ids]) {
            assert_eq!(vectors.len(), 1);
            assert_eq!(vectors[0].len(), hidden);
        }
    }
});
