//! Configuration: the documented example loads; mistakes name the key.

use std::path::{Path, PathBuf};

use provii_appliance::config::{Config, ConfigError};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load_text(text: &str) -> Result<Config, ConfigError> {
    let dir = std::env::temp_dir().join(format!(
        "provii-config-test-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("appliance.toml");
    std::fs::write(&path, text).expect("write");
    Config::load(&path)
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

const MINIMAL: &str = "issuer_id = \"x.example\"\nstate_dir = \"state\"\n[http]\nlisten = \"127.0.0.1:1\"\n[hsm]\ntoken = { label = \"t\" }\npin = { env = \"P\" }\n";

#[test]
fn the_examples_load() {
    for name in ["appliance.example.toml", "dev.toml"] {
        let c = Config::load(&repo().join("config").join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            c.state_dir.is_absolute(),
            "{name}: relative paths resolve against the file"
        );
    }
}

#[test]
fn defaults_follow_the_spec() {
    let c = load_text(MINIMAL).expect("minimal config");
    assert_eq!(c.issuance.validity_days, 7300);
    assert!(c.officers.require_intent);
    assert_eq!(
        (c.officers.lockout_failures, c.officers.lockout_seconds),
        (5, 900)
    );
    let c = load_text(&MINIMAL.replace("[hsm]", "crypto_concurrency = 3\n[hsm]")).expect("set");
    assert_eq!(c.http.crypto_threads(), 3);
    assert_eq!(
        load_text(MINIMAL).expect("minimal").http.crypto_timeout(),
        std::time::Duration::from_secs(5),
        "the documented default"
    );
    let limits = load_text(MINIMAL)
        .expect("minimal")
        .http
        .connection_limits();
    assert_eq!(
        (
            limits.max_connections,
            limits.header_timeout,
            limits.body_timeout
        ),
        (
            1024,
            std::time::Duration::from_secs(10),
            std::time::Duration::from_secs(10)
        ),
        "the documented defaults"
    );
    let c = load_text(&MINIMAL.replace("[hsm]", "crypto_timeout_ms = 750\n[hsm]")).expect("set");
    assert_eq!(
        c.http.crypto_timeout(),
        std::time::Duration::from_millis(750)
    );
}

#[test]
fn mistakes_name_the_key() {
    let cases = [
        (
            MINIMAL.replace("[http]", "[issuance]\nvalidity_days = 0\n[http]"),
            "issuance.validity_days",
        ),
        (
            MINIMAL.replace("[http]", "[issuance]\nmax_validity_days = 36501\n[http]"),
            "issuance.max_validity_days",
        ),
        (
            MINIMAL.replace("[http]", "[rate_limits]\nglobal_per_second = 0\n[http]"),
            "rate_limits.global_per_second",
        ),
        (MINIMAL.replace("x.example", ""), "issuer_id"),
        (
            MINIMAL.replace("[hsm]", "crypto_concurrency = 0\n[hsm]"),
            "http.crypto_concurrency",
        ),
        (
            MINIMAL.replace("[hsm]", "crypto_concurrency = 1025\n[hsm]"),
            "http.crypto_concurrency",
        ),
        (
            MINIMAL.replace("[hsm]", "crypto_timeout_ms = 99\n[hsm]"),
            "http.crypto_timeout_ms",
        ),
        (
            MINIMAL.replace("[hsm]", "crypto_timeout_ms = 60001\n[hsm]"),
            "http.crypto_timeout_ms",
        ),
        (
            MINIMAL.replace("[http]", "[officers]\nlockout_failures = 0\n[http]"),
            "officers.lockout_failures",
        ),
        (
            MINIMAL.replace("[http]", "[officers]\nlockout_seconds = 0\n[http]"),
            "officers.lockout_seconds",
        ),
        // As an i64 this is -1: the lockout would end before it began.
        (
            MINIMAL.replace(
                "[http]",
                "[officers]\nlockout_seconds = 18446744073709551615\n[http]",
            ),
            "officers.lockout_seconds",
        ),
        (
            MINIMAL.replace(
                "[http]",
                "[officers]\nmax_failures_per_source_per_hour = 0\n[http]",
            ),
            "officers.max_failures_per_source_per_hour",
        ),
        (
            MINIMAL.replace("[http]", "[publication]\nrotation_days = 3651\n[http]"),
            "publication.rotation_days",
        ),
        (
            MINIMAL.replace(
                "[http]",
                "[publication]\nlead_time_seconds = 9223372036854775808\n[http]",
            ),
            "publication.lead_time_seconds",
        ),
        (
            MINIMAL.replace("[hsm]", "max_connections = 0\n[hsm]"),
            "http.max_connections",
        ),
        (
            MINIMAL.replace("[hsm]", "header_timeout_ms = 99\n[hsm]"),
            "http.header_timeout_ms",
        ),
        (
            MINIMAL.replace("[hsm]", "body_timeout_ms = 300001\n[hsm]"),
            "http.body_timeout_ms",
        ),
    ];
    for (text, key) in cases {
        let err = load_text(&text).expect_err(key).to_string();
        assert!(err.contains(key), "{err}");
    }
    let err = load_text(&MINIMAL.replace("[http]", "colour = 1\n[http]"))
        .expect_err("unknown key")
        .to_string();
    assert!(err.contains("colour"), "{err}");
    let err = load_text(&MINIMAL.replace("listen = \"127.0.0.1:1\"", ""))
        .expect_err("missing")
        .to_string();
    assert!(err.contains("listen"), "{err}");
}
