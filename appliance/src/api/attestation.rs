//! `POST /v1/attestation/create` (WIRE.md §3): an Issuing Party (HMAC-SHA256
//! over the canonical string) or an officer (YubiKey HMAC-SHA1 over a
//! challenge) asks for an Ed25519 attestation of a date of birth. Every
//! secret check happens inside the HSM.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use provii_circuits::client_auth::{client_canonical_string, validate_key_id};
use provii_circuits::encoding::{hex_decode, hex_decode_array};
use provii_circuits::{AttestationFields, DobDays};
use provii_hsm::{Hsm, ObjectLabel};
use rand::Rng;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::challenge::bound_challenge;
use super::request::JsonBody;
use super::{Source, admit};
use crate::audit::{self, Event, Severity};
use crate::error::{ApiError, AppError};
use crate::state::{App, now};

const REQUEST_SKEW: i64 = 30;
const AUTH_NONCE_TTL: i64 = 300;
const ADULT_DAYS: i64 = 6574;
const ATTESTATION_LIFETIME: i64 = 3600;

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

/// Who authenticated, for the attestation's audit record.
struct Authorised {
    actor: String,
    format: &'static str,
}

fn nonce_hash(nonce: &[u8; 32]) -> Vec<u8> {
    Sha256::new_with_prefix(b"provii.auth-nonce|")
        .chain_update(nonce)
        .finalize()
        .to_vec()
}

/// Consumes an authorizer nonce (single use for 300 s), inside `tx`.
fn consume_auth_nonce(tx: &Transaction<'_>, nonce: &[u8; 32], now: i64) -> Result<(), AppError> {
    tx.execute("DELETE FROM auth_nonces WHERE expires_at < ?1", [now])?;
    let inserted = tx.execute(
        "INSERT INTO auth_nonces (nonce_hash, expires_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        params![nonce_hash(nonce), now + AUTH_NONCE_TTL],
    )?;
    if inserted == 0 {
        return Err(ApiError::conflict("authorizer nonce already used").into());
    }
    Ok(())
}

const FAILURE_WINDOW: i64 = 3600;

