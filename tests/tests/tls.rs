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

#[test]
fn https_with_tls_13_and_12_and_no_plaintext() {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("self-signed certificate");
    let dir = provii_e2e::workspace()
        .join("target/e2e")
        .join(format!("tls-pem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("cert.pem"), key.cert.pem()).expect("cert");
    std::fs::write(dir.join("key.pem"), key.signing_key.serialize_pem()).expect("key");
    let http = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
        dir.join("cert.pem").display(),
        dir.join("key.pem").display()
    );
    let app = Appliance::start_with_http("tls", &http);
    let cert = key.cert.der().clone();

    let modern = client(&cert, &[&rustls::version::TLS13, &rustls::version::TLS12]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (version, body) = loop {
        match get(&app.addr, modern.clone(), "/ready") {
            Ok(r) if r.1.starts_with("HTTP/1.1 200") => break r,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            other => panic!("daemon not ready over TLS: {other:?}\n{}", app.log()),
        }
    };
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
