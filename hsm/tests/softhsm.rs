//! Every provii-hsm operation against a real SoftHSM token. Expected values
//! come from RFC 2202, WIRE.md §3, RustCrypto, ed25519-dalek and aes-gcm,
//! never from the code under test.

mod common;

use std::sync::OnceLock;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use ed25519_dalek::{Signature as EdSignature, VerifyingKey as EdVerifyingKey};
use hmac::{Hmac, KeyInit, Mac};
use provii_circuits::{Commitment, CredMsgV2, Kid, Schema};
use provii_hsm::{Hsm, HsmError, ObjectLabel, SOFTHSM_MODULE, SealedBlob, SecretKind};

struct Fixture {
    hsm: Hsm,
    label: String,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let label = common::unique_label("custody");
        let hsm = common::open(&label);
        hsm.create_kek(&ObjectLabel::kek(1)).expect("create KEK");
        Fixture { hsm, label }
    })
}

fn hsm() -> &'static Hsm {
    &fixture().hsm
}

/// A raw session beside the appliance's, to look at objects the way an
/// attacker with a logged-in session would. The library is already
/// initialised by the `Hsm`; login state is per process.
fn raw_session() -> Session {
    let _ = hsm();
    let ctx = Pkcs11::new(SOFTHSM_MODULE).expect("load SoftHSM");
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_initialized_token()
        .expect("slots")
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .map(|t| t.label().trim() == fixture().label)
                .unwrap_or(false)
        })
        .expect("test token");
    ctx.open_rw_session_no_drop(slot).expect("session")
}

fn find(s: &Session, label: &ObjectLabel, class: ObjectClass) -> ObjectHandle {
    let found = s
        .find_objects(&[
            Attribute::Class(class),
            Attribute::Label(label.as_str().as_bytes().to_vec()),
        ])
        .expect("find");
    assert_eq!(found.len(), 1, "{label}");
    found[0]
}

fn bool_attr(s: &Session, h: ObjectHandle, t: AttributeType) -> Option<bool> {
    s.get_attributes(h, &[t])
        .expect("attrs")
        .into_iter()
        .find_map(|a| match a {
            Attribute::Sensitive(b)
            | Attribute::Extractable(b)
            | Attribute::NeverExtractable(b)
            | Attribute::Local(b) => Some(b),
            _ => None,
        })
}

/// Sensitive, never extractable, its value unreadable, and no way to make
/// it otherwise afterwards.
fn assert_stays_secret(s: &Session, key: ObjectHandle) {
    assert_eq!(bool_attr(s, key, AttributeType::Sensitive), Some(true));
    assert_eq!(bool_attr(s, key, AttributeType::Extractable), Some(false));
    // Reading the value succeeds with the attribute absent.
    let value = s
        .get_attributes(key, &[AttributeType::Value])
        .expect("call succeeds");
    assert!(
        !value
            .iter()
            .any(|a| matches!(a, Attribute::Value(v) if !v.is_empty()))
    );
    assert!(
        s.update_attributes(key, &[Attribute::Extractable(true)])
            .is_err()
    );
    assert!(
        s.update_attributes(key, &[Attribute::Sensitive(false)])
            .is_err()
    );
}

#[test]
fn kek_is_sensitive_and_never_leaves() {
    // Objects created here go through a session of the test's own.
    let _turn = hsm().provisioning();
    let s = raw_session();
    let kek = find(&s, &ObjectLabel::kek(1), ObjectClass::SECRET_KEY);
    assert_stays_secret(&s, kek);
    assert_eq!(
        bool_attr(&s, kek, AttributeType::NeverExtractable),
        Some(true)
    );
    assert_eq!(bool_attr(&s, kek, AttributeType::Local), Some(true));
    // Nor wrapped out under another key.
    let wrapping = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
                Attribute::Token(false),
                Attribute::Wrap(true),
            ],
        )
        .expect("session wrapping key");
    let err = s
        .wrap_key(&Mechanism::AesKeyWrapPad, wrapping, kek)
        .expect_err("must not wrap");
    assert!(
        matches!(
            err,
            cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::KeyUnextractable, _)
        ),
        "{err:?}"
    );
    let _ = s.destroy_object(wrapping);
}

