//! An HSM outage at daemon level (DESIGN.md §6): the daemon reaches SoftHSM
//! through `p11-kit server`, which the test kills and restarts. During the
//! outage requests get 503 with Retry-After and /ready fails; afterwards the
//! same daemon process answers again, without a restart. An HSM that hangs
//! instead (the server stopped, not killed) costs requests at most
//! `http.crypto_timeout_ms`, then a 503, and /ready says it is unresponsive.
//!
//! p11-kit 0.24's RPC carries neither CKM_EDDSA nor CKM_AES_GCM, so through
//! it the daemon cannot sign; what this test exercises is the HSM-backed
//! authentication path (HMAC in the HSM, audit MACs), which it does carry.

use std::time::{Duration, Instant};

use provii_e2e::Appliance;
use provii_e2e::p11kit::P11KitServer;
use provii_e2e::world::{IssuingParty, now, random_hex32};
use serde_json::json;

/// A correctly formed request whose HMAC is wrong: the HSM must be asked to
/// know it is wrong, so the answer tells whether the HSM is reachable.
fn probe(app: &Appliance, bank: &IssuingParty) -> provii_e2e::Response {
    let mut req = bank.request(7300, now(), &random_hex32());
    req["authorizer"]["hmac"] = json!("00".repeat(32));
    app.post("/v1/attestation/create", &req)
}

#[test]
fn the_daemon_rides_out_an_hsm_outage() {
    let (app, server, socket) = Appliance::start_via_p11kit("hsm-outage", "");
    let pid = app.pid().expect("daemon");
    let bank = app.enrol_client("bank-o", false);
    assert_eq!(
        probe(&app, &bank).status,
        401,
        "the HSM answers through p11-kit"
    );

    server.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    let during = loop {
        let r = probe(&app, &bank);
        if r.status == 503 {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "no 503 during the outage (last {})",
            r.status
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(during.code(), "SERVICE_UNAVAILABLE");
    assert!(during.header("retry-after").is_some());
    let ready = app.get("/ready");
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["hsm"]["state"], "unusable");

    let _server = P11KitServer::start(&socket, &label_of(&app), &app.softhsm_conf);
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.get("/ready").status != 200 {
        assert!(Instant::now() < deadline, "the daemon did not recover");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        probe(&app, &bank).status,
        401,
        "HSM-backed authentication works again"
    );
    assert_eq!(app.pid(), Some(pid), "no restart");
    let metrics = String::from_utf8(app.get("/metrics").body).expect("text");
    assert!(metrics.contains("provii_hsm_reconnects 1"), "{metrics}");
}

#[test]
fn requests_get_503_while_the_hsm_hangs_and_recover_when_it_answers() {
    // Two crypto threads, whatever the machine: the probes below hang both.
    let (app, server, _socket) = Appliance::start_via_p11kit(
        "hsm-hang",
        "crypto_timeout_ms = 500\ncrypto_concurrency = 2",
    );
    let pid = app.pid().expect("daemon");
    let bank = app.enrol_client("bank-h", false);
    assert_eq!(probe(&app, &bank).status, 401, "the HSM answers");

    server.freeze();
    // The first request's HMAC check hangs in the HSM; the next two wait
    // behind it or hang beside it. Each gets its answer at the deadline
    // (the harness itself would give up after 30 s).
    for _ in 0..3 {
        let during = probe(&app, &bank);
        assert_eq!(
            during.status,
            503,
            "{}",
            String::from_utf8_lossy(&during.body)
        );
        assert_eq!(during.code(), "SERVICE_UNAVAILABLE");
        assert!(during.header("retry-after").is_some());
    }
    for _ in 0..2 {
        let ready = app.get("/ready");
        assert_eq!(ready.status, 503);
        assert_eq!(ready.json()["hsm"]["state"], "unresponsive");
        assert!(ready.header("retry-after").is_some());
    }
    let metrics = String::from_utf8(app.get("/metrics").body).expect("text");
    assert!(
        metrics.contains(
            "provii_http_requests_total{route=\"/v1/attestation/create\",status=\"503\"} 3"
        ),
        "{metrics}"
    );
    // Every crypto thread has now been inside the HSM past the deadline:
    // a request is refused unqueued (the message says so) rather than
    // waiting out a deadline no queued job could meet.
    std::thread::sleep(Duration::from_millis(600));
    let refused = probe(&app, &bank);
    assert_eq!(refused.status, 503);
    assert!(refused.header("retry-after").is_some());
    assert!(
        refused.json()["error"]
            .as_str()
            .is_some_and(|m| m.contains("not answering")),
        "{}",
        String::from_utf8_lossy(&refused.body)
    );

    server.thaw();
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.get("/ready").status != 200 {
        assert!(Instant::now() < deadline, "the daemon did not recover");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(probe(&app, &bank).status, 401, "the HSM answers again");
    assert_eq!(app.pid(), Some(pid), "no restart");
}

#[test]
fn sigterm_stops_the_daemon_while_the_hsm_hangs() {
    let (mut app, server, _socket) =
        Appliance::start_via_p11kit("hsm-hang-stop", "crypto_timeout_ms = 500");
    let bank = app.enrol_client("bank-s", false);
    server.freeze();
    // A crypto thread and a /ready probe are now inside the frozen HSM,
    // and will not come back while it stays frozen.
    assert_eq!(probe(&app, &bank).status, 503);
    assert_eq!(app.get("/ready").status, 503);
    // The limit only keeps a broken shutdown from hanging the suite.
    let status = app
        .stop_within(Duration::from_secs(120))
        .expect("the daemon did not exit on SIGTERM");
    assert!(status.success(), "daemon exited with {status}");
    server.thaw();
}

/// The token label the harness gave this appliance (from its config).
fn label_of(app: &Appliance) -> String {
    let text = std::fs::read_to_string(&app.config).expect("config");
    text.split("label = \"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("label")
        .to_owned()
}
