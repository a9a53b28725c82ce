//! The audit chain against a real SoftHSM token: every record verifies,
//! any change breaks it, and retention purges a prefix while what remains
//! still verifies.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use provii_appliance::audit::{self, Event, Severity, VerifyReport};
use provii_appliance::db::Db;
use provii_hsm::{Hsm, HsmConfig, PinSource, SOFTHSM_MODULE, TokenSelector};

const DAY: i64 = 86_400;

/// One token for the whole test binary: SoftHSM is initialised once per
/// process and sees only the tokens that existed then.
fn token(root: &Path) -> Hsm {
    static HSM: OnceLock<Hsm> = OnceLock::new();
    HSM.get_or_init(|| {
        let dir = root.join("target/softhsm-test");
        let label = format!("audit-{}", std::process::id());
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
            TokenSelector::Label(label),
            PinSource::File(dir.join("user-pin")),
        );
        let hsm = Hsm::open(config).expect("open token");
        hsm.create_mac_key(&audit::audit_key()).expect("audit key");
        hsm.create_mac_key(&audit::address_key())
            .expect("address key");
        hsm
    })
    .clone()
}

fn setup(name: &str) -> (Hsm, Db, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace");
    let hsm = token(&root);
    let db_dir = root.join("target/audit-test");
    std::fs::create_dir_all(&db_dir).expect("dir");
    let db_path = db_dir.join(format!("{name}-{}.db", std::process::id()));
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

    // Two records per call: the caller repeats until a call purges fewer.
    let purge = |db: &Db| {
        db.write_blocking(move |c| audit::purge(c, now, 2))
            .expect("purge")
    };
    assert_eq!(purge(&db), 2);
    assert!(
        verify(&db, &hsm).ok,
        "what remains verifies after each chunk"
    );
    assert_eq!(
        purge(&db),
        1,
        "a contiguous prefix up to the first record that must stay"
    );
    assert_eq!(purge(&db), 0);
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

/// The record encoding of the audit chain, written out here from its
/// description (length-prefixed optional fields after the sequence number
/// and timestamp, then the previous value), independently of the appliance.
fn record_input(domain: &[u8], row: &Row, prev: &[u8]) -> Vec<u8> {
    let mut out = domain.to_vec();
    out.extend_from_slice(&row.seq.to_be_bytes());
    out.extend_from_slice(&row.ts.to_be_bytes());
    for field in [
        Some(&row.event),
        Some(&row.severity),
        row.actor.as_ref(),
        row.source.as_ref(),
        Some(&row.detail),
    ] {
        match field {
            Some(f) => {
                out.push(1);
                out.extend_from_slice(&(f.len() as u32).to_be_bytes());
                out.extend_from_slice(f.as_bytes());
            }
            None => out.push(0),
        }
    }
    out.extend_from_slice(prev);
    out
}

struct Row {
    seq: i64,
    ts: i64,
    event: String,
    severity: String,
    actor: Option<String>,
    source: Option<String>,
    detail: String,
    value: Vec<u8>,
}

fn rows(conn: &rusqlite::Connection) -> Vec<Row> {
    let mut stmt = conn
        .prepare("SELECT seq, ts, event, severity, actor, source_hash, detail, mac FROM audit_log ORDER BY seq")
        .expect("select");
    stmt.query_map([], |r| {
        Ok(Row {
            seq: r.get(0)?,
            ts: r.get(1)?,
            event: r.get(2)?,
            severity: r.get(3)?,
            actor: r.get(4)?,
            source: r.get(5)?,
            detail: r.get(6)?,
            value: r.get(7)?,
        })
    })
    .expect("rows")
    .collect::<Result<_, _>>()
    .expect("rows")
}

fn chain_value(row: &Row, prev: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(record_input(b"provii.audit.v2", row, prev)).to_vec()
}

fn seals(conn: &rusqlite::Connection) -> Vec<(i64, Vec<u8>)> {
    let mut stmt = conn
        .prepare("SELECT seq, mac FROM audit_seals ORDER BY seq")
        .expect("select");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("seals")
        .collect::<Result<_, _>>()
        .expect("seals")
}

#[test]
fn one_seal_per_commit_and_only_the_hsm_can_make_one() {
    let (hsm, db, db_path) = setup("audit-seal");
    let now = 1_800_000_000;
    append(&db, &hsm, Event::new("test.first", Severity::Info), now);
    // Five records in one commit: one seal, over the last of them.
    let h = hsm.clone();
    db.write_blocking(move |c| {
        for i in 0..5 {
            audit::append(
                c,
                &h,
                &Event::new("test.batch", Severity::Info).detail("n", i),
                now,
            )?;
        }
        Ok(())
    })
    .expect("batch");
    assert!(verify(&db, &hsm).ok);

    let conn = rusqlite::Connection::open(&db_path).expect("db");
    let stored = rows(&conn);
    assert_eq!(stored.len(), 6);
    let sealed = seals(&conn);
    assert_eq!(
        sealed.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![1, 6],
        "one seal per commit, on its last record"
    );
    // The stored values are the chain as described, and each seal is the
    // audit key's HMAC over its record's value.
    let mut prev = vec![0u8; 32];
    for row in &stored {
        assert_eq!(row.value, chain_value(row, &prev), "record {}", row.seq);
        prev = row.value.clone();
    }
    for (seq, mac) in &sealed {
        let mut input = b"provii.audit.seal.v2".to_vec();
        input.extend_from_slice(&seq.to_be_bytes());
        input.extend_from_slice(&stored[(*seq - 1) as usize].value);
        let expected = hsm.hmac_sha256(&audit::audit_key(), &input).expect("hmac");
        assert_eq!(&expected[..], &mac[..], "seal {seq}");
    }
    drop(conn);

    // Someone without the HSM changes record 3 and recomputes every chain
    // value after it: the chain is consistent, the seal over it is not.
    let mut conn = rusqlite::Connection::open(&db_path).expect("db");
    let tx = conn.transaction().expect("tx");
    let mut prev = stored[1].value.clone();
    for row in &stored[2..] {
        let mut row = Row {
            detail: row.detail.clone(),
            event: row.event.clone(),
            severity: row.severity.clone(),
            actor: row.actor.clone(),
            source: row.source.clone(),
            value: Vec::new(),
            ..*row
        };
        if row.seq == 3 {
            row.detail = "{\"n\":99}".into();
        }
        let value = chain_value(&row, &prev);
        tx.execute(
            "UPDATE audit_log SET detail = ?2, mac = ?3 WHERE seq = ?1",
            rusqlite::params![row.seq, row.detail, value],
        )
        .expect("rewrite");
        prev = value;
    }
    let report = audit::verify(&tx, &hsm).expect("verify");
    assert_eq!((report.ok, report.broken_at), (false, Some(6)));
    drop(tx);

    for (sql, broken_at) in [
        // A record without a seal after it was not written by the appliance.
        ("DELETE FROM audit_seals WHERE seq = 6", Some(2)),
        (
            "UPDATE audit_seals SET mac = zeroblob(32) WHERE seq = 6",
            Some(6),
        ),
        (
            "UPDATE audit_seals SET mac = zeroblob(32) WHERE seq = 1",
            Some(1),
        ),
        (
            "INSERT INTO audit_log (seq, ts, event, severity, detail, mac) VALUES (7, 0, 'x', 'info', '{}', zeroblob(32))",
            Some(7),
        ),
    ] {
        let report = verify_tampered(&db_path, &hsm, sql);
        assert_eq!((report.ok, report.broken_at), (false, broken_at), "{sql}");
    }
    assert!(verify(&db, &hsm).ok, "the tampering was rolled back");
}

#[test]
fn records_from_before_seals_keep_their_per_record_macs() {
    let (hsm, db, db_path) = setup("audit-v1");
    drop(db);
    // A database as an appliance without seals left it: every record
    // carries the audit key's HMAC over its fields and the previous MAC.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
    }
    let conn = rusqlite::Connection::open(&db_path).expect("db");
    conn.execute_batch(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
         CREATE TABLE audit_log (
            seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, event TEXT NOT NULL, severity TEXT NOT NULL,
            actor TEXT, source_hash TEXT, detail TEXT NOT NULL, mac BLOB NOT NULL) STRICT;",
    )
    .expect("old schema");
    let mut prev = vec![0u8; 32];
    for seq in 1..=3 {
        let mut row = Row {
            seq,
            ts: 1_800_000_000 + seq,
            event: "old.event".into(),
            severity: "info".into(),
            actor: Some("tester".into()),
            source: None,
            detail: format!("{{\"n\":{seq}}}"),
            value: Vec::new(),
        };
        row.value = hsm
            .hmac_sha256(
                &audit::audit_key(),
                &record_input(b"provii.audit.v1", &row, &prev),
            )
            .expect("hmac")
            .to_vec();
        conn.execute(
            "INSERT INTO audit_log (seq, ts, event, severity, actor, source_hash, detail, mac) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            rusqlite::params![row.seq, row.ts, row.event, row.severity, row.actor, row.source, row.detail, row.value],
        )
        .expect("insert");
        prev = row.value;
    }
    drop(conn);

    // The upgraded appliance opens it, chains on with seals, and the whole
    // log verifies; the old records are still checked one by one.
    let db = Db::open(&db_path).expect("upgrade");
    append(
        &db,
        &hsm,
        Event::new("test.new", Severity::Info),
        1_800_000_100,
    );
    let report = verify(&db, &hsm);
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records, 4);
    for seq in 1..=3 {
        let broken = verify_tampered(
            &db_path,
            &hsm,
            &format!("UPDATE audit_log SET actor = 'mallory' WHERE seq = {seq}"),
        );
        assert_eq!((broken.ok, broken.broken_at), (false, Some(seq)));
    }
}
