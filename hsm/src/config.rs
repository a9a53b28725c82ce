//! Where the HSM is and how to log in. The PIN itself never lives in the
//! configuration: it is read from a file, a systemd credential or the
//! environment each time the appliance logs in.

use std::path::PathBuf;

use cryptoki::types::AuthPin;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::{HsmError, Result};

/// The default module: SoftHSM 2 as Debian installs it.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// A token is found by what it is, never by slot number: SoftHSM renumbers
/// slots between processes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSelector {
    Label(String),
    Serial(String),
}

impl core::fmt::Display for TokenSelector {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TokenSelector::Label(l) => write!(f, "labelled {l:?}"),
            TokenSelector::Serial(s) => write!(f, "with serial {s:?}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PinSource {
    /// A file holding the PIN (trailing newline ignored); mode 0600 or 0400.
    File(PathBuf),
    /// `$CREDENTIALS_DIRECTORY/<name>`, as systemd's `LoadCredential=` provides.
    SystemdCredential(String),
    /// An environment variable.
    Env(String),
}

impl core::fmt::Display for PinSource {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PinSource::File(p) => write!(f, "file {}", p.display()),
            PinSource::SystemdCredential(n) => write!(f, "systemd credential {n:?}"),
            PinSource::Env(v) => write!(f, "environment variable {v}"),
        }
    }
}

impl PinSource {
    pub fn read(&self) -> Result<AuthPin> {
        let raw: Zeroizing<String> = match self {
            PinSource::File(path) => read_pin_file(path)?,
            PinSource::SystemdCredential(name) => {
                if name.is_empty() || name.contains('/') {
                    return Err(HsmError::Pin(format!(
                        "credential name {name:?} is not a plain name"
                    )));
                }
                let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
                    HsmError::Pin(
                        "CREDENTIALS_DIRECTORY is not set; is LoadCredential= in the unit?".into(),
                    )
                })?;
                read_pin_file(&PathBuf::from(dir).join(name))?
            }
            PinSource::Env(var) => Zeroizing::new(
                std::env::var(var)
                    .map_err(|_| HsmError::Pin(format!("environment variable {var} is not set")))?,
            ),
        };
        let pin = raw.trim_end_matches(['\n', '\r']);
        if pin.is_empty() {
            return Err(HsmError::Pin(format!("the PIN from {self} is empty")));
        }
        Ok(AuthPin::from(pin))
    }
}

fn read_pin_file(path: &std::path::Path) -> Result<Zeroizing<String>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .map_err(|e| HsmError::Pin(format!("{}: {e}", path.display())))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(HsmError::Pin(format!(
                "{} is readable by group or others; chmod 600 it",
                path.display()
            )));
        }
    }
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|e| HsmError::Pin(format!("{}: {e}", path.display())))
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsmConfig {
    /// Path of the PKCS#11 module.
    #[serde(default = "default_module")]
    pub module: PathBuf,
    pub token: TokenSelector,
    pub pin: PinSource,
    /// Worker sessions kept open for reuse (more are opened under load).
    #[serde(default = "default_pool")]
    pub pool_size: usize,
}

fn default_module() -> PathBuf {
    PathBuf::from(SOFTHSM_MODULE)
}

fn default_pool() -> usize {
    4
}

impl HsmConfig {
    pub fn new(module: impl Into<PathBuf>, token: TokenSelector, pin: PinSource) -> Self {
        Self {
            module: module.into(),
            token,
            pin,
            pool_size: default_pool(),
        }
    }
}
