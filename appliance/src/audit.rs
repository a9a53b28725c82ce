//! The tamper-evident audit log (DESIGN.md §4). Each record carries an
//! HMAC-SHA256, computed inside the HSM, over its fields and the previous
//! record's MAC. Retention purges old records and keeps the last purged MAC
//! as an anchor, so what remains still verifies.
//!
//! Records never contain a date of birth, r_bits, a commitment or a nonce;
//! source addresses appear only as HSM-keyed HMACs. The event constructors
//! take no such values, so the rule is kept by construction.

use std::net::IpAddr;

use provii_hsm::{Hsm, ObjectLabel};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

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
    /// Length-prefixed fields, then the previous record's MAC.
    fn mac_input(&self, prev: &[u8]) -> Vec<u8> {
        let mut out = b"provii.audit.v1".to_vec();
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

fn last_mac(conn: &Connection) -> Result<(i64, Vec<u8>), AppError> {
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

/// Appends `event` inside the caller's database job, so the record commits
/// (or not) with the state change it describes.
pub fn append(tx: &Connection, hsm: &Hsm, event: &Event, now: i64) -> Result<(), AppError> {
    let source = event.source.as_deref();
    let detail = event.detail.to_string();
    let (prev_seq, prev_mac) = last_mac(tx)?;
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
    let input = record.mac_input(&prev_mac);
    let mac = hsm.hmac_sha256(&audit_key(), &input)?;
    tx.execute_cached(
        "INSERT INTO audit_log (seq, ts, event, severity, actor, source_hash, detail, mac) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![seq, now, event.kind, event.severity.as_str(), event.actor, source, detail, mac.to_vec()],
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

/// Recomputes the chain from the anchor (or the start) to the end.
pub fn verify(conn: &Connection, hsm: &Hsm) -> Result<VerifyReport, AppError> {
    let anchor: Option<(i64, Vec<u8>)> = conn
        .query_row_cached("SELECT seq, mac FROM audit_anchor WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let (mut prev_seq, mut prev_mac) = anchor.unwrap_or((0, vec![0u8; 32]));
    let mut stmt = conn.prepare("SELECT seq, ts, event, severity, actor, source_hash, detail, mac FROM audit_log ORDER BY seq")?;
    let mut rows = stmt.query([])?;
    let mut report = VerifyReport {
        ok: true,
        records: 0,
        first_seq: None,
        last_seq: None,
        broken_at: None,
    };
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        let ts: i64 = r.get(1)?;
        let kind: String = r.get(2)?;
        let severity: String = r.get(3)?;
        let actor: Option<String> = r.get(4)?;
        let source: Option<String> = r.get(5)?;
        let detail: String = r.get(6)?;
        let mac: Vec<u8> = r.get(7)?;
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
        let input = record.mac_input(&prev_mac);
        let expected = hsm.hmac_sha256(&audit_key(), &input)?;
        let mac_ok: bool = subtle::ConstantTimeEq::ct_eq(&expected[..], &mac[..]).into();
        if seq != prev_seq + 1 || !mac_ok {
            report.ok = false;
            report.broken_at = Some(seq);
            break;
        }
        prev_seq = seq;
        prev_mac = mac;
    }
    Ok(report)
}

/// Deletes records past retention (90 days; 365 for critical events), but
/// only a contiguous prefix of the chain, and records the last deleted MAC
/// as the new anchor so the rest verifies.
pub fn purge(tx: &Connection, now: i64) -> Result<u64, AppError> {
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
    let upto: Option<(i64, Vec<u8>)> = match keep_from {
        Some(k) => tx
            .query_row_cached(
                "SELECT seq, mac FROM audit_log WHERE seq < ?1 ORDER BY seq DESC LIMIT 1",
                [k],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?,
        None => tx
            .query_row_cached(
                "SELECT seq, mac FROM audit_log ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?,
    };
    let Some((seq, mac)) = upto else { return Ok(0) };
    let n = tx.execute_cached("DELETE FROM audit_log WHERE seq <= ?1", [seq])?;
    tx.execute_cached(
        "INSERT INTO audit_anchor (id, seq, mac, purged_at) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, mac = excluded.mac, purged_at = excluded.purged_at",
        params![seq, mac, now],
    )?;
    Ok(n as u64)
}

/// Every remaining record as JSON lines.
pub fn export(conn: &Connection, out: &mut impl std::io::Write) -> Result<u64, AppError> {
    let mut stmt = conn.prepare("SELECT seq, ts, event, severity, actor, source_hash, detail, mac FROM audit_log ORDER BY seq")?;
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
        });
        writeln!(out, "{line}").map_err(|e| AppError::Internal(format!("export write: {e}")))?;
        n += 1;
    }
    Ok(n)
}
