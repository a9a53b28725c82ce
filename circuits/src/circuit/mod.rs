//! The v0.1 age circuit (spec §12): one Groth16 R1CS over BLS12-381 that
//! proves the prover holds a credential signed by the public issuer key,
//! opens its commitment, and was born on the right side of a public cutoff.
//!
//! Gadgets are written here on bellman's public gadgets (booleans, lookups,
//! multipack, Blake2s): [`ecc`] for Jubjub, [`pedersen`] for the Sapling
//! Pedersen hash, [`bits`] for bit utilities.

pub mod bits;
pub mod count;
pub mod ecc;
pub mod pedersen;

use core::fmt;
use std::sync::OnceLock;

use bellman::gadgets::blake2s::blake2s;
use bellman::gadgets::boolean::{AllocatedBit, Boolean};
use bellman::gadgets::multipack::pack_into_inputs;
use bellman::{Circuit, ConstraintSystem, SynthesisError};
use bls12_381::Scalar;
use jubjub::{AffinePoint, ExtendedPoint};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::constants::{
    CRED_DST, CREDENTIAL_VERSION, KID_SIZE_BYTES, NULLIFIER_DST, PROVII_RJ_PERSONALIZATION,
    R_BITS_LEN, SCHEMA_SIZE_BYTES,
};
use crate::dob::{DobDays, bias_for_circuit};
use crate::public_inputs::{Direction, assemble_public_inputs};
use crate::rbits::RBits;
use crate::{Commitment, SignedCredential};

use self::bits::{alloc_bytes, conditional_swap, constant_bytes, enforce_equal, enforce_ge};
use self::ecc::{EdwardsPoint, FixedBase};
use self::pedersen::{Personalization, pedersen_hash};

/// What a witness constructor refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessError {
    #[error("{field} must be exactly {expected} {unit}, got {actual}")]
    Size {
        field: &'static str,
        expected: usize,
        actual: usize,
        unit: &'static str,
    },
    #[error("the credential's commitment does not open with this date of birth and r_bits")]
    CommitmentMismatch,
    #[error("date of birth: {0}")]
    Dob(String),
}

/// The fields a witness is built from (spec §12.4), before validation.
pub struct WitnessInput<'a> {
    pub dob_days: i32,
    pub r_bits: &'a [bool],
    pub issuer_vk: [u8; 32],
    pub sig_rj: &'a [u8],
    pub v: u8,
    pub kid: &'a [u8],
    pub c_bytes: [u8; 32],
    pub iat: u64,
    pub exp: u64,
    pub schema: &'a [u8],
}

/// The private witness of spec §12.4: fixed sizes checked at construction,
/// wiped on drop, redacted in `Debug`, and deliberately not serialisable.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct AgeWitness {
    dob_days: i32,
    r_bits: [bool; R_BITS_LEN],
    issuer_vk: [u8; 32],
    sig_rj: [u8; 64],
    v: u8,
    kid: [u8; KID_SIZE_BYTES],
    c_bytes: [u8; 32],
    iat: u64,
    exp: u64,
    schema: [u8; SCHEMA_SIZE_BYTES],
}

fn sized<const N: usize, T: Copy + Default>(
    field: &'static str,
    unit: &'static str,
    value: &[T],
) -> Result<[T; N], WitnessError> {
    value.try_into().map_err(|_| WitnessError::Size {
        field,
        expected: N,
        actual: value.len(),
        unit,
    })
}

impl AgeWitness {
    /// Checks the sizes (`kid` 14 bytes, `schema` 12, signature 64, 128
    /// randomness bits); never panics.
    pub fn new(input: WitnessInput<'_>) -> Result<Self, WitnessError> {
        Ok(Self {
            dob_days: input.dob_days,
            r_bits: sized("r_bits", "bits", input.r_bits)?,
            issuer_vk: input.issuer_vk,
            sig_rj: sized("sig_rj", "bytes", input.sig_rj)?,
            v: input.v,
            kid: sized("kid", "bytes", input.kid)?,
            c_bytes: input.c_bytes,
            iat: input.iat,
            exp: input.exp,
            schema: sized("schema", "bytes", input.schema)?,
        })
    }

