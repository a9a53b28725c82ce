//! `provii-appliance`: the Provii issuer daemon and its admin commands.
//!
//! Exit status: 0 success, 1 the command failed (reason on stderr), 2 bad
//! arguments.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use provii_appliance::config::Config;
use provii_appliance::{admin, enrol, init, serve};
use provii_circuits::encoding::hex_encode;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(
    name = "provii-appliance",
    version,
    about = "Provii issuer appliance: daemon and administration"
)]
struct Cli {
    /// The appliance's TOML configuration
    #[arg(long, global = true, default_value = "/etc/provii/appliance.toml")]
    config: PathBuf,
    /// Print machine-readable JSON instead of text
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// First run: create the state, provision the HSM, enrol the first super_admin
    Init {
        /// Id of the first super_admin officer
        #[arg(long, default_value = "admin")]
        officer_id: String,
        /// Also write the officer's YubiKey secret (hex) to this file, mode 0600
        #[arg(long)]
        secret_out: Option<PathBuf>,
    },
    /// Run the daemon
    Serve,
    /// Manage counter officers
    #[command(subcommand)]
    Officers(OfficerCmd),
    /// Manage Issuing Parties (clients)
    #[command(subcommand)]
    Clients(ClientCmd),
    /// The tamper-evident audit log
    #[command(subcommand)]
    Audit(AuditCmd),
}

#[derive(Subcommand)]
enum OfficerCmd {
    /// Enrol an officer; prints the YubiKey secret once
    Add {
        id: String,
        #[arg(long, default_value = "officer")]
        role: String,
        #[arg(long)]
        secret_out: Option<PathBuf>,
    },
    List,
    Disable {
        id: String,
    },
    Enable {
        id: String,
    },
}

#[derive(Subcommand)]
enum ClientCmd {
    /// Enrol an Issuing Party; prints its HMAC secret once
    Add {
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// May attest dates of birth of minors
        #[arg(long)]
        allow_under_18: bool,
        #[arg(long)]
        secret_out: Option<PathBuf>,
    },
    List,
    Disable {
        id: String,
    },
    Enable {
        id: String,
    },
    /// New secret; the old one keeps working for --overlap-seconds
    RotateSecret {
        id: String,
        #[arg(long, default_value_t = 86_400)]
        overlap_seconds: i64,
        #[arg(long)]
        secret_out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Recompute the HSM MAC chain
    Verify,
    /// Every record as JSON lines
    Export,
}

fn write_secret(path: &Path, hex: &str) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    writeln!(f, "{hex}").map_err(|e| format!("write {}: {e}", path.display()))
}

fn print(json_mode: bool, value: &Value, text: impl FnOnce(&Value) -> String) {
    if json_mode {
        println!("{value}");
    } else {
        println!("{}", text(value));
    }
}

fn table(rows: &Value, columns: &[&str]) -> String {
    let rows = rows.as_array().cloned().unwrap_or_default();
    let cell = |r: &Value, c: &str| match &r[c] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    };
    let widths: Vec<usize> = columns
        .iter()
        .map(|c| {
            rows.iter()
                .map(|r| cell(r, c).len())
                .max()
                .unwrap_or(0)
                .max(c.len())
        })
        .collect();
    let mut out = String::new();
    let line = |vals: Vec<String>| {
        vals.iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    out.push_str(line(columns.iter().map(|c| c.to_uppercase()).collect()).trim_end());
    for r in &rows {
        out.push('\n');
        out.push_str(line(columns.iter().map(|c| cell(r, c)).collect()).trim_end());
    }
    out
}

fn admin_call(config: &Config, request: Value) -> Result<Value, String> {
    admin::call(&config.admin_socket(), &request)
}

fn secret_text(v: &Value, what: &str) -> String {
    format!(
        "{what} enrolled. Its secret is shown this once and is not stored outside the HSM:\n\n  {}\n",
        v["secret"].as_str().unwrap_or("")
    )
}

