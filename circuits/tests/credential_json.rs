//! The SignedCredential JSON of spec §15.2: exact key order, strict parsing.

use group::GroupEncoding;
use proptest::prelude::*;
use provii_circuits::encoding::b64url_encode;
use provii_circuits::error::Error;
use provii_circuits::{Commitment, CredMsgV2, Kid, Schema, SignedCredential, SigningKey};

fn commitment(seed: u64) -> Commitment {
    let g: jubjub::SubgroupPoint = Option::from(jubjub::SubgroupPoint::from_bytes(
        &provii_circuits::constants::SPENDING_KEY_GENERATOR_BYTES,
    ))
    .expect("G");
    Commitment::from_bytes(&(g * jubjub::Fr::from(seed.max(1))).to_bytes()).expect("subgroup point")
}

fn signed(seed: u64, iat: u64, validity: u64) -> SignedCredential {
    let key = SigningKey::from_random_bytes(&[seed as u8 | 1; 64]).expect("key");
    CredMsgV2::new(
        Kid::new("provii:2026-05").expect("kid"),
        commitment(seed),
        iat,
        iat + validity,
        Schema::age(),
    )
    .expect("valid")
    .sign(&key)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn json_round_trips(seed in 1u64.., iat in 0u64..4_000_000_000, validity in 1u64..=3_153_600_000) {
        let cred = signed(seed, iat, validity);
        let json = cred.to_json();
        let back = SignedCredential::from_json(json.as_bytes()).expect("parses");
        prop_assert_eq!(&back, &cred);
        prop_assert!(back.verify().is_ok());
        prop_assert_eq!(back.to_json(), json);
    }
}

#[test]
fn keys_come_in_spec_order() {
    let json = signed(3, 1_700_000_000, 10).to_json();
    let order = [
        "\"v\":2",
        "\"kid\":",
        "\"issuer_vk\":",
        "\"sig_rj\":",
        "\"c_bytes\":",
        "\"iat\":",
        "\"exp\":",
        "\"schema\":",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|k| json.find(k).expect("key present"))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{json}");
    assert!(json.ends_with(r#""schema":"provii.age/0"}"#), "{json}");
}

fn reparse(
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) -> Result<SignedCredential, Error> {
    let mut v: serde_json::Value =
        serde_json::from_str(&signed(3, 1_700_000_000, 10).to_json()).expect("json");
    edit(v.as_object_mut().expect("object"));
    SignedCredential::from_json(v.to_string().as_bytes())
}

#[test]
fn strict_parsing_refuses_each_defect() {
    use serde_json::json;
    assert!(
        matches!(reparse(|m| { m.insert("extra".into(), json!(1)); }), Err(Error::Json(e)) if e.contains("unknown field"))
    );
    assert_eq!(
        reparse(|m| {
            m.insert("v".into(), json!(3));
        })
        .err(),
        Some(Error::CredentialVersion(3))
    );
    assert_eq!(
        reparse(|m| {
            m.insert("kid".into(), json!("provii:2026-5"));
        })
        .err(),
        Some(Error::KidLength(13))
    );
    assert_eq!(
        reparse(|m| {
            m.insert("schema".into(), json!("provii.age/00"));
        })
        .err(),
        Some(Error::SchemaLength(13))
    );
    assert!(matches!(
        reparse(|m| {
            m.remove("sig_rj");
        }),
        Err(Error::Unsigned("sig_rj"))
    ));
    assert!(matches!(
        reparse(|m| {
            m.remove("c_bytes");
        }),
        Err(Error::Json(_))
    ));
    assert!(matches!(
        reparse(|m| {
            m.insert("exp".into(), json!(1_700_000_000u64));
        }),
        Err(Error::Validity(_))
    ));
    assert!(matches!(
        reparse(|m| {
            m.insert("exp".into(), json!(1_700_000_000u64 + 3_153_600_001));
        }),
        Err(Error::Validity(_))
    ));
    assert!(matches!(
        reparse(|m| {
            m.insert("iat".into(), json!(-1));
        }),
        Err(Error::Json(_))
    ));
    assert!(matches!(
        reparse(|m| {
            m.insert("iat".into(), json!(1.5));
        }),
        Err(Error::Json(_))
    ));
    // A commitment that is not a subgroup point (the identity here).
    let identity = b64url_encode(&jubjub::ExtendedPoint::identity().to_bytes());
    assert!(matches!(
        reparse(|m| {
            m.insert("c_bytes".into(), json!(identity));
        }),
        Err(Error::Point {
            field: "c_bytes",
            ..
        })
    ));
    // Padded base64url.
    assert!(matches!(
        reparse(|m| {
            let s = m["issuer_vk"].as_str().expect("str").to_owned() + "=";
            m.insert("issuer_vk".into(), json!(s));
        }),
        Err(Error::Base64 {
            field: "issuer_vk",
            ..
        })
    ));
    // Signature of the wrong length.
    assert!(matches!(
        reparse(|m| {
            m.insert("sig_rj".into(), json!(b64url_encode(&[1u8; 63])));
        }),
        Err(Error::Length {
            field: "sig_rj",
            expected: 64,
            actual: 63
        })
    ));
}

#[test]
fn duplicate_keys_and_trailing_garbage_are_refused() {
    let json = signed(3, 1_700_000_000, 10).to_json();
    let dup = json.replacen("{", r#"{"v":2,"#, 1);
    assert!(SignedCredential::from_json(dup.as_bytes()).is_err());
    let trailing = format!("{json}x");
    assert!(SignedCredential::from_json(trailing.as_bytes()).is_err());
}
