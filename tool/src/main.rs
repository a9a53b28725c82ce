//! `provii-tool`: compute and check Provii v0 protocol values.
//!
//! Output is one JSON object on stdout. Exit status: 0 success; 1 the thing
//! checked is invalid (`verify-credential`); 2 bad arguments or input, with
//! the reason on stderr.

mod commands;
mod input;
mod params;
mod wallet;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use provii_circuits::Direction;

use crate::input::read_input;

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(transparent)]
    Protocol(#[from] provii_circuits::Error),
    #[error("cannot read {0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("{0} is larger than 1 MiB; is it the right file?")]
    TooLarge(String),
    #[error("{0}")]
    Usage(String),
}

#[derive(Parser)]
#[command(
    name = "provii-tool",
    version,
    about = "Compute and check Provii v0 protocol values"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum DirectionArg {
    Over,
    Under,
}

#[derive(Subcommand)]
enum Command {
    /// Pedersen commitment and nullifier of a date of birth and 16 wire bytes of r_bits (MSB-first)
    Commit {
        #[arg(long, allow_negative_numbers = true)]
        dob_days: i32,
        /// 32 lowercase hex characters: the 16 bytes a wallet sends
        #[arg(long)]
        r_bits: String,
    },
    /// Credential prehash and its Blake2s-256 (issuer_vk and sig_rj may be absent)
    Prehash {
        /// Credential JSON file, `-` for stdin
        #[arg(long)]
        credential: PathBuf,
    },
    /// Sign a credential with a ProviiRJ secret key; prints the SignedCredential JSON
    Sign {
        /// 64 lowercase hex characters (note: visible in the process list)
        #[arg(long)]
        sk: String,
        #[arg(long)]
        credential: PathBuf,
    },
    /// Verify a SignedCredential's signature (exit 1 when invalid)
    VerifyCredential {
        #[arg(long)]
        credential: PathBuf,
        /// Expected issuer key (base64url); the credential must carry it
        #[arg(long, allow_hyphen_values = true)]
        issuer_vk: Option<String>,
    },
    /// The 32-byte digest Ed25519 signs for an attestation (JSON or base64url)
    AttestationDigest {
        #[arg(long)]
        attestation: PathBuf,
    },
    /// vk_id and Blake2s fingerprint of a bellman-serialised age verifying key
    VkId {
        #[arg(long)]
        vk: PathBuf,
    },
    /// The 8 public-input scalars of the age circuit, 32-byte little-endian hex
    PublicInputs {
        #[arg(long, value_enum)]
        direction: DirectionArg,
        #[arg(long, allow_negative_numbers = true)]
        cutoff_days: i32,
        #[arg(long)]
        rp_hash: String,
        /// 64 hex characters (the key's 32 bytes, as the circuit packs them)
        #[arg(long)]
        issuer_vk: String,
        #[arg(long)]
        nullifier: String,
    },
    /// rp_challenge = SHA-256(origin || nonce || DST) and rp_hash = Blake2s(rp_challenge)
    RpChallenge {
        #[arg(long)]
        origin: String,
        /// 64 lowercase hex characters
        #[arg(long)]
        nonce: String,
    },
    /// Groth16 parameters of the age circuit
    #[command(subcommand)]
    Params(ParamsCmd),
    /// A reference wallet: enrol against an issuer, prove, verify
    #[command(subcommand)]
    Wallet(WalletCmd),
}

#[derive(Subcommand)]
enum ParamsCmd {
    /// TEST-ONLY parameters from a single-party setup (INSECURE: whoever runs it can forge proofs)
    Generate {
        #[arg(long)]
        out: PathBuf,
        /// 64 hex characters: draw the setup's randomness from ChaCha20 with this seed (reproducible)
        #[arg(long)]
        seed: Option<String>,
    },
    /// The four integrity checks of spec §13.8 on a parameter directory (exit 1 on failure)
    Check { dir: PathBuf },
}

#[derive(Subcommand)]
enum WalletCmd {
    /// Blind issuance with fresh r_bits; checks the credential, then stores it (mode 0600)
    Enrol {
        /// The issuer's base URL
        #[arg(long)]
        server: String,
        /// The attestation (base64url) the officer or Issuing Party handed over
        #[arg(long, allow_hyphen_values = true)]
        attestation: String,
        #[arg(long, default_value = "provii-wallet.json")]
        wallet: PathBuf,
    },
    /// Preflight, then prove; prints the AgeProofJson
    Prove {
        #[arg(long)]
        params: PathBuf,
        #[arg(long, allow_negative_numbers = true)]
        cutoff_days: i32,
        #[arg(long, value_enum)]
        direction: DirectionArg,
        /// 64 hex characters, from the relying party's challenge
        #[arg(long)]
        rp_challenge: String,
        #[arg(long, default_value = "provii-wallet.json")]
        wallet: PathBuf,
    },
    /// The verifier's steps on an AgeProofJson (exit 1 when invalid)
    Verify {
        #[arg(long)]
        params: PathBuf,
        /// The AgeProofJson file, `-` for stdin
        #[arg(long)]
        proof: PathBuf,
        /// The issuer key the verifier trusts (base64url)
        #[arg(long, allow_hyphen_values = true)]
        issuer_vk: String,
        /// The direction the relying party asked for
        #[arg(long, value_enum)]
        direction: DirectionArg,
        /// The cutoff the relying party asked for
        #[arg(long, allow_negative_numbers = true)]
        cutoff_days: Option<i32>,
        /// The challenge the relying party issued (64 hex characters)
        #[arg(long)]
        rp_challenge: Option<String>,
    },
}

