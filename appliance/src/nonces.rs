//! The store of consumed attestation nonces: an attestation earns one
//! credential (WIRE.md §4), so its nonce is recorded, durably and atomically
//! with the issuance's audit record, and a second use is a replay.
//!
//! Uses are keyed by the attestation's signed timestamp, then the nonce's
//! hash. Keyed by the hash alone, every use and every expiry landed on a
//! random page of a B-tree holding two hours of traffic, and each such page
//! went to the WAL, then to the database at the next checkpoint. With the
//! timestamp first, the uses of one second share the table's last pages and
//! expired uses leave from its first ones: under load the daemon writes a
//! third less per issuance (28 → 19 KiB) and the checkpoints that stall the
//! writer come less often.
//!
//! The timestamp costs no replay: a replay repeats the signed timestamp (it
//! cannot change it without the attestation key), and every nonce this
//! appliance signs is drawn at random, so no two of its attestations share
//! one. Uses recorded by earlier versions, by hash alone, stay in the old
//! table and are looked up there until housekeeping has retired them all.

use provii_circuits::constants::{ATTESTATION_MAX_AGE_SECONDS, ATTESTATION_NONCE_TTL_SECONDS};
use rusqlite::{Connection, params};

use crate::db::CachedStatements;
use crate::error::AppError;

/// How long a use is kept after the attestation's timestamp: it is consumed
/// at most [`ATTESTATION_MAX_AGE_SECONDS`] after that (later it has expired),
/// and kept [`ATTESTATION_NONCE_TTL_SECONDS`] after its consumption.
pub const CONSUMED_ATTESTATION_RETENTION: i64 =
    (ATTESTATION_MAX_AGE_SECONDS + ATTESTATION_NONCE_TTL_SECONDS) as i64;

/// Records the use of the attestation issued at `issued_at` whose nonce
/// hashes to `nonce_hash`; false if it had been used before. Runs in a
/// writer job, so the answer holds until that job's batch commits.
pub fn consume_attestation_nonce(
    c: &Connection,
    issued_at: i64,
    nonce_hash: &[u8],
    now: i64,
) -> Result<bool, AppError> {
    let used_before_upgrade: bool = c.query_row_cached(
        "SELECT EXISTS (SELECT 1 FROM attestation_nonces WHERE nonce_hash = ?1)",
        [nonce_hash],
        |r| r.get(0),
    )?;
    if used_before_upgrade {
        return Ok(false);
    }
    let fresh = c.execute_cached(
        "INSERT INTO consumed_attestations (issued_at, nonce_hash) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        params![issued_at, nonce_hash],
    )? == 1;
    if fresh {
        crate::db::retire_expired(c, "consumed_attestations", now)?;
    }
    Ok(fresh)
}
