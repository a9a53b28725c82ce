//! Provii v0 protocol primitives, off-circuit: the exact bytes the issuer,
//! wallets and verifiers must agree on (`reference/provii-protocol-v0.md`,
//! `WIRE.md`). No I/O, no clocks, no randomness it was not handed.

pub mod attestation;
pub mod circuit;
pub mod client_auth;
pub mod constants;
pub mod credential;
pub mod dob;
pub mod encoding;
pub mod error;
pub mod fixed_base;
pub mod fixed_str;
pub mod params;
pub mod pedersen;
mod point;
pub mod proof;
pub mod public_inputs;
pub mod rbits;
pub mod redjubjub;
pub mod rp;

pub use attestation::{Attestation, AttestationError, AttestationFields, AttestationVerifyingKey};
pub use credential::{CredMsgV2, ParsedCredential, SignedCredential};
pub use dob::{DobDays, bias_for_circuit};
pub use error::{Error, Result};
pub use fixed_str::{Kid, Schema};
pub use pedersen::{Commitment, Nullifier, commit, nullifier};
pub use public_inputs::{Direction, assemble_public_inputs};
pub use rbits::RBits;
pub use redjubjub::{Signature, SignatureInvalid, SigningKey, VerifyingKey};
