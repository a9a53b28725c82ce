//! Groth16 over the age circuit, timed: parameter generation (once; it
//! takes about a minute), proving and verification (median and spread of
//! several runs). A plain harness because criterion's minimum sample count
//! would make the setup take ten minutes.
//!
//! `cargo bench -p provii-circuits --bench age_proof`

use std::time::{Duration, Instant};

use provii_circuits::circuit::{AgePublicInputs, AgeWitness};
use provii_circuits::proof::{generate_parameters, prove, verify};
use provii_circuits::{
    CredMsgV2, Direction, DobDays, Kid, RBits, Schema, SigningKey, commit, nullifier,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

fn summary(label: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label}: median {:.1} ms, min {:.1} ms, max {:.1} ms ({} runs)",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1]),
        times.len()
    );
}

fn main() {
    let mut rng = ChaCha20Rng::from_seed([9; 32]);
    let started = Instant::now();
    let params = generate_parameters(&mut rng).expect("setup");
    println!(
        "parameter generation: {:.1} s (once)",
        started.elapsed().as_secs_f64()
    );
    let pvk = groth16::prepare_verifying_key(&params.vk);

    let mut wide = [0u8; 64];
    rng.fill_bytes(&mut wide);
    let key = SigningKey::from_random_bytes(&wide).expect("key");
    let mut r = [0u8; 16];
    rng.fill_bytes(&mut r);
    let r_bits = RBits::from_wire_bytes(&r).expect("r_bits");
    let dob = DobDays::new(9000).expect("dob");
    let credential = CredMsgV2::new(
        Kid::new("provii:2026-11").expect("kid"),
        commit(&dob, &r_bits).expect("commitment"),
        1_763_000_000,
        1_763_000_000 + 86_400 * 365,
        Schema::new("provii.age/0").expect("schema"),
    )
    .expect("message")
    .sign(&key);
    let public = AgePublicInputs {
        direction: Direction::Over,
        cutoff_days: 9100,
        rp_hash: [0x11; 32],
        issuer_vk: credential.issuer_vk.to_bytes(),
        nullifier: nullifier(credential.msg.commitment()).to_bytes(),
    };

    let mut proving = Vec::new();
    let mut proof = None;
    for _ in 0..5 {
        let witness = AgeWitness::from_credential(&dob, &r_bits, &credential).expect("witness");
        let started = Instant::now();
        proof = Some(prove(&params, &public, witness, &mut rng).expect("proof"));
        proving.push(started.elapsed());
    }
    summary("proving", proving);
    let proof = proof.expect("a proof");
    let mut verifying = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        assert!(verify(&pvk, &proof, &public));
        verifying.push(started.elapsed());
    }
    summary("verification (prepared key)", verifying);
}
