//! The load tool of issue 4 against the real daemon: what it reports agrees
//! with what the daemon itself counted, and bad input is refused.

use std::process::Command;

use provii_circuits::encoding::hex_encode;
use provii_e2e::{Appliance, binary};
use serde_json::Value;

/// Room for a short burst from one address and one client.
const GENEROUS_LIMITS: &str = "[rate_limits]\nper_source_per_minute = 6000000\n\
    per_client_per_minute = 6000000\nglobal_per_second = 100000\n";

fn load(app: &Appliance, secret_file: &std::path::Path, extra: &[&str]) -> (Option<i32>, Value) {
    let out = Command::new(binary("provii-load"))
        .args([
            "--addr",
            &app.addr,
            "--client-id",
            "load-bank",
            "--secret-file",
        ])
        .arg(secret_file)
        .args(["--connections", "3", "--seconds", "2"])
        .args(extra)
        .output()
        .expect("provii-load runs");
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), report)
}

/// An appliance with the client `load-bank` enrolled, and the file holding
/// its secret.
fn appliance_with_client(name: &str) -> (Appliance, std::path::PathBuf) {
    let app = Appliance::start_with(name, GENEROUS_LIMITS);
    let party = app.enrol_client("load-bank", false);
    let secret_file = app.dir.join("load-bank.secret");
    std::fs::write(&secret_file, hex_encode(&party.secret)).expect("secret file");
    (app, secret_file)
}

fn metrics(app: &Appliance) -> String {
    String::from_utf8_lossy(&app.get("/metrics").body).into_owned()
}

/// The value of the series named exactly `series` (name and labels).
fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|n| n.trim().parse().ok())
}

/// The daemon's own count of answered requests on `route` with `status`.
fn served(app: &Appliance, route: &str, status: u16) -> u64 {
    let series = format!("provii_http_requests_total{{route=\"{route}\",status=\"{status}\"}}");
    value(&metrics(app), &series).map_or(0, |n| n as u64)
}

#[test]
fn the_load_tool_reports_what_the_daemon_served() {
    let (app, secret_file) = appliance_with_client("load");
    let pid = app.pid().expect("daemon pid").to_string();

    let (code, report) = load(&app, &secret_file, &["--daemon-pid", &pid]);
    assert_eq!(code, Some(0), "{report}");
    let n = report["issuances"].as_u64().expect("issuances");
    assert!(n > 0, "{report}");
    assert_eq!(report["failures"], 0, "{report}");
    assert_eq!(
        served(&app, "/v1/issuance/blind", 200),
        n,
        "every issuance the tool counted, and no other, was served"
    );
    assert!(served(&app, "/v1/attestation/create", 201) >= n);
    let ms = |k: &str| report[k].as_f64().unwrap_or(f64::NAN);
    assert!(ms("p50_ms") > 0.0 && ms("p50_ms") <= ms("p99_ms") && ms("p99_ms") <= ms("max_ms"));
    for per_request in ["attestation", "issuance"] {
        let (p50, p99) = (
            ms(&format!("{per_request}_p50_ms")),
            ms(&format!("{per_request}_p99_ms")),
        );
        assert!(p50 > 0.0 && p50 <= p99, "{per_request}: {report}");
        // Each request is part of its iteration.
        assert!(p50 <= ms("p50_ms"), "{per_request}: {report}");
    }
    assert!(ms("daemon_cpu_us_per_iteration") > 0.0, "{report}");
    assert!(ms("load_tool_cpu_us_per_iteration") > 0.0, "{report}");

    // Each iteration waited for two durable writes (the attestation's
    // nonce and record, the issuance's); the writer's commits account for
    // them, a histogram whose buckets only grow and end at its count.
    let m = metrics(&app);
    let commit = |s: &str| value(&m, &format!("provii_db_commit_duration_seconds{s}"));
    let commits = commit("_count").expect("commit count");
    let jobs = value(&m, "provii_db_committed_jobs_total").expect("jobs");
    assert!(
        commits > 0.0 && jobs >= 2.0 * n as f64 && jobs >= commits,
        "{m}"
    );
    assert!(commit("_sum").is_some_and(|s| s > 0.0), "{m}");
    // Each committed job's wait for the writer is counted once.
    assert_eq!(
        value(&m, "provii_db_queue_wait_seconds_count"),
        Some(jobs),
        "{m}"
    );
    let buckets: Vec<f64> = m
        .lines()
        .filter_map(|l| l.strip_prefix("provii_db_commit_duration_seconds_bucket{le=\""))
        .filter_map(|l| l.split_once("} ")?.1.parse().ok())
        .collect();
    assert!(buckets.len() > 2, "{m}");
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{m}");
    assert_eq!(buckets.last().copied(), Some(commits), "{m}");
}

