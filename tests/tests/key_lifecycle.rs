//! Key lifecycle and publication (first slice of issue 6): a new key is
//! published before it may sign, activation waits for the confirmed lead
//! time unless forced (and audited), the replaced key stays published as
//! deprecated, and a revoked key leaves the JWKS at once.

use std::time::{Duration, Instant};

use provii_e2e::Appliance;
use provii_e2e::world::good_r_bits;
use serde_json::Value;

fn published(app: &Appliance) -> Vec<(String, String)> {
    let file = app.dir.join("jwks.json");
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    let v: Value = serde_json::from_str(&text).expect("the sink holds JSON");
    v["keys"]
        .as_array()
        .map(|keys| {
            keys.iter()
                .map(|k| {
                    (
                        k["kid"].as_str().unwrap_or("").to_owned(),
                        k["status"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the file sink shows `expected` (delivery is asynchronous).
fn wait_published(app: &Appliance, expected: &[(&str, &str)]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = published(app);
        let want: Vec<(String, String)> = expected
            .iter()
            .map(|(k, s)| ((*k).to_owned(), (*s).to_owned()))
            .collect();
        if got.len() == want.len() && want.iter().all(|w| got.contains(w)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "published {got:?}, expected {want:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kid_of_new_credential(app: &Appliance) -> String {
    let att = app.officer_attestation(9000);
    let r = app.issue(&att, &good_r_bits());
    assert_eq!(r.status, 200, "{:?}", r.json());
    r.json()["credential"]["kid"]
        .as_str()
        .expect("kid")
        .to_owned()
}

#[test]
fn keys_are_published_before_they_sign_and_leave_when_revoked() {
    let app = Appliance::start_with(
        "keys",
        "[publication]\nfile = \"jwks.json\"\nlead_time_seconds = 5\n",
    );
    let first = kid_of_new_credential(&app);
    wait_published(&app, &[(&first, "active")]);
    let first_etag = app
        .get("/.well-known/jwks.json")
        .header("etag")
        .expect("etag")
        .to_owned();

    let created = app.cli_json(&["keys", "create"]);
    let second = created["kid"].as_str().expect("kid").to_owned();
    // The cached copy a wallet holds is stale now: its ETag no longer matches.
    let revalidated = provii_e2e::http::raw(
        &app.addr,
        format!("GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\nIf-None-Match: {first_etag}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .expect("http");
    assert_eq!(revalidated.status, 200, "a changed key set answered 304");
    assert_ne!(revalidated.header("etag"), Some(first_etag.as_str()));
    assert_eq!(second.len(), 14);
    assert_ne!(second, first);
    wait_published(&app, &[(&first, "active"), (&second, "pending")]);
    let endpoint = app.get("/.well-known/jwks.json").json();
    assert_eq!(endpoint["keys"].as_array().map(Vec::len), Some(2));

    // Too early: the publication has not been confirmed for the lead time.
    let out = app.cli(&["keys", "activate", &second]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lead time"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        kid_of_new_credential(&app),
        first,
        "the old key still signs"
    );

    // The lead time is long enough that a slow machine still asks too
    // early above; from here, activation goes through once it has passed.
    app.activate_when_allowed(&second);
    assert_eq!(kid_of_new_credential(&app), second);
    wait_published(&app, &[(&first, "deprecated"), (&second, "active")]);

    // Forced activation works at once and is recorded with its risk.
    let third = app.cli_json(&["keys", "create"])["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    app.cli_json(&["keys", "activate", &third, "--force"]);
    assert_eq!(kid_of_new_credential(&app), third);
    let audit = String::from_utf8_lossy(&app.cli(&["audit", "export"]).stdout).into_owned();
    assert!(
        audit.contains("\"forced\":true"),
        "forced activation audited"
    );

    // Revocation: out of the JWKS at once, and no issuance without an active key.
    app.cli_json(&["keys", "revoke", &third, "--reason", "compromised"]);
    let endpoint = app.get("/.well-known/jwks.json").json();
    assert!(
        !endpoint.to_string().contains(&third),
        "revoked key still served"
    );
    wait_published(&app, &[(&first, "deprecated"), (&second, "deprecated")]);
    let att = app.officer_attestation(9000);
    let r = app.issue(&att, &good_r_bits());
    assert_eq!((r.status, r.code().as_str()), (503, "SERVICE_UNAVAILABLE"));
    assert_eq!(app.get("/ready").status, 503);
    let status = app.cli_json(&["status"]);
    assert_eq!(status["outbox"]["unconfirmed"], 0, "{status}");
    let metrics = String::from_utf8(app.get("/metrics").body).expect("text");
    assert!(
        metrics.contains("provii_outbox_unconfirmed 0")
            && metrics.contains("provii_outbox_lag_seconds 0"),
        "{metrics}"
    );
}

#[test]
fn deprecated_keys_retire_once_their_credentials_have_expired() {
    let mut app = Appliance::start_with(
        "retire",
        "[publication]\nfile = \"jwks.json\"\nlead_time_seconds = 1\n",
    );
    let used = kid_of_new_credential(&app); // the init key: a valid credential exists under it
    let unused = app.cli_json(&["keys", "create"])["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    app.cli_json(&["keys", "activate", &unused, "--force"]);
    let last = app.cli_json(&["keys", "create"])["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    app.cli_json(&["keys", "activate", &last, "--force"]);
    // Both earlier keys are deprecated now; only `unused` signed nothing.
    app.stop();
    app.spawn(); // housekeeping runs once at start
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let jwks = app.get("/.well-known/jwks.json").json().to_string();
        if !jwks.contains(&unused) {
            assert!(
                jwks.contains(&used),
                "a key with live credentials must stay published: {jwks}"
            );
            assert!(jwks.contains(&last));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the unused deprecated key never retired: {jwks}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_published(&app, &[(&used, "deprecated"), (&last, "active")]);
    let keys = app.cli_json(&["keys", "list"]);
    assert!(keys.to_string().contains("\"retired\""), "{keys}");
    assert!(
        String::from_utf8_lossy(&app.cli(&["audit", "export"]).stdout).contains("\"key.retired\"")
    );
}

#[test]
fn attestation_keys_rotate_with_an_overlap_then_the_old_one_is_disabled() {
    let mut app = Appliance::start("attest-rotate");
    let before_a = app.officer_attestation(9000);
    let before_b = app.officer_attestation(9000);
    let rotated = app.cli_json(&["keys", "rotate-attestation"]);
    assert_eq!(rotated["label"], "provii/attest/2");
    assert!(
        rotated["previous_verifies_for_seconds"]
            .as_i64()
            .is_some_and(|s| s >= 3660)
    );
    // The new key signs at once; the previous one still verifies.
    let after = app.officer_attestation(9000);
    assert_eq!(app.issue(&after, &good_r_bits()).status, 200);
    assert_eq!(
        app.issue(&before_a, &good_r_bits()).status,
        200,
        "an attestation from before the rotation"
    );
    // Once the overlap has passed (aged here in the database), the old key is disabled.
    app.stop();
    let conn = rusqlite::Connection::open(app.db_path()).expect("db");
    conn.execute("UPDATE attestation_key_windows SET verify_until = 0", [])
        .expect("age");
    drop(conn);
    app.spawn();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = app.issue(&before_b, &good_r_bits());
        if r.status == 401 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old attestation key still verifies ({})",
            r.status
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        String::from_utf8_lossy(&app.cli(&["audit", "export"]).stdout)
            .contains("\"attestation_key.disabled\"")
    );
}

#[test]
fn the_rotation_schedule_prepares_a_successor_and_reports_overdue_keys() {
    let mut app = Appliance::start_with(
        "schedule",
        "[publication]\nrotation_days = 30\nlead_time_seconds = 1\n",
    );
    let status = app.cli_json(&["status"]);
    assert_eq!(status["rotation"]["overdue"], false, "{status}");
    // Age the active key past its rotation date.
    app.stop();
    let conn = rusqlite::Connection::open(app.db_path()).expect("db");
    conn.execute("UPDATE signing_keys SET created_at = created_at - 40 * 86400, activated_at = activated_at - 40 * 86400", []).expect("age");
    drop(conn);
    app.spawn(); // housekeeping runs once at start
    let deadline = Instant::now() + Duration::from_secs(20);
    let pending = loop {
        let keys = app.cli_json(&["keys", "list"]);
        if let Some(k) = keys
            .as_array()
            .and_then(|a| a.iter().find(|k| k["state"] == "pending"))
        {
            break k["kid"].as_str().expect("kid").to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no successor was created: {keys}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let status = app.cli_json(&["status"]);
    assert_eq!(
        (
            status["rotation"]["overdue"].clone(),
            status["rotation"]["successor_pending"].clone()
        ),
        (Value::Bool(true), Value::Bool(true)),
        "{status}"
    );
    let metrics = String::from_utf8(app.get("/metrics").body).expect("text");
    assert!(
        metrics.contains("provii_signing_key_rotation_overdue 1"),
        "{metrics}"
    );
    app.cli_json(&["keys", "activate", &pending, "--force"]);
    assert_eq!(app.cli_json(&["status"])["rotation"]["overdue"], false);
    assert!(
        String::from_utf8(app.get("/metrics").body)
            .expect("text")
            .contains("provii_signing_key_rotation_overdue 0")
    );
}

#[test]
fn a_compromised_attestation_key_stops_verifying_at_once() {
    let app = Appliance::start("attest-compromised");
    let before = app.officer_attestation(9000);
    let rotated = app.cli_json(&["keys", "rotate-attestation", "--compromised"]);
    assert_eq!(rotated["previous_verifies_for_seconds"], 0);
    let r = app.issue(&before, &good_r_bits());
    assert_eq!(
        (r.status, r.code().as_str()),
        (401, "UNAUTHORIZED"),
        "an attestation under the compromised key"
    );
    let after = app.officer_attestation(9000);
    assert_eq!(app.issue(&after, &good_r_bits()).status, 200);
    assert!(
        String::from_utf8_lossy(&app.cli(&["audit", "export"]).stdout)
            .contains("\"previous_verifies_for_seconds\":0")
    );
}
