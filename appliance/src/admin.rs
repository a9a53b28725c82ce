//! The admin plane on a local Unix socket (mode 0660): one JSON request per
//! line, one JSON answer per line.
//!
//! Every call is authenticated with the caller's YubiKey: the CLI first asks
//! for a challenge bound to its exact request (`auth.challenge`), the
//! YubiKey answers it, and the request carries the answer. The daemon
//! consumes the challenge (single use, 120 s), recomputes the binding from
//! the request it received, checks the HMAC inside the HSM and then the
//! caller's role. A touch therefore approves exactly one request. Refusals
//! are audited and change nothing.

use std::io::{BufRead, BufReader, Write};
use std::ops::RangeInclusive;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use provii_circuits::client_auth::validate_key_id;
use provii_circuits::encoding::{hex_decode_array, hex_encode};
use provii_hsm::ObjectLabel;
use rand::Rng;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::audit::{self, Event, Severity};
use crate::enrol;
use crate::error::{ApiError, AppError};
use crate::state::{App, now};

const MAX_REQUEST: usize = 64 * 1024;
/// Calls served at once. More are told the socket is busy, so that local
/// callers cannot use up the descriptors kept for them
/// ([`crate::fd_limit::RESERVED`]) and starve the HSM and the database.
pub const MAX_CONNECTIONS: usize = 16;
/// How long a caller has to send its request line.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// The longest a rotated client secret's predecessor keeps working.
const MAX_SECRET_OVERLAP: i64 = 30 * 86_400;
const MAX_TAIL_LINES: i64 = 1_000_000;
const CHALLENGE_TTL: i64 = 120;
const MFA_DST: &[u8] = b"provii.admin.mfa.v1";

/// Roles, least to most powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Officer,
    Viewer,
    Admin,
    SuperAdmin,
}

impl Role {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "officer" => Some(Role::Officer),
            "viewer" => Some(Role::Viewer),
            "admin" => Some(Role::Admin),
            "super_admin" => Some(Role::SuperAdmin),
            _ => None,
        }
    }
}

/// The role a command needs. Viewers read; admins manage officers and
/// clients; super_admins manage admins and keys. Officers have no admin
/// access at all.
pub fn required_role(cmd: &str) -> Option<Role> {
    Some(match cmd {
        "status" | "officers.list" | "clients.list" | "admins.list" | "audit.verify"
        | "audit.export" | "audit.tail" | "hsm.status" | "hsm.inventory" | "keys.list" => {
            Role::Viewer
        }
        "officers.add"
        | "officers.disable"
        | "officers.enable"
        | "officers.rotate-secret"
        | "officers.unlock"
        | "clients.add"
        | "clients.disable"
        | "clients.enable"
        | "clients.rotate-secret" => Role::Admin,
        "admins.add"
        | "admins.disable"
        | "keys.create"
        | "keys.activate"
        | "keys.revoke"
        | "keys.rotate-attestation" => Role::SuperAdmin,
        _ => return None,
    })
}

pub async fn serve(app: Arc<App>, path: &Path) -> Result<(), AppError> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)
        .map_err(|e| AppError::Internal(format!("bind {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| AppError::Internal(format!("chmod {}: {e}", path.display())))?;
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, typically: wait rather than spin.
                tracing::warn!(error = %e, "admin socket: accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let slot = slots.clone().try_acquire_owned().ok();
        tokio::spawn(answer_connection(app.clone(), stream, slot));
    }
}

/// Reads one request line, answers it with one line and closes. Without a
/// slot the caller is told the socket is busy, at once.
async fn answer_connection(app: Arc<App>, stream: UnixStream, slot: Option<OwnedSemaphorePermit>) {
    let (read, mut write) = stream.into_split();
    let answer = match slot {
        None => refusal(format!(
            "the admin socket is busy ({MAX_CONNECTIONS} calls in progress); try again"
        )),
        Some(_held) => {
            let mut line = String::new();
            let mut reader = tokio::io::BufReader::new(read).take(MAX_REQUEST as u64);
            match tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line)).await {
                Err(_) => refusal(format!(
                    "no request line within {} s",
                    READ_TIMEOUT.as_secs()
                )),
                Ok(Err(e)) => refusal(format!("read: {e}")),
                Ok(Ok(_)) => handle(app, &line).await,
            }
        }
    };
    let _ = write.write_all(format!("{answer}\n").as_bytes()).await;
}

