//! Backup and restore for the continuity plan.
//!
//! A backup file is
//!
//! ```text
//! PROVII-BACKUP-1\n
//! <manifest, one line of JSON>\n
//! <integrity seal, base64url>\n
//! <SQLite database image>
//! ```
//!
//! The database image comes from `VACUUM INTO` on a read-only connection: a
//! consistent snapshot taken while the daemon keeps serving, without free
//! pages. It carries the RedJubjub secrets sealed under the KEK, never in
//! the clear; the KEK and every other key stay in the HSM, which is backed
//! up by its own means (token backup or a cloned HSM partition).
//!
//! The integrity seal is AES-GCM under the KEK, inside the HSM, over
//! SHA-256 of everything before it and the image. Only the holder of the
//! KEK can make one, so a restore that opens it knows both that the file is
//! the one the appliance wrote and that the token in front of it holds the
//! matching KEK.
//!
//! Restoring an older snapshot forgets the nonces consumed after it. So
//! that no attestation or signed request from that lost interval can be
//! replayed, a restore records a replay floor: requests and attestations
//! timestamped at or before the restore are refused.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use provii_hsm::{Hsm, ObjectLabel, SealedBlob};
use rusqlite::{Connection, OpenFlags, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::{self, Event, Severity};
use crate::config::Config;
use crate::db::{Db, meta_get};
use crate::error::AppError;
use crate::init::KEK_GENERATION;
use crate::state::now;

const MAGIC: &[u8] = b"PROVII-BACKUP-1\n";
/// Additional data of the integrity seal.
const SEAL_AAD: &[u8] = b"provii.backup.v1";

/// What a backup holds, readable without the HSM.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub created_at: i64,
    pub issuer_id: String,
    pub appliance_version: String,
    /// The KEK the integrity seal and the signing keys are sealed under.
    pub kek: String,
    pub database_bytes: u64,
    pub database_sha256: String,
    /// Signing keys as (kid, state).
    pub signing_keys: Vec<(String, String)>,
    pub last_audit_seq: Option<i64>,
}

fn refused(msg: impl Into<String>) -> AppError {
    AppError::Refused(msg.into())
}

fn sha256_hex(bytes: &[u8]) -> String {
    provii_circuits::encoding::hex_encode(&Sha256::digest(bytes))
}

/// What the seal covers: the magic, the manifest line and the image.
fn sealed_digest(manifest_line: &[u8], image: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(MAGIC)
        .chain_update(manifest_line)
        .chain_update(b"\n")
        .chain_update(image)
        .finalize()
        .into()
}

