//! The counter client's logic: the officer's configuration, the YubiKey
//! (or a software stand-in), the intent-bound attestation request, and how
//! the attestation reaches the citizen's wallet (deep link and QR code).
//! Nothing secret is stored by the client.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use provii_circuits::encoding::{hex_decode_array, hex_encode};
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// Where the officer works: `~/.config/provii/officer.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficerConfig {
    pub officer_id: String,
    /// The appliance, e.g. `https://issuer.example.gov`.
    pub server: String,
    /// Prefix of the wallet deep link. Default `provii://attest`.
    #[serde(default = "default_deep_link")]
    pub deep_link_base: String,
}

fn default_deep_link() -> String {
    "provii://attest".to_owned()
}

impl OfficerConfig {
    pub fn default_path() -> PathBuf {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("provii/officer.toml")
    }

    pub fn load(path: &Path) -> Result<Self, OfficerError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            OfficerError::Config(format!(
                "cannot read {}: {e}; create it with officer_id and server",
                path.display()
            ))
        })?;
        toml::from_str(&text).map_err(|e| OfficerError::Config(format!("{}: {e}", path.display())))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OfficerError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("no YubiKey found: insert it and try again")]
    NoYubiKey,
    #[error(
        "the YubiKey did not answer: touch it when it blinks (or it is not programmed for challenge-response in slot 2: run the ykman line from enrolment)"
    )]
    NoTouchOrWrongSlot,
    #[error("YubiKey: {0}")]
    YubiKey(String),
    #[error("software responder: {0}")]
    SoftResponder(String),
    #[error("cannot reach the appliance at {0}: check the server address and the network")]
    Unreachable(String),
    #[error(
        "the appliance refused: your YubiKey response was not accepted, or you are locked out after repeated failures (ask an admin to unlock you)"
    )]
    Refused,
    #[error("too many requests: wait {0} s and try again")]
    RateLimited(u64),
    #[error("the appliance answered {status}: {message}")]
    Server { status: u16, message: String },
    #[error("{0}")]
    Input(String),
}

/// Something that answers a challenge as the officer's YubiKey does:
/// HMAC-SHA1 with the 20-byte slot-2 secret.
pub enum Responder {
    YubiKey,
    /// A file holding the secret as 40 hex characters (tests, demos).
    Soft(PathBuf),
}

impl Responder {
    pub fn parse(spec: &str) -> Result<Self, OfficerError> {
        match spec {
            "yubikey" => Ok(Responder::YubiKey),
            _ => match spec.strip_prefix("soft:") {
                Some(path) if !path.is_empty() => Ok(Responder::Soft(PathBuf::from(path))),
                _ => Err(OfficerError::Input(format!(
                    "--responder must be \"yubikey\" or \"soft:FILE\", not {spec:?}"
                ))),
            },
        }
    }

    pub fn respond(&self, challenge: &[u8; 32]) -> Result<[u8; 20], OfficerError> {
        match self {
            Responder::Soft(path) => {
                let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                    OfficerError::SoftResponder(format!("{}: {e}", path.display()))
                })?);
                let secret =
                    Zeroizing::new(hex_decode_array::<20>(text.trim(), "secret").map_err(|e| {
                        OfficerError::SoftResponder(format!("{}: {e}", path.display()))
                    })?);
                let mut mac = <Hmac<sha1::Sha1>>::new_from_slice(&secret[..])
                    .map_err(|e| OfficerError::SoftResponder(e.to_string()))?;
                mac.update(challenge);
                Ok(mac.finalize().into_bytes().into())
            }
            Responder::YubiKey => yubikey_respond(challenge),
        }
    }
}

fn yubikey_respond(challenge: &[u8; 32]) -> Result<[u8; 20], OfficerError> {
    use challenge_response::ChallengeResponse;
    use challenge_response::config::{Config, Mode, Slot};
    use challenge_response::error::ChallengeResponseError as E;
    let mut cr = ChallengeResponse::new()
        .map_err(|e| OfficerError::YubiKey(format!("USB is not available: {e}")))?;
    let device = cr.find_device().map_err(|e| match e {
        E::DeviceNotFound | E::ListDevicesError => OfficerError::NoYubiKey,
        other => {
            OfficerError::YubiKey(format!("{other}; is the udev rule for YubiKeys installed?"))
        }
    })?;
    let config = Config::new_from(device)
        .set_variable_size(true)
        .set_mode(Mode::Sha1)
        .set_slot(Slot::Slot2);
    let response = cr
        .challenge_response_hmac(challenge, config)
        .map_err(|e| match e {
            E::CanNotReadFromDevice | E::ConfigNotWritten => OfficerError::NoTouchOrWrongSlot,
            other => OfficerError::YubiKey(other.to_string()),
        })?;
    let mut out = [0u8; 20];
    out.copy_from_slice(&response.0[..20]);
    Ok(out)
}

