//! `POST /v1/challenge` (WIRE.md §2), with the intent-bound form: the
//! challenge is derived from the server's random bytes and the date of birth
//! and nonce the officer is about to attest, so the YubiKey touch approves
//! exactly that one request.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use provii_circuits::DobDays;
use provii_circuits::client_auth::validate_key_id;
use provii_circuits::encoding::{hex_decode_array, hex_encode};
use rand::Rng;
use rusqlite::params;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::request::JsonBody;
use super::{Source, admit};
use crate::db::CachedStatements;
use crate::error::ApiError;
use crate::state::{App, now};

pub const CHALLENGE_TTL: i64 = 120;
const INTENT_DST: &[u8] = b"provii.officer.intent.v1";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    officer_id: String,
    intent: Option<Intent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Intent {
    dob_days: i32,
    nonce: String,
}

/// `SHA-256("provii.officer.intent.v1" || server_random || LE32(dob_days) || nonce)`.
pub fn bound_challenge(server_random: &[u8; 32], dob_days: i32, nonce: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(INTENT_DST);
    h.update(server_random);
    h.update(dob_days.to_le_bytes());
    h.update(nonce);
    h.finalize().into()
}

pub async fn create(
    State(app): State<Arc<App>>,
    Source(source): Source,
    JsonBody(req): JsonBody<ChallengeRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    admit(&app, source)?;
    validate_key_id(&req.officer_id)
        .map_err(|_| ApiError::bad_request("officer_id is not a valid id"))?;
    app.limits
        .officer(&req.officer_id)
        .map_err(|l| super::limited(&app, l, source, Some(&req.officer_id)))?;
    if app.config.officers.require_intent && req.intent.is_none() {
        return Err(ApiError::bad_request(
            "this appliance requires an intent-bound challenge (intent.dob_days, intent.nonce)",
        ));
    }
    let intent = match &req.intent {
        None => None,
        Some(i) => {
            let dob = DobDays::new(i.dob_days)
                .map_err(|_| ApiError::bad_request("dob_days is outside [-36525, 36525]"))?;
            if i64::from(dob.expose()) > now() / 86_400 {
                return Err(ApiError::bad_request("dob_days is in the future"));
            }
            let nonce: [u8; 32] = hex_decode_array(&i.nonce, "nonce").map_err(|_| {
                ApiError::bad_request("intent.nonce must be 64 lowercase hex characters")
            })?;
            Some((dob, nonce))
        }
    };
    // A YubiKey in variable-length mode misreads challenges whose last two
    // bytes are equal (WIRE.md §2): draw again.
    let (server_random, challenge) = loop {
        let mut server_random = [0u8; 32];
        rand::rng().fill_bytes(&mut server_random);
        let challenge = match &intent {
            Some((dob, nonce)) => bound_challenge(&server_random, dob.expose(), nonce),
            None => server_random,
        };
        if challenge[30] != challenge[31] {
            break (server_random, challenge);
        }
    };
    let id = uuid::Uuid::new_v4().to_string();
    let expires_at = now() + CHALLENGE_TTL;
    let bound = intent.is_some().then_some(server_random.to_vec());
    // Unknown and disabled officers get a challenge too: whether an officer
    // exists is never revealed. Their attestation fails like a wrong response.
    let (row_id, officer_id) = (id.clone(), req.officer_id.clone());
    app.db
        .write(move |c| {
            c.execute_cached(
                "INSERT INTO challenges (id, officer_id, challenge, server_random, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![row_id, officer_id, challenge.to_vec(), bound, expires_at],
            )?;
            Ok(())
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            serde_json::json!({"challenge_id": id, "challenge": hex_encode(&challenge), "expires_at": expires_at}),
        ),
    ))
}
