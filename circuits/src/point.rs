//! Decoding 32-byte Jubjub points into the prime-order subgroup, with an error
//! that says which rule failed (spec §4.2, §9.5, §15.3).

use std::sync::OnceLock;

use group::{GroupEncoding, cofactor::CofactorGroup};
use jubjub::{ExtendedPoint, SubgroupPoint};

use crate::error::{Error, PointError, Result};

/// A non-identity point of the prime-order subgroup, from its canonical
/// compressed encoding.
pub(crate) fn decode_prime_order(bytes: &[u8; 32], field: &'static str) -> Result<SubgroupPoint> {
    let wrap = |source| Error::Point { field, source };
    let point: Option<ExtendedPoint> = ExtendedPoint::from_bytes(bytes).into();
    let point = point.ok_or(wrap(PointError::NotOnCurve))?;
    if bool::from(point.is_identity()) {
        return Err(wrap(PointError::Identity));
    }
    if bool::from(point.is_small_order()) {
        return Err(wrap(PointError::SmallOrder));
    }
    let subgroup: Option<SubgroupPoint> = point.into_subgroup().into();
    subgroup.ok_or(wrap(PointError::NotInSubgroup))
}

/// The spending key generator `G` (spec §4.3), decoded once.
pub(crate) fn spending_key_generator() -> SubgroupPoint {
    static G: OnceLock<SubgroupPoint> = OnceLock::new();
    *G.get_or_init(|| {
        let g: Option<SubgroupPoint> =
            SubgroupPoint::from_bytes(&crate::constants::SPENDING_KEY_GENERATOR_BYTES).into();
        // Spec §4.3: an implementation that cannot decode G must refuse to
        // operate. The bytes are a compile-time constant pinned by A.2 and
        // the tests, so this is unreachable unless the constant is edited.
        g.expect("SPENDING_KEY_GENERATOR_BYTES decodes to a prime-order point") // ok: constant
    })
}
