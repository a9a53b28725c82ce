//! HTTPS with rustls: TLS 1.3 preferred, 1.2 accepted, nothing older, and
//! no plaintext on the TLS port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use provii_e2e::Appliance;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

fn client(
    cert: &CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(cert.clone()).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// `GET path` over TLS; returns the negotiated version and the raw response.
fn get(
    addr: &str,
    config: Arc<ClientConfig>,
    path: &str,
) -> std::io::Result<(rustls::ProtocolVersion, String)> {
    let conn = ClientConnection::new(config, ServerName::try_from("localhost").expect("name"))
        .map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = StreamOwned::new(conn, tcp);
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    let version = tls
        .conn
        .protocol_version()
        .ok_or_else(|| std::io::Error::other("no version"))?;
    Ok((version, String::from_utf8_lossy(&out).into_owned()))
}

/// An appliance serving HTTPS with a fresh self-signed certificate, and
/// that certificate; `http_toml` adds keys to `[http]`.
fn tls_appliance(name: &str, http_toml: &str) -> (Appliance, CertificateDer<'static>) {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("self-signed certificate");
    let dir = provii_e2e::workspace()
        .join("target/e2e")
        .join(format!("{name}-pem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("cert.pem"), key.cert.pem()).expect("cert");
    std::fs::write(dir.join("key.pem"), key.signing_key.serialize_pem()).expect("key");
    let http = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n{http_toml}",
        dir.join("cert.pem").display(),
        dir.join("key.pem").display()
    );
    let app = Appliance::start_with_http(name, &http);
    (app, key.cert.der().clone())
}

/// Waits until the daemon answers `/ready` over TLS.
fn wait_ready(app: &Appliance, config: &Arc<ClientConfig>) -> (rustls::ProtocolVersion, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match get(&app.addr, config.clone(), "/ready") {
            Ok(r) if r.1.starts_with("HTTP/1.1 200") => break r,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            other => panic!("daemon not ready over TLS: {other:?}\n{}", app.log()),
        }
    }
}

#[test]
fn https_with_tls_13_and_12_and_no_plaintext() {
    let (app, cert) = tls_appliance("tls", "");

    let modern = client(&cert, &[&rustls::version::TLS13, &rustls::version::TLS12]);
    let (version, body) = wait_ready(&app, &modern);
    assert_eq!(
        version,
        rustls::ProtocolVersion::TLSv1_3,
        "TLS 1.3 is preferred"
    );
    assert!(body.contains("\"ready\":true"), "{body}");

    let (version, body) = get(
        &app.addr,
        client(&cert, &[&rustls::version::TLS12]),
        "/health",
    )
    .expect("TLS 1.2");
    assert_eq!(version, rustls::ProtocolVersion::TLSv1_2);
    assert!(body.starts_with("HTTP/1.1 200"));

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = provii_e2e::http::get(&app.addr, "/health");
    assert!(plain.map(|r| r.status != 200).unwrap_or(true));
}

/// A client that connects and never says hello is closed at the header
/// deadline, and while it holds the only connection slot no other
/// handshake starts.
#[test]
fn silent_tls_clients_are_capped_and_closed() {
    let (app, cert) = tls_appliance(
        "tls-silent",
        "max_connections = 1\nheader_timeout_ms = 500\n",
    );
    let config = client(&cert, &[&rustls::version::TLS13]);
    wait_ready(&app, &config);

    let mut silent = TcpStream::connect(&app.addr).expect("connect");
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut buf = Vec::new();
    match silent.read_to_end(&mut buf) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("a silent client was kept past the handshake deadline: {e}"),
    }
    assert!(buf.is_empty(), "{buf:?}");

    let (app, cert) = tls_appliance(
        "tls-cap",
        "max_connections = 1\nheader_timeout_ms = 60000\n",
    );
    let config = client(&cert, &[&rustls::version::TLS13]);
    wait_ready(&app, &config);
    let holder = TcpStream::connect(&app.addr).expect("connect");
    let (tx, rx) = std::sync::mpsc::channel();
    let addr = app.addr.clone();
    std::thread::spawn(move || {
        let _ = tx.send(get(&addr, config, "/health"));
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(2)).is_err(),
        "a second handshake ran while the only slot was held"
    );
    drop(holder);
    let (_, body) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("served once the slot was free")
        .expect("TLS GET");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
}
