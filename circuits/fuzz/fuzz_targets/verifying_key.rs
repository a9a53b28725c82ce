#![no_main]
//! The Groth16 verifying-key reader behind `vk-id` and manifest checks.
use libfuzzer_sys::fuzz_target;
use provii_circuits::params::{parse_age_verifying_key, vk_id};

fuzz_target!(|data: &[u8]| {
    if parse_age_verifying_key(data).is_ok() {
        let _ = vk_id(data);
    }
});
