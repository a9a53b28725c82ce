//! Creating the appliance's key objects, with exact attributes. These run at
//! provisioning and enrolment, never per request (token objects are slow to
//! create: tens of milliseconds on disk).

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass};

use crate::connection::OpError;
use crate::error::{HsmError, P11ResultExt, Result};
use crate::hsm::Hsm;
use crate::labels::ObjectLabel;

/// DER OID of Ed25519 (1.3.101.112) for `CKA_EC_PARAMS`.
const ED25519_OID: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];

/// What an imported HMAC secret is for; fixes its length and mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// A YubiKey OTP slot secret: 20 bytes, HMAC-SHA1.
    OfficerYubiKey,
    /// An Issuing Party's secret: 32 bytes, HMAC-SHA256.
    ClientHmac,
}

impl SecretKind {
    pub fn secret_len(self) -> usize {
        match self {
            SecretKind::OfficerYubiKey => 20,
            SecretKind::ClientHmac => 32,
        }
    }
}

fn common(label: &ObjectLabel) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Label(label.as_str().as_bytes().to_vec()),
        Attribute::Id(label.id()),
    ]
}

fn secret_key_attrs(label: &ObjectLabel) -> Vec<Attribute> {
    let mut attrs = common(label);
    attrs.extend([
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        // Copyable and modifiable so the daemon can keep session copies of
        // its hot keys (SoftHSM refuses to copy an unmodifiable object into
        // the session). A copy, like the original, stays sensitive and never
        // extractable: PKCS#11 forbids relaxing either attribute.
        Attribute::Modifiable(true),
        Attribute::Copyable(true),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
    ]);
    attrs
}

/// What a secret key may do; every other use is switched off.
#[derive(Clone, Copy)]
enum Usage {
    EncryptDecrypt,
    SignVerify,
}

fn secret_template(label: &ObjectLabel, key_type: KeyType, usage: Usage) -> Vec<Attribute> {
    let (crypt, mac) = match usage {
        Usage::EncryptDecrypt => (true, false),
        Usage::SignVerify => (false, true),
    };
    let mut attrs = secret_key_attrs(label);
    attrs.extend([
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(key_type),
        Attribute::Encrypt(crypt),
        Attribute::Decrypt(crypt),
        Attribute::Sign(mac),
        Attribute::Verify(mac),
    ]);
    attrs
}

impl Hsm {
    /// Generates a 32-byte secret key inside the HSM.
    fn generate_secret(
        &self,
        label: &ObjectLabel,
        mechanism: Mechanism<'_>,
        key_type: KeyType,
        usage: Usage,
    ) -> Result<()> {
        let _turn = self.provisioning();
        self.ensure_absent(label)?;
        let mut attrs = secret_template(label, key_type, usage);
        attrs.push(Attribute::ValueLen(32.into()));
        self.call(|s, _| {
            s.generate_key(&mechanism, &attrs).op("C_GenerateKey")?;
            Ok(())
        })
    }

    fn ensure_absent(&self, label: &ObjectLabel) -> Result<()> {
        if self.exists(label)? {
            return Err(HsmError::ObjectExists {
                label: label.to_string(),
            });
        }
        Ok(())
    }

    /// Whether any object carries this label.
    pub fn exists(&self, label: &ObjectLabel) -> Result<bool> {
        self.call(|s, _| {
            let found = s
                .find_objects(&[Attribute::Label(label.as_str().as_bytes().to_vec())])
                .op("C_FindObjects")?;
            Ok(!found.is_empty())
        })
    }

    /// The key-encryption key: AES-256 generated inside the HSM, sensitive,
    /// never extractable, encrypt/decrypt only.
    pub fn create_kek(&self, label: &ObjectLabel) -> Result<()> {
        self.generate_secret(
            label,
            Mechanism::AesKeyGen,
            KeyType::AES,
            Usage::EncryptDecrypt,
        )
    }

