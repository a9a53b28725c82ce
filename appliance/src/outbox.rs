//! The publication outbox (DESIGN.md §2 item 4): every key-state change
//! enqueues, in the same database transaction, the publication it requires;
//! a worker delivers each entry to its sink, in order within each sink, with exponential
//! backoff and jitter, reads back what it wrote and records the
//! confirmation. Nothing is lost across restarts or sink outages.
//!
//! Sinks: `file` (an atomically written JWKS document), `cloudflare_kv`
//! (the edge verifier's registry, WIRE.md §6) and `http` (the JWKS sent to
//! a URL with a bearer token and the publisher key's detached signature).
//! A key is ready for service only once every configured sink has
//! confirmed it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use crate::config::{CloudflareKv, Config, HttpSink};
use crate::error::AppError;
use crate::state::{App, PublishedKey, now};

/// The JWKS document wallets read (WIRE.md §5), from the keys in service.
pub fn jwks(keys: &[PublishedKey]) -> Value {
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| {
            json!({
                "kty": "OKP", "crv": "JUBJUB", "kid": k.kid.as_str(), "use": "sig", "alg": "RedJubjub",
                "x": provii_circuits::encoding::b64url_encode(&k.verifying_key.to_bytes()), "status": k.state,
            })
        })
        .collect();
    json!({"keys": keys})
}

/// Queues the current key set for every configured sink, inside the
/// caller's database job (the key-state change commits with it).
pub fn enqueue(c: &Connection, config: &Config, now: i64) -> Result<(), AppError> {
    let keys = crate::state::load_keys(c)?;
    let document = jwks(&keys.published);
    for sink in configured_sinks(config) {
        // The KV sink carries the registry entries too; the others the JWKS.
        let payload = match &config.publication.cloudflare_kv {
            Some(kv) if sink == "cloudflare_kv" => json!({
                "registry": registry(c, config, kv)?,
                "jwks_key": kv.jwks_key,
                "jwks": document,
            })
            .to_string(),
            _ => document.to_string(),
        };
        c.execute(
            "INSERT INTO outbox (created_at, sink, payload, next_attempt_at) VALUES (?1, ?2, ?3, ?1)",
            params![now, sink, payload],
        )?;
    }
    Ok(())
}

