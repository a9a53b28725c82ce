//! Logging in: a wrong PIN names the token and is rate-limited locally
//! (SoftHSM itself never locks); PIN sources.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use provii_hsm::{Hsm, HsmError, HsmState, PinSource, TokenSelector};

fn write_pin(name: &str, pin: &str, mode: u32) -> std::path::PathBuf {
    let dir = common::test_dir();
    std::fs::create_dir_all(&dir).expect("test directory");
    let path = dir.join(format!("{name}-{}", std::process::id()));
    std::fs::write(&path, pin).expect("write pin file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

#[test]
fn wrong_pin_is_named_and_rate_limited_then_the_right_pin_works() {
    let label = common::unique_label("pin");
    let mut config = common::token(&label);
    let right = config.pin.clone();
    config.pin = PinSource::File(write_pin("wrong-pin", "not-the-pin\n", 0o600));

    let err = Hsm::open(config.clone())
        .err()
        .expect("wrong PIN must fail");
    assert_eq!(
        err,
        HsmError::WrongPin {
            token: label.clone(),
            pin_source: config.pin.to_string()
        }
    );
    assert!(err.to_string().contains(&label), "{err}");

    // A second attempt straight away never reaches the token.
    match Hsm::open(config.clone()) {
        Err(HsmError::LoginRateLimited {
            token,
            retry_after_secs,
        }) => {
            assert_eq!(token, label);
            assert!(retry_after_secs >= 1);
        }
        other => panic!("expected rate limiting, got {:?}", other.err()),
    }

    // After the (one second) back-off, the right PIN logs in.
    std::thread::sleep(Duration::from_millis(1100));
    config.pin = right;
    let hsm = Hsm::open(config.clone()).expect("right PIN");
    let status = hsm.status();
    assert_eq!(status.state, HsmState::Usable);
    assert_eq!(status.token, label);

    // The same token found by its serial number instead of its label.
    assert_eq!(status.serial.len(), 16, "SoftHSM serials are 16 hex digits");
    config.token = TokenSelector::Serial(status.serial.clone());
    let by_serial = Hsm::open(config.clone()).expect("open by serial");
    assert_eq!(by_serial.status().token, label);
    config.token = TokenSelector::Serial("0000000000000000".into());
    assert!(matches!(
        Hsm::open(config),
        Err(HsmError::TokenNotFound { .. })
    ));
}

#[test]
fn pin_files_must_be_private() {
    let path = write_pin("open-pin", "1234", 0o644);
    let err = PinSource::File(path.clone())
        .read()
        .expect_err("world-readable PIN file");
    assert!(err.to_string().contains("chmod 600"), "{err}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert!(PinSource::File(path).read().is_ok());
}

#[test]
fn pin_sources_report_what_is_missing() {
    let err = PinSource::Env("PROVII_TEST_SURELY_UNSET_VARIABLE".into())
        .read()
        .expect_err("unset");
    assert!(
        err.to_string()
            .contains("PROVII_TEST_SURELY_UNSET_VARIABLE"),
        "{err}"
    );
    // cargo sets CARGO_MANIFEST_DIR for test processes.
    assert!(PinSource::Env("CARGO_MANIFEST_DIR".into()).read().is_ok());
    assert!(
        PinSource::SystemdCredential("../etc/shadow".into())
            .read()
            .is_err()
    );
    assert!(
        PinSource::File(write_pin("empty-pin", "\n", 0o600))
            .read()
            .is_err()
    );
}
