//! Jubjub point arithmetic in R1CS over the BLS12-381 scalar field, from the
//! curve's equations (Zcash protocol specification §5.4.9.3 and §5.4.1.7):
//! the twisted Edwards form `-u² + v² = 1 + d·u²·v²` for complete
//! arithmetic, and the birationally equivalent Montgomery form
//! `y² = x³ + A·x² + x` (A = 40962) for the cheaper incomplete additions
//! inside a Pedersen hash segment, where they cannot meet an exceptional
//! case.
//!
//! Costs are in R1CS constraints, stated on each function and checked by
//! the tests.

use std::sync::OnceLock;

use bellman::gadgets::boolean::Boolean;
use bellman::gadgets::lookup::lookup3_xy;
use bellman::gadgets::num::{AllocatedNum, Num};
use bellman::{ConstraintSystem, SynthesisError};
use bls12_381::Scalar;
use ff::Field;
use jubjub::{AffinePoint, ExtendedPoint};

/// The Edwards coefficient `d = -10240/10241`.
pub fn edwards_d() -> Scalar {
    static D: OnceLock<Scalar> = OnceLock::new();
    *D.get_or_init(|| {
        let inv: Option<Scalar> = Scalar::from(10241u64).invert().into();
        -(Scalar::from(10240u64) * inv.unwrap_or(Scalar::ZERO))
    })
}

/// The Montgomery coefficient `A = 40962`.
pub fn montgomery_a() -> Scalar {
    Scalar::from(40962u64)
}

/// `√(-(A + 2))`, the scale of the map between the two forms:
/// `x = (1 + v)/(1 - v)`, `y = scale·x/u`, and back `u = scale·x/y`,
/// `v = (x - 1)/(x + 1)`. Either root works if used consistently.
pub fn montgomery_scale() -> Scalar {
    static S: OnceLock<Scalar> = OnceLock::new();
    *S.get_or_init(|| {
        let root: Option<Scalar> = (-Scalar::from(40964u64)).sqrt().into();
        root.unwrap_or(Scalar::ZERO)
    })
}

fn missing<T>(v: Option<T>) -> Result<T, SynthesisError> {
    v.ok_or(SynthesisError::AssignmentMissing)
}

fn divide(num: Scalar, den: Scalar) -> Result<Scalar, SynthesisError> {
    let inv: Option<Scalar> = den.invert().into();
    inv.map(|i| num * i).ok_or(SynthesisError::DivisionByZero)
}

/// Affine coordinates of a native point.
pub fn coordinates(p: &ExtendedPoint) -> (Scalar, Scalar) {
    let a = AffinePoint::from(p);
    (a.get_u(), a.get_v())
}

/// Montgomery coordinates of a native point that is neither the identity
/// nor of order two (`None` for those).
pub fn montgomery_coordinates(p: &ExtendedPoint) -> Option<(Scalar, Scalar)> {
    let (u, v) = coordinates(p);
    let x = divide(Scalar::ONE + v, Scalar::ONE - v).ok()?;
    let y = divide(montgomery_scale() * x, u).ok()?;
    Some((x, y))
}

/// A point in twisted Edwards coordinates.
#[derive(Clone)]
pub struct EdwardsPoint {
    u: AllocatedNum<Scalar>,
    v: AllocatedNum<Scalar>,
}

impl EdwardsPoint {
    pub fn u(&self) -> &AllocatedNum<Scalar> {
        &self.u
    }

    pub fn v(&self) -> &AllocatedNum<Scalar> {
        &self.v
    }

    /// The native value, when the witness is known.
    pub fn value(&self) -> Option<(Scalar, Scalar)> {
        Some((self.u.get_value()?, self.v.get_value()?))
    }

