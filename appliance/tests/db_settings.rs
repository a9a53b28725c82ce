//! The settings every database connection runs with: the ones durability
//! and the no-plaintext-left-behind rule depend on, and the checkpoint size
//! the latency figures were measured with.

mod common;

#[test]
fn connections_are_durable_wipe_deleted_rows_and_checkpoint_every_500_pages() {
    let db = common::fresh_db("db-settings", "pragmas");
    let read = |c: &rusqlite::Connection| -> rusqlite::Result<(String, i64, i64, i64)> {
        Ok((
            c.pragma_query_value(None, "journal_mode", |r| r.get(0))?,
            c.pragma_query_value(None, "synchronous", |r| r.get(0))?,
            c.pragma_query_value(None, "secure_delete", |r| r.get(0))?,
            c.pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))?,
        ))
    };
    // SQLite's codes: synchronous FULL is 2; secure_delete ON is 1.
    let expected = ("wal".to_owned(), 2, 1, 500);
    let writer = db
        .write_blocking(move |c| Ok(read(c)?))
        .expect("writer connection");
    assert_eq!(writer, expected, "the writer's connection");
    let reader = db.read_blocking(|c| Ok(read(c)?)).expect("read connection");
    assert_eq!(reader, expected, "the read connection");
}
