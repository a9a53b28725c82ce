//! One function per subcommand; each returns the JSON object to print.

use provii_circuits::encoding::{b64url_decode_array, hex_decode_array, hex_encode};
use provii_circuits::params::{parse_age_verifying_key, vk_fingerprint, vk_id};
use provii_circuits::rp::{Origin, rp_challenge, rp_hash};
use provii_circuits::{
    Attestation, Direction, DobDays, ParsedCredential, RBits, SigningKey, VerifyingKey,
    assemble_public_inputs, commit, nullifier,
};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::ToolError;
use crate::input::trim_trailing_whitespace;

pub fn commit_cmd(dob_days: i32, r_bits_hex: &str) -> Result<Value, ToolError> {
    let dob = DobDays::new(dob_days)?;
    let wire = Zeroizing::new(hex_decode_array::<16>(r_bits_hex, "r-bits")?);
    let r = RBits::from_wire_bytes(&wire[..])?;
    let c = commit(&dob, &r)?;
    Ok(json!({
        "commitment": hex_encode(&c.to_bytes()),
        "nullifier": hex_encode(&nullifier(&c).to_bytes()),
    }))
}

pub fn prehash_cmd(credential: &[u8]) -> Result<Value, ToolError> {
    let parsed = ParsedCredential::from_json(trim_trailing_whitespace(credential))?;
    Ok(json!({
        "prehash": hex_encode(&parsed.msg.prehash()),
        "msg_hash": hex_encode(&parsed.msg.msg_hash()),
    }))
}

/// Signs the credential's fields; a credential that already names an
/// `issuer_vk` must name this key's.
pub fn sign_cmd(sk_hex: &str, credential: &[u8]) -> Result<String, ToolError> {
    let sk_bytes = Zeroizing::new(hex_decode_array::<32>(sk_hex, "sk")?);
    let key = SigningKey::from_bytes(&sk_bytes)?;
    let parsed = ParsedCredential::from_json(trim_trailing_whitespace(credential))?;
    if parsed
        .issuer_vk
        .is_some_and(|vk| vk != *key.verifying_key())
    {
        return Err(ToolError::Usage(
            "the credential's issuer_vk is not the verifying key of --sk".into(),
        ));
    }
    Ok(parsed.msg.sign(&key).to_json())
}

/// `Ok((true, _))` valid; `Ok((false, reason))` a credential that does not
/// verify or does not parse.
pub fn verify_credential_cmd(
    credential: &[u8],
    issuer_vk_b64: Option<&str>,
) -> Result<Value, ToolError> {
    let expected = issuer_vk_b64
        .map(|s| VerifyingKey::from_bytes(&b64url_decode_array(s, "issuer-vk")?))
        .transpose()?;
    let verdict = match ParsedCredential::from_json(trim_trailing_whitespace(credential))
        .and_then(ParsedCredential::into_signed)
    {
        Err(e) => Err(e.to_string()),
        Ok(cred) => match expected {
            Some(vk) if vk != cred.issuer_vk => {
                Err("issuer_vk is not the expected issuer key".to_owned())
            }
            Some(vk) => cred.verify_with(&vk).map_err(|e| e.to_string()),
            None => cred.verify().map_err(|e| e.to_string()),
        },
    };
    Ok(match verdict {
        Ok(()) => json!({"valid": true, "reason": null}),
        Err(reason) => json!({"valid": false, "reason": reason}),
    })
}

/// Accepts the attestation JSON, or its base64url transport form.
pub fn attestation_digest_cmd(attestation: &[u8]) -> Result<Value, ToolError> {
    let trimmed = trim_trailing_whitespace(attestation);
    let att = if trimmed.first() == Some(&b'{') {
        Attestation::from_json(trimmed)?
    } else {
        let text = std::str::from_utf8(trimmed)
            .map_err(|_| ToolError::Usage("attestation is not UTF-8".into()))?;
        Attestation::from_base64url(text)?
    };
    Ok(json!({"digest": hex_encode(&att.fields().digest())}))
}

pub fn vk_id_cmd(vk_bytes: &[u8]) -> Result<Value, ToolError> {
    parse_age_verifying_key(vk_bytes)?;
    Ok(json!({
        "vk_id": vk_id(vk_bytes),
        "vk_fingerprint_blake2s": hex_encode(&vk_fingerprint(vk_bytes)),
    }))
}

/// Packs raw bytes: the issuer key is not required to be a curve point here
/// (spec A.12's is not), only 32 bytes.
pub fn public_inputs_cmd(
    direction: Direction,
    cutoff_days: i32,
    rp_hash_hex: &str,
    issuer_vk_hex: &str,
    nullifier_hex: &str,
) -> Result<Value, ToolError> {
    let inputs = assemble_public_inputs(
        direction,
        cutoff_days,
        &hex_decode_array(rp_hash_hex, "rp-hash")?,
        &hex_decode_array(issuer_vk_hex, "issuer-vk")?,
        &hex_decode_array(nullifier_hex, "nullifier")?,
    );
    let hexes: Vec<String> = inputs.iter().map(|s| hex_encode(&s.to_bytes())).collect();
    Ok(json!({"public_inputs": hexes}))
}

pub fn rp_challenge_cmd(origin: &str, nonce_hex: &str) -> Result<Value, ToolError> {
    let origin = Origin::parse(origin)?;
    let challenge = rp_challenge(&origin, &hex_decode_array(nonce_hex, "nonce")?);
    Ok(json!({
        "rp_challenge": hex_encode(&challenge),
        "rp_hash": hex_encode(&rp_hash(&challenge)),
    }))
}
