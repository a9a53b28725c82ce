//! The age circuit's statement (spec §12.7) in a `TestConstraintSystem`: a
//! real credential satisfies it in both directions, and every part of the
//! statement is constrained: a date of birth on the wrong side of the
//! cutoff, a wrong signature, a wrong nullifier, a commitment that does not
//! open and another issuer's key each leave it unsatisfied.

use bellman::Circuit;
use bellman::gadgets::test::TestConstraintSystem;
use bls12_381::Scalar;
use provii_circuits::circuit::{AgeCircuit, AgePublicInputs, AgeWitness, WitnessInput};
use provii_circuits::constants::CREDENTIAL_VERSION;
use provii_circuits::{Direction, nullifier};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

mod support;

use support::Holder;

fn holder(rng: &mut ChaCha20Rng, dob_days: i32) -> Holder {
    Holder::new(rng, dob_days)
}

fn statement(h: &Holder, direction: Direction, cutoff_days: i32) -> AgePublicInputs {
    h.statement(direction, cutoff_days)
}

fn witness(h: &Holder) -> AgeWitness {
    h.witness()
}

/// Builds a witness field by field, with one change applied.
fn altered(h: &Holder, change: impl FnOnce(&mut [u8; 64], &mut Vec<bool>)) -> AgeWitness {
    let mut sig = h.credential.sig_rj.to_bytes();
    let mut bits: Vec<bool> = h.r_bits.bits().collect();
    change(&mut sig, &mut bits);
    AgeWitness::new(WitnessInput {
        dob_days: h.dob.expose(),
        r_bits: &bits,
        issuer_vk: h.credential.issuer_vk.to_bytes(),
        sig_rj: &sig,
        v: CREDENTIAL_VERSION,
        kid: h.credential.msg.kid().as_bytes(),
        c_bytes: h.credential.msg.commitment().to_bytes(),
        iat: h.credential.msg.iat(),
        exp: h.credential.msg.exp(),
        schema: h.credential.msg.schema().as_bytes(),
    })
    .expect("witness")
}

/// Synthesises; `Some(constraints)` when satisfied, `None` when not (a
/// witness the prover cannot even compute counts as unsatisfied).
fn satisfied(public: AgePublicInputs, witness: AgeWitness) -> Option<usize> {
    let mut cs = TestConstraintSystem::<Scalar>::new();
    let scalars = public.to_scalars();
    let circuit = AgeCircuit {
        public: Some(public),
        witness: Some(witness),
    };
    circuit.synthesize(&mut cs).ok()?;
    assert!(
        cs.verify(&scalars),
        "the allocated inputs are the statement's"
    );
    cs.is_satisfied().then(|| cs.num_constraints())
}

#[test]
fn a_real_credential_satisfies_both_directions_and_the_constraint_count_is_printed() {
    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    let h = holder(&mut rng, 9000);
    let over = satisfied(statement(&h, Direction::Over, 9100), witness(&h));
    let constraints = over.expect("over 9100 is satisfied");
    println!("age circuit constraints: {constraints} (spec §12.5 reference: 99 083)");
    let shape = provii_circuits::circuit::count::shape().expect("shape");
    assert_eq!(
        shape.constraints, constraints,
        "the blank circuit has the same shape"
    );
    assert_eq!(shape.public_inputs, 8, "ic.len() will be 9");
    assert!(satisfied(statement(&h, Direction::Under, 8900), witness(&h)).is_some());
    // The boundary satisfies both directions (spec §12.2).
    assert!(satisfied(statement(&h, Direction::Over, 9000), witness(&h)).is_some());
    assert!(satisfied(statement(&h, Direction::Under, 9000), witness(&h)).is_some());
    // Dates before 1970 work: the bias keeps the order.
    let old = holder(&mut rng, -20_000);
    assert!(satisfied(statement(&old, Direction::Over, 6_570), witness(&old)).is_some());
    assert!(satisfied(statement(&old, Direction::Under, 6_570), witness(&old)).is_none());
}

#[test]
fn a_date_of_birth_on_the_wrong_side_is_refused() {
    let mut rng = ChaCha20Rng::from_seed([2; 32]);
    let h = holder(&mut rng, 9000);
    assert!(satisfied(statement(&h, Direction::Over, 8999), witness(&h)).is_none());
    assert!(satisfied(statement(&h, Direction::Under, 9001), witness(&h)).is_none());
    // The wallet's diagnostic names the constraint that fails, and none for
    // a statement the credential satisfies.
    let cause = provii_circuits::proof::first_unsatisfied(
        &statement(&h, Direction::Over, 8999),
        witness(&h),
    );
    assert!(cause.is_some_and(|c| !c.is_empty()));
    assert_eq!(
        provii_circuits::proof::first_unsatisfied(
            &statement(&h, Direction::Over, 9001),
            witness(&h)
        ),
        None
    );
}

