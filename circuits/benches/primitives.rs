//! Hot paths of blind issuance. `cargo bench -p provii-circuits`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::{Signer, SigningKey as EdSigningKey};
use provii_circuits::attestation::{Attestation, AttestationFields, AttestationVerifyingKey};
use provii_circuits::{CredMsgV2, DobDays, Kid, RBits, Schema, SigningKey, commit, nullifier};

const NOW: u64 = 1_704_067_200;

fn fixtures() -> (
    RBits,
    SigningKey,
    EdSigningKey,
    AttestationVerifyingKey,
    Attestation,
) {
    let r = RBits::from_wire_bytes(&[
        0x2f, 0x00, 0x49, 0x1e, 0xea, 0x55, 0x6f, 0x82, 0x28, 0xaf, 0x86, 0x5d, 0x35, 0xcd, 0x9e,
        0x0e,
    ])
    .expect("A.7 randomness");
    let sk = SigningKey::from_random_bytes(&[7u8; 64]).expect("key");
    let ed = EdSigningKey::from_bytes(&[1u8; 32]);
    let ed_vk = AttestationVerifyingKey::from_bytes(ed.verifying_key().as_bytes()).expect("vk");
    let fields = AttestationFields::new(
        &DobDays::new(11246).expect("dob"),
        "dmv.ca.gov",
        NOW,
        [0x42; 32],
        None,
        None,
    )
    .expect("fields");
    let sig = ed.sign(&fields.digest()).to_bytes();
    (r, sk, ed, ed_vk, fields.with_signature(sig))
}

fn msg(c: provii_circuits::Commitment) -> CredMsgV2 {
    CredMsgV2::new(
        Kid::new("provii:2026-05").expect("kid"),
        c,
        NOW,
        NOW + 630_720_000,
        Schema::age(),
    )
    .expect("msg")
}

fn benches(crit: &mut Criterion) {
    let (r, sk, _ed, ed_vk, att) = fixtures();
    let dob = DobDays::new(11246).expect("dob");
    let c = commit(&dob, &r).expect("commit");
    let signed = msg(c).sign(&sk);

    crit.bench_function("commit", |b| {
        b.iter(|| commit(black_box(&dob), black_box(&r)))
    });
    crit.bench_function("nullifier", |b| b.iter(|| nullifier(black_box(&c))));
    crit.bench_function("prehash+sign", |b| {
        b.iter(|| black_box(msg(c)).sign(black_box(&sk)))
    });
    crit.bench_function("verify credential", |b| {
        b.iter(|| black_box(&signed).verify())
    });
    crit.bench_function("attestation verify", |b| {
        b.iter(|| black_box(&att).verify("dmv.ca.gov", black_box(&[ed_vk]), NOW))
    });
    crit.bench_function(
        "blind issuance crypto (attestation verify + commit + sign + self-verify)",
        |b| {
            b.iter(|| {
                let dob = att.verify("dmv.ca.gov", &[ed_vk], NOW).expect("valid");
                let c = commit(&dob, &r).expect("commit");
                let cred = msg(c).sign(&sk);
                cred.verify().expect("self-verify");
                cred
            })
        },
    );
    crit.bench_function("verify own credential (variable time)", |b| {
        b.iter(|| black_box(&signed).verify_own())
    });
    crit.bench_function(
        "blind issuance crypto as the daemon does it (self-check with verify_own)",
        |b| {
            b.iter(|| {
                let dob = att.verify("dmv.ca.gov", &[ed_vk], NOW).expect("valid");
                let c = commit(&dob, &r).expect("commit");
                let cred = msg(c).sign(&sk);
                cred.verify_own().expect("self-verify");
                cred
            })
        },
    );
}

criterion_group!(primitives, benches);
criterion_main!(primitives);
