//! The Ed25519 date-of-birth attestation (spec §10, WIRE.md §3).
//!
//! The signed digest uses the deployed framing: `DST || LE32(dob_days) ||
//! u8 len || issuer_id || LE64(timestamp) || nonce`, continued with
//! `u8 len || session_id || u8 len || client_id` **only** when either of the
//! two is present. Spec A.11 pins the unbound form (80-byte preimage); the
//! pseudo-code of spec §10.2, which always appends the two length bytes,
//! contradicts A.11 and deployed wallets, so it is not offered.
//!
//! Signing happens inside the HSM over [`AttestationFields::digest`]; this
//! module builds, encodes and verifies.

use core::fmt;

use ed25519_dalek::{Signature as EdSignature, VerifyingKey as EdVerifyingKey};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::constants::{
    ATTESTATION_CLOCK_SKEW_TOLERANCE_SECONDS, ATTESTATION_MAX_AGE_SECONDS, DOB_ATTESTATION_DST,
    MAX_JSON_SAFE_INTEGER,
};
use crate::dob::DobDays;
use crate::encoding::{b64url_decode, b64url_encode, hex_decode_array, hex_encode};
use crate::error::{Error, Result};

/// Upper bound on an attestation's transport form; real ones are < 1 KiB.
const MAX_ATTESTATION_B64_LEN: usize = 4096;

/// Everything the Ed25519 signature covers.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct AttestationFields {
    dob_days: i32,
    issuer_id: String,
    timestamp: u64,
    nonce: [u8; 32],
    session_id: Option<String>,
    client_id: Option<String>,
}

fn check_len(field: &'static str, value: &str) -> Result<()> {
    if value.len() > 255 {
        return Err(Error::FieldTooLong { field });
    }
    Ok(())
}

impl AttestationFields {
    /// Builds the fields of a new attestation (spec §10.7 length bounds).
    pub fn new(
        dob: &DobDays,
        issuer_id: &str,
        timestamp: u64,
        nonce: [u8; 32],
        session_id: Option<&str>,
        client_id: Option<&str>,
    ) -> Result<Self> {
        Self::from_parts(
            dob.expose(),
            issuer_id.to_owned(),
            timestamp,
            nonce,
            session_id.map(str::to_owned),
            client_id.map(str::to_owned),
        )
    }

    fn from_parts(
        dob_days: i32,
        issuer_id: String,
        timestamp: u64,
        nonce: [u8; 32],
        session_id: Option<String>,
        client_id: Option<String>,
    ) -> Result<Self> {
        check_len("issuer_id", &issuer_id)?;
        if let Some(s) = &session_id {
            check_len("session_id", s)?;
        }
        if let Some(c) = &client_id {
            check_len("client_id", c)?;
        }
        if timestamp > MAX_JSON_SAFE_INTEGER {
            return Err(Error::InvalidField {
                field: "timestamp",
                reason: "exceeds 2^53 - 1",
            });
        }
        Ok(Self {
            dob_days,
            issuer_id,
            timestamp,
            nonce,
            session_id,
            client_id,
        })
    }

    /// The bytes hashed into the digest (deployed framing, see module docs).
    pub fn preimage(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(80 + 2 + 2 * 255);
        out.extend_from_slice(DOB_ATTESTATION_DST);
        out.extend_from_slice(&self.dob_days.to_le_bytes());
        // Lengths were bounded to 255 at construction.
        out.push(self.issuer_id.len() as u8);
        out.extend_from_slice(self.issuer_id.as_bytes());
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.extend_from_slice(&self.nonce);
        if self.session_id.is_some() || self.client_id.is_some() {
            for binding in [&self.session_id, &self.client_id] {
                let b = binding.as_deref().unwrap_or("").as_bytes();
                out.push(b.len() as u8);
                out.extend_from_slice(b);
            }
        }
        out
    }

    /// The 32-byte Blake2s-256 digest that Ed25519 signs.
    pub fn digest(&self) -> [u8; 32] {
        let mut preimage = self.preimage();
        let digest = *blake2s_simd::blake2s(&preimage).as_array();
        preimage.zeroize();
        digest
    }

    pub fn with_signature(self, signature: [u8; 64]) -> Attestation {
        Attestation {
            fields: self,
            signature,
        }
    }

    pub fn issuer_id(&self) -> &str {
        &self.issuer_id
    }
    /// The attested date of birth: what a wallet commits to. Secret.
    pub fn dob(&self) -> Result<crate::DobDays> {
        crate::DobDays::new(self.dob_days)
    }
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }
    /// The single-use nonce. Never put it in a log or audit record.
    pub fn nonce(&self) -> &[u8; 32] {
        &self.nonce
    }
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }
}

impl fmt::Debug for AttestationFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttestationFields")
            .field("dob_days", &"[REDACTED]")
            .field("issuer_id", &self.issuer_id)
            .field("timestamp", &self.timestamp)
            .field("nonce", &"[REDACTED]")
            .field("session_id", &self.session_id)
            .field("client_id", &self.client_id)
            .finish()
    }
}

/// An Ed25519 attestation verifying key; small-order keys are refused.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AttestationVerifyingKey(EdVerifyingKey);

