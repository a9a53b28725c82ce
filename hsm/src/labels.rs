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

fn valid_part(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.' | b'@' | b'%')
        })
}

/// Ids may contain `/` (WIRE.md §2) but `/` separates label parts; `%` is not
/// in the id alphabet, so `%2F` is unambiguous.
fn escape_slash(id: &str) -> String {
    id.replace('/', "%2F")
}

impl ObjectLabel {
    fn build(kind: &'static str, parts: &[&str]) -> Result<Self> {
        if !parts.iter().all(|p| valid_part(p)) {
            return Err(HsmError::InvalidInput {
                operation: "object label",
                detail: "label parts are 1-128 characters of A-Z a-z 0-9 - _ : . @",
            });
        }
        Ok(Self(format!("provii/{kind}/{}", parts.join("/"))))
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
        Self::build(
            "officer",
            &[&escape_slash(officer_id), &generation.to_string()],
        )
    }
    pub fn client(client_id: &str, generation: u32) -> Result<Self> {
        Self::build(
            "client",
            &[&escape_slash(client_id), &generation.to_string()],
        )
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
