//! Identity and integrity of Groth16 parameters: the circuit constants hash
//! (spec §12.6), `vk_id` and fingerprints (spec §13.7), and the proving-key
//! manifest checks wallets run before proving (spec §13.8).

use blake2::{Blake2b512, Digest};
use bls12_381::Bls12;
use groth16::{Parameters, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::constants::{
    CIRCUIT_CONSTANTS_DST, CRED_DST, KID_SIZE_BYTES, NULLIFIER_DST, PROVII_RJ_PERSONALIZATION,
    R_BITS_LEN, SCHEMA_SIZE_BYTES, SPENDING_KEY_GENERATOR_BYTES, VK_ID_DST,
};
use crate::encoding::{hex_decode_array, hex_encode};
use crate::error::{Error, Result};

/// Public inputs the age circuit declares; the verifying key has one more
/// `ic` entry for the implicit `1`.
pub const AGE_PUBLIC_INPUTS: usize = 8;

/// Fingerprint discriminator of the `NoteCommitment` personalisation in the
/// constants hash (spec §12.6 note): not the six personalisation bits.
const NOTE_COMMITMENT_DISCRIMINATOR: [u8; 6] = [0x09, 0, 0, 0, 0, 0];

/// `compute_circuit_constants_hash()` (spec §12.6).
pub fn circuit_constants_hash() -> [u8; 32] {
    let mut state = blake2s_simd::State::new();
    state.update(CIRCUIT_CONSTANTS_DST);
    state.update(&SPENDING_KEY_GENERATOR_BYTES);
    state.update(PROVII_RJ_PERSONALIZATION);
    state.update(NULLIFIER_DST);
    state.update(CRED_DST);
    state.update(&NOTE_COMMITMENT_DISCRIMINATOR);
    state.update(&(KID_SIZE_BYTES as u32).to_le_bytes());
    state.update(&(SCHEMA_SIZE_BYTES as u32).to_le_bytes());
    state.update(&(R_BITS_LEN as u32).to_le_bytes());
    *state.finalize().as_array()
}

/// `vk_fingerprint = Blake2s-256(vk_bytes)`.
pub fn vk_fingerprint(vk_bytes: &[u8]) -> [u8; 32] {
    *blake2s_simd::blake2s(vk_bytes).as_array()
}

/// `vk_id = u32_le(Blake2s-256("provii.vk.id.v0" || vk_bytes)[0..4])`.
pub fn vk_id(vk_bytes: &[u8]) -> u32 {
    let mut state = blake2s_simd::State::new();
    state.update(VK_ID_DST);
    state.update(vk_bytes);
    let digest = state.finalize();
    let d = digest.as_bytes();
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}

/// `vk_blake2b512_hash` of the manifest.
pub fn vk_blake2b512(vk_bytes: &[u8]) -> [u8; 64] {
    Blake2b512::digest(vk_bytes).into()
}

/// Parses a bellman-serialised verifying key (points are validated by the
/// reader) and requires the age circuit's shape: `ic.len() == 9`, and no
/// trailing bytes.
pub fn parse_age_verifying_key(vk_bytes: &[u8]) -> Result<VerifyingKey<Bls12>> {
    let mut reader = vk_bytes;
    let vk = VerifyingKey::<Bls12>::read(&mut reader)
        .map_err(|e| Error::VerifyingKeyFormat(format!("not a bellman verifying key: {e}")))?;
    if !reader.is_empty() {
        return Err(Error::VerifyingKeyFormat(format!(
            "{} trailing bytes after the verifying key",
            reader.len()
        )));
    }
    if vk.ic.len() != AGE_PUBLIC_INPUTS + 1 {
        return Err(Error::VerifyingKeyFormat(format!(
            "ic has {} entries; the age circuit needs {}",
            vk.ic.len(),
            AGE_PUBLIC_INPUTS + 1
        )));
    }
    Ok(vk)
}

/// The parameter manifest of spec §13.7 (hashes as lowercase hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamsManifest {
    pub vk_id: u32,
    pub vk_fingerprint_blake2s: String,
    pub vk_blake2b512_hash: String,
    pub vk_size: u64,
    pub pk_size: u64,
    pub pk_blake2s_hash: String,
    pub circuit_constants_hash: String,
    pub constraints: u64,
    pub public_inputs: u32,
    pub ic_len: u32,
    pub kid_bytes: u32,
    pub schema_bytes: u32,
}

