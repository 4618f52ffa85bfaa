//! Chat spellings of common words rewritten to their standard forms (啥 → 什么, 咋 → 怎么, u → you,
//! dont → don't) before a question is tokenised, so that the encoder, trained mostly on edited
//! text, reads a visitor's 啥时候发货 as it reads 什么时候发货.
//!
//! Only words whose standard form is unambiguous are rewritten. English words are whole words
//! (neighbours that are letters or digits of any script, as in "U盘", keep them), matched in lower
//! case or with a capital first letter ("Pls"); a capital "U" or "UR" stays.

use std::borrow::Cow;

/// Identifies this table in cache keys and content hashes: bump it when the table changes, so
/// that vectors of the old reading are not reused.
pub const RECIPE: &str = "colloquial-1";

/// Chinese spellings, longest first (啥子 before 啥).
const ZH: &[(&str, &str)] = &[
    ("啥子", "什么"),
    ("神马", "什么"),
    ("肿么", "怎么"),
    ("木有", "没有"),
    ("啥", "什么"),
    ("咋", "怎么"),
];

/// English chat spellings (lower case).
const EN: &[(&str, &str)] = &[
    ("u", "you"),
    ("ur", "your"),
    ("pls", "please"),
    ("plz", "please"),
    ("thx", "thanks"),
    ("thanx", "thanks"),
    ("wanna", "want to"),
    ("gonna", "going to"),
    ("cuz", "because"),
    ("coz", "because"),
    ("tmr", "tomorrow"),
    ("tmrw", "tomorrow"),
    ("b4", "before"),
    ("dont", "don't"),
    ("doesnt", "doesn't"),
    ("didnt", "didn't"),
    ("cant", "can't"),
    ("isnt", "isn't"),
    ("arent", "aren't"),
    ("wasnt", "wasn't"),
    ("havent", "haven't"),
    ("hasnt", "hasn't"),
    ("wouldnt", "wouldn't"),
    ("couldnt", "couldn't"),
    ("shouldnt", "shouldn't"),
    ("im", "I'm"),
    ("ive", "I've"),
];

/// `text` with chat spellings replaced; borrowed when there is nothing to replace.
pub fn standard(text: &str) -> Cow<'_, str> {
    let zh = standard_zh(text);
    match standard_en(&zh) {
        Cow::Borrowed(_) => zh,
        Cow::Owned(s) => Cow::Owned(s),
    }
}

fn standard_zh(text: &str) -> Cow<'_, str> {
    if !ZH.iter().any(|(from, _)| text.contains(from)) {
        return Cow::Borrowed(text);
    }
    let mut s = text.to_string();
    for (from, to) in ZH {
        if s.contains(from) {
            s = s.replace(from, to);
        }
    }
    Cow::Owned(s)
}

/// The standard form of one ASCII word, if it is a chat spelling.
fn replacement(word: &str) -> Option<String> {
    let lower = word.to_ascii_lowercase();
    let (_, to) = EN.iter().find(|(from, _)| *from == lower)?;
    let mut first = word.chars();
    let capitalised = first.next().is_some_and(|c| c.is_ascii_uppercase())
        && first.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if word == lower {
        Some((*to).to_string())
    } else if capitalised && word.len() > 1 {
        // "Pls" reads "Please"; a lone capital ("U", as in U盘 or grade U) is not a chat spelling.
        let mut c = to.chars();
        c.next()
            .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
    } else {
        None
    }
}

/// Characters that make one word of their neighbours (U盘, u-boat, u@example.com, can't).
fn joins(c: char) -> bool {
    c.is_alphanumeric() || "'’-_@/&".contains(c)
}

fn joined_before(prev: Option<char>) -> bool {
    prev.is_some_and(|c| joins(c) || c == '.')
}

/// Whether the word continues in `rest`; a full stop ends it unless more of the word follows
/// ("u.s.").
fn joined_after(rest: &str) -> bool {
    let mut next = rest.chars();
    match next.next() {
        Some('.') => next.next().is_some_and(char::is_alphanumeric),
        Some(c) => joins(c),
        None => false,
    }
}

fn standard_en(text: &str) -> Cow<'_, str> {
    let mut out: Option<String> = None;
    let mut last = 0; // end of what `out` holds of `text`
    let mut prev: Option<char> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if !c.is_ascii_alphanumeric() {
            prev = Some(c);
            continue;
        }
        let mut end = start + c.len_utf8();
        while let Some(&(i, d)) = chars.peek() {
            if !d.is_ascii_alphanumeric() {
                break;
            }
            end = i + d.len_utf8();
            chars.next();
        }
        let word = &text[start..end];
        if !joined_before(prev) && !joined_after(&text[end..]) {
            if let Some(to) = replacement(word) {
                let s = out.get_or_insert_with(|| String::with_capacity(text.len() + 8));
                s.push_str(&text[last..start]);
                s.push_str(&to);
                last = end;
            }
        }
        prev = text[..end].chars().next_back();
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut s) => {
            s.push_str(&text[last..]);
            Cow::Owned(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::standard;

    #[test]
    fn chinese_chat_words_read_as_standard_ones() {
        assert_eq!(standard("周末下的单啥时候发"), "周末下的单什么时候发");
        assert_eq!(standard("咋退货，为啥还没到"), "怎么退货，为什么还没到");
        assert_eq!(standard("这是啥子茶"), "这是什么茶");
        assert_eq!(standard("木有收到"), "没有收到");
    }

    #[test]
    fn english_chat_words_are_replaced_as_whole_words() {
        assert_eq!(standard("when do u ship"), "when do you ship");
        assert_eq!(
            standard("Pls check ur order, thx"),
            "Please check your order, thanks"
        );
        assert_eq!(standard("i dont wanna wait"), "i don't want to wait");
        assert_eq!(standard("im not home b4 6"), "I'm not home before 6");
    }

    #[test]
    fn other_words_and_capitals_stay() {
        for text in [
            "U盘能退吗",
            "UR code",
            "menu",
            "user guide",
            "you're fine",
            "can't wait",
            "u-boat",
            "u.s. orders",
            "mail u@example.com",
            "Rome",
            "订单号 im12345",
            "",
        ] {
            assert_eq!(standard(text), text);
        }
        assert_eq!(standard("Im back"), "I'm back");
        assert_eq!(standard("thank u."), "thank you.");
    }

    #[test]
    fn text_without_chat_words_is_borrowed() {
        assert!(matches!(
            standard("When will my order ship?"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert!(matches!(
            standard("下单后多久发货？"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
