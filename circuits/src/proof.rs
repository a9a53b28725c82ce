//! Groth16 over the age circuit (spec §13.1, §13.9, §13.10, §15.5):
//! parameter generation, proving, verification, and the 192-byte proof.

use bls12_381::Bls12;
use groth16::{Parameters, PreparedVerifyingKey, Proof};
use rand_core::{CryptoRng, Rng};

use crate::circuit::{AgeCircuit, AgePublicInputs, AgeWitness};

/// A proof is always 192 bytes: A (G1, 48), B (G2, 96), C (G1, 48),
/// compressed.
pub const PROOF_BYTES: usize = 192;

/// What went wrong around a proof.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error("a proof is exactly 192 bytes, got {0}")]
    Length(usize),
    #[error("the proof bytes are not a valid compressed Groth16 proof: {0}")]
    Encoding(String),
    #[error(
        "the witness does not satisfy the statement (proving failed: {0}); run the wallet preflight"
    )]
    Unprovable(String),
    #[error("parameter generation failed: {0}")]
    Setup(String),
}

/// A Groth16 proof in its canonical bellman encoding, checked to decode.
#[derive(Clone, PartialEq, Eq)]
pub struct AgeProof([u8; PROOF_BYTES]);

impl AgeProof {
    /// Length first (spec §13.10), then the point decodings and subgroup
    /// checks of `Proof::read`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProofError> {
        let array: [u8; PROOF_BYTES] = bytes
            .try_into()
            .map_err(|_| ProofError::Length(bytes.len()))?;
        Proof::<Bls12>::read(&array[..]).map_err(|e| ProofError::Encoding(e.to_string()))?;
        Ok(Self(array))
    }

    pub fn to_bytes(&self) -> [u8; PROOF_BYTES] {
        self.0
    }

    fn decode(&self) -> Result<Proof<Bls12>, ProofError> {
        Proof::<Bls12>::read(&self.0[..]).map_err(|e| ProofError::Encoding(e.to_string()))
    }
}

impl core::fmt::Debug for AgeProof {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "AgeProof({})", crate::encoding::b64url_encode(&self.0))
    }
}

/// A fresh (test-only, single-party) trusted setup for the age circuit.
pub fn generate_parameters<R: Rng + CryptoRng>(
    rng: &mut R,
) -> Result<Parameters<Bls12>, ProofError> {
    groth16::generate_random_parameters::<Bls12, _, _>(AgeCircuit::blank(), rng)
        .map_err(|e| ProofError::Setup(e.to_string()))
}

/// Proves the statement with the witness. The witness is consumed and wiped
/// when proving returns (spec §13.9).
pub fn prove<R: Rng + CryptoRng>(
    params: &Parameters<Bls12>,
    public: &AgePublicInputs,
    witness: AgeWitness,
    rng: &mut R,
) -> Result<AgeProof, ProofError> {
    let circuit = AgeCircuit {
        public: Some(public.clone()),
        witness: Some(witness),
    };
    let proof = groth16::create_random_proof(circuit, params, rng)
        .map_err(|e| ProofError::Unprovable(e.to_string()))?;
    let mut bytes = [0u8; PROOF_BYTES];
    proof
        .write(&mut bytes[..])
        .map_err(|e| ProofError::Encoding(e.to_string()))?;
    Ok(AgeProof(bytes))
}

/// The verifier's check (spec §13.10): true only if the proof verifies for
/// exactly this statement.
pub fn verify(
    pvk: &PreparedVerifyingKey<Bls12>,
    proof: &AgeProof,
    public: &AgePublicInputs,
) -> bool {
    match proof.decode() {
        Ok(p) => groth16::verify_proof(pvk, &p, &public.to_scalars()).is_ok(),
        Err(_) => false,
    }
}

/// The first constraint this statement and witness leave unsatisfied, by
/// name, or `None` when they satisfy the circuit. Synthesises the whole
/// circuit in bellman's test constraint system (about half a second in a
/// release build): a diagnostic for a proof that failed its own check, not
/// a step of proving.
pub fn first_unsatisfied(public: &AgePublicInputs, witness: AgeWitness) -> Option<String> {
    use bellman::Circuit;
    use bellman::gadgets::test::TestConstraintSystem;
    let mut cs = TestConstraintSystem::<bls12_381::Scalar>::new();
    let circuit = AgeCircuit {
        public: Some(public.clone()),
        witness: Some(witness),
    };
    if let Err(e) = circuit.synthesize(&mut cs) {
        return Some(format!("synthesis: {e}"));
    }
    cs.which_is_unsatisfied().map(str::to_owned)
}