/// Which of the four checks of spec §13.8 a proving key failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("proving key is {actual} bytes; the manifest says {expected}")]
    Size { expected: u64, actual: u64 },
    #[error("proving key Blake2s-256 does not match the manifest's pk_blake2s_hash")]
    ContentHash,
    #[error("proving key does not parse: {0}")]
    Unparseable(String),
    #[error("the proving key's verifying key does not match the manifest's vk_fingerprint_blake2s")]
    VkFingerprint,
    #[error(
        "manifest circuit_constants_hash differs from this implementation's; the parameters are for another circuit"
    )]
    CircuitConstants,
    #[error("manifest field {field} is malformed: {detail}")]
    Malformed { field: &'static str, detail: String },
}

impl ParamsManifest {
    /// Builds the manifest of a parameter set this implementation generated.
    pub fn describe(pk_bytes: &[u8], vk_bytes: &[u8], constraints: u64) -> Self {
        Self {
            vk_id: vk_id(vk_bytes),
            vk_fingerprint_blake2s: hex_encode(&vk_fingerprint(vk_bytes)),
            vk_blake2b512_hash: hex_encode(&vk_blake2b512(vk_bytes)),
            vk_size: vk_bytes.len() as u64,
            pk_size: pk_bytes.len() as u64,
            pk_blake2s_hash: hex_encode(blake2s_simd::blake2s(pk_bytes).as_bytes()),
            circuit_constants_hash: hex_encode(&circuit_constants_hash()),
            constraints,
            public_inputs: AGE_PUBLIC_INPUTS as u32,
            ic_len: (AGE_PUBLIC_INPUTS + 1) as u32,
            kid_bytes: KID_SIZE_BYTES as u32,
            schema_bytes: SCHEMA_SIZE_BYTES as u32,
        }
    }

    fn digest_field(value: &str, field: &'static str) -> Result<[u8; 32], ManifestError> {
        hex_decode_array(value, field).map_err(|e| ManifestError::Malformed {
            field,
            detail: e.to_string(),
        })
    }

    /// The four checks of spec §13.8, in order; on success returns the
    /// parsed parameters.
    pub fn check_proving_key(&self, pk_bytes: &[u8]) -> Result<Parameters<Bls12>, ManifestError> {
        let constants = Self::digest_field(&self.circuit_constants_hash, "circuit_constants_hash")?;
        let pk_hash = Self::digest_field(&self.pk_blake2s_hash, "pk_blake2s_hash")?;
        let vk_fp = Self::digest_field(&self.vk_fingerprint_blake2s, "vk_fingerprint_blake2s")?;
        if pk_bytes.len() as u64 != self.pk_size {
            return Err(ManifestError::Size {
                expected: self.pk_size,
                actual: pk_bytes.len() as u64,
            });
        }
        if *blake2s_simd::blake2s(pk_bytes).as_array() != pk_hash {
            return Err(ManifestError::ContentHash);
        }
        // The content hash has pinned these exact bytes to the manifest, so
        // the per-point subgroup checks (about 45 s for 50 MB on 2 cores)
        // would re-check what the hash already vouches for.
        let params = Parameters::<Bls12>::read(pk_bytes, false)
            .map_err(|e| ManifestError::Unparseable(e.to_string()))?;
        let mut vk_bytes = Vec::new();
        params
            .vk
            .write(&mut vk_bytes)
            .map_err(|e| ManifestError::Unparseable(e.to_string()))?;
        if vk_fingerprint(&vk_bytes) != vk_fp {
            return Err(ManifestError::VkFingerprint);
        }
        if circuit_constants_hash() != constants {
            return Err(ManifestError::CircuitConstants);
        }
        Ok(params)
    }
}

/// The edge registry's `issuer_key_hash` (WIRE.md §6):
/// `Blake2s-256("provii.issuer.vk.v0" || vk)`, prefix not personalisation.
pub fn issuer_key_hash(vk: &crate::VerifyingKey) -> [u8; 32] {
    let mut state = blake2s_simd::State::new();
    state.update(crate::constants::ISSUER_VK_HASH_DST);
    state.update(&vk.to_bytes());
    *state.finalize().as_array()
}
