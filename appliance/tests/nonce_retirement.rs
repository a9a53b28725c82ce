//! Requests retire expired nonces as they insert new ones, two at a time,
//! and never a nonce that is still live.

use provii_appliance::db::{Db, retire_expired};

#[test]
fn each_insert_retires_at_most_two_expired_nonces_and_no_live_one() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("nonce-retirement");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(format!("{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let db = Db::open(&path).expect("db");
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
