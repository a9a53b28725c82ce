//! The cloudflare-kv sink against a local stand-in of the KV API: one
//! registry entry per key in the exact shape of WIRE.md §6, revocations
//! published as `revoked: true`, the JWKS under its key name, and delivery
//! that survives failing PUTs by retrying.

use std::time::{Duration, Instant};

use provii_e2e::Appliance;
use provii_e2e::kv::{FakeKv, TOKEN};

fn wait(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_edge_registry_follows_the_keys() {
    let kv = FakeKv::start();
    kv.fail_next_puts
        .store(3, std::sync::atomic::Ordering::SeqCst);
    let dir = provii_e2e::workspace()
        .join("target/e2e")
        .join(format!("kv-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let token = dir.join("cf-token");
    std::fs::write(&token, TOKEN).expect("token");
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
    assert_eq!(entry["revoked"], false);
    assert_eq!(entry["organization_name"], "Example DMV");
    let vk = provii_circuits::encoding::b64url_decode_array::<32>(
        entry["verification_key"].as_str().expect("vk"),
        "vk",
    )
    .expect("32 bytes");
    let vk = provii_circuits::VerifyingKey::from_bytes(&vk).expect("a verifying key");
    assert_eq!(
        entry["issuer_key_hash"],
        provii_circuits::encoding::b64url_encode(&provii_circuits::params::issuer_key_hash(&vk))
    );
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
    let revoked = kv.get(&second_key).expect("entry");
    assert_eq!(revoked["revoked_reason"], "test");
    assert!(revoked["revoked_at"].as_i64().is_some());
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
    let dir = provii_e2e::workspace()
        .join("target/e2e")
        .join(format!("kv-token2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let token = dir.join("cf-token");
    std::fs::write(&token, TOKEN).expect("token");
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
    let deadline = Instant::now() + Duration::from_secs(30);
    while !app.cli(&["keys", "activate", &kid]).status.success() {
        assert!(
            Instant::now() < deadline,
            "activation never went through after the edge confirmed"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