    /// An Ed25519 key pair generated inside the HSM; returns the public key.
    pub fn create_ed25519_key(&self, label: &ObjectLabel) -> Result<[u8; 32]> {
        let _turn = self.provisioning();
        self.ensure_absent(label)?;
        let mut public = common(label);
        public.extend([
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::EcParams(ED25519_OID.to_vec()),
        ]);
        // SoftHSM refuses the secret-key template on EC private keys
        // (CKR_ATTRIBUTE_TYPE_INVALID), so this one stays minimal.
        let mut private = common(label);
        private.extend([
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
        ]);
        self.call(|s, _| {
            s.generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public, &private)
                .op("C_GenerateKeyPair")?;
            Ok(())
        })?;
        self.ed25519_public_key(label)
    }

    /// Imports an officer's or client's HMAC secret as a sensitive,
    /// non-extractable object that can only sign and verify.
    pub fn import_secret(
        &self,
        label: &ObjectLabel,
        kind: SecretKind,
        secret: &[u8],
    ) -> Result<()> {
        let _turn = self.provisioning();
        if secret.len() != kind.secret_len() {
            return Err(HsmError::InvalidInput {
                operation: "import_secret",
                detail: "secret has the wrong length for its kind (20 bytes YubiKey, 32 bytes client)",
            });
        }
        self.ensure_absent(label)?;
        let mut attrs = secret_template(label, KeyType::GENERIC_SECRET, Usage::SignVerify);
        attrs.push(Attribute::Value(secret.to_vec()));
        let result = self.call(|s, _| {
            s.create_object(&attrs).op("C_CreateObject")?;
            Ok(())
        });
        wipe_values(&mut attrs);
        result
    }

    /// A 32-byte HMAC-SHA256 key generated inside the HSM (audit chain,
    /// address hashing).
    pub fn create_mac_key(&self, label: &ObjectLabel) -> Result<()> {
        self.generate_secret(
            label,
            Mechanism::GenericSecretKeyGen,
            KeyType::GENERIC_SECRET,
            Usage::SignVerify,
        )
    }

    /// Keeps session copies of these keys for the connection's lifetime
    /// (the secret key, or an Ed25519 pair's private half); returns how many
    /// were copied now. Keys already copied are skipped and keys that may
    /// not be copied are used as they are. When every key is settled it
    /// returns without taking the HSM exclusively, so calling it every
    /// minute (new clients, reconnects) costs nothing in between.
    pub fn keep_session_copies(&self, labels: &[ObjectLabel]) -> Result<usize> {
        if let Some(conn) = self.current()
            && labels.iter().all(|l| conn.is_settled(l))
        {
            return Ok(0);
        }
        let _turn = self.provisioning();
        self.call(|s, conn| {
            let mut copied = 0;
            for label in labels {
                match conn.keep_session_copy(s, label) {
                    Ok(true) => copied += 1,
                    Ok(false) | Err(OpError::Domain(HsmError::ObjectNotFound { .. })) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(copied)
        })
    }

    /// Destroys every object with this label (both halves of a key pair).
    pub fn destroy(&self, label: &ObjectLabel) -> Result<usize> {
        let _turn = self.provisioning();
        self.call(|s, conn| {
            let found = s
                .find_objects(&[Attribute::Label(label.as_str().as_bytes().to_vec())])
                .op("C_FindObjects")?;
            if found.is_empty() {
                return Err(OpError::Domain(HsmError::ObjectNotFound {
                    label: label.to_string(),
                }));
            }
            conn.forget(label);
            for h in &found {
                s.destroy_object(*h).op("C_DestroyObject")?;
            }
            Ok(found.len())
        })
    }
}

/// Overwrites secret attribute values in place before the template drops.
fn wipe_values(attrs: &mut [Attribute]) {
    use zeroize::Zeroize;
    for a in attrs {
        if let Attribute::Value(v) = a {
            v.zeroize();
        }
    }
}
