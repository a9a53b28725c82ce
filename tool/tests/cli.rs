//! `provii-tool` driven as an integrator would: the built binary, real files,
//! stdin, exit codes. Expected values come from spec Appendix A.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn tool(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_provii-tool"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn provii-tool");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("provii-tool runs")
}

fn json_ok(args: &[&str], stdin: Option<&[u8]>) -> Value {
    let out = tool(args, stdin);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

fn fails_with(args: &[&str], code: i32, stderr_has: &str) {
    let out = tool(args, None);
    assert_eq!(out.status.code(), Some(code), "{args:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(stderr_has), "{args:?}: stderr was {err}");
}

#[test]
fn commit_reproduces_a7_from_msb_first_wire_bytes() {
    let v = json_ok(
        &[
            "commit",
            "--dob-days",
            "11246",
            "--r-bits",
            "2f00491eea556f8228af865d35cd9e0e",
        ],
        None,
    );
    assert_eq!(
        v["commitment"],
        "e437495ee5c2872cb408674c213b95f6efd086fda4687997a35321f0ad2d79aa"
    );
    assert_eq!(v["nullifier"].as_str().map(str::len), Some(64));
}

#[test]
fn commit_refuses_bad_input_with_clear_errors() {
    fails_with(
        &[
            "commit",
            "--dob-days",
            "36526",
            "--r-bits",
            "2f00491eea556f8228af865d35cd9e0e",
        ],
        2,
        "dob_days",
    );
    fails_with(
        &[
            "commit",
            "--dob-days",
            "1",
            "--r-bits",
            "2F00491eea556f8228af865d35cd9e0e",
        ],
        2,
        "uppercase",
    );
    fails_with(
        &[
            "commit",
            "--dob-days",
            "1",
            "--r-bits",
            "2f00491eea556f8228af865d35cd9e",
        ],
        2,
        "expected 16 bytes",
    );
    fails_with(
        &[
            "commit",
            "--dob-days",
            "1",
            "--r-bits",
            "00000000000000000000000000000000",
        ],
        2,
        "all zero",
    );
    fails_with(
        &[
            "commit",
            "--dob-days",
            "1",
            "--r-bits",
            "01010101010101010101010101010102",
        ],
        2,
        "distinct byte",
    );
}

#[test]
fn vk_id_of_the_deployed_key() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/reference/age_vk.914153247.bin"
    );
    let v = json_ok(&["vk-id", "--vk", path], None);
    assert_eq!(v["vk_id"], 914153247);
    assert_eq!(
        v["vk_fingerprint_blake2s"],
        "3491e619259f47b7c5b3b82ed6f71a3bf62a6c2e5a5e9349163e8c0e94c73644"
    );
}

