//! ProviiRJ: the RedJubjub variant Provii signs credentials with (spec §8).
//! Deterministic nonces from Blake2s over the secret key, a `ProviiRJ`
//! personalised challenge, no re-randomisation. Not Zcash-compatible.

use core::fmt;

use blake2s_simd::Params;
use ff::Field;
use std::sync::OnceLock;

use group::GroupEncoding;
use jubjub::{ExtendedPoint, Fr, SubgroupPoint};
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::constants::{PROVII_RJ_NONCE_TAG, PROVII_RJ_PERSONALIZATION};
use crate::encoding::b64url_encode;
use crate::error::{Error, Result};
use crate::fixed_base::FixedBaseTable;
use crate::point::{decode_prime_order, spending_key_generator};

/// Reduces a 32-byte digest into `Fr_J` as `from_bytes_wide(digest || 0^32)`.
fn wide_reduce(digest: &[u8; 32]) -> Fr {
    let mut wide = Zeroizing::new([0u8; 64]);
    wide[..32].copy_from_slice(digest);
    Fr::from_bytes_wide(&wide)
}

/// `NonceDerive` (spec §8.3): `Blake2s("ProviiRJ/nonce" || sk || msg_hash)`.
fn derive_nonce(sk_bytes: &[u8; 32], msg_hash: &[u8; 32]) -> Fr {
    let mut state = blake2s_simd::State::new();
    state.update(PROVII_RJ_NONCE_TAG);
    state.update(sk_bytes);
    state.update(msg_hash);
    let mut digest = Zeroizing::new(*state.finalize().as_array());
    let nonce = wide_reduce(&digest);
    digest.zeroize();
    nonce
}

/// `ChallengeHash` (spec §8.4): Blake2s with personalisation `ProviiRJ` over
/// `R || VK || msg_hash`.
fn challenge(r_bytes: &[u8; 32], vk_bytes: &[u8; 32], msg_hash: &[u8; 32]) -> Fr {
    let digest = Params::new()
        .hash_length(32)
        .personal(PROVII_RJ_PERSONALIZATION)
        .to_state()
        .update(r_bytes)
        .update(vk_bytes)
        .update(msg_hash)
        .finalize();
    wide_reduce(digest.as_array())
}

/// A credential signing key. Wiped on drop, never printed.
#[derive(Clone, ZeroizeOnDrop)]
pub struct SigningKey {
    scalar: Fr,
    #[zeroize(skip)]
    verifying_key: VerifyingKey,
}

impl SigningKey {
    /// Decodes a 32-byte secret scalar: canonical (below `r_J`) and non-zero
    /// (spec §8.1). The range check is constant time.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
        let scalar: Option<Fr> = Fr::from_bytes(bytes).into();
        let scalar = scalar.ok_or(Error::NonCanonicalScalar { field: "sk" })?;
        Self::from_scalar(scalar)
    }

    /// Key generation from 64 bytes supplied by the caller's CSPRNG (the HSM's
    /// RNG in the appliance): reduced wide into `Fr_J`, so uniform.
    pub fn from_random_bytes(random: &[u8; 64]) -> Result<Self> {
        Self::from_scalar(Fr::from_bytes_wide(random))
    }

    /// Decodes a secret whose verifying key is already known and bound to it
    /// (the appliance's sealed keys carry it in the AEAD's associated data),
    /// saving the scalar multiplication that [`SigningKey::from_bytes`]
    /// spends to derive it. A mismatched key only yields signatures that fail
    /// verification, which the issuer's self-check catches.
    pub fn from_bytes_with_verifying_key(
        bytes: &[u8; 32],
        verifying_key: VerifyingKey,
    ) -> Result<Self> {
        let scalar: Option<Fr> = Fr::from_bytes(bytes).into();
        let mut scalar = scalar.ok_or(Error::NonCanonicalScalar { field: "sk" })?;
        if bool::from(scalar.is_zero()) {
            scalar.zeroize();
            return Err(Error::ZeroScalar { field: "sk" });
        }
        Ok(Self {
            scalar,
            verifying_key,
        })
    }

    fn from_scalar(mut scalar: Fr) -> Result<Self> {
        if bool::from(scalar.is_zero()) {
            scalar.zeroize();
            return Err(Error::ZeroScalar { field: "sk" });
        }
        let point = spending_key_generator() * scalar;
        Ok(Self {
            scalar,
            verifying_key: VerifyingKey::from_point(point),
        })
    }

    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.scalar.to_bytes())
    }

    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying_key
    }

    /// `Sign` (spec §8.5) over a message hash (for credentials, the Blake2s of
    /// the prehash: see [`crate::credential::CredMsgV2::msg_hash`]).
    pub fn sign(&self, msg_hash: &[u8; 32]) -> Signature {
        let sk_bytes = self.to_bytes();
        let mut nonce = derive_nonce(&sk_bytes, msg_hash);
        let r_bytes = generator_table().mul(&nonce).to_bytes();
        let c = challenge(&r_bytes, &self.verifying_key.bytes, msg_hash);
        let mut s = nonce + c * self.scalar;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r_bytes);
        sig[32..].copy_from_slice(&s.to_bytes());
        nonce.zeroize();
        s.zeroize();
        Signature(sig)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("scalar", &"[REDACTED]")
            .field("verifying_key", &self.verifying_key)
            .finish()
    }
}