    /// The wallet's witness for a credential it holds, after checking that
    /// the commitment opens with its date of birth and randomness.
    pub fn from_credential(
        dob: &DobDays,
        r_bits: &RBits,
        credential: &SignedCredential,
    ) -> Result<Self, WitnessError> {
        let opened = crate::commit(dob, r_bits).map_err(|e| WitnessError::Dob(e.to_string()))?;
        if !bool::from(opened.ct_eq(credential.msg.commitment())) {
            return Err(WitnessError::CommitmentMismatch);
        }
        let mut bits = [false; R_BITS_LEN];
        for (slot, bit) in bits.iter_mut().zip(r_bits.bits()) {
            *slot = bit;
        }
        let witness = Self::new(WitnessInput {
            dob_days: dob.expose(),
            r_bits: &bits,
            issuer_vk: credential.issuer_vk.to_bytes(),
            sig_rj: &credential.sig_rj.to_bytes(),
            v: CREDENTIAL_VERSION,
            kid: credential.msg.kid().as_bytes(),
            c_bytes: credential.msg.commitment().to_bytes(),
            iat: credential.msg.iat(),
            exp: credential.msg.exp(),
            schema: credential.msg.schema().as_bytes(),
        });
        bits.zeroize();
        witness
    }

    /// The commitment the witness opens.
    pub fn commitment(&self) -> Result<Commitment, crate::Error> {
        Commitment::from_bytes(&self.c_bytes)
    }
}

impl fmt::Debug for AgeWitness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgeWitness")
            .field("dob_days", &"<redacted>")
            .field("r_bits", &"<redacted>")
            .field("sig_rj", &"<redacted>")
            .field("kid", &String::from_utf8_lossy(&self.kid))
            .finish_non_exhaustive()
    }
}

/// The statement: the values behind the eight public inputs (spec §12.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgePublicInputs {
    pub direction: Direction,
    pub cutoff_days: i32,
    pub rp_hash: [u8; 32],
    pub issuer_vk: [u8; 32],
    pub nullifier: [u8; 32],
}

impl AgePublicInputs {
    /// The eight field elements a verifier feeds to Groth16.
    pub fn to_scalars(&self) -> [Scalar; 8] {
        assemble_public_inputs(
            self.direction,
            self.cutoff_days,
            &self.rp_hash,
            &self.issuer_vk,
            &self.nullifier,
        )
    }
}

/// The age circuit. Without a statement and witness (parameter
/// generation) only the structure is synthesised.
#[derive(Clone)]
pub struct AgeCircuit {
    pub public: Option<AgePublicInputs>,
    pub witness: Option<AgeWitness>,
}

impl AgeCircuit {
    /// The circuit's shape alone, for the trusted setup.
    pub fn blank() -> Self {
        Self {
            public: None,
            witness: None,
        }
    }
}

/// The public inputs as allocated bits.
pub struct PublicBits {
    pub direction: Boolean,
    pub cutoff: Vec<Boolean>,
    pub rp_hash: Vec<Boolean>,
    pub issuer_vk: Vec<Boolean>,
    pub nullifier: Vec<Boolean>,
}