#[test]
fn seal_and_unseal() {
    let kek = ObjectLabel::kek(1);
    let blob = hsm()
        .seal(&kek, b"aad:kid-1", b"thirty-two bytes of secret!!!!!!")
        .expect("seal");
    assert_eq!(blob.ciphertext.len(), 32 + 16);
    let plain = hsm().unseal(&kek, b"aad:kid-1", &blob).expect("unseal");
    assert_eq!(&plain[..], b"thirty-two bytes of secret!!!!!!");
    // Fresh IV from the HSM RNG each time.
    let again = hsm()
        .seal(&kek, b"aad:kid-1", b"thirty-two bytes of secret!!!!!!")
        .expect("seal");
    assert_ne!(again.iv, blob.iv);
    assert_eq!(
        SealedBlob::from_bytes(&blob.to_bytes()).expect("parse"),
        blob
    );
}

#[test]
fn tampered_ciphertext_or_wrong_aad_is_refused() {
    let kek = ObjectLabel::kek(1);
    let blob = hsm().seal(&kek, b"aad", b"secret").expect("seal");
    assert_eq!(
        hsm().unseal(&kek, b"aaD", &blob).err(),
        Some(HsmError::AuthenticationFailed)
    );
    for i in 0..blob.ciphertext.len() {
        let mut bad = blob.clone();
        bad.ciphertext[i] ^= 0x01;
        assert_eq!(
            hsm().unseal(&kek, b"aad", &bad).err(),
            Some(HsmError::AuthenticationFailed),
            "byte {i}"
        );
    }
    let mut bad_iv = blob.clone();
    bad_iv.iv[0] ^= 0x80;
    assert_eq!(
        hsm().unseal(&kek, b"aad", &bad_iv).err(),
        Some(HsmError::AuthenticationFailed)
    );
    // And the HSM stays usable after refusals.
    assert!(hsm().unseal(&kek, b"aad", &blob).is_ok());
}

#[test]
fn gcm_output_matches_an_independent_implementation() {
    let _turn = hsm().provisioning();
    // A known (deliberately non-sensitive, test-only) AES key, so aes-gcm
    // can decrypt what the HSM sealed.
    let label = ObjectLabel::kek(900);
    let key_bytes = [0x5au8; 32];
    raw_session()
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Value(key_bytes.to_vec()),
            // The appliance looks its keys up among token objects only.
            Attribute::Token(true),
            Attribute::Label(label.as_str().as_bytes().to_vec()),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
        ])
        .expect("import test key");
    let blob = hsm()
        .seal(&label, b"the aad", b"the plaintext")
        .expect("seal");
    let cipher = Aes256Gcm::new_from_slice(&key_bytes).expect("key");
    let plain = cipher
        .decrypt(
            &Nonce::try_from(&blob.iv[..]).expect("12-byte IV"),
            Payload {
                msg: &blob.ciphertext,
                aad: b"the aad",
            },
        )
        .expect("aes-gcm opens what the HSM sealed");
    assert_eq!(plain, b"the plaintext");
}

