//! Every HSM operation on SoftHSM, one thread and two threads.
//! `cargo bench -p provii-hsm` (needs softhsm2; uses target/softhsm-test).
//! It allocates through jemalloc, as the daemon does, SoftHSM and OpenSSL
//! included.

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use provii_circuits::{
    AttestationFields, AttestationVerifyingKey, Commitment, CredMsgV2, DobDays, Kid, RBits, Schema,
    SignedCredential, commit,
};
use provii_hsm::{
    Hsm, HsmConfig, ObjectLabel, PinSource, SOFTHSM_MODULE, SecretKind, TokenSelector,
};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn open_bench_token() -> Hsm {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace");
    let dir = root.join("target/softhsm-test");
    let label = format!("bench-{}", std::process::id());
    let tokendir = if Path::new("/dev/shm").is_dir() {
        format!(
            "/dev/shm/provii-softhsm-test-{}",
            std::env::var("USER").unwrap_or_else(|_| "user".into())
        )
    } else {
        dir.join("tokens").display().to_string()
    };
    let ok = Command::new("bash")
        .arg(root.join("softhsm/token.sh"))
        .arg(&dir)
        .arg(&label)
        .env("SOFTHSM_TOKENDIR", tokendir)
        .status()
        .expect("softhsm/token.sh")
        .success();
    assert!(ok, "token setup failed");
    Hsm::open(HsmConfig::new(
        SOFTHSM_MODULE,
        TokenSelector::Label(label),
        PinSource::File(dir.join("user-pin")),
    ))
    .expect("open bench token")
}

type Op<'a> = Box<dyn Fn() + Sync + 'a>;

/// Consumes a result so the optimiser keeps the call.
fn bench_sink<T>(value: T) {
    black_box(value);
}

/// Runs `op` `iters` times split over `threads` threads; wall time.
fn spread(threads: u64, iters: u64, op: &(dyn Fn() + Sync)) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..iters.div_ceil(threads) {
                    op();
                }
            });
        }
    });
    start.elapsed()
}