/// Refuses a source that has failed authentication `cap` times within the
/// hour (429 with the time left in its window).
fn check_source_cap(
    c: &Connection,
    hsm: &Hsm,
    source: Option<IpAddr>,
    cap: u32,
    now: i64,
) -> Result<(), AppError> {
    let src = source_key(hsm, source)?;
    let row: Option<(i64, i64)> = c
        .query_row(
            "SELECT window_start, failures FROM source_failures WHERE source_hash = ?1",
            [&src],
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

fn count_source_failure(
    c: &Connection,
    hsm: &Hsm,
    source: Option<IpAddr>,
    now: i64,
) -> Result<(), AppError> {
    let src = source_key(hsm, source)?;
    c.execute(
        "INSERT INTO source_failures (source_hash, window_start, failures) VALUES (?1, ?2, 1)
         ON CONFLICT(source_hash) DO UPDATE SET
           failures = CASE WHEN ?2 - window_start >= ?3 THEN 1 ELSE failures + 1 END,
           window_start = CASE WHEN ?2 - window_start >= ?3 THEN ?2 ELSE window_start END",
        params![src, now, FAILURE_WINDOW],
    )?;
    Ok(())
}

fn auth_failure(
    conn: &mut Connection,
    hsm: &Hsm,
    actor: &str,
    format: &str,
    reason: &'static str,
    source: Option<IpAddr>,
    now: i64,
) -> Result<AppError, AppError> {
    count_source_failure(conn, hsm, source, now)?;
    let event = Event::new("auth.failure", Severity::Warning)
        .actor(actor)
        .source(source)
        .detail("format", format)
        .detail("reason", reason);
    audit::record(conn, hsm, &event, now)?;
    Ok(ApiError::unauthorized().into())
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
    if (a.timestamp - now).abs() > REQUEST_SKEW {
        return Err(ApiError::unauthorized_because(
            "request timestamp is outside ±30 s of the server clock",
        ));
    }
    let dob = DobDays::new(req.dob_days)
        .map_err(|_| ApiError::bad_request("dob_days is outside [-36525, 36525]"))?;
    let today = now / 86_400;
    if i64::from(dob.expose()) > today {
        return Err(ApiError::bad_request("dob_days is in the future"));
    }
    let cap = app.config.officers.max_failures_per_source_per_hour;
    let hsm = app.hsm.clone();
    app.db
        .run(move |c| check_source_cap(c, &hsm, source, cap, now))
        .await?;
    let authorised = match a.format.as_str() {
        "client" => {
            if a.challenge_id.is_some() {
                return Err(ApiError::bad_request(
                    "authorizer.challengeId is only for officers",
                ));
            }
            app.limits
                .client(&a.key_id)
                .map_err(|l| ApiError::rate_limited(l.retry_after))?;
            let mac = hex_decode(&a.hmac, "hmac")
                .map_err(|_| ApiError::bad_request("authorizer.hmac must be lowercase hex"))?;
            let canonical =
                client_canonical_string(a.timestamp as u64, dob.expose(), &a.key_id, &a.nonce)
                    .map_err(|_| ApiError::bad_request("invalid authorizer"))?;
            let (hsm, key_id, age_days) = (
                app.hsm.clone(),
                a.key_id.clone(),
                today - i64::from(dob.expose()),
            );
            app.db
                .run(move |c| {
                    client_auth(
                        c,
                        &hsm,
                        &key_id,
                        canonical.as_bytes(),
                        &mac,
                        &nonce,
                        age_days,
                        source,
                        now,
                    )
                })
                .await?
        }
        "yubikey" => {
            let challenge_id = a.challenge_id.clone().ok_or_else(|| {
                ApiError::bad_request("authorizer.challengeId is required for officers")
            })?;
            app.limits
                .officer(&a.key_id)
                .map_err(|l| ApiError::rate_limited(l.retry_after))?;
            let response: [u8; 20] = hex_decode_array(&a.hmac, "hmac").map_err(|_| {
                ApiError::bad_request("authorizer.hmac must be 40 lowercase hex characters")
            })?;
            let ctx = OfficerAttempt {
                officer_id: a.key_id.clone(),
                challenge_id,
                response,
                dob_days: dob.expose(),
                nonce,
                require_intent: app.config.officers.require_intent,
                lockout_failures: app.config.officers.lockout_failures,
                lockout_seconds: app.config.officers.lockout_seconds as i64,
                source,
                now,
            };
            let hsm = app.hsm.clone();
            app.db.run(move |c| officer_auth(c, &hsm, ctx)).await?
        }
        _ => {
            return Err(ApiError::bad_request(
                "authorizer.format must be \"client\" or \"yubikey\"",
            ));
        }
    };

    let keys = app.keys();
    let key = keys
        .attestation
        .first()
        .ok_or_else(|| ApiError::unavailable("no attestation key provisioned"))?
        .label
        .clone();
    let mut attestation_nonce = [0u8; 32];
    rand::rng().fill_bytes(&mut attestation_nonce);
    let fields = AttestationFields::new(
        &dob,
        &app.config.issuer_id,
        now as u64,
        attestation_nonce,
        None,
        None,
    )
    .map_err(|_| ApiError::internal())?;
    attestation_nonce.zeroize();
    let (hsm, db, actor, format) = (
        app.hsm.clone(),
        app.db.clone(),
        authorised.actor,
        authorised.format,
    );
    let attestation = tokio::task::spawn_blocking(move || -> Result<_, AppError> {
        let signature = hsm.ed25519_sign(&key, &fields.digest())?;
        let event = Event::new("attestation.created", Severity::Info)
            .actor(actor)
            .source(source)
            .detail("format", format);
        db.with(|c| audit::record(c, &hsm, &event, now))?;
        Ok(fields.with_signature(signature))
    })
    .await
    .map_err(|_| ApiError::internal())??;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "attestation": attestation.to_base64url(),
            "expires_at": now + ATTESTATION_LIFETIME,
            "issuer_id": app.config.issuer_id,
        })),
    ))
}