#[test]
fn a_wrong_signature_is_refused_in_both_directions() {
    let mut rng = ChaCha20Rng::from_seed([3; 32]);
    let h = holder(&mut rng, 9000);
    for (direction, cutoff) in [(Direction::Over, 9100), (Direction::Under, 8900)] {
        let s_changed = altered(&h, |sig, _| sig[40] ^= 0x01);
        assert!(satisfied(statement(&h, direction, cutoff), s_changed).is_none());
        // R replaced by another valid point: the generator's encoding.
        let r_changed = altered(&h, |sig, _| {
            sig[..32].copy_from_slice(&provii_circuits::constants::SPENDING_KEY_GENERATOR_BYTES)
        });
        assert!(satisfied(statement(&h, direction, cutoff), r_changed).is_none());
    }
}

#[test]
fn a_wrong_nullifier_is_refused_in_both_directions() {
    let mut rng = ChaCha20Rng::from_seed([4; 32]);
    let h = holder(&mut rng, 9000);
    let other = holder(&mut rng, 9000);
    for (direction, cutoff) in [(Direction::Over, 9100), (Direction::Under, 8900)] {
        let mut public = statement(&h, direction, cutoff);
        public.nullifier = nullifier(other.credential.msg.commitment()).to_bytes();
        assert!(satisfied(public, witness(&h)).is_none());
    }
}

#[test]
fn a_commitment_that_does_not_open_is_refused_in_both_directions() {
    let mut rng = ChaCha20Rng::from_seed([5; 32]);
    let h = holder(&mut rng, 9000);
    for (direction, cutoff) in [(Direction::Over, 9100), (Direction::Under, 8900)] {
        let other_randomness = altered(&h, |_, bits| bits[17] = !bits[17]);
        assert!(satisfied(statement(&h, direction, cutoff), other_randomness).is_none());
    }
    // Nor does another date of birth open it, even one that passes the check.
    let lie = AgeWitness::new(WitnessInput {
        dob_days: 8000,
        r_bits: &h.r_bits.bits().collect::<Vec<_>>(),
        issuer_vk: h.credential.issuer_vk.to_bytes(),
        sig_rj: &h.credential.sig_rj.to_bytes(),
        v: CREDENTIAL_VERSION,
        kid: h.credential.msg.kid().as_bytes(),
        c_bytes: h.credential.msg.commitment().to_bytes(),
        iat: h.credential.msg.iat(),
        exp: h.credential.msg.exp(),
        schema: h.credential.msg.schema().as_bytes(),
    })
    .expect("witness");
    assert!(satisfied(statement(&h, Direction::Over, 8500), lie).is_none());
}

#[test]
fn another_issuers_key_is_refused_in_both_directions() {
    let mut rng = ChaCha20Rng::from_seed([6; 32]);
    let h = holder(&mut rng, 9000);
    let other = holder(&mut rng, 9000);
    for (direction, cutoff) in [(Direction::Over, 9100), (Direction::Under, 8900)] {
        let mut public = statement(&h, direction, cutoff);
        public.issuer_vk = other.credential.issuer_vk.to_bytes();
        assert!(satisfied(public, witness(&h)).is_none());
    }
}

#[test]
fn the_witness_constructor_checks_sizes_and_redacts() {
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    let h = holder(&mut rng, 9000);
    let bits: Vec<bool> = h.r_bits.bits().collect();
    let sig = h.credential.sig_rj.to_bytes();
    let input = |kid: &'static [u8], schema: &'static [u8], r: usize, s: usize| {
        AgeWitness::new(WitnessInput {
            dob_days: 9000,
            r_bits: &bits[..r],
            issuer_vk: [0; 32],
            sig_rj: &sig[..s],
            v: 2,
            kid,
            c_bytes: [0; 32],
            iat: 0,
            exp: 1,
            schema,
        })
    };
    assert!(input(b"provii:2026-11", b"provii.age/0", 128, 64).is_ok());
    assert!(input(b"provii:2026-1", b"provii.age/0", 128, 64).is_err());
    assert!(input(b"provii:2026-11", b"provii.age/", 128, 64).is_err());
    assert!(input(b"provii:2026-11", b"provii.age/0", 127, 64).is_err());
    assert!(input(b"provii:2026-11", b"provii.age/0", 128, 63).is_err());
    let debug = format!("{:?}", witness(&h));
    assert!(!debug.contains("9000"), "{debug}");
    assert!(debug.contains("redacted"));
}
