//! The credential signing key lifecycle: `pending → active → deprecated`,
//! `revoked` from any state. A key is published (outbox) when created and
//! may only sign once that publication has been confirmed for the lead
//! time, because the edge verifier caches its registry (WIRE.md §6).
//!
//! Kids are exactly 14 bytes: `provii:YYYY-MM` for the first key of a
//! month, then `provii:YYMM-NN` (NN = 01..99) for further keys that month.

use std::sync::Arc;

use provii_circuits::Kid;
use provii_hsm::ObjectLabel;
use rusqlite::{Connection, OptionalExtension, params};

use crate::audit::{self, Event, Severity};
use crate::error::{ApiError, AppError};
use crate::init::{KEK_GENERATION, year_month};
use crate::operator_text;
use crate::outbox;
use crate::state::App;

fn kid_taken(c: &Connection, kid: &str) -> Result<bool, AppError> {
    Ok(
        c.query_row("SELECT 1 FROM signing_keys WHERE kid = ?1", [kid], |_| {
            Ok(())
        })
        .optional()?
        .is_some(),
    )
}

/// The next free kid for a key created at `now`.
pub fn next_kid(c: &Connection, now: i64) -> Result<Kid, AppError> {
    let (y, m) = year_month(now);
    let mut candidates = vec![format!("provii:{y:04}-{m:02}")];
    candidates.extend((1..=99).map(|n| format!("provii:{:02}{m:02}-{n:02}", y % 100)));
    for candidate in candidates {
        if !kid_taken(c, &candidate)? {
            return Kid::new(&candidate).map_err(|e| AppError::Internal(e.to_string()));
        }
    }
    Err(ApiError::conflict("100 keys this month already; wait for next month").into())
}

/// Generates a key sealed under the KEK, records it as pending and queues
/// its publication.
pub fn create(app: &Arc<App>, actor: &str, now: i64) -> Result<Kid, AppError> {
    let kek = ObjectLabel::kek(KEK_GENERATION);
    let kid = app.db.read_blocking(|c| next_kid(c, now))?;
    let sealed = app.hsm.generate_signing_key(&kek, &kid)?;
    let (a, actor, kid_s, vk, blob) = (
        app.clone(),
        actor.to_owned(),
        kid.as_str().to_owned(),
        sealed.verifying_key.to_bytes().to_vec(),
        sealed.blob.to_bytes(),
    );
    let kek_s = kek.as_str().to_owned();
    app.db.write_blocking(move |c| {
        c.execute(
            "INSERT INTO signing_keys (kid, verifying_key, sealed, kek, state, created_at) VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
            params![kid_s, vk, blob, kek_s, now],
        )?;
        outbox::enqueue(c, &a.config, now)?;
        audit::append(c, &a.hsm, &Event::new("key.created", Severity::Critical).actor(actor).detail("kid", kid_s.as_str()), now)
    })?;
    app.reload_keys()?;
    Ok(kid)
}

/// Activates a pending key once its publication has been confirmed for the
/// lead time (or at once with `force`, which is recorded with its risk).
/// The key it replaces becomes deprecated and stays published.
pub fn activate(
    app: &Arc<App>,
    kid: &str,
    force: bool,
    actor: &str,
    now: i64,
) -> Result<(), AppError> {
    let lead = app.config.publication.lead_time_seconds as i64;
    let (a, kid, actor) = (app.clone(), kid.to_owned(), actor.to_owned());
    app.db.write_blocking(move |c| {
        let state: Option<String> = c.query_row("SELECT state FROM signing_keys WHERE kid = ?1", [&kid], |r| r.get(0)).optional()?;
        match state.as_deref() {
            None => return Err(ApiError::not_found().into()),
            Some("pending") => {}
            Some(other) => return Err(ApiError::conflict(if other == "active" { "the key is already active" } else { "only a pending key can be activated" }).into()),
        }
        let confirmed = outbox::confirmed_since(c, &a.config, &kid)?;
        let ready = confirmed.is_some_and(|t| t + lead <= now);
        if !ready && !force {
            return Err(ApiError::conflict(
                "the key's publication has not been confirmed for the lead time yet; wait (see `keys list` and `status`), or use --force and accept that verifiers may reject its credentials for up to an hour",
            )
            .into());
        }
        c.execute("UPDATE signing_keys SET state = 'deprecated' WHERE state = 'active'", [])?;
        c.execute("UPDATE signing_keys SET state = 'active', activated_at = ?2 WHERE kid = ?1", params![kid, now])?;
        outbox::enqueue(c, &a.config, now)?;
        let mut event = Event::new("key.activated", Severity::Critical).actor(actor).detail("kid", kid.as_str());
        if !ready {
            event = event.detail("forced", true).detail("risk", "published less than the lead time ago: edge verifiers may not know this key yet");
        }
        audit::append(c, &a.hsm, &event, now)
    })?;
    app.reload_keys()
}