#[test]
fn officer_hmac_sha1_matches_rfc2202_and_software() {
    // RFC 2202 test cases 1 and 3 use 20-byte keys: exactly a YubiKey secret.
    let cases: [(&[u8], &[u8], &str); 2] = [
        (
            &[0x0b; 20],
            b"Hi There",
            "b617318655057264e28bc0b6fb378c8ef146be00",
        ),
        (
            &[0xaa; 20],
            &[0xdd; 50],
            "125d7342b9ac11cd91a39af48aa17b4f63f175d3",
        ),
    ];
    for (i, (key, msg, mac_hex)) in cases.iter().enumerate() {
        let label = ObjectLabel::officer(&format!("rfc2202-{i}"), 1).expect("label");
        hsm()
            .import_secret(&label, SecretKind::OfficerYubiKey, key)
            .expect("import");
        let mac = provii_circuits::encoding::hex_decode(mac_hex, "mac").expect("hex");
        assert!(hsm().verify_hmac_sha1(&label, msg, &mac).expect("verify"));
        let mut wrong = mac.clone();
        wrong[19] ^= 1;
        assert!(!hsm().verify_hmac_sha1(&label, msg, &wrong).expect("verify"));
        assert!(
            !hsm()
                .verify_hmac_sha1(&label, msg, &mac[..19])
                .expect("truncated")
        );
    }
    // A YubiKey-style 32-byte challenge against RustCrypto.
    let secret: Vec<u8> = (100..120).collect();
    let label = ObjectLabel::officer("counter-7/alice", 1).expect("label");
    hsm()
        .import_secret(&label, SecretKind::OfficerYubiKey, &secret)
        .expect("import");
    for c in 0..16u8 {
        let challenge = [c; 32];
        let mut soft = <Hmac<sha1::Sha1>>::new_from_slice(&secret).expect("key");
        soft.update(&challenge);
        let mac = soft.finalize().into_bytes();
        assert!(
            hsm()
                .verify_hmac_sha1(&label, &challenge, &mac)
                .expect("verify")
        );
    }
}

#[test]
fn client_hmac_sha256_matches_the_wire_example() {
    let key: Vec<u8> = (1..=32).collect();
    let label = ObjectLabel::client("client-001", 1).expect("label");
    hsm()
        .import_secret(&label, SecretKind::ClientHmac, &key)
        .expect("import");
    let c = provii_circuits::client_auth::client_canonical_string(
        1700006000,
        7300,
        "client-001",
        &"deadbeef".repeat(8),
    )
    .expect("canonical string");
    let mac = provii_circuits::encoding::hex_decode(
        "f96acc9a1817b2c69379a171abe44b9d09f3260644a7cd987a1ce0356327ff40",
        "mac",
    )
    .expect("hex");
    assert!(
        hsm()
            .verify_hmac_sha256(&label, c.as_bytes(), &mac)
            .expect("verify")
    );
    assert!(
        !hsm()
            .verify_hmac_sha256(&label, b"other", &mac)
            .expect("verify")
    );
    assert_eq!(
        hsm()
            .hmac_sha256(&label, c.as_bytes())
            .expect("sign")
            .to_vec(),
        mac
    );
}

#[test]
fn secrets_of_the_wrong_length_are_refused() {
    let label = ObjectLabel::officer("short", 1).expect("label");
    assert!(matches!(
        hsm().import_secret(&label, SecretKind::OfficerYubiKey, &[1; 16]),
        Err(HsmError::InvalidInput { .. })
    ));
    assert!(!hsm().exists(&label).expect("lookup"));
}

#[test]
fn mac_keys_are_generated_inside_and_deterministic() {
    let label = ObjectLabel::audit_mac(1);
    hsm().create_mac_key(&label).expect("create");
    let a = hsm().hmac_sha256(&label, b"record").expect("mac");
    assert_eq!(a, hsm().hmac_sha256(&label, b"record").expect("mac"));
    assert_ne!(a, hsm().hmac_sha256(&label, b"record2").expect("mac"));
    assert_eq!(
        hsm().create_mac_key(&label).err(),
        Some(HsmError::ObjectExists {
            label: label.to_string()
        })
    );
}

#[test]
fn ed25519_signatures_pass_verify_strict() {
    let label = ObjectLabel::attestation("2026-11").expect("label");
    let public = hsm().create_ed25519_key(&label).expect("keygen");
    assert_eq!(hsm().ed25519_public_key(&label).expect("public"), public);
    let vk = EdVerifyingKey::from_bytes(&public).expect("valid key");
    for i in 0..8u8 {
        let digest = [i; 32];
        let sig = hsm().ed25519_sign(&label, &digest).expect("sign");
        vk.verify_strict(&digest, &EdSignature::from_bytes(&sig))
            .expect("verify_strict");
    }
    let s = raw_session();
    let private = find(&s, &label, ObjectClass::PRIVATE_KEY);
    assert_eq!(
        bool_attr(&s, private, AttributeType::Extractable),
        Some(false)
    );
    assert_eq!(bool_attr(&s, private, AttributeType::Sensitive), Some(true));
}

