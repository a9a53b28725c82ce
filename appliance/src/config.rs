//! The appliance's one TOML file, validated at start. Every error names the
//! key and says how to fix it. Secrets never live here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use provii_circuits::constants::{AGE_SCHEMA, DEFAULT_VALIDITY_DAYS, MAX_VALIDITY_DAYS};
use provii_hsm::HsmConfig;
use serde::Deserialize;

const ONE_YEAR_SECONDS: u64 = 365 * 86_400;
/// Ten years: a signing key in use longer than that is a mistake.
const MAX_ROTATION_DAYS: u64 = 3_650;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config {path}: {detail}")]
    Parse { path: String, detail: String },
    #[error("config key `{key}`: {problem}; {fix}")]
    Invalid {
        key: &'static str,
        problem: String,
        fix: &'static str,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The `issuer_id` attestations carry, e.g. `dmv.ca.gov`.
    pub issuer_id: String,
    /// Database, admin socket and sealed keys live here. Relative paths are
    /// relative to the config file's directory.
    pub state_dir: PathBuf,
    pub http: HttpConfig,
    pub hsm: HsmConfig,
    #[serde(default)]
    pub issuance: IssuanceConfig,
    #[serde(default)]
    pub officers: OfficerPolicy,
    #[serde(default)]
    pub rate_limits: RateLimitConfig,
    #[serde(default)]
    pub publication: PublicationConfig,
}

/// Where verifying keys are published, and how long the edge needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublicationConfig {
    /// Seconds a key's publication must have been confirmed before it may
    /// sign (the edge verifier caches its registry up to 3600 s; WIRE.md §6).
    pub lead_time_seconds: u64,
    /// Rotate the credential signing key this often (spec §17.4 recommends
    /// 180 days). The next key is created early enough to be published for
    /// the lead time before it is due.
    pub rotation_days: u64,
    /// `file` sink: the JWKS written atomically here (static site, CDN sync).
    pub file: Option<PathBuf>,
    /// `cloudflare-kv` sink: the edge verifier's issuer registry.
    pub cloudflare_kv: Option<CloudflareKv>,
    /// `http` sink: the JWKS sent to a URL, signed by the publisher key.
    pub http: Option<HttpSink>,
}

impl Default for PublicationConfig {
    fn default() -> Self {
        Self {
            lead_time_seconds: 3600,
            rotation_days: 180,
            file: None,
            cloudflare_kv: None,
            http: None,
        }
    }
}

/// The Workers KV namespace the edge verifier reads (WIRE.md §6).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudflareKv {
    #[serde(default = "default_cloudflare_api")]
    pub api: String,
    pub account_id: String,
    pub namespace_id: String,
    /// The API token: never in this file.
    pub token: SecretSource,
    /// Also store the wallet JWKS under this key name.
    pub jwks_key: Option<String>,
    pub organization_name: String,
    pub organization_id: Option<String>,
    pub environment: Option<String>,
}

/// An edge that takes the JWKS document over HTTP: `PUT url` with a bearer
/// token and a detached signature (see `publisher`), read back with `GET url`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSink {
    pub url: String,
    /// The bearer token: never in this file.
    pub token: SecretSource,
}

fn default_cloudflare_api() -> String {
    "https://api.cloudflare.com/client/v4".to_owned()
}

/// Where a secret such as an API token comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    File(PathBuf),
    SystemdCredential(String),
    Env(String),
}

impl SecretSource {
    pub fn read(&self) -> Result<zeroize::Zeroizing<String>, String> {
        let text = match self {
            SecretSource::File(p) => {
                std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?
            }
            SecretSource::SystemdCredential(n) => {
                let dir = std::env::var_os("CREDENTIALS_DIRECTORY")
                    .ok_or("CREDENTIALS_DIRECTORY is not set")?;
                std::fs::read_to_string(PathBuf::from(dir).join(n))
                    .map_err(|e| format!("credential {n}: {e}"))?
            }
            SecretSource::Env(v) => {
                std::env::var(v).map_err(|_| format!("environment variable {v} is not set"))?
            }
        };
        Ok(zeroize::Zeroizing::new(text.trim_end().to_owned()))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Trust `X-Forwarded-For` from a reverse proxy on loopback.
    #[serde(default)]
    pub trust_forwarded_for: bool,
    /// PEM certificate chain; with `tls_key`, serve HTTPS (TLS 1.3/1.2).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// How many threads do requests' HSM and curve work; requests wait their
    /// turn in arrival order. Default: twice the CPUs.
    #[serde(default)]
    pub crypto_concurrency: Option<usize>,
    /// How long a request may wait for, and spend in, its HSM and curve
    /// work before it is answered 503 with `Retry-After`; `/ready` gives
    /// its HSM probe as long. Default 5000.
    #[serde(default)]
    pub crypto_timeout_ms: Option<u64>,
    /// Client connections served at once. Default 1024.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// How long a request's headers may take to arrive, and an idle
    /// keep-alive connection may stay open. Default 10000.
    #[serde(default)]
    pub header_timeout_ms: Option<u64>,
    /// How long a request's body may take to arrive. Default 10000.
    #[serde(default)]
    pub body_timeout_ms: Option<u64>,
}

impl HttpConfig {
    /// [`HttpConfig::crypto_concurrency`], or its default for this machine.
    pub fn crypto_threads(&self) -> usize {
        self.crypto_concurrency
            .unwrap_or_else(|| 2 * std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// [`HttpConfig::crypto_timeout_ms`], or its default.
    pub fn crypto_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.crypto_timeout_ms.unwrap_or(5_000))
    }