/// With `--rate` every scheduled iteration runs, however late: 15 per
/// second over 3 connections for 2 s is 30 starts, whatever the machine's
/// speed (the count depends on the schedule, not on timing).
#[test]
fn at_a_fixed_rate_the_load_tool_runs_exactly_its_schedule() {
    let (app, secret_file) = appliance_with_client("load-rate");

    let samples = app.dir.join("samples.csv");
    let samples_arg = samples.to_str().expect("utf-8 path");
    let (code, report) = load(
        &app,
        &secret_file,
        &["--rate", "15", "--samples", samples_arg],
    );
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["offered_per_second"], 15.0, "{report}");
    assert_eq!(report["failures"], 0, "{report}");
    assert_eq!(report["issuances"], 30, "{report}");
    assert_eq!(served(&app, "/v1/issuance/blind", 200), 30);
    let ms = |k: &str| report[k].as_f64().unwrap_or(f64::NAN);
    assert!(
        ms("p50_ms") > 0.0 && ms("p50_ms") <= ms("p99_ms"),
        "{report}"
    );

    // Every iteration is in the samples, started when the schedule says:
    // connection c's k-th start is c/15 s + k·(3/15) s after the run began.
    let csv = std::fs::read_to_string(&samples).expect("samples written");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("connection,start_us,attestation_us,issuance_us")
    );
    let mut starts: Vec<(u64, u64)> = Vec::new();
    for line in lines {
        let fields: Vec<u64> = line
            .split(',')
            .map(|f| f.parse().expect("an integer field"))
            .collect();
        assert_eq!(fields.len(), 4, "{line}");
        assert!(fields[2] > 0 && fields[3] > 0, "{line}");
        starts.push((fields[0], fields[1]));
    }
    starts.sort();
    let expected: Vec<(u64, u64)> = (0..3u64)
        .flat_map(|c| (0..10u64).map(move |k| (c, c * 1_000_000 / 15 + k * 200_000)))
        .collect();
    assert_eq!(starts.len(), expected.len());
    for ((c, got), (ec, want)) in starts.iter().zip(&expected) {
        assert_eq!(c, ec);
        assert!(
            got.abs_diff(*want) <= 1,
            "connection {c}: {got} µs, scheduled {want} µs"
        );
    }
}

#[test]
fn the_load_tool_refuses_what_it_cannot_use() {
    let app = Appliance::start_with("load-refusals", GENEROUS_LIMITS);
    app.enrol_client("load-bank", false);

    // A secret that is not the client's: every attestation is refused.
    let wrong = app.dir.join("wrong.secret");
    std::fs::write(&wrong, hex_encode(&[7u8; 32])).expect("secret file");
    let (code, report) = load(&app, &wrong, &[]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["issuances"], 0, "{report}");
    assert_eq!(served(&app, "/v1/issuance/blind", 200), 0);

    let unreadable = app.dir.join("no-such.secret");
    assert_eq!(load(&app, &unreadable, &[]).0, Some(2));
    // A process id with no /proc entry (above the kernel's pid_max).
    assert_eq!(
        load(&app, &wrong, &["--daemon-pid", "4294967295"]).0,
        Some(2)
    );
    // A rate it cannot keep is refused before any request is sent.
    let refused = served(&app, "/v1/attestation/create", 401);
    for rate in ["0", "nan", "inf", "fast"] {
        assert_eq!(
            load(&app, &wrong, &["--rate", rate]).0,
            Some(2),
            "--rate {rate}"
        );
    }
    // A samples file it cannot create, likewise.
    let nowhere = app.dir.join("no-such-dir").join("samples.csv");
    assert_eq!(
        load(
            &app,
            &wrong,
            &["--samples", nowhere.to_str().expect("utf-8")]
        )
        .0,
        Some(2)
    );
    assert_eq!(served(&app, "/v1/attestation/create", 401), refused);
}
