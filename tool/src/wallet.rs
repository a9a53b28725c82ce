//! `provii-tool wallet`: a reference wallet for tests and integrators.
//!
//! - `enrol` draws r_bits, calls blind issuance, checks the credential as
//!   spec §11.4 step 11 requires (the commitment opens; the issuer's own
//!   JWKS serves as the registry that resolves `(issuer, kid)`; the
//!   signature verifies under the resolved key; `iat <= now < exp`) and
//!   only then stores credential, date of birth and r_bits, mode 0600.
//! - `prove` runs the preflight of spec §13.5, then proves and prints the
//!   `AgeProofJson` of spec §15.10.
//! - `verify` runs the verifier's steps of spec §13.10 on such a proof.
//!
//! The wallet file holds the date of birth and r_bits in the clear (a
//! phone keeps them in its keystore): it is a reference and test tool.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use provii_circuits::circuit::{AgePublicInputs, AgeWitness};
use provii_circuits::constants::{CLOCK_SKEW_TOLERANCE_SECONDS, MAX_VALIDITY_SECONDS};
use provii_circuits::encoding::{b64url_decode_array, b64url_encode, hex_decode_array, hex_encode};
use provii_circuits::proof::{AgeProof, prove, verify};
use provii_circuits::rp::rp_hash;
use provii_circuits::{
    Attestation, Direction, DobDays, RBits, SignedCredential, VerifyingKey, bias_for_circuit,
    commit, nullifier,
};
use rand_core::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::ToolError;

