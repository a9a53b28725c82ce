//! Groth16 over the age circuit, timed: parameter generation (once; it
//! takes about a minute), proving and verification (median and spread of
//! several runs). A plain harness because criterion's minimum sample count
//! would make the setup take ten minutes.
//!
//! `cargo bench -p provii-circuits --bench age_proof`

use std::time::{Duration, Instant};

#[path = "../tests/support/mod.rs"]
mod support;
use support::Holder;

use provii_circuits::Direction;
use provii_circuits::proof::{generate_parameters, prove, verify};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

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

    let holder = Holder::new(&mut rng, 9000);
    let public = holder.statement(Direction::Over, 9100);

    let mut proving = Vec::new();
    let mut proof = None;
    for _ in 0..5 {
        let witness = holder.witness();
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
