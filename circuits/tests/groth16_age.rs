//! Groth16 over the age circuit end to end in process: one setup shared by
//! the tests of this binary, proofs for both directions, and verification
//! that fails for any other statement.

use std::sync::OnceLock;
use std::time::Instant;

use bls12_381::Bls12;
use groth16::{Parameters, PreparedVerifyingKey};
use provii_circuits::circuit::AgePublicInputs;
use provii_circuits::params::ParamsManifest;
use provii_circuits::proof::{AgeProof, PROOF_BYTES, generate_parameters, prove, verify};
use provii_circuits::{Direction, nullifier};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn params() -> &'static (Parameters<Bls12>, PreparedVerifyingKey<Bls12>) {
    static P: OnceLock<(Parameters<Bls12>, PreparedVerifyingKey<Bls12>)> = OnceLock::new();
    P.get_or_init(|| {
        // scripts/test.sh generates one set per run for every proving test.
        let params = match std::env::var_os("PROVII_TEST_PARAMS") {
            Some(dir) => {
                let dir = std::path::PathBuf::from(dir);
                let manifest: ParamsManifest = serde_json::from_slice(
                    &std::fs::read(dir.join("manifest.json")).expect("manifest"),
                )
                .expect("manifest JSON");
                manifest
                    .check_proving_key(&std::fs::read(dir.join("age_pk.bin")).expect("pk"))
                    .expect("the run's parameters pass the checks of spec §13.8")
            }
            None => {
                let started = Instant::now();
                let params =
                    generate_parameters(&mut ChaCha20Rng::from_seed([42; 32])).expect("setup");
                eprintln!(
                    "parameter generation: {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                params
            }
        };
        let pvk = groth16::prepare_verifying_key(&params.vk);
        (params, pvk)
    })
}

mod support;

use support::Holder;

fn holder(seed: u8, dob_days: i32) -> Holder {
    Holder::new(&mut ChaCha20Rng::from_seed([seed; 32]), dob_days)
}

fn statement(h: &Holder, direction: Direction, cutoff_days: i32) -> AgePublicInputs {
    h.statement(direction, cutoff_days)
}

fn prove_for(h: &Holder, public: &AgePublicInputs) -> AgeProof {
    let witness = h.witness();
    let params = &params().0;
    let started = Instant::now();
    let proof = prove(params, public, witness, &mut rand::rng()).expect("proof");
    eprintln!("proving: {:.2} s", started.elapsed().as_secs_f64());
    proof
}

#[test]
fn proofs_verify_for_their_statement_only() {
    let h = holder(1, 9000);
    let other = holder(2, 9000);
    for (direction, cutoff, wrong_direction_cutoff) in [
        (Direction::Over, 9100, Direction::Under),
        (Direction::Under, 8900, Direction::Over),
    ] {
        let public = statement(&h, direction, cutoff);
        let proof = prove_for(&h, &public);
        assert_eq!(proof.to_bytes().len(), PROOF_BYTES);
        let pvk = &params().1;
        let started = Instant::now();
        assert!(verify(pvk, &proof, &public));
        eprintln!(
            "verification: {:.1} ms",
            started.elapsed().as_secs_f64() * 1000.0
        );
        let round_trip = AgeProof::from_bytes(&proof.to_bytes()).expect("decodes");
        assert!(verify(pvk, &round_trip, &public));

        let mut s = public.clone();
        s.cutoff_days += 1;
        assert!(!verify(pvk, &proof, &s), "another cutoff");
        let mut s = public.clone();
        s.direction = wrong_direction_cutoff;
        assert!(!verify(pvk, &proof, &s), "the other direction");
        let mut s = public.clone();
        s.rp_hash[0] ^= 1;
        assert!(!verify(pvk, &proof, &s), "another RP hash");
        let mut s = public.clone();
        s.issuer_vk = other.credential.issuer_vk.to_bytes();
        assert!(!verify(pvk, &proof, &s), "another issuer key");
        let mut s = public.clone();
        s.nullifier = nullifier(other.credential.msg.commitment()).to_bytes();
        assert!(!verify(pvk, &proof, &s), "another nullifier");
    }
}

#[test]
fn an_unsatisfied_statement_cannot_be_proved() {
    let h = holder(3, 9000);
    let witness = h.witness();
    // Born after the cutoff, claiming Over: bellman proves anything it is
    // given, so the proof must simply not verify.
    let public = statement(&h, Direction::Over, 8000);
    if let Ok(proof) = prove(&params().0, &public, witness, &mut rand::rng()) {
        assert!(!verify(&params().1, &proof, &public));
    }
}

#[test]
fn malformed_proof_bytes_are_refused() {
    assert!(AgeProof::from_bytes(&[0u8; 191]).is_err());
    assert!(AgeProof::from_bytes(&[0u8; 193]).is_err());
    assert!(
        AgeProof::from_bytes(&[0u8; 192]).is_err(),
        "the uncompressed flag"
    );
}
