#![no_main]
//! Strict encodings admit exactly one spelling: anything that decodes must
//! re-encode to the very input.
use libfuzzer_sys::fuzz_target;
use provii_circuits::encoding::{b64url_decode, b64url_encode, hex_decode, hex_encode};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(bytes) = b64url_decode(s, "fuzz") {
        assert_eq!(b64url_encode(&bytes), s);
    }
    if let Ok(bytes) = hex_decode(s, "fuzz") {
        assert_eq!(hex_encode(&bytes), s);
    }
});
