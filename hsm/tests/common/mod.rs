//! Test tokens made by `softhsm/token.sh` in `target/softhsm-test`, the
//! directory whose `softhsm2.conf` `.cargo/config.toml` points SOFTHSM2_CONF at.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use provii_hsm::{Hsm, HsmConfig, PinSource, SOFTHSM_MODULE, TokenSelector};

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace directory")
}

pub fn test_dir() -> PathBuf {
    workspace().join("target/softhsm-test")
}

/// tmpfs when there is one: token objects are ~100x faster to create there.
pub fn tokendir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.join(format!("provii-softhsm-test-{}", unsafe_free_uid()))
    } else {
        test_dir().join("tokens")
    }
}

fn unsafe_free_uid() -> String {
    std::env::var("USER").unwrap_or_else(|_| "user".into())
}

/// Initialises (once) a token with this label; returns the config to open it.
pub fn token(label: &str) -> HsmConfig {
    let dir = test_dir();
    let status = Command::new("bash")
        .arg(workspace().join("softhsm/token.sh"))
        .arg(&dir)
        .arg(label)
        .env("SOFTHSM_TOKENDIR", tokendir())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run softhsm/token.sh (needs bash and softhsm2; scripts/test.sh installs them)");
    assert!(status.success(), "softhsm/token.sh failed");
    assert_eq!(
        std::env::var_os("SOFTHSM2_CONF").map(PathBuf::from),
        Some(dir.join("softhsm2.conf")),
        "SOFTHSM2_CONF must come from .cargo/config.toml"
    );
    HsmConfig::new(
        SOFTHSM_MODULE,
        TokenSelector::Label(label.to_owned()),
        PinSource::File(dir.join("user-pin")),
    )
}

/// A label unique to this test process, so reruns start from a fresh token.
pub fn unique_label(prefix: &str) -> String {
    format!("{prefix}-{}", std::process::id())
}

pub fn open(label: &str) -> Hsm {
    Hsm::open(token(label)).expect("open the test token")
}