/// A consistent image of the live database, taken through a temporary
/// file next to `near` (`VACUUM INTO` writes a file), and its manifest,
/// read from that file so it describes exactly what was captured.
fn snapshot(db_path: &Path, near: &Path, now: i64) -> Result<(Vec<u8>, Manifest), AppError> {
    let tmp = near.with_extension(format!("snapshot-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let conn = Connection::open_with_flags(db_path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| AppError::Storage(format!("open {}: {e}", db_path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let taken = conn
        .execute("VACUUM INTO ?1", [tmp.to_string_lossy()])
        .map_err(|e| AppError::Storage(format!("snapshot of {}: {e}", db_path.display())));
    let snapshot = taken.and_then(|_| {
        let image = std::fs::read(&tmp)
            .map_err(|e| AppError::Storage(format!("{}: {e}", tmp.display())))?;
        let manifest = manifest_of(&tmp, &image, now)?;
        Ok((image, manifest))
    });
    let _ = std::fs::remove_file(&tmp);
    snapshot
}

fn manifest_of(image_path: &Path, image: &[u8], now: i64) -> Result<Manifest, AppError> {
    let c = Connection::open_with_flags(image_path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let issuer_id = meta_get(&c, "issuer_id")?
        .ok_or_else(|| refused("the database holds no issuer_id: not an initialised appliance"))?;
    let mut stmt = c.prepare("SELECT kid, state FROM signing_keys ORDER BY created_at")?;
    let signing_keys = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    let last_audit_seq = c.query_row("SELECT MAX(seq) FROM audit_log", [], |r| r.get(0))?;
    Ok(Manifest {
        format: 1,
        created_at: now,
        issuer_id,
        appliance_version: env!("CARGO_PKG_VERSION").to_owned(),
        kek: ObjectLabel::kek(KEK_GENERATION).as_str().to_owned(),
        database_bytes: image.len() as u64,
        database_sha256: sha256_hex(image),
        signing_keys,
        last_audit_seq,
    })
}

/// Writes `bytes` to `path` (mode 0600) through a temporary file and a
/// rename, so a crash leaves either nothing or the whole file.
fn write_atomically(path: &Path, bytes: &[&[u8]]) -> Result<(), AppError> {
    let tmp = path.with_extension("partial");
    let io = |e: std::io::Error| AppError::Refused(format!("{}: {e}", tmp.display()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    let written = bytes
        .iter()
        .try_for_each(|b| f.write_all(b))
        .and_then(|_| f.sync_all());
    if let Err(e) = written.and_then(|_| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
}

/// `provii-appliance backup --out FILE`: safe while the daemon runs.
/// `progress` hears each step as it starts.
pub fn backup(config: &Config, out: &Path, progress: &dyn Fn(&str)) -> Result<Manifest, AppError> {
    if out.exists() {
        return Err(refused(format!(
            "{} exists; choose a new file name (backups are never overwritten)",
            out.display()
        )));
    }
    let db_path = config.db_path();
    if !db_path.exists() {
        return Err(refused(format!(
            "{} does not exist: nothing to back up (is state_dir right?)",
            db_path.display()
        )));
    }
    let hsm = Hsm::open(config.hsm.clone())?;
    let db = Db::open(&db_path)?;
    let now = now();
    // Recorded before the snapshot so that a restored log shows where it
    // was taken; `backup.created` follows in the live log once written.
    let h = hsm.clone();
    db.write_blocking(move |c| {
        audit::append(
            c,
            &h,
            &Event::new("backup.started", Severity::Critical),
            now,
        )
    })?;
    progress("taking a consistent snapshot of the database");
    let (image, manifest) = snapshot(&db_path, out, now)?;
    let line = serde_json::to_vec(&manifest).map_err(|e| AppError::Internal(e.to_string()))?;

    let kek = ObjectLabel::kek(KEK_GENERATION);
    progress("sealing its digest under the KEK in the HSM");
    let seal = hsm.seal(&kek, SEAL_AAD, &sealed_digest(&line, &image))?;
    let seal = provii_circuits::encoding::b64url_encode(&seal.to_bytes());
    write_atomically(out, &[MAGIC, &line, b"\n", seal.as_bytes(), b"\n", &image])?;

    let (h, file_sha) = (hsm.clone(), sha256_hex(&image));
    let keys = manifest.signing_keys.len();
    db.write_blocking(move |c| {
        let event = Event::new("backup.created", Severity::Critical)
            .detail("database_sha256", file_sha)
            .detail("signing_keys", keys);
        audit::append(c, &h, &event, now)
    })?;
    Ok(manifest)
}

/// A backup file split into its parts.
struct BackupFile {
    manifest_line: Vec<u8>,
    manifest: Manifest,
    seal: SealedBlob,
    image: Vec<u8>,
}

fn parse(bytes: &[u8]) -> Result<BackupFile, AppError> {
    let not_backup = || refused("not a Provii backup file (no PROVII-BACKUP-1 header)");
    let rest = bytes.strip_prefix(MAGIC).ok_or_else(not_backup)?;
    let mut parts = rest.splitn(3, |b| *b == b'\n');
    let (Some(line), Some(seal), Some(image)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(refused("the backup file is truncated"));
    };
    let manifest: Manifest = serde_json::from_slice(line)
        .map_err(|e| refused(format!("the backup's manifest is unreadable: {e}")))?;
    if manifest.format != 1 {
        return Err(refused(format!(
            "backup format {} is not supported by this version (1)",
            manifest.format
        )));
    }
    if image.len() as u64 != manifest.database_bytes
        || sha256_hex(image) != manifest.database_sha256
    {
        return Err(refused(
            "the backup's database does not match its manifest: the file is truncated or damaged",
        ));
    }
    let seal = std::str::from_utf8(seal)
        .ok()
        .and_then(|s| provii_circuits::encoding::b64url_decode(s, "seal").ok())
        .and_then(|b| SealedBlob::from_bytes(&b).ok())
        .ok_or_else(|| refused("the backup's integrity seal is malformed"))?;
    Ok(BackupFile {
        manifest_line: line.to_vec(),
        manifest,
        seal,
        image: image.to_vec(),
    })
}

/// Checks a restored image against the HSM in front of it: the audit chain
/// verifies under the token's audit key and every signing key that may
/// still sign or verify unseals under the KEK.
fn check_image(path: &Path, hsm: &Hsm) -> Result<(), AppError> {
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let integrity: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if integrity != "ok" {
        return Err(refused(format!(
            "the backup's database fails integrity_check: {integrity}"
        )));
    }
    let report = audit::verify(&c, hsm)?;
    if !report.ok {
        return Err(refused(format!(
            "the backup's audit chain does not verify with this token's audit key (broken at record {:?}): wrong token, or an altered backup",
            report.broken_at
        )));
    }
    for key in crate::state::live_signing_keys(&c)? {
        let aad = provii_hsm::sealed_key_aad(&key.sealed.kid, &key.sealed.verifying_key);
        hsm.unseal(&key.kek, &aad, &key.sealed.blob).map_err(|_| {
            refused(format!(
                "signing key {} does not unseal under {} on this token",
                key.sealed.kid.as_str(),
                key.kek.as_str()
            ))
        })?;
    }
    Ok(())
}

/// `provii-appliance restore --from FILE`: onto a fresh state directory,
/// after checking the file and that this HSM token holds its KEK. Changes
/// nothing unless every check passes.
pub fn restore(
    config: &Config,
    from: &Path,
    progress: &dyn Fn(&str),
) -> Result<Manifest, AppError> {
    let db_path = config.db_path();
    if db_path.exists() {
        return Err(refused(format!(
            "{} exists: restore only onto a fresh state directory (move the old one aside first)",
            db_path.display()
        )));
    }
    let bytes = std::fs::read(from).map_err(|e| refused(format!("{}: {e}", from.display())))?;
    let file = parse(&bytes)?;
    if file.manifest.issuer_id != config.issuer_id {
        return Err(refused(format!(
            "the backup is of issuer {:?} but the configuration says issuer_id = {:?}",
            file.manifest.issuer_id, config.issuer_id
        )));
    }
    let hsm = Hsm::open(config.hsm.clone())?;
    let kek = crate::state::kek_label(&file.manifest.kek)
        .ok_or_else(|| refused("the backup names no valid KEK"))?;
    if !hsm.exists(&kek)? {
        return Err(refused(format!(
            "this HSM token holds no {}: restore needs the token (or a clone of it) the backup was made with",
            kek.as_str()
        )));
    }
    progress("opening the integrity seal with this token's KEK");
    let opened = hsm
        .unseal(&kek, SEAL_AAD, &file.seal)
        .map_err(|_| {
            refused(format!(
                "the backup's integrity seal does not open with {} on this token: the token holds a different KEK (another appliance's), or the file was altered",
                kek.as_str()
            ))
        })?;
    let expected = sealed_digest(&file.manifest_line, &file.image);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&opened[..], &expected[..])) {
        return Err(refused(
            "the backup's integrity seal does not match its contents: the file was altered",
        ));
    }

    let created_dir = !config.state_dir.exists();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.state_dir)
        .map_err(|e| refused(format!("create {}: {e}", config.state_dir.display())))?;
    let staged = staged_path(&db_path);
    let undo = |staged: &Path| {
        let _ = std::fs::remove_file(staged);
        if created_dir {
            let _ = std::fs::remove_dir(&config.state_dir);
        }
    };
    progress("checking the database, its audit chain and its signing keys");
    let checked =
        write_atomically(&staged, &[&file.image]).and_then(|_| check_image(&staged, &hsm));
    if let Err(e) = checked {
        undo(&staged);
        return Err(e);
    }
    std::fs::rename(&staged, &db_path).map_err(|e| {
        undo(&staged);
        refused(format!("move the restored database into place: {e}"))
    })?;

    let now = now();
    let db = Db::open(&db_path)?;
    let (h, created_at) = (hsm.clone(), file.manifest.created_at);
    let file_sha = sha256_hex(&bytes);
    db.write_blocking(move |c| {
        // Challenges handed out after the snapshot are gone; those from
        // before it may have been answered since: none may be used.
        c.execute("DELETE FROM challenges", [])?;
        c.execute(
            "INSERT INTO meta (key, value) VALUES ('replay_floor', ?1) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![now.to_string()],
        )?;
        let event = Event::new("appliance.restored", Severity::Critical)
            .detail("backup_created_at", created_at)
            .detail("backup_sha256", file_sha);
        audit::append(c, &h, &event, now)
    })?;
    Ok(file.manifest)
}

fn staged_path(db_path: &Path) -> PathBuf {
    db_path.with_extension(format!("restoring-{}", std::process::id()))
}