fn refusal(error: impl Into<String>) -> Value {
    json!({"ok": false, "error": error.into()})
}

fn str_arg<'a>(req: &'a Value, key: &str) -> Result<&'a str, AppError> {
    req.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request(format!("missing string argument {key:?}")).into())
}

/// An optional flag: absent or null is `default`; any other type is
/// refused, not read as the default.
fn opt_bool(req: &Value, key: &str, default: bool) -> Result<bool, AppError> {
    match req.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| ApiError::bad_request(format!("{key} must be true or false")).into()),
    }
}

/// An optional integer in `range`: absent or null is `default`; anything
/// else outside the range is refused rather than clamped.
fn opt_int(
    req: &Value,
    key: &str,
    default: i64,
    range: RangeInclusive<i64>,
) -> Result<i64, AppError> {
    match req.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_i64().filter(|n| range.contains(n)).ok_or_else(|| {
            ApiError::bad_request(format!(
                "{key} must be an integer from {} to {}",
                range.start(),
                range.end()
            ))
            .into()
        }),
    }
}

/// An optional string: absent or null is `None`.
fn opt_str<'a>(req: &'a Value, key: &str) -> Result<Option<&'a str>, AppError> {
    match req.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_str()
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("{key} must be a string")).into()),
    }
}

async fn handle(app: Arc<App>, line: &str) -> Value {
    let req: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(_) => return refusal("malformed request"),
    };
    let result = tokio::task::spawn_blocking(move || route(&app, req)).await;
    match result {
        Ok(Ok(v)) => json!({"ok": true, "result": v}),
        Ok(Err(AppError::Api(e))) => refusal(e.message),
        Ok(Err(e)) => refusal(e.to_string()),
        Err(e) => refusal(format!("task failed: {e}")),
    }
}

/// SHA-256 of the request as the daemon received it, without its `auth`.
fn request_digest(request: &Value) -> [u8; 32] {
    let mut bare = request.clone();
    if let Some(o) = bare.as_object_mut() {
        o.remove("auth");
    }
    Sha256::digest(bare.to_string().as_bytes()).into()
}

fn bound_challenge(server_random: &[u8; 32], digest: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update(MFA_DST)
        .chain_update(server_random)
        .chain_update(digest)
        .finalize()
        .into()
}

fn route(app: &Arc<App>, req: Value) -> Result<Value, AppError> {
    if str_arg(&req, "cmd")? == "auth.challenge" {
        return issue_challenge(app, &req);
    }
    let caller = authenticate(app, &req)?;
    dispatch(app, &req, &caller)
}

/// `{"cmd": "auth.challenge", "officer": ID, "request": {…}}`: a challenge
/// bound to that request. Issued for any id (existence is not revealed).
fn issue_challenge(app: &Arc<App>, req: &Value) -> Result<Value, AppError> {
    let officer = str_arg(req, "officer")?.to_owned();
    validate_key_id(&officer).map_err(|_| {
        ApiError::bad_request("officer must be 1-128 characters of A-Z a-z 0-9 - _ : . / @")
    })?;
    let request = req
        .get("request")
        .ok_or_else(|| ApiError::bad_request("missing request"))?;
    let digest = request_digest(request);
    let (server_random, challenge) = loop {
        let mut random = [0u8; 32];
        rand::rng().fill_bytes(&mut random);
        let c = bound_challenge(&random, &digest);
        // As for officers at the counter: no equal final bytes (WIRE.md §2).
        if c[30] != c[31] {
            break (random, c);
        }
    };
    let id = format!("admin:{}", uuid::Uuid::new_v4());
    let (row_id, now) = (id.clone(), now());
    app.db.write_blocking(move |c| {
        c.execute(
            "INSERT INTO challenges (id, officer_id, challenge, server_random, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![row_id, officer, challenge.to_vec(), server_random.to_vec(), now + CHALLENGE_TTL],
        )?;
        Ok(())
    })?;
    Ok(
        json!({"challenge_id": id, "challenge": hex_encode(&challenge), "expires_at": now + CHALLENGE_TTL}),
    )
}

