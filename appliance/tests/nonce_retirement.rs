//! Requests retire expired nonces as they insert new ones, two at a time,
//! and never a nonce that is still live; an attestation nonce is consumed
//! once, including one consumed before the store's key changed.

mod common;

use provii_appliance::db::{Db, retire_expired};
use provii_appliance::nonces::consume_attestation_nonce;

#[test]
fn each_insert_retires_at_most_two_expired_nonces_and_no_live_one() {
    let db = fresh_db("two-at-a-time");
    let now = 1_800_000_000;
    db.write_blocking(move |c| {
        for (i, expires_at) in [now - 600, now - 300, now - 1, now, now + 300]
            .into_iter()
            .enumerate()
        {
            c.execute(
                "INSERT INTO auth_nonces (nonce_hash, expires_at) VALUES (?1, ?2)",
                rusqlite::params![vec![i as u8; 32], expires_at],
            )?;
        }
        Ok(())
    })
    .expect("seed");
    let left = |db: &Db| -> Vec<i64> {
        db.read_blocking(|c| {
            let mut stmt = c.prepare("SELECT expires_at FROM auth_nonces ORDER BY expires_at")?;
            let rows = stmt
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .expect("read")
    };
    let retire = |db: &Db| {
        db.write_blocking(move |c| retire_expired(c, "auth_nonces", now))
            .expect("retire")
    };
    retire(&db);
    assert_eq!(left(&db).len(), 3, "two of the three expired ones went");
    retire(&db);
    assert_eq!(left(&db), vec![now, now + 300], "only live nonces remain");
    retire(&db);
    assert_eq!(left(&db), vec![now, now + 300]);
    assert!(
        db.write_blocking(move |c| retire_expired(c, "officers", now))
            .is_err()
    );
}

fn fresh_db(name: &str) -> Db {
    common::fresh_db("nonce-retirement", name)
}

fn consume(db: &Db, issued_at: i64, hash: u8, now: i64) -> bool {
    db.write_blocking(move |c| consume_attestation_nonce(c, issued_at, &[hash; 32], now))
        .expect("consume")
}

#[test]
fn an_attestation_nonce_is_consumed_once() {
    let db = fresh_db("consume-once");
    let now = 1_800_000_000;
    assert!(consume(&db, now - 10, 1, now));
    assert!(!consume(&db, now - 10, 1, now), "the replay is refused");
    assert!(
        consume(&db, now - 10, 2, now),
        "another nonce of that second"
    );
    assert!(consume(&db, now - 9, 1, now + 1));
}

#[test]
fn nonces_consumed_before_the_upgrade_are_still_refused() {
    let db = fresh_db("legacy");
    let now = 1_800_000_000;
    db.write_blocking(move |c| {
        c.execute(
            "INSERT INTO attestation_nonces (nonce_hash, expires_at) VALUES (?1, ?2)",
            rusqlite::params![vec![7u8; 32], now + 7200],
        )?;
        Ok(())
    })
    .expect("seed");
    assert!(!consume(&db, now - 100, 7, now));
    assert!(!consume(&db, now, 7, now));
    assert!(consume(&db, now, 8, now));
}

#[test]
fn consumed_attestations_are_kept_an_hour_of_lifetime_plus_two_hours() {
    // WIRE.md: an attestation lives 3 600 s; its nonce is retained at least
    // 7 200 s after it was used, which can be 3 600 s after it was issued.
    let db = fresh_db("retention");
    let now = 1_800_000_000;
    let retained_from = now - 10_800;
    for (i, issued_at) in [retained_from - 2, retained_from - 1, retained_from]
        .into_iter()
        .enumerate()
    {
        assert!(consume(&db, issued_at, i as u8, issued_at));
    }
    // Consuming a new one retires up to two expired uses, never a kept one.
    assert!(consume(&db, now, 9, now));
    let left: Vec<i64> = db
        .read_blocking(|c| {
            let mut stmt =
                c.prepare("SELECT issued_at FROM consumed_attestations ORDER BY issued_at")?;
            let rows = stmt
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .expect("read");
    assert_eq!(left, vec![retained_from, now]);
    assert!(
        !consume(&db, retained_from, 2, now),
        "still refused at the edge"
    );
}

#[test]
fn a_bound_limit_does_not_make_sqlite_re_prepare_the_statement() {
    use rusqlite::StatementStatus;
    // Nonce retirement binds its LIMIT; SQLite's default re-prepares such a
    // statement on every bind.
    let db = fresh_db("reprepare");
    let sql = "SELECT nonce_hash FROM auth_nonces WHERE expires_at < ?1 LIMIT ?2";
    let count = move |c: &rusqlite::Connection| -> Result<i32, provii_appliance::error::AppError> {
        let mut stmt = c.prepare_cached(sql)?;
        for (now, limit) in [(1, 2), (2, 200), (3, 2)] {
            stmt.query_map(rusqlite::params![now, limit], |_| Ok(()))?
                .for_each(drop);
        }
        Ok(stmt.get_status(StatementStatus::RePrepare))
    };
    assert_eq!(db.write_blocking(count).expect("writer"), 0);
    assert_eq!(db.read_blocking(count).expect("reader"), 0);
}