    /// Allocates a point and enforces the curve equation. 4 constraints.
    pub fn witness<CS: ConstraintSystem<Scalar>>(
        mut cs: CS,
        point: Option<AffinePoint>,
    ) -> Result<Self, SynthesisError> {
        let u = AllocatedNum::alloc(cs.namespace(|| "u"), || missing(point.map(|p| p.get_u())))?;
        let v = AllocatedNum::alloc(cs.namespace(|| "v"), || missing(point.map(|p| p.get_v())))?;
        let uu = u.square(cs.namespace(|| "u²"))?;
        let vv = v.square(cs.namespace(|| "v²"))?;
        let uuvv = uu.mul(cs.namespace(|| "u²v²"), &vv)?;
        cs.enforce(
            || "-u² + v² = 1 + d·u²·v²",
            |lc| lc + vv.get_variable() - uu.get_variable(),
            |lc| lc + CS::one(),
            |lc| lc + CS::one() + (edwards_d(), uuvv.get_variable()),
        );
        Ok(Self { u, v })
    }

    /// A point made of already-constrained coordinates (a table lookup of
    /// points known to be on the curve).
    fn from_coordinates(u: AllocatedNum<Scalar>, v: AllocatedNum<Scalar>) -> Self {
        Self { u, v }
    }

    /// Complete addition (a = -1):
    /// `u₃ = (u₁v₂ + v₁u₂)/(1 + d·u₁u₂v₁v₂)`,
    /// `v₃ = (v₁v₂ + u₁u₂)/(1 - d·u₁u₂v₁v₂)`. 6 constraints.
    pub fn add<CS: ConstraintSystem<Scalar>>(
        &self,
        mut cs: CS,
        other: &Self,
    ) -> Result<Self, SynthesisError> {
        let d = edwards_d();
        // T = (u₁ + v₁)(u₂ + v₂) = u₁u₂ + v₁v₂ + A + B
        let t = AllocatedNum::alloc(cs.namespace(|| "T"), || {
            let (u1, v1) = missing(self.value())?;
            let (u2, v2) = missing(other.value())?;
            Ok((u1 + v1) * (u2 + v2))
        })?;
        cs.enforce(
            || "T = (u₁ + v₁)(u₂ + v₂)",
            |lc| lc + self.u.get_variable() + self.v.get_variable(),
            |lc| lc + other.u.get_variable() + other.v.get_variable(),
            |lc| lc + t.get_variable(),
        );
        let a = self.u.mul(cs.namespace(|| "A = u₁v₂"), &other.v)?;
        let b = other.u.mul(cs.namespace(|| "B = u₂v₁"), &self.v)?;
        let c = AllocatedNum::alloc(cs.namespace(|| "C"), || {
            Ok(d * missing(a.get_value())? * missing(b.get_value())?)
        })?;
        cs.enforce(
            || "C = d·A·B",
            |lc| lc + (d, a.get_variable()),
            |lc| lc + b.get_variable(),
            |lc| lc + c.get_variable(),
        );
        let u3 = AllocatedNum::alloc(cs.namespace(|| "u₃"), || {
            let (a, b, c) = (
                missing(a.get_value())?,
                missing(b.get_value())?,
                missing(c.get_value())?,
            );
            divide(a + b, Scalar::ONE + c)
        })?;
        cs.enforce(
            || "(1 + C)·u₃ = A + B",
            |lc| lc + CS::one() + c.get_variable(),
            |lc| lc + u3.get_variable(),
            |lc| lc + a.get_variable() + b.get_variable(),
        );
        let v3 = AllocatedNum::alloc(cs.namespace(|| "v₃"), || {
            let (t, a, b, c) = (
                missing(t.get_value())?,
                missing(a.get_value())?,
                missing(b.get_value())?,
                missing(c.get_value())?,
            );
            divide(t - a - b, Scalar::ONE - c)
        })?;
        cs.enforce(
            || "(1 - C)·v₃ = T - A - B",
            |lc| lc + CS::one() - c.get_variable(),
            |lc| lc + v3.get_variable(),
            |lc| lc + t.get_variable() - a.get_variable() - b.get_variable(),
        );
        Ok(Self { u: u3, v: v3 })
    }

