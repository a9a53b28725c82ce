//! The Issuing Party's request signature (WIRE.md §3): the canonical string
//! a client HMACs with its 32-byte secret. Verification happens in the HSM;
//! this module only builds the exact bytes.

use crate::error::{Error, Result};

/// The path is a literal even when a request arrives on the `/v0` alias.
const CANONICAL_PATH: &str = "/v1/attestation/create";

/// Checks an officer or client id: `[A-Za-z0-9-_:./@]`, 1 to 128 characters.
pub fn validate_key_id(id: &str) -> Result<()> {
    let allowed =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.' | b'/' | b'@');
    if (1..=128).contains(&id.len()) && id.bytes().all(allowed) {
        Ok(())
    } else {
        Err(Error::InvalidField {
            field: "keyId",
            reason: "must be 1 to 128 characters of A-Z a-z 0-9 - _ : . / @",
        })
    }
}

/// `{ts}:POST:/v1/attestation/create:{"dob_days":{dob},"authorizer":{"format":"client","key_id":"{keyId}","timestamp":{ts}}}:{nonce}`
///
/// `key_id` is validated first, so it cannot break out of its JSON string;
/// `nonce_hex` must be exactly 64 lowercase hex characters.
pub fn client_canonical_string(
    ts: u64,
    dob_days: i32,
    key_id: &str,
    nonce_hex: &str,
) -> Result<String> {
    validate_key_id(key_id)?;
    crate::encoding::hex_decode_array::<32>(nonce_hex, "nonce")?;
    Ok(format!(
        "{ts}:POST:{CANONICAL_PATH}:{{\"dob_days\":{dob_days},\"authorizer\":{{\"format\":\"client\",\"key_id\":\"{key_id}\",\"timestamp\":{ts}}}}}:{nonce_hex}"
    ))
}
