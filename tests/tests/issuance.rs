//! Issue 4's acceptance, against the real daemon on loopback: the officer
//! and client paths end to end, every refusal with its status and code and
//! without side effects, single use under concurrency, the audit chain, and
//! no personal data at rest.

use ed25519_dalek::{Signer, SigningKey};
use provii_circuits::encoding::{b64url_encode, hex_encode};
use provii_circuits::{AttestationFields, DobDays};
use provii_e2e::world::{good_r_bits, now, random_hex32};
use provii_e2e::{Appliance, http, tool};
use serde_json::json;

/// The credential verifies with provii-tool, and its commitment opens with
/// the wallet's date of birth and r_bits.
fn check_credential(cred: &serde_json::Value, dob_days: i32, r_bits: &[u8; 16]) {
    let verdict = tool(
        &["verify-credential", "--credential", "-"],
        cred.to_string().as_bytes(),
    );
    assert_eq!(verdict["valid"], true, "{verdict}");
    let opened = tool(
        &[
            "commit",
            "--dob-days",
            &dob_days.to_string(),
            "--r-bits",
            &hex_encode(r_bits),
        ],
        b"",
    );
    let c_bytes =
        provii_circuits::encoding::b64url_decode(cred["c_bytes"].as_str().expect("c_bytes"), "c")
            .expect("b64");
    assert_eq!(opened["commitment"], hex_encode(&c_bytes));
    assert_eq!(cred["kid"].as_str().map(str::len), Some(14));
    assert_eq!(cred["schema"], "provii.age/0");
    assert_eq!(cred["v"], 2);
}

#[test]
fn officer_path_end_to_end() {
    let app = Appliance::start("officer");
    let att = app.officer_attest(11246);
    assert_eq!(att.status, 201, "{:?}", att.json());
    assert!(att.header("x-request-id").is_some());
    let body = att.json();
    assert_eq!(body["issuer_id"], "dmv.example.gov");
    let r = good_r_bits();
    let issued = app.issue(body["attestation"].as_str().expect("attestation"), &r);
    assert_eq!(issued.status, 200, "{:?}", issued.json());
    check_credential(&issued.json()["credential"], 11246, &r);
    // Its key is in the JWKS.
    let jwks = app.get("/.well-known/jwks.json").json();
    assert_eq!(
        jwks["keys"][0]["x"],
        issued.json()["credential"]["issuer_vk"]
    );
}

#[test]
fn client_path_end_to_end_and_on_the_v0_alias() {
    let app = Appliance::start("client");
    let bank = app.enrol_client("bank-1", false);
    let dob = 7300;
    let att = app.post(
        "/v0/attestation/create",
        &bank.request(dob, now(), &random_hex32()),
    );
    assert_eq!(att.status, 201, "{:?}", att.json());
    let r = good_r_bits();
    let issued = app.post("/v0/issuance/blind", &json!({"attestation": att.json()["attestation"], "r_bits": b64url_encode(&r), "future_field": 1}));
    assert_eq!(issued.status, 200, "{:?}", issued.json());
    check_credential(&issued.json()["credential"], dob, &r);
    // The longest id WIRE.md allows, slashes and all, enrols and attests
    // (its HSM label spells each `/` as `%2F`, three times as long).
    let long = app.enrol_client(&format!("b/{}", "/x".repeat(63)), false);
    let att = app.post(
        "/v1/attestation/create",
        &long.request(dob, now(), &random_hex32()),
    );
    assert_eq!(att.status, 201, "{:?}", att.json());
}

