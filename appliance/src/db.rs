//! SQLite state: one file, WAL, `synchronous = FULL` so a commit that
//! returned is on disk before a response leaves (a consumed nonce survives
//! `kill -9` and power loss), with group commit to pay one `fsync` and one
//! audit seal (an HSM HMAC, see `audit`) per batch.
//! `secure_delete` overwrites deleted rows.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, Params, Row};

use crate::error::AppError;
use crate::metrics::CommitMetrics;

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
-- Attestation nonces consumed by versions before consumed_attestations;
-- looked up until housekeeping has retired them all.
CREATE TABLE IF NOT EXISTS attestation_nonces (nonce_hash BLOB PRIMARY KEY, expires_at INTEGER NOT NULL) STRICT;
-- See nonces.rs for why the attestation's timestamp leads the key.
CREATE TABLE IF NOT EXISTS consumed_attestations (
    issued_at INTEGER NOT NULL, nonce_hash BLOB NOT NULL,
    PRIMARY KEY (issued_at, nonce_hash)) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS officer_failures (
    officer_id TEXT NOT NULL, source_hash BLOB NOT NULL, failures INTEGER NOT NULL,
    locked_until INTEGER NOT NULL, PRIMARY KEY (officer_id, source_hash)) STRICT;
CREATE INDEX IF NOT EXISTS challenges_expiry ON challenges (expires_at);
CREATE INDEX IF NOT EXISTS auth_nonces_expiry ON auth_nonces (expires_at);
CREATE INDEX IF NOT EXISTS attestation_nonces_expiry ON attestation_nonces (expires_at);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY, created_at INTEGER NOT NULL, sink TEXT NOT NULL, payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, next_attempt_at INTEGER NOT NULL,
    confirmed_at INTEGER) STRICT;
CREATE TABLE IF NOT EXISTS attestation_key_windows (label TEXT PRIMARY KEY, verify_until INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS key_usage (kid TEXT PRIMARY KEY, max_exp INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS key_revocations (
    kid TEXT PRIMARY KEY, revoked_at INTEGER NOT NULL, reason TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS source_failures (
    source_hash TEXT PRIMARY KEY, window_start INTEGER NOT NULL, failures INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, event TEXT NOT NULL, severity TEXT NOT NULL,
    actor TEXT, source_hash TEXT, detail TEXT NOT NULL, mac BLOB NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS audit_seals (seq INTEGER PRIMARY KEY, mac BLOB NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS audit_anchor (
    id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, mac BLOB NOT NULL,
    purged_at INTEGER NOT NULL) STRICT;
"#;

/// Statements the request paths run on every call, prepared once per
/// connection (rusqlite's statement cache) instead of parsed every time:
/// parsing was 6 % of the daemon's CPU under load.
pub trait CachedStatements {
    fn execute_cached(&self, sql: &str, params: impl Params) -> rusqlite::Result<usize>;
    fn query_row_cached<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T>;
}

impl CachedStatements for Connection {
    fn execute_cached(&self, sql: &str, params: impl Params) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn query_row_cached<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// Enough for every statement of the request paths and the writer's own.
const STATEMENT_CACHE: usize = 64;

type Completion = Box<dyn FnOnce(Result<(), AppError>) + Send>;

/// A write waiting for the writer, and when it was queued.
struct Job {
    queued: Instant,
    run: Box<dyn FnOnce(&Connection) -> Completion + Send>,
}

/// Most jobs one commit carries.
const MAX_BATCH: usize = 512;

/// The database: one writer thread that commits queued jobs in batches
/// (group commit: one `fsync` for many requests) and a read connection.
///
/// A job runs inside a SAVEPOINT of the batch's transaction. If it returns
/// an [`AppError::Api`] (a refusal the protocol defines, such as a replay or a
/// failed authentication) its writes are kept, because they are the record of
/// that refusal; any other error rolls its writes back. Either way the
/// caller hears back only after the batch has committed, so what it was told
/// is on disk.
#[derive(Clone)]
pub struct Db {
    jobs: std::sync::mpsc::Sender<Job>,
    read: Arc<Mutex<Connection>>,
    commits: Arc<CommitMetrics>,
}

/// `PRAGMA wal_autocheckpoint` on every connection (SQLite's default: 1000).
pub const WAL_AUTOCHECKPOINT_PAGES: i64 = 500;

fn open_connection(path: &Path) -> Result<Connection, AppError> {
    let conn = Connection::open(path)
        .map_err(|e| AppError::Storage(format!("open {}: {e}", path.display())))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
         PRAGMA secure_delete = ON; PRAGMA busy_timeout = 5000;",
    )?;
    // Without the query planner stability guarantee SQLite re-prepares a
    // statement whenever a value bound to its `LIMIT` changes, or may: it
    // did so on every nonce retirement, re-parsing the same DELETE twice per
    // iteration (3 % of the daemon's CPU under load).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // SQLite checkpoints inside the commit that takes the log past this many
    // pages, with that commit's batch waiting. Half the default: twice the
    // checkpoints, each half as long, and fewer requests wait behind one.
    // On a grown database (600 MB) per-iteration p99 at 32 connections fell
    // by 2.8–7.7 ms; on a fresh one the difference is within the noise;
    // throughput unchanged (BENCHMARKS.md).
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    Ok(conn)
}

impl Db {
    pub fn open(path: &Path) -> Result<Self, AppError> {
        let writer = open_connection(path)?;
        writer.execute_batch(SCHEMA)?;
        crate::audit::migrate(&writer)?;
        let read = open_connection(path)?;
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let commits = Arc::new(CommitMetrics::default());
        let kept = commits.clone();
        // Audit records are MACed in the HSM on this thread.
        provii_hsm::threads::spawn("db-writer".into(), move || write_loop(writer, queue, &kept))
            .map_err(|e| AppError::Internal(format!("cannot start the database writer: {e}")))?;
        Ok(Self {
            jobs,
            read: Arc::new(Mutex::new(read)),
            commits,
        })
    }

    /// What the writer's commits have cost so far (for `/metrics`).
    pub fn commit_metrics(&self) -> &CommitMetrics {
        &self.commits
    }

    fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, AppError> + Send + 'static,
        reply: impl FnOnce(Result<T, AppError>) + Send + 'static,
    ) -> Result<(), AppError> {
        let run = Box::new(move |conn: &Connection| -> Completion {
            let result = match conn.execute_cached("SAVEPOINT job", []) {
                Ok(_) => {
                    let result = f(conn);
                    let keep = matches!(result, Ok(_) | Err(AppError::Api(_)));
                    let end = if keep {
                        Ok(0)
                    } else {
                        conn.execute_cached("ROLLBACK TO job", [])
                    };
                    match end.and_then(|_| conn.execute_cached("RELEASE job", [])) {
                        Ok(_) => result,
                        Err(e) => Err(AppError::from(e)),
                    }
                }
                Err(e) => Err(AppError::from(e)),
            };
            Box::new(move |commit: Result<(), AppError>| {
                reply(match commit {
                    Ok(()) => result,
                    Err(e) => Err(e),
                })
            })
        });
        let job = Job {
            queued: Instant::now(),
            run,
        };
        self.jobs
            .send(job)
            .map_err(|_| AppError::Storage("the database writer has stopped".into()))
    }

    /// Runs `f` in the writer's next batch and waits for its commit.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(f, move |r| {
            let _ = tx.send(r);
        })?;
        rx.await
            .map_err(|_| AppError::Storage("the database writer dropped a job".into()))?
    }

    /// [`Db::write`] for code outside the async runtime.
    pub fn write_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.submit(f, move |r| {
            let _ = tx.send(r);
        })?;
        rx.recv()
            .map_err(|_| AppError::Storage("the database writer dropped a job".into()))?
    }

    /// Runs `f` on the read connection (blocking); sees committed data.
    pub fn read_blocking<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        let conn = self.read.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn)
    }

    /// Runs `f` on the read connection from async code.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.read_blocking(f))
            .await
            .map_err(|e| AppError::Internal(format!("database task failed: {e}")))?
    }
}

