//! ProviiRJ against an independent reading of spec §8 and against tampering.

use blake2s_simd::Params;
use ff::PrimeField;
use group::GroupEncoding;
use jubjub::{ExtendedPoint, Fr, SubgroupPoint};
use proptest::prelude::*;
use provii_circuits::constants::SPENDING_KEY_GENERATOR_BYTES;
use provii_circuits::error::{Error, PointError};
use provii_circuits::{Commitment, CredMsgV2, Kid, Schema, Signature, SigningKey, VerifyingKey};

fn g() -> SubgroupPoint {
    Option::from(SubgroupPoint::from_bytes(&SPENDING_KEY_GENERATOR_BYTES)).expect("G decodes")
}

/// Spec §8.3–8.5 written out again from the text, step by step.
fn reference_sign(sk: &[u8; 32], msg_hash: &[u8; 32]) -> [u8; 64] {
    let sk_scalar: Fr = Option::from(Fr::from_bytes(sk)).expect("canonical test key");
    let mut nonce_in = b"ProviiRJ/nonce".to_vec();
    nonce_in.extend_from_slice(sk);
    nonce_in.extend_from_slice(msg_hash);
    assert_eq!(nonce_in.len(), 78);
    let mut wide = [0u8; 64];
    wide[..32].copy_from_slice(blake2s_simd::blake2s(&nonce_in).as_bytes());
    let nonce = Fr::from_bytes_wide(&wide);
    let r = (g() * nonce).to_bytes();
    let vk = (g() * sk_scalar).to_bytes();
    let mut c_in = r.to_vec();
    c_in.extend_from_slice(&vk);
    c_in.extend_from_slice(msg_hash);
    let digest = Params::new()
        .hash_length(32)
        .personal(b"ProviiRJ")
        .hash(&c_in);
    let mut wide = [0u8; 64];
    wide[..32].copy_from_slice(digest.as_bytes());
    let c = Fr::from_bytes_wide(&wide);
    let s = nonce + c * sk_scalar;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&r);
    sig[32..].copy_from_slice(&s.to_bytes());
    sig
}

fn credential(commit_seed: u64, iat: u64, validity: u64) -> CredMsgV2 {
    let point = g() * Fr::from(commit_seed.max(1));
    CredMsgV2::new(
        Kid::new("provii:2026-05").expect("kid"),
        Commitment::from_bytes(&point.to_bytes()).expect("subgroup point"),
        iat,
        iat + validity,
        Schema::age(),
    )
    .expect("valid window")
}

fn key_from(seed: &[u8; 64]) -> SigningKey {
    SigningKey::from_random_bytes(seed).expect("non-zero with overwhelming probability")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn signatures_match_the_reference_reading(seed in prop::array::uniform32(any::<u8>()), msg in prop::array::uniform32(any::<u8>())) {
        let mut wide = [0u8; 64];
        wide[..32].copy_from_slice(&seed);
        let key = key_from(&wide);
        let sk = key.to_bytes();
        prop_assert_eq!(key.sign(&msg).to_bytes(), reference_sign(&sk, &msg));
        prop_assert_eq!(key.verifying_key().to_bytes(), (g() * Fr::from_bytes_wide(&wide)).to_bytes());
        prop_assert!(key.verifying_key().verify(&msg, &key.sign(&msg)).is_ok());
    }

    #[test]
    fn flipping_any_signature_bit_fails(seed in prop::array::uniform32(any::<u8>()), commit_seed in 1u64.., iat in 0u64..4_000_000_000) {
        let mut wide = [0u8; 64];
        wide[32..].copy_from_slice(&seed);
        let key = key_from(&wide);
        let msg = credential(commit_seed, iat, 630_720_000);
        let signed = msg.sign(&key);
        prop_assert!(signed.verify().is_ok());
        let sig = signed.sig_rj.to_bytes();
        for bit in 0..512 {
            let mut bad = sig;
            bad[bit / 8] ^= 1 << (bit % 8);
            let mut tampered = signed.clone();
            tampered.sig_rj = Signature::from_bytes(bad);
            prop_assert!(tampered.verify().is_err(), "bit {} of sig_rj", bit);
        }
    }

    #[test]
    fn flipping_any_signed_field_bit_fails(seed in prop::array::uniform32(any::<u8>()), commit_seed in 1u64.., iat in 0u64..4_000_000_000, bit in 0usize..91*8) {
        let mut wide = [0u8; 64];
        wide[..32].copy_from_slice(&seed);
        let key = key_from(&wide);
        let msg = credential(commit_seed, iat, 630_720_000);
        let sig = key.sign(&msg.msg_hash());
        // Any change to the signed bytes changes msg_hash; the signature over
        // the original must not verify over the altered prehash.
        let mut prehash = msg.prehash();
        prehash[bit / 8] ^= 1 << (bit % 8);
        let altered = *blake2s_simd::blake2s(&prehash).as_array();
        prop_assert!(key.verifying_key().verify(&altered, &sig).is_err());
    }
}

