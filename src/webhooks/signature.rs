//! Secrets and signatures, as the Standard Webhooks spec says: a secret is
//! `whsec_` + base64 of its key; a signature is `v1,` + base64 of
//! HMAC-SHA256(key, "{message id}.{timestamp}.{body}").

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::WebhookError;

/// What every secret starts with.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> Result<String, WebhookError> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| WebhookError::NoRandomness(e.to_string()))?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(key)))
}

/// A new message id (the `webhook-id` header): `msg_` + 16 random bytes.
pub fn new_message_id() -> Result<String, WebhookError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| WebhookError::NoRandomness(e.to_string()))?;
    Ok(format!("msg_{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// The signing key of a secret: the base64 after `whsec_`.
fn key_of(secret: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
        .ok()
}

/// `v1,<base64 signature>` of one message under one secret (`None` for a
/// secret that is not base64, which the server never makes).
pub fn sign(secret: &str, message_id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = key_of(secret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(message_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The `webhook-signature` header: one signature per secret, space-separated
/// (two during a rotation).
pub fn header(secrets: &[&str], message_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|secret| sign(secret, message_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_the_reference_library_does() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        let reference = standardwebhooks::Webhook::new(secret)
            .unwrap()
            .sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body.as_bytes())
            .unwrap();
        let ours = sign(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body.as_bytes(),
        );
        assert_eq!(ours.as_deref(), Some(reference.as_str()));
    }

    #[test]
    fn secrets_are_32_random_bytes() {
        let (a, b) = (new_secret().unwrap(), new_secret().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with("whsec_"));
        assert_eq!(key_of(&a).unwrap().len(), 32);
        let header = header(&[&a, &b], "msg_1", 1, b"{}");
        assert_eq!(header.split(' ').count(), 2, "{header}");
        assert!(header.split(' ').all(|s| s.starts_with("v1,")));
    }
}
