//! The password policy for agent accounts: long enough, not blank, not one of the passwords every
//! attacker tries first, not a run of one character or of a keyboard/alphabet sequence, and not
//! the account's own name.

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in characters (Argon2 takes any length; this bounds the work).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Passwords found at the top of every leaked-password list (compared case-insensitively, after
/// trimming); anything of at least 8 characters from the usual top-100.
const COMMON: &[&str] = &[
    "password",
    "password1",
    "password12",
    "password123",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "12345678",
    "123456789",
    "1234567890",
    "0123456789",
    "87654321",
    "11111111",
    "00000000",
    "88888888",
    "66666666",
    "12341234",
    "11223344",
    "123123123",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "qwertyui",
    "qwertyuiop",
    "qwerty123",
    "qwerty12",
    "asdfghjk",
    "asdfghjkl",
    "zxcvbnm1",
    "iloveyou",
    "iloveyou1",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "superman",
    "trustno1",
    "welcome1",
    "welcome123",
    "letmein1",
    "letmein123",
    "admin123",
    "administrator",
    "changeme",
    "changeme1",
    "abc12345",
    "abcd1234",
    "a1b2c3d4",
    "aa123456",
    "qq123456",
    "woaini520",
    "woaini1314",
    "5201314520",
    "1314520520",
    "wodemima",
    "mima1234",
    "dragon12",
    "master12",
    "monkey12",
    "shadow12",
    "starwars",
    "whatever",
    "computer",
    "internet",
    "football1",
    "jennifer",
    "michelle",
    "passpass",
    "secret12",
    "secret123",
    "kefu1234",
    "customer",
    "service1",
    "helpdesk",
    "support1",
    "support123",
];

/// Why a password is refused (shown to the operator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WeakPassword {
    #[error("the password must not be blank")]
    Blank,
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("the password must have at most {MAX_PASSWORD_CHARS} characters")]
    TooLong,
    #[error("this password is one of the most common ones; choose another")]
    Common,
    #[error("the password must not be the account name")]
    AccountName,
    #[error("the password is a repeated pattern or a simple sequence; choose another")]
    Repetitive,
}

/// Refuses blank, short, overlong, common and trivially patterned passwords, and the account name.
pub fn check(password: &str, account_name: &str) -> Result<(), WeakPassword> {
    let chars = password.chars().count();
    if password.trim().is_empty() {
        return Err(WeakPassword::Blank);
    }
    if chars < MIN_PASSWORD_CHARS {
        return Err(WeakPassword::TooShort);
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(WeakPassword::TooLong);
    }
    let folded = password.trim().to_lowercase();
    if COMMON.contains(&folded.as_str()) {
        return Err(WeakPassword::Common);
    }
    if !account_name.is_empty()
        && folded.contains(&account_name.to_lowercase())
        && folded.len() <= account_name.len() + 4
    {
        return Err(WeakPassword::AccountName);
    }
    if is_repetitive(&folded) {
        return Err(WeakPassword::Repetitive);
    }
    Ok(())
}

/// A short unit repeated (`aaaaaaaa`, `abababab`, `123123123`) or one step sequence
/// (`12345678`, `abcdefgh`, `87654321`).
fn is_repetitive(p: &str) -> bool {
    let c: Vec<char> = p.chars().filter(|c| !c.is_whitespace()).collect();
    if c.len() < 2 {
        return true;
    }
    let repeated = (1..=3)
        .any(|unit| unit < c.len() && c.iter().enumerate().all(|(i, ch)| *ch == c[i % unit]));
    let step = |d: i64| c.windows(2).all(|w| w[1] as i64 - w[0] as i64 == d);
    repeated || step(1) || step(-1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passwords_are_refused() {
        for weak in [
            "        ",
            "password",
            "PASSWORD",
            "12345678",
            "short",
            "aaaaaaaaaa",
            "abababab",
            "123123123",
            "abcdefghij",
            "87654321",
            "qwertyuiop",
            "woaini1314",
            "agent-li1",
        ] {
            assert!(
                check(weak, "agent-li").is_err(),
                "{weak:?} should be refused"
            );
        }
    }

    #[test]
    fn reasonable_passwords_pass() {
        for good in [
            "long enough pw",
            "rules-and-assignment",
            "bindings-test-pw",
            "客服密码很安全吧",
            "Tr0ub4dor&3x",
            "correct horse battery staple",
        ] {
            assert_eq!(check(good, "li"), Ok(()), "{good:?}");
        }
    }
}