struct ClientRow {
    status: String,
    allow_minors: bool,
    generation: i64,
    previous: Option<i64>,
    previous_until: Option<i64>,
}

#[allow(clippy::too_many_arguments)]
fn client_auth(
    c: &mut Connection,
    hsm: &Hsm,
    key_id: &str,
    canonical: &[u8],
    mac: &[u8],
    nonce: &[u8; 32],
    age_days: i64,
    source: Option<IpAddr>,
    now: i64,
) -> Result<Authorised, AppError> {
    let row: Option<ClientRow> = c
        .query_row(
            "SELECT status, allow_under_18, secret_generation, previous_generation, previous_valid_until FROM clients WHERE id = ?1",
            [key_id],
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
        .optional()?;
    let Some(ClientRow {
        status,
        allow_minors,
        generation,
        previous,
        previous_until,
    }) = row
    else {
        return Err(auth_failure(
            c,
            hsm,
            key_id,
            "client",
            "unknown client",
            source,
            now,
        )?);
    };
    if status != "active" {
        return Err(auth_failure(
            c,
            hsm,
            key_id,
            "client",
            "client disabled",
            source,
            now,
        )?);
    }
    let mut generations = vec![generation];
    if let (Some(p), Some(until)) = (previous, previous_until)
        && until >= now
    {
        generations.push(p);
    }
    let mut ok = false;
    for g in generations {
        let label = ObjectLabel::client(key_id, g as u32)
            .map_err(|_| AppError::Internal("client label".into()))?;
        if hsm.verify_hmac_sha256(&label, canonical, mac)? {
            ok = true;
            break;
        }
    }
    if !ok {
        return Err(auth_failure(
            c,
            hsm,
            key_id,
            "client",
            "wrong hmac",
            source,
            now,
        )?);
    }
    if age_days < ADULT_DAYS && !allow_minors {
        let event = Event::new("attestation.refused", Severity::Warning)
            .actor(key_id)
            .source(source)
            .detail("reason", "child dob guard");
        audit::record(c, hsm, &event, now)?;
        return Err(ApiError::bad_request(
            "date of birth is under 18; this client is not enabled for minors",
        )
        .into());
    }
    let tx = c.transaction()?;
    consume_auth_nonce(&tx, nonce, now)?;
    audit::append(
        &tx,
        hsm,
        &Event::new("auth.success", Severity::Info)
            .actor(key_id)
            .source(source)
            .detail("format", "client"),
        now,
    )?;
    tx.commit()?;
    Ok(Authorised {
        actor: key_id.to_owned(),
        format: "client",
    })
}

/// A challenge as consumed from the database.
struct ChallengeRow {
    owner: String,
    challenge: Vec<u8>,
    server_random: Option<Vec<u8>>,
    expires_at: i64,
}

struct OfficerAttempt {
    officer_id: String,
    challenge_id: String,
    response: [u8; 20],
    dob_days: i32,
    nonce: [u8; 32],
    require_intent: bool,
    lockout_failures: u32,
    lockout_seconds: i64,
    source: Option<IpAddr>,
    now: i64,
}

impl Drop for OfficerAttempt {
    fn drop(&mut self) {
        self.dob_days.zeroize();
    }
}

fn source_key(hsm: &Hsm, source: Option<IpAddr>) -> Result<String, AppError> {
    match source {
        Some(ip) => audit::source_hash(hsm, ip),
        None => Ok("-".to_owned()),
    }
}

fn officer_auth(c: &mut Connection, hsm: &Hsm, t: OfficerAttempt) -> Result<Authorised, AppError> {
    let src = source_key(hsm, t.source)?;
    let locked_until: Option<i64> = c
        .query_row(
            "SELECT locked_until FROM officer_failures WHERE officer_id = ?1 AND source_hash = ?2",
            params![t.officer_id, src.as_bytes()],
            |r| r.get(0),
        )
        .optional()?;
    if locked_until.is_some_and(|u| u > t.now) {
        let event = Event::new("auth.locked_out", Severity::Warning)
            .actor(&t.officer_id)
            .source(t.source);
        audit::record(c, hsm, &event, t.now)?;
        return Err(ApiError::unauthorized().into());
    }
    // The challenge is consumed by this attempt whatever its outcome.
    let challenge: Option<ChallengeRow> = c
        .query_row(
            "DELETE FROM challenges WHERE id = ?1 RETURNING officer_id, challenge, server_random, expires_at",
            [&t.challenge_id],
            |r| Ok(ChallengeRow { owner: r.get(0)?, challenge: r.get(1)?, server_random: r.get(2)?, expires_at: r.get(3)? }),
        )
        .optional()?;
    c.execute("DELETE FROM challenges WHERE expires_at < ?1", [t.now])?;
    let reason = match &challenge {
        None => Some("unknown or consumed challenge"),
        Some(ch) if ch.owner != t.officer_id => Some("challenge of another officer"),
        Some(ch) if ch.expires_at < t.now => Some("expired challenge"),
        Some(ch) if ch.server_random.is_none() && t.require_intent => {
            Some("challenge not bound to the request")
        }
        _ => None,
    };
    if let Some(reason) = reason {
        return Err(auth_failure(
            c,
            hsm,
            &t.officer_id,
            "yubikey",
            reason,
            t.source,
            t.now,
        )?);
    }
    let Some(ChallengeRow {
        challenge: stored,
        server_random,
        ..
    }) = challenge
    else {
        return Err(ApiError::unauthorized().into());
    };
    let mut authentic = true;
    if let Some(random) = server_random {
        let random: [u8; 32] = random
            .try_into()
            .map_err(|_| AppError::Storage("challenge server_random".into()))?;
        let expected = bound_challenge(&random, t.dob_days, &t.nonce);
        authentic &= bool::from(expected.ct_eq(&stored[..]));
    }
    let officer: Option<(String, i64)> = c
        .query_row(
            "SELECT status, secret_generation FROM officers WHERE id = ?1",
            [&t.officer_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match officer {
        Some((status, generation)) if status == "active" => {
            let label = ObjectLabel::officer(&t.officer_id, generation as u32)
                .map_err(|_| AppError::Internal("officer label".into()))?;
            authentic &= hsm.verify_hmac_sha1(&label, &stored, &t.response)?;
        }
        _ => authentic = false,
    }
    if !authentic {
        let failures: i64 = c.query_row(
            "INSERT INTO officer_failures (officer_id, source_hash, failures, locked_until) VALUES (?1, ?2, 1, 0)
             ON CONFLICT(officer_id, source_hash) DO UPDATE SET failures = failures + 1 RETURNING failures",
            params![t.officer_id, src.as_bytes()],
            |r| r.get(0),
        )?;
        if failures >= i64::from(t.lockout_failures) {
            c.execute(
                "UPDATE officer_failures SET locked_until = ?3, failures = 0 WHERE officer_id = ?1 AND source_hash = ?2",
                params![t.officer_id, src.as_bytes(), t.now + t.lockout_seconds],
            )?;
            let event = Event::new("auth.lockout", Severity::Critical)
                .actor(&t.officer_id)
                .source(t.source)
                .detail("seconds", t.lockout_seconds);
            audit::record(c, hsm, &event, t.now)?;
        }
        return Err(auth_failure(
            c,
            hsm,
            &t.officer_id,
            "yubikey",
            "wrong response",
            t.source,
            t.now,
        )?);
    }
    let tx = c.transaction()?;
    tx.execute(
        "DELETE FROM officer_failures WHERE officer_id = ?1 AND source_hash = ?2",
        params![t.officer_id, src.as_bytes()],
    )?;
    consume_auth_nonce(&tx, &t.nonce, t.now)?;
    audit::append(
        &tx,
        hsm,
        &Event::new("auth.success", Severity::Info)
            .actor(&t.officer_id)
            .source(t.source)
            .detail("format", "yubikey"),
        t.now,
    )?;
    tx.commit()?;
    Ok(Authorised {
        actor: t.officer_id.clone(),
        format: "yubikey",
    })
}
