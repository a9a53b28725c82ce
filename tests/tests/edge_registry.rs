//! The cloudflare-kv sink against a local stand-in of the KV API: one
//! registry entry per key in the exact shape of WIRE.md §6, revocations
//! published as `revoked: true`, the JWKS under its key name, and delivery
//! that survives failing PUTs by retrying.

use std::time::{Duration, Instant};

use provii_e2e::Appliance;
use provii_e2e::kv::{Failure, FakeKv, TOKEN};

fn wait(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A file holding the stand-in edge's API token, under `target/e2e`.
fn token_file(name: &str) -> std::path::PathBuf {
    let dir = provii_e2e::workspace()
        .join("target/e2e")
        .join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let token = dir.join("edge-token");
    std::fs::write(&token, TOKEN).expect("token");
    token
}

#[test]
fn the_edge_registry_follows_the_keys() {
    let kv = FakeKv::start();
    kv.fail_next_puts
        .store(3, std::sync::atomic::Ordering::SeqCst);
    let token = token_file("kv-token");
    let extra = format!(
        "[publication]\nlead_time_seconds = 1\n[publication.cloudflare_kv]\napi = \"http://{}/client/v4\"\naccount_id = \"acc1\"\n\
         namespace_id = \"ns1\"\ntoken = {{ file = \"{}\" }}\njwks_key = \"jwks\"\norganization_name = \"Example DMV\"\nenvironment = \"test\"\n",
        kv.addr,
        token.display()
    );
    let app = Appliance::start_with("edge", &extra);
    let first = app.get("/.well-known/jwks.json").json()["keys"][0]["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    let first_key = format!("issuer:dmv.example.gov:{first}");
    // The first PUTs fail; the outbox retries until the entry reads back.
    wait("the first registry entry", || kv.get(&first_key).is_some());
    assert!(
        kv.puts.load(std::sync::atomic::Ordering::SeqCst) > 3,
        "failed PUTs were retried"
    );
    let entry = kv.get(&first_key).expect("entry");
    let fields: Vec<&str> = entry
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    for field in [
        "issuer_kid",
        "issuer_id",
        "issuer_key_hash",
        "verification_key",
        "organization_name",
        "organization_id",
        "environment",
        "created_at",
        "revoked",
        "revoked_at",
        "revoked_reason",
    ] {
        assert!(fields.contains(&field), "{field} missing from {entry}");
    }
    // Read as the edge verifier reads it: listed, parsed, typed.
    let registry = kv.registry().expect("the verifier can read the registry");
    let parsed = &registry[&first_key];
    assert!(!parsed.revoked);
    assert_eq!(parsed.organization_name, "Example DMV");
    assert_eq!(parsed.issuer_kid.as_deref(), Some(first.as_str()));
    assert_eq!(parsed.issuer_id.as_deref(), Some("dmv.example.gov"));
    assert_eq!(parsed.issuer_key_hash, parsed.expected_key_hash());
    provii_circuits::VerifyingKey::from_bytes(&parsed.verification_key).expect("a verifying key");
    assert_eq!(
        kv.get("jwks").expect("jwks")["keys"][0]["kid"],
        first.as_str()
    );

    // A new key appears before it may sign; a revoked one is marked, not deleted.
    let second = app.cli_json(&["keys", "create"])["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    let second_key = format!("issuer:dmv.example.gov:{second}");
    wait("the new key's entry", || kv.get(&second_key).is_some());
    app.cli_json(&["keys", "revoke", &second, "--reason", "test"]);
    wait("the revocation", || {
        kv.get(&second_key).is_some_and(|e| e["revoked"] == true)
    });
    let registry = kv.registry().expect("the verifier can read the registry");
    let revoked = &registry[&second_key];
    assert_eq!(revoked.revoked_reason.as_deref(), Some("test"));
    assert!(revoked.revoked_at.is_some());
    assert!(
        !registry[&first_key].revoked,
        "only the revoked key is marked"
    );
    wait("the JWKS without the revoked key", || {
        kv.get("jwks")
            .is_some_and(|j| !j.to_string().contains(&second))
    });
    wait("an empty outbox", || {
        app.cli_json(&["status"])["outbox"]["unconfirmed"] == 0
    });
}

#[test]
fn a_key_waits_for_every_sink_not_just_the_first() {
    let kv = FakeKv::start();
    kv.fail_next_puts
        .store(usize::MAX / 2, std::sync::atomic::Ordering::SeqCst); // the edge is down
    let token = token_file("kv-token2");
    let extra = format!(
        "[publication]\nlead_time_seconds = 1\nfile = \"jwks.json\"\n[publication.cloudflare_kv]\napi = \"http://{}/client/v4\"\n\
         account_id = \"acc1\"\nnamespace_id = \"ns1\"\ntoken = {{ file = \"{}\" }}\norganization_name = \"Example DMV\"\n",
        kv.addr,
        token.display()
    );
    let app = Appliance::start_with("two-sinks", &extra);
    let kid = app.cli_json(&["keys", "create"])["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    // The file sink confirms quickly; wait until it holds the new key.
    wait("the file sink", || {
        std::fs::read_to_string(app.dir.join("jwks.json")).is_ok_and(|t| t.contains(&kid))
    });
    std::thread::sleep(Duration::from_millis(1500)); // past the lead time for the file sink
    let out = app.cli(&["keys", "activate", &kid]);
    assert!(
        !out.status.success(),
        "activated although the edge registry never confirmed the key"
    );
    // Once the edge is back and confirms, activation goes through.
    kv.fail_next_puts
        .store(0, std::sync::atomic::Ordering::SeqCst);
    let key = format!("issuer:dmv.example.gov:{kid}");
    wait("the registry entry", || kv.get(&key).is_some());
    app.activate_when_allowed(&kid);
}

/// A KV sink and an http sink against the same stand-in edge; the token
/// file and the config text for both.
fn edge_config(kv: &FakeKv, name: &str) -> String {
    let token = token_file(&format!("{name}-token"));
    format!(
        "[publication]\nlead_time_seconds = 1\n[publication.cloudflare_kv]\napi = \"http://{addr}/client/v4\"\naccount_id = \"acc1\"\n\
         namespace_id = \"ns1\"\ntoken = {{ file = \"{t}\" }}\njwks_key = \"jwks\"\norganization_name = \"Example DMV\"\n\
         [publication.http]\nurl = \"http://{addr}{path}\"\ntoken = {{ file = \"{t}\" }}\n",
        addr = kv.addr,
        t = token.display(),
        path = provii_e2e::kv::PUBLISH_PATH,
    )
}

/// Tells the stand-in edge the appliance's publisher key, as an operator
/// would after reading it from `status`.
fn trust_publisher(kv: &FakeKv, app: &Appliance) {
    let public = app.cli_json(&["status"])["publisher_key"]["public_key"]
        .as_str()
        .expect("status shows the publisher key")
        .to_owned();
    let public = provii_circuits::encoding::b64url_decode_array::<32>(&public, "publisher key")
        .expect("32 bytes");
    kv.published.lock().expect("published").publisher_key = Some(public);
}

fn http_document(kv: &FakeKv) -> Option<serde_json::Value> {
    let p = kv.published.lock().expect("published");
    p.document
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok())
}

#[test]
fn the_http_sink_is_authenticated_by_the_publisher_key() {
    let kv = FakeKv::start();
    let app = Appliance::start_with("http-sink", &edge_config(&kv, "http-sink"));
    // Until the edge knows the publisher key it refuses every publication.
    wait("a refused publication", || {
        kv.published.lock().expect("published").refused_signatures > 0
    });
    assert!(http_document(&kv).is_none());
    trust_publisher(&kv, &app);
    let served = app.get("/.well-known/jwks.json").json();
    wait("the signed JWKS", || {
        http_document(&kv).as_ref() == Some(&served)
    });

    let kid = app.cli_json(&["keys", "create"])["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    wait("the JWKS with the new key", || {
        http_document(&kv).is_some_and(|d| d.to_string().contains(&kid))
    });
    let seqs = kv.published.lock().expect("published").seqs.clone();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "publications arrived in order, each once: {seqs:?}"
    );
}

/// Every key in the database, as (kid, revoked).
fn database_keys(app: &Appliance) -> Vec<(String, bool)> {
    let keys = app.cli_json(&["keys", "list"]);
    keys.as_array()
        .expect("a list")
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().expect("kid").to_owned(),
                k["state"] == "revoked",
            )
        })
        .collect()
}

