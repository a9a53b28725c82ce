//! Attestations: the deployed framing, strict JSON, and the issuer's checks.

use ed25519_dalek::{Signer, SigningKey as EdSigningKey};
use provii_circuits::DobDays;
use provii_circuits::attestation::{
    Attestation, AttestationError, AttestationFields, AttestationVerifyingKey,
};
use provii_circuits::error::{Error, HexError};

const TS: u64 = 1_704_067_200;

fn ed(seed: u8) -> (EdSigningKey, AttestationVerifyingKey) {
    let sk = EdSigningKey::from_bytes(&[seed; 32]);
    let vk = AttestationVerifyingKey::from_bytes(sk.verifying_key().as_bytes()).expect("valid");
    (sk, vk)
}

fn attest(sk: &EdSigningKey, dob: i32, session: Option<&str>, client: Option<&str>) -> Attestation {
    // An out-of-range dob cannot be built through DobDays; sign raw JSON instead.
    let fields = AttestationFields::new(
        &DobDays::new(dob.clamp(-36525, 36525)).expect("in range"),
        "dmv.ca.gov",
        TS,
        [0x42; 32],
        session,
        client,
    )
    .expect("valid");
    if (-36525..=36525).contains(&dob) {
        let sig = sk.sign(&fields.digest()).to_bytes();
        return fields.with_signature(sig);
    }
    let unsigned = fields
        .with_signature([0; 64])
        .to_json()
        .replace("\"dob_days\":36525", &format!("\"dob_days\":{dob}"));
    let parsed = Attestation::from_json(unsigned.as_bytes()).expect("parses");
    let sig = sk.sign(&parsed.fields().digest()).to_bytes();
    parsed.fields().clone().with_signature(sig)
}

#[test]
fn bound_framing_appends_both_length_prefixed_ids() {
    let dob = DobDays::new(7300).expect("in range");
    let unbound =
        AttestationFields::new(&dob, "dmv.ca.gov", TS, [0x42; 32], None, None).expect("ok");
    let both = AttestationFields::new(
        &dob,
        "dmv.ca.gov",
        TS,
        [0x42; 32],
        Some("sess-1"),
        Some("bank"),
    )
    .expect("ok");
    let only_client =
        AttestationFields::new(&dob, "dmv.ca.gov", TS, [0x42; 32], None, Some("bank")).expect("ok");
    let base = unbound.preimage();
    assert_eq!(base.len(), 80);
    let mut want = base.clone();
    want.extend_from_slice(b"\x06sess-1\x04bank");
    assert_eq!(both.preimage(), want);
    let mut want = base;
    want.extend_from_slice(b"\x00\x04bank");
    assert_eq!(only_client.preimage(), want);
    assert_eq!(
        both.digest(),
        *blake2s_simd::blake2s(&both.preimage()).as_array()
    );
}

#[test]
fn issuer_checks_run_in_order() {
    let (sk, vk) = ed(1);
    let (_, other) = ed(2);
    let good = attest(&sk, 7300, None, None);
    assert_eq!(
        good.verify("dmv.ca.gov", &[vk], TS).map(|d| d.expose()),
        Ok(7300)
    );
    // Rotation window: the previous key still verifies.
    assert!(good.verify("dmv.ca.gov", &[other, vk], TS).is_ok());
    assert_eq!(
        good.verify("other.gov", &[vk], TS).err(),
        Some(AttestationError::WrongIssuer)
    );
    assert_eq!(
        good.verify("dmv.ca.gov", &[other], TS).err(),
        Some(AttestationError::BadSignature)
    );
    assert!(good.verify("dmv.ca.gov", &[vk], TS + 3600).is_ok());
    assert_eq!(
        good.verify("dmv.ca.gov", &[vk], TS + 3601).err(),
        Some(AttestationError::Expired)
    );
    assert!(good.verify("dmv.ca.gov", &[vk], TS - 60).is_ok());
    assert_eq!(
        good.verify("dmv.ca.gov", &[vk], TS - 61).err(),
        Some(AttestationError::FromFuture)
    );
    // The signature is checked before freshness, freshness before the range.
    assert_eq!(
        good.verify("dmv.ca.gov", &[other], TS + 9999).err(),
        Some(AttestationError::BadSignature)
    );
    let out_of_range = attest(&sk, 40000, None, None);
    assert_eq!(
        out_of_range.verify("dmv.ca.gov", &[vk], TS).err(),
        Some(AttestationError::DobOutOfRange)
    );
    assert_eq!(
        out_of_range.verify("dmv.ca.gov", &[vk], TS + 9999).err(),
        Some(AttestationError::Expired)
    );
}