    /// The connection limits, defaults filled in.
    pub fn connection_limits(&self) -> crate::http_server::ConnectionLimits {
        let ms = |v: Option<u64>| {
            v.map_or(
                crate::http_server::DEFAULT_TIMEOUT,
                std::time::Duration::from_millis,
            )
        };
        crate::http_server::ConnectionLimits {
            max_connections: self.max_connections.unwrap_or(1024),
            header_timeout: ms(self.header_timeout_ms),
            body_timeout: ms(self.body_timeout_ms),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IssuanceConfig {
    /// Credential lifetime when the wallet asks for none.
    pub validity_days: u64,
    /// The longest lifetime a wallet may ask for.
    pub max_validity_days: u64,
}

impl Default for IssuanceConfig {
    fn default() -> Self {
        Self {
            validity_days: DEFAULT_VALIDITY_DAYS,
            max_validity_days: DEFAULT_VALIDITY_DAYS,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfficerPolicy {
    /// Require intent-bound challenges (the officer's touch approves one date of birth).
    pub require_intent: bool,
    pub lockout_failures: u32,
    pub lockout_seconds: u64,
    /// Failed authentications (officer or client) from one source address
    /// per hour before it is refused with 429.
    pub max_failures_per_source_per_hour: u32,
}

impl Default for OfficerPolicy {
    fn default() -> Self {
        Self {
            require_intent: true,
            lockout_failures: 5,
            lockout_seconds: 900,
            max_failures_per_source_per_hour: 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub per_source_per_minute: u32,
    pub per_client_per_minute: u32,
    pub per_officer_per_minute: u32,
    pub global_per_second: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_source_per_minute: 600,
            per_client_per_minute: 1200,
            per_officer_per_minute: 60,
            global_per_second: 2000,
        }
    }
}

fn invalid(key: &'static str, problem: impl Into<String>, fix: &'static str) -> ConfigError {
    ConfigError::Invalid {
        key,
        problem: problem.into(),
        fix,
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: shown.clone(),
            detail: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.validate()?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.state_dir);
        if let Some(p) = &mut self.publication.file {
            fix(p);
        }
        if let Some(SecretSource::File(p)) = self
            .publication
            .cloudflare_kv
            .as_mut()
            .map(|k| &mut k.token)
        {
            fix(p);
        }
        if let Some(SecretSource::File(p)) = self.publication.http.as_mut().map(|h| &mut h.token) {
            fix(p);
        }
        for p in [&mut self.http.tls_cert, &mut self.http.tls_key]
            .into_iter()
            .flatten()
        {
            fix(p);
        }
        if let provii_hsm::PinSource::File(p) = &mut self.hsm.pin {
            fix(p);
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let id = &self.issuer_id;
        if id.is_empty() || id.len() > 255 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "issuer_id",
                format!("{id:?} is not 1-255 printable ASCII characters"),
                "use your issuer's DNS-style id, e.g. \"dmv.example.gov\"",
            ));
        }
        if self.http.tls_cert.is_some() != self.http.tls_key.is_some() {
            return Err(invalid(
                "http.tls_cert",
                "tls_cert and tls_key must be set together",
                "give both PEM files, or neither for plain HTTP behind a proxy",
            ));
        }
        if let Some(n) = self.http.crypto_concurrency
            && !(1..=1024).contains(&n)
        {
            return Err(invalid(
                "http.crypto_concurrency",
                format!("{n} is outside 1..=1024"),
                "leave it out for twice the CPUs, or give a small multiple of them",
            ));
        }
        if let Some(ms) = self.http.crypto_timeout_ms
            && !(100..=60_000).contains(&ms)
        {
            return Err(invalid(
                "http.crypto_timeout_ms",
                format!("{ms} is outside 100..=60000"),
                "leave it out for 5000, or give somewhat less than your clients' own timeout",
            ));
        }
        if let Some(n) = self.http.max_connections
            && !(1..=65_536).contains(&n)
        {
            return Err(invalid(
                "http.max_connections",
                format!("{n} is outside 1..=65536"),
                "leave it out for 1024; keep it below the service's LimitNOFILE",
            ));
        }
        for (key, value) in [
            ("http.header_timeout_ms", self.http.header_timeout_ms),
            ("http.body_timeout_ms", self.http.body_timeout_ms),
        ] {
            if let Some(ms) = value
                && !(100..=300_000).contains(&ms)
            {
                return Err(invalid(
                    key,
                    format!("{ms} is outside 100..=300000"),
                    "leave it out for 10000, or give what your slowest legitimate client needs",
                ));
            }
        }
        if let Some(h) = &self.publication.http
            && !(h.url.starts_with("https://") || h.url.starts_with("http://"))
        {
            return Err(invalid(
                "publication.http.url",
                format!("{:?} is not an http(s) URL", h.url),
                "give the full URL the edge takes the JWKS at, e.g. \"https://edge.example/provii/jwks\"",
            ));
        }
        let i = &self.issuance;
        if i.max_validity_days == 0 || i.max_validity_days > MAX_VALIDITY_DAYS {
            return Err(invalid(
                "issuance.max_validity_days",
                format!("{} is outside 1..=36500", i.max_validity_days),
                "the protocol caps credentials at 36 500 days",
            ));
        }
        if i.validity_days == 0 || i.validity_days > i.max_validity_days {
            return Err(invalid(
                "issuance.validity_days",
                format!(
                    "{} is outside 1..=max_validity_days ({})",
                    i.validity_days, i.max_validity_days
                ),
                "7300 (20 years) is the spec's recommendation",
            ));
        }
        // Upper bounds keep the arithmetic on these (seconds added to the
        // clock as i64) exact, and catch a unit mistake.
        let p = &self.publication;
        if p.rotation_days == 0 || p.rotation_days > MAX_ROTATION_DAYS {
            return Err(invalid(
                "publication.rotation_days",
                format!("{} is outside 1..={MAX_ROTATION_DAYS}", p.rotation_days),
                "180 is the spec's recommendation",
            ));
        }
        if p.lead_time_seconds > ONE_YEAR_SECONDS {
            return Err(invalid(
                "publication.lead_time_seconds",
                format!("{} is over a year", p.lead_time_seconds),
                "3600 covers the edge verifier's cache (WIRE.md §6)",
            ));
        }
        let o = &self.officers;
        if o.lockout_failures == 0 {
            return Err(invalid(
                "officers.lockout_failures",
                "0 would lock every officer",
                "use 5 (the deployed value)",
            ));
        }
        if o.lockout_seconds == 0 || o.lockout_seconds > ONE_YEAR_SECONDS {
            return Err(invalid(
                "officers.lockout_seconds",
                format!("{} is outside 1..={ONE_YEAR_SECONDS}", o.lockout_seconds),
                "use 900 (the deployed value); `officers unlock` lifts a lockout early",
            ));
        }
        if o.max_failures_per_source_per_hour == 0 {
            return Err(invalid(
                "officers.max_failures_per_source_per_hour",
                "0 would refuse every authentication",
                "use 30 (the default)",
            ));
        }
        let r = &self.rate_limits;
        for (key, v) in [
            ("rate_limits.per_source_per_minute", r.per_source_per_minute),
            ("rate_limits.per_client_per_minute", r.per_client_per_minute),
            (
                "rate_limits.per_officer_per_minute",
                r.per_officer_per_minute,
            ),
            ("rate_limits.global_per_second", r.global_per_second),
        ] {
            if v == 0 {
                return Err(invalid(
                    key,
                    "0 refuses every request",
                    "set a positive limit",
                ));
            }
        }
        if self.hsm.pool_size == 0 || self.hsm.pool_size > 64 {
            return Err(invalid(
                "hsm.pool_size",
                format!("{} is outside 1..=64", self.hsm.pool_size),
                "4 suits a 2-core host",
            ));
        }
        Ok(())
    }

    pub fn db_path(&self) -> PathBuf {
        self.state_dir.join("appliance.db")
    }

    pub fn admin_socket(&self) -> PathBuf {
        self.state_dir.join("admin.sock")
    }

    pub fn schema(&self) -> &'static str {
        AGE_SCHEMA
    }
}
