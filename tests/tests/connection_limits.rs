//! What a client may hold of the daemon (`[http]` max_connections,
//! header_timeout_ms, body_timeout_ms, and about 64 KiB of request head),
//! over real sockets: a connection that stalls, idles or trickles is closed,
//! an oversized head is refused, and connections beyond the cap wait in the
//! accept queue until one closes.
//!
//! The clients here wait up to 30 s for the daemon to act on deadlines of
//! half a second, so a slow machine cannot fail them; a daemon that never
//! acts does.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use provii_e2e::{Appliance, binary, http};

const SHORT_DEADLINES: &str = "header_timeout_ms = 500\nbody_timeout_ms = 500\n";

fn connect(app: &Appliance, read_timeout: Duration) -> TcpStream {
    let s = TcpStream::connect(&app.addr).expect("connect");
    s.set_read_timeout(Some(read_timeout)).expect("timeout");
    s
}

/// Reads until the daemon closes the connection; panics if it does not
/// within the socket's read timeout.
fn read_until_closed(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    match s.read_to_end(&mut buf) {
        Ok(_) => String::from_utf8_lossy(&buf).into_owned(),
        // A reset after the daemon gave up on the connection is a close too.
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {
            String::from_utf8_lossy(&buf).into_owned()
        }
        Err(e) => panic!("the daemon kept the connection open: {e}; read so far: {buf:?}"),
    }
}

/// One complete keep-alive request for `/health`.
fn health_on(s: &mut TcpStream) -> String {
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).expect("response");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn a_request_head_far_over_64_kib_is_refused_and_one_under_it_served() {
    let app = Appliance::start("oversized-head");
    let with_header = |bytes: usize| {
        let mut request =
            b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: ".to_vec();
        request.resize(request.len() + bytes, b'a');
        request.extend_from_slice(b"\r\n\r\n");
        http::raw(&app.addr, &request).expect("an HTTP answer")
    };
    assert_eq!(with_header(32 * 1024).status, 200);
    // hyper's own limit, about 400 KB, would let this one through; the
    // daemon's stops buffering a head at 64 KiB (a single read may take it
    // somewhat past that, never to 200 KiB).
    assert_eq!(with_header(200 * 1024).status, 431);
    assert_eq!(app.get("/health").status, 200);
}

#[test]
fn a_connection_stalled_in_its_headers_is_closed() {
    let app = Appliance::start_with_http("stalled-headers", SHORT_DEADLINES);
    let mut s = connect(&app, Duration::from_secs(30));
    s.write_all(b"POST /v1/challenge HTTP/1.1\r\nHost: x\r\nContent-")
        .expect("write");
    let answer = read_until_closed(&mut s);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // The daemon still serves everyone else.
    assert_eq!(app.get("/health").status, 200);
}

#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let app = Appliance::start_with_http("idle-keep-alive", SHORT_DEADLINES);
    let mut s = connect(&app, Duration::from_secs(30));
    assert!(health_on(&mut s).starts_with("HTTP/1.1 200"));
    let metrics = String::from_utf8_lossy(&app.get("/metrics").body).into_owned();
    let gauge = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    assert!(
        gauge("provii_http_connections_open") >= Some(2.0),
        "this one and the scrape's: {metrics}"
    );
    // The default cap, unless this machine's hard open-files limit (which
    // the daemon inherits) is too low for it (`fd_limit`).
    let hard = open_files("self", 1).map_or(f64::INFINITY, |h| h as f64);
    assert_eq!(
        gauge("provii_http_max_connections"),
        Some(1024f64.min(hard - 256.0))
    );
    assert_eq!(read_until_closed(&mut s), "");
}

#[test]
fn a_body_that_does_not_arrive_is_answered_408_and_changes_nothing() {
    let app = Appliance::start_with_http("trickled-body", SHORT_DEADLINES);
    let mut s = connect(&app, Duration::from_secs(30));
    s.write_all(
        b"POST /v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 40\r\n\r\n{\"officer_id\":",
    )
    .expect("write");
    let answer = read_until_closed(&mut s);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"REQUEST_TIMEOUT\""), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("x-request-id:"),
        "the request rules apply: {answer}"
    );
    let metrics = String::from_utf8_lossy(&app.get("/metrics").body).into_owned();
    assert!(
        !metrics.contains("route=\"/v1/challenge\",status=\"201\""),
        "no challenge was issued: {metrics}"
    );
}

