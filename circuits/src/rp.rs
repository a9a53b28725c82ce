//! Relying-party values: the origin, `rp_challenge` and `rp_hash` (spec
//! §13.2–13.3) and PKCE S256 (spec §13.4).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::constants::CHALLENGE_DST;
use crate::encoding::{b64url_decode_array, b64url_encode};
use crate::error::{Error, Result};

/// A WHATWG origin as the protocol hashes it: printable ASCII, 1..=2048
/// bytes, `scheme://host[:port]` with no path, query or fragment. Compared
/// and hashed byte for byte, never normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin(String);

impl Origin {
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |reason| Error::InvalidField {
            field: "origin",
            reason,
        };
        if s.is_empty() || s.len() > 2048 {
            return Err(bad("must be 1 to 2048 bytes"));
        }
        if !s.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(bad("only printable ASCII 0x21..=0x7E is allowed"));
        }
        let (scheme, rest) = s.split_once("://").ok_or(bad("missing scheme://"))?;
        let scheme_ok = scheme
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !scheme_ok {
            return Err(bad("invalid scheme"));
        }
        if rest.is_empty() {
            return Err(bad("missing host"));
        }
        if rest.contains(['/', '?', '#', '@']) {
            return Err(bad("an origin has no path, query, fragment or userinfo"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `compute_origin_hash` (spec §13.3).
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

/// `rp_challenge = SHA-256(origin || nonce || "provii.challenge.v0")`.
pub fn rp_challenge(origin: &Origin, nonce: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(origin.0.as_bytes());
    h.update(nonce);
    h.update(CHALLENGE_DST);
    h.finalize().into()
}

/// `rp_hash = Blake2s-256(rp_challenge)`, the circuit's public input.
pub fn rp_hash(rp_challenge: &[u8; 32]) -> [u8; 32] {
    *blake2s_simd::blake2s(rp_challenge).as_array()
}

/// A PKCE `code_verifier`: 43..=128 characters of the RFC 3986 unreserved set.
pub struct CodeVerifier(String);

impl CodeVerifier {
    pub fn parse(s: &str) -> Result<Self> {
        let unreserved =
            |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        if !(43..=128).contains(&s.len()) || !s.bytes().all(unreserved) {
            return Err(Error::InvalidField {
                field: "code_verifier",
                reason: "must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~",
            });
        }
        Ok(Self(s.to_owned()))
    }

    /// `code_challenge = base64url_no_pad(SHA-256(code_verifier))`.
    pub fn code_challenge(&self) -> String {
        b64url_encode(&Sha256::digest(self.0.as_bytes()))
    }

    /// Constant-time check against a stored `code_challenge`, over the 32 raw
    /// digest bytes rather than the string form.
    pub fn matches(&self, code_challenge: &str) -> Result<bool> {
        let stored: [u8; 32] = b64url_decode_array(code_challenge, "code_challenge")?;
        let received: [u8; 32] = Sha256::digest(self.0.as_bytes()).into();
        Ok(bool::from(stored.ct_eq(&received)))
    }
}
