//! What a client may hold of the daemon (`[http]` max_connections,
//! header_timeout_ms, body_timeout_ms), over real sockets: a connection that
//! stalls, idles or trickles is closed, and connections beyond the cap wait
//! in the accept queue until one closes.
//!
//! The clients here wait up to 30 s for the daemon to act on deadlines of
//! half a second, so a slow machine cannot fail them; a daemon that never
//! acts does.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use provii_e2e::Appliance;

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
    assert_eq!(gauge("provii_http_max_connections"), Some(1024.0));
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
