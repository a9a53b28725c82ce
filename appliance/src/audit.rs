//! The tamper-evident audit log (DESIGN.md §4). Each record carries a
//! SHA-256 chain value over its fields and the previous record's value, and
//! every commit that adds records also stores a *seal*: an HMAC-SHA256,
//! computed inside the HSM, over the chain value of its last record. Changing
//! any committed record changes every chain value after it, so the next seal
//! no longer matches, and only the HSM can make a new one.
//!
//! This departs from DESIGN.md §4 (an HSM HMAC on every record): under load
//! one commit carries tens of records, and one HSM call per commit instead of
//! one per record was the daemon's largest saving after the curve arithmetic
//! (BENCHMARKS.md). Records written before the change (seq below the
//! `audit_v2_from` meta value) keep their per-record HSM MACs and still verify.
//!
//! Retention purges old records and keeps the last purged chain value as an
//! anchor, so what remains still verifies.
//!
//! Records never contain a date of birth, r_bits, a commitment or a nonce;
//! source addresses appear only as HSM-keyed HMACs. The event constructors
//! take no such values, so the rule is kept by construction.

use std::net::IpAddr;

use std::cell::RefCell;

use provii_hsm::{Hsm, ObjectLabel};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::db::CachedStatements;
use crate::error::AppError;

const AUDIT_KEY_GENERATION: u32 = 1;
const RETENTION_DAYS: i64 = 90;
const CRITICAL_RETENTION_DAYS: i64 = 365;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    /// Kept 365 days rather than 90.
    Critical,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One thing that happened.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: &'static str,
    pub severity: Severity,
    pub actor: Option<String>,
    /// The HSM-keyed HMAC of the source address ([`source_hash`]).
    pub source: Option<String>,
    /// Non-personal details only (ids, kids, validity, reasons).
    pub detail: Value,
}

impl Event {
    pub fn new(kind: &'static str, severity: Severity) -> Self {
        Self {
            kind,
            severity,
            actor: None,
            source: None,
            detail: Value::Object(Default::default()),
        }
    }
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }
    pub fn source(mut self, source_hash: Option<String>) -> Self {
        self.source = source_hash;
        self
    }
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        if let Value::Object(map) = &mut self.detail {
            map.insert(key.to_owned(), value.into());
        }
        self
    }
}

pub fn audit_key() -> ObjectLabel {
    ObjectLabel::audit_mac(AUDIT_KEY_GENERATION)
}

pub fn address_key() -> ObjectLabel {
    ObjectLabel::address_hash(1)
}

/// The HSM-keyed HMAC of a source address, hex, truncated to 16 bytes.
pub fn source_hash(hsm: &Hsm, addr: IpAddr) -> Result<String, AppError> {
    let mac = hsm.hmac_sha256(&address_key(), addr.to_string().as_bytes())?;
    Ok(provii_circuits::encoding::hex_encode(&mac[..16]))
}

/// The fields of one record that its MAC covers.
struct Record<'a> {
    seq: i64,
    ts: i64,
    kind: &'a str,
    severity: &'a str,
    actor: Option<&'a str>,
    source: Option<&'a str>,
    detail: &'a str,
}

impl Record<'_> {
    /// Length-prefixed fields, then the previous record's chain value.
    fn mac_input(&self, prev: &[u8]) -> Vec<u8> {
        self.input(b"provii.audit.v1", prev)
    }

    fn chain_value(&self, prev: &[u8]) -> [u8; 32] {
        Sha256::digest(self.input(b"provii.audit.v2", prev)).into()
    }

    fn input(&self, domain: &[u8], prev: &[u8]) -> Vec<u8> {
        let mut out = domain.to_vec();
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.ts.to_be_bytes());
        for field in [
            Some(self.kind),
            Some(self.severity),
            self.actor,
            self.source,
            Some(self.detail),
        ] {
            match field {
                Some(f) => {
                    out.push(1);
                    out.extend_from_slice(&(f.len() as u32).to_be_bytes());
                    out.extend_from_slice(f.as_bytes());
                }
                None => out.push(0),
            }
        }
        out.extend_from_slice(prev);
        out
    }
}