fn run(cli: Cli) -> Result<(), String> {
    let config = Config::load(&cli.config).map_err(|e| e.to_string())?;
    let json_mode = cli.json;
    match cli.command {
        Command::Init {
            officer_id,
            secret_out,
        } => {
            let done = init::init(&config, &officer_id).map_err(|e| e.to_string())?;
            let hex = hex_encode(&done.officer_secret[..]);
            if let Some(path) = &secret_out {
                write_secret(path, &hex)?;
            }
            let v = json!({"officer_id": done.officer_id, "role": "super_admin", "secret": hex, "program_yubikey": enrol::ykman_line(&hex), "kid": done.kid.as_str()});
            print(json_mode, &v, |v| {
                format!(
                    "Appliance initialised; signing key {} is active.\n\nSuper admin {:?}: program a YubiKey (slot 2, touch) with this secret. It is shown this once:\n\n  {}\n",
                    v["kid"].as_str().unwrap_or(""),
                    v["officer_id"].as_str().unwrap_or(""),
                    v["program_yubikey"].as_str().unwrap_or("")
                )
            });
        }
        Command::Serve => {
            provii_hsm::hardening::harden_process().map_err(|e| e.to_string())?;
            tracing_subscriber::fmt()
                .json()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .with_writer(std::io::stderr)
                .init();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let config_bytes =
                std::fs::read(&cli.config).map_err(|e| format!("{}: {e}", cli.config.display()))?;
            rt.block_on(serve::serve(config, config_bytes))
                .map_err(|e| e.to_string())?;
        }
        Command::Officers(cmd) => match cmd {
            OfficerCmd::Add {
                id,
                role,
                secret_out,
            } => {
                let v = admin_call(
                    &config,
                    json!({"cmd": "officers.add", "id": id, "role": role}),
                )?;
                if let Some(path) = &secret_out {
                    write_secret(path, v["secret"].as_str().unwrap_or(""))?;
                }
                print(json_mode, &v, |v| {
                    format!(
                        "{}\nProgram the YubiKey with:\n\n  {}",
                        secret_text(v, "Officer"),
                        v["program_yubikey"].as_str().unwrap_or("")
                    )
                });
            }
            OfficerCmd::List => {
                let v = admin_call(&config, json!({"cmd": "officers.list"}))?;
                print(json_mode, &v, |v| {
                    table(v, &["id", "role", "status", "created_at"])
                });
            }
            OfficerCmd::Disable { id } => print(
                json_mode,
                &admin_call(&config, json!({"cmd": "officers.disable", "id": id}))?,
                |_| "disabled".into(),
            ),
            OfficerCmd::Enable { id } => print(
                json_mode,
                &admin_call(&config, json!({"cmd": "officers.enable", "id": id}))?,
                |_| "enabled".into(),
            ),
        },
        Command::Clients(cmd) => match cmd {
            ClientCmd::Add {
                id,
                name,
                allow_under_18,
                secret_out,
            } => {
                let v = admin_call(
                    &config,
                    json!({"cmd": "clients.add", "id": id, "display_name": name, "allow_under_18": allow_under_18}),
                )?;
                if let Some(path) = &secret_out {
                    write_secret(path, v["secret"].as_str().unwrap_or(""))?;
                }
                print(json_mode, &v, |v| secret_text(v, "Client"));
            }
            ClientCmd::List => {
                let v = admin_call(&config, json!({"cmd": "clients.list"}))?;
                print(json_mode, &v, |v| {
                    table(
                        v,
                        &[
                            "id",
                            "display_name",
                            "status",
                            "allow_under_18",
                            "secret_generation",
                        ],
                    )
                });
            }
            ClientCmd::Disable { id } => print(
                json_mode,
                &admin_call(&config, json!({"cmd": "clients.disable", "id": id}))?,
                |_| "disabled".into(),
            ),
            ClientCmd::Enable { id } => print(
                json_mode,
                &admin_call(&config, json!({"cmd": "clients.enable", "id": id}))?,
                |_| "enabled".into(),
            ),
            ClientCmd::RotateSecret {
                id,
                overlap_seconds,
                secret_out,
            } => {
                let v = admin_call(
                    &config,
                    json!({"cmd": "clients.rotate-secret", "id": id, "overlap_seconds": overlap_seconds}),
                )?;
                if let Some(path) = &secret_out {
                    write_secret(path, v["secret"].as_str().unwrap_or(""))?;
                }
                print(json_mode, &v, |v| secret_text(v, "New client secret"));
            }
        },
        Command::Audit(AuditCmd::Verify) => {
            let v = admin_call(&config, json!({"cmd": "audit.verify"}))?;
            let ok = v["ok"] == true;
            print(json_mode, &v, |v| {
                if ok {
                    format!("audit chain intact: {} records", v["records"])
                } else {
                    format!("AUDIT CHAIN BROKEN at record {}", v["broken_at"])
                }
            });
            if !ok {
                return Err("audit verification failed".into());
            }
        }
        Command::Audit(AuditCmd::Export) => {
            let v = admin_call(&config, json!({"cmd": "audit.export"}))?;
            print!("{}", v["jsonl"].as_str().unwrap_or(""));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("provii-appliance: error: {e}");
            ExitCode::from(1)
        }
    }
}
