//! Normative constants of Provii v0 (spec §4–§6). Changing any value that feeds
//! [`crate::params::circuit_constants_hash`] breaks every proving key.

/// Sapling spending key generator `G`, compressed (spec §4.3, A.2).
pub const SPENDING_KEY_GENERATOR_BYTES: [u8; 32] = [
    0x30, 0xb5, 0xf2, 0xaa, 0xad, 0x32, 0x56, 0x30, 0xbc, 0xdd, 0xdb, 0xce, 0x4d, 0x67, 0x65, 0x6d,
    0x05, 0xfd, 0x1c, 0xc2, 0xd0, 0x37, 0xbb, 0x53, 0x75, 0xb6, 0xe9, 0x6d, 0x9e, 0x01, 0xa1, 0x57,
];

// Domain separation tags (spec §5.1).
pub const CRED_DST: &[u8; 14] = b"provii.cred.v0";
pub const NULLIFIER_DST: &[u8; 28] = b"provii.nullifier.pedersen.v0";
pub const DOB_ATTESTATION_DST: &[u8; 25] = b"provii.attestation.dob.v0";
pub const VK_ID_DST: &[u8; 15] = b"provii.vk.id.v0";
/// Blake2s *personalisation* (parameter block), never a message prefix.
pub const PROVII_RJ_PERSONALIZATION: &[u8; 8] = b"ProviiRJ";
/// Blake2s message *prefix* for nonce derivation, never a personalisation.
pub const PROVII_RJ_NONCE_TAG: &[u8; 14] = b"ProviiRJ/nonce";
pub const CHALLENGE_DST: &[u8; 19] = b"provii.challenge.v0";
/// Prefix of the edge registry's `issuer_key_hash` (WIRE.md §6).
pub const ISSUER_VK_HASH_DST: &[u8; 19] = b"provii.issuer.vk.v0";
pub const CIRCUIT_CONSTANTS_DST: &[u8; 31] = b"provii.age.circuit.constants.v0";

// Sizes (spec §6.2).
pub const KID_SIZE_BYTES: usize = 14;
pub const SCHEMA_SIZE_BYTES: usize = 12;
pub const R_BITS_LEN: usize = 128;
pub const MIN_UNIQUE_BYTES_R_BITS: usize = 8;
pub const NONCE_SIZE: usize = 32;

/// Credential format version `v` (spec §6.4).
pub const CREDENTIAL_VERSION: u8 = 2;
/// The schema every v0.1 age credential carries.
pub const AGE_SCHEMA: &str = "provii.age/0";

// Time constants (spec §6.1), seconds.
pub const CLOCK_SKEW_TOLERANCE_SECONDS: u64 = 30;
pub const ATTESTATION_MAX_AGE_SECONDS: u64 = 3600;
pub const ATTESTATION_CLOCK_SKEW_TOLERANCE_SECONDS: u64 = 60;
pub const ATTESTATION_NONCE_TTL_SECONDS: u64 = 7200;
pub const MAX_VALIDITY_SECONDS: u64 = 3_153_600_000;
pub const DEFAULT_VALIDITY_DAYS: u64 = 7300;
pub const MAX_VALIDITY_DAYS: u64 = 36_500;

/// `dob_days` sanity range, inclusive (spec §10.2).
pub const DOB_DAYS_MIN: i32 = -36_525;
pub const DOB_DAYS_MAX: i32 = 36_525;

/// `SIGN_BIAS` (spec §6.3).
pub const SIGN_BIAS: u32 = 0x8000_0000;

/// Largest integer JSON carries exactly (spec §15.4 precision note); `iat`,
/// `exp` and `timestamp` above it are refused rather than silently rounded by
/// a peer's parser.
pub const MAX_JSON_SAFE_INTEGER: u64 = (1 << 53) - 1;
