//! What survives a crash and what retention keeps.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use provii_e2e::Appliance;
use provii_e2e::world::{good_r_bits, now, random_hex32};

#[test]
fn kill_9_during_issuance_loses_no_consumed_nonce() {
    let mut app = Appliance::start("kill9");
    let bank = app.enrol_client("bank-k", false);
    let attestations: Vec<String> = (0..60)
        .map(|_| {
            let r = app.post(
                "/v1/attestation/create",
                &bank.request(7300, now(), &random_hex32()),
            );
            assert_eq!(r.status, 201);
            r.json()["attestation"]
                .as_str()
                .expect("attestation")
                .to_owned()
        })
        .collect();
    let issued = Mutex::new(Vec::new());
    let started = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for worker in 0..4 {
            let (app, attestations, issued, started) = (&app, &attestations, &issued, &started);
            s.spawn(move || {
                for att in attestations.iter().skip(worker).step_by(4) {
                    started.fetch_add(1, Ordering::SeqCst);
                    let Ok(r) = provii_e2e::http::post_json(
                        &app.addr,
                        "/v1/issuance/blind",
                        &serde_json::json!({"attestation": att, "r_bits": provii_circuits::encoding::b64url_encode(&good_r_bits())}).to_string(),
                    ) else {
                        return; // the daemon is gone
                    };
                    if r.status == 200 {
                        issued.lock().expect("lock").push(att.clone());
                    }
                }
            });
        }
        // Let some issuances through, then pull the plug mid-stream.
        while issued.lock().expect("lock").len() < 10 {
            std::thread::sleep(Duration::from_millis(2));
        }
        let pid = app.pid().expect("daemon running");
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .expect("kill -9");
    });
    app.kill();
    let issued = issued.into_inner().expect("lock");
    assert!(
        issued.len() >= 10 && issued.len() < attestations.len(),
        "{} of {} issued before the kill",
        issued.len(),
        attestations.len()
    );

    let conn = rusqlite::Connection::open(app.db_path()).expect("db");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    drop(conn);

    app.spawn();
    for att in &issued {
        let r = app.issue(att, &good_r_bits());
        assert_eq!(
            (r.status, r.code().as_str()),
            (409, "INVALID_STATE_TRANSITION"),
            "an attestation that earned a 200 was accepted again"
        );
    }
    assert_eq!(app.cli_json(&["audit", "verify"])["ok"], true);
}

#[test]
fn sigterm_stops_cleanly() {
    let mut app = Appliance::start("sigterm");
    assert_eq!(app.get("/health").status, 200);
    let status = app.stop();
    assert!(status.success(), "daemon exited with {status}");
}