#[test]
fn each_field_of_the_credential_is_covered() {
    let key = key_from(&[9u8; 64]);
    let signed = credential(5, 1_700_000_000, 1000).sign(&key);
    let m = &signed.msg;
    let variants = [
        CredMsgV2::new(
            Kid::new("provii:2026-06").expect("kid"),
            *m.commitment(),
            m.iat(),
            m.exp(),
            m.schema().clone(),
        ),
        CredMsgV2::new(
            m.kid().clone(),
            *credential(6, 1, 1).commitment(),
            m.iat(),
            m.exp(),
            m.schema().clone(),
        ),
        CredMsgV2::new(
            m.kid().clone(),
            *m.commitment(),
            m.iat() + 1,
            m.exp(),
            m.schema().clone(),
        ),
        CredMsgV2::new(
            m.kid().clone(),
            *m.commitment(),
            m.iat(),
            m.exp() + 1,
            m.schema().clone(),
        ),
        CredMsgV2::new(
            m.kid().clone(),
            *m.commitment(),
            m.iat(),
            m.exp(),
            Schema::new("provii.age/1").expect("schema"),
        ),
    ];
    for v in variants {
        let mut tampered = signed.clone();
        tampered.msg = v.expect("valid variant");
        assert!(tampered.verify().is_err());
    }
    let other = key_from(&[10u8; 64]);
    assert!(
        other
            .verifying_key()
            .verify(&signed.msg.msg_hash(), &signed.sig_rj)
            .is_err()
    );
    assert!(signed.verify_with(other.verifying_key()).is_err());
}

fn order_of_r_j() -> [u8; 32] {
    // r_J = 0x0e7db4ea6533afa906673b0101343b00a6682093ccc81082d0970e5ed6f72cb7 (spec §4.2), little-endian.
    let be = provii_circuits::encoding::hex_decode_array::<32>(
        "0e7db4ea6533afa906673b0101343b00a6682093ccc81082d0970e5ed6f72cb7",
        "r_J",
    )
    .expect("hex");
    let mut le = be;
    le.reverse();
    le
}

fn add_le(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
    }
    out
}

#[test]
fn scalar_field_order_matches_the_spec() {
    assert_eq!(
        Fr::MODULUS,
        "0x0e7db4ea6533afa906673b0101343b00a6682093ccc81082d0970e5ed6f72cb7"
    );
}

#[test]
fn non_canonical_s_is_refused_even_when_congruent() {
    let key = key_from(&[3u8; 64]);
    let msg = [7u8; 32];
    let sig = key.sign(&msg).to_bytes();
    let mut s = [0u8; 32];
    s.copy_from_slice(&sig[32..]);
    let s_plus_r = add_le(&s, &order_of_r_j());
    let mut bad = sig;
    bad[32..].copy_from_slice(&s_plus_r);
    let bad = Signature::from_bytes(bad);
    assert_eq!(
        bad.check_encoding(),
        Err(Error::NonCanonicalScalar { field: "sig_rj.s" })
    );
    assert!(key.verifying_key().verify(&msg, &bad).is_err());
}

fn identity_bytes() -> [u8; 32] {
    ExtendedPoint::identity().to_bytes()
}

/// (0, -1): the point of order 2.
fn order_two_bytes() -> [u8; 32] {
    let minus_one = -bls12_381::Scalar::one();
    minus_one.to_bytes()
}

fn mixed_order_bytes() -> [u8; 32] {
    let t: ExtendedPoint =
        Option::from(ExtendedPoint::from_bytes(&order_two_bytes())).expect("order-2 point");
    (t + ExtendedPoint::from(g())).to_bytes()
}

#[test]
fn verifying_key_decoding_names_each_failure() {
    let point_err = |bytes: [u8; 32]| match VerifyingKey::from_bytes(&bytes) {
        Err(Error::Point { source, .. }) => source,
        other => panic!("expected a point error, got {other:?}"),
    };
    assert_eq!(point_err(identity_bytes()), PointError::Identity);
    assert_eq!(point_err(order_two_bytes()), PointError::SmallOrder);
    assert_eq!(point_err(mixed_order_bytes()), PointError::NotInSubgroup);
    let not_on_curve = provii_circuits::encoding::hex_decode_array::<32>(
        "02820bdb8c81bb4824b8b7be488765e819b84ff495d5ae334a10197fd97ddd25",
        "t",
    )
    .expect("hex");
    assert_eq!(point_err(not_on_curve), PointError::NotOnCurve);
    // Non-canonical v (v >= q) is refused as "not on curve" too.
    assert_eq!(point_err([0xff; 32]), PointError::NotOnCurve);
}

