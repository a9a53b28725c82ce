//! Every HSM operation on SoftHSM, one thread and two threads.
//! `cargo bench -p provii-hsm` (needs softhsm2; uses target/softhsm-test).

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use provii_circuits::{Commitment, CredMsgV2, Kid, Schema};
use provii_hsm::{
    Hsm, HsmConfig, ObjectLabel, PinSource, SOFTHSM_MODULE, SecretKind, TokenSelector,
};

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
    let msg =
        CredMsgV2::new(kid, commitment, 1_700_000_000, 1_800_000_000, Schema::age()).expect("msg");

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
    ];
    for (name, op) in &ops {
        c.bench_function(&format!("{name} [1 thread]"), |b| b.iter(op));
        c.bench_function(&format!("{name} [2 threads, per op]"), |b| {
            b.iter_custom(|n| spread(2, n, op.as_ref()))
        });
    }
}

criterion_group! {
    name = hsm;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500));
    targets = benches
}
criterion_main!(hsm);