/// An admin challenge as consumed from the database.
struct AdminChallenge {
    owner: String,
    stored: Vec<u8>,
    random: Option<Vec<u8>>,
    expires_at: i64,
}

/// Who is calling, proven by their YubiKey, with their role.
pub struct Caller {
    pub id: String,
    pub role: Role,
}

fn refuse(app: &Arc<App>, actor: &str, cmd: &str, reason: &'static str) -> AppError {
    let (a, actor, cmd) = (app.clone(), actor.to_owned(), cmd.to_owned());
    let recorded = app.db.write_blocking(move |c| {
        let event = Event::new("admin.refused", Severity::Warning)
            .actor(actor)
            .detail("command", cmd)
            .detail("reason", reason);
        audit::append(c, &a.hsm, &event, now())
    });
    match recorded {
        Ok(()) => ApiError::unauthorized_because(reason).into(),
        Err(e) => e,
    }
}

fn authenticate(app: &Arc<App>, req: &Value) -> Result<Caller, AppError> {
    let cmd = str_arg(req, "cmd")?;
    let auth = req.get("auth").filter(|a| a.is_object());
    let claimed = auth
        .and_then(|a| a["officer"].as_str())
        .unwrap_or("-")
        .to_owned();
    let Some(auth) = auth else {
        return Err(refuse(
            app,
            &claimed,
            cmd,
            "missing MFA: every admin call needs the caller's YubiKey response",
        ));
    };
    let (Some(challenge_id), Some(response)) =
        (auth["challenge_id"].as_str(), auth["response"].as_str())
    else {
        return Err(refuse(app, &claimed, cmd, "malformed MFA"));
    };
    let Ok(response) = hex_decode_array::<20>(response, "response") else {
        return Err(refuse(app, &claimed, cmd, "malformed MFA"));
    };
    let digest = request_digest(req);
    let (challenge_id, officer, now) = (challenge_id.to_owned(), claimed.clone(), now());
    // Consume the challenge whatever happens next: single use.
    let row: Option<AdminChallenge> = app.db.write_blocking(move |c: &Connection| {
        Ok(c.query_row(
            "DELETE FROM challenges WHERE id = ?1 AND id LIKE 'admin:%' RETURNING officer_id, challenge, server_random, expires_at",
            [&challenge_id],
            |r| Ok(AdminChallenge { owner: r.get(0)?, stored: r.get(1)?, random: r.get(2)?, expires_at: r.get(3)? }),
        )
        .optional()?)
    })?;
    let Some(AdminChallenge {
        owner,
        stored,
        random: Some(random),
        expires_at,
    }) = row
    else {
        return Err(refuse(
            app,
            &claimed,
            cmd,
            "unknown or already used MFA challenge",
        ));
    };
    if owner != officer || expires_at < now {
        return Err(refuse(
            app,
            &claimed,
            cmd,
            "MFA challenge expired or issued to someone else",
        ));
    }
    let random: [u8; 32] = random
        .try_into()
        .map_err(|_| AppError::Storage("challenge".into()))?;
    if !bool::from(bound_challenge(&random, &digest).ct_eq(&stored[..])) {
        return Err(refuse(
            app,
            &claimed,
            cmd,
            "the MFA challenge was issued for a different request",
        ));
    }
    let who: Option<(String, String, i64)> = app.db.read_blocking(|c| {
        Ok(c.query_row(
            "SELECT role, status, secret_generation FROM officers WHERE id = ?1",
            [&officer],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?)
    })?;
    let Some((role, status, generation)) = who else {
        return Err(refuse(app, &claimed, cmd, "wrong MFA response"));
    };
    let label = ObjectLabel::officer(&officer, generation as u32)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    if status != "active" || !app.hsm.verify_hmac_sha1(&label, &stored, &response)? {
        return Err(refuse(app, &claimed, cmd, "wrong MFA response"));
    }
    let role = Role::parse(&role).ok_or_else(|| AppError::Storage("officer role".into()))?;
    let Some(needed) = required_role(cmd) else {
        return Err(ApiError::bad_request(format!("unknown command {cmd:?}")).into());
    };
    if role < needed || role == Role::Officer {
        return Err(refuse(
            app,
            &claimed,
            cmd,
            "your role does not allow this command",
        ));
    }
    Ok(Caller { id: officer, role })
}

fn dispatch(app: &Arc<App>, req: &Value, caller: &Caller) -> Result<Value, AppError> {
    let now = now();
    let cmd = str_arg(req, "cmd")?.to_owned();
    let arg = |key: &str| str_arg(req, key).map(str::to_owned);
    let a = app.clone();
    let actor = caller.id.clone();
    match cmd.as_str() {
        "officers.add" | "admins.add" => {
            let id = arg("id")?;
            let role = if cmd == "officers.add" {
                "officer".to_owned()
            } else {
                let r = opt_str(req, "role")?.unwrap_or("viewer");
                if !matches!(r, "viewer" | "admin" | "super_admin") {
                    return Err(ApiError::bad_request("admins have the role viewer, admin or super_admin").into());
                }
                r.to_owned()
            };
            let (i, r) = (id.clone(), role.clone());
            let secret = app.db.write_blocking(move |c| enrol::add_officer(c, &a.hsm, &i, &r, &actor, now))?;
            let hex = hex_encode(&secret[..]);
            Ok(json!({"id": id, "role": role, "secret": hex, "program_yubikey": enrol::ykman_line(&hex)}))
        }
        "officers.list" => app.db.read_blocking(|c| {
            list(c, "SELECT id, role, status, created_at FROM officers WHERE role = 'officer' ORDER BY id", &["id", "role", "status", "created_at"])
        }),
        "admins.list" => app.db.read_blocking(|c| {
            list(c, "SELECT id, role, status, created_at FROM officers WHERE role != 'officer' ORDER BY id", &["id", "role", "status", "created_at"])
        }),
        "officers.disable" | "officers.enable" | "admins.disable" => {
            let id = arg("id")?;
            let target_is_admin = app
                .db
                .read_blocking(|c| Ok(c.query_row("SELECT role FROM officers WHERE id = ?1", [&id], |r| r.get::<_, String>(0)).optional()?))?
                .is_some_and(|r| r != "officer");
            // Admins and super_admins are managed by super_admins only.
            if (target_is_admin && caller.role < Role::SuperAdmin) || (cmd == "admins.disable" && !target_is_admin) {
                return Err(refuse(app, &caller.id, &cmd, "your role does not allow this command"));
            }
            let status = if cmd == "officers.enable" { "active" } else { "disabled" };
            app.db.write_blocking(move |c| enrol::set_status(c, &a.hsm, "officers", &id, status, &actor, now))?;
            Ok(json!({}))
        }
        "officers.rotate-secret" => {
            let id = arg("id")?;
            let i = id.clone();
            let secret = app.db.write_blocking(move |c| enrol::rotate_officer_secret(c, &a.hsm, &i, &actor, now))?;
            let hex = hex_encode(&secret[..]);
            Ok(json!({"id": id, "secret": hex, "program_yubikey": enrol::ykman_line(&hex)}))
        }
        "officers.unlock" => {
            let id = arg("id")?;
            let n = app.db.write_blocking(move |c| enrol::unlock_officer(c, &a.hsm, &id, &actor, now))?;
            Ok(json!({"lockouts_lifted": n}))
        }
        "clients.disable" | "clients.enable" => {
            let id = arg("id")?;
            let status = if cmd == "clients.enable" { "active" } else { "disabled" };
            app.db.write_blocking(move |c| enrol::set_status(c, &a.hsm, "clients", &id, status, &actor, now))?;
            Ok(json!({}))
        }
        "clients.add" => {
            let id = arg("id")?;
            let name = opt_str(req, "display_name")?.unwrap_or(&id).to_owned();
            let minors = opt_bool(req, "allow_under_18", false)?;
            let i = id.clone();
            let secret = app.db.write_blocking(move |c| enrol::add_client(c, &a.hsm, &i, &name, minors, &actor, now))?;
            Ok(json!({"id": id, "secret": hex_encode(&secret[..])}))
        }
        "clients.list" => app.db.read_blocking(|c| {
            list(
                c,
                "SELECT id, display_name, status, allow_under_18, secret_generation, created_at FROM clients ORDER BY id",
                &["id", "display_name", "status", "allow_under_18", "secret_generation", "created_at"],
            )
        }),
        "clients.rotate-secret" => {
            let id = arg("id")?;
            let overlap = opt_int(req, "overlap_seconds", 86_400, 0..=MAX_SECRET_OVERLAP)?;
            let i = id.clone();
            let secret = app.db.write_blocking(move |c| enrol::rotate_client_secret(c, &a.hsm, &i, overlap, &actor, now))?;
            Ok(json!({"id": id, "secret": hex_encode(&secret[..]), "previous_valid_for_seconds": overlap}))
        }
        "audit.verify" => app.db.read_blocking(|c| Ok(serde_json::to_value(audit::verify(c, &app.hsm)?).unwrap_or(Value::Null))),
        "audit.export" | "audit.tail" => app.db.read_blocking(|c| {
            let mut out = Vec::new();
            audit::export(c, &mut out)?;
            let text = String::from_utf8_lossy(&out).into_owned();
            let text = if cmd == "audit.tail" {
                let n = opt_int(req, "lines", 20, 1..=MAX_TAIL_LINES)? as usize;
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(n)..].iter().map(|l| format!("{l}\n")).collect()
            } else {
                text
            };
            Ok(json!({"jsonl": text}))
        }),
        "hsm.status" => Ok(serde_json::to_value(app.hsm.probe()).unwrap_or(Value::Null)),
        "hsm.inventory" => Ok(serde_json::to_value(app.hsm.inventory()?).unwrap_or(Value::Null)),
        "keys.list" => app.db.read_blocking(|c| {
            list(c, "SELECT kid, state, created_at, activated_at FROM signing_keys ORDER BY created_at", &["kid", "state", "created_at", "activated_at"])
        }),
        "status" => {
            let hsm = app.hsm.probe();
            let cap = i64::from(app.config.officers.max_failures_per_source_per_hour);
            let (capped, locked, clients, officers): (i64, i64, i64, i64) = app.db.read_blocking(|c| {
                Ok((
                    c.query_row(
                        "SELECT COUNT(*) FROM source_failures WHERE failures >= ?1 AND window_start > ?2",
                        params![cap, now - 3600],
                        |r| r.get(0),
                    )?,

                    c.query_row("SELECT COUNT(*) FROM officer_failures WHERE locked_until > ?1", [now], |r| r.get(0))?,
                    c.query_row("SELECT COUNT(*) FROM clients WHERE status = 'active'", [], |r| r.get(0))?,
                    c.query_row("SELECT COUNT(*) FROM officers WHERE status = 'active'", [], |r| r.get(0))?,
                ))
            })?;
            let keys = app.keys();
            let r = app.db.read_blocking(|c| crate::keys::rotation_state(c, app.config.publication.rotation_days, now))?;
            let rotation = json!({"rotation_days": app.config.publication.rotation_days, "active_key_age_days": r.age_seconds / 86_400,
                                  "overdue": r.overdue, "successor_pending": r.successor});
            Ok(json!({
                "version": env!("CARGO_PKG_VERSION"),
                "issuer_id": app.config.issuer_id,
                "hsm": hsm,
                "database": "ok",
                "active_signing_key": keys.active.as_ref().map(|k| k.sealed.kid.as_str().to_owned()),
                "published_keys": keys.published.len(),
                "publisher_key": {"label": crate::publisher::key_label().as_str(),
                                  "public_key": app.db.read_blocking(|c| crate::db::meta_get(c, "publisher_public_key"))?},
                "outbox": app.db.read_blocking(|c| crate::outbox::stats(c, now))?,
                "rotation": rotation,
                "active_officers": officers,
                "active_clients": clients,
                "locked_out_officer_sources": locked,
                "rate_limits": {
                    "per_source_per_minute": app.config.rate_limits.per_source_per_minute,
                    "per_client_per_minute": app.config.rate_limits.per_client_per_minute,
                    "per_officer_per_minute": app.config.rate_limits.per_officer_per_minute,
                    "global_per_second": app.config.rate_limits.global_per_second,
                    "sources_over_failure_cap": capped,
                },
            }))
        }
        "keys.create" => {
            let kid = crate::keys::create(app, &caller.id, now)?;
            Ok(json!({"kid": kid.as_str(), "state": "pending"}))
        }
        "keys.activate" => {
            let force = opt_bool(req, "force", false)?;
            crate::keys::activate(app, &arg("kid")?, force, &caller.id, now)?;
            Ok(json!({}))
        }
        "keys.rotate-attestation" => {
            let compromised = opt_bool(req, "compromised", false)?;
            let overlap = if compromised { 0 } else { crate::keys::ATTESTATION_OVERLAP_SECONDS };
            let label = crate::keys::rotate_attestation_key(app, &caller.id, overlap, now)?;
            Ok(json!({"label": label, "previous_verifies_for_seconds": overlap}))
        }
        "keys.revoke" => {
            crate::keys::revoke(app, &arg("kid")?, &arg("reason")?, &caller.id, now)?;
            Ok(json!({}))
        }
        other => Err(ApiError::bad_request(format!("unknown command {other:?}")).into()),
    }
}

