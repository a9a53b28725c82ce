//! SQLite state: one file, WAL, `synchronous = FULL` so a commit that
//! returned is on disk before a response leaves (a consumed nonce survives
//! `kill -9` and power loss). `secure_delete` overwrites deleted rows.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::error::AppError;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS officers (
    id TEXT PRIMARY KEY, role TEXT NOT NULL, status TEXT NOT NULL,
    secret_generation INTEGER NOT NULL, created_at INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS clients (
    id TEXT PRIMARY KEY, display_name TEXT NOT NULL, status TEXT NOT NULL,
    allow_under_18 INTEGER NOT NULL, secret_generation INTEGER NOT NULL,
    previous_generation INTEGER, previous_valid_until INTEGER,
    created_at INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS signing_keys (
    kid TEXT PRIMARY KEY, verifying_key BLOB NOT NULL, sealed BLOB NOT NULL, kek TEXT NOT NULL,
    state TEXT NOT NULL, created_at INTEGER NOT NULL, activated_at INTEGER) STRICT;
CREATE TABLE IF NOT EXISTS attestation_keys (
    label TEXT PRIMARY KEY, public_key BLOB NOT NULL, state TEXT NOT NULL, created_at INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS challenges (
    id TEXT PRIMARY KEY, officer_id TEXT NOT NULL, challenge BLOB NOT NULL,
    server_random BLOB, expires_at INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS auth_nonces (nonce_hash BLOB PRIMARY KEY, expires_at INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS attestation_nonces (nonce_hash BLOB PRIMARY KEY, expires_at INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS officer_failures (
    officer_id TEXT NOT NULL, source_hash BLOB NOT NULL, failures INTEGER NOT NULL,
    locked_until INTEGER NOT NULL, PRIMARY KEY (officer_id, source_hash)) STRICT;
CREATE TABLE IF NOT EXISTS source_failures (
    source_hash TEXT PRIMARY KEY, window_start INTEGER NOT NULL, failures INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, event TEXT NOT NULL, severity TEXT NOT NULL,
    actor TEXT, source_hash TEXT, detail TEXT NOT NULL, mac BLOB NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS audit_anchor (
    id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, mac BLOB NOT NULL,
    purged_at INTEGER NOT NULL) STRICT;
"#;

/// One connection behind a mutex; every use runs on a blocking thread.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    pub fn open(path: &Path) -> Result<Self, AppError> {
        let conn = Connection::open(path)
            .map_err(|e| AppError::Storage(format!("open {}: {e}", path.display())))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
             PRAGMA secure_delete = ON; PRAGMA busy_timeout = 5000;",
        )?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection (blocking).
    pub fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn)
    }

    /// Runs `f` on a blocking thread.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.with(f))
            .await
            .map_err(|e| AppError::Internal(format!("database task failed: {e}")))?
    }
}

pub fn meta_get(conn: &Connection, key: &str) -> Result<Option<String>, AppError> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}
