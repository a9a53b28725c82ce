//! PKCS#11 custody for the Provii issuer appliance (DESIGN.md §3).
//!
//! One [`Hsm`] per process owns the token: it finds it by label or serial,
//! keeps an anchor session logged in, gives each caller a worker session of
//! its own, and rides out device faults by re-initialising the library in
//! the background while callers get [`HsmError::Unavailable`].

mod config;
mod connection;
mod error;
pub mod hardening;
mod hsm;
mod inventory;
mod keys;
mod labels;
mod locked;
mod ops;
mod signer;
pub mod threads;

pub use config::{HsmConfig, PinSource, SOFTHSM_MODULE, TokenSelector};
pub use error::{FaultClass, HsmError, Result, classify};
pub use hsm::{Hsm, HsmState, HsmStatus, ProvisioningGuard};
pub use inventory::ObjectInfo;
pub use keys::SecretKind;
pub use labels::ObjectLabel;
pub use locked::LockedBytes;
pub use ops::SealedBlob;
pub use signer::{SealedSigningKey, sealed_key_aad};