#[test]
fn redjubjub_keys_are_sealed_and_sign_verifiably() {
    let kek = ObjectLabel::kek(1);
    let kid = Kid::new("provii:2026-11").expect("kid");
    let sealed = hsm().generate_signing_key(&kek, &kid).expect("generate");
    let g: jubjub::SubgroupPoint = Option::from(group::GroupEncoding::from_bytes(
        &provii_circuits::constants::SPENDING_KEY_GENERATOR_BYTES,
    ))
    .expect("G");
    let c = Commitment::from_bytes(&group::GroupEncoding::to_bytes(
        &(g * jubjub::Fr::from(77u64)),
    ))
    .expect("point");
    let msg =
        CredMsgV2::new(kid.clone(), c, 1_700_000_000, 1_800_000_000, Schema::age()).expect("msg");
    let sig = hsm().sign_credential(&kek, &sealed, &msg).expect("sign");
    sealed
        .verifying_key
        .verify(&msg.msg_hash(), &sig)
        .expect("verifies under the recorded key");

    // The sealed blob is bound to its kid and key.
    let mut other_kid = sealed.clone();
    other_kid.kid = Kid::new("provii:2026-12").expect("kid");
    assert_eq!(
        hsm().sign_credential(&kek, &other_kid, &msg).err(),
        Some(HsmError::AuthenticationFailed)
    );
    let mut tampered = sealed.clone();
    tampered.blob.ciphertext[0] ^= 1;
    assert_eq!(
        hsm().sign_credential(&kek, &tampered, &msg).err(),
        Some(HsmError::AuthenticationFailed)
    );
}

#[test]
fn inventory_shows_security_attributes() {
    let label = ObjectLabel::address_hash(1);
    hsm().create_mac_key(&label).expect("create");
    let inv = hsm().inventory().expect("inventory");
    let kek = inv
        .iter()
        .find(|o| o.label == "provii/kek/1")
        .expect("KEK listed");
    assert_eq!(kek.class, "CKO_SECRET_KEY");
    assert_eq!(kek.key_type.as_deref(), Some("CKK_AES"));
    assert_eq!(
        (
            kek.sensitive,
            kek.extractable,
            kek.never_extractable,
            kek.local
        ),
        (Some(true), Some(false), Some(true), Some(true))
    );
    assert_eq!(
        kek.id,
        provii_circuits::encoding::hex_encode(&ObjectLabel::kek(1).id())
    );
    let mac = inv
        .iter()
        .find(|o| o.label == label.as_str())
        .expect("MAC key listed");
    assert_eq!(mac.key_type.as_deref(), Some("CKK_GENERIC_SECRET"));
    assert_eq!(mac.extractable, Some(false));
}

#[test]
fn destroyed_objects_are_gone() {
    let label = ObjectLabel::client("leaving", 1).expect("label");
    hsm()
        .import_secret(&label, SecretKind::ClientHmac, &[7; 32])
        .expect("import");
    assert!(hsm().verify_hmac_sha256(&label, b"m", &[0; 32]).is_ok());
    assert_eq!(hsm().destroy(&label).expect("destroy"), 1);
    assert_eq!(
        hsm().verify_hmac_sha256(&label, b"m", &[0; 32]).err(),
        Some(HsmError::ObjectNotFound {
            label: label.to_string()
        })
    );
    assert!(hsm().destroy(&label).is_err());
}

#[test]
fn missing_objects_say_what_to_do() {
    let err = hsm()
        .ed25519_sign(&ObjectLabel::attestation("nope").expect("label"), &[0; 32])
        .expect_err("missing");
    assert!(
        err.to_string().contains("provii/attest/nope") && err.to_string().contains("provision"),
        "{err}"
    );
}

#[test]
fn random_bytes_differ() {
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    hsm().random(&mut a).expect("rng");
    hsm().random(&mut b).expect("rng");
    assert_ne!(a, b);
    assert_ne!(a, [0u8; 32]);
}