/// The newest record's sequence number and chain value (or MAC), from the
/// log or, after a purge of everything, the anchor.
fn last_value(conn: &Connection) -> Result<(i64, Vec<u8>), AppError> {
    let last: Option<(i64, Vec<u8>)> = conn
        .query_row_cached(
            "SELECT seq, mac FROM audit_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some(l) = last {
        return Ok(l);
    }
    let anchor: Option<(i64, Vec<u8>)> = conn
        .query_row_cached("SELECT seq, mac FROM audit_anchor WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok(anchor.unwrap_or((0, vec![0u8; 32])))
}

thread_local! {
    /// The HSM to seal this writer thread's batch with, set by [`append`].
    static PENDING_SEAL: RefCell<Option<Hsm>> = const { RefCell::new(None) };
}

fn seal_input(seq: i64, chain: &[u8]) -> Vec<u8> {
    let mut out = b"provii.audit.seal.v2".to_vec();
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(chain);
    out
}

/// Appends `event` inside the caller's database job, so the record commits
/// (or not) with the state change it describes. The database writer seals
/// the batch ([`seal_pending`]) before it commits.
pub fn append(tx: &Connection, hsm: &Hsm, event: &Event, now: i64) -> Result<(), AppError> {
    let source = event.source.as_deref();
    let detail = event.detail.to_string();
    let (prev_seq, prev_value) = last_value(tx)?;
    let seq = prev_seq + 1;
    let record = Record {
        seq,
        ts: now,
        kind: event.kind,
        severity: event.severity.as_str(),
        actor: event.actor.as_deref(),
        source,
        detail: &detail,
    };
    let chain = record.chain_value(&prev_value);
    tx.execute_cached(
        "INSERT INTO audit_log (seq, ts, event, severity, actor, source_hash, detail, mac) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![seq, now, event.kind, event.severity.as_str(), event.actor, source, detail, chain.to_vec()],
    )?;
    PENDING_SEAL.with(|p| *p.borrow_mut() = Some(hsm.clone()));
    Ok(())
}

/// Seals the records this thread appended since its last seal: one HSM
/// HMAC over the newest record's chain value, stored with the records.
/// The database writer calls it inside every batch's transaction, before
/// `COMMIT`; if it fails the batch is rolled back, so nothing commits
/// unsealed (fail closed).
pub(crate) fn seal_pending(tx: &Connection) -> Result<(), AppError> {
    let Some(hsm) = PENDING_SEAL.with(|p| p.borrow_mut().take()) else {
        return Ok(());
    };
    let last: Option<(i64, Vec<u8>)> = tx
        .query_row_cached(
            "SELECT seq, mac FROM audit_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((seq, chain)) = last else {
        return Ok(());
    };
    let sealed: Option<i64> = tx
        .query_row_cached("SELECT MAX(seq) FROM audit_seals", [], |r| r.get(0))
        .optional()?
        .flatten();
    // Records appended by this process always lie past `audit_v2_from`:
    // the database opens (and migrates) before anything is appended.
    if sealed.is_some_and(|s| s >= seq) {
        return Ok(());
    }
    let mac = hsm.hmac_sha256(&audit_key(), &seal_input(seq, &chain))?;
    tx.execute_cached(
        "INSERT INTO audit_seals (seq, mac) VALUES (?1, ?2)",
        params![seq, mac.to_vec()],
    )?;
    Ok(())
}

/// The first record written with chain values and seals; records before
/// it carry per-record HSM MACs. Absent in a database from before the change
/// (so every record there is of the older kind) until [`migrate`] runs.
fn v2_from(conn: &Connection) -> Result<i64, AppError> {
    Ok(crate::db::meta_get(conn, "audit_v2_from")?
        .and_then(|v| v.parse().ok())
        .unwrap_or(i64::MAX))
}

/// Records where chain values and seals begin: after the last record a
/// database already holds (0 for a new one). Runs when the database opens.
pub(crate) fn migrate(conn: &Connection) -> Result<(), AppError> {
    conn.execute(
        "INSERT INTO meta (key, value)
         SELECT 'audit_v2_from', CAST(COALESCE((SELECT MAX(seq) FROM audit_log), (SELECT seq FROM audit_anchor WHERE id = 1), 0) + 1 AS TEXT)
         ON CONFLICT(key) DO NOTHING",
        [],
    )?;
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub records: u64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    /// The first record whose MAC or sequence does not match.
    pub broken_at: Option<i64>,
}

/// Recomputes the chain from the anchor (or the start) to the end and
/// checks every seal in the HSM. The newest record must be sealed: records
/// after the last seal were not written by the appliance.
pub fn verify(conn: &Connection, hsm: &Hsm) -> Result<VerifyReport, AppError> {
    let anchor: Option<(i64, Vec<u8>)> = conn
        .query_row_cached("SELECT seq, mac FROM audit_anchor WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let (mut prev_seq, mut prev_value) = anchor.unwrap_or((0, vec![0u8; 32]));
    let v2_from = v2_from(conn)?;
    let seals: std::collections::HashMap<i64, Vec<u8>> = conn
        .prepare("SELECT seq, mac FROM audit_seals WHERE seq > ?1")?
        .query_map([prev_seq], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare("SELECT seq, ts, event, severity, actor, source_hash, detail, mac FROM audit_log ORDER BY seq")?;
    let mut rows = stmt.query([])?;
    let mut report = VerifyReport {
        ok: true,
        records: 0,
        first_seq: None,
        last_seq: None,
        broken_at: None,
    };
    // The first record no seal or MAC vouches for yet.
    let mut unsealed_from: Option<i64> = None;
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        let ts: i64 = r.get(1)?;
        let kind: String = r.get(2)?;
        let severity: String = r.get(3)?;
        let actor: Option<String> = r.get(4)?;
        let source: Option<String> = r.get(5)?;
        let detail: String = r.get(6)?;
        let stored: Vec<u8> = r.get(7)?;
        report.records += 1;
        report.first_seq.get_or_insert(seq);
        report.last_seq = Some(seq);
        let record = Record {
            seq,
            ts,
            kind: &kind,
            severity: &severity,
            actor: actor.as_deref(),
            source: source.as_deref(),
            detail: &detail,
        };
        let authentic = if seq < v2_from {
            let expected = hsm.hmac_sha256(&audit_key(), &record.mac_input(&prev_value))?;
            unsealed_from = None;
            bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], &stored[..]))
        } else {
            let chained = record.chain_value(&prev_value)[..] == stored[..];
            unsealed_from.get_or_insert(seq);
            let sealed = match seals.get(&seq) {
                Some(seal) => {
                    let expected = hsm.hmac_sha256(&audit_key(), &seal_input(seq, &stored))?;
                    unsealed_from = None;
                    bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], &seal[..]))
                }
                None => true,
            };
            chained && sealed
        };
        if seq != prev_seq + 1 || !authentic {
            report.ok = false;
            report.broken_at = Some(seq);
            return Ok(report);
        }
        prev_seq = seq;
        prev_value = stored;
    }
    if let Some(seq) = unsealed_from {
        report.ok = false;
        report.broken_at = Some(seq);
    }
    Ok(report)
}

