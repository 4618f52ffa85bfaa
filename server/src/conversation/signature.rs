//! Signatures of event webhook deliveries, Stripe-style: `Kefu-Signature: t=<unix seconds>,
//! v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`, with one `v1` per valid secret while a
//! rotation overlaps; and the receiver's check — the recipe the README documents: split the
//! header, reject a `t` further than the tolerance from now (a replay), recompute the HMAC over
//! `t`, a dot and the raw body, and compare it in constant time with any `v1`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The signature header.
pub const HEADER: &str = "kefu-signature";
/// The header naming the event (the same on every retry of one event).
pub const EVENT_ID_HEADER: &str = "kefu-event-id";
/// How far a signature's time may be from the receiver's clock (seconds).
pub const TOLERANCE_SECS: i64 = 300;

fn mac(secret: &str, t: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut m = crate::accounts::credentials::mac_for(secret);
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The header value for `body` sent at `t` (unix seconds), signed with each of `secrets`.
pub fn header(secrets: &[String], t: i64, body: &[u8]) -> String {
    let mut value = format!("t={t}");
    for s in secrets {
        value.push_str(",v1=");
        value.push_str(&hex::encode(mac(s, t, body).finalize().into_bytes()));
    }
    value
}

/// Why a delivery's signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is malformed")]
    Malformed,
    #[error("the signature is older or newer than the tolerance (a replay?)")]
    OutsideTolerance,
    #[error("no signature matches the body")]
    Mismatch,
}

/// Checks a `Kefu-Signature` header against the raw `body` with `secret`, at `now` (unix
/// seconds), allowing `tolerance` seconds of difference.
pub fn verify(
    header: &str,
    body: &[u8],
    secret: &str,
    now: i64,
    tolerance: i64,
) -> Result<(), SignatureError> {
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            Some(("v1", v)) => {
                signatures.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?)
            }
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - t).abs() > tolerance {
        return Err(SignatureError::OutsideTolerance);
    }
    let expected = mac(secret, t, body);
    signatures
        .iter()
        .any(|s| expected.clone().verify_slice(s).is_ok())
        .then_some(())
        .ok_or(SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_body_verifies_and_a_changed_or_old_one_does_not() {
        let body = br#"{"id":"evt_1","type":"message.created"}"#;
        let secrets = vec!["whsec_new".to_string(), "whsec_old".to_string()];
        let h = header(&secrets, 1_700_000_000, body);
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(
            h.matches("v1=").count(),
            2,
            "both secrets sign during a rotation"
        );
        for s in &secrets {
            verify(&h, body, s, 1_700_000_100, TOLERANCE_SECS).expect("valid");
        }
        assert_eq!(
            verify(&h, b"{}", "whsec_new", 1_700_000_000, TOLERANCE_SECS),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&h, body, "whsec_other", 1_700_000_000, TOLERANCE_SECS),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&h, body, "whsec_new", 1_700_000_301, TOLERANCE_SECS),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            verify("v1=00", body, "whsec_new", 0, TOLERANCE_SECS),
            Err(SignatureError::Malformed)
        );
        // The recipe by hand: HMAC-SHA256 over "<t>.<body>", hex.
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(b"whsec_new").expect("key");
        m.update(b"1700000000.");
        m.update(body);
        let hand = hex::encode(m.finalize().into_bytes());
        assert!(h.contains(&format!("v1={hand}")), "{h}");
    }
}