#[test]
fn connections_beyond_the_cap_wait_until_one_closes() {
    let app = Appliance::start_with_http("connection-cap", "max_connections = 2\n");
    let mut first = connect(&app, Duration::from_secs(30));
    let mut second = connect(&app, Duration::from_secs(30));
    assert!(health_on(&mut first).starts_with("HTTP/1.1 200"));
    assert!(health_on(&mut second).starts_with("HTTP/1.1 200"));

    // The kernel completes the handshake; the daemon does not take the
    // connection while two are open, so the request is not answered.
    let mut third = connect(&app, Duration::from_secs(1));
    third
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut buf = [0u8; 64];
    match third.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("a third connection was served past the cap: {other:?}"),
    }

    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let answer = read_until_closed(&mut third);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(health_on(&mut second).starts_with("HTTP/1.1 200"));
}

/// `serve` for `app`'s configuration under `prlimit --nofile=SOFT:HARD`.
fn serve_with_open_files(app: &Appliance, soft: u64, hard: u64) -> Command {
    let mut c = Command::new("prlimit");
    c.arg(format!("--nofile={soft}:{hard}"))
        .arg(binary("provii-appliance"))
        .arg("--config")
        .arg(&app.config)
        .arg("serve")
        .env("SOFTHSM2_CONF", &app.softhsm_conf)
        .stdout(Stdio::null());
    c
}

/// A process's open-files limit from `/proc/<process>/limits`: column 0
/// the soft one, 1 the hard one; `None` when unlimited.
fn open_files(process: &str, column: usize) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{process}/limits"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?
        .split_whitespace()
        .nth(column)?
        .parse()
        .ok()
}

/// The daemon's soft open-files limit.
fn soft_open_files(pid: u32) -> u64 {
    open_files(&pid.to_string(), 0).expect("a numeric soft limit")
}

/// Starts `command`, waits for `/ready`, and returns the child with the
/// cap `/metrics` reports.
fn start_and_read_cap(app: &Appliance, mut command: Command) -> (Child, f64) {
    let child = command.stderr(Stdio::null()).spawn().expect("prlimit runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http::get(&app.addr, "/ready").is_ok_and(|r| r.status == 200) {
        assert!(Instant::now() < deadline, "daemon not ready under prlimit");
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = String::from_utf8_lossy(&app.get("/metrics").body).into_owned();
    let cap = metrics
        .lines()
        .find_map(|l| l.strip_prefix("provii_http_max_connections "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the cap gauge");
    (child, cap)
}

#[test]
fn the_daemon_makes_room_for_its_connections_or_says_why_it_cannot() {
    let mut app = Appliance::start("open-files");
    app.kill();

    // A soft limit below the default cap's needs, a hard one above: raised.
    let (mut child, cap) = start_and_read_cap(&app, serve_with_open_files(&app, 300, 8192));
    assert_eq!(cap, 1024.0);
    assert!(soft_open_files(child.id()) >= 1024 + 256);
    let _ = child.kill();
    let _ = child.wait();

    // A hard limit too low for the default cap: fewer connections, said so.
    let (mut child, cap) = start_and_read_cap(&app, serve_with_open_files(&app, 300, 600));
    assert_eq!(cap, 600.0 - 256.0);
    assert_eq!(soft_open_files(child.id()), 600);
    let _ = child.kill();
    let _ = child.wait();

    // A configured cap the hard limit cannot hold: refused at start.
    let mut configured =
        Appliance::start_with_http("open-files-configured", "max_connections = 1024\n");
    configured.kill();
    let out = serve_with_open_files(&configured, 300, 600)
        .output()
        .expect("prlimit runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("http.max_connections") && stderr.contains("LimitNOFILE"),
        "{stderr}"
    );
}