/// Every key in the registry as the verifier reads it, as (kid, revoked).
fn registry_keys(kv: &FakeKv) -> Vec<(String, bool)> {
    let mut keys: Vec<(String, bool)> = kv
        .registry()
        .unwrap_or_default()
        .into_values()
        .map(|e| (e.issuer_kid.unwrap_or_default(), e.revoked))
        .collect();
    keys.sort();
    keys
}

#[test]
fn the_edge_converges_after_an_outage_during_rotation_and_a_restart() {
    let kv = FakeKv::start();
    let mut app = Appliance::start_with("edge-outage", &edge_config(&kv, "edge-outage"));
    trust_publisher(&kv, &app);
    let first = database_keys(&app);
    wait("the first key at the edge", || registry_keys(&kv) == first);

    // The edge goes down in the middle of a rotation.
    kv.fail(Failure::ServerError);
    let b = app.cli_json(&["keys", "create"])["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    std::thread::sleep(Duration::from_millis(1500));
    let out = app.cli(&["keys", "activate", &b]);
    assert!(
        !out.status.success(),
        "activated a key the edge never confirmed"
    );
    kv.fail(Failure::Refuse);
    assert!(app.stop().success(), "clean stop during the outage");
    app.spawn();
    trust_publisher(&kv, &app);
    let c = app.cli_json(&["keys", "create"])["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    app.cli_json(&["keys", "revoke", &c, "--reason", "drill"]);
    kv.fail(Failure::Hang);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        !registry_keys(&kv).iter().any(|(k, _)| *k == b || *k == c),
        "nothing reached the edge while it was down"
    );

    // The edge returns: it converges to the database, nothing lost.
    kv.fail(Failure::None);
    let mut expected = database_keys(&app);
    expected.sort();
    assert_eq!(expected.len(), 3, "{expected:?}");
    wait("the registry to converge", || {
        registry_keys(&kv) == expected
    });
    let served = app.get("/.well-known/jwks.json").json();
    wait("the KV JWKS to converge", || {
        kv.get("jwks").as_ref() == Some(&served)
    });
    wait("the http JWKS to converge", || {
        http_document(&kv).as_ref() == Some(&served)
    });
    wait("an empty outbox", || {
        app.cli_json(&["status"])["outbox"]["unconfirmed"] == 0
    });
    let seqs = kv.published.lock().expect("published").seqs.clone();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "http publications in order: {seqs:?}"
    );
    // B, confirmed now, may sign.
    app.activate_when_allowed(&b);
}

