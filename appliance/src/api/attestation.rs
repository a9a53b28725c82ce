//! `POST /v1/attestation/create` (WIRE.md §3): an Issuing Party (HMAC-SHA256
//! over the canonical string) or an officer (YubiKey HMAC-SHA1 over a
//! challenge) asks for an Ed25519 attestation of a date of birth. Every
//! secret check happens inside the HSM.
//!
//! Client requests are checked and signed on the crypto threads in parallel;
//! only the nonce consumption and audit records go through the database
//! writer, and the attestation is released after they commit.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use provii_circuits::client_auth::{client_canonical_string, validate_key_id};
use provii_circuits::encoding::{hex_decode, hex_decode_array};
use provii_circuits::{Attestation, AttestationFields, DobDays};
use provii_hsm::ObjectLabel;
use rand::Rng;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::challenge::bound_challenge;
use super::request::JsonBody;
use super::{Source, admit};
use crate::audit::{self, Event, Severity};
use crate::db::CachedStatements;
use crate::error::{ApiError, AppError};
use crate::state::{App, now};

const REQUEST_SKEW: u64 = 30;
const AUTH_NONCE_TTL: i64 = 300;
const ADULT_DAYS: i64 = 6574;
const ATTESTATION_LIFETIME: i64 = 3600;
const FAILURE_WINDOW: i64 = 3600;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationRequest {
    dob_days: i32,
    authorizer: Authorizer,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Authorizer {
    format: String,
    key_id: String,
    challenge_id: Option<String>,
    timestamp: i64,
    hmac: String,
    nonce: String,
}

impl Drop for AttestationRequest {
    fn drop(&mut self) {
        self.dob_days.zeroize();
    }
}

/// What the request asks, validated, for the blocking part of the flow.
struct Attempt {
    key_id: String,
    dob: DobDays,
    nonce: [u8; 32],
    source: Option<String>,
    now: i64,
}

fn nonce_hash(nonce: &[u8; 32]) -> Vec<u8> {
    Sha256::new_with_prefix(b"provii.auth-nonce|")
        .chain_update(nonce)
        .finalize()
        .to_vec()
}

/// Consumes an authorizer nonce (single use for 300 s) in a writer job,
/// and retires up to two expired ones ([`crate::db::retire_expired`]).
fn consume_auth_nonce(c: &Connection, nonce: &[u8; 32], now: i64) -> Result<(), AppError> {
    let inserted = c.execute_cached(
        "INSERT INTO auth_nonces (nonce_hash, expires_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        params![nonce_hash(nonce), now + AUTH_NONCE_TTL],
    )?;
    if inserted == 0 {
        return Err(ApiError::conflict("authorizer nonce already used").into());
    }
    crate::db::retire_expired(c, "auth_nonces", now)
}

/// Refuses a source that failed authentication `cap` times within the hour.
fn check_source_cap(
    c: &Connection,
    source: &Option<String>,
    cap: u32,
    now: i64,
) -> Result<(), AppError> {
    let Some(src) = source else { return Ok(()) };
    let row: Option<(i64, i64)> = c
        .query_row_cached(
            "SELECT window_start, failures FROM source_failures WHERE source_hash = ?1",
            [src],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((start, failures)) = row
        && now - start < FAILURE_WINDOW
        && failures >= i64::from(cap)
    {
        return Err(ApiError::rate_limited((start + FAILURE_WINDOW - now) as u64).into());
    }
    Ok(())
}

fn count_source_failure(c: &Connection, source: &Option<String>, now: i64) -> Result<(), AppError> {
    let Some(src) = source else { return Ok(()) };
    c.execute_cached(
        "INSERT INTO source_failures (source_hash, window_start, failures) VALUES (?1, ?2, 1)
         ON CONFLICT(source_hash) DO UPDATE SET
           failures = CASE WHEN ?2 - window_start >= ?3 THEN 1 ELSE failures + 1 END,
           window_start = CASE WHEN ?2 - window_start >= ?3 THEN ?2 ELSE window_start END",
        params![src, now, FAILURE_WINDOW],
    )?;
    Ok(())
}

/// Inside a writer job: counts the failure, audits it, answers 401. The
/// `ApiError` keeps the job's writes.
fn auth_failure(
    c: &Connection,
    app: &App,
    actor: &str,
    format: &str,
    reason: &'static str,
    source: &Option<String>,
    now: i64,
) -> Result<(), AppError> {
    count_source_failure(c, source, now)?;
    let event = Event::new("auth.failure", Severity::Warning)
        .actor(actor)
        .source(source.clone())
        .detail("format", format)
        .detail("reason", reason);
    audit::append(c, &app.hsm, &event, now)?;
    Err(ApiError::unauthorized().into())
}

fn refuse(
    app: &Arc<App>,
    actor: &str,
    format: &'static str,
    reason: &'static str,
    source: &Option<String>,
    now: i64,
) -> AppError {
    let (a, actor, source) = (app.clone(), actor.to_owned(), source.clone());
    match app
        .db
        .write_blocking(move |c| auth_failure(c, &a, &actor, format, reason, &source, now))
    {
        Err(e) => e,
        Ok(()) => ApiError::unauthorized().into(),
    }
}

pub async fn create(
    State(app): State<Arc<App>>,
    Source(source): Source,
    JsonBody(req): JsonBody<AttestationRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    admit(&app, source)?;
    let now = now();
    let a = &req.authorizer;
    validate_key_id(&a.key_id)
        .map_err(|_| ApiError::bad_request("authorizer.keyId is not a valid id"))?;
    let nonce: [u8; 32] = hex_decode_array(&a.nonce, "nonce").map_err(|_| {
        ApiError::bad_request("authorizer.nonce must be 64 lowercase hex characters")
    })?;
    // `abs_diff`: the timestamp is the client's, and may be any i64.
    if a.timestamp.abs_diff(now) > REQUEST_SKEW {
        return Err(ApiError::unauthorized_because(
            "request timestamp is outside ±30 s of the server clock",
        ));
    }
    if a.timestamp <= app.replay_floor {
        return Err(ApiError::unauthorized_because(
            "request predates this appliance's restore from backup; sign a new one",
        ));
    }
    let dob = DobDays::new(req.dob_days)
        .map_err(|_| ApiError::bad_request("dob_days is outside [-36525, 36525]"))?;
    if i64::from(dob.expose()) > now / 86_400 {
        return Err(ApiError::bad_request("dob_days is in the future"));
    }
    let format = a.format.clone();
    let (mac_hex, challenge_id, timestamp) = (a.hmac.clone(), a.challenge_id.clone(), a.timestamp);
    let attempt = Attempt {
        key_id: a.key_id.clone(),
        dob,
        nonce,
        source: None,
        now,
    };
    let limited = match format.as_str() {
        "client" => app.limits.client(&attempt.key_id),
        "yubikey" => app.limits.officer(&attempt.key_id),
        _ => {
            return Err(ApiError::bad_request(
                "authorizer.format must be \"client\" or \"yubikey\"",
            ));
        }
    };
    limited.map_err(|l| super::limited(&app, l, source, Some(&attempt.key_id)))?;

    let app2 = app.clone();
    let signed = super::in_crypto_lane(&app, move || -> Result<Signed, AppError> {
        let mut attempt = attempt;
        attempt.source = app2.source_hash(source)?;
        let cap = app2.config.officers.max_failures_per_source_per_hour;
        let src = attempt.source.clone();
        app2.db
            .read_blocking(|c| check_source_cap(c, &src, cap, now))?;
        match format.as_str() {
            "client" => {
                if challenge_id.is_some() {
                    return Err(ApiError::bad_request(
                        "authorizer.challengeId is only for officers",
                    )
                    .into());
                }
                let mac = hex_decode(&mac_hex, "hmac")
                    .map_err(|_| ApiError::bad_request("authorizer.hmac must be lowercase hex"))?;
                client_flow(&app2, attempt, timestamp, &mac)
            }
            _ => {
                let challenge_id = challenge_id.ok_or_else(|| {
                    ApiError::bad_request("authorizer.challengeId is required for officers")
                })?;
                let response: [u8; 20] = hex_decode_array(&mac_hex, "hmac").map_err(|_| {
                    ApiError::bad_request("authorizer.hmac must be 40 lowercase hex characters")
                })?;
                officer_flow(&app2, attempt, challenge_id, response).map(Signed::Recorded)
            }
        }
    })
    .await??;
    let attestation = match signed {
        Signed::Recorded(attestation) => attestation,
        Signed::ToRecord(attestation, record) => {
            app.db.write(record).await?;
            attestation
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "attestation": attestation.to_base64url(),
            "expires_at": now + ATTESTATION_LIFETIME,
            "issuer_id": app.config.issuer_id,
        })),
    ))
}

