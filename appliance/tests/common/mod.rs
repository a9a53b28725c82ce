//! Helpers shared by the appliance's integration tests.

use provii_appliance::db::Db;

/// A new, empty database at `<CARGO_TARGET_TMPDIR>/<group>/<name>-<pid>.db`.
pub fn fresh_db(group: &str, name: &str) -> Db {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(group);
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(format!("{name}-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    Db::open(&path).expect("db")
}
