//! The date of birth as days since 1970-01-01, and the order-preserving bias
//! that lets the circuit compare it unsigned (spec §6.3, §9.2).

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::constants::{DOB_DAYS_MAX, DOB_DAYS_MIN, SIGN_BIAS};
use crate::error::{Error, Result};

/// `bias_for_circuit(x) = (x as u32) XOR 0x8000_0000`: unsigned order of the
/// result equals signed order of `x`.
pub const fn bias_for_circuit(x: i32) -> u32 {
    (x as u32) ^ SIGN_BIAS
}

/// A citizen's date of birth in days since the Unix epoch, within
/// `[-36525, 36525]`. Personal data: it has no `Display`, its `Debug` is
/// redacted, and it is wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DobDays(i32);

impl DobDays {
    pub fn new(days: i32) -> Result<Self> {
        if (DOB_DAYS_MIN..=DOB_DAYS_MAX).contains(&days) {
            Ok(Self(days))
        } else {
            Err(Error::DobOutOfRange)
        }
    }

    /// The raw value, for the few places that must encode it (commitment,
    /// attestation message, wallet storage). Do not log it.
    pub fn expose(&self) -> i32 {
        self.0
    }

    pub fn biased(&self) -> u32 {
        bias_for_circuit(self.0)
    }
}

impl fmt::Debug for DobDays {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DobDays([REDACTED])")
    }
}
