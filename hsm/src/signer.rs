//! RedJubjub credential signing with a secret that exists only sealed under
//! the HSM's KEK. PKCS#11 has no Jubjub mechanism, so the scalar is opened
//! into locked memory for one signature and wiped (DESIGN.md §3): that
//! moment, inside this process, is the trust boundary.

use provii_circuits::{CredMsgV2, Kid, Signature, SigningKey, VerifyingKey};
use zeroize::Zeroize;

use crate::error::{HsmError, Result};
use crate::hsm::Hsm;
use crate::labels::ObjectLabel;
use crate::locked::LockedBytes;
use crate::ops::SealedBlob;

const AAD_PREFIX: &[u8] = b"provii.redjubjub.sk.v1|";

/// AAD binding a sealed secret to its kid and verifying key: a blob moved
/// to another key's record fails authentication.
pub fn sealed_key_aad(kid: &Kid, vk: &VerifyingKey) -> Vec<u8> {
    let mut aad = AAD_PREFIX.to_vec();
    aad.extend_from_slice(kid.as_bytes());
    aad.push(b'|');
    aad.extend_from_slice(&vk.to_bytes());
    aad
}

/// A credential signing key as the database stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSigningKey {
    pub kid: Kid,
    pub verifying_key: VerifyingKey,
    pub blob: SealedBlob,
}

impl Hsm {
    /// Draws a new ProviiRJ key from the HSM's RNG and seals it under `kek`.
    pub fn generate_signing_key(&self, kek: &ObjectLabel, kid: &Kid) -> Result<SealedSigningKey> {
        let mut random = LockedBytes::<64>::new()?;
        self.random(random.bytes_mut())?;
        let key = SigningKey::from_random_bytes(random.bytes())?;
        drop(random);
        let verifying_key = *key.verifying_key();
        let blob = self.seal(
            kek,
            &sealed_key_aad(kid, &verifying_key),
            &key.to_bytes()[..],
        )?;
        Ok(SealedSigningKey {
            kid: kid.clone(),
            verifying_key,
            blob,
        })
    }

    /// Opens the key into locked memory, signs the credential, wipes.
    pub fn sign_credential(
        &self,
        kek: &ObjectLabel,
        key: &SealedSigningKey,
        msg: &CredMsgV2,
    ) -> Result<Signature> {
        let mut opened = self.unseal(
            kek,
            &sealed_key_aad(&key.kid, &key.verifying_key),
            &key.blob,
        )?;
        let mut secret = LockedBytes::<32>::new()?;
        let copied = opened.len() == 32;
        if copied {
            secret.bytes_mut().copy_from_slice(&opened);
        }
        opened.zeroize();
        if !copied {
            return Err(HsmError::InvalidInput {
                operation: "sign_credential",
                detail: "sealed secret is not 32 bytes",
            });
        }
        // The AAD bound the blob to this verifying key, so it need not be
        // re-derived; the issuer's self-check catches any mismatch.
        let signing_key =
            SigningKey::from_bytes_with_verifying_key(secret.bytes(), key.verifying_key)?;
        drop(secret);
        Ok(signing_key.sign(&msg.msg_hash()))
    }
}