/// A credential from the running daemon, and the kid it was signed under.
fn credential(app: &Appliance) -> (serde_json::Value, String) {
    let att = app.officer_attestation(9000);
    let r = app.issue(&att, &provii_e2e::world::good_r_bits());
    assert_eq!(r.status, 200, "{:?}", r.json());
    let cred = r.json()["credential"].clone();
    let kid = cred["kid"].as_str().expect("kid").to_owned();
    (cred, kid)
}

/// Verifies a credential with provii-tool against the key the edge
/// publishes for its kid (the KV JWKS), as a wallet would.
fn verifies_against_the_edge(kv: &FakeKv, cred: &serde_json::Value, kid: &str) -> bool {
    let jwks = kv.get("jwks").expect("the edge serves a JWKS");
    let Some(x) = jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["kid"] == kid)
        .and_then(|k| k["x"].as_str())
    else {
        return false;
    };
    let verdict = provii_e2e::tool(
        &["verify-credential", "--credential", "-", "--issuer-vk", x],
        cred.to_string().as_bytes(),
    );
    verdict["valid"] == true
}

#[test]
fn rotation_end_to_end_against_the_edge() {
    let kv = FakeKv::start();
    let config =
        edge_config(&kv, "rotation").replace("lead_time_seconds = 1", "lead_time_seconds = 6");
    let app = Appliance::start_with("rotation", &config);
    trust_publisher(&kv, &app);
    let (cred_a, a) = credential(&app);
    wait("A at the edge", || {
        kv.get("jwks").is_some_and(|j| j.to_string().contains(&a))
    });
    assert!(verifies_against_the_edge(&kv, &cred_a, &a));

    let created_at = Instant::now();
    let b = app.cli_json(&["keys", "create"])["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    let b_entry = format!("issuer:dmv.example.gov:{b}");
    wait("B in the registry", || {
        kv.registry().is_ok_and(|r| r.contains_key(&b_entry))
    });
    eprintln!(
        "keys create to B in the edge registry: {} ms",
        created_at.elapsed().as_millis()
    );
    let early = app.cli(&["keys", "activate", &b]);
    assert!(!early.status.success(), "activated before the lead time");
    assert!(String::from_utf8_lossy(&early.stderr).contains("lead time"));
    assert_eq!(credential(&app).1, a, "A signs until B is activated");
    app.activate_when_allowed(&b);
    let (cred_b, kid) = credential(&app);
    assert_eq!(kid, b, "new credentials are signed under B");
    wait("B active at the edge", || {
        kv.get("jwks").is_some_and(|j| j.to_string().contains(&b))
    });
    assert!(verifies_against_the_edge(&kv, &cred_b, &b));
    assert!(
        verifies_against_the_edge(&kv, &cred_a, &a),
        "credentials under A still verify against the published set"
    );
    assert!(
        !verifies_against_the_edge(&kv, &cred_a, &b),
        "a credential does not verify under another key"
    );

    // Compromise drill: revoke A.
    let a_entry = format!("issuer:dmv.example.gov:{a}");
    let revoked_at = Instant::now();
    app.cli_json(&["keys", "revoke", &a, "--reason", "compromise drill"]);
    wait("A revoked at the edge", || {
        kv.registry()
            .is_ok_and(|r| r.get(&a_entry).is_some_and(|e| e.revoked))
            && kv.get("jwks").is_some_and(|j| !j.to_string().contains(&a))
    });
    // Reported, not asserted (tests do not assert on timing): the issue's
    // target is 2 s on loopback.
    eprintln!(
        "revocation reached the edge registry and JWKS in {} ms",
        revoked_at.elapsed().as_millis()
    );
    assert!(!verifies_against_the_edge(&kv, &cred_a, &a));
    assert_eq!(credential(&app).1, b, "B keeps signing");
}