/// An issuer verifying key: a non-identity point of the prime-order subgroup.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerifyingKey {
    point: SubgroupPoint,
    bytes: [u8; 32],
}

/// The one failure verification reports, whatever the cause (spec §8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("RedJubjub signature is invalid")]
pub struct SignatureInvalid;

impl VerifyingKey {
    /// Decodes a verifying key, saying which rule a bad one breaks.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
        let point = decode_prime_order(bytes, "issuer_vk")?;
        Ok(Self {
            point,
            bytes: *bytes,
        })
    }

    fn from_point(point: SubgroupPoint) -> Self {
        Self {
            point,
            bytes: point.to_bytes(),
        }
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.bytes
    }

    /// `Verify` (spec §8.6). Every input is fully processed whether or not
    /// `R` or `s` decode, and the verdict is one constant-time `Choice`, so
    /// neither the result nor the time says which check failed.
    pub fn verify(&self, msg_hash: &[u8; 32], sig: &Signature) -> Result<(), SignatureInvalid> {
        let (r_bytes, s_bytes) = sig.halves();
        let r = ExtendedPoint::from_bytes(&r_bytes);
        let r_ok: Choice = r.is_some();
        let r_point = r.unwrap_or(ExtendedPoint::identity());
        let r_ok = r_ok & r_point.is_torsion_free() & !r_point.is_identity();
        let s = Fr::from_bytes(&s_bytes);
        let s_ok: Choice = s.is_some();
        let s = s.unwrap_or(Fr::zero());

        let c = challenge(&r_bytes, &self.bytes, msg_hash);
        let lhs = generator_table().mul(&s);
        let rhs = r_point + ExtendedPoint::from(self.point * c);
        if bool::from(r_ok & s_ok & lhs.ct_eq(&rhs)) {
            Ok(())
        } else {
            Err(SignatureInvalid)
        }
    }
}

/// `G`'s fixed-base table, built on first use.
fn generator_table() -> &'static FixedBaseTable {
    static TABLE: OnceLock<FixedBaseTable> = OnceLock::new();
    TABLE.get_or_init(|| FixedBaseTable::new(ExtendedPoint::from(spending_key_generator())))
}

/// Tables of the few issuer keys whose own signatures this process checks
/// (an appliance has one active key at a time); at most 8 are kept.
fn own_key_table(vk: &VerifyingKey) -> std::sync::Arc<FixedBaseTable> {
    use std::sync::{Arc, Mutex};
    type Cache = Mutex<Vec<([u8; 32], Arc<FixedBaseTable>)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    if let Some((_, t)) = cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .find(|(k, _)| *k == vk.bytes)
    {
        return t.clone();
    }
    let table = Arc::new(FixedBaseTable::new(ExtendedPoint::from(vk.point)));
    let mut entries = cache.lock().unwrap_or_else(|p| p.into_inner());
    if entries.len() >= 8 {
        entries.remove(0);
    }
    entries.push((vk.bytes, table.clone()));
    table
}

impl VerifyingKey {
    /// Variable-time verification, several times faster than
    /// [`VerifyingKey::verify`], for a signature this process has just made
    /// over data it built: the issuer's self-check of spec §8.5. Every input
    /// is public and none comes from outside, so timing reveals nothing.
    /// Never use it on a signature received from anyone.
    pub fn verify_own(&self, msg_hash: &[u8; 32], sig: &Signature) -> Result<(), SignatureInvalid> {
        let (r_bytes, s_bytes) = sig.halves();
        let s: Option<Fr> = Fr::from_bytes(&s_bytes).into();
        let Some(s) = s else {
            return Err(SignatureInvalid);
        };
        let c = challenge(&r_bytes, &self.bytes, msg_hash);
        // Recompute R = [s]G - [c]VK and compare encodings: no square root
        // to decode R, and the encoding is canonical, so equal bytes are the
        // same point. A point outside the subgroup could not equal a
        // combination of G and VK, so no separate torsion check is needed.
        let expected = generator_table().mul_vartime(&s) - own_key_table(self).mul_vartime(&c);
        if !bool::from(expected.is_identity()) && expected.to_bytes() == r_bytes {
            Ok(())
        } else {
            Err(SignatureInvalid)
        }
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", b64url_encode(&self.bytes))
    }
}

/// A 64-byte signature `R || s` as it travels. Decoding it never rejects:
/// [`VerifyingKey::verify`] does, uniformly. [`Signature::check_encoding`]
/// says what is wrong with a bad one, for tools and diagnostics.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; 64]);

impl Signature {
    pub fn from_bytes(bytes: [u8; 64]) -> Self {
        Self(bytes)
    }

    pub fn to_bytes(&self) -> [u8; 64] {
        self.0
    }

    fn halves(&self) -> ([u8; 32], [u8; 32]) {
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&self.0[..32]);
        s.copy_from_slice(&self.0[32..]);
        (r, s)
    }

    /// Checks the encoding rules of spec §15.3 and names the first one broken.
    pub fn check_encoding(&self) -> Result<()> {
        let (r, s) = self.halves();
        decode_prime_order(&r, "sig_rj.R")?;
        if bool::from(Fr::from_bytes(&s).is_none()) {
            return Err(Error::NonCanonicalScalar { field: "sig_rj.s" });
        }
        Ok(())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", b64url_encode(&self.0))
    }
}