    /// Doubling, the addition formulas with both operands equal:
    /// `u₃ = 2uv/(1 + d·u²v²)`, `v₃ = (u² + v²)/(1 - d·u²v²)`. 5 constraints.
    pub fn double<CS: ConstraintSystem<Scalar>>(&self, mut cs: CS) -> Result<Self, SynthesisError> {
        let d = edwards_d();
        let t = self.u.mul(cs.namespace(|| "T = uv"), &self.v)?;
        let sum = AllocatedNum::alloc(cs.namespace(|| "(u + v)²"), || {
            let (u, v) = missing(self.value())?;
            Ok((u + v).square())
        })?;
        cs.enforce(
            || "(u + v)·(u + v)",
            |lc| lc + self.u.get_variable() + self.v.get_variable(),
            |lc| lc + self.u.get_variable() + self.v.get_variable(),
            |lc| lc + sum.get_variable(),
        );
        let c = AllocatedNum::alloc(cs.namespace(|| "C"), || {
            let t = missing(t.get_value())?;
            Ok(d * t * t)
        })?;
        cs.enforce(
            || "C = d·T²",
            |lc| lc + (d, t.get_variable()),
            |lc| lc + t.get_variable(),
            |lc| lc + c.get_variable(),
        );
        let two = Scalar::from(2u64);
        let u3 = AllocatedNum::alloc(cs.namespace(|| "u₃"), || {
            divide(
                two * missing(t.get_value())?,
                Scalar::ONE + missing(c.get_value())?,
            )
        })?;
        cs.enforce(
            || "(1 + C)·u₃ = 2T",
            |lc| lc + CS::one() + c.get_variable(),
            |lc| lc + u3.get_variable(),
            |lc| lc + (two, t.get_variable()),
        );
        let v3 = AllocatedNum::alloc(cs.namespace(|| "v₃"), || {
            let (sum, t, c) = (
                missing(sum.get_value())?,
                missing(t.get_value())?,
                missing(c.get_value())?,
            );
            divide(sum - two * t, Scalar::ONE - c)
        })?;
        cs.enforce(
            || "(1 - C)·v₃ = (u + v)² - 2T",
            |lc| lc + CS::one() - c.get_variable(),
            |lc| lc + v3.get_variable(),
            |lc| lc + sum.get_variable() - (two, t.get_variable()),
        );
        Ok(Self { u: u3, v: v3 })
    }

    /// `bit ? self : identity`. 2 constraints.
    pub fn select<CS: ConstraintSystem<Scalar>>(
        &self,
        mut cs: CS,
        bit: &Boolean,
    ) -> Result<Self, SynthesisError> {
        let b = bit.get_value();
        let u = AllocatedNum::alloc(cs.namespace(|| "u'"), || {
            Ok(if missing(b)? {
                missing(self.u.get_value())?
            } else {
                Scalar::ZERO
            })
        })?;
        cs.enforce(
            || "u' = u·bit",
            |lc| lc + self.u.get_variable(),
            |_| bit.lc(CS::one(), Scalar::ONE),
            |lc| lc + u.get_variable(),
        );
        let v = AllocatedNum::alloc(cs.namespace(|| "v'"), || {
            Ok(if missing(b)? {
                missing(self.v.get_value())?
            } else {
                Scalar::ONE
            })
        })?;
        cs.enforce(
            || "v' - 1 = (v - 1)·bit",
            |lc| lc + self.v.get_variable() - CS::one(),
            |_| bit.lc(CS::one(), Scalar::ONE),
            |lc| lc + v.get_variable() - CS::one(),
        );
        Ok(Self { u, v })
    }

    /// `[k]self` for a scalar given as little-endian bits (any length; the
    /// result is reduced by the point's order on its own), double-and-add.
    /// 13 constraints per bit, less 11 for the first.
    pub fn mul<CS: ConstraintSystem<Scalar>>(
        &self,
        mut cs: CS,
        bits: &[Boolean],
    ) -> Result<Self, SynthesisError> {
        let mut base = self.clone();
        let mut acc: Option<Self> = None;
        for (i, bit) in bits.iter().enumerate() {
            let mut cs = cs.namespace(|| format!("bit {i}"));
            let term = base.select(cs.namespace(|| "select"), bit)?;
            acc = Some(match acc {
                None => term,
                Some(acc) => acc.add(cs.namespace(|| "add"), &term)?,
            });
            if i + 1 < bits.len() {
                base = base.double(cs.namespace(|| "double"))?;
            }
        }
        acc.ok_or(SynthesisError::Unsatisfiable)
    }

