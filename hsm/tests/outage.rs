//! A real HSM outage (DESIGN.md §6): SoftHSM served by `p11-kit server`, a
//! worker process signing through p11-kit's client module, the server killed
//! mid-stream and restarted. The worker must keep running, report Unusable
//! with typed errors, and sign again within 5 s of the server's return.
//!
//! The signing calls are HSM HMAC-SHA256 (`C_Sign`): p11-kit 0.24's RPC does
//! not carry CKM_EDDSA or CKM_AES_GCM, so those cannot cross it. The MAC of a
//! fixed message must be identical before and after the outage, which shows
//! the reconnect re-resolved the same key.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use provii_e2e::p11kit::{P11KitServer, client_module};
use provii_hsm::{Hsm, HsmConfig, HsmError, ObjectLabel, PinSource, TokenSelector};

const WORKER_ENV: &str = "PROVII_OUTAGE_WORKER_TOKEN";

fn start_server(socket: &Path, label: &str) -> P11KitServer {
    P11KitServer::start(socket, label, &common::test_dir().join("softhsm2.conf"))
}

/// Lines the worker prints, stamped on arrival.
fn wait_for(
    rx: &mpsc::Receiver<(Instant, String)>,
    within: Duration,
    what: &str,
    pred: impl Fn(&str) -> bool,
) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((at, line)) if pred(&line) => return at,
            Ok((_, line)) => eprintln!("worker: {line}"),
            Err(_) => panic!("timed out after {within:?} waiting for {what}"),
        }
    }
}

#[test]
fn rides_out_a_p11kit_server_outage() {
    let label = common::unique_label("outage");
    let config = common::token(&label);
    let socket = std::env::temp_dir().join(format!("provii-p11kit-{}.sock", std::process::id()));
    let server = start_server(&socket, &label);

    let mut worker = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "outage_worker",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WORKER_ENV, &label)
        .env(
            "P11_KIT_SERVER_ADDRESS",
            format!("unix:path={}", socket.display()),
        )
        .env(
            "PROVII_OUTAGE_PIN_FILE",
            match &config.pin {
                PinSource::File(p) => p.clone(),
                _ => unreachable!("test tokens use PIN files"),
            },
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the worker process");
    let stdout = worker.stdout.take().expect("worker stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });

    // Phase 1: signing works through p11-kit.
    for _ in 0..10 {
        wait_for(
            &rx,
            Duration::from_secs(30),
            "a signature before the outage",
            |l| l == "ok",
        );
    }

    // Phase 2: the HSM goes away; the worker keeps running with typed errors.
    server.kill();
    wait_for(
        &rx,
        Duration::from_secs(10),
        "typed Unavailable errors and an Unusable status",
        |l| l == "unavailable state=Unusable",
    );
    // Still alive and still reporting, not stuck or dead.
    wait_for(
        &rx,
        Duration::from_secs(5),
        "continued reports during the outage",
        |l| l.starts_with("unavailable"),
    );
    assert!(
        worker.try_wait().expect("worker status").is_none(),
        "worker must survive the outage"
    );

    // Phase 3: the HSM comes back; signing resumes without a restart.
    let server = start_server(&socket, &label);
    let back = Instant::now();
    let resumed = wait_for(
        &rx,
        Duration::from_secs(15),
        "a signature after the server's return",
        |l| l == "ok",
    );
    let took = resumed.saturating_duration_since(back);
    assert!(
        took <= Duration::from_secs(5),
        "signing resumed only after {took:?}"
    );
    println!("signing resumed {took:?} after the server came back");
    let reconnects = wait_for(&rx, Duration::from_secs(5), "a reconnect count", |l| {
        l.starts_with("reconnects=")
    });
    let _ = reconnects;

    // Stop the worker (closing stdin) and clean up.
    drop(worker.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(10);
    while worker.try_wait().expect("status").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = worker.kill();
    let status = worker.wait().expect("worker exit");
    assert!(status.success(), "worker exited with {status}");
    drop(server);
    let _ = std::fs::remove_file(&socket);
}

/// The process under test; runs only when the test above starts it.
#[test]
#[ignore = "run by rides_out_a_p11kit_server_outage as a child process"]
fn outage_worker() {
    let Ok(label) = std::env::var(WORKER_ENV) else {
        return;
    };
    let pin = PathBuf::from(std::env::var("PROVII_OUTAGE_PIN_FILE").expect("pin file"));
    let config = HsmConfig::new(
        client_module(),
        TokenSelector::Label(label),
        PinSource::File(pin),
    );
    let hsm = Hsm::open(config).expect("open the token through p11-kit");
    let key = ObjectLabel::audit_mac(1);
    hsm.create_mac_key(&key)
        .expect("create a MAC key through p11-kit");
    let reference = hsm.hmac_sha256(&key, b"fixed message").expect("first MAC");

    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        let _ = stop_tx.send(());
    });
    let out = std::io::stdout();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut reported_reconnect = false;
    while Instant::now() < deadline && stop_rx.try_recv().is_err() {
        let line = match hsm.hmac_sha256(&key, b"fixed message") {
            Ok(mac) if mac == reference => "ok".to_owned(),
            Ok(_) => "error: the MAC changed: a different key answered".to_owned(),
            Err(HsmError::Unavailable { .. }) => {
                format!("unavailable state={:?}", hsm.status().state)
            }
            Err(e) => format!("error {e}"),
        };
        let mut lock = out.lock();
        let _ = writeln!(lock, "{line}");
        let status = hsm.status();
        if line == "ok" && status.reconnects > 0 && !reported_reconnect {
            reported_reconnect = true;
            let _ = writeln!(lock, "reconnects={}", status.reconnects);
        }
        let _ = lock.flush();
        drop(lock);
        std::thread::sleep(Duration::from_millis(20));
    }
}
