//! The wallet's 128 bits of commitment randomness (spec §9.3, WIRE.md §4).
//!
//! On the wire the 128-bit vector travels as 16 bytes packed **MSB-first**:
//! bit `i` is `(byte[i / 8] >> (7 - i % 8)) & 1`. Spec Appendix A prints the
//! same vectors packed LSB-first; [`RBits::from_lsb_first_bytes`] reads that
//! form so the published vectors can be used as they stand.

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::constants::{MIN_UNIQUE_BYTES_R_BITS, R_BITS_LEN};
use crate::error::{Error, Result};

const R_BYTES: usize = R_BITS_LEN / 8;

/// Exactly 128 bits that passed Profile A validation. Secret: redacted in
/// `Debug`, wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct RBits {
    /// MSB-first wire packing.
    wire: [u8; R_BYTES],
}

impl RBits {
    /// Reads the 16 wire bytes (MSB-first) and applies Profile A.
    pub fn from_wire_bytes(bytes: &[u8]) -> Result<Self> {
        let wire: [u8; R_BYTES] = bytes.try_into().map_err(|_| Error::RBitsLength {
            bits: bytes.len() * 8,
        })?;
        let r = Self { wire };
        r.validate_profile_a()?;
        Ok(r)
    }

    /// Reads 16 bytes packed LSB-first (the packing spec Appendix A prints).
    pub fn from_lsb_first_bytes(bytes: &[u8]) -> Result<Self> {
        let mut wire = Zeroizing::new(bytes.to_vec());
        wire.iter_mut().for_each(|b| *b = b.reverse_bits());
        Self::from_wire_bytes(&wire)
    }

    /// Builds from a bit vector, bit 0 first.
    pub fn from_bits(bits: &[bool]) -> Result<Self> {
        if bits.len() != R_BITS_LEN {
            return Err(Error::RBitsLength { bits: bits.len() });
        }
        let mut wire = Zeroizing::new([0u8; R_BYTES]);
        for (i, bit) in bits.iter().enumerate() {
            wire[i / 8] |= u8::from(*bit) << (7 - i % 8);
        }
        Self::from_wire_bytes(&wire[..])
    }

    /// Bit `i` of the vector, `i < 128`.
    pub fn bit(&self, i: usize) -> bool {
        (self.wire[i / 8] >> (7 - i % 8)) & 1 == 1
    }

    /// The 128 bits in order, bit 0 first, as the commitment consumes them.
    pub fn bits(&self) -> impl Iterator<Item = bool> + '_ {
        (0..R_BITS_LEN).map(|i| self.bit(i))
    }

    /// The 16 wire bytes (MSB-first).
    pub fn to_wire_bytes(&self) -> Zeroizing<[u8; R_BYTES]> {
        Zeroizing::new(self.wire)
    }

    /// Profile A (spec §9.3.1): exactly 128 bits (enforced by the type), not
    /// all zero, at least 8 distinct byte values. Bit-reversing each byte is a
    /// bijection, so the distinct-byte count is the same in either packing.
    fn validate_profile_a(&self) -> Result<()> {
        if self.wire.iter().all(|b| *b == 0) {
            return Err(Error::RBitsAllZero);
        }
        let mut seen = [false; 256];
        for b in &self.wire {
            seen[usize::from(*b)] = true;
        }
        let unique = seen.iter().filter(|s| **s).count();
        seen.zeroize();
        if unique < MIN_UNIQUE_BYTES_R_BITS {
            return Err(Error::RBitsLowEntropy { unique });
        }
        Ok(())
    }
}

impl fmt::Debug for RBits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RBits([REDACTED])")
    }
}
