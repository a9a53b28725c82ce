//! The date-of-birth commitment and its nullifier: Sapling Pedersen hashes
//! with the `NoteCommitment` and `MerkleTree(0)` personalisations (spec §9).

use core::fmt;

use group::{Group, GroupEncoding};
use jubjub::SubgroupPoint;
use sapling_crypto::pedersen_hash::{Personalization, pedersen_hash};
use subtle::{Choice, ConstantTimeEq};

use crate::constants::NULLIFIER_DST;
use crate::dob::DobDays;
use crate::encoding::b64url_encode;
use crate::error::{Error, PointError, Result};
use crate::point::decode_prime_order;
use crate::rbits::RBits;

/// A Pedersen commitment: always a non-identity point of the prime-order
/// subgroup, kept with its canonical encoding.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Commitment {
    bytes: [u8; 32],
}

impl Commitment {
    /// Decodes and subgroup-checks a commitment (spec §9.5).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
        decode_prime_order(bytes, "c_bytes")?;
        Ok(Self { bytes: *bytes })
    }

    fn from_point(point: SubgroupPoint) -> Result<Self> {
        if bool::from(point.is_identity()) {
            return Err(Error::Point {
                field: "commitment",
                source: PointError::Identity,
            });
        }
        Ok(Self {
            bytes: point.to_bytes(),
        })
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.bytes
    }

    /// Constant-time equality, for the wallet's check that a returned
    /// commitment opens to its own date of birth and randomness.
    pub fn ct_eq(&self, other: &Self) -> Choice {
        self.bytes.ct_eq(&other.bytes)
    }
}

impl fmt::Debug for Commitment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Commitment({})", b64url_encode(&self.bytes))
    }
}

/// `PedersenCommit(dob_days, r_bits)` (spec §9.1): the 32 bits of
/// `bias(dob_days)` little-endian, then the 128 randomness bits, hashed with
/// the `NoteCommitment` personalisation.
pub fn commit(dob: &DobDays, r: &RBits) -> Result<Commitment> {
    let biased = dob.biased();
    let dob_bits = (0..32).map(move |i| (biased >> i) & 1 == 1);
    // Bits stream straight into the hash; no secret bit vector is collected.
    let point = pedersen_hash(Personalization::NoteCommitment, dob_bits.chain(r.bits()));
    Commitment::from_point(point)
}

/// The nullifier of a commitment: deterministic, 32 bytes (spec §9.4).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Nullifier([u8; 32]);

impl Nullifier {
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }
}

impl fmt::Debug for Nullifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nullifier({})", b64url_encode(&self.0))
    }
}

/// Iterates the bits of `bytes`, byte by byte, least significant bit first.
pub(crate) fn bits_le(bytes: &[u8]) -> impl Iterator<Item = bool> + '_ {
    bytes
        .iter()
        .flat_map(|b| (0..8).map(move |i| (b >> i) & 1 == 1))
}

/// `PedersenNullifier(c)`: `MerkleTree(0)` over `bits_le(NULLIFIER_DST) ||
/// bits_le(c)` (480 bits).
pub fn nullifier(c: &Commitment) -> Nullifier {
    let input = bits_le(NULLIFIER_DST).chain(bits_le(&c.bytes));
    Nullifier(pedersen_hash(Personalization::MerkleTree(0), input).to_bytes())
}
