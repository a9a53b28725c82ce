//! The public HTTP API (WIRE.md §1): deployed `/v1` paths with the spec's
//! `/v0` aliases.

mod attestation;
mod challenge;
mod issuance;
mod request;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use provii_circuits::encoding::hex_encode;
use provii_hsm::HsmState;
use sha2::Digest;

pub use request::MAX_BODY;

use crate::crypto_pool::Unfinished;
use crate::error::ApiError;
use crate::state::App;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/v1/challenge", post(challenge::create))
        .route("/v1/attestation/create", post(attestation::create))
        .route("/v0/attestation/create", post(attestation::create))
        .route("/v1/issuance/blind", post(issuance::blind))
        .route("/v0/issuance/blind", post(issuance::blind))
        .route("/.well-known/jwks.json", get(jwks))
        .route(
            "/v1/jwks.json",
            get(|| async { Redirect::permanent("/.well-known/jwks.json") }),
        )
        .route("/metrics", get(metrics))
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .route_layer(middleware::from_fn_with_state(app.clone(), track))
        .fallback(|| async { ApiError::not_found() })
        .layer(middleware::from_fn(request::request_rules))
        .with_state(app)
}

/// The caller's address: the TCP peer, or the first `X-Forwarded-For` hop
/// when configured and the peer is a loopback proxy.
pub struct Source(pub Option<IpAddr>);

impl FromRequestParts<Arc<App>> for Source {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<crate::tls::PeerAddr>>()
            .map(|c| c.0.0.ip());
        if app.config.http.trust_forwarded_for && peer.is_some_and(|p| p.is_loopback()) {
            let forwarded = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse().ok());
            if forwarded.is_some() {
                return Ok(Source(forwarded));
            }
        }
        Ok(Source(peer))
    }
}

/// Runs a request's HSM and curve work on the crypto threads; past
/// `http.crypto_timeout_ms` the request is answered 503 with `Retry-After`.
pub(crate) async fn in_crypto_lane<T: Send + 'static>(
    app: &App,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    match app.crypto.run(work).await {
        Ok(value) => Ok(value),
        Err(Unfinished::TimedOut) => {
            tracing::warn!(
                waiting = app.crypto.waiting(),
                "request answered 503: its HSM and curve work did not finish within http.crypto_timeout_ms"
            );
            Err(ApiError::unavailable(
                "the HSM did not answer in time; retry after the delay given",
            ))
        }
        Err(Unfinished::Stalled) => {
            tracing::warn!(
                "request answered 503 at once: every crypto thread has waited on the HSM past http.crypto_timeout_ms"
            );
            Err(ApiError::unavailable(
                "the HSM is not answering; retry after the delay given",
            ))
        }
        Err(Unfinished::Failed) => Err(ApiError::internal()),
    }
}

/// Applies the global and per-source limits, or answers 429.
pub(crate) fn admit(app: &Arc<App>, source: Option<IpAddr>) -> Result<(), ApiError> {
    app.limits
        .request(source)
        .map_err(|l| limited(app, l, source, None))
}

/// The 429 for a refusal by a rate limit, audited at most once a minute
/// per scope and key so that a flood cannot flood the audit log too.
pub(crate) fn limited(
    app: &Arc<App>,
    l: crate::ratelimit::Limited,
    source: Option<IpAddr>,
    key: Option<&str>,
) -> ApiError {
    let subject = format!(
        "{}|{}|{}",
        l.scope,
        key.unwrap_or(""),
        source.map(|s| s.to_string()).unwrap_or_default()
    );
    if app.limits.should_audit(&subject) {
        let (app, scope, key) = (app.clone(), l.scope, key.map(str::to_owned));
        tokio::task::spawn_blocking(move || {
            let now = crate::state::now();
            let Ok(src) = app.source_hash(source) else {
                return;
            };
            let mut event =
                crate::audit::Event::new("rate_limited", crate::audit::Severity::Warning)
                    .source(src)
                    .detail("scope", scope);
            if let Some(k) = key {
                event = event.actor(k);
            }
            let a = app.clone();
            if let Err(e) = app
                .db
                .write_blocking(move |c| crate::audit::append(c, &a.hsm, &event, now))
            {
                tracing::warn!(error = %e, "could not audit a rate-limit refusal");
            }
        });
    }
    ApiError::rate_limited(l.retry_after)
}

