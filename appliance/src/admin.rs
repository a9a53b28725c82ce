//! The admin plane on a local Unix socket (mode 0660): one JSON request per
//! line, one JSON answer per line. Only enrolment and audit for now; roles
//! and YubiKey MFA come with the operator tooling.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use provii_circuits::encoding::hex_encode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use crate::audit;
use crate::enrol;
use crate::error::{ApiError, AppError};
use crate::state::{App, now};

const MAX_REQUEST: usize = 64 * 1024;
/// Until roles exist, admin actions are recorded as done by the socket.
const ACTOR: &str = "admin-socket";

pub async fn serve(app: Arc<App>, path: &Path) -> Result<(), AppError> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)
        .map_err(|e| AppError::Internal(format!("bind {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| AppError::Internal(format!("chmod {}: {e}", path.display())))?;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let app = app.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader = tokio::io::BufReader::new(read).take(MAX_REQUEST as u64);
            let answer = match reader.read_line(&mut line).await {
                Ok(_) => handle(app, &line).await,
                Err(e) => json!({"ok": false, "error": format!("read: {e}")}),
            };
            let _ = write.write_all(format!("{answer}\n").as_bytes()).await;
        });
    }
}

fn str_arg<'a>(req: &'a Value, key: &str) -> Result<&'a str, AppError> {
    req.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request(format!("missing string argument {key:?}")).into())
}

async fn handle(app: Arc<App>, line: &str) -> Value {
    let req: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(_) => return json!({"ok": false, "error": "malformed request"}),
    };
    let result = tokio::task::spawn_blocking(move || dispatch(&app, &req)).await;
    match result {
        Ok(Ok(v)) => json!({"ok": true, "result": v}),
        Ok(Err(AppError::Api(e))) => json!({"ok": false, "error": e.message}),
        Ok(Err(e)) => json!({"ok": false, "error": e.to_string()}),
        Err(e) => json!({"ok": false, "error": format!("task failed: {e}")}),
    }
}

fn dispatch(app: &Arc<App>, req: &Value) -> Result<Value, AppError> {
    let now = now();
    let cmd = str_arg(req, "cmd")?.to_owned();
    let arg = |key: &str| str_arg(req, key).map(str::to_owned);
    let a = app.clone();
    match cmd.as_str() {
        "officers.add" => {
            let id = arg("id")?;
            let role = req.get("role").and_then(Value::as_str).unwrap_or("officer").to_owned();
            let (i, r) = (id.clone(), role.clone());
            let secret = app.db.write_blocking(move |c| enrol::add_officer(c, &a.hsm, &i, &r, ACTOR, now))?;
            let hex = hex_encode(&secret[..]);
            Ok(json!({"id": id, "role": role, "secret": hex, "program_yubikey": enrol::ykman_line(&hex)}))
        }
        "officers.list" => app.db.read_blocking(|c| list(c, "SELECT id, role, status, created_at FROM officers ORDER BY id", &["id", "role", "status", "created_at"])),
        "officers.disable" | "officers.enable" | "clients.disable" | "clients.enable" => {
            let id = arg("id")?;
            let (table, status) = match cmd.as_str() {
                "officers.disable" => ("officers", "disabled"),
                "officers.enable" => ("officers", "active"),
                "clients.disable" => ("clients", "disabled"),
                _ => ("clients", "active"),
            };
            app.db.write_blocking(move |c| enrol::set_status(c, &a.hsm, table, &id, status, ACTOR, now))?;
            Ok(json!({}))
        }
        "clients.add" => {
            let id = arg("id")?;
            let name = req.get("display_name").and_then(Value::as_str).unwrap_or(&id).to_owned();
            let minors = req.get("allow_under_18").and_then(Value::as_bool).unwrap_or(false);
            let i = id.clone();
            let secret = app.db.write_blocking(move |c| enrol::add_client(c, &a.hsm, &i, &name, minors, ACTOR, now))?;
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
            let overlap = req.get("overlap_seconds").and_then(Value::as_i64).unwrap_or(86_400).clamp(0, 30 * 86_400);
            let i = id.clone();
            let secret = app.db.write_blocking(move |c| enrol::rotate_client_secret(c, &a.hsm, &i, overlap, ACTOR, now))?;
            Ok(json!({"id": id, "secret": hex_encode(&secret[..]), "previous_valid_for_seconds": overlap}))
        }
        "audit.verify" => app.db.read_blocking(|c| Ok(serde_json::to_value(audit::verify(c, &app.hsm)?).unwrap_or(Value::Null))),
        "audit.export" => app.db.read_blocking(|c| {
            let mut out = Vec::new();
            audit::export(c, &mut out)?;
            Ok(json!({"jsonl": String::from_utf8_lossy(&out)}))
        }),
        other => Err(ApiError::bad_request(format!("unknown command {other:?}")).into()),
    }
}

fn list(c: &rusqlite::Connection, sql: &str, columns: &[&str]) -> Result<Value, AppError> {
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

/// The CLI side: sends one request, returns the `result` or the error text.
pub fn call(socket: &Path, request: &Value) -> Result<Value, String> {
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
