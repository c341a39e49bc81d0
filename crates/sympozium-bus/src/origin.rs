//! Proof of who published a message.
//!
//! A NATS role (see [`crate::auth`]) is shared by every tenant's pods of that kind, so the
//! subject a message travels on says nothing about *which* instance or run sent it. Each
//! channel Deployment and each run therefore gets its own origin key (in a Secret of its
//! namespace, reaching the pod by `secretKeyRef`), derived from the controller's master key:
//!
//! ```text
//! key(identity) = HMAC-SHA256(master, identity)        identity = channel/<ns>/<instance>
//!                                                                 run/<ns>/<run>
//! signature     = HMAC-SHA256(key(identity), identity \n subject \n payload)
//! ```
//!
//! Publishers with an origin send the headers [`IDENTITY_HEADER`] and
//! [`SIGNATURE_HEADER`]; the controller, holding the master key, recomputes the key of the
//! claimed identity and accepts the claim only when the signature matches. A channel pod of
//! instance A holds only A's key, so nothing it publishes can pass as B's; the signature
//! covers the subject too, so a message re-routed to another subject loses its origin.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header naming the publisher's identity.
pub const IDENTITY_HEADER: &str = "Sympozium-Origin";
/// Header carrying the signature (hex).
pub const SIGNATURE_HEADER: &str = "Sympozium-Origin-Signature";

type HmacSha256 = Hmac<Sha256>;

/// The identity of the channel pods of `instance` in `namespace`.
pub fn channel_identity(namespace: &str, instance: &str) -> String {
    format!("channel/{namespace}/{instance}")
}

/// The identity of run `run` in `namespace`.
pub fn run_identity(namespace: &str, run: &str) -> String {
    format!("run/{namespace}/{run}")
}

/// HMAC accepts keys of any length, so this is `None` only if the crate broke its contract;
/// callers then produce nothing that verifies.
fn mac(key: &[u8]) -> Option<HmacSha256> {
    HmacSha256::new_from_slice(key).ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// The origin key of `identity` under `master` (hex), as the controller writes it into the
/// identity's Secret.
pub fn derive_key(master: &str, identity: &str) -> String {
    let Some(mut m) = mac(master.as_bytes()) else { return String::new() };
    m.update(identity.as_bytes());
    hex(&m.finalize().into_bytes())
}

fn message_mac(key: &str, identity: &str, subject: &str, payload: &[u8]) -> Option<HmacSha256> {
    let mut m = mac(key.as_bytes())?;
    m.update(identity.as_bytes());
    m.update(b"\n");
    m.update(subject.as_bytes());
    m.update(b"\n");
    m.update(payload);
    Some(m)
}

/// A publisher's origin: its identity and key.
#[derive(Clone)]
pub struct Origin {
    identity: String,
    key: String,
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin").field("identity", &self.identity).field("key", &"<redacted>").finish()
    }
}

impl Origin {
    /// An origin with the key the controller derived for `identity`.
    pub fn new(identity: impl Into<String>, key: impl Into<String>) -> Self {
        Self { identity: identity.into(), key: key.into().trim().to_string() }
    }

    /// The identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The signature of `payload` on `subject` (hex).
    pub fn sign(&self, subject: &str, payload: &[u8]) -> String {
        message_mac(&self.key, &self.identity, subject, payload)
            .map(|m| hex(&m.finalize().into_bytes()))
            .unwrap_or_default()
    }

    /// A name derived from the key, for the publisher's own durable consumer: nobody without
    /// the key can guess it, so nobody else can pull from it.
    pub fn consumer_name(&self, prefix: &str) -> String {
        let digest = mac(self.key.as_bytes())
            .map(|mut m| {
                m.update(b"consumer");
                hex(&m.finalize().into_bytes())
            })
            .unwrap_or_default();
        format!("{prefix}-{}", digest.get(..32).unwrap_or(&digest))
    }
}

/// Checks origins with the controller's master key.
#[derive(Clone)]
pub struct Verifier {
    master: String,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier(<redacted>)")
    }
}

impl Verifier {
    /// A verifier holding `master`.
    pub fn new(master: impl Into<String>) -> Self {
        Self { master: master.into().trim().to_string() }
    }

    /// The key of `identity` (to hand to its pods).
    pub fn key_for(&self, identity: &str) -> String {
        derive_key(&self.master, identity)
    }

    /// The identity that provably published `payload` on `subject`, or `None` when the
    /// headers are missing or the signature does not match the claimed identity.
    pub fn verify(
        &self,
        identity: Option<&str>,
        signature: Option<&str>,
        subject: &str,
        payload: &[u8],
    ) -> Option<String> {
        let (identity, signature) = (identity?, unhex(signature?)?);
        let key = self.key_for(identity);
        // `verify_slice` compares in constant time.
        if key.is_empty() {
            return None;
        }
        message_mac(&key, identity, subject, payload)?.verify_slice(&signature).ok()?;
        Some(identity.to_string())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_signature_proves_exactly_one_identity_subject_and_payload() {
        let v = Verifier::new("master");
        let a = channel_identity("team-a", "alpha");
        let origin = Origin::new(&a, v.key_for(&a));
        let sig = origin.sign("sympozium.channel.message.received", b"{}");
        let ok = v.verify(Some(&a), Some(&sig), "sympozium.channel.message.received", b"{}");
        assert_eq!(ok.as_deref(), Some("channel/team-a/alpha"));
        let b = channel_identity("team-b", "beta");
        assert!(v.verify(Some(&b), Some(&sig), "sympozium.channel.message.received", b"{}").is_none());
        assert!(v.verify(Some(&a), Some(&sig), "sympozium.schedule.upsert", b"{}").is_none());
        assert!(v.verify(Some(&a), Some(&sig), "sympozium.channel.message.received", b"{ }").is_none());
        assert!(v.verify(Some(&a), None, "sympozium.channel.message.received", b"{}").is_none());
        assert!(v.verify(Some(&a), Some("zz"), "sympozium.channel.message.received", b"{}").is_none());
        // A's key signing for B's identity is no use either.
        let forged = Origin::new(&b, v.key_for(&a)).sign("sympozium.channel.message.received", b"{}");
        assert!(v.verify(Some(&b), Some(&forged), "sympozium.channel.message.received", b"{}").is_none());
        assert!(!format!("{origin:?}").contains(&v.key_for(&a)));
    }

    #[test]
    fn consumer_names_depend_on_the_key() {
        let v = Verifier::new("m");
        let a = Origin::new("channel/n/a", v.key_for("channel/n/a"));
        let b = Origin::new("channel/n/b", v.key_for("channel/n/b"));
        assert_ne!(a.consumer_name("ch"), b.consumer_name("ch"));
        assert!(a.consumer_name("ch").starts_with("ch-"));
        assert_eq!(a.consumer_name("ch").len(), 35);
    }
}
