//! `provii-appliance serve`: the daemon.

use std::sync::Arc;
use std::time::Duration;

use provii_hsm::Hsm;

use crate::config::Config;
use crate::db::{Db, meta_get};
use crate::error::AppError;
use crate::state::{App, now};
use crate::tls;
use crate::{admin, api, audit, fd_limit, http_server};

/// Records the start, and a configuration change when the file's hash
/// differs from the one recorded at the previous start.
fn audit_start(app: &App, config_bytes: &[u8]) -> Result<(), AppError> {
    use sha2::Digest;
    let hash = provii_circuits::encoding::hex_encode(&sha2::Sha256::digest(config_bytes));
    let (h, now) = (app.hsm.clone(), now());
    app.db.write_blocking(move |c| {
        let previous = meta_get(c, "config_sha256")?;
        if previous.as_deref() != Some(hash.as_str()) {
            let mut event = audit::Event::new("config.changed", audit::Severity::Critical).detail("config_sha256", hash.as_str());
            if let Some(p) = previous {
                event = event.detail("previous_config_sha256", p);
            }
            audit::append(c, &h, &event, now)?;
            c.execute("INSERT INTO meta (key, value) VALUES ('config_sha256', ?1) ON CONFLICT(key) DO UPDATE SET value = excluded.value", [&hash])?;
        }
        audit::append(c, &h, &audit::Event::new("appliance.started", audit::Severity::Info).detail("version", env!("CARGO_PKG_VERSION")), now)
    })
}

pub async fn serve(config: Config, config_bytes: Vec<u8>) -> Result<(), AppError> {
    let mut limits = config.http.connection_limits();
    limits.max_connections = fd_limit::make_room(
        limits.max_connections,
        config.http.max_connections.is_some(),
    )?;
    let db = Db::open(&config.db_path())?;
    if db.read_blocking(|c| meta_get(c, "initialized"))?.is_none() {
        return Err(AppError::Refused(format!(
            "{} is not initialised; run `provii-appliance init --config …` first",
            config.state_dir.display()
        )));
    }
    let hsm = Hsm::open(config.hsm.clone())?;
    let listen = config.http.listen;
    let socket = config.admin_socket();
    let app = Arc::new(App::new(config, hsm, db)?);
    audit_start(&app, &config_bytes)?;
    if let Err(e) = keep_hot_keys(&app) {
        tracing::warn!(error = %e, "session copies of hot keys failed; using the token objects");
    }
    crate::publisher::provision(&app.hsm, &app.db, now())?;

    let admin_app = app.clone();
    tokio::spawn(async move {
        if let Err(e) = admin::serve(admin_app, &socket).await {
            tracing::error!(error = %e, "admin socket stopped");
        }
    });
    tokio::spawn(housekeeping(app.clone()));
    tokio::spawn(crate::outbox::run(app.clone()));

    let tls = match (&app.config.http.tls_cert, &app.config.http.tls_key) {
        (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| AppError::Refused(format!("cannot listen on {listen}: {e}")))?;
    let router = api::router(app.clone());
    app.metrics
        .connection_cap
        .store(limits.max_connections, std::sync::atomic::Ordering::Relaxed);
    let open = app.metrics.connections_open.clone();
    match tls {
        Some(config) => {
            tracing::info!(%listen, "provii-appliance listening (TLS)");
            let listener = tls::TlsListener::new(listener, config, &limits)
                .map_err(|e| AppError::Internal(e.to_string()))?;
            http_server::serve(listener, router, limits, open, shutdown_signal()).await;
        }
        None => {
            tracing::info!(%listen, "provii-appliance listening (plain HTTP; put a TLS proxy in front)");
            http_server::serve(listener, router, limits, open, shutdown_signal()).await;
        }
    }
    tracing::info!("shut down cleanly");
    Ok(())
}

/// SIGTERM or Ctrl-C: stop accepting, finish in-flight requests.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

/// Deletes expired challenges and nonces, runs the rotation schedule and
/// keeps hot keys copied every minute; applies audit retention once an hour.
async fn housekeeping(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    let mut minutes = 0u64;
    loop {
        tick.tick().await;
        minutes += 1;
        let purge_audit = minutes % 60 == 1;
        let a = app.clone();
        let result = app
            .db
            .write(move |c| {
                let t = now();
                if crate::keys::disable_old_attestation_keys(c, &a, t)? > 0 {
                    a.keys_stale
                        .store(true, std::sync::atomic::Ordering::Release);
                }
                if !crate::keys::retire_expired(c, &a, t)?.is_empty() {
                    // Signing keys changed state: reload after this job commits.
                    a.keys_stale
                        .store(true, std::sync::atomic::Ordering::Release);
                }
                Ok(())
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "housekeeping failed");
        }
        for table in [
            "challenges",
            "auth_nonces",
            "consumed_attestations",
            "attestation_nonces",
        ] {
            if let Err(e) = purge_expired(&app, table).await {
                tracing::warn!(error = %e, table, "purging expired entries failed");
            }
        }
        if purge_audit {
            let t = now();
            let purged = purge_in_chunks(&app, move |c| audit::purge(c, t, PURGE_CHUNK)).await;
            if let Err(e) = purged {
                tracing::warn!(error = %e, "audit retention failed");
            }
        }
        let a = app.clone();
        match tokio::task::spawn_blocking(move || crate::keys::schedule(&a, now())).await {
            Ok(Ok(Some(kid))) => {
                tracing::info!(%kid, "rotation schedule created the next signing key")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "rotation schedule failed"),
            _ => {}
        }
        if app
            .keys_stale
            .swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            let a = app.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || a.reload_keys()).await {
                tracing::warn!(error = %e, "reloading keys failed");
            }
        }
        // New clients and keys, and every key after an HSM reconnect (the
        // copies die with their sessions), get their session copies here.
        let a = app.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || keep_hot_keys(&a)).await {
            tracing::warn!(error = %e, "session copies of hot keys failed");
        }
    }
}