#[test]
fn calls_run_off_the_async_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let hsm = hsm().clone();
    let (bytes, thread) = rt
        .block_on(hsm.run(|h| {
            let mut b = [0u8; 16];
            h.random(&mut b).map(|_| (b, std::thread::current().id()))
        }))
        .expect("random via a blocking worker");
    assert_ne!(bytes, [0u8; 16]);
    assert_ne!(
        thread,
        std::thread::current().id(),
        "ran on a blocking thread, not the runtime's"
    );
}

#[test]
fn concurrent_callers_each_get_a_session() {
    let label = ObjectLabel::attestation("concurrent").expect("label");
    let public = hsm().create_ed25519_key(&label).expect("keygen");
    let vk = EdVerifyingKey::from_bytes(&public).expect("key");
    std::thread::scope(|scope| {
        for t in 0..4u8 {
            let label = label.clone();
            scope.spawn(move || {
                for i in 0..50u8 {
                    let digest = [t ^ i; 32];
                    let sig = hsm().ed25519_sign(&label, &digest).expect("sign");
                    vk.verify_strict(&digest, &EdSignature::from_bytes(&sig))
                        .expect("verify");
                }
            });
        }
    });
}

#[test]
fn status_is_usable() {
    let st = hsm().probe();
    assert_eq!(st.state, provii_hsm::HsmState::Usable);
    assert_eq!(st.token, fixture().label);
    assert!(st.last_error.is_none());
}

#[test]
fn hot_keys_work_through_session_copies_that_stay_secret() {
    let label = ObjectLabel::client("busy", 1).expect("label");
    hsm()
        .import_secret(&label, SecretKind::ClientHmac, &[9; 32])
        .expect("import");
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&[9; 32]).expect("key");
    mac.update(b"canonical");
    let expected = mac.finalize().into_bytes();
    assert_eq!(
        hsm().verify_hmac_sha256(&label, b"canonical", &expected),
        Ok(true)
    );
    assert_eq!(
        hsm().keep_session_copies(std::slice::from_ref(&label)),
        Ok(1)
    );
    assert_eq!(
        hsm().keep_session_copies(std::slice::from_ref(&label)),
        Ok(0),
        "one copy per connection"
    );
    // The copy answers as the original did.
    assert_eq!(
        hsm().verify_hmac_sha256(&label, b"canonical", &expected),
        Ok(true)
    );
    assert_eq!(
        hsm().verify_hmac_sha256(&label, b"canonica1", &expected),
        Ok(false)
    );
    // Seen from another session: a session object, sensitive, never
    // extractable, its value unreadable and impossible to make readable.
    {
        let _turn = hsm().provisioning();
        let s = raw_session();
        let copies = s
            .find_objects(&[
                Attribute::Label(label.as_str().as_bytes().to_vec()),
                Attribute::Token(false),
            ])
            .expect("find");
        assert_eq!(copies.len(), 1);
        assert_stays_secret(&s, copies[0]);
    }
    // Destroying the key takes its copy with it.
    assert_eq!(hsm().destroy(&label), Ok(2));
    assert_eq!(
        hsm().verify_hmac_sha256(&label, b"canonical", &expected),
        Err(HsmError::ObjectNotFound {
            label: label.to_string()
        })
    );
}

#[test]
fn keys_that_may_not_be_copied_are_used_as_they_are() {
    let label = ObjectLabel::client("legacy", 1).expect("label");
    {
        // A key as older appliances made them: neither copyable nor modifiable.
        let _turn = hsm().provisioning();
        let s = raw_session();
        s.create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Modifiable(false),
            Attribute::Copyable(false),
            Attribute::Sign(true),
            Attribute::Verify(true),
            Attribute::Label(label.as_str().as_bytes().to_vec()),
            Attribute::Value(vec![5; 32]),
        ])
        .expect("create");
    }
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&[5; 32]).expect("key");
    mac.update(b"m");
    let expected = mac.finalize().into_bytes();
    assert_eq!(
        hsm().keep_session_copies(std::slice::from_ref(&label)),
        Ok(0)
    );
    assert_eq!(hsm().verify_hmac_sha256(&label, b"m", &expected), Ok(true));
    assert_eq!(hsm().destroy(&label), Ok(1));
}
