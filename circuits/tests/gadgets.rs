//! Each in-circuit gadget against the native computation it mirrors
//! (`jubjub` point arithmetic, `sapling_crypto::pedersen_hash`, integer
//! comparison), with its constraint cost.

use bellman::ConstraintSystem;
use bellman::gadgets::boolean::{AllocatedBit, Boolean};
use bellman::gadgets::test::TestConstraintSystem;
use bls12_381::Scalar;
use group::{Group, GroupEncoding};
use jubjub::{AffinePoint, ExtendedPoint, Fr, SubgroupPoint};
use provii_circuits::circuit::bits::{conditional_swap, enforce_ge};
use provii_circuits::circuit::ecc::{EdwardsPoint, FixedBase, coordinates};
use provii_circuits::circuit::pedersen::{Personalization, pedersen_hash};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use sapling_crypto::pedersen_hash::{
    Personalization as SaplingPersonalization, pedersen_hash as native_pedersen,
};

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::from_seed([7u8; 32])
}

fn random_scalar(rng: &mut ChaCha20Rng) -> Fr {
    let mut wide = [0u8; 64];
    rng.fill_bytes(&mut wide);
    Fr::from_bytes_wide(&wide)
}

fn random_point(rng: &mut ChaCha20Rng) -> ExtendedPoint {
    ExtendedPoint::from(SubgroupPoint::generator() * random_scalar(rng))
}

fn witness(cs: &mut TestConstraintSystem<Scalar>, name: &str, p: &ExtendedPoint) -> EdwardsPoint {
    EdwardsPoint::witness(cs.namespace(|| name.to_owned()), Some(AffinePoint::from(p)))
        .expect("witness")
}

fn alloc_bits(cs: &mut TestConstraintSystem<Scalar>, name: &str, bits: &[bool]) -> Vec<Boolean> {
    bits.iter()
        .enumerate()
        .map(|(i, b)| {
            Boolean::from(
                AllocatedBit::alloc(cs.namespace(|| format!("{name} {i}")), Some(*b)).expect("bit"),
            )
        })
        .collect()
}

fn scalar_bits(k: &Fr) -> Vec<bool> {
    k.to_bytes()
        .iter()
        .flat_map(|b| (0..8).map(move |i| (b >> i) & 1 == 1))
        .collect()
}

#[test]
fn edwards_witness_addition_and_doubling_match_jubjub() {
    let mut rng = rng();
    for _ in 0..8 {
        let (p, q) = (random_point(&mut rng), random_point(&mut rng));
        let mut cs = TestConstraintSystem::<Scalar>::new();
        let a = witness(&mut cs, "p", &p);
        let b = witness(&mut cs, "q", &q);
        assert_eq!(cs.num_constraints(), 8, "witness: 4 constraints each");
        let sum = a.add(cs.namespace(|| "add"), &b).expect("add");
        assert_eq!(cs.num_constraints(), 14, "addition: 6 constraints");
        let twice = a.double(cs.namespace(|| "double")).expect("double");
        assert_eq!(cs.num_constraints(), 19, "doubling: 5 constraints");
        assert!(cs.is_satisfied());
        assert_eq!(sum.value(), Some(coordinates(&(p + q))));
        assert_eq!(twice.value(), Some(coordinates(&p.double())));
    }
    // The identity is handled (complete addition).
    let mut cs = TestConstraintSystem::<Scalar>::new();
    let p = random_point(&mut rng);
    let a = witness(&mut cs, "p", &p);
    let id = witness(&mut cs, "id", &ExtendedPoint::identity());
    let sum = a.add(cs.namespace(|| "add"), &id).expect("add");
    assert!(cs.is_satisfied());
    assert_eq!(sum.value(), Some(coordinates(&p)));
}

#[test]
fn a_point_off_the_curve_is_not_satisfiable() {
    let mut cs = TestConstraintSystem::<Scalar>::new();
    let off = AffinePoint::from_raw_unchecked(Scalar::from(3u64), Scalar::from(5u64));
    EdwardsPoint::witness(cs.namespace(|| "off"), Some(off)).expect("witness");
    assert!(!cs.is_satisfied());
}

#[test]
fn variable_and_fixed_base_multiplication_match_jubjub() {
    let mut rng = rng();
    let base = random_point(&mut rng);
    let table = FixedBase::new(base, 256);
    for _ in 0..3 {
        let k = random_scalar(&mut rng);
        let bits = scalar_bits(&k);
        let mut cs = TestConstraintSystem::<Scalar>::new();
        let b = witness(&mut cs, "base", &base);
        let k_bits = alloc_bits(&mut cs, "k", &bits);
        let before = cs.num_constraints();
        let variable = b.mul(cs.namespace(|| "mul"), &k_bits).expect("mul");
        let variable_cost = cs.num_constraints() - before;
        let before = cs.num_constraints();
        let fixed = table.mul(cs.namespace(|| "fixed"), &k_bits).expect("fixed");
        let fixed_cost = cs.num_constraints() - before;
        assert!(cs.is_satisfied());
        let want = Some(coordinates(&(base * k)));
        assert_eq!(variable.value(), want);
        assert_eq!(fixed.value(), want);
        // 256 bits: 13 per bit less 11 for the first; 86 lookups of 3 (the
        // last, with a constant padding bit, 2) and 85 additions of 6.
        assert_eq!(variable_cost, 256 * 13 - 11);
        assert_eq!(fixed_cost, 86 * 3 - 1 + 85 * 6);
    }
    // A 256-bit string above the group order reduces like the native scalar.
    let mut cs = TestConstraintSystem::<Scalar>::new();
    let b = witness(&mut cs, "base", &base);
    let all_ones = alloc_bits(&mut cs, "k", &[true; 256]);
    let product = b.mul(cs.namespace(|| "mul"), &all_ones).expect("mul");
    let mut wide = [0u8; 64];
    wide[..32].copy_from_slice(&[0xff; 32]);
    assert_eq!(
        product.value(),
        Some(coordinates(&(base * Fr::from_bytes_wide(&wide))))
    );
    assert!(cs.is_satisfied());
}

