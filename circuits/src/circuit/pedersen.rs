//! The Sapling windowed Pedersen hash in R1CS (Zcash protocol
//! specification §5.4.1.7), mirroring `sapling_crypto::pedersen_hash`:
//! the personalisation bits then the message, in 3-bit chunks
//! `(a, b, c)` encoding `(1 + a + 2b)·(1 - 2c)`; chunk `j` of segment `i`
//! contributes that multiple of `2⁴ʲ·Gᵢ`; segments of 63 chunks each take
//! the next generator.
//!
//! Inside a segment the terms are summed in Montgomery form: every partial
//! sum is a multiple of `Gᵢ` below `(r_J - 1)/2` in absolute value and the
//! terms grow strictly, so the incomplete addition never meets equal or
//! opposite points. Segments are converted to Edwards form and added with
//! complete addition. Per chunk: 2 constraints for the signed lookup (the
//! AND of two bits, then `y`; `x` stays a linear combination; less for the
//! constant personalisation chunks) and 3 for the Montgomery addition; per
//! segment 2 for the conversion and 6 for the Edwards addition.

use std::sync::OnceLock;

use bellman::gadgets::boolean::Boolean;
use bellman::gadgets::lookup::lookup3_xy_with_conditional_negation;
use bellman::{ConstraintSystem, SynthesisError};
use bls12_381::Scalar;
use jubjub::ExtendedPoint;
use sapling_crypto::constants::{PEDERSEN_HASH_CHUNKS_PER_GENERATOR, PEDERSEN_HASH_GENERATORS};

use super::ecc::{EdwardsPoint, MontgomeryPoint, montgomery_coordinates};

/// Chunk tables: for generator `i` and chunk `j`, the Montgomery
/// coordinates of `k·2⁴ʲ·Gᵢ` for `k` in 1..=4.
type Tables = Vec<Vec<[(Scalar, Scalar); 4]>>;

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        PEDERSEN_HASH_GENERATORS
            .iter()
            .map(|g| {
                let mut chunk_base = ExtendedPoint::from(*g);
                (0..PEDERSEN_HASH_CHUNKS_PER_GENERATOR)
                    .map(|_| {
                        let mut table = [(Scalar::from(0u64), Scalar::from(0u64)); 4];
                        let mut multiple = chunk_base;
                        for entry in table.iter_mut() {
                            // A multiple of a prime-order generator below its
                            // order: never the identity or of order two.
                            *entry = montgomery_coordinates(&multiple)
                                .unwrap_or((Scalar::from(0u64), Scalar::from(0u64)));
                            multiple += chunk_base;
                        }
                        for _ in 0..4 {
                            chunk_base = chunk_base.double();
                        }
                        table
                    })
                    .collect()
            })
            .collect()
    })
}

/// The personalisations Provii uses (spec §5.2), as their six bits.
#[derive(Clone, Copy, Debug)]
pub enum Personalization {
    /// `111111`: the date-of-birth commitment.
    NoteCommitment,
    /// `000000`: the nullifier.
    MerkleTree0,
}

impl Personalization {
    fn bits(self) -> [bool; 6] {
        match self {
            Personalization::NoteCommitment => [true; 6],
            Personalization::MerkleTree0 => [false; 6],
        }
    }
}

/// `H_ped(personalization, bits)` as an Edwards point.
pub fn pedersen_hash<CS: ConstraintSystem<Scalar>>(
    mut cs: CS,
    personalization: Personalization,
    bits: &[Boolean],
) -> Result<EdwardsPoint, SynthesisError> {
    let input: Vec<Boolean> = personalization
        .bits()
        .into_iter()
        .map(Boolean::constant)
        .chain(bits.iter().cloned())
        .collect();
    let tables = tables();
    let segment_bits = 3 * PEDERSEN_HASH_CHUNKS_PER_GENERATOR;
    if input.len() > segment_bits * tables.len() {
        return Err(SynthesisError::Unsatisfiable);
    }
    let mut result: Option<EdwardsPoint> = None;
    for (i, (segment, chunk_tables)) in input.chunks(segment_bits).zip(tables).enumerate() {
        let mut cs = cs.namespace(|| format!("segment {i}"));
        let mut sum: Option<MontgomeryPoint> = None;
        for (j, (chunk, table)) in segment.chunks(3).zip(chunk_tables).enumerate() {
            let mut cs = cs.namespace(|| format!("chunk {j}"));
            let mut window = chunk.to_vec();
            window.resize(3, Boolean::constant(false));
            let (x, y) =
                lookup3_xy_with_conditional_negation(cs.namespace(|| "lookup"), &window, table)?;
            let term = MontgomeryPoint::new(x, y);
            sum = Some(match sum {
                None => term,
                Some(sum) => sum.add(cs.namespace(|| "add"), &term)?,
            });
        }
        let segment_point = sum
            .ok_or(SynthesisError::Unsatisfiable)?
            .into_edwards(cs.namespace(|| "to edwards"))?;
        result = Some(match result {
            None => segment_point,
            Some(r) => r.add(cs.namespace(|| "add segment"), &segment_point)?,
        });
    }
    result.ok_or(SynthesisError::Unsatisfiable)
}