#[test]
fn officer_refusals() {
    let app = Appliance::start("officer-no");
    let key = app.yubikey();
    let challenge = |dob: i32, nonce: &str| {
        let r = app.post(
            "/v1/challenge",
            &json!({"officer_id": "alice", "intent": {"dob_days": dob, "nonce": nonce}}),
        );
        assert_eq!(r.status, 201);
        r.json()
    };
    let attest = |dob: i32, ch: &serde_json::Value, hmac: &str, nonce: &str, officer: &str| {
        app.post(
            "/v1/attestation/create",
            &json!({"dob_days": dob, "authorizer": {"format": "yubikey", "keyId": officer, "challengeId": ch["challenge_id"],
                    "timestamp": now(), "hmac": hmac, "nonce": nonce}}),
        )
    };
    let answer = |ch: &serde_json::Value| key.respond(ch["challenge"].as_str().expect("challenge"));
    // Wrong HMAC: 401, and the challenge is spent.
    let n = random_hex32();
    let ch = challenge(9000, &n);
    let r = attest(9000, &ch, &"00".repeat(20), &n, "alice");
    assert_eq!((r.status, r.code().as_str()), (401, "UNAUTHORIZED"));
    let r = attest(9000, &ch, &answer(&ch), &n, "alice");
    assert_eq!(r.status, 401, "a consumed challenge must not work again");
    // A different date of birth than the challenge was bound to.
    let n = random_hex32();
    let ch = challenge(9000, &n);
    let r = attest(9001, &ch, &answer(&ch), &n, "alice");
    assert_eq!(r.status, 401);
    // An expired challenge (aged in the database: waiting 120 s is too long).
    let n = random_hex32();
    let ch = challenge(9000, &n);
    let conn = rusqlite::Connection::open(app.db_path()).expect("db");
    conn.execute(
        "UPDATE challenges SET expires_at = 0 WHERE id = ?1",
        [ch["challenge_id"].as_str().expect("id")],
    )
    .expect("age");
    drop(conn);
    let r = attest(9000, &ch, &answer(&ch), &n, "alice");
    assert_eq!(r.status, 401, "expired challenge");
    // The challenge of another, real officer, answered with alice's key.
    app.cli_json(&["officers", "add", "bob"]);
    let n = random_hex32();
    let bobs = app
        .post(
            "/v1/challenge",
            &json!({"officer_id": "bob", "intent": {"dob_days": 9000, "nonce": n}}),
        )
        .json();
    let r = attest(9000, &bobs, &answer(&bobs), &n, "alice");
    assert_eq!(r.status, 401, "another officer's challenge");
    // The challenge of another (unknown) officer: same 401 as anything else.
    let n = random_hex32();
    let other = app.post(
        "/v1/challenge",
        &json!({"officer_id": "mallory", "intent": {"dob_days": 9000, "nonce": n}}),
    );
    assert_eq!(other.status, 201, "unknown officers get a challenge too");
    let r = attest(9000, &other.json(), &answer(&other.json()), &n, "alice");
    assert_eq!(
        r.json(),
        json!({"error": "authentication failed", "code": "UNAUTHORIZED"})
    );
    // Unbound challenges are refused when intent is required.
    let r = app.post("/v1/challenge", &json!({"officer_id": "alice"}));
    assert_eq!(r.status, 400);
    // Five failures lock alice out from this source; the sixth attempt, even
    // with the right response, is refused.
    for _ in 0..5 {
        let n = random_hex32();
        let ch = challenge(9000, &n);
        assert_eq!(attest(9000, &ch, &"11".repeat(20), &n, "alice").status, 401);
    }
    let n = random_hex32();
    let ch = challenge(9000, &n);
    let r = attest(9000, &ch, &answer(&ch), &n, "alice");
    assert_eq!(r.status, 401, "locked out");
    let audit = String::from_utf8(app.cli(&["audit", "export"]).stdout).expect("utf-8");
    assert!(audit.contains("\"auth.lockout\""), "lockout audited");
    // An admin lifts the lockout; the right response works again.
    app.cli_json(&["officers", "unlock", "alice"]);
    assert_eq!(app.officer_attest(9000).status, 201, "unlocked");
}