    /// Fails to be satisfiable when the point has small order (its order
    /// divides the cofactor 8): `[8]P` is then the identity, whose `u` is 0.
    /// 16 constraints.
    pub fn assert_not_small_order<CS: ConstraintSystem<Scalar>>(
        &self,
        mut cs: CS,
    ) -> Result<(), SynthesisError> {
        let p2 = self.double(cs.namespace(|| "[2]"))?;
        let p4 = p2.double(cs.namespace(|| "[4]"))?;
        let p8 = p4.double(cs.namespace(|| "[8]"))?;
        p8.u.assert_nonzero(cs.namespace(|| "[8]P is not the identity"))
    }

    /// The canonical 32-byte encoding as 256 little-endian bits: the 255
    /// bits of `v`, then the low bit of `u` (its sign). 776 constraints
    /// (two strict decompositions, which keep the encoding canonical).
    pub fn repr<CS: ConstraintSystem<Scalar>>(
        &self,
        mut cs: CS,
    ) -> Result<Vec<Boolean>, SynthesisError> {
        let mut bits = self.v.to_bits_le_strict(cs.namespace(|| "v bits"))?;
        let u_bits = self.u.to_bits_le_strict(cs.namespace(|| "u bits"))?;
        bits.push(u_bits[0].clone());
        Ok(bits)
    }

    /// Enforces equality of both coordinates. 2 constraints.
    pub fn enforce_equal<CS: ConstraintSystem<Scalar>>(
        &self,
        mut cs: CS,
        other: &Self,
    ) -> Result<(), SynthesisError> {
        for (name, a, b) in [("u", &self.u, &other.u), ("v", &self.v, &other.v)] {
            cs.enforce(
                || format!("{name} equal"),
                |lc| lc + a.get_variable(),
                |lc| lc + CS::one(),
                |lc| lc + b.get_variable(),
            );
        }
        Ok(())
    }
}

/// Windowed fixed-base multiplication tables: for window `w`, the points
/// `j·8ʷ·B` for `j` in 0..8 (the identity included; Edwards addition is
/// complete), as affine coordinates.
pub struct FixedBase {
    windows: Vec<[(Scalar, Scalar); 8]>,
}

impl FixedBase {
    /// Tables for scalars of up to `bits` bits.
    pub fn new(base: ExtendedPoint, bits: usize) -> Self {
        let mut windows = Vec::with_capacity(bits.div_ceil(3));
        let mut window_base = base;
        for _ in 0..bits.div_ceil(3) {
            let mut table = [(Scalar::ZERO, Scalar::ONE); 8];
            let mut acc = ExtendedPoint::identity();
            for entry in table.iter_mut() {
                *entry = coordinates(&acc);
                acc += window_base;
            }
            windows.push(table);
            // 8ʷ⁺¹·B
            window_base = window_base.double().double().double();
        }
        Self { windows }
    }

    /// `[k]B` for little-endian bits `k` (at most the table's length): one
    /// 3-bit lookup per window (3 constraints: the AND of two bits, then
    /// `u` and `v`; fewer when bits are constant) and an addition (6) for
    /// each window after the first. 767 constraints for 256 bits.
    pub fn mul<CS: ConstraintSystem<Scalar>>(
        &self,
        mut cs: CS,
        bits: &[Boolean],
    ) -> Result<EdwardsPoint, SynthesisError> {
        if bits.len() > self.windows.len() * 3 {
            return Err(SynthesisError::Unsatisfiable);
        }
        let mut acc: Option<EdwardsPoint> = None;
        for (w, (chunk, table)) in bits.chunks(3).zip(&self.windows).enumerate() {
            let mut cs = cs.namespace(|| format!("window {w}"));
            let mut window = chunk.to_vec();
            window.resize(3, Boolean::constant(false));
            let (u, v) = lookup3_xy(cs.namespace(|| "lookup"), &window, table)?;
            let term = EdwardsPoint::from_coordinates(u, v);
            acc = Some(match acc {
                None => term,
                Some(acc) => acc.add(cs.namespace(|| "add"), &term)?,
            });
        }
        acc.ok_or(SynthesisError::Unsatisfiable)
    }
}

