//! Errors of the HSM layer, and the fault classification that decides
//! whether a failure is worth a reconnect (in the manner of Krill's signer).

use cryptoki::error::{Error as P11Error, RvError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HsmError {
    /// The HSM cannot be used right now; a background task is reconnecting.
    /// The daemon answers 503 with this.
    #[error("HSM unavailable ({reason}); reconnecting in the background, retry shortly")]
    Unavailable { reason: String },
    #[error(
        "login to token {token:?} failed: the user PIN is wrong; check the PIN from {pin_source}"
    )]
    WrongPin { token: String, pin_source: String },
    #[error(
        "login to token {token:?} refused locally after failed attempts; retry in {retry_after_secs} s"
    )]
    LoginRateLimited {
        token: String,
        retry_after_secs: u64,
    },
    #[error(
        "no initialised token {token} in PKCS#11 module {module}; initialise it (softhsm/token.sh) or fix [hsm] token"
    )]
    TokenNotFound { token: String, module: String },
    #[error("cannot load PKCS#11 module {module}: {detail}")]
    Module { module: String, detail: String },
    #[error("HSM object {label:?} not found; provision it first")]
    ObjectNotFound { label: String },
    #[error("HSM object {label:?} already exists; refusing to create a second one")]
    ObjectExists { label: String },
    #[error(
        "AES-GCM authentication failed: the ciphertext or its AAD was altered, or it was sealed under another key"
    )]
    AuthenticationFailed,
    #[error("cannot read the HSM user PIN: {0}")]
    Pin(String),
    #[error("the HSM refused {operation}: {detail}")]
    Refused {
        operation: &'static str,
        detail: String,
    },
    #[error("invalid input to {operation}: {detail}")]
    InvalidInput {
        operation: &'static str,
        detail: &'static str,
    },
    #[error("cannot lock secret memory: {0}; raise LimitMEMLOCK for the service")]
    MemoryLock(String),
    #[error(transparent)]
    Protocol(#[from] provii_circuits::Error),
}

pub type Result<T, E = HsmError> = core::result::Result<T, E>;

/// Whether retrying after re-initialising the library can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultClass {
    /// Device gone, session or handle lost, library reset: reconnect.
    Transient,
    /// Wrong PIN, missing key, unsupported mechanism, bad input: report.
    Permanent,
}

pub fn classify(rv: RvError) -> FaultClass {
    use RvError::*;
    match rv {
        DeviceError
        | DeviceRemoved
        | DeviceMemory
        | SessionClosed
        | SessionHandleInvalid
        | SessionCount
        | ObjectHandleInvalid
        | KeyHandleInvalid
        | TokenNotPresent
        | TokenNotRecognized
        | FunctionFailed
        | CryptokiNotInitialized
        | UserNotLoggedIn
        | SlotIdInvalid => FaultClass::Transient,
        _ => FaultClass::Permanent,
    }
}

/// A failed PKCS#11 call, before the session layer decides what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallError {
    pub operation: &'static str,
    pub detail: String,
    pub class: FaultClass,
    pub rv: Option<RvError>,
}

impl CallError {
    pub fn from_p11(operation: &'static str, e: P11Error) -> Self {
        match e {
            P11Error::Pkcs11(rv, function) => Self {
                operation,
                detail: format!("{function:?} returned {rv:?}"),
                class: classify(rv),
                rv: Some(rv),
            },
            other => Self {
                operation,
                detail: other.to_string(),
                class: FaultClass::Permanent,
                rv: None,
            },
        }
    }

    pub fn into_error(self) -> HsmError {
        match self.class {
            FaultClass::Transient => HsmError::Unavailable {
                reason: format!("{}: {}", self.operation, self.detail),
            },
            FaultClass::Permanent => HsmError::Refused {
                operation: self.operation,
                detail: self.detail,
            },
        }
    }
}

/// Shorthand for mapping a cryptoki result inside an operation.
pub(crate) trait P11ResultExt<T> {
    fn op(self, operation: &'static str) -> Result<T, CallError>;
}

impl<T> P11ResultExt<T> for Result<T, P11Error> {
    fn op(self, operation: &'static str) -> Result<T, CallError> {
        self.map_err(|e| CallError::from_p11(operation, e))
    }
}
