//! `provii-officer`: the counter client. An officer checks a citizen's
//! document, types the date of birth, confirms, touches the YubiKey, and
//! shows the citizen a QR code their wallet scans.
//!
//! Exit status: 0 attested; 1 refused or failed (the reason on stderr);
//! 2 bad arguments; 3 the officer did not confirm.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use provii_appliance::officer::{self, OfficerConfig, Responder};

#[derive(Parser)]
#[command(
    name = "provii-officer",
    version,
    about = "Attest a citizen's date of birth at the counter",
    long_about = "Attest a citizen's date of birth at the counter.\n\n\
        1. Check the citizen's identity document.\n\
        2. Run: provii-officer attest --dob YYYY-MM-DD\n\
        3. Check the date and age shown, answer y.\n\
        4. Touch your YubiKey when it blinks.\n\
        5. Let the citizen scan the QR code with their Provii wallet (or send them the link).\n\n\
        Your officer id and the appliance's address live in ~/.config/provii/officer.toml:\n\
        \n    officer_id = \"alice\"\n    server = \"https://issuer.example.gov\"\n"
)]
struct Cli {
    /// Officer configuration (default ~/.config/provii/officer.toml)
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Attest a date of birth and show it to the citizen as a QR code
    Attest {
        /// The citizen's date of birth, YYYY-MM-DD, as on their document
        #[arg(long)]
        dob: String,
        /// Override the appliance address from the configuration
        #[arg(long)]
        server: Option<String>,
        /// "yubikey" (default) or "soft:FILE" (a file with the secret in hex; tests and demos)
        #[arg(long, default_value = "yubikey")]
        responder: String,
        /// Also write the QR code as a PNG image
        #[arg(long)]
        png: Option<PathBuf>,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
    },
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Attest {
        dob,
        server,
        responder,
        png,
        yes,
    } = cli.command;
    let run = || -> Result<ExitCode, officer::OfficerError> {
        let mut config =
            OfficerConfig::load(&cli.config.unwrap_or_else(OfficerConfig::default_path))?;
        if let Some(s) = server {
            config.server = s;
        }
        let responder = Responder::parse(&responder)?;
        let dob_days = officer::parse_dob(&dob)?;
        let today = now() / 86_400;
        if i64::from(dob_days) > today {
            return Err(officer::OfficerError::Input(format!(
                "{dob} is in the future"
            )));
        }
        let age = officer::age_in_years(dob_days, today);
        println!("Date of birth: {dob}  (age {age})");
        if !yes {
            print!("Attest this date of birth for the citizen at the counter? [y/N] ");
            let _ = std::io::stdout().flush();
            let mut answer = String::new();
            let _ = std::io::stdin().lock().read_line(&mut answer);
            if !matches!(answer.trim(), "y" | "Y" | "yes") {
                println!("Not attested.");
                return Ok(ExitCode::from(3));
            }
        }
        if matches!(responder, Responder::YubiKey) {
            println!("Touch your YubiKey now…");
        }
        let issued = officer::attest(&config, &responder, dob_days, now())?;
        let link = issued.deep_link(&config.deep_link_base);
        println!("\nScan with the Provii wallet (valid for one hour):\n");
        println!("{}", officer::qr_terminal(&link)?);
        println!("Deep link:\n{link}\n");
        if let Some(path) = png {
            officer::qr_png(&link, &path)?;
            println!("QR code written to {}", path.display());
        }
        println!(
            "Issuer {} · expires at {} (Unix time)",
            issued.issuer_id, issued.expires_at
        );
        Ok(ExitCode::SUCCESS)
    };
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("provii-officer: {e}");
            ExitCode::from(1)
        }
    }
}