/// Rows one housekeeping job deletes at most (a few milliseconds of the
/// writer). Requests retire expired nonces as they go
/// (`db::retire_expired`); housekeeping catches up after quiet periods, in
/// jobs small enough that requests are committed in between. In one job, a
/// busy minute's hundred thousand expired nonces held the writer for most
/// of a second while every request waited.
const PURGE_CHUNK: u64 = 200;

/// How much longer than a chunk took (queueing and commit included) the
/// purge waits before the next: it then has at most a fifth of the writer.
const PURGE_PAUSE_FACTOR: u32 = 4;

/// Runs `chunk` as writer jobs until one deletes fewer than [`PURGE_CHUNK`]
/// rows, so request jobs are committed in between, pausing after each in
/// proportion to how long it took. Back to back, the chunks of a catch-up
/// (after a restart, or a quiet spell, leaves thousands of expired nonces)
/// rode in nearly every batch and halved throughput until it was done.
async fn purge_in_chunks(
    app: &App,
    chunk: impl Fn(&rusqlite::Connection) -> Result<u64, AppError> + Clone + Send + 'static,
) -> Result<u64, AppError> {
    let mut total = 0;
    loop {
        let started = std::time::Instant::now();
        let deleted = app.db.write(chunk.clone()).await?;
        total += deleted;
        if deleted < PURGE_CHUNK {
            return Ok(total);
        }
        tokio::time::sleep(started.elapsed() * PURGE_PAUSE_FACTOR).await;
    }
}

/// Deletes the rows of a challenge or nonce table past their retention.
async fn purge_expired(app: &App, table: &'static str) -> Result<u64, AppError> {
    let t = now();
    purge_in_chunks(app, move |c| {
        crate::db::delete_expired(c, table, t, PURGE_CHUNK)
    })
    .await
}

/// Session copies of the keys every request uses (`Hsm::keep_session_copies`).
fn keep_hot_keys(app: &App) -> Result<(), AppError> {
    let copied = app.hsm.keep_session_copies(&app.hot_keys()?)?;
    if copied > 0 {
        tracing::info!(copied, "session copies of hot keys made");
    }
    Ok(())
}
