//! Issue 7 end to end: an officer attests at the running daemon, the
//! reference wallet enrols against it, proves `over` and `under` against
//! chosen cutoffs, and the proofs verify with the issuer key the daemon
//! publishes; a wrong cutoff, direction, RP challenge or issuer key fails.

use std::process::{Command, Output};

use provii_e2e::world::random_hex32;
use provii_e2e::{Appliance, binary, test_params};
use serde_json::Value;

fn tool(args: &[&str]) -> Output {
    Command::new(binary("provii-tool"))
        .args(args)
        .output()
        .expect("provii-tool")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn verify(params: &str, proof: &Value, issuer_vk: &str, direction: &str, extra: &[&str]) -> bool {
    let dir = std::env::temp_dir().join(format!(
        "provii-proof-{}-{}",
        std::process::id(),
        random_hex32()
    ));
    std::fs::write(&dir, proof.to_string()).expect("proof file");
    let mut args = vec![
        "wallet",
        "verify",
        "--params",
        params,
        "--proof",
        dir.to_str().expect("utf-8"),
        "--issuer-vk",
        issuer_vk,
        "--direction",
        direction,
    ];
    args.extend_from_slice(extra);
    let out = tool(&args);
    let _ = std::fs::remove_file(&dir);
    let verdict = json(&out);
    let valid = verdict["valid"] == true;
    if !valid {
        // Said on failure, so a refusal the test did not expect explains itself.
        eprintln!("wallet verify --direction {direction}: {verdict}");
    }
    assert_eq!(
        valid,
        out.status.success(),
        "exit status follows the verdict"
    );
    valid
}

/// The verifying key the daemon publishes for `kid` (base64url), as a
/// verifier's registry would hold it.
fn published_key(app: &Appliance, kid: &str) -> String {
    let jwks = app.get("/.well-known/jwks.json").json();
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid)
        .and_then(|k| k["x"].as_str())
        .expect("the daemon publishes the key")
        .to_owned()
}

#[test]
fn params_check_accepts_the_runs_parameters_and_refuses_altered_ones() {
    let params = test_params();
    let ok = tool(&["params", "check", params.to_str().expect("utf-8")]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert_eq!(json(&ok)["checks"].as_array().map(Vec::len), Some(4));
    // A copy with one byte of the proving key changed fails the content hash.
    let copy = std::env::temp_dir().join(format!("provii-params-altered-{}", std::process::id()));
    std::fs::create_dir_all(&copy).expect("dir");
    for name in ["age_pk.bin", "age_vk.bin", "manifest.json"] {
        std::fs::copy(params.join(name), copy.join(name)).expect("copy");
    }
    let mut pk = std::fs::read(copy.join("age_pk.bin")).expect("pk");
    let middle = pk.len() / 2;
    pk[middle] ^= 1;
    std::fs::write(copy.join("age_pk.bin"), pk).expect("write");
    let altered = tool(&["params", "check", copy.to_str().expect("utf-8")]);
    let _ = std::fs::remove_dir_all(&copy);
    assert!(!altered.status.success(), "an altered proving key passed");
    assert_eq!(json(&altered)["ok"], false);
    assert!(
        json(&altered)["error"]
            .as_str()
            .is_some_and(|e| e.contains("Blake2s")),
        "{}",
        String::from_utf8_lossy(&altered.stdout)
    );
}

#[test]
fn a_credential_from_the_appliance_proves_over_and_under() {
    let params_dir = test_params();
    let params = params_dir.to_str().expect("utf-8").to_owned();
    let app = Appliance::start("age-proof");
    let dob_days = 9000; // 1994-08-23
    let attestation = app.officer_attestation(dob_days);
    let wallet = app.dir.join("wallet.json");
    let wallet_s = wallet.to_str().expect("utf-8");
    let server = format!("http://{}", app.addr);
    let enrolled = tool(&[
        "wallet",
        "enrol",
        "--server",
        &server,
        "--attestation",
        &attestation,
        "--wallet",
        wallet_s,
    ]);
    assert!(
        enrolled.status.success(),
        "enrol: {}",
        String::from_utf8_lossy(&enrolled.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&wallet)
        .expect("wallet")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // The key the daemon publishes, as a verifier's registry would hold it.
    let kid = json(&enrolled)["kid"].as_str().expect("kid").to_owned();
    let issuer_vk = published_key(&app, &kid);

    let challenge = random_hex32();
    // Runs `wallet prove`; the parsed AgeProofJson, or None when refused.
    let prove = |direction: &str, cutoff: i32| {
        let cutoff = cutoff.to_string();
        let out = tool(&[
            "wallet",
            "prove",
            "--params",
            &params,
            "--wallet",
            wallet_s,
            "--direction",
            direction,
            "--cutoff-days",
            &cutoff,
            "--rp-challenge",
            &challenge,
        ]);
        out.status
            .success()
            .then(|| json(&out))
            .ok_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let over = prove("over", 9100).expect("prove over");
    assert_eq!(
        over["proof"].as_str().map(str::len),
        Some(256),
        "192 bytes, base64url"
    );
    let under = prove("under", 8900).expect("prove under");

    let expect_over = [
        "--cutoff-days",
        "9100",
        "--rp-challenge",
        challenge.as_str(),
    ];
    assert!(verify(&params, &over, &issuer_vk, "over", &expect_over));
    assert!(verify(
        &params,
        &under,
        &issuer_vk,
        "under",
        &["--cutoff-days", "8900", "--rp-challenge", &challenge]
    ));

    // Wrong direction, cutoff, RP challenge or issuer key: refused.
    assert!(
        !verify(&params, &over, &issuer_vk, "under", &[]),
        "direction"
    );
    assert!(
        !verify(
            &params,
            &over,
            &issuer_vk,
            "over",
            &["--cutoff-days", "9101"]
        ),
        "expected cutoff"
    );
    let mut tampered = over.clone();
    tampered["public"]["cutoff_days"] = 9101.into();
    assert!(
        !verify(&params, &tampered, &issuer_vk, "over", &[]),
        "cutoff in the statement"
    );
    let other = random_hex32();
    assert!(
        !verify(
            &params,
            &over,
            &issuer_vk,
            "over",
            &["--rp-challenge", &other]
        ),
        "expected challenge"
    );
    let mut tampered = over.clone();
    tampered["public"]["rp_challenge"] = provii_circuits::encoding::b64url_encode(
        &provii_circuits::encoding::hex_decode_array::<32>(&other, "hex").expect("hex"),
    )
    .into();
    assert!(
        !verify(&params, &tampered, &issuer_vk, "over", &[]),
        "RP hash in the statement"
    );
    let another_key = app.cli_json(&["keys", "create"])["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    let another_vk = published_key(&app, &another_key);
    assert!(
        !verify(&params, &over, &another_vk, "over", &[]),
        "expected issuer key"
    );
    let mut tampered = over.clone();
    tampered["public"]["issuer"]["value"] = another_vk.clone().into();
    assert!(
        !verify(&params, &tampered, &another_vk, "over", &[]),
        "issuer key in the statement"
    );

    // The wallet's preflight refuses a request its date of birth cannot meet.
    let refused = prove("over", 8000).expect_err("a proof its date of birth cannot back");
    assert!(refused.contains("preflight"), "{refused}");
}