#[test]
fn client_refusals_change_nothing() {
    let app = Appliance::start("client-no");
    let bank = app.enrol_client("bank-2", false);
    let youth = app.enrol_client("youth-office", true);
    let adult = 7300;
    // Wrong HMAC.
    let mut req = bank.request(adult, now(), &random_hex32());
    req["authorizer"]["hmac"] = json!("00".repeat(32));
    assert_eq!(app.post("/v1/attestation/create", &req).status, 401);
    // Unknown client: the same 401.
    let ghost = provii_e2e::world::IssuingParty {
        id: "ghost".into(),
        secret: vec![1; 32],
    };
    let r = app.post(
        "/v1/attestation/create",
        &ghost.request(adult, now(), &random_hex32()),
    );
    assert_eq!(
        r.json(),
        json!({"error": "authentication failed", "code": "UNAUTHORIZED"})
    );
    // Timestamp skew.
    assert_eq!(
        app.post(
            "/v1/attestation/create",
            &bank.request(adult, now() - 31, &random_hex32())
        )
        .status,
        401
    );
    // A signed timestamp as far from now as an i64 allows: i64::MIN + now
    // lies exactly i64::MIN seconds away, whose absolute value does not fit
    // (a skew check computing it would wrap to "no skew" or panic).
    let r = app.post(
        "/v1/attestation/create",
        &bank.request(adult, i64::MIN + now(), &random_hex32()),
    );
    assert_eq!((r.status, r.code().as_str()), (401, "UNAUTHORIZED"));
    // Replayed auth nonce: the first succeeds, the replay is 409.
    let nonce = random_hex32();
    assert_eq!(
        app.post(
            "/v1/attestation/create",
            &bank.request(adult, now(), &nonce)
        )
        .status,
        201
    );
    let r = app.post(
        "/v1/attestation/create",
        &bank.request(adult, now(), &nonce),
    );
    assert_eq!((r.status, r.code().as_str()), (409, "CONFLICT"));
    // Child guard: a ten-year-old, from an ordinary client (400) and from
    // the one flagged for minors (201).
    let child = (now() / 86_400 - 3653) as i32;
    let r = app.post(
        "/v1/attestation/create",
        &bank.request(child, now(), &random_hex32()),
    );
    assert_eq!((r.status, r.code().as_str()), (400, "BAD_REQUEST"));
    assert_eq!(
        app.post(
            "/v1/attestation/create",
            &youth.request(child, now(), &random_hex32())
        )
        .status,
        201
    );
    // Future and out-of-range dates of birth.
    let future = (now() / 86_400 + 2) as i32;
    assert_eq!(
        app.post(
            "/v1/attestation/create",
            &bank.request(future, now(), &random_hex32())
        )
        .status,
        400
    );
    assert_eq!(
        app.post(
            "/v1/attestation/create",
            &bank.request(36_526, now(), &random_hex32())
        )
        .status,
        400
    );
    // A nonce that is not 64 lowercase hex.
    let mut req = bank.request(adult, now(), &random_hex32());
    req["authorizer"]["nonce"] = json!(
        req["authorizer"]["nonce"]
            .as_str()
            .expect("nonce")
            .to_uppercase()
    );
    assert_eq!(app.post("/v1/attestation/create", &req).status, 400);
    // A disabled client.
    app.cli_json(&["clients", "disable", "bank-2"]);
    assert_eq!(
        app.post(
            "/v1/attestation/create",
            &bank.request(adult, now(), &random_hex32())
        )
        .status,
        401
    );
}

/// An attestation signed by someone else's Ed25519 key.
fn forged_attestation(issuer_id: &str, dob: i32) -> String {
    let key = SigningKey::from_bytes(&[9; 32]);
    let fields = AttestationFields::new(
        &DobDays::new(dob).expect("dob"),
        issuer_id,
        now() as u64,
        rand::random(),
        None,
        None,
    )
    .expect("fields");
    let sig = key.sign(&fields.digest()).to_bytes();
    fields.with_signature(sig).to_base64url()
}

