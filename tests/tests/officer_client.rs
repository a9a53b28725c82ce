//! `provii-officer attest` driven as a person would, in tmux: the officer
//! confirms at the prompt, the QR code on the screen decodes (rqrr) to the
//! deep link, and the attestation in it passes blind issuance.

use std::process::Command;
use std::time::{Duration, Instant};

use provii_e2e::world::good_r_bits;
use provii_e2e::{Appliance, binary};

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux")
        .args(args)
        .output()
        .expect("tmux (Debian package tmux; scripts/test.sh installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screen(session: &str) -> String {
    tmux(&[
        "capture-pane",
        "-p",
        "-J",
        "-t",
        session,
        "-S",
        "-",
        "-E",
        "-",
    ])
}

fn wait_for(session: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = screen(session);
        if s.contains(needle) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} never appeared; screen:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Decodes a QR code from a grey image given as rows of 0 (dark) / 255.
fn decode(width: usize, height: usize, pixel: impl Fn(usize, usize) -> u8) -> String {
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(width, height, pixel);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "exactly one QR code");
    grids[0].decode().expect("QR decodes").1
}

/// The terminal rendering: each cell holds two modules; a block glyph is
/// light (the renderer draws light modules, dark ones are blank).
fn decode_terminal(lines: &[&str]) -> String {
    let rows: Vec<Vec<char>> = lines.iter().map(|l| l.chars().collect()).collect();
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let scale = 4;
    let module = |x: usize, y: usize| -> u8 {
        let c = rows[y / 2].get(x).copied().unwrap_or('█');
        let light = matches!((c, y % 2), ('█', _) | ('▀', 0) | ('▄', 1));
        if light { 255 } else { 0 }
    };
    decode(width * scale, rows.len() * 2 * scale, |x, y| {
        module(x / scale, y / scale)
    })
}

#[test]
fn an_officer_attests_at_the_counter_and_the_wallet_scans_it() {
    let app = Appliance::start("officer-client");
    let secret = app.dir.join("yubikey.secret");
    std::fs::write(
        &secret,
        provii_circuits::encoding::hex_encode(&app.officer_secret),
    )
    .expect("secret");
    let config = app.dir.join("officer.toml");
    std::fs::write(
        &config,
        format!("officer_id = \"alice\"\nserver = \"http://{}\"\n", app.addr),
    )
    .expect("config");
    let png = app.dir.join("qr.png");
    let session = format!("officer-{}", std::process::id());
    let command = format!(
        "{} --config {} attest --dob 2000-10-16 --responder soft:{} --png {}; sleep 60",
        binary("provii-officer").display(),
        config.display(),
        secret.display(),
        png.display()
    );
    tmux(&["kill-session", "-t", &session]);
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "250",
        "-y",
        "150",
        &command,
    ]);

    let prompt = wait_for(&session, "[y/N]");
    assert!(prompt.contains("Date of birth: 2000-10-16"), "{prompt}");
    assert!(prompt.contains("(age "), "{prompt}");
    tmux(&["send-keys", "-t", &session, "y", "Enter"]);
    let shown = wait_for(&session, "Issuer dmv.example.gov");
    tmux(&["kill-session", "-t", &session]);

    let lines: Vec<&str> = shown.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("Scan with"))
        .expect("QR heading")
        + 2;
    let end = lines
        .iter()
        .position(|l| l.starts_with("Deep link:"))
        .expect("deep link heading");
    let qr_lines: Vec<&str> = lines[start..end]
        .iter()
        .copied()
        .filter(|l| !l.is_empty())
        .collect();
    let link = lines[end + 1].trim();
    assert!(link.starts_with("provii://attest?attestation="), "{link}");
    assert_eq!(
        decode_terminal(&qr_lines),
        link,
        "the QR code on the screen is the deep link"
    );

    let image = image::open(&png).expect("PNG").to_luma8();
    assert_eq!(
        decode(image.width() as usize, image.height() as usize, |x, y| {
            image.get_pixel(x as u32, y as u32).0[0]
        }),
        link
    );

    let attestation = link
        .split("attestation=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .expect("attestation");
    let issued = app.issue(attestation, &good_r_bits());
    assert_eq!(issued.status, 200, "{:?}", issued.json());
}

#[test]
fn failures_are_explained() {
    let app = Appliance::start("officer-client-no");
    let wrong = app.dir.join("wrong.secret");
    std::fs::write(&wrong, "00".repeat(20)).expect("secret");
    let config = app.dir.join("officer.toml");
    std::fs::write(
        &config,
        format!("officer_id = \"alice\"\nserver = \"http://{}\"\n", app.addr),
    )
    .expect("config");
    let run = |args: &[&str]| {
        Command::new(binary("provii-officer"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .expect("run")
    };
    let out = run(&[
        "attest",
        "--dob",
        "2000-10-16",
        "--yes",
        "--responder",
        &format!("soft:{}", wrong.display()),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not accepted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&[
        "attest",
        "--dob",
        "2000-13-01",
        "--yes",
        "--responder",
        "soft:x",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("YYYY-MM-DD"));
    let out = run(&[
        "attest",
        "--dob",
        "2000-10-16",
        "--yes",
        "--server",
        "http://127.0.0.1:9",
        "--responder",
        &format!("soft:{}", wrong.display()),
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No YubiKey on this machine: a clear message, not a crash.
    let out = run(&["attest", "--dob", "2000-10-16", "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("YubiKey") || err.contains("USB"), "{err}");
}
