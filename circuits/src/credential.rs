//! The credential: `CredMsgV2`, its prehash (spec §8.2, §15.1), and the
//! `SignedCredential` JSON of spec §15.2 / WIRE.md §4.

use serde::{Deserialize, Serialize};

use crate::constants::{
    CRED_DST, CREDENTIAL_VERSION, KID_SIZE_BYTES, MAX_JSON_SAFE_INTEGER, MAX_VALIDITY_SECONDS,
    SCHEMA_SIZE_BYTES,
};
use crate::encoding::{b64url_decode_array, b64url_encode};
use crate::error::{Error, Result};
use crate::fixed_str::{Kid, Schema};
use crate::pedersen::Commitment;
use crate::redjubjub::{Signature, SignatureInvalid, SigningKey, VerifyingKey};

/// Byte length of a circuit-compatible prehash: 14+1+1+14+32+8+8+1+12.
pub const PREHASH_LEN: usize = 91;

/// The signed fields of a v2 credential. `v` is always 2; the constructor
/// enforces `iat < exp`, `exp - iat <= MAX_VALIDITY_SECONDS` and that both
/// times survive a JSON round trip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredMsgV2 {
    kid: Kid,
    commitment: Commitment,
    iat: u64,
    exp: u64,
    schema: Schema,
}

impl CredMsgV2 {
    pub fn new(
        kid: Kid,
        commitment: Commitment,
        iat: u64,
        exp: u64,
        schema: Schema,
    ) -> Result<Self> {
        if exp > MAX_JSON_SAFE_INTEGER {
            return Err(Error::Validity("exp exceeds 2^53 - 1"));
        }
        if exp <= iat {
            return Err(Error::Validity("exp must be after iat"));
        }
        if exp - iat > MAX_VALIDITY_SECONDS {
            return Err(Error::Validity("exp - iat exceeds 36 500 days"));
        }
        Ok(Self {
            kid,
            commitment,
            iat,
            exp,
            schema,
        })
    }

    pub fn kid(&self) -> &Kid {
        &self.kid
    }
    pub fn commitment(&self) -> &Commitment {
        &self.commitment
    }
    pub fn iat(&self) -> u64 {
        self.iat
    }
    pub fn exp(&self) -> u64 {
        self.exp
    }
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// `CredPrehash` (spec §8.2): big-endian times, one-byte length prefixes.
    pub fn prehash(&self) -> [u8; PREHASH_LEN] {
        let mut out = [0u8; PREHASH_LEN];
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        put(CRED_DST);
        put(&[CREDENTIAL_VERSION, KID_SIZE_BYTES as u8]);
        put(self.kid.as_bytes());
        put(&self.commitment.to_bytes());
        put(&self.iat.to_be_bytes());
        put(&self.exp.to_be_bytes());
        put(&[SCHEMA_SIZE_BYTES as u8]);
        put(self.schema.as_bytes());
        out
    }

    /// `H_b2s(prehash)`: what ProviiRJ signs.
    pub fn msg_hash(&self) -> [u8; 32] {
        *blake2s_simd::blake2s(&self.prehash()).as_array()
    }

    pub fn sign(self, key: &SigningKey) -> SignedCredential {
        let sig_rj = key.sign(&self.msg_hash());
        SignedCredential {
            msg: self,
            issuer_vk: *key.verifying_key(),
            sig_rj,
        }
    }
}

/// A credential as the issuer returns it and the wallet stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCredential {
    pub msg: CredMsgV2,
    pub issuer_vk: VerifyingKey,
    pub sig_rj: Signature,
}

impl SignedCredential {
    /// The issuer's self-check of a credential it has just signed: fast,
    /// variable time ([`VerifyingKey::verify_own`]). Not for credentials
    /// received from anyone.
    pub fn verify_own(&self) -> Result<(), SignatureInvalid> {
        self.issuer_vk
            .verify_own(&self.msg.msg_hash(), &self.sig_rj)
    }

