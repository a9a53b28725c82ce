//! `POST /v1/issuance/blind` (WIRE.md §4). Order: issuer id (403), strict
//! Ed25519 and freshness, date-of-birth range, randomness; only then the
//! attestation nonce is consumed (a forged signature cannot burn it). The
//! consumed nonce and the audit record commit durably in one writer job, and
//! the credential leaves only after that commit; if the job fails, the
//! signed credential is discarded and the nonce stays unspent.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use provii_circuits::constants::AGE_SCHEMA;
use provii_circuits::encoding::b64url_decode;
use provii_circuits::{
    Attestation, AttestationError, CredMsgV2, RBits, Schema, SignedCredential, commit,
};
use rusqlite::params;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use super::request::JsonBody;
use super::{Source, admit};
use crate::audit::{self, Event, Severity};
use crate::db::CachedStatements;
use crate::error::{ApiError, AppError};
use crate::state::{App, now};

/// Unknown fields are ignored here (WIRE.md §4: forward compatibility).
#[derive(Deserialize)]
pub struct IssuanceRequest {
    attestation: String,
    r_bits: String,
    schema: Option<String>,
    validity_days: Option<u64>,
}

impl Drop for IssuanceRequest {
    fn drop(&mut self) {
        self.attestation.zeroize();
        self.r_bits.zeroize();
    }
}

fn attestation_nonce_hash(nonce: &[u8; 32]) -> Vec<u8> {
    Sha256::new_with_prefix(b"provii.attestation-nonce|")
        .chain_update(nonce)
        .finalize()
        .to_vec()
}

pub async fn blind(
    State(app): State<Arc<App>>,
    Source(source): Source,
    JsonBody(req): JsonBody<IssuanceRequest>,
) -> Result<Response, ApiError> {
    admit(&app, source)?;
    let now = now();
    let attestation = Attestation::from_base64url(&req.attestation)
        .map_err(|_| ApiError::bad_request("attestation is not a valid base64url attestation"))?;
    let keys = app.keys();
    let attestation_keys: Vec<_> = keys.attestation.iter().map(|k| k.public).collect();
    let dob = attestation
        .verify_with(&app.config.issuer_id, now as u64, |a| {
            if app.own_attestations.recognise(a, &attestation_keys) {
                Ok(())
            } else {
                a.verify_signature(&attestation_keys)
            }
        })
        .map_err(|e| match e {
            AttestationError::WrongIssuer => {
                ApiError::forbidden("attestation was issued by another issuer")
            }
            AttestationError::BadSignature => {
                ApiError::unauthorized_because("attestation signature is invalid")
            }
            AttestationError::Expired => ApiError::unauthorized_because("attestation has expired"),
            AttestationError::FromFuture => {
                ApiError::unauthorized_because("attestation timestamp is in the future")
            }
            AttestationError::DobOutOfRange => {
                ApiError::bad_request("dob_days is outside [-36525, 36525]")
            }
        })?;
    if i64::try_from(attestation.fields().timestamp()).unwrap_or(i64::MAX) <= app.replay_floor {
        return Err(ApiError::unauthorized_because(
            "attestation predates this appliance's restore from backup; ask for a new one",
        ));
    }
    let mut wire = b64url_decode(&req.r_bits, "r_bits")
        .map_err(|_| ApiError::bad_request("r_bits is not canonical base64url"))?;
    let r_bits = RBits::from_wire_bytes(&wire);
    wire.zeroize();
    let r_bits = r_bits.map_err(|e| ApiError::bad_request(format!("r_bits rejected: {e}")))?;
    if req.schema.as_deref().is_some_and(|s| s != AGE_SCHEMA) {
        return Err(ApiError::bad_request("schema must be \"provii.age/0\""));
    }
    let policy = &app.config.issuance;
    let days = req.validity_days.unwrap_or(policy.validity_days);
    if days == 0 || days > policy.max_validity_days {
        return Err(ApiError::bad_request(format!(
            "validity_days must be 1..={}",
            policy.max_validity_days
        )));
    }
    let active = keys
        .active
        .clone()
        .ok_or_else(|| ApiError::unavailable("no active signing key"))?;
    let commitment = commit(&dob, &r_bits).map_err(|_| ApiError::internal())?;
    drop(r_bits);
    drop(dob);
    let iat = now as u64;
    let msg = CredMsgV2::new(
        active.sealed.kid.clone(),
        commitment,
        iat,
        iat + days * 86_400,
        Schema::age(),
    )
    .map_err(|_| ApiError::internal())?;
    let nonce = attestation_nonce_hash(attestation.fields().nonce());
    let issued_at = i64::try_from(attestation.fields().timestamp())
        .map_err(|_| ApiError::bad_request("attestation timestamp is out of range"))?;
    let actor = attestation.fields().client_id().map(str::to_owned);
    drop(attestation);

    // Open the key and sign on a crypto thread (in parallel with other
    // requests); the credential is released only after the nonce and the
    // audit record have committed in a writer job, awaited here so the
    // writer wakes this task directly.
    let app2 = app.clone();
    let (credential, record) = super::in_crypto_lane(&app, move || -> Result<_, AppError> {
        let sig = app2.hsm.sign_credential(&active.kek, &active.sealed, &msg)?;
        let signed = SignedCredential { msg, issuer_vk: active.sealed.verifying_key, sig_rj: sig };
        if signed.verify_own().is_err() {
            return Err(AppError::Internal("self-verification of a fresh credential failed".into()));
        }
        let source = app2.source_hash(source)?;
        let event = Event::new("credential.issued", Severity::Info)
            .source(source.clone())
            .detail("kid", signed.msg.kid().as_str())
            .detail("iat", signed.msg.iat())
            .detail("exp", signed.msg.exp())
            .detail("schema", signed.msg.schema().as_str());
        let event = match actor {
            Some(a) => event.actor(a),
            None => event,
        };
        let a = app2.clone();
        let (kid, exp) = (signed.msg.kid().as_str().to_owned(), signed.msg.exp() as i64);
        let record = move |c: &rusqlite::Connection| {
            if !crate::nonces::consume_attestation_nonce(c, issued_at, &nonce, now)? {
                audit::append(c, &a.hsm, &Event::new("issuance.replay", Severity::Warning).source(source), now)?;
                return Err(ApiError::replay().into());
            }
            // The latest expiry under each key decides when it may retire.
            c.execute_cached(
                "INSERT INTO key_usage (kid, max_exp) VALUES (?1, ?2) ON CONFLICT(kid) DO UPDATE SET max_exp = MAX(max_exp, excluded.max_exp)",
                params![kid, exp],
            )?;
            audit::append(c, &a.hsm, &event, now)
        };
        Ok((signed, record))
    })
    .await??;
    app.db.write(record).await?;

    let body = format!("{{\"credential\":{}}}", credential.to_json());
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}
