//! A credential holder for the circuit tests and benchmarks: a fresh issuer
//! key, a date of birth, randomness, and the credential the key signed.

#![allow(dead_code)] // each test binary uses its own part

use provii_circuits::circuit::{AgePublicInputs, AgeWitness};
use provii_circuits::{
    CredMsgV2, Direction, DobDays, Kid, RBits, Schema, SignedCredential, SigningKey, commit,
    nullifier,
};
use rand_chacha::ChaCha20Rng;
use rand_core::Rng;

pub struct Holder {
    pub dob: DobDays,
    pub r_bits: RBits,
    pub credential: SignedCredential,
}

impl Holder {
    /// Everything drawn from `rng`, so a seed gives the same holder.
    pub fn new(rng: &mut ChaCha20Rng, dob_days: i32) -> Self {
        let mut wide = [0u8; 64];
        rng.fill_bytes(&mut wide);
        let key = SigningKey::from_random_bytes(&wide).expect("key");
        let mut r = [0u8; 16];
        rng.fill_bytes(&mut r);
        let r_bits = RBits::from_wire_bytes(&r).expect("r_bits");
        let dob = DobDays::new(dob_days).expect("dob");
        let msg = CredMsgV2::new(
            Kid::new("provii:2026-11").expect("kid"),
            commit(&dob, &r_bits).expect("commitment"),
            1_763_000_000,
            1_763_000_000 + 86_400 * 365,
            Schema::new("provii.age/0").expect("schema"),
        )
        .expect("message");
        Self {
            dob,
            r_bits,
            credential: msg.sign(&key),
        }
    }

    /// The statement this holder would prove for a relying party.
    pub fn statement(&self, direction: Direction, cutoff_days: i32) -> AgePublicInputs {
        AgePublicInputs {
            direction,
            cutoff_days,
            rp_hash: [0x5a; 32],
            issuer_vk: self.credential.issuer_vk.to_bytes(),
            nullifier: nullifier(self.credential.msg.commitment()).to_bytes(),
        }
    }

    pub fn witness(&self) -> AgeWitness {
        AgeWitness::from_credential(&self.dob, &self.r_bits, &self.credential).expect("witness")
    }
}
