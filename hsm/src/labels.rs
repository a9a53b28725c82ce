//! The object label scheme, so a security team can find every object the
//! appliance owns with `pkcs11-tool --list-objects`:
//!
//! | object | label | class / key type |
//! |---|---|---|
//! | key-encryption key | `provii/kek/<n>` | secret, AES-256 |
//! | attestation key pair | `provii/attest/<id>` (both halves) | EC_EDWARDS private + public |
//! | publisher key pair | `provii/publisher/<id>` | EC_EDWARDS private + public |
//! | officer YubiKey secret | `provii/officer/<officer-id>/<n>` | secret, generic (20 B) |
//! | client HMAC secret | `provii/client/<client-id>/<n>` | secret, generic (32 B) |
//! | audit-chain MAC key | `provii/audit-mac/<n>` | secret, generic (32 B) |
//! | address-hashing key | `provii/addr-hash/<n>` | secret, generic (32 B) |
//!
//! `CKA_ID` is the first 16 bytes of SHA-256 of the label, so `--id` works too.
//! `<n>` is a generation number that rotation increments.

use core::fmt;

use crate::error::{HsmError, Result};

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectLabel(String);

/// A part as given: 1-128 characters of the id alphabet (WIRE.md §2),
/// which includes `/`.
fn valid_part(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.' | b'@' | b'/')
        })
}

impl ObjectLabel {
    /// `/` separates label parts, so inside a part it is written `%2F`;
    /// `%` is outside the alphabet, so the escape is unambiguous. Parts are
    /// checked before escaping: every id the protocol allows has a label,
    /// even one of 128 characters with slashes in it.
    fn build(kind: &'static str, parts: &[&str]) -> Result<Self> {
        if !parts.iter().all(|p| valid_part(p)) {
            return Err(HsmError::InvalidInput {
                operation: "object label",
                detail: "label parts are 1-128 characters of A-Z a-z 0-9 - _ : . / @",
            });
        }
        let escaped: Vec<String> = parts.iter().map(|p| p.replace('/', "%2F")).collect();
        Ok(Self(format!("provii/{kind}/{}", escaped.join("/"))))
    }

    /// The class of the object that does this label's work: the private
    /// half for the Ed25519 key pairs (attestation, publisher), the secret
    /// key for everything else.
    pub(crate) fn key_class(&self) -> cryptoki::object::ObjectClass {
        if self.0.starts_with("provii/attest/") || self.0.starts_with("provii/publisher/") {
            cryptoki::object::ObjectClass::PRIVATE_KEY
        } else {
            cryptoki::object::ObjectClass::SECRET_KEY
        }
    }

    pub fn kek(generation: u32) -> Self {
        Self(format!("provii/kek/{generation}"))
    }
    pub fn attestation(id: &str) -> Result<Self> {
        Self::build("attest", &[id])
    }
    pub fn publisher(id: &str) -> Result<Self> {
        Self::build("publisher", &[id])
    }
    pub fn officer(officer_id: &str, generation: u32) -> Result<Self> {
        Self::build("officer", &[officer_id, &generation.to_string()])
    }
    pub fn client(client_id: &str, generation: u32) -> Result<Self> {
        Self::build("client", &[client_id, &generation.to_string()])
    }
    pub fn audit_mac(generation: u32) -> Self {
        Self(format!("provii/audit-mac/{generation}"))
    }
    pub fn address_hash(generation: u32) -> Self {
        Self(format!("provii/addr-hash/{generation}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `CKA_ID`: SHA-256(label)[0..16].
    pub fn id(&self) -> Vec<u8> {
        use sha2::Digest;
        sha2::Sha256::digest(self.0.as_bytes())[..16].to_vec()
    }
}

impl fmt::Display for ObjectLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ObjectLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slashes_in_ids_are_escaped_and_the_rest_kept() {
        let label = ObjectLabel::client("bank/eu:1@x.y_z-2", 3).map(|l| l.0);
        assert_eq!(
            label.ok().as_deref(),
            Some("provii/client/bank%2Feu:1@x.y_z-2/3")
        );
        let label = ObjectLabel::officer("alice", 1).map(|l| l.0);
        assert_eq!(label.ok().as_deref(), Some("provii/officer/alice/1"));
    }

    #[test]
    fn every_id_length_the_protocol_allows_has_a_label() {
        // 128 characters is the id limit (WIRE.md §2); escaping makes these
        // up to three times longer, which must not matter.
        for id in ["a".repeat(128), "/".repeat(128), "a/".repeat(64)] {
            assert!(ObjectLabel::client(&id, 1).is_ok(), "{id}");
            assert!(ObjectLabel::officer(&id, u32::MAX).is_ok(), "{id}");
        }
    }

    #[test]
    fn ids_outside_the_alphabet_or_length_have_none() {
        // `%` is the escape character: a raw one would make two ids share
        // a label ("a%2Fb" and "a/b").
        for id in ["", &"a".repeat(129), "a%2Fb", "a b", "é", "a\0"] {
            assert!(ObjectLabel::client(id, 1).is_err(), "{id:?}");
        }
        assert_ne!(
            ObjectLabel::client("a/b", 1).ok(),
            ObjectLabel::client("a_b", 1).ok()
        );
    }
}
