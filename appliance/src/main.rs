//! `provii-appliance`: the Provii issuer daemon and its admin commands.
//!
//! Admin commands talk to the running daemon over its Unix socket and are
//! approved by the caller's YubiKey (`--as ID`, `--responder`).
//!
//! Exit status: 0 success, 1 the command failed or was refused (reason on
//! stderr), 2 bad arguments.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use provii_appliance::config::Config;
use provii_appliance::{admin, backup, enrol, init, officer, serve};
use provii_circuits::encoding::hex_encode;
use serde_json::{Value, json};

/// jemalloc serves every allocation of the process, SoftHSM's and OpenSSL's
/// included (its `malloc` symbols replace the C library's): glibc's malloc
/// cost 9 % of the daemon's CPU under load, most of it for OpenSSL 3.0
/// decoding the attestation key on every signature. Figures in BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How long the process waits at exit, once for `serve`'s background work
/// and once for the threads that use the HSM, before exiting regardless.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

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
    /// Admin commands: your officer id (default: officer_id in ~/.config/provii/officer.toml)
    #[arg(long = "as", global = true, value_name = "OFFICER_ID")]
    caller: Option<String>,
    /// Admin commands: "yubikey" (default) or "soft:FILE" (the secret in hex; tests)
    #[arg(long, global = true, default_value = "yubikey")]
    responder: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// First run: create the state, provision the HSM, enrol the first super_admin
    Init {
        /// Id of the first super_admin
        #[arg(long, default_value = "admin")]
        officer_id: String,
        /// Also write the super_admin's YubiKey secret (hex) to this file, mode 0600
        #[arg(long)]
        secret_out: Option<PathBuf>,
    },
    /// Run the daemon
    Serve,
    /// Write a consistent, HSM-sealed snapshot (safe while the daemon runs)
    Backup {
        /// The backup file to create (never overwritten; mode 0600)
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup onto a fresh state directory, after checking it
    /// against this HSM token
    Restore {
        /// The backup file
        #[arg(long)]
        from: PathBuf,
    },
    /// Counter officers (admin)
    #[command(subcommand)]
    Officers(OfficerCmd),
    /// Issuing Parties (admin)
    #[command(subcommand)]
    Clients(ClientCmd),
    /// Viewers, admins and super_admins (super_admin)
    #[command(subcommand)]
    Admins(AdminCmd),
    /// The tamper-evident audit log (viewer)
    #[command(subcommand)]
    Audit(AuditCmd),
    /// HSM, database, keys, lockouts, version (viewer)
    Status,
    /// The HSM (viewer)
    #[command(subcommand)]
    Hsm(HsmCmd),
    /// Credential signing keys (viewer)
    #[command(subcommand)]
    Keys(KeysCmd),
}