#[test]
fn every_signed_field_is_covered() {
    let (sk, vk) = ed(1);
    let good = attest(&sk, 7300, Some("s"), Some("c"));
    let json = good.to_json();
    for (from, to) in [
        ("\"dob_days\":7300", "\"dob_days\":7301"),
        ("\"timestamp\":1704067200", "\"timestamp\":1704067201"),
        ("\"nonce\":\"42", "\"nonce\":\"43"),
        ("\"session_id\":\"s\"", "\"session_id\":\"t\""),
        ("\"client_id\":\"c\"", "\"client_id\":\"d\""),
    ] {
        let tampered =
            Attestation::from_json(json.replace(from, to).as_bytes()).expect("still well-formed");
        assert_eq!(
            tampered.verify_signature(&[vk]).err(),
            Some(AttestationError::BadSignature),
            "{from}"
        );
    }
}

#[test]
fn malleated_signature_is_refused() {
    let (sk, vk) = ed(1);
    let good = attest(&sk, 7300, None, None);
    // s + L, with L the Ed25519 group order: congruent, but not canonical.
    let l: [u8; 32] = {
        let mut l = [0u8; 32];
        l[..16].copy_from_slice(&0x14def9dea2f79cd65812631a5cf5d3ed_u128.to_le_bytes());
        l[31] = 0x10;
        l
    };
    let mut sig = *good.signature();
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(sig[32 + i]) + u16::from(l[i]) + carry;
        sig[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    let malleated = good.fields().clone().with_signature(sig);
    assert_eq!(
        malleated.verify_signature(&[vk]).err(),
        Some(AttestationError::BadSignature)
    );
}

#[test]
fn json_and_transport_forms() {
    let (sk, _) = ed(1);
    let a = attest(&sk, 7300, None, Some("bank"));
    let json = a.to_json();
    assert!(
        json.starts_with(
            r#"{"dob_days":7300,"issuer_id":"dmv.ca.gov","timestamp":1704067200,"nonce":""#
        ),
        "{json}"
    );
    assert!(
        json.contains(r#","client_id":"bank","signature":""#),
        "{json}"
    );
    assert!(!json.contains("session_id"));
    let back = Attestation::from_base64url(&a.to_base64url()).expect("round trip");
    assert_eq!(back.to_json(), json);

    let hex_err = |j: String| match Attestation::from_json(j.as_bytes()) {
        Err(Error::Hex { source, .. }) => Some(source),
        Err(Error::Length { .. }) => None,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(
        hex_err(json.replacen("\"nonce\":\"42", "\"nonce\":\"4A", 1)),
        Some(HexError::Uppercase { offset: 1 })
    );
    assert_eq!(
        hex_err(json.replacen("\"nonce\":\"42", "\"nonce\":\"4", 1)),
        Some(HexError::OddLength)
    );
    assert_eq!(
        hex_err(json.replacen("\"nonce\":\"42", "\"nonce\":\"", 1)),
        None
    );
    assert!(matches!(
        Attestation::from_json(json.replacen("{", r#"{"x":1,"#, 1).as_bytes()),
        Err(Error::Json(_))
    ));
    let long_issuer = json.replace("dmv.ca.gov", &"x".repeat(256));
    assert_eq!(
        Attestation::from_json(long_issuer.as_bytes()).err(),
        Some(Error::FieldTooLong { field: "issuer_id" })
    );
}

#[test]
fn debug_hides_dob_and_nonce() {
    let (sk, _) = ed(1);
    let a = attest(&sk, 12345, None, None);
    let shown = format!("{a:?}");
    assert!(
        !shown.contains("12345") && !shown.contains("66, 66"),
        "{shown}"
    );
}