#[test]
fn point_encoding_bits_match_the_compressed_bytes() {
    let mut rng = rng();
    for _ in 0..4 {
        let p = random_point(&mut rng);
        let mut cs = TestConstraintSystem::<Scalar>::new();
        let a = witness(&mut cs, "p", &p);
        let before = cs.num_constraints();
        let bits = a.repr(cs.namespace(|| "repr")).expect("repr");
        // Two strict 255-bit decompositions (each 255 booleanity
        // constraints, the range check and the packing).
        assert_eq!(cs.num_constraints() - before, 776);
        let want: Vec<bool> = p
            .to_bytes()
            .iter()
            .flat_map(|b| (0..8).map(move |i| (b >> i) & 1 == 1))
            .collect();
        let got: Vec<bool> = bits.iter().map(|b| b.get_value().expect("value")).collect();
        assert_eq!(got, want);
        assert!(cs.is_satisfied());
    }
}

#[test]
fn small_order_points_are_rejected() {
    let mut rng = rng();
    let mut cs = TestConstraintSystem::<Scalar>::new();
    let good = witness(&mut cs, "good", &random_point(&mut rng));
    good.assert_not_small_order(cs.namespace(|| "check"))
        .expect("check");
    assert!(cs.is_satisfied());
    // (0, -1) has order 2.
    let mut cs = TestConstraintSystem::<Scalar>::new();
    let order_two = AffinePoint::from_raw_unchecked(Scalar::zero(), -Scalar::one());
    let p = EdwardsPoint::witness(cs.namespace(|| "p"), Some(order_two)).expect("witness");
    // The prover cannot even produce the witness ([8]P = identity has no
    // inverse of u), and the constraint could not be met if it did.
    let checked = p.assert_not_small_order(cs.namespace(|| "check"));
    assert!(checked.is_err() || !cs.is_satisfied());
}

#[test]
fn pedersen_hash_matches_sapling() {
    let mut rng = rng();
    // Lengths across chunk and segment boundaries, and the two the
    // circuit uses (160 and 480 message bits).
    for len in [0usize, 1, 2, 3, 160, 183, 184, 185, 372, 480, 600] {
        for (ours, theirs) in [
            (
                Personalization::NoteCommitment,
                SaplingPersonalization::NoteCommitment,
            ),
            (
                Personalization::MerkleTree0,
                SaplingPersonalization::MerkleTree(0),
            ),
        ] {
            let bits: Vec<bool> = (0..len).map(|_| rng.next_u32() & 1 == 1).collect();
            let mut cs = TestConstraintSystem::<Scalar>::new();
            let input = alloc_bits(&mut cs, "input", &bits);
            let out = pedersen_hash(cs.namespace(|| "hash"), ours, &input).expect("hash");
            assert!(cs.is_satisfied(), "len {len}");
            let native = ExtendedPoint::from(native_pedersen(theirs, bits.iter().copied()));
            assert_eq!(out.value(), Some(coordinates(&native)), "len {len}");
            if len == 160 {
                // 56 chunks: 56 lookups of 2 (the two all-constant
                // personalisation chunks and the partly constant one cost
                // 3 less in all), 55 Montgomery additions of 3, one
                // conversion of 2, plus the 160 input bits.
                assert_eq!(cs.num_constraints(), 160 + 56 * 2 - 3 + 55 * 3 + 2);
            }
        }
    }
}

fn le_bits(x: u32) -> Vec<bool> {
    (0..32).map(|i| (x >> i) & 1 == 1).collect()
}

fn check_ge(direction: bool, dob: u32, cutoff: u32) -> bool {
    let mut cs = TestConstraintSystem::<Scalar>::new();
    let d =
        Boolean::from(AllocatedBit::alloc(cs.namespace(|| "dir"), Some(direction)).expect("dir"));
    let dob_bits = alloc_bits(&mut cs, "dob", &le_bits(dob));
    let cutoff_bits = alloc_bits(&mut cs, "cutoff", &le_bits(cutoff));
    let (left, right) =
        conditional_swap(cs.namespace(|| "swap"), &d, &dob_bits, &cutoff_bits).expect("swap");
    enforce_ge(cs.namespace(|| "ge"), &left, &right).expect("ge");
    cs.is_satisfied()
}

#[test]
fn the_age_comparison_matches_integer_comparison_in_both_directions() {
    let mut rng = rng();
    let mut cases: Vec<(u32, u32)> = vec![
        (0, 0),
        (0, 1),
        (1, 0),
        (u32::MAX, u32::MAX),
        (u32::MAX, 0),
        (0, u32::MAX),
        (0x8000_35cc, 0x8000_35cc),
        (0x8000_35cc, 0x8000_35cd),
    ];
    for _ in 0..40 {
        let a = rng.next_u32();
        let b = if rng.next_u32().is_multiple_of(2) {
            rng.next_u32()
        } else {
            a.wrapping_add(rng.next_u32() % 3).wrapping_sub(1)
        };
        cases.push((a, b));
    }
    for (dob, cutoff) in cases {
        // Over (1): cutoff >= dob. Under (0): dob >= cutoff.
        assert_eq!(
            check_ge(true, dob, cutoff),
            cutoff >= dob,
            "over {dob} {cutoff}"
        );
        assert_eq!(
            check_ge(false, dob, cutoff),
            dob >= cutoff,
            "under {dob} {cutoff}"
        );
    }
}
