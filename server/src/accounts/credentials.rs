//! Credentials: random bearer tokens (stored only as SHA-256), agent passwords (Argon2id), and the
//! HMAC-SHA256 identity hash integrators compute for verified user ids.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Token lifetimes.
pub const VISITOR_TOKEN_TTL_MS: i64 = 30 * 24 * 3600 * 1000;
pub const AGENT_TOKEN_TTL_MS: i64 = 12 * 3600 * 1000;
pub const ADMIN_KEY_TTL_MS: i64 = 10 * 365 * 24 * 3600 * 1000;

/// Why a credential operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the operating system's random source failed: {0}")]
    Random(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Who a request or connection acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Visitor {
        visitor_id: String,
        site_key: String,
    },
    Agent {
        agent_id: String,
    },
    Admin,
}

fn random_bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(buf)
}

/// A new bearer token: `prefix` + 64 hex digits (256 random bits).
pub fn new_token(prefix: &str) -> Result<String, AuthError> {
    Ok(format!("{prefix}{}", hex::encode(random_bytes::<32>()?)))
}

/// A readable random password (18 characters, ~107 bits).
pub fn new_password() -> Result<String, AuthError> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789";
    Ok(random_bytes::<18>()?
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

/// What the store keeps for a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Argon2id hash of a password (PHC string).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Whether `password` matches the stored PHC hash.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// The identity hash an integrator's backend computes: hex(HMAC-SHA256(secret, user_id)).
pub fn identity_hash(secret: &str, user_id: &str) -> String {
    let mut mac = mac_for(secret);
    mac.update(user_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `hash` (hex) is the identity hash of `user_id`; compared in constant time.
pub fn verify_identity(secret: &str, user_id: &str, hash: &str) -> bool {
    let Ok(bytes) = hex::decode(hash.trim()) else {
        return false;
    };
    let mut mac = mac_for(secret);
    mac.update(user_id.as_bytes());
    mac.verify_slice(&bytes).is_ok()
}

pub(crate) fn mac_for(secret: &str) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this never fails.
    <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_hash_matches_the_rfc_4231_vector_and_verifies() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            identity_hash("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let h = identity_hash("s3cret", "user-42");
        assert!(verify_identity("s3cret", "user-42", &h));
        assert!(!verify_identity("s3cret", "user-43", &h));
        assert!(!verify_identity("other", "user-42", &h));
        assert!(!verify_identity("s3cret", "user-42", "not hex"));
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("密码 pass").expect("hash");
        assert!(verify_password("密码 pass", &h));
        assert!(!verify_password("密码 pas", &h));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = new_token("kv_").expect("token");
        let b = new_token("kv_").expect("token");
        assert_ne!(a, b);
        assert_eq!(a.len(), 3 + 64);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), token_hash(&b));
        assert_eq!(new_password().expect("pw").len(), 18);
    }
}