/// The sinks this configuration publishes to.
fn configured_sinks(config: &Config) -> Vec<&'static str> {
    let p = &config.publication;
    [
        (p.file.is_some(), "file"),
        (p.cloudflare_kv.is_some(), "cloudflare_kv"),
        (p.http.is_some(), "http"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect()
}

/// The edge registry: one entry per key ever made, revoked ones included
/// (the verifier knows only `revoked`), keyed `issuer:<issuer_id>:<kid>`.
fn registry(c: &Connection, config: &Config, kv: &CloudflareKv) -> Result<Value, AppError> {
    let mut stmt = c.prepare(
        "SELECT k.kid, k.verifying_key, k.state, k.created_at, r.revoked_at, r.reason
         FROM signing_keys k LEFT JOIN key_revocations r ON r.kid = k.kid ORDER BY k.created_at",
    )?;
    let mut rows = stmt.query([])?;
    let mut entries = serde_json::Map::new();
    while let Some(r) = rows.next()? {
        let kid: String = r.get(0)?;
        let vk: Vec<u8> = r.get(1)?;
        let state: String = r.get(2)?;
        let vk: [u8; 32] = vk
            .try_into()
            .map_err(|_| AppError::Storage("verifying key".into()))?;
        let vk = provii_circuits::VerifyingKey::from_bytes(&vk)
            .map_err(|_| AppError::Storage("verifying key".into()))?;
        let entry = json!({
            "issuer_kid": kid,
            "issuer_id": config.issuer_id,
            "issuer_key_hash": provii_circuits::encoding::b64url_encode(&provii_circuits::params::issuer_key_hash(&vk)),
            "verification_key": provii_circuits::encoding::b64url_encode(&vk.to_bytes()),
            "organization_name": kv.organization_name,
            "organization_id": kv.organization_id,
            "environment": kv.environment,
            "created_at": r.get::<_, i64>(3)?,
            "revoked": state == "revoked",
            "revoked_at": r.get::<_, Option<i64>>(4)?,
            "revoked_reason": r.get::<_, Option<String>>(5)?,
        });
        entries.insert(
            format!("issuer:{}:{kid}", config.issuer_id),
            Value::String(entry.to_string()),
        );
    }
    Ok(Value::Object(entries))
}

fn kv_url(kv: &CloudflareKv, name: &str) -> String {
    let encoded: String = name
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!(
        "{}/accounts/{}/storage/kv/namespaces/{}/values/{encoded}",
        kv.api.trim_end_matches('/'),
        kv.account_id,
        kv.namespace_id
    )
}

/// PUTs one value, then GETs it back: confirmed only if it reads the same.
fn kv_put_confirmed(
    agent: &ureq::Agent,
    kv: &CloudflareKv,
    token: &str,
    name: &str,
    value: &str,
) -> Result<(), String> {
    let url = kv_url(kv, name);
    let bearer = format!("Bearer {token}");
    let mut put = agent
        .put(&url)
        .header("Authorization", &bearer)
        .send(value)
        .map_err(|e| format!("PUT {name}: {e}"))?;
    let status = put.status().as_u16();
    let body = put.body_mut().read_to_string().unwrap_or_default();
    let ok = serde_json::from_str::<Value>(&body)
        .map(|v| v["success"] == true)
        .unwrap_or(false);
    if status != 200 || !ok {
        return Err(format!("PUT {name}: HTTP {status}"));
    }
    let mut get = agent
        .get(&url)
        .header("Authorization", &bearer)
        .call()
        .map_err(|e| format!("GET {name}: {e}"))?;
    let status = get.status().as_u16();
    let back = get.body_mut().read_to_string().unwrap_or_default();
    if status != 200 || back != value {
        return Err(format!(
            "{name} does not read back as written (HTTP {status})"
        ));
    }
    Ok(())
}

/// Entries the edge verifier reads in its one page of listing (WIRE.md §6).
const REGISTRY_LIMIT: usize = 1000;

/// The names listed under `issuer:` (first page, as the verifier reads it).
fn kv_list_issuers(
    agent: &ureq::Agent,
    kv: &CloudflareKv,
    token: &str,
) -> Result<std::collections::BTreeSet<String>, String> {
    let url = format!(
        "{}/accounts/{}/storage/kv/namespaces/{}/keys?prefix=issuer:",
        kv.api.trim_end_matches('/'),
        kv.account_id,
        kv.namespace_id
    );
    let mut list = agent
        .get(&url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .map_err(|e| format!("list issuer: keys: {e}"))?;
    let status = list.status().as_u16();
    let body = list.body_mut().read_to_string().unwrap_or_default();
    let listing: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if status != 200 || listing["success"] != true {
        return Err(format!("list issuer: keys: HTTP {status}"));
    }
    Ok(listing["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k["name"].as_str().map(str::to_owned))
        .collect())
}

/// Delivers a registry publication: every entry, then the JWKS.
fn deliver_cloudflare(kv: &CloudflareKv, payload: &str) -> Result<(), String> {
    let token = kv.token.read().map_err(|e| format!("API token: {e}"))?;
    let payload: Value = serde_json::from_str(payload).map_err(|e| e.to_string())?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(15)))
        .http_status_as_error(false)
        .build()
        .into();
    let registry = payload["registry"].as_object().cloned().unwrap_or_default();
    for (name, value) in &registry {
        kv_put_confirmed(&agent, kv, &token, name, value.as_str().unwrap_or(""))?;
    }
    // The verifier finds entries by listing, not by name: confirm there too.
    let listed = kv_list_issuers(&agent, kv, &token)?;
    if let Some(missing) = registry.keys().find(|name| !listed.contains(*name)) {
        return Err(format!("{missing} is not in the registry listing yet"));
    }
    if listed.len() > REGISTRY_LIMIT {
        return Err(format!(
            "the registry lists {} entries; the edge verifier reads one page of {REGISTRY_LIMIT} and fails closed beyond it",
            listed.len()
        ));
    }
    if let Some(name) = payload["jwks_key"].as_str() {
        kv_put_confirmed(&agent, kv, &token, name, &payload["jwks"].to_string())?;
    }
    Ok(())
}

/// Sends the JWKS to the `http` sink, signed by the publisher key, and
/// reads it back.
fn deliver_http(
    sink: &HttpSink,
    hsm: &provii_hsm::Hsm,
    seq: i64,
    queued_at: i64,
    document: &str,
) -> Result<(), String> {
    let token = sink
        .token
        .read()
        .map_err(|e| format!("bearer token: {e}"))?;
    let signature = crate::publisher::signature_header(hsm, seq, queued_at, document.as_bytes())
        .map_err(|e| format!("signing with the publisher key: {e}"))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(15)))
        .http_status_as_error(false)
        .build()
        .into();
    let bearer = format!("Bearer {}", token.as_str());
    let put = agent
        .put(&sink.url)
        .header("Authorization", &bearer)
        .header("Content-Type", "application/json")
        .header(crate::publisher::SIGNATURE_HEADER, &signature)
        .send(document)
        .map_err(|e| format!("PUT {}: {e}", sink.url))?;
    let status = put.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(format!("PUT {}: HTTP {status}", sink.url));
    }
    let mut get = agent
        .get(&sink.url)
        .header("Authorization", &bearer)
        .call()
        .map_err(|e| format!("GET {}: {e}", sink.url))?;
    let status = get.status().as_u16();
    let back = get.body_mut().read_to_string().unwrap_or_default();
    if status != 200 || back != document {
        return Err(format!(
            "{} does not read back as written (HTTP {status})",
            sink.url
        ));
    }
    Ok(())
}

