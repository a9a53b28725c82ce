//! Backup and restore (issue 6): a snapshot taken while the daemon serves,
//! the state directory wiped, the snapshot restored, and issuance going on
//! under the same keys; replays from before and after the snapshot refused;
//! restores against another appliance's token or from an altered file
//! refused with a clear message and without touching anything.

use std::time::Instant;

use provii_e2e::Appliance;
use provii_e2e::world::{good_r_bits, now, random_hex32};
use sha2::{Digest, Sha256};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The served keys as (kid, x).
fn served_keys(app: &Appliance) -> Vec<(String, String)> {
    let jwks = app.get("/.well-known/jwks.json").json();
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().expect("kid").to_owned(),
                k["x"].as_str().expect("x").to_owned(),
            )
        })
        .collect()
}

/// Replaces the image of a backup file and the manifest's record of it,
/// leaving the seal as it was: only the seal can catch this.
fn forge(original: &[u8]) -> Vec<u8> {
    let magic = b"PROVII-BACKUP-1\n";
    let rest = &original[magic.len()..];
    let mut parts = rest.splitn(3, |b| *b == b'\n');
    let (line, seal, image) = (
        parts.next().expect("manifest"),
        parts.next().expect("seal"),
        parts.next().expect("image"),
    );
    let mut image = image.to_vec();
    let last = image.len() - 1;
    image[last] ^= 0x01;
    let mut manifest: serde_json::Value = serde_json::from_slice(line).expect("manifest JSON");
    manifest["database_sha256"] =
        provii_circuits::encoding::hex_encode(&Sha256::digest(&image)).into();
    let mut out = magic.to_vec();
    out.extend_from_slice(manifest.to_string().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(seal);
    out.push(b'\n');
    out.extend_from_slice(&image);
    out
}

#[test]
fn backup_wipe_restore_and_issuance_goes_on_under_the_same_keys() {
    let mut app = Appliance::start("backup");
    let before = app.officer_attestation(9000);
    assert_eq!(app.issue(&before, &good_r_bits()).status, 200);
    let keys = served_keys(&app);

    // A snapshot while the daemon serves.
    let file = app.dir.join("appliance.pbk");
    let started = Instant::now();
    let out = app.cli(&["backup", "--out", file.to_str().expect("utf-8")]);
    assert!(out.status.success(), "backup: {}", stderr(&out));
    eprintln!("backup took {} ms", started.elapsed().as_millis());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file)
        .expect("backup file")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the backup is readable only by its owner"
    );
    let again = app.cli(&["backup", "--out", file.to_str().expect("utf-8")]);
    assert!(!again.status.success(), "a backup overwrote another");

    // Consumed after the snapshot: the restored database will not know.
    let after = app.officer_attestation(9000);
    assert_eq!(app.issue(&after, &good_r_bits()).status, 200);
    assert!(app.stop().success());

    // The host is lost: the state directory goes, the HSM token stays.
    let state = app.dir.join("state");
    std::fs::remove_dir_all(&state).expect("wipe the state directory");
    let started = Instant::now();
    let out = app.cli(&["restore", "--from", file.to_str().expect("utf-8")]);
    assert!(out.status.success(), "restore: {}", stderr(&out));
    eprintln!("restore took {} ms", started.elapsed().as_millis());
    // The replay floor is the restore's second: let it pass.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let started = Instant::now();
    app.spawn();
    eprintln!(
        "restored daemon ready in {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(served_keys(&app), keys, "the same keys are served");

    // Issuance goes on under the same key; the credential verifies with it.
    let fresh = app.issue(&app.officer_attestation(9000), &good_r_bits());
    assert_eq!(fresh.status, 200, "{:?}", fresh.json());
    let cred = fresh.json()["credential"].clone();
    let (kid, x) = &keys[0];
    assert_eq!(cred["kid"], kid.as_str());
    let verdict = provii_e2e::tool(
        &["verify-credential", "--credential", "-", "--issuer-vk", x],
        cred.to_string().as_bytes(),
    );
    assert_eq!(verdict["valid"], true, "{verdict}");

    // Replays are refused, whether consumed before the snapshot (its nonce
    // is in the restored database) or after it (only the replay floor
    // knows): every attestation from before the restore is.
    for old in [&before, &after] {
        let replay = app.issue(old, &good_r_bits());
        assert_eq!(replay.status, 401, "{:?}", replay.json());
        assert!(
            replay.json().to_string().contains("restore"),
            "{:?}",
            replay.json()
        );
    }

    let verify = app.cli_json(&["audit", "verify"]);
    assert_eq!(verify["ok"], true, "{verify}");
    let export = String::from_utf8_lossy(&app.cli(&["audit", "export"]).stdout).into_owned();
    assert!(
        export.contains("\"backup.started\"") && export.contains("\"appliance.restored\""),
        "the restored log shows where the snapshot was taken, then the restore"
    );

    // Restoring over a live state directory is refused.
    let out = app.cli(&["restore", "--from", file.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("fresh state directory"),
        "{}",
        stderr(&out)
    );

    // Another appliance's token: a different KEK. Refused, nothing written.
    let mut other = Appliance::start("backup-other");
    assert!(other.stop().success());
    let other_state = other.dir.join("state");
    std::fs::remove_dir_all(&other_state).expect("wipe");
    let out = other.cli(&["restore", "--from", file.to_str().expect("utf-8")]);
    assert!(!out.status.success(), "restored against another KEK");
    assert!(stderr(&out).contains("different KEK"), "{}", stderr(&out));
    assert!(
        !other_state.exists(),
        "a refused restore left a state directory"
    );

    // An altered file, even with a consistent manifest, is refused.
    let forged = app.dir.join("forged.pbk");
    std::fs::write(&forged, forge(&std::fs::read(&file).expect("read"))).expect("write");
    let fresh_dir = app.dir.join("restore-forged");
    let config = std::fs::read_to_string(&app.config)
        .expect("config")
        .replace("state_dir = \"state\"", "state_dir = \"restore-forged\"");
    let forged_config = app.dir.join("forged.toml");
    std::fs::write(&forged_config, config).expect("config");
    let out = std::process::Command::new(provii_e2e::binary("provii-appliance"))
        .arg("--config")
        .arg(&forged_config)
        .env("SOFTHSM2_CONF", &app.softhsm_conf)
        .args(["restore", "--from", forged.to_str().expect("utf-8")])
        .output()
        .expect("restore");
    assert!(!out.status.success(), "restored an altered backup");
    assert!(
        stderr(&out).contains("does not match its contents"),
        "{}",
        stderr(&out)
    );
    assert!(!fresh_dir.exists());
}

/// Enrolments and rotations after the snapshot are lost with the database,
/// but their HSM objects stay on the token. Doing them again after the
/// restore must work, with fresh secrets, and the lost secrets must not.
#[test]
fn enrolments_lost_in_a_restore_can_be_made_again() {
    let mut app = Appliance::start("backup-orphans");
    let bank = app.enrol_client("bank-early", false);
    let file = app.dir.join("appliance.pbk");
    let out = app.cli(&["backup", "--out", file.to_str().expect("utf-8")]);
    assert!(out.status.success(), "backup: {}", stderr(&out));
    let lost_client = app.enrol_client("bank-late", false);
    let lost_rotation = app.cli_json(&[
        "clients",
        "rotate-secret",
        "bank-early",
        "--overlap-seconds",
        "0",
    ]);
    let lost_officer = app.cli_json(&["officers", "add", "officer-late"]);
    let lost_attestation_key = app.cli_json(&["keys", "rotate-attestation"]);
    assert!(lost_rotation["secret"].is_string() && lost_officer["secret"].is_string());
    assert!(app.stop().success());

    std::fs::remove_dir_all(app.dir.join("state")).expect("wipe");
    let out = app.cli(&["restore", "--from", file.to_str().expect("utf-8")]);
    assert!(out.status.success(), "restore: {}", stderr(&out));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    app.spawn();

    let attest = |party: &provii_e2e::world::IssuingParty| {
        app.post(
            "/v1/attestation/create",
            &party.request(7300, now(), &random_hex32()),
        )
        .status
    };
    assert_eq!(attest(&bank), 201, "the secret the backup knows works");
    assert_eq!(attest(&lost_client), 401, "a client the backup never saw");

    let again = app.enrol_client("bank-late", false);
    assert_ne!(again.secret, lost_client.secret);
    assert_eq!(attest(&again), 201, "re-enrolled with a fresh secret");
    assert_eq!(attest(&lost_client), 401, "the lost secret stays lost");

    let rotated = app.cli_json(&[
        "clients",
        "rotate-secret",
        "bank-early",
        "--overlap-seconds",
        "0",
    ]);
    let secret = rotated["secret"]
        .as_str()
        .expect("rotated after the restore");
    let rotated = provii_e2e::world::IssuingParty {
        id: "bank-early".into(),
        secret: provii_circuits::encoding::hex_decode(secret, "secret").expect("hex"),
    };
    assert_eq!(attest(&rotated), 201);
    let officer = app.cli_json(&["officers", "add", "officer-late"]);
    assert!(officer["secret"].is_string(), "{officer}");
    assert_ne!(officer["secret"], lost_officer["secret"]);
    let rotated = app.cli_json(&["keys", "rotate-attestation"]);
    assert_eq!(
        rotated["label"], lost_attestation_key["label"],
        "the next label, again"
    );
    let attestation = app.officer_attestation(9000);
    assert_eq!(
        app.issue(&attestation, &good_r_bits()).status,
        200,
        "signed by the new key"
    );

    let export = String::from_utf8_lossy(&app.cli(&["audit", "export"]).stdout).into_owned();
    assert_eq!(
        export.matches("\"hsm.orphan_destroyed\"").count(),
        4,
        "each lost secret's HSM object was destroyed, on the record"
    );
    let verify = app.cli_json(&["audit", "verify"]);
    assert_eq!(verify["ok"], true, "{verify}");
}