#[test]
fn issuance_refusals_do_not_burn_the_attestation() {
    let app = Appliance::start("issue-no");
    let att = app.officer_attestation(8000);
    let r = good_r_bits();
    // Unknown issuer id: 403.
    let resp = app.issue(&forged_attestation("other.gov", 8000), &r);
    assert_eq!((resp.status, resp.code().as_str()), (403, "FORBIDDEN"));
    // Forged signature with our issuer id: 401.
    let resp = app.issue(&forged_attestation("dmv.example.gov", 8000), &r);
    assert_eq!(resp.status, 401);
    // The genuine attestation with our nonce but a forged signature: the
    // nonce must not be burnt.
    let genuine = provii_circuits::Attestation::from_base64url(&att).expect("parses");
    let mut json: serde_json::Value = serde_json::from_str(&genuine.to_json()).expect("json");
    json["signature"] = json!("00".repeat(64));
    let forged_same_nonce = b64url_encode(json.to_string().as_bytes());
    assert_eq!(app.issue(&forged_same_nonce, &r).status, 401);
    // r_bits of the wrong length, with low entropy, not base64url.
    assert_eq!(app.issue(&att, &r[..15]).status, 400);
    assert_eq!(
        app.issue(&att, &[1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1])
            .status,
        400
    );
    let resp = app.post(
        "/v1/issuance/blind",
        &json!({"attestation": att, "r_bits": "AAAA===="}),
    );
    assert_eq!(resp.status, 400);
    let resp = app.post(
        "/v1/issuance/blind",
        &json!({"attestation": "!!", "r_bits": b64url_encode(&r)}),
    );
    assert_eq!(resp.status, 400);
    let resp = app.post(
        "/v1/issuance/blind",
        &json!({"attestation": att, "r_bits": b64url_encode(&r), "validity_days": 36501}),
    );
    assert_eq!(resp.status, 400);
    // After all that, the genuine attestation still issues, exactly once.
    assert_eq!(app.issue(&att, &r).status, 200);
    let again = app.issue(&att, &r);
    assert_eq!(
        (again.status, again.code().as_str()),
        (409, "INVALID_STATE_TRANSITION")
    );
}

#[test]
fn request_rules() {
    let app = Appliance::start("rules");
    let r = http::request(
        &app.addr,
        "POST",
        "/v1/challenge",
        Some("text/plain"),
        b"{}",
    )
    .expect("http");
    assert_eq!(
        (r.status, r.code().as_str()),
        (415, "UNSUPPORTED_MEDIA_TYPE")
    );
    let r = http::post_json(&app.addr, "/v1/challenge", "{not json").expect("http");
    assert_eq!((r.status, r.code().as_str()), (400, "BAD_REQUEST"));
    let r = http::post_json(
        &app.addr,
        "/v1/challenge",
        r#"{"officer_id":"alice","extra":1}"#,
    )
    .expect("http");
    assert_eq!(r.status, 400, "unknown fields are refused on challenge");
    let big = format!("{{\"officer_id\":\"{}\"}}", "a".repeat(1 << 20));
    let r = http::post_json(&app.addr, "/v1/challenge", &big).expect("http");
    assert_eq!((r.status, r.code().as_str()), (413, "PAYLOAD_TOO_LARGE"));
    let r = http::raw(&app.addr, b"POST /v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n").expect("http");
    assert_eq!((r.status, r.code().as_str()), (411, "LENGTH_REQUIRED"));
    let r = app.get("/nope");
    assert_eq!((r.status, r.code().as_str()), (404, "NOT_FOUND"));
    // A known path with a method it does not take: 405, Allow, envelope.
    let r = app.get("/v1/challenge");
    assert_eq!(
        (r.status, r.code().as_str(), r.header("allow")),
        (405, "METHOD_NOT_ALLOWED", Some("POST"))
    );
    assert!(r.header("x-request-id").is_some());
    let r = http::request(
        &app.addr,
        "POST",
        "/health",
        Some("application/json"),
        b"{}",
    )
    .expect("http");
    assert_eq!((r.status, r.code().as_str()), (405, "METHOD_NOT_ALLOWED"));
    assert!(r.header("x-request-id").is_some());
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let r = app.get("/v1/jwks.json");
    assert_eq!(
        (r.status, r.header("location")),
        (308, Some("/.well-known/jwks.json"))
    );
    let j = app.get("/.well-known/jwks.json");
    assert_eq!(j.header("cache-control"), Some("public, max-age=600"));
    let etag = j.header("etag").expect("etag").to_owned();
    let r = http::raw(&app.addr, format!("GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n").as_bytes()).expect("http");
    assert_eq!(r.status, 304);
    let metrics = String::from_utf8(app.get("/metrics").body).expect("text");
    assert!(
        metrics.contains("provii_http_requests_total{route=\"/v1/challenge\",status=\"415\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("provii_hsm_usable 1")
            && metrics.contains("provii_signing_key_active 1")
            && metrics.contains("provii_crypto_waiting 0"),
        "{metrics}"
    );
}

#[test]
fn concurrent_issuances_of_one_attestation_yield_exactly_one_credential() {
    let app = Appliance::start("race");
    let att = app.officer_attestation(10000);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..32)
            .map(|_| s.spawn(|| app.issue(&att, &good_r_bits()).status))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        31,
        "{statuses:?}"
    );
}

