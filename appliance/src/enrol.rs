//! Enrolling officers and Issuing Parties: a fresh secret from the HSM's
//! RNG, imported as a non-extractable HSM object, shown to the caller once.

use provii_circuits::client_auth::validate_key_id;
use provii_hsm::{Hsm, ObjectLabel, SecretKind};
use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::audit::{self, Event, Severity};
use crate::error::{ApiError, AppError};
use crate::operator_text;

pub const ROLES: [&str; 4] = ["officer", "viewer", "admin", "super_admin"];

fn fresh_secret<const N: usize>(hsm: &Hsm) -> Result<Zeroizing<[u8; N]>, AppError> {
    let mut secret = Zeroizing::new([0u8; N]);
    hsm.random(&mut secret[..])?;
    Ok(secret)
}

/// The `ykman` line that programs a YubiKey's slot 2 with this secret.
pub fn ykman_line(secret_hex: &str) -> String {
    format!("ykman otp chalresp --touch 2 {secret_hex}")
}

pub fn add_officer(
    c: &Connection,
    hsm: &Hsm,
    id: &str,
    role: &str,
    actor: &str,
    now: i64,
) -> Result<Zeroizing<[u8; 20]>, AppError> {
    validate_key_id(id).map_err(|_| {
        ApiError::bad_request("officer id must be 1-128 characters of A-Z a-z 0-9 - _ : . / @")
    })?;
    if !ROLES.contains(&role) {
        return Err(
            ApiError::bad_request("role must be officer, viewer, admin or super_admin").into(),
        );
    }
    if c.query_row("SELECT 1 FROM officers WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_some()
    {
        return Err(ApiError::conflict("an officer with this id exists").into());
    }
    let secret = fresh_secret::<20>(hsm)?;
    let label = ObjectLabel::officer(id, 1).map_err(|e| AppError::Internal(e.to_string()))?;
    import_unreferenced(
        c,
        hsm,
        &label,
        SecretKind::OfficerYubiKey,
        &secret[..],
        actor,
        now,
    )?;
    c.execute(
        "INSERT INTO officers (id, role, status, secret_generation, created_at) VALUES (?1, ?2, 'active', 1, ?3)",
        params![id, role, now],
    )?;
    audit::append(
        c,
        hsm,
        &Event::new("officer.added", Severity::Critical)
            .actor(actor)
            .detail("officer", id)
            .detail("role", role),
        now,
    )?;
    Ok(secret)
}

pub fn add_client(
    c: &Connection,
    hsm: &Hsm,
    id: &str,
    display_name: &str,
    allow_under_18: bool,
    actor: &str,
    now: i64,
) -> Result<Zeroizing<[u8; 32]>, AppError> {
    validate_key_id(id).map_err(|_| {
        ApiError::bad_request("client id must be 1-128 characters of A-Z a-z 0-9 - _ : . / @")
    })?;
    operator_text::check("display_name", display_name)?;
    if c.query_row("SELECT 1 FROM clients WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_some()
    {
        return Err(ApiError::conflict("a client with this id exists").into());
    }
    let secret = fresh_secret::<32>(hsm)?;
    let label = ObjectLabel::client(id, 1).map_err(|e| AppError::Internal(e.to_string()))?;
    import_unreferenced(
        c,
        hsm,
        &label,
        SecretKind::ClientHmac,
        &secret[..],
        actor,
        now,
    )?;
    c.execute(
        "INSERT INTO clients (id, display_name, status, allow_under_18, secret_generation, created_at) VALUES (?1, ?2, 'active', ?3, 1, ?4)",
        params![id, display_name, allow_under_18 as i64, now],
    )?;
    let event = Event::new("client.added", Severity::Critical)
        .actor(actor)
        .detail("client", id)
        .detail("allow_under_18", allow_under_18);
    audit::append(c, hsm, &event, now)?;
    Ok(secret)
}

/// Destroys what the token holds under `label`, a label the database does
/// not reference (the caller checked, in the writer's transaction): an
/// orphan left by a key or enrolment whose database write failed, or made
/// after the backup this database was restored from. Its secret must not
/// come back to life, and making the object again must not fail for good.
/// Audited when there was something to destroy.
pub fn destroy_orphan(
    c: &Connection,
    hsm: &Hsm,
    label: &ObjectLabel,
    actor: &str,
    now: i64,
) -> Result<(), AppError> {
    if !hsm.exists(label)? {
        return Ok(());
    }
    let destroyed = hsm.destroy(label)?;
    tracing::warn!(label = %label, destroyed, "destroyed HSM objects the database does not reference");
    let event = Event::new("hsm.orphan_destroyed", Severity::Warning)
        .actor(actor)
        .detail("label", label.as_str())
        .detail("objects", destroyed);
    audit::append(c, hsm, &event, now)
}

/// Imports an enrolment secret under `label`, replacing an orphan (see
/// [`destroy_orphan`]): the caller found no such officer, client or
/// generation in the writer's transaction.
fn import_unreferenced(
    c: &Connection,
    hsm: &Hsm,
    label: &ObjectLabel,
    kind: SecretKind,
    secret: &[u8],
    actor: &str,
    now: i64,
) -> Result<(), AppError> {
    destroy_orphan(c, hsm, label, actor, now)?;
    hsm.import_secret(label, kind, secret)?;
    Ok(())
}

/// The next secret generation of an officer or client: draws the secret
/// from the HSM's RNG and imports it under its new label. Returns the
/// current generation, the next one and the secret.
fn import_next_generation<const N: usize>(
    c: &Connection,
    hsm: &Hsm,
    table: &'static str,
    id: &str,
    actor: &str,
    now: i64,
) -> Result<(i64, i64, Zeroizing<[u8; N]>), AppError> {
    let sql = match table {
        "officers" => "SELECT secret_generation FROM officers WHERE id = ?1",
        _ => "SELECT secret_generation FROM clients WHERE id = ?1",
    };
    let generation: i64 = c
        .query_row(sql, [id], |r| r.get(0))
        .optional()?
        .ok_or_else(ApiError::not_found)?;
    let next = generation + 1;
    let secret = fresh_secret::<N>(hsm)?;
    let (label, kind) = match table {
        "officers" => (
            ObjectLabel::officer(id, next as u32),
            SecretKind::OfficerYubiKey,
        ),
        _ => (ObjectLabel::client(id, next as u32), SecretKind::ClientHmac),
    };
    let label = label.map_err(|e| AppError::Internal(e.to_string()))?;
    import_unreferenced(c, hsm, &label, kind, &secret[..], actor, now)?;
    Ok((generation, next, secret))
}

/// A new secret generation; the previous one keeps working for `overlap` s.
pub fn rotate_client_secret(
    c: &Connection,
    hsm: &Hsm,
    id: &str,
    overlap: i64,
    actor: &str,
    now: i64,
) -> Result<Zeroizing<[u8; 32]>, AppError> {
    let (generation, next, secret) =
        import_next_generation::<32>(c, hsm, "clients", id, actor, now)?;
    c.execute(
        "UPDATE clients SET secret_generation = ?2, previous_generation = ?3, previous_valid_until = ?4 WHERE id = ?1",
        params![id, next, generation, now + overlap],
    )?;
    let event = Event::new("client.secret_rotated", Severity::Critical)
        .actor(actor)
        .detail("client", id)
        .detail("overlap_seconds", overlap);
    audit::append(c, hsm, &event, now)?;
    Ok(secret)
}

/// Sets an officer's or client's status; `table` is a fixed name.
pub fn set_status(
    c: &Connection,
    hsm: &Hsm,
    table: &'static str,
    id: &str,
    status: &'static str,
    actor: &str,
    now: i64,
) -> Result<(), AppError> {
    let sql = match table {
        "officers" => "UPDATE officers SET status = ?2 WHERE id = ?1",
        _ => "UPDATE clients SET status = ?2 WHERE id = ?1",
    };
    if c.execute(sql, params![id, status])? == 0 {
        return Err(ApiError::not_found().into());
    }
    let kind = if table == "officers" {
        "officer.status"
    } else {
        "client.status"
    };
    audit::append(
        c,
        hsm,
        &Event::new(kind, Severity::Critical)
            .actor(actor)
            .detail("id", id)
            .detail("status", status),
        now,
    )?;
    Ok(())
}

/// A new YubiKey secret for an officer (a lost or re-programmed key); the
/// old one stops working at once.
pub fn rotate_officer_secret(
    c: &Connection,
    hsm: &Hsm,
    id: &str,
    actor: &str,
    now: i64,
) -> Result<Zeroizing<[u8; 20]>, AppError> {
    let (_, next, secret) = import_next_generation::<20>(c, hsm, "officers", id, actor, now)?;
    c.execute(
        "UPDATE officers SET secret_generation = ?2 WHERE id = ?1",
        params![id, next],
    )?;
    audit::append(
        c,
        hsm,
        &Event::new("officer.secret_rotated", Severity::Critical)
            .actor(actor)
            .detail("officer", id),
        now,
    )?;
    Ok(secret)
}

/// Lifts every lockout of an officer.
pub fn unlock_officer(
    c: &Connection,
    hsm: &Hsm,
    id: &str,
    actor: &str,
    now: i64,
) -> Result<u64, AppError> {
    if c.query_row("SELECT 1 FROM officers WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_none()
    {
        return Err(ApiError::not_found().into());
    }
    let n = c.execute("DELETE FROM officer_failures WHERE officer_id = ?1", [id])?;
    audit::append(
        c,
        hsm,
        &Event::new("officer.unlocked", Severity::Critical)
            .actor(actor)
            .detail("officer", id),
        now,
    )?;
    Ok(n as u64)
}
