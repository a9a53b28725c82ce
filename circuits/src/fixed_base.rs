//! Native fixed-base scalar multiplication on Jubjub with a precomputed
//! radix-16 table: `[k]B = Σ [dᵢ·16ⁱ]B` over the 64 nibbles `dᵢ` of `k`,
//! 64 mixed additions and no doublings. The spending key generator `G` has
//! one table for the life of the process; an issuer key gets one when it
//! is first used to check the appliance's own signatures.
//!
//! [`FixedBaseTable::mul`] reads every entry of each row and keeps the one
//! it needs with constant-time selection, so it is safe for secret scalars
//! (the signing nonce). [`FixedBaseTable::mul_vartime`] indexes directly,
//! for public scalars only.

use group::Curve;
use jubjub::{AffineNielsPoint, AffinePoint, ExtendedPoint, Fr};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroize;

const ROWS: usize = 64;

/// `rows[i][d] = [d·16ⁱ]B` for `d` in 0..16.
pub struct FixedBaseTable {
    rows: Vec<[AffineNielsPoint; 16]>,
}

impl FixedBaseTable {
    pub fn new(base: ExtendedPoint) -> Self {
        let mut points = Vec::with_capacity(ROWS * 16);
        let mut row_base = base;
        for _ in 0..ROWS {
            let mut multiple = ExtendedPoint::identity();
            for _ in 0..16 {
                points.push(multiple);
                multiple += row_base;
            }
            // 16ⁱ⁺¹·B
            row_base = row_base.double().double().double().double();
        }
        let mut affine = vec![AffinePoint::identity(); points.len()];
        ExtendedPoint::batch_normalize(&points, &mut affine);
        let rows = affine
            .chunks(16)
            .map(|chunk| {
                let mut row = [AffineNielsPoint::identity(); 16];
                for (slot, p) in row.iter_mut().zip(chunk) {
                    *slot = p.to_niels();
                }
                row
            })
            .collect();
        Self { rows }
    }

    fn nibble(bytes: &[u8; 32], i: usize) -> u8 {
        (bytes[i / 2] >> (4 * (i % 2))) & 0x0f
    }

    /// Constant time in `k`: the same additions and table reads whatever
    /// its value.
    pub fn mul(&self, k: &Fr) -> ExtendedPoint {
        let mut bytes = k.to_bytes();
        let mut acc = ExtendedPoint::identity();
        for (i, row) in self.rows.iter().enumerate() {
            let digit = Self::nibble(&bytes, i);
            let mut chosen = AffineNielsPoint::identity();
            for (d, entry) in row.iter().enumerate() {
                chosen.conditional_assign(entry, (d as u8).ct_eq(&digit));
            }
            acc += chosen;
        }
        bytes.zeroize();
        acc
    }

    /// Variable time: for public scalars only.
    pub fn mul_vartime(&self, k: &Fr) -> ExtendedPoint {
        let bytes = k.to_bytes();
        let mut acc = ExtendedPoint::identity();
        for (i, row) in self.rows.iter().enumerate() {
            let digit = Self::nibble(&bytes, i);
            if digit != 0 {
                acc += row[usize::from(digit)];
            }
        }
        acc
    }
}