#[derive(Subcommand)]
enum OfficerCmd {
    /// Enrol an officer; prints the YubiKey secret once
    Add {
        id: String,
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
    /// A new YubiKey secret (lost or re-programmed key); the old one stops working
    RotateSecret {
        id: String,
        #[arg(long)]
        secret_out: Option<PathBuf>,
    },
    /// Lift the officer's lockouts
    Unlock {
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
    /// (0 to 2 592 000, 30 days)
    RotateSecret {
        id: String,
        #[arg(long, default_value_t = 86_400)]
        overlap_seconds: i64,
        #[arg(long)]
        secret_out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AdminCmd {
    /// Enrol a viewer, admin or super_admin; prints the YubiKey secret once
    Add {
        id: String,
        #[arg(long, default_value = "viewer")]
        role: String,
        #[arg(long)]
        secret_out: Option<PathBuf>,
    },
    List,
    Disable {
        id: String,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Recompute the HSM MAC chain (exit 1 if broken)
    Verify,
    /// Every record as JSON lines
    Export,
    /// The last records as JSON lines
    Tail {
        #[arg(long, short = 'n', default_value_t = 20)]
        lines: u64,
    },
}

#[derive(Subcommand)]
enum HsmCmd {
    /// Usable or not, the last error, reconnects
    Status,
    /// Every object on the token with its security attributes
    Inventory,
}

#[derive(Subcommand)]
enum KeysCmd {
    List,
    /// A new pending key, published at once (super_admin)
    Create,
    /// Let a pending key sign once its publication is confirmed for the lead time (super_admin)
    Activate {
        /// base64url, so it may begin with `-`
        #[arg(allow_hyphen_values = true)]
        kid: String,
        /// Activate before the lead time: verifiers may reject its credentials for up to an hour
        #[arg(long)]
        force: bool,
    },
    /// New Ed25519 attestation key in the HSM; the previous one verifies for another hour (super_admin)
    RotateAttestation {
        /// The previous key is suspected leaked: it stops verifying at once
        /// (attestations it signed and not yet used are refused)
        #[arg(long)]
        compromised: bool,
    },
    /// Take a key out of service at once and publish the revocation (super_admin)
    Revoke {
        /// base64url, so it may begin with `-`
        #[arg(allow_hyphen_values = true)]
        kid: String,
        #[arg(long)]
        reason: String,
    },
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
    let line = |vals: Vec<String>| {
        vals.iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut out = line(columns.iter().map(|c| c.to_uppercase()).collect())
        .trim_end()
        .to_owned();
    for r in &rows {
        out.push('\n');
        out.push_str(line(columns.iter().map(|c| cell(r, c)).collect()).trim_end());
    }
    out
}

fn secret_text(v: &Value, what: &str) -> String {
    let mut text = format!(
        "{what}. The secret is shown this once and is not stored outside the HSM:\n\n  {}\n",
        v["secret"].as_str().unwrap_or("")
    );
    if let Some(line) = v["program_yubikey"].as_str() {
        text.push_str(&format!(
            "\nProgram the YubiKey (slot 2, touch) with:\n\n  {line}\n"
        ));
    }
    text
}

/// The caller of admin commands and their YubiKey.
struct Admin {
    socket: PathBuf,
    caller: String,
    responder: officer::Responder,
}

impl Admin {
    fn new(config: &Config, caller: Option<String>, responder: &str) -> Result<Self, String> {
        let caller = match caller {
            Some(c) => c,
            None => officer::OfficerConfig::load(&officer::OfficerConfig::default_path())
                .map(|c| c.officer_id)
                .map_err(|_| {
                    "say who you are with --as OFFICER_ID (admin commands need your YubiKey)"
                        .to_owned()
                })?,
        };
        let responder = officer::Responder::parse(responder).map_err(|e| e.to_string())?;
        Ok(Self {
            socket: config.admin_socket(),
            caller,
            responder,
        })
    }

    fn call(&self, request: Value) -> Result<Value, String> {
        if matches!(self.responder, officer::Responder::YubiKey) {
            eprintln!("Touch your YubiKey to approve…");
        }
        admin::call(
            &self.socket,
            &self.caller,
            |c| self.responder.respond(c).map_err(|e| e.to_string()),
            &request,
        )
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let config = Config::load(&cli.config).map_err(|e| e.to_string())?;
    let json_mode = cli.json;
    let print = |value: &Value, text: &dyn Fn(&Value) -> String| {
        if json_mode {
            println!("{value}");
        } else {
            println!("{}", text(value));
        }
    };
    let save = |path: &Option<PathBuf>, v: &Value| match path {
        Some(p) => write_secret(p, v["secret"].as_str().unwrap_or("")),
        None => Ok(()),
    };
    let people = |v: &Value| table(v, &["id", "role", "status", "created_at"]);
    let done = |_: &Value| "done".to_owned();
    match cli.command {
        Command::Init {
            officer_id,
            secret_out,
        } => {
            eprintln!(
                "Provisioning the HSM and the state directory (a few seconds on a disk-backed token)…"
            );
            let initialised = init::init(&config, &officer_id).map_err(|e| e.to_string())?;
            let hex = hex_encode(&initialised.officer_secret[..]);
            let v = json!({"officer_id": initialised.officer_id, "role": "super_admin", "secret": hex,
                           "program_yubikey": enrol::ykman_line(&hex), "kid": initialised.kid.as_str()});
            save(&secret_out, &v)?;
            print(&v, &|v| {
                format!(
                    "Appliance initialised; signing key {} is active.\n\n{}",
                    v["kid"].as_str().unwrap_or(""),
                    secret_text(v, "Super admin enrolled")
                )
            });
            return Ok(());
        }
        Command::Backup { out } => {
            let started = std::time::Instant::now();
            let m = backup::backup(&config, &out, &|step| {
                eprintln!("backup: {step} ({} ms)", started.elapsed().as_millis())
            })
            .map_err(|e| e.to_string())?;
            let v = json!({"file": out.display().to_string(), "manifest": m});
            print(&v, &|v| {
                format!(
                    "Backup written to {} ({} bytes of database, {} signing keys, sealed under {}).\nKeep it with the HSM token's own backup: it restores only where that KEK is.",
                    v["file"].as_str().unwrap_or(""),
                    v["manifest"]["database_bytes"],
                    v["manifest"]["signing_keys"].as_array().map_or(0, Vec::len),
                    v["manifest"]["kek"].as_str().unwrap_or("")
                )
            });
            return Ok(());
        }
        Command::Restore { from } => {
            let started = std::time::Instant::now();
            let m = backup::restore(&config, &from, &|step| {
                eprintln!("restore: {step} ({} ms)", started.elapsed().as_millis())
            })
            .map_err(|e| e.to_string())?;
            let v = json!({"restored_into": config.state_dir.display().to_string(), "manifest": m});
            print(&v, &|v| {
                format!(
                    "Restored the backup of {} taken at {} into {}.\nRequests and attestations made before now are refused (their nonces may have been used after the snapshot). Start the daemon.",
                    v["manifest"]["issuer_id"].as_str().unwrap_or(""),
                    v["manifest"]["created_at"],
                    v["restored_into"].as_str().unwrap_or("")
                )
            });
            return Ok(());
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
            let config_bytes =
                std::fs::read(&cli.config).map_err(|e| format!("{}: {e}", cli.config.display()))?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let served = rt.block_on(serve::serve(config, config_bytes));
            // Requests are done; stop the background tasks and wait for
            // blocking work in progress (a publication, a housekeeping job),
            // but not forever: a call into a hung HSM never returns.
            // `main` then waits for the database writer and the crypto
            // threads.
            rt.shutdown_timeout(SHUTDOWN_GRACE);
            return served.map_err(|e| e.to_string());
        }
        _ => {}
    }
    let admin = Admin::new(&config, cli.caller, &cli.responder)?;
    match cli.command {
        Command::Init { .. }
        | Command::Serve
        | Command::Backup { .. }
        | Command::Restore { .. } => {}
        Command::Officers(cmd) => match cmd {
            OfficerCmd::Add { id, secret_out } => {
                let v = admin.call(json!({"cmd": "officers.add", "id": id}))?;
                save(&secret_out, &v)?;
                print(&v, &|v| secret_text(v, "Officer enrolled"));
            }
            OfficerCmd::List => print(&admin.call(json!({"cmd": "officers.list"}))?, &people),
            OfficerCmd::Disable { id } => print(
                &admin.call(json!({"cmd": "officers.disable", "id": id}))?,
                &done,
            ),
            OfficerCmd::Enable { id } => print(
                &admin.call(json!({"cmd": "officers.enable", "id": id}))?,
                &done,
            ),
            OfficerCmd::RotateSecret { id, secret_out } => {
                let v = admin.call(json!({"cmd": "officers.rotate-secret", "id": id}))?;
                save(&secret_out, &v)?;
                print(&v, &|v| secret_text(v, "New officer secret"));
            }
            OfficerCmd::Unlock { id } => print(
                &admin.call(json!({"cmd": "officers.unlock", "id": id}))?,
                &|v| format!("lockouts lifted: {}", v["lockouts_lifted"]),
            ),
        },
        Command::Clients(cmd) => match cmd {
            ClientCmd::Add {
                id,
                name,
                allow_under_18,
                secret_out,
            } => {
                let v = admin.call(json!({"cmd": "clients.add", "id": id, "display_name": name, "allow_under_18": allow_under_18}))?;
                save(&secret_out, &v)?;
                print(&v, &|v| secret_text(v, "Client enrolled"));
            }
            ClientCmd::List => print(&admin.call(json!({"cmd": "clients.list"}))?, &|v| {
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
            }),
            ClientCmd::Disable { id } => print(
                &admin.call(json!({"cmd": "clients.disable", "id": id}))?,
                &done,
            ),
            ClientCmd::Enable { id } => print(
                &admin.call(json!({"cmd": "clients.enable", "id": id}))?,
                &done,
            ),
            ClientCmd::RotateSecret {
                id,
                overlap_seconds,
                secret_out,
            } => {
                let v = admin.call(json!({"cmd": "clients.rotate-secret", "id": id, "overlap_seconds": overlap_seconds}))?;
                save(&secret_out, &v)?;
                print(&v, &|v| secret_text(v, "New client secret"));
            }
        },
        Command::Admins(cmd) => match cmd {
            AdminCmd::Add {
                id,
                role,
                secret_out,
            } => {
                let v = admin.call(json!({"cmd": "admins.add", "id": id, "role": role}))?;
                save(&secret_out, &v)?;
                print(&v, &|v| secret_text(v, "Admin enrolled"));
            }
            AdminCmd::List => print(&admin.call(json!({"cmd": "admins.list"}))?, &people),
            AdminCmd::Disable { id } => print(
                &admin.call(json!({"cmd": "admins.disable", "id": id}))?,
                &done,
            ),
        },
        Command::Audit(AuditCmd::Verify) => {
            let v = admin.call(json!({"cmd": "audit.verify"}))?;
            let ok = v["ok"] == true;
            print(&v, &|v| {
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
        Command::Audit(AuditCmd::Export) => print!(
            "{}",
            admin.call(json!({"cmd": "audit.export"}))?["jsonl"]
                .as_str()
                .unwrap_or("")
        ),
        Command::Audit(AuditCmd::Tail { lines }) => {
            print!(
                "{}",
                admin.call(json!({"cmd": "audit.tail", "lines": lines}))?["jsonl"]
                    .as_str()
                    .unwrap_or("")
            )
        }
        Command::Status => print(&admin.call(json!({"cmd": "status"}))?, &|v| {
            format!(
                "version            {}\nissuer             {}\nHSM                {} ({})\ndatabase           {}\nsigning key        {}\npublished keys     {}\nofficers / clients {} / {}\nlocked-out sources {}\nsources over cap   {}\noutbox             {}",
                v["version"].as_str().unwrap_or(""),
                v["issuer_id"].as_str().unwrap_or(""),
                v["hsm"]["state"].as_str().unwrap_or(""),
                v["hsm"]["token"].as_str().unwrap_or(""),
                v["database"].as_str().unwrap_or(""),
                v["active_signing_key"]
                    .as_str()
                    .unwrap_or("NONE: issuance refused"),
                v["published_keys"],
                v["active_officers"],
                v["active_clients"],
                v["locked_out_officer_sources"],
                v["rate_limits"]["sources_over_failure_cap"],
                v["outbox"].as_str().unwrap_or(""),
            )
        }),
        Command::Hsm(HsmCmd::Status) => print(&admin.call(json!({"cmd": "hsm.status"}))?, &|v| {
            format!(
                "{} token {:?} (serial {}), reconnects {}, last error: {}",
                v["state"], v["token"], v["serial"], v["reconnects"], v["last_error"]
            )
        }),
        Command::Hsm(HsmCmd::Inventory) => {
            print(&admin.call(json!({"cmd": "hsm.inventory"}))?, &|v| {
                table(
                    v,
                    &[
                        "label",
                        "class",
                        "key_type",
                        "sensitive",
                        "extractable",
                        "never_extractable",
                        "local",
                    ],
                )
            })
        }
        Command::Keys(KeysCmd::Create) => {
            print(&admin.call(json!({"cmd": "keys.create"}))?, &|v| {
                format!(
                    "key {} created and queued for publication; activate it after the lead time",
                    v["kid"].as_str().unwrap_or("")
                )
            })
        }
        Command::Keys(KeysCmd::Activate { kid, force }) => print(
            &admin.call(json!({"cmd": "keys.activate", "kid": kid, "force": force}))?,
            &done,
        ),
        Command::Keys(KeysCmd::RotateAttestation { compromised }) => print(
            &admin.call(json!({"cmd": "keys.rotate-attestation", "compromised": compromised}))?,
            &|v| {
                format!(
                    "attestation key {} signs from now on; the previous one verifies for {} s more",
                    v["label"].as_str().unwrap_or(""),
                    v["previous_verifies_for_seconds"]
                )
            },
        ),
        Command::Keys(KeysCmd::Revoke { kid, reason }) => print(
            &admin.call(json!({"cmd": "keys.revoke", "kid": kid, "reason": reason}))?,
            &done,
        ),
        Command::Keys(KeysCmd::List) => print(&admin.call(json!({"cmd": "keys.list"}))?, &|v| {
            table(v, &["kid", "state", "created_at", "activated_at"])
        }),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("provii-appliance: error: {e}");
            1
        }
    };
    // Every handle is gone: the database writer commits what is queued and
    // ends, as do the crypto threads. The exit handlers (OpenSSL's cleanup,
    // run for SoftHSM) must not run while one of them is still ending.
    if !provii_hsm::threads::join_all(SHUTDOWN_GRACE) {
        eprintln!(
            "provii-appliance: warning: a thread using the HSM had not ended after {} s; exiting without the libraries' exit handlers",
            SHUTDOWN_GRACE.as_secs()
        );
        provii_hsm::threads::exit_now(code);
    }
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kid is base64url and begins with `-` once in 64 keys; such a key
    /// must still be activated and revoked, with the flags after it parsed.
    #[test]
    fn a_kid_may_begin_with_a_hyphen() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(["provii-appliance"].iter().chain(args)).map(|c| c.command)
        };
        for args in [
            ["keys", "activate", "-yAbCdEfGhIjKlMnOpQ", "--force"],
            ["keys", "activate", "--force", "-yAbCdEfGhIjKlMnOpQ"],
        ] {
            match parse(&args) {
                Ok(Command::Keys(KeysCmd::Activate { kid, force })) => {
                    assert_eq!(kid, "-yAbCdEfGhIjKlMnOpQ", "{args:?}");
                    assert!(force, "{args:?}");
                }
                Ok(_) => panic!("parsed as another command"),
                Err(e) => panic!("refused: {e}"),
            }
        }
        match parse(&["keys", "revoke", "-k", "--reason", "drill"]) {
            Ok(Command::Keys(KeysCmd::Revoke { kid, reason })) => {
                assert_eq!((kid.as_str(), reason.as_str()), ("-k", "drill"));
            }
            Ok(_) => panic!("parsed as another command"),
            Err(e) => panic!("refused: {e}"),
        }
    }
}
