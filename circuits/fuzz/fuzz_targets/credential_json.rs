#![no_main]
//! Credential JSON: parsing never panics, and whatever parses as a signed
//! credential re-serialises to JSON that parses to the same credential.
use libfuzzer_sys::fuzz_target;
use provii_circuits::{ParsedCredential, SignedCredential};

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = ParsedCredential::from_json(data) {
        let _ = parsed.msg.prehash();
        if let Ok(signed) = parsed.into_signed() {
            let _ = signed.verify();
            let again = SignedCredential::from_json(signed.to_json().as_bytes()).expect("re-parses");
            assert_eq!(again, signed);
        }
    }
});