#[test]
fn vk_id_refuses_a_file_that_is_not_a_verifying_key() {
    let out = tool(&["vk-id", "--vk", "-"], Some(b"not a key"));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn public_inputs_reproduce_a12() {
    let v = json_ok(
        &[
            "public-inputs",
            "--direction",
            "over",
            "--cutoff-days",
            "13772",
            "--rp-hash",
            "ad106802a888dcb4028cd9933d47a6c50e30d649969660f8432148c8961db6ea",
            "--issuer-vk",
            "02820bdb8c81bb4824b8b7be488765e819b84ff495d5ae334a10197fd97ddd25",
            "--nullifier",
            "b7e414287e1792d961939737b40d7d453cd2996e3a2c8735f745da828b8c5af3",
        ],
        None,
    );
    let pi = v["public_inputs"].as_array().expect("array");
    assert_eq!(pi.len(), 8);
    assert_eq!(
        pi[1],
        "cc35008000000000000000000000000000000000000000000000000000000000"
    );
    assert_eq!(
        pi[2],
        "ad106802a888dcb4028cd9933d47a6c50e30d649969660f8432148c8961db62a"
    );
    assert_eq!(
        pi[7],
        "0300000000000000000000000000000000000000000000000000000000000000"
    );
}

#[test]
fn rp_challenge_reproduces_a5_a6() {
    let nonce = "2a".repeat(32);
    let v = json_ok(
        &[
            "rp-challenge",
            "--origin",
            "https://example.com",
            "--nonce",
            &nonce,
        ],
        None,
    );
    assert_eq!(
        v["rp_challenge"],
        "35dcc5ea16a967de4891a10c283e33ca9d0f29ba4ae02fcf70e49ba98175b9fa"
    );
    assert_eq!(
        v["rp_hash"],
        "afe7e76cb0ac79e7157fcc7f4c5eb319daa0c106093794a1bbd00b4c85ff430e"
    );
    fails_with(
        &[
            "rp-challenge",
            "--origin",
            "https://example.com/path",
            "--nonce",
            &nonce,
        ],
        2,
        "origin",
    );
}

const A11_ATTESTATION: &str = concat!(
    r#"{"dob_days":7300,"issuer_id":"dmv.ca.gov","timestamp":1704067200,"#,
    r#""nonce":"4242424242424242424242424242424242424242424242424242424242424242","#,
    r#""signature":"9e30ab793959301e0a308d339cd98cfbd0046ed409d68d9752a24e8906c6fd073de0628ee8394d88404c11b5aa7d07024074ea86872e16bc035a1f226fca8b02"}"#
);

#[test]
fn attestation_digest_reproduces_a11() {
    let v = json_ok(
        &["attestation-digest", "--attestation", "-"],
        Some(A11_ATTESTATION.as_bytes()),
    );
    assert_eq!(
        v["digest"],
        "0b1aee332eb8f6cb0e4e090f001b99d077c74783d0abcb3d108e82f424757296"
    );
    let upper = A11_ATTESTATION.replace("9e30ab", "9E30AB");
    let out = tool(
        &["attestation-digest", "--attestation", "-"],
        Some(upper.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(2));
}

const UNSIGNED: &str = r#"{"v":2,"kid":"provii:2026-05","c_bytes":"5DdJXuXChyy0CGdMITuV9u_Qhv2kaHmXo1Mh8K0teao","iat":1700000000,"exp":1800000000,"schema":"provii.age/0"}"#;
const SK: &str = "0700000000000000000000000000000000000000000000000000000000000000";

#[test]
fn sign_then_verify_and_tamper() {
    let signed = tool(
        &["sign", "--sk", SK, "--credential", "-"],
        Some(UNSIGNED.as_bytes()),
    );
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    let cred: Value = serde_json::from_slice(&signed.stdout).expect("JSON");
    let keys: Vec<&str> = cred
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "v",
            "kid",
            "issuer_vk",
            "sig_rj",
            "c_bytes",
            "iat",
            "exp",
            "schema"
        ]
    );

    let v = json_ok(
        &["verify-credential", "--credential", "-"],
        Some(&signed.stdout),
    );
    assert_eq!(v["valid"], true);
    let vk = cred["issuer_vk"].as_str().expect("string");
    let v = json_ok(
        &["verify-credential", "--credential", "-", "--issuer-vk", vk],
        Some(&signed.stdout),
    );
    assert_eq!(v["valid"], true);

    let tampered = String::from_utf8_lossy(&signed.stdout).replace("1800000000", "1800000001");
    let out = tool(
        &["verify-credential", "--credential", "-"],
        Some(tampered.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["valid"], false);

    // A different expected key: invalid, exit 1.
    let g = "MLXyqq0yVjC83dvOTWdlbQX9HMLQN7tTdbbpbZ4BoVc";
    let out = tool(
        &["verify-credential", "--credential", "-", "--issuer-vk", g],
        Some(&signed.stdout),
    );
    assert_eq!(out.status.code(), Some(1));

    let p = json_ok(&["prehash", "--credential", "-"], Some(&signed.stdout));
    assert_eq!(p["prehash"].as_str().map(str::len), Some(182));
}

#[test]
fn missing_file_is_a_clear_error() {
    fails_with(
        &["prehash", "--credential", "/nonexistent/cred.json"],
        2,
        "cannot read /nonexistent/cred.json",
    );
}