fn benches(c: &mut Criterion) {
    let hsm = open_bench_token();
    let kek = ObjectLabel::kek(1);
    hsm.create_kek(&kek).expect("kek");
    let attest = ObjectLabel::attestation("bench").expect("label");
    hsm.create_ed25519_key(&attest).expect("ed25519");
    let officer = ObjectLabel::officer("bench", 1).expect("label");
    hsm.import_secret(&officer, SecretKind::OfficerYubiKey, &[7; 20])
        .expect("officer");
    let client = ObjectLabel::client("bench", 1).expect("label");
    hsm.import_secret(&client, SecretKind::ClientHmac, &[9; 32])
        .expect("client");
    let audit = ObjectLabel::audit_mac(1);
    hsm.create_mac_key(&audit).expect("audit");
    let kid = Kid::new("provii:2026-11").expect("kid");
    let sealed = hsm.generate_signing_key(&kek, &kid).expect("rj key");
    let blob = hsm.seal(&kek, b"aad", &[1; 32]).expect("seal");
    let commitment =
        Commitment::from_bytes(&sealed.verifying_key.to_bytes()).expect("a subgroup point");
    let msg = CredMsgV2::new(
        kid.clone(),
        commitment,
        1_700_000_000,
        1_800_000_000,
        Schema::age(),
    )
    .expect("msg");
    let issuer = "bench-issuer";
    let attestation_vk =
        AttestationVerifyingKey::from_bytes(&hsm.ed25519_public_key(&attest).expect("public"))
            .expect("key");
    let dob = DobDays::new(12_000).expect("dob");
    let r_bits = RBits::from_wire_bytes(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16])
        .expect("r_bits");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();

    let daemon_work = |strict: bool| {
        black_box(
            hsm.verify_hmac_sha256(&client, &[5; 199], &[0; 32])
                .expect("verify"),
        );
        let fields =
            AttestationFields::new(&dob, issuer, now, [7; 32], None, None).expect("fields");
        let digest = fields.digest();
        let signature = hsm.ed25519_sign(&attest, &digest).expect("sign");
        let attestation = fields.with_signature(signature);
        let keys = std::slice::from_ref(&attestation_vk);
        let attested = attestation
            .verify_with(issuer, now, |a| {
                let own = !strict && a.fields().digest() == digest && *a.signature() == signature;
                if own {
                    Ok(())
                } else {
                    a.verify_signature(keys)
                }
            })
            .expect("attestation verifies");
        let msg = CredMsgV2::new(
            kid.clone(),
            commit(&attested, &r_bits).expect("commit"),
            now,
            now + 7_300 * 86_400,
            Schema::age(),
        )
        .expect("msg");
        let sig_rj = hsm.sign_credential(&kek, &sealed, &msg).expect("sign");
        let signed = SignedCredential {
            msg,
            issuer_vk: sealed.verifying_key,
            sig_rj,
        };
        signed.verify_own().expect("self-check");
    };

    let ops: Vec<(&str, Op)> = vec![
        (
            "random 32 B",
            Box::new(|| {
                let mut b = [0u8; 32];
                hsm.random(&mut b).expect("rng");
                black_box(b);
            }),
        ),
        (
            "AES-GCM seal 32 B",
            Box::new(|| bench_sink(black_box(hsm.seal(&kek, b"aad", &[1; 32]).expect("seal")))),
        ),
        (
            "AES-GCM unseal 32 B",
            Box::new(|| bench_sink(black_box(hsm.unseal(&kek, b"aad", &blob).expect("unseal")))),
        ),
        (
            "Ed25519 sign (attestation)",
            Box::new(|| {
                bench_sink(black_box(
                    hsm.ed25519_sign(&attest, &[3; 32]).expect("sign"),
                ))
            }),
        ),
        (
            "HMAC-SHA1 verify (officer)",
            Box::new(|| {
                bench_sink(black_box(
                    hsm.verify_hmac_sha1(&officer, &[4; 32], &[0; 20])
                        .expect("verify"),
                ))
            }),
        ),
        (
            "HMAC-SHA256 verify (client)",
            Box::new(|| {
                bench_sink(black_box(
                    hsm.verify_hmac_sha256(&client, &[5; 199], &[0; 32])
                        .expect("verify"),
                ))
            }),
        ),
        (
            "HMAC-SHA256 sign (audit)",
            Box::new(|| bench_sink(black_box(hsm.hmac_sha256(&audit, &[6; 200]).expect("mac")))),
        ),
        (
            "RedJubjub open+sign+wipe",
            Box::new(|| {
                bench_sink(black_box(
                    hsm.sign_credential(&kek, &sealed, &msg).expect("sign"),
                ))
            }),
        ),
        (
            "HSM share of a blind issuance (unseal + audit MAC)",
            Box::new(|| {
                black_box(hsm.unseal(&kek, b"aad", &blob).expect("unseal"));
                black_box(hsm.hmac_sha256(&audit, &[6; 200]).expect("mac"));
            }),
        ),
        (
            // What the daemon computes for one load-tool iteration, without
            // HTTP, JSON or the database: the client's HMAC and the
            // attestation signature in the HSM, then the issuance's
            // attestation check, commitment, credential signature (HSM
            // unseal + RedJubjub) and self-check. The issuance recognises
            // an attestation this process signed by its digest and signature
            // (appliance `own_attestations`) instead of verifying it. The
            // in-process rate that BENCHMARKS.md compares the end-to-end
            // throughput with.
            "daemon work of attestation + issuance, in process",
            Box::new(|| daemon_work(false)),
        ),
        (
            // The same with the attestation verified strictly, as the daemon
            // does for one it did not sign (another process, a restart).
            "daemon work of attestation + issuance, strict attestation check",
            Box::new(|| daemon_work(true)),
        ),
    ];
    let mut run = |suffix: &str| {
        for (name, op) in &ops {
            c.bench_function(&format!("{name}{suffix} [1 thread]"), |b| b.iter(op));
            c.bench_function(&format!("{name}{suffix} [2 threads, per op]"), |b| {
                b.iter_custom(|n| spread(2, n, op.as_ref()))
            });
        }
    };
    run("");
    // Again with the keys as the daemon uses them: session copies.
    let copied = hsm
        .keep_session_copies(&[
            kek.clone(),
            attest.clone(),
            officer.clone(),
            client.clone(),
            audit.clone(),
        ])
        .expect("session copies");
    assert_eq!(copied, 5);
    run(" (session copies)");
}

criterion_group! {
    name = hsm;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500));
    targets = benches
}
criterion_main!(hsm);
