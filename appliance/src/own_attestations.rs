//! The attestations this process signed, remembered until an issuance
//! presents them, so that the issuance recognises its own signature instead
//! of verifying it: strict Ed25519 verification was 6–7 % of the daemon's
//! CPU under load (BENCHMARKS.md).
//!
//! An entry is an attestation's digest, the signature the HSM returned over
//! it and the public key that made it. A presented attestation passes here
//! only when its digest and signature are byte for byte an entry's and that
//! key still verifies attestations; anything else (another appliance's
//! attestation, one signed before a restart or pushed out of the bounded
//! memory, a key retired since) is verified strictly, so a miss costs what
//! verification always cost. An entry serves once: a second presentation
//! of the same attestation, a replay or a retry after a refusal, is
//! verified strictly too.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use provii_circuits::{Attestation, AttestationVerifyingKey};
use subtle::ConstantTimeEq;

/// About half an hour of signing at ten attestations a second, or some
/// seconds at full load; at most a few MiB.
pub const CAPACITY: usize = 32_768;

struct Signed {
    signature: [u8; 64],
    key: AttestationVerifyingKey,
}

#[derive(Default)]
struct Remembered {
    by_digest: HashMap<[u8; 32], Signed>,
    /// Digests in signing order; entries already used are skipped when
    /// their turn to leave comes.
    order: VecDeque<[u8; 32]>,
}

pub struct OwnAttestations {
    capacity: usize,
    remembered: Mutex<Remembered>,
}

impl Default for OwnAttestations {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl OwnAttestations {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity,
            remembered: Mutex::default(),
        }
    }

    /// Records a signature the HSM just made over `digest` with `key`.
    pub fn remember(&self, digest: [u8; 32], signature: [u8; 64], key: &AttestationVerifyingKey) {
        let mut r = self.lock();
        while r.order.len() >= self.capacity {
            match r.order.pop_front() {
                Some(oldest) => {
                    r.by_digest.remove(&oldest);
                }
                None => break,
            }
        }
        let signed = Signed {
            signature,
            key: *key,
        };
        if r.by_digest.insert(digest, signed).is_none() {
            r.order.push_back(digest);
        }
    }

    /// Whether `attestation` is one this process signed with a key among
    /// `keys`; a match is used up.
    pub fn recognise(&self, attestation: &Attestation, keys: &[AttestationVerifyingKey]) -> bool {
        let digest = attestation.fields().digest();
        let mut r = self.lock();
        let Some(signed) = r.by_digest.get(&digest) else {
            return false;
        };
        // The signature is compared in constant time: a caller who holds
        // the fields of someone else's attestation must not learn its
        // signature byte by byte from response times.
        let matches = bool::from(signed.signature.ct_eq(attestation.signature()))
            && keys.contains(&signed.key);
        if matches {
            r.by_digest.remove(&digest);
        }
        matches
    }

    pub fn len(&self) -> usize {
        self.lock().by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.remembered.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use provii_circuits::{AttestationFields, DobDays};

    /// An attestation signed with `seed`'s key, as the HSM would sign it,
    /// and that key's public half.
    fn signed(seed: u8, dob: i32) -> (Attestation, AttestationVerifyingKey) {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let fields = AttestationFields::new(
            &DobDays::new(dob).expect("dob in range"),
            "dmv.example.gov",
            1_800_000_000,
            rand::random(),
            None,
            None,
        )
        .expect("fields");
        let signature = key.sign(&fields.digest()).to_bytes();
        let public = AttestationVerifyingKey::from_bytes(&key.verifying_key().to_bytes())
            .expect("a valid key");
        (fields.with_signature(signature), public)
    }

    /// `a` with one field of its JSON replaced.
    fn altered(a: &Attestation, field: &str, value: serde_json::Value) -> Attestation {
        let mut json: serde_json::Value = serde_json::from_str(&a.to_json()).expect("json");
        json[field] = value;
        Attestation::from_json(json.to_string().as_bytes()).expect("parses")
    }

    fn remember(own: &OwnAttestations, a: &Attestation, key: &AttestationVerifyingKey) {
        own.remember(a.fields().digest(), *a.signature(), key);
    }

    #[test]
    fn recognises_its_own_attestation_once() {
        let own = OwnAttestations::default();
        let (a, key) = signed(1, 9000);
        assert!(!own.recognise(&a, std::slice::from_ref(&key)));
        remember(&own, &a, &key);
        assert!(own.recognise(&a, std::slice::from_ref(&key)));
        assert!(!own.recognise(&a, &[key]), "an entry serves once");
        assert!(own.is_empty());
    }

    #[test]
    fn another_signature_over_the_same_fields_is_not_recognised() {
        let own = OwnAttestations::default();
        let (a, key) = signed(1, 9000);
        remember(&own, &a, &key);
        let altered = altered(&a, "signature", serde_json::json!("00".repeat(64)));
        assert!(!own.recognise(&altered, std::slice::from_ref(&key)));
        // The genuine one is still remembered.
        assert!(own.recognise(&a, &[key]));
    }

    #[test]
    fn other_fields_under_a_remembered_signature_are_not_recognised() {
        let own = OwnAttestations::default();
        let (a, key) = signed(1, 9000);
        remember(&own, &a, &key);
        let altered = altered(&a, "dob_days", serde_json::json!(3000));
        assert!(!own.recognise(&altered, &[key]));
    }

    #[test]
    fn a_key_no_longer_in_service_is_not_trusted() {
        let own = OwnAttestations::default();
        let (a, retired) = signed(1, 9000);
        let (_, current) = signed(2, 9000);
        remember(&own, &a, &retired);
        assert!(!own.recognise(&a, std::slice::from_ref(&current)));
        assert!(!own.recognise(&a, &[]));
        assert!(own.recognise(&a, &[current, retired]));
    }

    #[test]
    fn the_oldest_entries_leave_first_and_memory_stays_bounded() {
        let own = OwnAttestations::with_capacity(3);
        let signed: Vec<_> = (0..5).map(|i| signed(1, 9000 + i)).collect();
        for (a, key) in &signed {
            remember(&own, a, key);
        }
        assert_eq!(own.len(), 3);
        let key = std::slice::from_ref(&signed[0].1);
        assert!(!own.recognise(&signed[0].0, key));
        assert!(!own.recognise(&signed[1].0, key));
        assert!(own.recognise(&signed[2].0, key));
        // Used entries leave the order lazily; new ones still fit.
        for i in 0..10 {
            let (a, k) = self::signed(1, 100 + i);
            remember(&own, &a, &k);
            assert!(own.len() <= 3);
        }
    }
}
