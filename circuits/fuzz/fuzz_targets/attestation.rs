#![no_main]
//! Attestation JSON and its base64url transport form.
use libfuzzer_sys::fuzz_target;
use provii_circuits::Attestation;

fuzz_target!(|data: &[u8]| {
    if let Ok(att) = Attestation::from_json(data) {
        let _ = att.fields().digest();
        let json = att.to_json();
        let again = Attestation::from_json(json.as_bytes()).expect("re-parses");
        assert_eq!(again.to_json(), json);
        let _ = att.verify("issuer", &[], 0);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(att) = Attestation::from_base64url(s) {
            assert_eq!(Attestation::from_base64url(&att.to_base64url()).expect("round trip").to_json(), att.to_json());
        }
    }
});