fn write_loop(conn: Connection, queue: std::sync::mpsc::Receiver<Job>, metrics: &CommitMetrics) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let began = Instant::now();
        let waited: Vec<Duration> = batch.iter().map(|job| began - job.queued).collect();
        if let Err(e) = conn.execute_cached("BEGIN IMMEDIATE", []) {
            // Without a batch transaction each job's savepoint commits alone.
            tracing::warn!(error = %e, "cannot begin a batch; committing jobs one by one");
            for job in batch {
                let began = Instant::now();
                let done = (job.run)(&conn);
                let sealed = crate::audit::seal_pending(&conn);
                if sealed.is_ok() {
                    metrics.observe(&[began - job.queued], began.elapsed());
                }
                done(sealed);
            }
            continue;
        }
        let completions: Vec<Completion> = batch.into_iter().map(|job| (job.run)(&conn)).collect();
        let commit = crate::audit::seal_pending(&conn).and_then(|()| {
            conn.execute_cached("COMMIT", [])
                .map(|_| ())
                .map_err(|e| AppError::Storage(format!("commit failed: {e}")))
        });
        if commit.is_ok() {
            metrics.observe(&waited, began.elapsed());
        } else {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for done in completions {
            done(commit.clone());
        }
    }
}

/// Deletes up to two expired rows of a nonce table. Called with every
/// insert, so a busy table sheds its expired rows as fast as it grows, a few
/// at a time, instead of in housekeeping's bulk deletes, which held the
/// writer for tens of milliseconds per two thousand rows (random pages of
/// the nonce index, each written to the WAL). The expiry index makes
/// finding them a seek.
pub fn retire_expired(c: &Connection, table: &'static str, now: i64) -> Result<(), AppError> {
    if table == "challenges" {
        return Err(AppError::Internal(format!("{table} is not a nonce table")));
    }
    delete_expired(c, table, now, 2).map(|_| ())
}

