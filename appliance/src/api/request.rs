//! The request rules every route shares (WIRE.md §1): JSON bodies only,
//! 1 MiB at most, an `X-Request-ID` on every response, security headers.

use axum::body::{Body, to_bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::http_server::{BodyTimeout, DEFAULT_TIMEOUT};

pub const MAX_BODY: usize = 1 << 20;
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A JSON body that passed the content-type, length and parse checks.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let headers = req.headers();
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::unsupported_media_type());
        }
        let declared = headers.get(header::CONTENT_LENGTH);
        let chunked = headers
            .get(header::TRANSFER_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        match declared.map(|v| v.to_str().ok().and_then(|s| s.parse::<u64>().ok())) {
            None if !chunked => return Err(ApiError::length_required()),
            Some(None) => return Err(ApiError::bad_request("invalid Content-Length")),
            Some(Some(n)) if n > MAX_BODY as u64 => return Err(ApiError::too_large()),
            _ => {}
        }
        let deadline = req
            .extensions()
            .get::<BodyTimeout>()
            .map_or(DEFAULT_TIMEOUT, |t| t.0);
        let bytes = tokio::time::timeout(deadline, to_bytes(req.into_body(), MAX_BODY))
            .await
            .map_err(|_| ApiError::body_timeout())?
            .map_err(|_| ApiError::too_large())?;
        let value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(json_problem(&e)))?;
        Ok(JsonBody(value))
    }
}

/// Says what was wrong with a body without echoing any of its values.
fn json_problem(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => "malformed JSON".to_owned(),
        // serde's data errors name fields and expected types, not values.
        Category::Data => format!("invalid request: {}", strip_values(&e.to_string())),
    }
}

/// serde messages quote offending string values (`invalid value: string
/// "…"`); keep the message up to that point.
fn strip_values(msg: &str) -> String {
    let cut = msg
        .find(": string \"")
        .or_else(|| msg.find(": integer `"))
        .unwrap_or(msg.len());
    let line = msg[..cut].split(" at line ").next().unwrap_or("");
    line.to_owned()
}

/// Adds `X-Request-ID` (the caller's if it is a sane token, else a new
/// UUID) and the security headers to every response.
pub async fn request_rules(mut req: Request<Body>, next: Next) -> Response {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let id_value =
        HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    req.headers_mut().insert(&REQUEST_ID, id_value.clone());
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(&REQUEST_ID, id_value);
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