/// Signs the attestation inside the HSM; not released until its records commit.
fn sign_attestation(app: &App, dob: &DobDays, now: i64) -> Result<Attestation, AppError> {
    let keys = app.keys();
    let key = keys
        .attestation
        .first()
        .ok_or_else(|| ApiError::unavailable("no attestation key provisioned"))?;
    let mut nonce = [0u8; 32];
    rand::rng().fill_bytes(&mut nonce);
    let fields = AttestationFields::new(dob, &app.config.issuer_id, now as u64, nonce, None, None)
        .map_err(|_| ApiError::internal())?;
    nonce.zeroize();
    let digest = fields.digest();
    let signature = app.hsm.ed25519_sign(&key.label, &digest)?;
    app.own_attestations
        .remember(digest, signature, &key.public);
    Ok(fields.with_signature(signature))
}

/// A signed attestation, either already recorded (the officer path runs as
/// one writer job) or with the writer job that consumes its authorizer nonce
/// and audits it, which the handler awaits so the writer wakes it directly.
enum Signed {
    Recorded(Attestation),
    ToRecord(Attestation, RecordJob),
}

type RecordJob = Box<dyn FnOnce(&Connection) -> Result<(), AppError> + Send>;

struct ClientRow {
    status: String,
    allow_minors: bool,
    generation: i64,
    previous: Option<i64>,
    previous_until: Option<i64>,
}