/// Deletes at most `limit` rows of `table` whose retention has passed;
/// returns how many. Requests retire nonces through [`retire_expired`],
/// housekeeping catches up in larger jobs.
pub fn delete_expired(
    c: &Connection,
    table: &'static str,
    now: i64,
    limit: u64,
) -> Result<u64, AppError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    if table == "consumed_attestations" {
        let sql = "DELETE FROM consumed_attestations WHERE (issued_at, nonce_hash) IN \
                   (SELECT issued_at, nonce_hash FROM consumed_attestations WHERE issued_at < ?1 LIMIT ?2)";
        let cutoff = now.saturating_sub(crate::nonces::CONSUMED_ATTESTATION_RETENTION);
        return Ok(c.execute_cached(sql, rusqlite::params![cutoff, limit])? as u64);
    }
    let sql = match table {
        "auth_nonces" => {
            "DELETE FROM auth_nonces WHERE rowid IN (SELECT rowid FROM auth_nonces WHERE expires_at < ?1 LIMIT ?2)"
        }
        "attestation_nonces" => {
            "DELETE FROM attestation_nonces WHERE rowid IN (SELECT rowid FROM attestation_nonces WHERE expires_at < ?1 LIMIT ?2)"
        }
        "challenges" => {
            "DELETE FROM challenges WHERE rowid IN (SELECT rowid FROM challenges WHERE expires_at < ?1 LIMIT ?2)"
        }
        _ => return Err(AppError::Internal(format!("{table} has no expiry"))),
    };
    Ok(c.execute_cached(sql, rusqlite::params![now, limit])? as u64)
}

pub fn meta_get(conn: &Connection, key: &str) -> Result<Option<String>, AppError> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    /// A database file of this test's own, removed with its log when dropped.
    struct Scratch(std::path::PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            for suffix in ["", "-wal", "-shm"] {
                let mut path = self.0.clone().into_os_string();
                path.push(suffix);
                let _ = std::fs::remove_file(path);
            }
        }
    }

    fn series(metrics: &str, name: &str) -> Option<f64> {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn jobs_queued_behind_a_commit_share_the_next_one_and_the_metrics_say_so() {
        let scratch = Scratch(std::env::temp_dir().join(format!(
            "provii-db-test-{}-group-commit.db",
            std::process::id()
        )));
        let db = Db::open(&scratch.0).expect("open a scratch database");
        let (replied, replies) = std::sync::mpsc::channel();
        let reply = |replied: &std::sync::mpsc::Sender<bool>| {
            let replied = replied.clone();
            move |r: Result<(), AppError>| {
                let _ = replied.send(r.is_ok());
            }
        };

        // The first job holds the writer until five more are queued.
        let (entered, writer_busy) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let gate = move |_: &Connection| {
            let _ = entered.send(());
            let _ = released.recv();
            Ok(())
        };
        db.submit(gate, reply(&replied)).expect("submit");
        writer_busy.recv().expect("the writer runs the first job");
        for i in 0..5 {
            let insert = move |c: &Connection| {
                c.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, 'queued')",
                    [format!("queued-{i}")],
                )?;
                Ok(())
            };
            db.submit(insert, reply(&replied)).expect("submit");
        }
        // Held this long after the five were queued, each waited at least
        // as long for the writer.
        let held = Duration::from_millis(60);
        std::thread::sleep(held);
        release.send(()).expect("release the writer");
        for _ in 0..6 {
            assert_eq!(replies.recv().ok(), Some(true));
        }

        let rendered = Metrics::default().render(db.commit_metrics(), &[]);
        assert_eq!(
            series(&rendered, "provii_db_commit_duration_seconds_count"),
            Some(2.0),
            "one commit for the gate, one for the five behind it:\n{rendered}"
        );
        assert_eq!(
            series(&rendered, "provii_db_committed_jobs_total"),
            Some(6.0),
            "{rendered}"
        );
        assert_eq!(
            series(
                &rendered,
                "provii_db_commit_duration_seconds_bucket{le=\"+Inf\"}"
            ),
            Some(2.0),
            "{rendered}"
        );
        assert_eq!(
            series(&rendered, "provii_db_queue_wait_seconds_count"),
            Some(6.0),
            "{rendered}"
        );
        let quick = series(
            &rendered,
            "provii_db_queue_wait_seconds_bucket{le=\"0.05\"}",
        );
        assert!(
            quick.is_some_and(|n| n <= 1.0),
            "only the first job can have waited under 50 ms:\n{rendered}"
        );
        let total = series(&rendered, "provii_db_queue_wait_seconds_sum");
        assert!(
            total.is_some_and(|t| t >= 5.0 * held.as_secs_f64()),
            "{rendered}"
        );
        let queued: i64 = db
            .read_blocking(|c| {
                Ok(c.query_row(
                    "SELECT COUNT(*) FROM meta WHERE value = 'queued'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .expect("read");
        assert_eq!(queued, 5);
    }
}
