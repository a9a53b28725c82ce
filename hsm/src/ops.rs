//! The operations the daemon performs per request.

use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::connection::OpError;
use crate::error::{CallError, HsmError, P11ResultExt, Result};
use crate::hsm::Hsm;
use crate::labels::ObjectLabel;

const GCM_IV_LEN: usize = 12;
const GCM_TAG_BITS: u64 = 128;

/// AES-GCM output: a 96-bit IV from the HSM's RNG and ciphertext || tag.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedBlob {
    pub iv: [u8; GCM_IV_LEN],
    pub ciphertext: Vec<u8>,
}

impl core::fmt::Debug for SealedBlob {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SealedBlob({} bytes)", self.ciphertext.len())
    }
}

impl SealedBlob {
    /// `iv || ciphertext || tag`, for storage.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.iv.to_vec();
        out.extend_from_slice(&self.ciphertext);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < GCM_IV_LEN + 16 {
            return Err(HsmError::InvalidInput {
                operation: "SealedBlob",
                detail: "shorter than IV and tag",
            });
        }
        let mut iv = [0u8; GCM_IV_LEN];
        iv.copy_from_slice(&bytes[..GCM_IV_LEN]);
        Ok(Self {
            iv,
            ciphertext: bytes[GCM_IV_LEN..].to_vec(),
        })
    }
}

fn verify_outcome(
    r: core::result::Result<(), P11Error>,
    operation: &'static str,
) -> Result<bool, OpError> {
    match r {
        Ok(()) => Ok(true),
        Err(P11Error::Pkcs11(RvError::SignatureInvalid | RvError::SignatureLenRange, _)) => {
            Ok(false)
        }
        Err(e) => Err(CallError::from_p11(operation, e).into()),
    }
}

impl Hsm {
    /// Fills `out` from the HSM's RNG.
    pub fn random(&self, out: &mut [u8]) -> Result<()> {
        self.call(|s, _| {
            s.generate_random_slice(out).op("C_GenerateRandom")?;
            Ok(())
        })
    }

    /// AES-GCM under the KEK, with `aad` bound to the ciphertext.
    pub fn seal(&self, kek: &ObjectLabel, aad: &[u8], plaintext: &[u8]) -> Result<SealedBlob> {
        self.call(|s, conn| {
            let key = conn.find(s, kek, ObjectClass::SECRET_KEY)?;
            let mut iv = [0u8; GCM_IV_LEN];
            s.generate_random_slice(&mut iv).op("C_GenerateRandom")?;
            let mut iv_param = iv;
            let params = GcmParams::new(&mut iv_param, aad, GCM_TAG_BITS.into()).op("GcmParams")?;
            let ciphertext = s
                .encrypt(&Mechanism::AesGcm(params), key, plaintext)
                .op("C_Encrypt")?;
            Ok(SealedBlob { iv, ciphertext })
        })
    }

    /// Opens a sealed blob. A wrong AAD, another key or any altered byte is
    /// [`HsmError::AuthenticationFailed`].
    pub fn unseal(
        &self,
        kek: &ObjectLabel,
        aad: &[u8],
        blob: &SealedBlob,
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.call(|s, conn| {
            let key = conn.find(s, kek, ObjectClass::SECRET_KEY)?;
            let mut iv = blob.iv;
            let params = GcmParams::new(&mut iv, aad, GCM_TAG_BITS.into()).op("GcmParams")?;
            match s.decrypt(&Mechanism::AesGcm(params), key, &blob.ciphertext) {
                Ok(plain) => Ok(Zeroizing::new(plain)),
                // SoftHSM reports a tag mismatch as CKR_GENERAL_ERROR
                // (DEPENDENCIES.md §4.5); the standard code is ENCRYPTED_DATA_INVALID.
                Err(P11Error::Pkcs11(
                    RvError::GeneralError
                    | RvError::EncryptedDataInvalid
                    | RvError::EncryptedDataLenRange,
                    _,
                )) => Err(HsmError::AuthenticationFailed.into()),
                Err(e) => Err(CallError::from_p11("C_Decrypt", e).into()),
            }
        })
    }

    /// Pure Ed25519 (`CKM_EDDSA`) over the 32-byte attestation digest.
    pub fn ed25519_sign(&self, key: &ObjectLabel, digest: &[u8; 32]) -> Result<[u8; 64]> {
        self.call(|s, conn| {
            let handle = conn.find(s, key, ObjectClass::PRIVATE_KEY)?;
            let mech = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Ed25519));
            let sig = s.sign(&mech, handle, digest).op("C_Sign")?;
            sig.as_slice().try_into().map_err(|_| {
                OpError::Domain(HsmError::Refused {
                    operation: "C_Sign",
                    detail: format!("EdDSA signature is {} bytes, not 64", sig.len()),
                })
            })
        })
    }

    /// The 32-byte Ed25519 public key (`CKA_EC_POINT` is `04 20 || key`).
    pub fn ed25519_public_key(&self, key: &ObjectLabel) -> Result<[u8; 32]> {
        self.call(|s, conn| {
            let handle = conn.find(s, key, ObjectClass::PUBLIC_KEY)?;
            let attrs = s
                .get_attributes(handle, &[AttributeType::EcPoint])
                .op("C_GetAttributeValue")?;
            let point = attrs.iter().find_map(|a| match a {
                Attribute::EcPoint(p) => Some(p.as_slice()),
                _ => None,
            });
            let raw = match point {
                Some([0x04, 0x20, rest @ ..]) if rest.len() == 32 => rest,
                Some(raw) if raw.len() == 32 => raw,
                _ => {
                    return Err(OpError::Domain(HsmError::Refused {
                        operation: "C_GetAttributeValue",
                        detail: "CKA_EC_POINT is not a 32-byte Ed25519 key".into(),
                    }));
                }
            };
            let mut out = [0u8; 32];
            out.copy_from_slice(raw);
            Ok(out)
        })
    }

    /// Checks an officer's YubiKey response inside the HSM (constant time
    /// there). `Ok(false)` for a wrong or truncated response.
    pub fn verify_hmac_sha1(&self, key: &ObjectLabel, message: &[u8], mac: &[u8]) -> Result<bool> {
        self.verify_hmac(key, Mechanism::Sha1Hmac, message, mac)
    }

    /// Checks an Issuing Party's request MAC inside the HSM.
    pub fn verify_hmac_sha256(
        &self,
        key: &ObjectLabel,
        message: &[u8],
        mac: &[u8],
    ) -> Result<bool> {
        self.verify_hmac(key, Mechanism::Sha256Hmac, message, mac)
    }

    fn verify_hmac(
        &self,
        key: &ObjectLabel,
        mech: Mechanism<'static>,
        message: &[u8],
        mac: &[u8],
    ) -> Result<bool> {
        self.call(|s, conn| {
            let handle = conn.find(s, key, ObjectClass::SECRET_KEY)?;
            verify_outcome(s.verify(&mech, handle, message, mac), "C_Verify")
        })
    }

    /// HMAC-SHA256 computed inside the HSM (audit chain, address hashing).
    pub fn hmac_sha256(&self, key: &ObjectLabel, message: &[u8]) -> Result<[u8; 32]> {
        self.call(|s, conn| {
            let handle = conn.find(s, key, ObjectClass::SECRET_KEY)?;
            let mac = s
                .sign(&Mechanism::Sha256Hmac, handle, message)
                .op("C_Sign")?;
            mac.as_slice().try_into().map_err(|_| {
                OpError::Domain(HsmError::Refused {
                    operation: "C_Sign",
                    detail: "HMAC-SHA256 is not 32 bytes".into(),
                })
            })
        })
    }
}