    /// Verifies the signature under the key the credential carries.
    pub fn verify(&self) -> Result<(), SignatureInvalid> {
        self.verify_with(&self.issuer_vk)
    }

    /// Verifies under a key resolved elsewhere (a registry, the JWKS), and
    /// requires the carried key to be that key.
    pub fn verify_with(&self, key: &VerifyingKey) -> Result<(), SignatureInvalid> {
        if *key != self.issuer_vk {
            return Err(SignatureInvalid);
        }
        key.verify(&self.msg.msg_hash(), &self.sig_rj)
    }

    /// Canonical JSON, keys in the order of spec §15.2.
    pub fn to_json(&self) -> String {
        CredentialJson::from_parts(&self.msg, Some(&self.issuer_vk), Some(&self.sig_rj)).to_string()
    }

    pub fn from_json(json: &[u8]) -> Result<Self> {
        ParsedCredential::from_json(json)?.into_signed()
    }
}

/// A credential JSON whose `issuer_vk` and `sig_rj` may be absent (a
/// credential still to be signed, or one being inspected).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedCredential {
    pub msg: CredMsgV2,
    pub issuer_vk: Option<VerifyingKey>,
    pub sig_rj: Option<Signature>,
}

impl ParsedCredential {
    /// Strict parse: unknown or duplicate keys, `v != 2`, wrong-length kid or
    /// schema, non-canonical base64url, off-subgroup points and bad validity
    /// are refused.
    pub fn from_json(json: &[u8]) -> Result<Self> {
        let wire: CredentialJson =
            serde_json::from_slice(json).map_err(|e| Error::Json(e.to_string()))?;
        wire.into_parsed()
    }

    pub fn into_signed(self) -> Result<SignedCredential> {
        Ok(SignedCredential {
            msg: self.msg,
            issuer_vk: self.issuer_vk.ok_or(Error::Unsigned("issuer_vk"))?,
            sig_rj: self.sig_rj.ok_or(Error::Unsigned("sig_rj"))?,
        })
    }
}

/// The wire shape; field order here is the JSON key order.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialJson {
    v: u8,
    kid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    issuer_vk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sig_rj: Option<String>,
    c_bytes: String,
    iat: u64,
    exp: u64,
    schema: String,
}

impl CredentialJson {
    fn from_parts(msg: &CredMsgV2, vk: Option<&VerifyingKey>, sig: Option<&Signature>) -> Self {
        Self {
            v: CREDENTIAL_VERSION,
            kid: msg.kid.as_str().to_owned(),
            issuer_vk: vk.map(|k| b64url_encode(&k.to_bytes())),
            sig_rj: sig.map(|s| b64url_encode(&s.to_bytes())),
            c_bytes: b64url_encode(&msg.commitment.to_bytes()),
            iat: msg.iat,
            exp: msg.exp,
            schema: msg.schema.as_str().to_owned(),
        }
    }

    fn into_parsed(self) -> Result<ParsedCredential> {
        if self.v != CREDENTIAL_VERSION {
            return Err(Error::CredentialVersion(self.v));
        }
        let kid = Kid::new(&self.kid)?;
        let schema = Schema::new(&self.schema)?;
        let commitment = Commitment::from_bytes(&b64url_decode_array(&self.c_bytes, "c_bytes")?)?;
        let issuer_vk = self
            .issuer_vk
            .map(|s| VerifyingKey::from_bytes(&b64url_decode_array(&s, "issuer_vk")?))
            .transpose()?;
        let sig_rj = self
            .sig_rj
            .map(|s| b64url_decode_array(&s, "sig_rj").map(Signature::from_bytes))
            .transpose()?;
        Ok(ParsedCredential {
            msg: CredMsgV2::new(kid, commitment, self.iat, self.exp, schema)?,
            issuer_vk,
            sig_rj,
        })
    }
}

impl core::fmt::Display for CredentialJson {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Serialising plain strings and integers cannot fail.
        let json = serde_json::to_string(self).map_err(|_| core::fmt::Error)?;
        f.write_str(&json)
    }
}