/// Takes a key out of service at once and publishes the revocation.
/// Revoking the active key stops issuance (503) until another is active.
pub fn revoke(
    app: &Arc<App>,
    kid: &str,
    reason: &str,
    actor: &str,
    now: i64,
) -> Result<(), AppError> {
    operator_text::check("reason", reason)?;
    let (a, kid, reason, actor) = (
        app.clone(),
        kid.to_owned(),
        reason.to_owned(),
        actor.to_owned(),
    );
    app.db.write_blocking(move |c| {
        let n = c.execute(
            "UPDATE signing_keys SET state = 'revoked' WHERE kid = ?1 AND state != 'revoked'",
            [&kid],
        )?;
        if n == 0 {
            return Err(ApiError::not_found().into());
        }
        c.execute(
            "INSERT INTO key_revocations (kid, revoked_at, reason) VALUES (?1, ?2, ?3) ON CONFLICT(kid) DO NOTHING",
            params![kid, now, reason],
        )?;
        outbox::enqueue(c, &a.config, now)?;
        let event = Event::new("key.revoked", Severity::Critical)
            .actor(actor)
            .detail("kid", kid.as_str())
            .detail("reason", reason);
        audit::append(c, &a.hsm, &event, now)
    })?;
    app.reload_keys()
}

/// Retires deprecated keys under which no credential is still valid: they
/// leave the JWKS (their registry entries stay, unrevoked). Runs in
/// housekeeping; returns the kids retired.
pub fn retire_expired(c: &Connection, app: &App, now: i64) -> Result<Vec<String>, AppError> {
    let mut stmt = c.prepare(
        "SELECT k.kid FROM signing_keys k LEFT JOIN key_usage u ON u.kid = k.kid
         WHERE k.state = 'deprecated' AND COALESCE(u.max_exp, 0) <= ?1",
    )?;
    let kids: Vec<String> = stmt
        .query_map([now], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for kid in &kids {
        c.execute(
            "UPDATE signing_keys SET state = 'retired' WHERE kid = ?1",
            [kid],
        )?;
        let event = Event::new("key.retired", Severity::Info)
            .detail("kid", kid.as_str())
            .detail("reason", "every credential under it has expired");
        audit::append(c, &app.hsm, &event, now)?;
    }
    if !kids.is_empty() {
        outbox::enqueue(c, &app.config, now)?;
    }
    Ok(kids)
}

/// How long a replaced attestation key still verifies: an attestation's
/// lifetime plus the future skew it may carry (WIRE.md §7).
pub const ATTESTATION_OVERLAP_SECONDS: i64 = 3600 + 60;

/// Makes a new Ed25519 attestation key inside the HSM; it signs from now
/// on, and the previous one keeps verifying for `overlap` seconds
/// ([`ATTESTATION_OVERLAP_SECONDS`] routinely, 0 when it is compromised).
pub fn rotate_attestation_key(
    app: &Arc<App>,
    actor: &str,
    overlap: i64,
    now: i64,
) -> Result<String, AppError> {
    let (a, actor) = (app.clone(), actor.to_owned());
    // In the writer, so that two rotations cannot pick the same label and
    // a key made without its row is found and replaced by the next one.
    let label = app.db.write_blocking(move |c| {
        let n: i64 = c.query_row("SELECT COUNT(*) FROM attestation_keys", [], |r| r.get(0))?;
        let label = ObjectLabel::attestation(&(n + 1).to_string())
            .map_err(|e| AppError::Internal(e.to_string()))?;
        crate::enrol::destroy_orphan(c, &a.hsm, &label, &actor, now)?;
        let public = a.hsm.create_ed25519_key(&label)?;
        c.execute(
            "INSERT INTO attestation_key_windows (label, verify_until)
             SELECT label, ?1 FROM attestation_keys WHERE state = 'current'",
            [now + overlap],
        )?;
        c.execute("UPDATE attestation_keys SET state = 'previous' WHERE state = 'current'", [])?;
        c.execute(
            "INSERT INTO attestation_keys (label, public_key, state, created_at) VALUES (?1, ?2, 'current', ?3)",
            params![label.as_str(), public.to_vec(), now],
        )?;
        let event = Event::new("attestation_key.rotated", Severity::Critical)
            .actor(actor)
            .detail("label", label.as_str())
            .detail("previous_verifies_for_seconds", overlap);
        audit::append(c, &a.hsm, &event, now)?;
        Ok(label)
    })?;
    app.reload_keys()?;
    Ok(label.as_str().to_owned())
}

/// Disables previous attestation keys whose overlap has passed.
pub fn disable_old_attestation_keys(
    c: &Connection,
    app: &App,
    now: i64,
) -> Result<usize, AppError> {
    let mut stmt = c.prepare(
        "SELECT k.label FROM attestation_keys k JOIN attestation_key_windows w ON w.label = k.label
         WHERE k.state = 'previous' AND w.verify_until <= ?1",
    )?;
    let labels: Vec<String> = stmt
        .query_map([now], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for label in &labels {
        c.execute(
            "UPDATE attestation_keys SET state = 'disabled' WHERE label = ?1",
            [label],
        )?;
        audit::append(
            c,
            &app.hsm,
            &Event::new("attestation_key.disabled", Severity::Info).detail("label", label.as_str()),
            now,
        )?;
    }
    Ok(labels.len())
}

/// Where the active key stands in its rotation schedule.
pub struct RotationState {
    pub active_kid: Option<String>,
    pub age_seconds: i64,
    pub overdue: bool,
    /// A pending key exists to take over.
    pub successor: bool,
}

pub fn rotation_state(
    c: &Connection,
    rotation_days: u64,
    now: i64,
) -> Result<RotationState, AppError> {
    let active: Option<(String, i64)> = c
        .query_row(
            "SELECT kid, COALESCE(activated_at, created_at) FROM signing_keys WHERE state = 'active' ORDER BY activated_at DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let successor = c.query_row(
        "SELECT COUNT(*) FROM signing_keys WHERE state = 'pending'",
        [],
        |r| r.get::<_, i64>(0),
    )? > 0;
    let age = active.as_ref().map_or(0, |(_, at)| now - at);
    Ok(RotationState {
        overdue: active.is_some() && age > rotation_days as i64 * 86_400,
        active_kid: active.map(|(k, _)| k),
        age_seconds: age,
        successor,
    })
}

/// Housekeeping's part of the schedule: once the active key is within the
/// lead time (plus a day's margin) of its rotation date and no successor
/// exists, create one; warn while a rotation is overdue.
pub fn schedule(app: &Arc<App>, now: i64) -> Result<Option<Kid>, AppError> {
    let days = app.config.publication.rotation_days;
    let state = app.db.read_blocking(|c| rotation_state(c, days, now))?;
    if state.overdue {
        tracing::warn!(kid = ?state.active_kid, age_days = state.age_seconds / 86_400, "signing key rotation is overdue: activate the pending key (keys list)");
    }
    let due_in = days as i64 * 86_400 - state.age_seconds;
    let prepare = app.config.publication.lead_time_seconds as i64 + 86_400;
    if state.active_kid.is_some() && !state.successor && due_in <= prepare {
        return create(app, "rotation-schedule", now).map(Some);
    }
    Ok(None)
}
