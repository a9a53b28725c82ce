//! `provii-tool params generate|check`: test-only Groth16 parameters for the
//! age circuit, and the four integrity checks of spec §13.8.
//!
//! A parameter directory holds `age_pk.bin` (bellman `Parameters::write`),
//! `age_vk.bin` (`VerifyingKey::write`) and `manifest.json` (spec §13.7's
//! fields, plus `insecure_test_parameters: true`).

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bls12_381::Bls12;
use groth16::{Parameters, VerifyingKey};
use provii_circuits::params::{ParamsManifest, parse_age_verifying_key, vk_id};
use rand_core::SeedableRng;
use serde_json::{Value, json};

use crate::ToolError;

pub const PROVING_KEY: &str = "age_pk.bin";
pub const VERIFYING_KEY: &str = "age_vk.bin";
pub const MANIFEST: &str = "manifest.json";

/// What one setup took on the reference machine (2 cores), for the
/// progress bar's estimate only.
const EXPECTED_SETUP: Duration = Duration::from_secs(55);

fn io(path: &Path) -> impl Fn(std::io::Error) -> ToolError + '_ {
    move |e| ToolError::Io(path.display().to_string(), e)
}

/// Draws the setup's randomness from the OS, or from ChaCha20 seeded with
/// the given 32 bytes (reproducible, and therefore worthless as a secret).
fn setup(seed: Option<[u8; 32]>) -> Result<Parameters<Bls12>, ToolError> {
    let generated = match seed {
        Some(seed) => provii_circuits::proof::generate_parameters(
            &mut rand_chacha::ChaCha20Rng::from_seed(seed),
        ),
        None => provii_circuits::proof::generate_parameters(&mut rand::rng()),
    };
    generated.map_err(|e| ToolError::Usage(e.to_string()))
}

/// A progress bar on stderr while `work` runs: elapsed time against what
/// it took on the reference machine (an estimate: neither the setup nor
/// the prover reports progress).
pub fn with_progress<T>(label: &str, expected: Duration, work: impl FnOnce() -> T) -> T {
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let label = label.to_owned();
    let tty = std::io::stderr().is_terminal();
    let bar = std::thread::spawn(move || {
        let started = Instant::now();
        let mut last_line = Duration::ZERO;
        while !flag.load(Ordering::SeqCst) {
            let elapsed = started.elapsed();
            let fraction = (elapsed.as_secs_f64() / expected.as_secs_f64()).min(0.99);
            let filled = (fraction * 30.0) as usize;
            let line = format!(
                "{label} [{}{}] {:>3} s of about {} s",
                "#".repeat(filled),
                ".".repeat(30 - filled),
                elapsed.as_secs(),
                expected.as_secs()
            );
            if tty {
                eprint!("\r{line}");
            } else if elapsed >= last_line {
                eprintln!("{line}");
                last_line += Duration::from_secs(10);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        if tty {
            eprintln!(
                "\r{label} [{}] done in {} s",
                "#".repeat(30),
                started.elapsed().as_secs()
            );
        }
    });
    let out = work();
    done.store(true, Ordering::SeqCst);
    let _ = bar.join();
    out
}

/// `params generate --out DIR [--seed HEX]`.
pub fn generate(out: &Path, seed: Option<[u8; 32]>) -> Result<Value, ToolError> {
    let who = if seed.is_some() {
        "anyone who knows the seed"
    } else {
        "whoever ran it"
    };
    eprintln!(
        "WARNING: INSECURE, TEST-ONLY parameters from a single-party setup: {who} can forge proofs. \
         Never deploy them; production parameters come from a multi-party ceremony."
    );
    for name in [PROVING_KEY, VERIFYING_KEY, MANIFEST] {
        if out.join(name).exists() {
            return Err(ToolError::Usage(format!(
                "{} already exists; choose an empty directory",
                out.join(name).display()
            )));
        }
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    let shape = provii_circuits::circuit::count::shape()
        .map_err(|e| ToolError::Usage(format!("synthesis of the circuit failed: {e}")))?;
    let params = with_progress("generating", EXPECTED_SETUP, || setup(seed))?;
    let mut pk = Vec::new();
    params.write(&mut pk).map_err(io(out))?;
    let mut vk = Vec::new();
    params.vk.write(&mut vk).map_err(io(out))?;
    let manifest = ParamsManifest::describe(&pk, &vk, shape.constraints as u64);
    let mut document =
        serde_json::to_value(&manifest).map_err(|e| ToolError::Usage(e.to_string()))?;
    document["insecure_test_parameters"] = Value::Bool(true);
    for (name, bytes) in [
        (PROVING_KEY, pk.as_slice()),
        (VERIFYING_KEY, vk.as_slice()),
        (MANIFEST, document.to_string().as_bytes()),
    ] {
        let path = out.join(name);
        std::fs::write(&path, bytes).map_err(io(&path))?;
    }
    Ok(json!({
        "dir": out.display().to_string(),
        "vk_id": manifest.vk_id,
        "constraints": shape.constraints,
        "pk_size": manifest.pk_size,
        "vk_size": manifest.vk_size,
        "insecure_test_parameters": true,
    }))
}

pub fn read_manifest(dir: &Path) -> Result<ParamsManifest, ToolError> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read(&path).map_err(io(&path))?;
    serde_json::from_slice(&text)
        .map_err(|e| ToolError::Usage(format!("{}: not a parameter manifest: {e}", path.display())))
}

/// Loads the proving key after the four checks of spec §13.8.
pub fn load_proving_key(dir: &Path) -> Result<(ParamsManifest, Parameters<Bls12>), ToolError> {
    let manifest = read_manifest(dir)?;
    let path = dir.join(PROVING_KEY);
    let pk = std::fs::read(&path).map_err(io(&path))?;
    let params = manifest
        .check_proving_key(&pk)
        .map_err(|e| ToolError::Usage(format!("{}: {e}", path.display())))?;
    Ok((manifest, params))
}

/// Loads the verifying key, checked against the manifest's `vk_id`.
pub fn load_verifying_key(dir: &Path) -> Result<(u32, VerifyingKey<Bls12>), ToolError> {
    let manifest = read_manifest(dir)?;
    let path = dir.join(VERIFYING_KEY);
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    let id = vk_id(&bytes);
    if id != manifest.vk_id {
        return Err(ToolError::Usage(format!(
            "{} has vk_id {id}; the manifest says {}",
            path.display(),
            manifest.vk_id
        )));
    }
    Ok((id, parse_age_verifying_key(&bytes)?))
}

/// `params check DIR`: the §13.8 checks on the proving key, and the
/// verifying key file against the proving key's.
pub fn check(dir: &Path) -> Result<Value, ToolError> {
    let (manifest, params) = load_proving_key(dir)?;
    let path = dir.join(VERIFYING_KEY);
    let vk_file = std::fs::read(&path).map_err(io(&path))?;
    let mut vk = Vec::new();
    params.vk.write(&mut vk).map_err(io(&path))?;
    if vk != vk_file {
        return Err(ToolError::Usage(format!(
            "{} is not the proving key's verifying key",
            path.display()
        )));
    }
    Ok(json!({
        "ok": true,
        "vk_id": manifest.vk_id,
        "checks": ["size", "content_hash", "vk_fingerprint", "circuit_constants"],
        "constraints": manifest.constraints,
    }))
}