/// A point in Montgomery coordinates, for the additions inside one
/// Pedersen hash segment.
pub struct MontgomeryPoint {
    x: Num<Scalar>,
    y: Num<Scalar>,
}

impl MontgomeryPoint {
    pub fn new(x: Num<Scalar>, y: Num<Scalar>) -> Self {
        Self { x, y }
    }

    /// Incomplete addition of distinct points with distinct `x`:
    /// `λ = (y₂ - y₁)/(x₂ - x₁)`, `x₃ = λ² - A - x₁ - x₂`,
    /// `y₃ = -y₁ - λ(x₃ - x₁)`. 3 constraints. An exceptional case makes
    /// the witness fail with `DivisionByZero` and the constraint
    /// unsatisfiable.
    pub fn add<CS: ConstraintSystem<Scalar>>(
        &self,
        mut cs: CS,
        other: &Self,
    ) -> Result<Self, SynthesisError> {
        let lambda = AllocatedNum::alloc(cs.namespace(|| "λ"), || {
            let (x1, y1) = (missing(self.x.get_value())?, missing(self.y.get_value())?);
            let (x2, y2) = (missing(other.x.get_value())?, missing(other.y.get_value())?);
            divide(y2 - y1, x2 - x1)
        })?;
        cs.enforce(
            || "(x₂ - x₁)·λ = y₂ - y₁",
            |_| other.x.lc(Scalar::ONE) - &self.x.lc(Scalar::ONE),
            |lc| lc + lambda.get_variable(),
            |_| other.y.lc(Scalar::ONE) - &self.y.lc(Scalar::ONE),
        );
        let x3 = AllocatedNum::alloc(cs.namespace(|| "x₃"), || {
            let l = missing(lambda.get_value())?;
            Ok(l.square()
                - montgomery_a()
                - missing(self.x.get_value())?
                - missing(other.x.get_value())?)
        })?;
        cs.enforce(
            || "λ·λ = A + x₁ + x₂ + x₃",
            |lc| lc + lambda.get_variable(),
            |lc| lc + lambda.get_variable(),
            |_| {
                self.x.lc(Scalar::ONE)
                    + &other.x.lc(Scalar::ONE)
                    + (montgomery_a(), CS::one())
                    + x3.get_variable()
            },
        );
        let y3 = AllocatedNum::alloc(cs.namespace(|| "y₃"), || {
            let (x1, y1) = (missing(self.x.get_value())?, missing(self.y.get_value())?);
            let (l, x3) = (missing(lambda.get_value())?, missing(x3.get_value())?);
            Ok(-y1 - l * (x3 - x1))
        })?;
        cs.enforce(
            || "(x₁ - x₃)·λ = y₃ + y₁",
            |_| self.x.lc(Scalar::ONE) - x3.get_variable(),
            |lc| lc + lambda.get_variable(),
            |_| self.y.lc(Scalar::ONE) + y3.get_variable(),
        );
        Ok(Self {
            x: x3.into(),
            y: y3.into(),
        })
    }

    /// Back to Edwards form: `u = scale·x/y`, `v = (x - 1)/(x + 1)`.
    /// 2 constraints.
    pub fn into_edwards<CS: ConstraintSystem<Scalar>>(
        self,
        mut cs: CS,
    ) -> Result<EdwardsPoint, SynthesisError> {
        let scale = montgomery_scale();
        let u = AllocatedNum::alloc(cs.namespace(|| "u"), || {
            divide(
                scale * missing(self.x.get_value())?,
                missing(self.y.get_value())?,
            )
        })?;
        cs.enforce(
            || "y·u = scale·x",
            |_| self.y.lc(Scalar::ONE),
            |lc| lc + u.get_variable(),
            |_| self.x.lc(scale),
        );
        let v = AllocatedNum::alloc(cs.namespace(|| "v"), || {
            let x = missing(self.x.get_value())?;
            divide(x - Scalar::ONE, x + Scalar::ONE)
        })?;
        cs.enforce(
            || "(x + 1)·v = x - 1",
            |_| self.x.lc(Scalar::ONE) + CS::one(),
            |lc| lc + v.get_variable(),
            |_| self.x.lc(Scalar::ONE) - CS::one(),
        );
        Ok(EdwardsPoint { u, v })
    }
}