/// Step 0: allocates the public values as bits and packs them into the
/// eight inputs, in the order direction, cutoff, rp_hash, issuer_vk,
/// nullifier; each value starts a new input.
pub fn allocate_public_inputs<CS: ConstraintSystem<Scalar>>(
    mut cs: CS,
    public: Option<&AgePublicInputs>,
) -> Result<PublicBits, SynthesisError> {
    let direction = Boolean::from(AllocatedBit::alloc(
        cs.namespace(|| "direction"),
        public.map(|p| p.direction == Direction::Over),
    )?);
    let mut direction_word = vec![direction.clone()];
    direction_word.resize(32, Boolean::constant(false));
    pack_into_inputs(cs.namespace(|| "pack direction"), &direction_word)?;

    let cutoff_bytes = public.map(|p| bias_for_circuit(p.cutoff_days).to_le_bytes());
    let cutoff = alloc_bytes(
        cs.namespace(|| "cutoff"),
        cutoff_bytes.as_ref().map(|b| &b[..]),
        4,
    )?;
    pack_into_inputs(cs.namespace(|| "pack cutoff"), &cutoff)?;
    let mut alloc_packed = |name: &'static str, value: Option<&[u8; 32]>| {
        let bits = alloc_bytes(cs.namespace(|| name), value.map(|v| &v[..]), 32)?;
        pack_into_inputs(cs.namespace(|| format!("pack {name}")), &bits)?;
        Ok::<_, SynthesisError>(bits)
    };
    let rp_hash = alloc_packed("rp_hash", public.map(|p| &p.rp_hash))?;
    let issuer_vk = alloc_packed("issuer_vk", public.map(|p| &p.issuer_vk))?;
    let nullifier = alloc_packed("nullifier", public.map(|p| &p.nullifier))?;
    Ok(PublicBits {
        direction,
        cutoff,
        rp_hash,
        issuer_vk,
        nullifier,
    })
}

/// Fixed-base tables for `[s]G`, G the spending key generator (spec §4.3).
fn generator_table() -> &'static FixedBase {
    static TABLE: OnceLock<FixedBase> = OnceLock::new();
    TABLE.get_or_init(|| {
        FixedBase::new(
            ExtendedPoint::from(crate::point::spending_key_generator()),
            256,
        )
    })
}

/// A point witness from its 32-byte encoding; an encoding that does not
/// decode leaves the witness unknown, which makes proving fail.
fn decode(bytes: &[u8; 32]) -> Option<AffinePoint> {
    AffinePoint::from_bytes(*bytes).into()
}

