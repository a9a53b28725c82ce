//! Bit utilities: allocation of byte strings as little-endian bits (byte
//! order kept, least significant bit first within each byte, the order
//! Blake2s and the Pedersen hash consume), equality, the direction swap
//! and the `>=` comparison of the age check.

use bellman::gadgets::boolean::{AllocatedBit, Boolean};
use bellman::{ConstraintSystem, LinearCombination, SynthesisError};
use bls12_381::Scalar;
use ff::Field;

/// Allocates `len` bytes as `8·len` private bits (one booleanity
/// constraint each). `bytes` is `None` when no witness is known
/// (parameter generation).
pub fn alloc_bytes<CS: ConstraintSystem<Scalar>>(
    mut cs: CS,
    bytes: Option<&[u8]>,
    len: usize,
) -> Result<Vec<Boolean>, SynthesisError> {
    if bytes.is_some_and(|b| b.len() != len) {
        return Err(SynthesisError::Unsatisfiable);
    }
    (0..len * 8)
        .map(|i| {
            let value = bytes.map(|b| (b[i / 8] >> (i % 8)) & 1 == 1);
            AllocatedBit::alloc(cs.namespace(|| format!("bit {i}")), value).map(Boolean::from)
        })
        .collect()
}

/// Constant bits of a known byte string.
pub fn constant_bytes(bytes: &[u8]) -> Vec<Boolean> {
    crate::pedersen::bits_le(bytes)
        .map(Boolean::constant)
        .collect()
}

/// Enforces `a == b` bit by bit. One constraint per pair of allocated bits.
pub fn enforce_equal<CS: ConstraintSystem<Scalar>>(
    mut cs: CS,
    a: &[Boolean],
    b: &[Boolean],
) -> Result<(), SynthesisError> {
    if a.len() != b.len() {
        return Err(SynthesisError::Unsatisfiable);
    }
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        Boolean::enforce_equal(cs.namespace(|| format!("bit {i}")), x, y)?;
    }
    Ok(())
}

/// A boolean-valued linear combination of allocated bits, with its value.
#[derive(Clone)]
pub struct BitExpr {
    lc: LinearCombination<Scalar>,
    value: Option<bool>,
}

impl BitExpr {
    pub fn value(&self) -> Option<bool> {
        self.value
    }
}

/// The direction swap of the age check (spec §12.7 step 5):
/// `left = swap ? b : a`, `right = swap ? a : b`, bit by bit. Since
/// `left + right = a + b`, one product per bit suffices:
/// `t = swap·(b - a)`, `left = a + t`, `right = b - t`. 1 constraint per
/// bit; each output bit equals one of the input bits, so it stays boolean.
pub fn conditional_swap<CS: ConstraintSystem<Scalar>>(
    mut cs: CS,
    swap: &Boolean,
    a: &[Boolean],
    b: &[Boolean],
) -> Result<(Vec<BitExpr>, Vec<BitExpr>), SynthesisError> {
    if a.len() != b.len() {
        return Err(SynthesisError::Unsatisfiable);
    }
    let one = CS::one();
    let mut left = Vec::with_capacity(a.len());
    let mut right = Vec::with_capacity(a.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let (s, xv, yv) = (swap.get_value(), x.get_value(), y.get_value());
        let t_value = match (s, xv, yv) {
            (Some(s), Some(x), Some(y)) => Some(if s {
                Scalar::from(u64::from(y)) - Scalar::from(u64::from(x))
            } else {
                Scalar::ZERO
            }),
            _ => None,
        };
        let t = cs.alloc(
            || format!("t {i}"),
            || t_value.ok_or(SynthesisError::AssignmentMissing),
        )?;
        cs.enforce(
            || format!("t = swap·(b - a) {i}"),
            |_| swap.lc(one, Scalar::ONE),
            |_| y.lc(one, Scalar::ONE) - &x.lc(one, Scalar::ONE),
            |lc| lc + t,
        );
        let chosen = |keep: Option<bool>, other: Option<bool>| match s {
            Some(true) => other,
            Some(false) => keep,
            None => None,
        };
        left.push(BitExpr {
            lc: x.lc(one, Scalar::ONE) + t,
            value: chosen(xv, yv),
        });
        right.push(BitExpr {
            lc: y.lc(one, Scalar::ONE) - t,
            value: chosen(yv, xv),
        });
    }
    Ok((left, right))
}

/// Enforces `Σ 2ⁱ·left[i] >= Σ 2ⁱ·right[i]` for boolean-valued inputs of
/// at most 64 bits: the difference is witnessed as `n` bits, which makes it
/// a non-negative integer below `2ⁿ`; in a field of 255 bits the equation
/// `left - right = difference` then cannot wrap. `n` booleanity
/// constraints and one for the equation.
pub fn enforce_ge<CS: ConstraintSystem<Scalar>>(
    mut cs: CS,
    left: &[BitExpr],
    right: &[BitExpr],
) -> Result<(), SynthesisError> {
    let n = left.len();
    if n != right.len() || n > 64 {
        return Err(SynthesisError::Unsatisfiable);
    }
    let pack = |bits: &[BitExpr]| -> Option<u64> {
        bits.iter()
            .enumerate()
            .try_fold(0u64, |acc, (i, b)| Some(acc | (u64::from(b.value?) << i)))
    };
    let difference = pack(left).zip(pack(right)).map(|(l, r)| l.wrapping_sub(r));
    let mut lc = LinearCombination::zero();
    let mut coeff = Scalar::ONE;
    for i in 0..n {
        let bit = AllocatedBit::alloc(
            cs.namespace(|| format!("difference bit {i}")),
            difference.map(|d| (d >> i) & 1 == 1),
        )?;
        lc = lc + (coeff, bit.get_variable()) - (coeff, &left[i].lc) + (coeff, &right[i].lc);
        coeff = coeff.double();
    }
    cs.enforce(
        || "left - right = difference",
        |_| lc,
        |lc| lc + CS::one(),
        |lc| lc,
    );
    Ok(())
}