/// Counts every routed request and its latency under its route pattern.
async fn track(
    State(app): State<Arc<App>>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let start = std::time::Instant::now();
    let response = next.run(req).await;
    app.metrics
        .observe(&route, response.status().as_u16(), start.elapsed());
    response
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let status = app.hsm.status();
    let outbox = app
        .db
        .read(|c| crate::outbox::stats(c, crate::state::now()))
        .await
        .unwrap_or(serde_json::Value::Null);
    let number = |k: &str| outbox[k].as_f64().unwrap_or(-1.0);
    let days = app.config.publication.rotation_days;
    let rotation = app
        .db
        .read(move |c| crate::keys::rotation_state(c, days, crate::state::now()))
        .await
        .ok();
    let gauges = [
        (
            "provii_hsm_usable",
            "1 when the HSM connection is up.",
            f64::from(u8::from(status.state == HsmState::Usable)),
        ),
        (
            "provii_hsm_reconnects",
            "HSM reconnects since start.",
            status.reconnects as f64,
        ),
        (
            "provii_signing_key_active",
            "1 when a credential signing key is active.",
            f64::from(u8::from(app.keys().active.is_some())),
        ),
        (
            "provii_outbox_unconfirmed",
            "Publications not yet confirmed by their sink.",
            number("unconfirmed"),
        ),
        (
            "provii_signing_key_age_seconds",
            "Age of the active signing key.",
            rotation.as_ref().map_or(-1.0, |r| r.age_seconds as f64),
        ),
        (
            "provii_signing_key_rotation_overdue",
            "1 when the active key is past its rotation date.",
            rotation
                .as_ref()
                .map_or(0.0, |r| f64::from(u8::from(r.overdue))),
        ),
        (
            "provii_outbox_lag_seconds",
            "Age of the oldest unconfirmed publication.",
            number("lag_seconds"),
        ),
        (
            "provii_outbox_max_attempts",
            "Most delivery attempts of an unconfirmed publication.",
            number("max_attempts"),
        ),
        (
            "provii_http_connections_open",
            "Client connections being served (this scrape's included).",
            app.metrics
                .connections_open
                .load(std::sync::atomic::Ordering::Relaxed) as f64,
        ),
        (
            "provii_http_max_connections",
            "At most this many are served at once (http.max_connections).",
            app.metrics
                .connection_cap
                .load(std::sync::atomic::Ordering::Relaxed) as f64,
        ),
        (
            "provii_crypto_waiting",
            "Requests waiting for a crypto thread (http.crypto_concurrency).",
            app.crypto.waiting() as f64,
        ),
    ];
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        app.metrics.render(app.db.commit_metrics(), &gauges),
    )
        .into_response()
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Ready when the HSM answers, the database takes writes and a signing key
/// is active.
async fn ready(State(app): State<Arc<App>>) -> Response {
    let deadline = app.config.http.crypto_timeout();
    let (hsm_ok, hsm) = match probe_hsm(&app, deadline).await {
        Some(p) => (
            p.state == HsmState::Usable,
            serde_json::json!({"state": p.state, "last_error": p.last_error}),
        ),
        None => (
            false,
            serde_json::json!({
                "state": "unresponsive",
                "last_error": "the HSM did not answer within http.crypto_timeout_ms",
            }),
        ),
    };
    // A job through the writer: proves it is alive and can commit. The
    // writer seals the audit chain in the HSM, so a hung HSM holds it too.
    let db_ok = tokio::time::timeout(
        deadline,
        app.db.write(|c| {
            c.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        }),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    let key_ok = app.keys().active.is_some();
    let ready = hsm_ok && db_ok && key_ok;
    let body = serde_json::json!({
        "ready": ready,
        "hsm": hsm,
        "database_writable": db_ok,
        "signing_key_active": key_ok,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = (status, Json(body)).into_response();
    if !ready {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}

/// The HSM's status, or `None` if it did not answer within `deadline`. A
/// hung HSM must not hang the health check, nor leave a blocked thread
/// behind every check: while one probe is unanswered, later checks report
/// the HSM unresponsive without starting another.
async fn probe_hsm(app: &Arc<App>, deadline: Duration) -> Option<provii_hsm::HsmStatus> {
    if app.hsm_probe_pending.swap(true, Ordering::AcqRel) {
        return None;
    }
    let probe = {
        let app = app.clone();
        tokio::task::spawn_blocking(move || {
            /// Clears the flag however the probe ends, a panic included.
            struct Answered<'a>(&'a std::sync::atomic::AtomicBool);
            impl Drop for Answered<'_> {
                fn drop(&mut self) {
                    self.0.store(false, Ordering::Release);
                }
            }
            let _answered = Answered(&app.hsm_probe_pending);
            app.hsm.probe()
        })
    };
    tokio::time::timeout(deadline, probe).await.ok()?.ok()
}

/// Every key a wallet may hold a credential under (active and deprecated),
/// never a revoked one (WIRE.md §5), with an ETag that changes with the set.
async fn jwks(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let body = crate::outbox::jwks(&app.keys().published).to_string();
    let etag = format!(
        "\"{}\"",
        hex_encode(&sha2::Sha256::digest(body.as_bytes())[..16])
    );
    let cache = HeaderValue::from_static("public, max-age=600");
    let etag_value =
        HeaderValue::from_str(&etag).unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*");
    if matches {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag_value), (header::CACHE_CONTROL, cache)],
        )
            .into_response();
    }
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag_value),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response()
}