impl Circuit<Scalar> for AgeCircuit {
    fn synthesize<CS: ConstraintSystem<Scalar>>(self, cs: &mut CS) -> Result<(), SynthesisError> {
        let w = self.witness.as_ref();
        // Step 0.
        let public = allocate_public_inputs(cs.namespace(|| "public"), self.public.as_ref())?;

        // Step 1: the witness as bits.
        let dob_bytes = w.map(|w| bias_for_circuit(w.dob_days).to_le_bytes());
        let dob = alloc_bytes(
            cs.namespace(|| "dob"),
            dob_bytes.as_ref().map(|b| &b[..]),
            4,
        )?;
        let r_bits = (0..R_BITS_LEN)
            .map(|i| {
                AllocatedBit::alloc(
                    cs.namespace(|| format!("r_bit {i}")),
                    w.map(|w| w.r_bits[i]),
                )
                .map(Boolean::from)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let s = alloc_bytes(cs.namespace(|| "s"), w.map(|w| &w.sig_rj[32..]), 32)?;
        let v = alloc_bytes(
            cs.namespace(|| "v"),
            w.map(|w| std::slice::from_ref(&w.v)),
            1,
        )?;
        let kid = alloc_bytes(
            cs.namespace(|| "kid"),
            w.map(|w| &w.kid[..]),
            KID_SIZE_BYTES,
        )?;
        let iat_be = w.map(|w| w.iat.to_be_bytes());
        let iat = alloc_bytes(cs.namespace(|| "iat"), iat_be.as_ref().map(|b| &b[..]), 8)?;
        let exp_be = w.map(|w| w.exp.to_be_bytes());
        let exp = alloc_bytes(cs.namespace(|| "exp"), exp_be.as_ref().map(|b| &b[..]), 8)?;
        let schema = alloc_bytes(
            cs.namespace(|| "schema"),
            w.map(|w| &w.schema[..]),
            SCHEMA_SIZE_BYTES,
        )?;

        // Step 2: the issuer key the signature is checked under is the
        // public one.
        let vk = EdwardsPoint::witness(
            cs.namespace(|| "issuer vk"),
            w.and_then(|w| decode(&w.issuer_vk)),
        )?;
        let vk_bits = vk.repr(cs.namespace(|| "issuer vk bits"))?;
        enforce_equal(cs.namespace(|| "vk is public"), &vk_bits, &public.issuer_vk)?;

        // Step 4 (before 3, which hashes its result): the commitment opens.
        let commitment_input: Vec<Boolean> = dob.iter().chain(&r_bits).cloned().collect();
        let c = pedersen_hash(
            cs.namespace(|| "commitment"),
            Personalization::NoteCommitment,
            &commitment_input,
        )?;
        let c_bits = c.repr(cs.namespace(|| "commitment bits"))?;

        // Step 3: the nullifier of that commitment is the public one.
        let nullifier_input: Vec<Boolean> = constant_bytes(NULLIFIER_DST)
            .into_iter()
            .chain(c_bits.iter().cloned())
            .collect();
        let nf = pedersen_hash(
            cs.namespace(|| "nullifier"),
            Personalization::MerkleTree0,
            &nullifier_input,
        )?;
        let nf_bits = nf.repr(cs.namespace(|| "nullifier bits"))?;
        enforce_equal(
            cs.namespace(|| "nullifier is public"),
            &nf_bits,
            &public.nullifier,
        )?;

        // Step 5: Over needs cutoff >= dob, Under needs dob >= cutoff.
        let (left, right) = conditional_swap(
            cs.namespace(|| "direction swap"),
            &public.direction,
            &dob,
            &public.cutoff,
        )?;
        enforce_ge(cs.namespace(|| "age check"), &left, &right)?;

        // Step 6: the credential prehash (spec §8.2) with fixed sizes.
        let prehash: Vec<Boolean> = constant_bytes(CRED_DST)
            .into_iter()
            .chain(v)
            .chain(constant_bytes(&[KID_SIZE_BYTES as u8]))
            .chain(kid)
            .chain(c_bits)
            .chain(iat)
            .chain(exp)
            .chain(constant_bytes(&[SCHEMA_SIZE_BYTES as u8]))
            .chain(schema)
            .collect();

        // Step 7: msg_hash = Blake2s-256(prehash), no personalisation.
        let msg_hash = blake2s(cs.namespace(|| "msg_hash"), &prehash, &[0u8; 8])?;

        // Step 8: [s]G == R + [c]VK, c = Blake2s("ProviiRJ"; R || VK || msg_hash).
        let r = EdwardsPoint::witness(
            cs.namespace(|| "R"),
            w.and_then(|w| {
                let mut bytes = [0u8; 32];
                bytes.copy_from_slice(&w.sig_rj[..32]);
                decode(&bytes)
            }),
        )?;
        r.assert_not_small_order(cs.namespace(|| "R not small order"))?;
        vk.assert_not_small_order(cs.namespace(|| "vk not small order"))?;
        let r_bits_repr = r.repr(cs.namespace(|| "R bits"))?;
        let challenge_input: Vec<Boolean> = r_bits_repr
            .into_iter()
            .chain(vk_bits)
            .chain(msg_hash)
            .collect();
        let challenge = blake2s(
            cs.namespace(|| "challenge"),
            &challenge_input,
            PROVII_RJ_PERSONALIZATION,
        )?;
        let lhs = generator_table().mul(cs.namespace(|| "[s]G"), &s)?;
        let c_vk = vk.mul(cs.namespace(|| "[c]VK"), &challenge)?;
        let rhs = r.add(cs.namespace(|| "R + [c]VK"), &c_vk)?;
        lhs.enforce_equal(cs.namespace(|| "signature equation"), &rhs)
    }
}
