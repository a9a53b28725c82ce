//! The outside world as tests play it: a software YubiKey (HMAC-SHA1 over
//! the challenge, exactly what slot 2 computes), an Issuing Party signing
//! the canonical string of WIRE.md §3, and a wallet's side of issuance.

use hmac::{Hmac, KeyInit, Mac};
use provii_circuits::client_auth::client_canonical_string;
use provii_circuits::encoding::{b64url_encode, hex_decode, hex_encode};
use serde_json::{Value, json};

use crate::Appliance;

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn random_hex32() -> String {
    hex_encode(&rand::random::<[u8; 32]>())
}

/// A software YubiKey programmed with `secret`.
pub struct SoftYubiKey {
    pub secret: [u8; 20],
}

impl SoftYubiKey {
    pub fn respond(&self, challenge_hex: &str) -> String {
        let challenge = hex_decode(challenge_hex, "challenge").expect("hex challenge");
        let mut mac = <Hmac<sha1::Sha1>>::new_from_slice(&self.secret).expect("key");
        mac.update(&challenge);
        hex_encode(&mac.finalize().into_bytes())
    }
}

/// An Issuing Party with its 32-byte secret.
pub struct IssuingParty {
    pub id: String,
    pub secret: Vec<u8>,
}

impl IssuingParty {
    pub fn request(&self, dob_days: i32, ts: i64, nonce: &str) -> Value {
        let c = client_canonical_string(ts as u64, dob_days, &self.id, nonce)
            .expect("canonical string");
        let mut mac = <Hmac<sha2::Sha256>>::new_from_slice(&self.secret).expect("key");
        mac.update(c.as_bytes());
        json!({"dob_days": dob_days, "authorizer": {"format": "client", "keyId": self.id, "timestamp": ts,
               "hmac": hex_encode(&mac.finalize().into_bytes()), "nonce": nonce}})
    }
}

impl Appliance {
    pub fn yubikey(&self) -> SoftYubiKey {
        SoftYubiKey {
            secret: self.officer_secret,
        }
    }

    /// Enrols a client through the CLI and returns it.
    pub fn enrol_client(&self, id: &str, allow_under_18: bool) -> IssuingParty {
        let mut args = vec!["clients", "add", id];
        if allow_under_18 {
            args.push("--allow-under-18");
        }
        let v = self.cli_json(&args);
        let secret = hex_decode(v["secret"].as_str().expect("secret"), "secret").expect("hex");
        IssuingParty {
            id: id.to_owned(),
            secret,
        }
    }

    /// The officer path: intent-bound challenge, YubiKey, attestation.
    pub fn officer_attest(&self, dob_days: i32) -> crate::Response {
        self.officer_attest_as(&self.officer_id, &self.yubikey(), dob_days)
    }

    /// The attestation (base64url) the officer path returns; the path must
    /// succeed.
    pub fn officer_attestation(&self, dob_days: i32) -> String {
        let r = self.officer_attest(dob_days);
        assert_eq!(r.status, 201, "attestation: {:?}", r.json());
        r.json()["attestation"]
            .as_str()
            .expect("attestation")
            .to_owned()
    }

    /// The officer path for any officer and YubiKey.
    pub fn officer_attest_as(
        &self,
        officer_id: &str,
        key: &SoftYubiKey,
        dob_days: i32,
    ) -> crate::Response {
        let nonce = random_hex32();
        let ch = self.post(
            "/v1/challenge",
            &json!({"officer_id": officer_id, "intent": {"dob_days": dob_days, "nonce": nonce}}),
        );
        assert_eq!(ch.status, 201, "challenge: {:?}", ch.json());
        let ch = ch.json();
        let response = key.respond(ch["challenge"].as_str().expect("challenge"));
        self.post(
            "/v1/attestation/create",
            &json!({"dob_days": dob_days, "authorizer": {"format": "yubikey", "keyId": officer_id,
                    "challengeId": ch["challenge_id"], "timestamp": now(), "hmac": response, "nonce": nonce}}),
        )
    }

    pub fn issue(&self, attestation: &str, r_bits: &[u8]) -> crate::Response {
        self.post(
            "/v1/issuance/blind",
            &json!({"attestation": attestation, "r_bits": b64url_encode(r_bits)}),
        )
    }
}

/// 16 random bytes that pass Profile A.
pub fn good_r_bits() -> [u8; 16] {
    loop {
        let r: [u8; 16] = rand::random();
        let mut seen = r.to_vec();
        seen.sort();
        seen.dedup();
        if seen.len() >= 8 {
            return r;
        }
    }
}