/// Deletes records past retention (90 days; 365 for critical events), but
/// only a contiguous prefix of the chain and at most `limit` records, and
/// records the last deleted chain value as the new anchor so the rest
/// verifies. Call again while it returns `limit`.
pub fn purge(tx: &Connection, now: i64, limit: u64) -> Result<u64, AppError> {
    let normal_cutoff = now - RETENTION_DAYS * 86_400;
    let critical_cutoff = now - CRITICAL_RETENTION_DAYS * 86_400;
    // The first record that must stay bounds the purge.
    let keep_from: Option<i64> = tx
        .query_row_cached(
            "SELECT MIN(seq) FROM audit_log WHERE (severity = 'critical' AND ts >= ?1) OR (severity != 'critical' AND ts >= ?2)",
            params![critical_cutoff, normal_cutoff],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let first: Option<i64> = tx
        .query_row_cached("SELECT MIN(seq) FROM audit_log", [], |r| r.get(0))
        .optional()?
        .flatten();
    let Some(first) = first else { return Ok(0) };
    let last_allowed = first.saturating_add(i64::try_from(limit).unwrap_or(i64::MAX) - 1);
    let bound = keep_from.map_or(last_allowed, |k| last_allowed.min(k - 1));
    let upto: Option<(i64, Vec<u8>)> = tx
        .query_row_cached(
            "SELECT seq, mac FROM audit_log WHERE seq <= ?1 ORDER BY seq DESC LIMIT 1",
            [bound],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((seq, mac)) = upto else { return Ok(0) };
    let n = tx.execute_cached("DELETE FROM audit_log WHERE seq <= ?1", [seq])?;
    tx.execute_cached("DELETE FROM audit_seals WHERE seq <= ?1", [seq])?;
    tx.execute_cached(
        "INSERT INTO audit_anchor (id, seq, mac, purged_at) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, mac = excluded.mac, purged_at = excluded.purged_at",
        params![seq, mac, now],
    )?;
    Ok(n as u64)
}

/// Every remaining record as JSON lines.
pub fn export(conn: &Connection, out: &mut impl std::io::Write) -> Result<u64, AppError> {
    let mut stmt = conn.prepare(
        "SELECT l.seq, l.ts, l.event, l.severity, l.actor, l.source_hash, l.detail, l.mac, s.mac
         FROM audit_log l LEFT JOIN audit_seals s ON s.seq = l.seq ORDER BY l.seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut n = 0;
    while let Some(r) = rows.next()? {
        let detail: String = r.get(6)?;
        let mac: Vec<u8> = r.get(7)?;
        let line = serde_json::json!({
            "seq": r.get::<_, i64>(0)?,
            "ts": r.get::<_, i64>(1)?,
            "event": r.get::<_, String>(2)?,
            "severity": r.get::<_, String>(3)?,
            "actor": r.get::<_, Option<String>>(4)?,
            "source_hash": r.get::<_, Option<String>>(5)?,
            "detail": serde_json::from_str::<Value>(&detail).unwrap_or(Value::String(detail)),
            "mac": provii_circuits::encoding::hex_encode(&mac),
            "seal": r.get::<_, Option<Vec<u8>>>(8)?.map(|s| provii_circuits::encoding::hex_encode(&s)),
        });
        writeln!(out, "{line}").map_err(|e| AppError::Internal(format!("export write: {e}")))?;
        n += 1;
    }
    Ok(n)
}