/// When `kid` became known at every configured sink: for each sink the
/// first confirmed publication that included it (later ones include it too
/// while it is published), and the latest of those. `None` while any
/// configured sink has not confirmed it: the edge must not be skipped
/// because a file was written.
pub fn confirmed_since(
    c: &Connection,
    config: &Config,
    kid: &str,
) -> Result<Option<i64>, AppError> {
    let needle = format!("\"kid\":\"{kid}\"");
    let mut ready = None;
    for sink in configured_sinks(config) {
        let first: Option<i64> = c
            .query_row(
                "SELECT MIN(confirmed_at) FROM outbox WHERE sink = ?1 AND confirmed_at IS NOT NULL AND instr(payload, ?2) > 0",
                params![sink, needle],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()?
            .flatten();
        match first {
            None => return Ok(None),
            Some(t) => ready = Some(ready.map_or(t, |r: i64| r.max(t))),
        }
    }
    Ok(ready)
}

/// Backoff before attempt `n` (1-based): 1 s doubling, capped at 5 min,
/// with full jitter.
fn backoff(attempts: i64) -> i64 {
    let cap = 1i64 << attempts.clamp(0, 8);
    rand::rng().random_range(1..=cap.min(300))
}

/// Writes `document` to `path` atomically and reads it back.
fn deliver_file(path: &Path, document: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, document).map_err(|e| format!("write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("rename to {}: {e}", path.display()))?;
    let back =
        std::fs::read_to_string(path).map_err(|e| format!("read back {}: {e}", path.display()))?;
    if back != document {
        return Err(format!("{} does not hold what was written", path.display()));
    }
    Ok(())
}

/// An unconfirmed outbox entry.
struct Entry {
    id: i64,
    created_at: i64,
    sink: String,
    payload: String,
    attempts: i64,
    next_attempt_at: i64,
}

/// The delivery loop. Each sink has its own queue: its oldest unconfirmed
/// entry goes first, and a failure holds back that sink only (until its
/// backoff has passed), so a failing edge does not stop the file sink.
pub async fn run(app: Arc<App>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = app.outbox_wake.notified() => {}
        }
        let heads: Result<Vec<Entry>, AppError> = app
            .db
            .read(|c| {
                let mut stmt = c.prepare(
                    "SELECT id, sink, payload, attempts, next_attempt_at, created_at FROM outbox
                     WHERE id IN (SELECT MIN(id) FROM outbox WHERE confirmed_at IS NULL GROUP BY sink)",
                )?;
                let rows = stmt.query_map([], |r| {
                    Ok(Entry { id: r.get(0)?, sink: r.get(1)?, payload: r.get(2)?, attempts: r.get(3)?, next_attempt_at: r.get(4)?, created_at: r.get(5)? })
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await;
        for entry in heads.unwrap_or_default() {
            if entry.next_attempt_at <= now() {
                deliver_one(&app, entry).await;
            }
        }
    }
}

/// Delivers one entry to its sink and records the outcome.
async fn deliver_one(app: &Arc<App>, entry: Entry) {
    let Entry {
        id,
        sink,
        payload,
        attempts,
        created_at,
        ..
    } = entry;
    let now = now();
    let outcome = match (sink.as_str(), &app.config.publication.file) {
        ("cloudflare_kv", _) if app.config.publication.cloudflare_kv.is_some() => {
            let kv = app.config.publication.cloudflare_kv.clone();
            tokio::task::spawn_blocking(move || match kv {
                Some(kv) => deliver_cloudflare(&kv, &payload),
                None => Err("no cloudflare_kv sink".into()),
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
        }
        ("http", _) if app.config.publication.http.is_some() => {
            let (sink, hsm) = (app.config.publication.http.clone(), app.hsm.clone());
            tokio::task::spawn_blocking(move || match sink {
                Some(sink) => deliver_http(&sink, &hsm, id, created_at, &payload),
                None => Err("no http sink".into()),
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
        }
        ("file", Some(path)) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || deliver_file(&path, &payload))
                .await
                .unwrap_or_else(|e| Err(e.to_string()))
        }
        _ => Err(format!("sink {sink:?} is not configured any more")),
    };
    let result = app
        .db
        .write(move |c| {
            match &outcome {
                Ok(()) => c.execute("UPDATE outbox SET confirmed_at = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1", params![id, now])?,
                Err(e) => c.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3 WHERE id = ?1",
                    params![id, e, now + backoff(attempts + 1)],
                )?,
            };
            Ok(())
        })
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "outbox bookkeeping failed");
    }
}

/// Lag and health for `status` and `/metrics`.
pub fn stats(c: &Connection, now: i64) -> Result<Value, AppError> {
    let (pending, oldest, attempts, last_error): (i64, Option<i64>, Option<i64>, Option<String>) = c.query_row(
        "SELECT COUNT(*), MIN(created_at), MAX(attempts), (SELECT last_error FROM outbox WHERE confirmed_at IS NULL ORDER BY id LIMIT 1)
         FROM outbox WHERE confirmed_at IS NULL",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    Ok(json!({
        "unconfirmed": pending,
        "lag_seconds": oldest.map(|o| now - o).unwrap_or(0),
        "max_attempts": attempts.unwrap_or(0),
        "last_error": last_error,
    }))
}