fn client_flow(app: &Arc<App>, t: Attempt, timestamp: i64, mac: &[u8]) -> Result<Signed, AppError> {
    let canonical = client_canonical_string(
        timestamp as u64,
        t.dob.expose(),
        &t.key_id,
        &provii_circuits::encoding::hex_encode(&t.nonce),
    )
    .map_err(|_| ApiError::bad_request("invalid authorizer"))?;
    let key_id = t.key_id.clone();
    let row: Option<ClientRow> = app.db.read_blocking(|c| {
        Ok(c.query_row_cached(
            "SELECT status, allow_under_18, secret_generation, previous_generation, previous_valid_until FROM clients WHERE id = ?1",
            [&key_id],
            |r| {
                Ok(ClientRow {
                    status: r.get(0)?,
                    allow_minors: r.get::<_, i64>(1)? != 0,
                    generation: r.get(2)?,
                    previous: r.get(3)?,
                    previous_until: r.get(4)?,
                })
            },
        )
        .optional()?)
    })?;
    let Some(row) = row else {
        return Err(refuse(
            app,
            &t.key_id,
            "client",
            "unknown client",
            &t.source,
            t.now,
        ));
    };
    if row.status != "active" {
        return Err(refuse(
            app,
            &t.key_id,
            "client",
            "client disabled",
            &t.source,
            t.now,
        ));
    }
    let mut generations = vec![row.generation];
    if let (Some(p), Some(until)) = (row.previous, row.previous_until)
        && until >= t.now
    {
        generations.push(p);
    }
    let mut authentic = false;
    for g in generations {
        let label = ObjectLabel::client(&t.key_id, g as u32)
            .map_err(|_| AppError::Internal("client label".into()))?;
        if app
            .hsm
            .verify_hmac_sha256(&label, canonical.as_bytes(), mac)?
        {
            authentic = true;
            break;
        }
    }
    if !authentic {
        return Err(refuse(
            app,
            &t.key_id,
            "client",
            "wrong hmac",
            &t.source,
            t.now,
        ));
    }
    let age_days = t.now / 86_400 - i64::from(t.dob.expose());
    if age_days < ADULT_DAYS && !row.allow_minors {
        let (a, actor, src, now) = (app.clone(), t.key_id.clone(), t.source.clone(), t.now);
        app.db.write_blocking(move |c| {
            let event = Event::new("attestation.refused", Severity::Warning)
                .actor(actor)
                .source(src)
                .detail("reason", "child dob guard");
            audit::append(c, &a.hsm, &event, now)
        })?;
        return Err(ApiError::bad_request(
            "date of birth is under 18; this client is not enabled for minors",
        )
        .into());
    }
    let attestation = sign_attestation(app, &t.dob, t.now)?;
    let (a, actor, src, nonce, now) = (
        app.clone(),
        t.key_id.clone(),
        t.source.clone(),
        t.nonce,
        t.now,
    );
    let record = move |c: &Connection| {
        consume_auth_nonce(c, &nonce, now)?;
        // One record for the authenticated client and the attestation it
        // obtained: the audit chain is written serially, so each record
        // costs every request.
        audit::append(
            c,
            &a.hsm,
            &Event::new("attestation.created", Severity::Info)
                .actor(actor)
                .source(src)
                .detail("format", "client")
                .detail("authenticated", "hmac-sha256"),
            now,
        )
    };
    Ok(Signed::ToRecord(attestation, Box::new(record)))
}

/// A challenge as consumed from the database.
struct ChallengeRow {
    owner: String,
    challenge: Vec<u8>,
    server_random: Option<Vec<u8>>,
    expires_at: i64,
}

