#![no_main]
//! r_bits, kid, schema, origins, PKCE verifiers, key ids and the client
//! canonical string.
use libfuzzer_sys::fuzz_target;
use provii_circuits::client_auth::client_canonical_string;
use provii_circuits::rp::{CodeVerifier, Origin};
use provii_circuits::{Kid, RBits, Schema};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = RBits::from_wire_bytes(data) {
        assert_eq!(&r.to_wire_bytes()[..], data);
    }
    let _ = Kid::from_bytes(data);
    let _ = Schema::from_bytes(data);
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = Origin::parse(s);
    let _ = CodeVerifier::parse(s).map(|v| v.code_challenge());
    if let Ok(c) = client_canonical_string(1, 2, s, &"ab".repeat(32)) {
        // The id cannot break out of its JSON string.
        assert_eq!(c.matches('"').count(), 14);
    }
});
