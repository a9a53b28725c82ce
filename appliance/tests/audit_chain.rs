//! The audit chain against a real SoftHSM token: every record verifies,
//! any change breaks it, and retention purges a prefix while what remains
//! still verifies.

use std::path::Path;
use std::process::{Command, Stdio};

use provii_appliance::audit::{self, Event, Severity};
use provii_appliance::db::Db;
use provii_hsm::{Hsm, HsmConfig, PinSource, SOFTHSM_MODULE, TokenSelector};

const DAY: i64 = 86_400;

fn setup(name: &str) -> (Hsm, Db) {
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
    let hsm = Hsm::open(HsmConfig::new(
        SOFTHSM_MODULE,
        TokenSelector::Label(label.clone()),
        PinSource::File(dir.join("user-pin")),
    ))
    .expect("open token");
    hsm.create_mac_key(&audit::audit_key()).expect("audit key");
    hsm.create_mac_key(&audit::address_key())
        .expect("address key");
    let db_dir = root.join("target/audit-test");
    std::fs::create_dir_all(&db_dir).expect("dir");
    let db_path = db_dir.join(format!("{label}.db"));
    let _ = std::fs::remove_file(&db_path);
    (hsm, Db::open(&db_path).expect("db"))
}

#[test]
fn chain_verification_retention_and_tampering() {
    let (hsm, db) = setup("audit");
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
    db.with(|c| {
        for (i, (ts, severity)) in events.iter().enumerate() {
            let e = Event::new("test.event", *severity)
                .actor("tester")
                .source(Some("192.0.2.7".parse().expect("ip")))
                .detail("n", i);
            audit::record(c, &hsm, &e, *ts)?;
        }
        Ok(())
    })
    .expect("append");

    let report = db.with(|c| audit::verify(c, &hsm)).expect("verify");
    assert!(report.ok);
    assert_eq!(report.records, 7);

    // The source address is only ever stored as an HSM-keyed HMAC.
    let sources: Vec<String> = db
        .with(|c| {
            let mut s = c.prepare("SELECT source_hash FROM audit_log")?;
            let rows = s
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .expect("sources");
    assert!(
        sources
            .iter()
            .all(|s| s.len() == 32 && !s.contains("192.0.2.7"))
    );

    let purged = db.with(|c| audit::purge(c, now)).expect("purge");
    assert_eq!(
        purged, 3,
        "a contiguous prefix up to the first record that must stay"
    );
    let report = db.with(|c| audit::verify(c, &hsm)).expect("verify");
    assert!(report.ok, "what remains verifies from the anchor");
    assert_eq!(
        (report.records, report.first_seq, report.last_seq),
        (4, Some(4), Some(7))
    );

    // New records chain on after the purge.
    db.with(|c| audit::record(c, &hsm, &Event::new("test.after", Severity::Info), now + 1))
        .expect("append");
    assert!(db.with(|c| audit::verify(c, &hsm)).expect("verify").ok);

    // Changing any field of any record breaks the chain at that record.
    for (column, value) in [
        ("detail", "'{\"x\":1}'"),
        ("event", "'x'"),
        ("actor", "'mallory'"),
        ("ts", "ts + 1"),
        ("severity", "'warning'"),
    ] {
        for seq in 4..=8 {
            let broken = db
                .with(|c| {
                    let tx = c.transaction()?;
                    tx.execute(
                        &format!("UPDATE audit_log SET {column} = {value} WHERE seq = ?1"),
                        [seq],
                    )?;
                    let report = audit::verify(&tx, &hsm)?;
                    drop(tx); // roll back
                    Ok(report)
                })
                .expect("verify");
            assert_eq!(
                (broken.ok, broken.broken_at),
                (false, Some(seq)),
                "{column} of record {seq}"
            );
        }
    }
    // Removing a record in the middle breaks the sequence.
    let gap = db
        .with(|c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM audit_log WHERE seq = 6", [])?;
            let r = audit::verify(&tx, &hsm)?;
            drop(tx);
            Ok(r)
        })
        .expect("verify");
    assert_eq!((gap.ok, gap.broken_at), (false, Some(7)));
}