/// Days since 1970-01-01 of an ISO date, strictly `YYYY-MM-DD`.
pub fn parse_dob(s: &str) -> Result<i32, OfficerError> {
    let bad = || {
        OfficerError::Input(format!(
            "date of birth {s:?} is not a date in the form YYYY-MM-DD"
        ))
    };
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let (y, m, d): (i64, i64, i64) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > month_days[(m - 1) as usize] {
        return Err(bad());
    }
    i32::try_from(crate::calendar::days_from_civil(y, m, d)).map_err(|_| bad())
}

/// Whole years between a date of birth and today (both as epoch days).
pub fn age_in_years(dob_days: i32, today_days: i64) -> i64 {
    let (y1, m1, d1) = crate::calendar::civil_from_days(i64::from(dob_days));
    let (y2, m2, d2) = crate::calendar::civil_from_days(today_days);
    let mut age = y2 - y1;
    if (m2, d2) < (m1, d1) {
        age -= 1;
    }
    age
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into()
}

fn post(server: &str, path: &str, body: &Value) -> Result<(u16, Value), OfficerError> {
    let url = format!("{}{path}", server.trim_end_matches('/'));
    let mut response = agent()
        .post(&url)
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .map_err(|_| OfficerError::Unreachable(server.to_owned()))?;
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    match status {
        401 => Err(OfficerError::Refused),
        429 => Err(OfficerError::RateLimited(retry.unwrap_or(60))),
        s if s >= 400 => Err(OfficerError::Server {
            status: s,
            message: value["error"].as_str().unwrap_or("").to_owned(),
        }),
        s => Ok((s, value)),
    }
}

/// What the citizen's wallet receives.
pub struct Issued {
    pub attestation: String,
    pub issuer_id: String,
    pub expires_at: i64,
}

impl Issued {
    pub fn deep_link(&self, base: &str) -> String {
        format!(
            "{base}?attestation={}&issuer_id={}",
            self.attestation,
            url_encode(&self.issuer_id)
        )
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The officer flow: an intent-bound challenge for exactly this date of
/// birth, the YubiKey's answer, the attestation.
pub fn attest(
    config: &OfficerConfig,
    responder: &Responder,
    dob_days: i32,
    now: i64,
) -> Result<Issued, OfficerError> {
    let nonce = hex_encode(&rand::random::<[u8; 32]>());
    let (_, ch) = post(
        &config.server,
        "/v1/challenge",
        &json!({"officer_id": config.officer_id, "intent": {"dob_days": dob_days, "nonce": nonce}}),
    )?;
    let challenge: [u8; 32] = ch["challenge"]
        .as_str()
        .and_then(|c| hex_decode_array(c, "challenge").ok())
        .ok_or_else(|| OfficerError::Server {
            status: 201,
            message: "malformed challenge".into(),
        })?;
    let response = responder.respond(&challenge)?;
    let (_, att) = post(
        &config.server,
        "/v1/attestation/create",
        &json!({"dob_days": dob_days, "authorizer": {"format": "yubikey", "keyId": config.officer_id,
                 "challengeId": ch["challenge_id"], "timestamp": now, "hmac": hex_encode(&response), "nonce": nonce}}),
    )?;
    match (
        att["attestation"].as_str(),
        att["issuer_id"].as_str(),
        att["expires_at"].as_i64(),
    ) {
        (Some(a), Some(i), Some(e)) => Ok(Issued {
            attestation: a.to_owned(),
            issuer_id: i.to_owned(),
            expires_at: e,
        }),
        _ => Err(OfficerError::Server {
            status: 201,
            message: "malformed attestation response".into(),
        }),
    }
}

/// The QR code for a terminal: two modules per character cell, dark
/// modules printed as spaces on a light quiet zone (reads on dark and light
/// terminals alike when the terminal's colours are the defaults).
pub fn qr_terminal(text: &str) -> Result<String, OfficerError> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(text.as_bytes())
        .map_err(|e| OfficerError::Input(format!("QR code: {e}")))?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

pub fn qr_png(text: &str, path: &Path) -> Result<(), OfficerError> {
    let code = qrcode::QrCode::new(text.as_bytes())
        .map_err(|e| OfficerError::Input(format!("QR code: {e}")))?;
    let image = code
        .render::<image::Luma<u8>>()
        .min_dimensions(400, 400)
        .build();
    image
        .save(path)
        .map_err(|e| OfficerError::Input(format!("cannot write {}: {e}", path.display())))
}
