//! Origin validation (spec §13.2) and PKCE (spec §13.4).

use provii_circuits::rp::{CodeVerifier, Origin};

#[test]
fn origins() {
    for ok in [
        "https://example.com",
        "https://example.com:8443",
        "http://127.0.0.1:3000",
        "https://Example.COM",
    ] {
        assert!(Origin::parse(ok).is_ok(), "{ok}");
    }
    let long = format!("https://{}", "a".repeat(2041));
    for bad in [
        "",
        "example.com",
        "https://",
        "https://example.com/",
        "https://example.com?x",
        "https://example.com#f",
        "https://u@example.com",
        "https://exa mple.com",
        "https://example.com\u{7f}",
        "1https://x",
        &long,
    ] {
        assert!(Origin::parse(bad).is_err(), "{bad:?}");
    }
    // Byte for byte: case is never normalised.
    let a = Origin::parse("https://example.com").expect("ok");
    let b = Origin::parse("https://Example.com").expect("ok");
    assert_ne!(a.hash(), b.hash());
}

#[test]
fn pkce_verifier_bounds() {
    assert!(CodeVerifier::parse(&"a".repeat(42)).is_err());
    assert!(CodeVerifier::parse(&"a".repeat(43)).is_ok());
    assert!(CodeVerifier::parse(&"a".repeat(128)).is_ok());
    assert!(CodeVerifier::parse(&"a".repeat(129)).is_err());
    assert!(CodeVerifier::parse(&format!("{}+", "a".repeat(43))).is_err());
    let v = CodeVerifier::parse(&"a".repeat(43)).expect("ok");
    assert!(v.matches("not base64!").is_err());
}

#[test]
fn issuer_key_hash_is_a_prefixed_blake2s() {
    let key = provii_circuits::SigningKey::from_random_bytes(&[5; 64]).expect("key");
    let vk = key.verifying_key();
    let mut input = b"provii.issuer.vk.v0".to_vec();
    input.extend_from_slice(&vk.to_bytes());
    assert_eq!(
        provii_circuits::params::issuer_key_hash(vk),
        *blake2s_simd::blake2s(&input).as_array()
    );
}