fn list(c: &Connection, sql: &str, columns: &[&str]) -> Result<Value, AppError> {
    let mut stmt = c.prepare(sql)?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut obj = serde_json::Map::new();
        for (i, name) in columns.iter().enumerate() {
            let v: rusqlite::types::Value = r.get(i)?;
            let v = match v {
                rusqlite::types::Value::Integer(n) => json!(n),
                rusqlite::types::Value::Text(s) => json!(s),
                _ => Value::Null,
            };
            obj.insert((*name).to_owned(), v);
        }
        out.push(Value::Object(obj));
    }
    Ok(Value::Array(out))
}

/// Sends one request line and returns the `result` or the error text.
fn send(socket: &Path, request: &Value) -> Result<Value, String> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot reach the daemon at {}: {e}; is `provii-appliance serve` running?",
            socket.display()
        )
    })?;
    stream
        .write_all(format!("{request}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let answer: Value =
        serde_json::from_str(&line).map_err(|_| "malformed answer from the daemon".to_owned())?;
    if answer["ok"] == true {
        Ok(answer["result"].clone())
    } else {
        Err(answer["error"]
            .as_str()
            .unwrap_or("unknown error")
            .to_owned())
    }
}

/// The CLI side: asks for a challenge bound to `request`, has `respond`
/// (the caller's YubiKey) answer it, and sends the request with the answer.
pub fn call(
    socket: &Path,
    caller: &str,
    respond: impl FnOnce(&[u8; 32]) -> Result<[u8; 20], String>,
    request: &Value,
) -> Result<Value, String> {
    let challenge = send(
        socket,
        &json!({"cmd": "auth.challenge", "officer": caller, "request": request}),
    )?;
    let bytes: [u8; 32] = challenge["challenge"]
        .as_str()
        .and_then(|c| hex_decode_array(c, "challenge").ok())
        .ok_or("malformed challenge from the daemon")?;
    let response = respond(&bytes)?;
    let mut request = request.clone();
    if let Some(o) = request.as_object_mut() {
        o.insert("auth".into(), json!({"officer": caller, "challenge_id": challenge["challenge_id"], "response": hex_encode(&response)}));
    }
    send(socket, &request)
}

/// Sends a request without MFA (tests use it to show such calls fail).
pub fn call_unauthenticated(socket: &Path, request: &Value) -> Result<Value, String> {
    send(socket, request)
}
