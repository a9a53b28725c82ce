#![no_main]
//! Point decoding and ProviiRJ verification on arbitrary bytes: no panics,
//! decoded points re-encode to the input, and random signatures fail.
use libfuzzer_sys::fuzz_target;
use provii_circuits::{Commitment, Signature, VerifyingKey};

fuzz_target!(|data: &[u8]| {
    if data.len() < 32 + 64 + 32 {
        return;
    }
    let mut vk = [0u8; 32];
    vk.copy_from_slice(&data[..32]);
    let mut sig = [0u8; 64];
    sig.copy_from_slice(&data[32..96]);
    let mut msg = [0u8; 32];
    msg.copy_from_slice(&data[96..128]);
    if let Ok(c) = Commitment::from_bytes(&vk) {
        assert_eq!(c.to_bytes(), vk);
    }
    let sig = Signature::from_bytes(sig);
    let _ = sig.check_encoding();
    if let Ok(key) = VerifyingKey::from_bytes(&vk) {
        assert_eq!(key.to_bytes(), vk);
        // A forgery from random bytes would be a break of the scheme.
        assert!(key.verify(&msg, &sig).is_err());
    }
});