#[test]
fn audit_chain_verifies_and_detects_tampering_and_holds_no_personal_data() {
    let mut app = Appliance::start("audit");
    let dob = 12345;
    let att = app.officer_attestation(dob);
    let r = good_r_bits();
    let issued = app.issue(&att, &r);
    assert_eq!(issued.status, 200);
    let c_bytes = issued.json()["credential"]["c_bytes"]
        .as_str()
        .expect("c")
        .to_owned();
    let ok = app.cli_json(&["audit", "verify"]);
    assert_eq!(ok["ok"], true, "{ok}");
    assert!(ok["records"].as_u64().unwrap_or(0) >= 4);

    // No date of birth (days or ISO), r_bits or commitment anywhere in the
    // database, its WAL, or the log.
    app.stop();
    let mut haystack = Vec::new();
    for name in ["state/appliance.db", "state/appliance.db-wal", "daemon.log"] {
        if let Ok(bytes) = std::fs::read(app.dir.join(name)) {
            haystack.extend(bytes);
        }
    }
    // The haystack is real: the database holds the issuance's audit record.
    assert!(
        haystack.windows(17).any(|w| w == b"credential.issued"),
        "database not read"
    );
    let c_raw = provii_circuits::encoding::b64url_decode(&c_bytes, "c").expect("b64");
    let needles: Vec<Vec<u8>> = vec![
        b"12345".to_vec(),
        b"2003-10-20".to_vec(),
        r.to_vec(),
        hex_encode(&r).into_bytes(),
        b64url_encode(&r).into_bytes(),
        c_raw.clone(),
        c_bytes.clone().into_bytes(),
        hex_encode(&c_raw).into_bytes(),
    ];
    for n in &needles {
        assert!(
            !haystack.windows(n.len()).any(|w| w == n.as_slice()),
            "found {:?} at rest",
            String::from_utf8_lossy(n)
        );
    }

    // Altering any one audit row breaks verification.
    let conn = rusqlite::Connection::open(app.db_path()).expect("db");
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM audit_log", [], |r| r.get(0))
        .expect("count");
    drop(conn);
    for seq in 1..=rows {
        let conn = rusqlite::Connection::open(app.db_path()).expect("db");
        conn.execute(
            "UPDATE audit_log SET detail = detail || ' ' WHERE seq = ?1",
            [seq],
        )
        .expect("tamper");
        drop(conn);
        app.spawn();
        let out = app.cli(&["--json", "audit", "verify"]);
        assert!(
            !out.status.success(),
            "tampering with record {seq} went unnoticed"
        );
        app.stop();
        let conn = rusqlite::Connection::open(app.db_path()).expect("db");
        conn.execute(
            "UPDATE audit_log SET detail = rtrim(detail, ' ') WHERE seq = ?1",
            [seq],
        )
        .expect("restore");
    }
    app.spawn();
    assert_eq!(app.cli_json(&["audit", "verify"])["ok"], true);
}

#[test]
fn a_source_that_keeps_failing_is_capped() {
    let app = Appliance::start_with(
        "source-cap",
        "[officers]\nmax_failures_per_source_per_hour = 3\n",
    );
    let bank = app.enrol_client("bank-3", false);
    for _ in 0..3 {
        let mut req = bank.request(7300, now(), &random_hex32());
        req["authorizer"]["hmac"] = json!("00".repeat(32));
        assert_eq!(app.post("/v1/attestation/create", &req).status, 401);
    }
    // Now even a correct request from this address is refused for the hour.
    let r = app.post(
        "/v1/attestation/create",
        &bank.request(7300, now(), &random_hex32()),
    );
    assert_eq!((r.status, r.code().as_str()), (429, "RATE_LIMIT_EXCEEDED"));
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=3600).contains(&retry), "{retry}");
}

