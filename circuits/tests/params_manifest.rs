//! Spec §13.8's four proving-key checks against real (tiny) Groth16
//! parameters, each made to fail in turn.

use bellman::{Circuit, ConstraintSystem, SynthesisError};
use bls12_381::{Bls12, Scalar};
use provii_circuits::encoding::hex_encode;
use provii_circuits::params::{ManifestError, ParamsManifest, vk_fingerprint, vk_id};

/// x * x = y with y public: enough to exercise parameter files.
struct Square(Option<Scalar>);

impl Circuit<Scalar> for Square {
    fn synthesize<CS: ConstraintSystem<Scalar>>(self, cs: &mut CS) -> Result<(), SynthesisError> {
        let x = cs.alloc(|| "x", || self.0.ok_or(SynthesisError::AssignmentMissing))?;
        let y = cs.alloc_input(
            || "y",
            || {
                self.0
                    .map(|x| x * x)
                    .ok_or(SynthesisError::AssignmentMissing)
            },
        )?;
        cs.enforce(|| "x*x=y", |lc| lc + x, |lc| lc + x, |lc| lc + y);
        Ok(())
    }
}

fn params_bytes() -> (Vec<u8>, Vec<u8>) {
    let params = groth16::generate_random_parameters::<Bls12, _, _>(Square(None), &mut rand::rng())
        .expect("setup");
    let mut pk = Vec::new();
    params.write(&mut pk).expect("write pk");
    let mut vk = Vec::new();
    params.vk.write(&mut vk).expect("write vk");
    (pk, vk)
}

#[test]
fn each_check_can_fail() {
    let (pk, vk) = params_bytes();
    let manifest = ParamsManifest::describe(&pk, &vk, 1);
    assert_eq!(manifest.vk_id, vk_id(&vk));
    assert!(manifest.check_proving_key(&pk).is_ok());

    assert!(matches!(
        manifest.check_proving_key(&pk[..pk.len() - 1]),
        Err(ManifestError::Size { .. })
    ));

    let mut flipped = pk.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 1;
    assert_eq!(
        manifest.check_proving_key(&flipped).err(),
        Some(ManifestError::ContentHash)
    );

    // Another setup's key, with a manifest claiming this setup's VK.
    let (other_pk, _) = params_bytes();
    let mut lying = ParamsManifest::describe(&other_pk, &vk, 1);
    lying.vk_fingerprint_blake2s = hex_encode(&vk_fingerprint(&vk));
    assert_eq!(
        lying.check_proving_key(&other_pk).err(),
        Some(ManifestError::VkFingerprint)
    );

    let mut other_circuit = manifest.clone();
    other_circuit.circuit_constants_hash = "00".repeat(32);
    assert_eq!(
        other_circuit.check_proving_key(&pk).err(),
        Some(ManifestError::CircuitConstants)
    );

    let mut malformed = manifest.clone();
    malformed.pk_blake2s_hash = "XYZ".into();
    assert!(matches!(
        malformed.check_proving_key(&pk),
        Err(ManifestError::Malformed {
            field: "pk_blake2s_hash",
            ..
        })
    ));
}

#[test]
fn manifest_json_has_the_spec_fields() {
    let (pk, vk) = params_bytes();
    let json = serde_json::to_value(ParamsManifest::describe(&pk, &vk, 1)).expect("json");
    for key in [
        "vk_id",
        "vk_fingerprint_blake2s",
        "vk_blake2b512_hash",
        "vk_size",
        "pk_size",
        "pk_blake2s_hash",
        "circuit_constants_hash",
        "constraints",
        "public_inputs",
        "ic_len",
        "kid_bytes",
        "schema_bytes",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
    assert_eq!(
        json["circuit_constants_hash"],
        "9dbbab7e903507b182d1d33f47c72b004e0ffb1bee2cd5ac55e7cbe060338f22"
    );
}
