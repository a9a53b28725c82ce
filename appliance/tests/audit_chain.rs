//! The audit chain against a real SoftHSM token: every record verifies,
//! any change breaks it, and retention purges a prefix while what remains
//! still verifies.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use provii_appliance::audit::{self, Event, Severity, VerifyReport};
use provii_appliance::db::Db;
use provii_hsm::{Hsm, HsmConfig, PinSource, SOFTHSM_MODULE, TokenSelector};

const DAY: i64 = 86_400;

fn setup(name: &str) -> (Hsm, Db, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace");
    let dir = root.join("target/softhsm-test");
    let label = format!("{name}-{}", std::process::id());
    let ok = Command::new("bash")
        .arg(root.join("softhsm/token.sh"))
        .arg(&dir)
        .arg(&label)
        .stdout(Stdio::null())
        .status()
        .expect("softhsm/token.sh")
        .success();
    assert!(ok);
    let config = HsmConfig::new(
        SOFTHSM_MODULE,
        TokenSelector::Label(label.clone()),
        PinSource::File(dir.join("user-pin")),
    );
    let hsm = Hsm::open(config).expect("open token");
    hsm.create_mac_key(&audit::audit_key()).expect("audit key");
    hsm.create_mac_key(&audit::address_key())
        .expect("address key");
    let db_dir = root.join("target/audit-test");
    std::fs::create_dir_all(&db_dir).expect("dir");
    let db_path = db_dir.join(format!("{label}.db"));
    let _ = std::fs::remove_file(&db_path);
    let db = Db::open(&db_path).expect("db");
    (hsm, db, db_path)
}

fn append(db: &Db, hsm: &Hsm, event: Event, ts: i64) {
    let hsm = hsm.clone();
    db.write_blocking(move |c| audit::append(c, &hsm, &event, ts))
        .expect("append");
}

fn verify(db: &Db, hsm: &Hsm) -> VerifyReport {
    db.read_blocking(|c| audit::verify(c, hsm)).expect("verify")
}

/// Applies `sql` through a connection of its own, verifies, rolls back.
fn verify_tampered(db_path: &Path, hsm: &Hsm, sql: &str) -> VerifyReport {
    let mut conn = rusqlite::Connection::open(db_path).expect("db");
    let tx = conn.transaction().expect("tx");
    tx.execute(sql, []).expect("tamper");
    audit::verify(&tx, hsm).expect("verify")
}

#[test]
fn chain_verification_retention_and_tampering() {
    let (hsm, db, db_path) = setup("audit");
    let now = 1_800_000_000;
    let events = [
        (now - 400 * DAY, Severity::Critical), // 1: past even critical retention
        (now - 200 * DAY, Severity::Info),     // 2: past 90 days
        (now - 100 * DAY, Severity::Warning),  // 3: past 90 days
        (now - 100 * DAY, Severity::Critical), // 4: critical, within 365 days: stays
        (now - 95 * DAY, Severity::Info),      // 5: past 90 days, but after a record that stays
        (now - 10 * DAY, Severity::Info),      // 6
        (now, Severity::Info),                 // 7
    ];
    let source = audit::source_hash(&hsm, "192.0.2.7".parse().expect("ip")).expect("source hash");
    assert!(source.len() == 32 && !source.contains("192"));
    for (i, (ts, severity)) in events.iter().enumerate() {
        append(
            &db,
            &hsm,
            Event::new("test.event", *severity)
                .actor("tester")
                .source(Some(source.clone()))
                .detail("n", i),
            *ts,
        );
    }
    let report = verify(&db, &hsm);
    assert!(report.ok);
    assert_eq!(report.records, 7);

    let purged = db
        .write_blocking(move |c| audit::purge(c, now))
        .expect("purge");
    assert_eq!(
        purged, 3,
        "a contiguous prefix up to the first record that must stay"
    );
    let report = verify(&db, &hsm);
    assert!(report.ok, "what remains verifies from the anchor");
    assert_eq!(
        (report.records, report.first_seq, report.last_seq),
        (4, Some(4), Some(7))
    );

    // New records chain on after the purge.
    append(&db, &hsm, Event::new("test.after", Severity::Info), now + 1);
    assert!(verify(&db, &hsm).ok);

    // Changing any field of any record breaks the chain at that record.
    for (column, value) in [
        ("detail", "'{\"x\":1}'"),
        ("event", "'x'"),
        ("actor", "'mallory'"),
        ("ts", "ts + 1"),
        ("severity", "'warning'"),
    ] {
        for seq in 4..=8 {
            let broken = verify_tampered(
                &db_path,
                &hsm,
                &format!("UPDATE audit_log SET {column} = {value} WHERE seq = {seq}"),
            );
            assert_eq!(
                (broken.ok, broken.broken_at),
                (false, Some(seq)),
                "{column} of record {seq}"
            );
        }
    }
    // Removing a record in the middle breaks the sequence.
    let gap = verify_tampered(&db_path, &hsm, "DELETE FROM audit_log WHERE seq = 6");
    assert_eq!((gap.ok, gap.broken_at), (false, Some(7)));
    assert!(verify(&db, &hsm).ok, "the tampering was rolled back");
}