#[test]
fn rotated_client_secrets_overlap_then_the_old_one_stops() {
    let app = Appliance::start("rotate");
    let old = app.enrol_client("bank-rot", false);
    let v = app.cli_json(&[
        "clients",
        "rotate-secret",
        "bank-rot",
        "--overlap-seconds",
        "3600",
    ]);
    let new = provii_e2e::world::IssuingParty {
        id: "bank-rot".into(),
        secret: provii_circuits::encoding::hex_decode(v["secret"].as_str().expect("secret"), "s")
            .expect("hex"),
    };
    assert_ne!(new.secret, old.secret);
    assert_eq!(
        app.post(
            "/v1/attestation/create",
            &new.request(7300, now(), &random_hex32())
        )
        .status,
        201
    );
    assert_eq!(
        app.post(
            "/v1/attestation/create",
            &old.request(7300, now(), &random_hex32())
        )
        .status,
        201,
        "previous secret inside its window"
    );
    // A rotation with no overlap retires the previous secret at once.
    let v = app.cli_json(&[
        "clients",
        "rotate-secret",
        "bank-rot",
        "--overlap-seconds",
        "0",
    ]);
    let newest = provii_e2e::world::IssuingParty {
        id: "bank-rot".into(),
        secret: provii_circuits::encoding::hex_decode(v["secret"].as_str().expect("secret"), "s")
            .expect("hex"),
    };
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(
        app.post(
            "/v1/attestation/create",
            &newest.request(7300, now(), &random_hex32())
        )
        .status,
        201
    );
    assert_eq!(
        app.post(
            "/v1/attestation/create",
            &new.request(7300, now(), &random_hex32())
        )
        .status,
        401
    );
    assert_eq!(
        app.post(
            "/v1/attestation/create",
            &old.request(7300, now(), &random_hex32())
        )
        .status,
        401
    );
    let clients = app.cli_json(&["clients", "list"]);
    assert_eq!(clients[0]["secret_generation"], 3);
}

#[test]
fn rate_limits_answer_429_and_are_audited() {
    let app = Appliance::start_with("limits", "[rate_limits]\nper_source_per_minute = 5\n");
    let statuses: Vec<u16> = (0..8)
        .map(|_| {
            app.post("/v1/challenge", &json!({"officer_id": "alice"}))
                .status
        })
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        3,
        "{statuses:?}"
    );
    let r = app.post("/v1/challenge", &json!({"officer_id": "alice"}));
    assert_eq!((r.status, r.code().as_str()), (429, "RATE_LIMIT_EXCEEDED"));
    assert!(
        r.header("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|s| s >= 1)
    );
    // One audit record for the burst, not one per refusal.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let audit = String::from_utf8(app.cli(&["audit", "export"]).stdout).expect("utf-8");
        let n = audit.matches("\"rate_limited\"").count();
        if n == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline && n == 0,
            "{n} rate_limited records"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn starts_and_configuration_changes_are_audited() {
    let mut app = Appliance::start("config-audit");
    let export =
        |app: &Appliance| String::from_utf8(app.cli(&["audit", "export"]).stdout).expect("utf-8");
    assert_eq!(
        export(&app).matches("\"config.changed\"").count(),
        1,
        "the first start records the configuration"
    );
    app.stop();
    app.spawn();
    assert_eq!(
        export(&app).matches("\"config.changed\"").count(),
        1,
        "an unchanged restart is no change"
    );
    app.stop();
    let text = std::fs::read_to_string(&app.config).expect("config");
    std::fs::write(
        &app.config,
        format!("{text}\n[issuance]\nvalidity_days = 3650\n"),
    )
    .expect("edit config");
    app.spawn();
    let audit = export(&app);
    assert_eq!(audit.matches("\"config.changed\"").count(), 2);
    assert!(audit.contains("previous_config_sha256"));
    assert_eq!(audit.matches("\"appliance.started\"").count(), 3);
}