fn usage(msg: impl Into<String>) -> ToolError {
    ToolError::Usage(msg.into())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What the wallet file holds.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WalletFile {
    server: String,
    issuer_id: String,
    dob_days: i32,
    /// The 16 wire bytes (MSB-first), hex.
    r_bits: String,
    credential: Value,
}

impl Drop for WalletFile {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.dob_days.zeroize();
        self.r_bits.zeroize();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// 128 bits from the OS CSPRNG that pass Profile A (drawn again if not).
fn draw_r_bits() -> RBits {
    loop {
        let mut wire = Zeroizing::new([0u8; 16]);
        rand::rng().fill_bytes(&mut wire[..]);
        if let Ok(r) = RBits::from_wire_bytes(&wire[..]) {
            return r;
        }
    }
}

/// The issuer's published key for `kid` (its JWKS is the registry here).
fn resolve_issuer_key(server: &str, kid: &str) -> Result<VerifyingKey, ToolError> {
    let url = format!("{}/.well-known/jwks.json", server.trim_end_matches('/'));
    let mut response = agent()
        .get(&url)
        .call()
        .map_err(|e| usage(format!("GET {url}: {e}")))?;
    let body = response.body_mut().read_to_string().unwrap_or_default();
    let jwks: Value =
        serde_json::from_str(&body).map_err(|_| usage(format!("{url} did not return a JWKS")))?;
    let key = jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["kid"] == kid)
        .ok_or_else(|| {
            usage(format!(
                "the issuer does not publish kid {kid}: refusing the credential"
            ))
        })?;
    if key["status"] == "revoked" {
        return Err(usage(format!(
            "kid {kid} is revoked: refusing the credential"
        )));
    }
    let x = key["x"].as_str().unwrap_or("");
    let bytes = b64url_decode_array::<32>(x, "x")?;
    Ok(VerifyingKey::from_bytes(&bytes)?)
}

/// `wallet enrol --server URL --attestation B64URL --wallet FILE`.
pub fn enrol(server: &str, attestation: &str, wallet: &Path) -> Result<Value, ToolError> {
    if wallet.exists() {
        return Err(usage(format!(
            "{} already holds a credential; choose another --wallet file",
            wallet.display()
        )));
    }
    let parsed = Attestation::from_base64url(attestation.trim())?;
    let dob = parsed.fields().dob()?;
    let issuer_id = parsed.fields().issuer_id().to_owned();
    let r_bits = draw_r_bits();
    let url = format!("{}/v1/issuance/blind", server.trim_end_matches('/'));
    let request = json!({
        "attestation": attestation.trim(),
        "r_bits": b64url_encode(&r_bits.to_wire_bytes()[..]),
    });
    let mut response = agent()
        .post(&url)
        .header("Content-Type", "application/json")
        .send(request.to_string())
        .map_err(|e| usage(format!("POST {url}: {e}")))?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    if status != 200 {
        return Err(usage(format!("the issuer refused (HTTP {status}): {body}")));
    }
    let reply: Value =
        serde_json::from_str(&body).map_err(|_| usage("the issuer's reply is not JSON"))?;
    let credential_json = reply["credential"].to_string();
    let credential = SignedCredential::from_json(credential_json.as_bytes())?;

    // Spec §11.4 step 11, all before anything is stored.
    let opened = commit(&dob, &r_bits)?;
    if !bool::from(opened.ct_eq(credential.msg.commitment())) {
        return Err(usage(
            "the credential's commitment does not open with our date of birth and r_bits: refusing it",
        ));
    }
    let registered = resolve_issuer_key(server, credential.msg.kid().as_str())?;
    credential
        .verify_with(&registered)
        .map_err(|_| usage("the credential's signature does not verify under the issuer's published key: refusing it"))?;
    let t = now();
    if !(credential.msg.iat() <= t + CLOCK_SKEW_TOLERANCE_SECONDS && t < credential.msg.exp()) {
        return Err(usage(
            "the credential is not valid now (iat/exp): refusing it",
        ));
    }

    let file = WalletFile {
        server: server.to_owned(),
        issuer_id,
        dob_days: dob.expose(),
        r_bits: hex_encode(&r_bits.to_wire_bytes()[..]),
        credential: serde_json::from_str(&credential_json).unwrap_or(Value::Null),
    };
    let text = Zeroizing::new(serde_json::to_string(&file).map_err(|e| usage(e.to_string()))?);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(wallet)
        .map_err(|e| ToolError::Io(wallet.display().to_string(), e))?;
    out.write_all(text.as_bytes())
        .and_then(|_| out.sync_all())
        .map_err(|e| ToolError::Io(wallet.display().to_string(), e))?;
    Ok(json!({
        "wallet": wallet.display().to_string(),
        "kid": credential.msg.kid().as_str(),
        "issuer_vk": b64url_encode(&credential.issuer_vk.to_bytes()),
        "exp": credential.msg.exp(),
    }))
}

struct Held {
    dob: DobDays,
    r_bits: RBits,
    credential: SignedCredential,
}

fn load(wallet: &Path) -> Result<Held, ToolError> {
    let text = Zeroizing::new(
        std::fs::read(wallet).map_err(|e| ToolError::Io(wallet.display().to_string(), e))?,
    );
    let file: WalletFile = serde_json::from_slice(&text)
        .map_err(|e| usage(format!("{} is not a wallet file: {e}", wallet.display())))?;
    let wire = Zeroizing::new(hex_decode_array::<16>(&file.r_bits, "r_bits")?);
    Ok(Held {
        dob: DobDays::new(file.dob_days)?,
        r_bits: RBits::from_wire_bytes(&wire[..])?,
        credential: SignedCredential::from_json(file.credential.to_string().as_bytes())?,
    })
}

/// The preflight of spec §13.5 (steps 1-4; step 6 is the proving key's
/// manifest check, done when it is loaded).
fn preflight(held: &Held, direction: Direction, cutoff_days: i32) -> Result<(), ToolError> {
    let c = &held.credential;
    let opened = commit(&held.dob, &held.r_bits)?;
    if !bool::from(opened.ct_eq(c.msg.commitment())) {
        return Err(usage(
            "preflight: the commitment does not open with the stored date of birth",
        ));
    }
    c.verify()
        .map_err(|_| usage("preflight: the credential's signature does not verify"))?;
    let (iat, exp, t) = (c.msg.iat(), c.msg.exp(), now());
    let plausible = iat < exp
        && iat <= t + CLOCK_SKEW_TOLERANCE_SECONDS
        && exp > t
        && exp - iat <= MAX_VALIDITY_SECONDS
        && exp <= t + MAX_VALIDITY_SECONDS;
    if !plausible {
        return Err(usage(
            "preflight: the credential has expired or its validity is implausible; enrol again",
        ));
    }
    let (dob, cutoff) = (
        bias_for_circuit(held.dob.expose()),
        bias_for_circuit(cutoff_days),
    );
    let holds = match direction {
        Direction::Over => cutoff >= dob,
        Direction::Under => dob >= cutoff,
    };
    if !holds {
        return Err(usage(
            "preflight: the date of birth does not satisfy this request; no proof made",
        ));
    }
    Ok(())
}

/// `wallet prove`: the `AgeProofJson` of spec §15.10.
pub fn prove_cmd(
    params_dir: &Path,
    wallet: &Path,
    direction: Direction,
    cutoff_days: i32,
    rp_challenge_hex: &str,
) -> Result<Value, ToolError> {
    let rp_challenge = hex_decode_array::<32>(rp_challenge_hex, "rp_challenge")?;
    let held = load(wallet)?;
    preflight(&held, direction, cutoff_days)?;
    let (manifest, params) = crate::params::load_proving_key(params_dir)?;
    let public = AgePublicInputs {
        direction,
        cutoff_days,
        rp_hash: rp_hash(&rp_challenge),
        issuer_vk: held.credential.issuer_vk.to_bytes(),
        nullifier: nullifier(held.credential.msg.commitment()).to_bytes(),
    };
    let witness = AgeWitness::from_credential(&held.dob, &held.r_bits, &held.credential)
        .map_err(|e| usage(e.to_string()))?;
    let proof = crate::params::with_progress("proving", std::time::Duration::from_secs(3), || {
        prove(&params, &public, witness, &mut rand::rng())
    })
    .map_err(|e| usage(e.to_string()))?;
    // A wallet checks its proof before handing it to a relying party (6 ms);
    // a failure names the constraint the credential does not satisfy.
    if !verify(&groth16::prepare_verifying_key(&params.vk), &proof, &public) {
        let witness = AgeWitness::from_credential(&held.dob, &held.r_bits, &held.credential)
            .map_err(|e| usage(e.to_string()))?;
        let cause =
            provii_circuits::proof::first_unsatisfied(&public, witness).unwrap_or_else(|| {
                "every constraint is satisfied, so the parameters do not match the circuit".into()
            });
        return Err(usage(format!(
            "the proof does not verify against these parameters' own verifying key ({cause}); nothing was printed"
        )));
    }
    Ok(json!({
        "verifying_key_id": manifest.vk_id,
        "public": {
            "cutoff_days": cutoff_days,
            "rp_challenge": b64url_encode(&rp_challenge),
            "issuer": {"value": b64url_encode(&public.issuer_vk)},
            "cred_nullifier": b64url_encode(&public.nullifier),
        },
        "proof": b64url_encode(&proof.to_bytes()),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerKeyJson {
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicInputsJson {
    cutoff_days: i32,
    rp_challenge: String,
    issuer: IssuerKeyJson,
    cred_nullifier: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgeProofJson {
    verifying_key_id: u32,
    public: PublicInputsJson,
    proof: String,
}

/// What the relying party asked for, to hold the proof to.
pub struct Expectation<'a> {
    pub issuer_vk: &'a str,
    pub direction: Direction,
    pub cutoff_days: Option<i32>,
    pub rp_challenge: Option<&'a str>,
}

/// `wallet verify`: the verifier's steps (spec §13.10). `valid` is false,
/// with the reason, for any mismatch.
pub fn verify_cmd(
    params_dir: &Path,
    proof_json: &[u8],
    expect: &Expectation<'_>,
) -> Result<Value, ToolError> {
    let submitted: AgeProofJson = serde_json::from_slice(proof_json)
        .map_err(|e| usage(format!("not an AgeProofJson: {e}")))?;
    let invalid = |reason: &str| Ok(json!({"valid": false, "reason": reason}));
    let (vk_id, vk) = crate::params::load_verifying_key(params_dir)?;
    if submitted.verifying_key_id != vk_id {
        return invalid("verifying_key_id is not these parameters' vk_id");
    }
    let proof_bytes = provii_circuits::encoding::b64url_decode(&submitted.proof, "proof")?;
    let proof = match AgeProof::from_bytes(&proof_bytes) {
        Ok(p) => p,
        Err(e) => return invalid(&e.to_string()),
    };
    let issuer_vk = b64url_decode_array::<32>(&submitted.public.issuer.value, "issuer.value")?;
    let expected_vk = b64url_decode_array::<32>(expect.issuer_vk, "--issuer-vk")?;
    if issuer_vk != expected_vk {
        return invalid("the proof names another issuer key");
    }
    if expect
        .cutoff_days
        .is_some_and(|c| c != submitted.public.cutoff_days)
    {
        return invalid("the proof is for another cutoff");
    }
    let rp_challenge = b64url_decode_array::<32>(&submitted.public.rp_challenge, "rp_challenge")?;
    if let Some(hex) = expect.rp_challenge
        && hex_decode_array::<32>(hex, "--rp-challenge")? != rp_challenge
    {
        return invalid("the proof answers another challenge");
    }
    let public = AgePublicInputs {
        direction: expect.direction,
        cutoff_days: submitted.public.cutoff_days,
        rp_hash: rp_hash(&rp_challenge),
        issuer_vk,
        nullifier: b64url_decode_array::<32>(&submitted.public.cred_nullifier, "cred_nullifier")?,
    };
    let pvk = groth16::prepare_verifying_key(&vk);
    if !verify(&pvk, &proof, &public) {
        return invalid("the proof does not verify for this statement");
    }
    Ok(json!({"valid": true, "vk_id": vk_id, "cred_nullifier": submitted.public.cred_nullifier}))
}
