//! The publisher key: an Ed25519 key pair in the HSM, used only to sign
//! what the `http` sink sends, so an edge can tell the appliance's JWKS
//! documents from anyone else's (a bearer token alone proves only that the
//! sender knows the token).
//!
//! Each document goes out with
//! `Provii-Signature: keyid="provii/publisher/1", seq=<n>, t=<unix>, sig="<b64url>"`,
//! where `sig` is pure Ed25519 over [`signed_digest`]: SHA-256 of
//! `provii.publication.v1\n<seq>\n<t>\n` followed by the body bytes. `seq` is
//! the outbox entry's number and grows with every publication, so an edge
//! that remembers the last `seq` it accepted can refuse an older document
//! replayed at it; `t` is when the appliance queued the document.

use provii_hsm::{Hsm, ObjectLabel};
use sha2::{Digest, Sha256};

use crate::audit;
use crate::db::Db;
use crate::error::AppError;

/// Domain separator of the signed digest.
pub const SIGNATURE_CONTEXT: &str = "provii.publication.v1";
/// The HTTP header carrying the detached signature.
pub const SIGNATURE_HEADER: &str = "Provii-Signature";

pub fn key_label() -> ObjectLabel {
    ObjectLabel::publisher("1").unwrap_or_else(|_| unreachable!("a constant, valid label"))
}

/// What the publisher key signs for one document.
pub fn signed_digest(seq: i64, queued_at: i64, body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(format!("{SIGNATURE_CONTEXT}\n{seq}\n{queued_at}\n").as_bytes());
    h.update(body);
    h.finalize().into()
}

/// Signs `body` in the HSM and returns the header value.
pub fn signature_header(
    hsm: &Hsm,
    seq: i64,
    queued_at: i64,
    body: &[u8],
) -> Result<String, AppError> {
    let label = key_label();
    let sig = hsm.ed25519_sign(&label, &signed_digest(seq, queued_at, body))?;
    Ok(format!(
        "keyid=\"{}\", seq={seq}, t={queued_at}, sig=\"{}\"",
        label.as_str(),
        provii_circuits::encoding::b64url_encode(&sig)
    ))
}

/// Makes sure the publisher key pair exists, creating it on first use
/// (appliances initialised before it existed get it at their next start),
/// and records its public half in `meta` for `status`. Returns the public
/// key, base64url.
pub fn provision(hsm: &Hsm, db: &Db, now: i64) -> Result<String, AppError> {
    let label = key_label();
    let (public, created) = if hsm.exists(&label)? {
        (hsm.ed25519_public_key(&label)?, false)
    } else {
        (hsm.create_ed25519_key(&label)?, true)
    };
    let public = provii_circuits::encoding::b64url_encode(&public);
    let (h, p) = (hsm.clone(), public.clone());
    db.write_blocking(move |c| {
        if created {
            let event = audit::Event::new("publisher_key.created", audit::Severity::Critical)
                .detail("label", key_label().as_str())
                .detail("public_key", p.as_str());
            audit::append(c, &h, &event, now)?;
        }
        c.execute(
            "INSERT INTO meta (key, value) VALUES ('publisher_public_key', ?1) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [&p],
        )?;
        Ok(())
    })?;
    Ok(public)
}