impl AttestationVerifyingKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
        let key = EdVerifyingKey::from_bytes(bytes).map_err(|_| Error::InvalidField {
            field: "ed25519 verifying key",
            reason: "not a valid Ed25519 point",
        })?;
        if key.is_weak() {
            return Err(Error::InvalidField {
                field: "ed25519 verifying key",
                reason: "small-order key",
            });
        }
        Ok(Self(key))
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
}

impl fmt::Debug for AttestationVerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AttestationVerifyingKey({})",
            hex_encode(&self.to_bytes())
        )
    }
}

/// Why an attestation was refused, in the order the checks run (WIRE.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AttestationError {
    #[error("attestation was issued by another issuer")]
    WrongIssuer,
    #[error("attestation signature is invalid")]
    BadSignature,
    #[error("attestation is older than 3600 s")]
    Expired,
    #[error("attestation timestamp is more than 60 s in the future")]
    FromFuture,
    #[error("attestation dob_days is outside [-36525, 36525]")]
    DobOutOfRange,
}

/// A signed attestation.
#[derive(Clone, Debug)]
pub struct Attestation {
    fields: AttestationFields,
    signature: [u8; 64],
}

impl Attestation {
    pub fn fields(&self) -> &AttestationFields {
        &self.fields
    }

    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// Strict Ed25519 (RFC 8032 §5.1.7, no malleability) against any of
    /// `keys` (current and previous during a rotation).
    pub fn verify_signature(
        &self,
        keys: &[AttestationVerifyingKey],
    ) -> Result<(), AttestationError> {
        let digest = self.fields.digest();
        let sig = EdSignature::from_bytes(&self.signature);
        if keys
            .iter()
            .any(|k| k.0.verify_strict(&digest, &sig).is_ok())
        {
            Ok(())
        } else {
            Err(AttestationError::BadSignature)
        }
    }

    /// `VerifyAttestationFresh` in the issuer's order: issuer identity,
    /// signature, freshness (`now - ts <= 3600`, `ts - now <= 60`), then the
    /// date-of-birth range. Returns the attested date of birth.
    pub fn verify(
        &self,
        expected_issuer_id: &str,
        keys: &[AttestationVerifyingKey],
        now: u64,
    ) -> Result<DobDays, AttestationError> {
        self.verify_with(expected_issuer_id, now, |a| a.verify_signature(keys))
    }

    /// [`Attestation::verify`] with the signature check supplied by the
    /// caller, in the same place of the order: an issuer that remembers the
    /// attestations it signed can recognise one of its own without the
    /// curve arithmetic, and verify anything else strictly.
    pub fn verify_with(
        &self,
        expected_issuer_id: &str,
        now: u64,
        check_signature: impl FnOnce(&Self) -> Result<(), AttestationError>,
    ) -> Result<DobDays, AttestationError> {
        if self.fields.issuer_id != expected_issuer_id {
            return Err(AttestationError::WrongIssuer);
        }
        check_signature(self)?;
        let ts = self.fields.timestamp;
        if now.saturating_sub(ts) > ATTESTATION_MAX_AGE_SECONDS {
            return Err(AttestationError::Expired);
        }
        if ts.saturating_sub(now) > ATTESTATION_CLOCK_SKEW_TOLERANCE_SECONDS {
            return Err(AttestationError::FromFuture);
        }
        DobDays::new(self.fields.dob_days).map_err(|_| AttestationError::DobOutOfRange)
    }

    /// The JSON form, fields in wire order; `session_id` and `client_id` only
    /// when present.
    pub fn to_json(&self) -> String {
        let f = &self.fields;
        let wire = AttestationJson {
            dob_days: f.dob_days,
            issuer_id: f.issuer_id.clone(),
            timestamp: f.timestamp,
            nonce: hex_encode(&f.nonce),
            session_id: f.session_id.clone(),
            client_id: f.client_id.clone(),
            signature: hex_encode(&self.signature),
        };
        // Strings and integers only: serialisation cannot fail.
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// Strict parse of the JSON form: unknown keys, non-lowercase or
    /// wrong-length hex, over-long fields are refused.
    pub fn from_json(json: &[u8]) -> Result<Self> {
        let mut wire: AttestationJson =
            serde_json::from_slice(json).map_err(|e| Error::Json(e.to_string()))?;
        let fields = AttestationFields::from_parts(
            wire.dob_days,
            core::mem::take(&mut wire.issuer_id),
            wire.timestamp,
            hex_decode_array(&wire.nonce, "nonce")?,
            wire.session_id.take(),
            wire.client_id.take(),
        )?;
        Ok(Self {
            fields,
            signature: hex_decode_array(&wire.signature, "signature")?,
        })
    }

    /// Transport form: base64url-no-pad of the JSON.
    pub fn to_base64url(&self) -> String {
        b64url_encode(self.to_json().as_bytes())
    }

    pub fn from_base64url(s: &str) -> Result<Self> {
        if s.len() > MAX_ATTESTATION_B64_LEN {
            return Err(Error::InvalidField {
                field: "attestation",
                reason: "longer than 4096 characters",
            });
        }
        let mut json = b64url_decode(s, "attestation")?;
        let parsed = Self::from_json(&json);
        json.zeroize();
        parsed
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttestationJson {
    dob_days: i32,
    issuer_id: String,
    timestamp: u64,
    nonce: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    signature: String,
}

impl Drop for AttestationJson {
    fn drop(&mut self) {
        self.dob_days.zeroize();
        self.nonce.zeroize();
    }
}