#[test]
fn signatures_with_bad_r_are_refused_uniformly() {
    let key = key_from(&[4u8; 64]);
    let msg = [1u8; 32];
    let good = key.sign(&msg).to_bytes();
    for (r, want) in [
        (identity_bytes(), PointError::Identity),
        (order_two_bytes(), PointError::SmallOrder),
        (mixed_order_bytes(), PointError::NotInSubgroup),
    ] {
        let mut bad = good;
        bad[..32].copy_from_slice(&r);
        let sig = Signature::from_bytes(bad);
        assert_eq!(
            sig.check_encoding(),
            Err(Error::Point {
                field: "sig_rj.R",
                source: want
            })
        );
        assert_eq!(
            key.verifying_key().verify(&msg, &sig),
            Err(provii_circuits::SignatureInvalid)
        );
    }
}

#[test]
fn signing_key_decoding() {
    assert_eq!(
        SigningKey::from_bytes(&[0u8; 32]).err(),
        Some(Error::ZeroScalar { field: "sk" })
    );
    assert_eq!(
        SigningKey::from_bytes(&order_of_r_j()).err(),
        Some(Error::NonCanonicalScalar { field: "sk" })
    );
    let mut one = [0u8; 32];
    one[0] = 1;
    let key = SigningKey::from_bytes(&one).expect("1 is a valid key");
    assert_eq!(key.verifying_key().to_bytes(), SPENDING_KEY_GENERATOR_BYTES);
    assert_eq!(*key.to_bytes(), one);
}

#[test]
fn signing_key_never_prints_its_secret() {
    let mut sk = [0u8; 32];
    sk[0] = 0xab;
    sk[1] = 0xcd;
    let key = SigningKey::from_bytes(&sk).expect("valid");
    let shown = format!("{key:?}");
    assert!(shown.contains("[REDACTED]"));
    assert!(!shown.contains("abcd") && !shown.contains("171"), "{shown}");
}

#[test]
fn signing_is_deterministic() {
    let key = key_from(&[5u8; 64]);
    assert_eq!(key.sign(&[2u8; 32]), key.sign(&[2u8; 32]));
    assert_ne!(key.sign(&[2u8; 32]), key.sign(&[3u8; 32]));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// The fast self-check agrees with the uniform verifier on good
    /// signatures and on every single-bit corruption of them.
    #[test]
    fn verify_own_agrees_with_verify(seed in prop::array::uniform32(any::<u8>()), msg in prop::array::uniform32(any::<u8>()), bit in 0usize..512) {
        let mut wide = [0u8; 64];
        wide[..32].copy_from_slice(&seed);
        let key = key_from(&wide);
        let sig = key.sign(&msg);
        prop_assert!(key.verifying_key().verify_own(&msg, &sig).is_ok());
        let mut bad = sig.to_bytes();
        bad[bit / 8] ^= 1 << (bit % 8);
        let bad = Signature::from_bytes(bad);
        prop_assert_eq!(key.verifying_key().verify_own(&msg, &bad).is_ok(), key.verifying_key().verify(&msg, &bad).is_ok());
        prop_assert!(key.verifying_key().verify_own(&msg, &bad).is_err());
    }
}

#[test]
fn a_key_built_with_its_verifying_key_signs_identically() {
    let key = key_from(&[11u8; 64]);
    let same = SigningKey::from_bytes_with_verifying_key(&key.to_bytes(), *key.verifying_key())
        .expect("valid");
    assert_eq!(same.sign(&[1; 32]), key.sign(&[1; 32]));
    // A wrong key is caught by verification, never silently accepted.
    let other = key_from(&[12u8; 64]);
    let mismatched =
        SigningKey::from_bytes_with_verifying_key(&key.to_bytes(), *other.verifying_key())
            .expect("decodes");
    let sig = mismatched.sign(&[1; 32]);
    assert!(other.verifying_key().verify(&[1; 32], &sig).is_err());
    assert!(key.verifying_key().verify(&[1; 32], &sig).is_err());
    assert!(SigningKey::from_bytes_with_verifying_key(&[0; 32], *key.verifying_key()).is_err());
}