/// The officer path runs as one writer job: lockout check, challenge
/// consumption, response check in the HSM, failure counting. Officers are
/// people at counters, so this path is not a throughput concern.
fn officer_flow(
    app: &Arc<App>,
    t: Attempt,
    challenge_id: String,
    response: [u8; 20],
) -> Result<Attestation, AppError> {
    let policy = app.config.officers.clone();
    let (a, officer, src, now, nonce, dob_days) = (
        app.clone(),
        t.key_id.clone(),
        t.source.clone(),
        t.now,
        t.nonce,
        t.dob.expose(),
    );
    app.db.write_blocking(move |c| {
        let src_key = src.clone().unwrap_or_else(|| "-".into());
        let locked_until: Option<i64> = c
            .query_row_cached(
                "SELECT locked_until FROM officer_failures WHERE officer_id = ?1 AND source_hash = ?2",
                params![officer, src_key.as_bytes()],
                |r| r.get(0),
            )
            .optional()?;
        if locked_until.is_some_and(|u| u > now) {
            audit::append(c, &a.hsm, &Event::new("auth.locked_out", Severity::Warning).actor(&officer).source(src.clone()), now)?;
            return Err(ApiError::unauthorized().into());
        }
        // The challenge is consumed by this attempt whatever its outcome.
        let challenge: Option<ChallengeRow> = c
            .query_row_cached(
                "DELETE FROM challenges WHERE id = ?1 RETURNING officer_id, challenge, server_random, expires_at",
                [&challenge_id],
                |r| Ok(ChallengeRow { owner: r.get(0)?, challenge: r.get(1)?, server_random: r.get(2)?, expires_at: r.get(3)? }),
            )
            .optional()?;
        c.execute_cached("DELETE FROM challenges WHERE expires_at < ?1", [now])?;
        let reason = match &challenge {
            None => Some("unknown or consumed challenge"),
            Some(ch) if ch.owner != officer => Some("challenge of another officer"),
            Some(ch) if ch.expires_at < now => Some("expired challenge"),
            Some(ch) if ch.server_random.is_none() && policy.require_intent => Some("challenge not bound to the request"),
            _ => None,
        };
        if let Some(reason) = reason {
            return auth_failure(c, &a, &officer, "yubikey", reason, &src, now);
        }
        let Some(ChallengeRow { challenge: stored, server_random, .. }) = challenge else {
            return Err(ApiError::unauthorized().into());
        };
        let mut authentic = true;
        if let Some(random) = server_random {
            let random: [u8; 32] = random.try_into().map_err(|_| AppError::Storage("challenge server_random".into()))?;
            authentic &= bool::from(bound_challenge(&random, dob_days, &nonce).ct_eq(&stored[..]));
        }
        let status: Option<(String, i64)> = c
            .query_row_cached("SELECT status, secret_generation FROM officers WHERE id = ?1", [&officer], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        match status {
            Some((s, generation)) if s == "active" => {
                let label = ObjectLabel::officer(&officer, generation as u32).map_err(|_| AppError::Internal("officer label".into()))?;
                authentic &= a.hsm.verify_hmac_sha1(&label, &stored, &response)?;
            }
            _ => authentic = false,
        }
        if !authentic {
            let failures: i64 = c.query_row_cached(
                "INSERT INTO officer_failures (officer_id, source_hash, failures, locked_until) VALUES (?1, ?2, 1, 0)
                 ON CONFLICT(officer_id, source_hash) DO UPDATE SET failures = failures + 1 RETURNING failures",
                params![officer, src_key.as_bytes()],
                |r| r.get(0),
            )?;
            if failures >= i64::from(policy.lockout_failures) {
                c.execute_cached(
                    "UPDATE officer_failures SET locked_until = ?3, failures = 0 WHERE officer_id = ?1 AND source_hash = ?2",
                    params![officer, src_key.as_bytes(), now + policy.lockout_seconds as i64],
                )?;
                let event = Event::new("auth.lockout", Severity::Critical).actor(&officer).source(src.clone()).detail("seconds", policy.lockout_seconds);
                audit::append(c, &a.hsm, &event, now)?;
            }
            return auth_failure(c, &a, &officer, "yubikey", "wrong response", &src, now);
        }
        c.execute_cached("DELETE FROM officer_failures WHERE officer_id = ?1 AND source_hash = ?2", params![officer, src_key.as_bytes()])?;
        consume_auth_nonce(c, &nonce, now)?;
        audit::append(c, &a.hsm, &Event::new("auth.success", Severity::Info).actor(&officer).source(src).detail("format", "yubikey"), now)
    })?;
    let attestation = sign_attestation(app, &t.dob, t.now)?;
    let (a, actor, src, now) = (app.clone(), t.key_id.clone(), t.source.clone(), t.now);
    app.db.write_blocking(move |c| {
        audit::append(
            c,
            &a.hsm,
            &Event::new("attestation.created", Severity::Info)
                .actor(actor)
                .source(src)
                .detail("format", "yubikey"),
            now,
        )
    })?;
    Ok(attestation)
}
