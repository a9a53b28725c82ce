//! The one error type of the protocol core. Each variant names what was wrong
//! and, where it helps, what a caller should do about it.

use thiserror::Error;

/// Why a base64url-no-pad string was refused (spec §2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Base64Error {
    #[error("contains '=' padding; base64url here is unpadded")]
    Padding,
    #[error("byte {offset} is not in the base64url alphabet (A-Z a-z 0-9 - _; no whitespace)")]
    InvalidCharacter { offset: usize },
    #[error("final character carries non-zero padding bits (non-canonical encoding)")]
    NonCanonicalTrailingBits,
    #[error("length is not a possible base64url-no-pad length")]
    InvalidLength,
}

/// Why a hex string was refused (spec §2.7: lowercase, two characters per byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum HexError {
    #[error("odd number of hex characters")]
    OddLength,
    #[error("uppercase hex at offset {offset}; use lowercase")]
    Uppercase { offset: usize },
    #[error("character at offset {offset} is not a hex digit")]
    InvalidCharacter { offset: usize },
}

/// Why 32 bytes are not an acceptable Jubjub point (spec §4.2, §15.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PointError {
    #[error("not a canonical encoding of a point on the Jubjub curve")]
    NotOnCurve,
    #[error("the identity point")]
    Identity,
    #[error("a small-order point")]
    SmallOrder,
    #[error("not in the prime-order subgroup")]
    NotInSubgroup,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    #[error("{field}: invalid base64url: {source}")]
    Base64 {
        field: &'static str,
        #[source]
        source: Base64Error,
    },
    #[error("{field}: invalid hex: {source}")]
    Hex {
        field: &'static str,
        #[source]
        source: HexError,
    },
    #[error("{field}: expected {expected} bytes, got {actual}")]
    Length {
        field: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("{field}: {source}")]
    Point {
        field: &'static str,
        #[source]
        source: PointError,
    },
    #[error("{field}: scalar is not canonical (must be below the Jubjub group order r_J)")]
    NonCanonicalScalar { field: &'static str },
    #[error("{field}: the zero scalar is not a valid key")]
    ZeroScalar { field: &'static str },
    #[error("kid must be exactly 14 UTF-8 bytes, got {0}")]
    KidLength(usize),
    #[error("schema must be exactly 12 UTF-8 bytes, got {0}")]
    SchemaLength(usize),
    #[error("{field}: not valid UTF-8")]
    Utf8 { field: &'static str },
    #[error("dob_days is outside [-36525, 36525]")]
    DobOutOfRange,
    #[error("r_bits must be exactly 128 bits (16 bytes), got {bits} bits")]
    RBitsLength { bits: usize },
    #[error("r_bits are all zero; draw fresh randomness from a CSPRNG")]
    RBitsAllZero,
    #[error(
        "r_bits have only {unique} distinct byte values (at least 8 required); draw fresh randomness"
    )]
    RBitsLowEntropy { unique: usize },
    #[error("unsupported credential version {0} (only v = 2)")]
    CredentialVersion(u8),
    #[error("credential validity is invalid: {0}")]
    Validity(&'static str),
    #[error("{field} is longer than 255 bytes")]
    FieldTooLong { field: &'static str },
    #[error("{field}: {reason}")]
    InvalidField {
        field: &'static str,
        reason: &'static str,
    },
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("credential has no {0}; it is not signed")]
    Unsigned(&'static str),
    #[error("{0}")]
    VerifyingKeyFormat(String),
}

pub type Result<T, E = Error> = core::result::Result<T, E>;
