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
    let valid = json(&out)["valid"] == true;
    assert_eq!(
        valid,
        out.status.success(),
        "exit status follows the verdict"
    );
    valid
}

#[test]
fn a_credential_from_the_appliance_proves_over_and_under() {
    let params_dir = test_params();
    let params = params_dir.to_str().expect("utf-8").to_owned();
    let app = Appliance::start("age-proof");
    let dob_days = 9000; // 1994-08-23
    let attestation = app.officer_attest(dob_days).json()["attestation"]
        .as_str()
        .expect("attestation")
        .to_owned();
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
    let jwks = app.get("/.well-known/jwks.json").json();
    let issuer_vk = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .and_then(|k| k["x"].as_str())
        .expect("the daemon publishes the credential's key")
        .to_owned();

    let challenge = random_hex32();
    let prove = |direction: &str, cutoff: i32| {
        let cutoff = cutoff.to_string();
        tool(&[
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
        ])
    };
    let over = prove("over", 9100);
    assert!(
        over.status.success(),
        "prove over: {}",
        String::from_utf8_lossy(&over.stderr)
    );
    let over = json(&over);
    assert_eq!(
        over["proof"].as_str().map(str::len),
        Some(256),
        "192 bytes, base64url"
    );
    let under = prove("under", 8900);
    assert!(
        under.status.success(),
        "prove under: {}",
        String::from_utf8_lossy(&under.stderr)
    );
    let under = json(&under);

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
    let jwks = app.get("/.well-known/jwks.json").json();
    let another_vk = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == another_key.as_str())
        .and_then(|k| k["x"].as_str())
        .expect("new key published")
        .to_owned();
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
    let refused = prove("over", 8000);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("preflight"));
}
