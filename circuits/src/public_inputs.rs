//! The eight public inputs of the age circuit (spec §12.3, §13.6).

use bls12_381::Scalar;

use crate::dob::bias_for_circuit;
use crate::pedersen::bits_le;

/// BLS12-381 scalar capacity: multipack puts at most 254 bits in one element.
const CAPACITY: usize = 254;

/// Which side of the cutoff the proof claims (spec §12.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// At least the threshold age: `cutoff_days >= dob_days`. Encoded as 1.
    Over,
    /// At most the threshold age: `dob_days >= cutoff_days`. Encoded as 0.
    Under,
}

impl Direction {
    pub fn as_u32(self) -> u32 {
        match self {
            Direction::Over => 1,
            Direction::Under => 0,
        }
    }
}

/// Multipacks a little-endian bit stream into field elements of up to 254
/// bits each; every bit is kept (bit 254 and 255 land in the next element).
fn multipack(bits: impl Iterator<Item = bool>, out: &mut Vec<Scalar>) {
    let bits: Vec<bool> = bits.collect();
    for chunk in bits.chunks(CAPACITY) {
        let mut repr = [0u8; 32];
        for (i, bit) in chunk.iter().enumerate() {
            repr[i / 8] |= u8::from(*bit) << (i % 8);
        }
        // Below 2^254 < r, so the representation is always canonical.
        out.push(Scalar::from_bytes(&repr).unwrap_or(Scalar::zero()));
    }
}

/// `AssemblePublicInputs`: direction, biased cutoff, `rp_hash`, issuer key,
/// nullifier, in that order.
pub fn assemble_public_inputs(
    direction: Direction,
    cutoff_days: i32,
    rp_hash: &[u8; 32],
    issuer_vk: &[u8; 32],
    cred_nullifier: &[u8; 32],
) -> [Scalar; 8] {
    let mut inputs = Vec::with_capacity(8);
    multipack(bits_le(&direction.as_u32().to_le_bytes()), &mut inputs);
    multipack(
        bits_le(&bias_for_circuit(cutoff_days).to_le_bytes()),
        &mut inputs,
    );
    for value in [rp_hash, issuer_vk, cred_nullifier] {
        multipack(bits_le(value), &mut inputs);
    }
    let mut out = [Scalar::zero(); 8];
    out.copy_from_slice(&inputs);
    out
}