impl From<DirectionArg> for Direction {
    fn from(d: DirectionArg) -> Self {
        match d {
            DirectionArg::Over => Direction::Over,
            DirectionArg::Under => Direction::Under,
        }
    }
}

fn verdict(v: serde_json::Value) -> (String, ExitCode) {
    let code = if v["valid"] == true || v["ok"] == true {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    (v.to_string(), code)
}

fn run(command: Command) -> Result<(String, ExitCode), ToolError> {
    use commands::*;
    let ok = |v: serde_json::Value| (v.to_string(), ExitCode::SUCCESS);
    Ok(match command {
        Command::Commit { dob_days, r_bits } => ok(commit_cmd(dob_days, &r_bits)?),
        Command::Prehash { credential } => ok(prehash_cmd(&read_input(&credential)?)?),
        Command::Sign { sk, credential } => {
            (sign_cmd(&sk, &read_input(&credential)?)?, ExitCode::SUCCESS)
        }
        Command::VerifyCredential {
            credential,
            issuer_vk,
        } => {
            let verdict = verify_credential_cmd(&read_input(&credential)?, issuer_vk.as_deref())?;
            let code = if verdict["valid"] == true {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            };
            (verdict.to_string(), code)
        }
        Command::AttestationDigest { attestation } => {
            ok(attestation_digest_cmd(&read_input(&attestation)?)?)
        }
        Command::VkId { vk } => ok(vk_id_cmd(&read_input(&vk)?)?),
        Command::PublicInputs {
            direction,
            cutoff_days,
            rp_hash,
            issuer_vk,
            nullifier,
        } => {
            let direction = match direction {
                DirectionArg::Over => Direction::Over,
                DirectionArg::Under => Direction::Under,
            };
            ok(public_inputs_cmd(
                direction,
                cutoff_days,
                &rp_hash,
                &issuer_vk,
                &nullifier,
            )?)
        }
        Command::RpChallenge { origin, nonce } => ok(rp_challenge_cmd(&origin, &nonce)?),
        Command::Params(ParamsCmd::Generate { out, seed }) => {
            let seed = seed
                .map(|s| provii_circuits::encoding::hex_decode_array::<32>(&s, "--seed"))
                .transpose()?;
            ok(params::generate(&out, seed)?)
        }
        Command::Params(ParamsCmd::Check { dir }) => match params::check(&dir) {
            Ok(v) => verdict(v),
            Err(e) => verdict(serde_json::json!({"ok": false, "error": e.to_string()})),
        },
        Command::Wallet(WalletCmd::Enrol {
            server,
            attestation,
            wallet,
        }) => ok(wallet::enrol(&server, &attestation, &wallet)?),
        Command::Wallet(WalletCmd::Prove {
            params,
            cutoff_days,
            direction,
            rp_challenge,
            wallet,
        }) => ok(wallet::prove_cmd(
            &params,
            &wallet,
            direction.into(),
            cutoff_days,
            &rp_challenge,
        )?),
        Command::Wallet(WalletCmd::Verify {
            params,
            proof,
            issuer_vk,
            direction,
            cutoff_days,
            rp_challenge,
        }) => verdict(wallet::verify_cmd(
            &params,
            input::trim_trailing_whitespace(&read_input(&proof)?),
            &wallet::Expectation {
                issuer_vk: &issuer_vk,
                direction: direction.into(),
                cutoff_days,
                rp_challenge: rp_challenge.as_deref(),
            },
        )?),
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok((out, code)) => {
            println!("{out}");
            code
        }
        Err(e) => {
            eprintln!("provii-tool: error: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A base64url key begins with `-` once in 64 draws; clap must take it
    /// as the option's value, not as an unknown flag.
    #[test]
    fn base64url_values_may_begin_with_a_hyphen() {
        let cli = Cli::try_parse_from([
            "provii-tool",
            "verify-credential",
            "--credential",
            "-",
            "--issuer-vk",
            "-yAbC_d",
        ]);
        match cli.map(|c| c.command) {
            Ok(Command::VerifyCredential { issuer_vk, .. }) => {
                assert_eq!(issuer_vk.as_deref(), Some("-yAbC_d"))
            }
            Ok(_) => panic!("parsed as another command"),
            Err(e) => panic!("refused: {e}"),
        }
        let enrol = Cli::try_parse_from([
            "provii-tool",
            "wallet",
            "enrol",
            "--server",
            "https://issuer",
            "--attestation",
            "-att",
        ]);
        assert!(enrol.is_ok(), "{:?}", enrol.err());
    }

    #[test]
    fn an_unknown_flag_is_still_refused() {
        assert!(
            Cli::try_parse_from([
                "provii-tool",
                "verify-credential",
                "--credential",
                "-",
                "-y"
            ])
            .is_err()
        );
    }
}
