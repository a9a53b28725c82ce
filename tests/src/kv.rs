//! A local stand-in for the public edge, over a real socket:
//!
//! - the part of Cloudflare's Workers KV API the publisher uses (WIRE.md §6):
//!   `PUT`/`GET .../values/{key}` and `GET .../keys?prefix=` with a bearer
//!   token, and [`FakeKv::registry`], which reads the namespace the way the
//!   edge verifier does;
//! - an `http` sink endpoint (`PUT`/`GET /publish/jwks`) that accepts a JWKS
//!   only with the bearer token and a valid publisher signature, and never
//!   an older `seq` than one it has accepted;
//! - failures on demand ([`Failure`]): 500s, requests that hang until a
//!   timeout, refused connections.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

pub const TOKEN: &str = "test-token-123";
pub const PREFIX: &str = "/client/v4/accounts/acc1/storage/kv/namespaces/ns1/values/";
const LIST: &str = "/client/v4/accounts/acc1/storage/kv/namespaces/ns1/keys?prefix=";
/// Where the `http` sink sends the JWKS.
pub const PUBLISH_PATH: &str = "/publish/jwks";

/// How the edge misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    None,
    /// Every request answers 500.
    ServerError,
    /// Requests are read and never answered until the failure is lifted.
    Hang,
    /// Nothing listens on the port.
    Refuse,
}

/// What the `http` sink endpoint received.
#[derive(Default)]
pub struct Published {
    /// The publisher key's public half; until the test sets it, every
    /// publication is refused (as an edge that was not told the key).
    pub publisher_key: Option<[u8; 32]>,
    pub document: Option<String>,
    /// Every `seq` accepted, in arrival order.
    pub seqs: Vec<i64>,
    pub refused_signatures: usize,
}

#[derive(Clone)]
struct Shared {
    store: Arc<Mutex<BTreeMap<String, String>>>,
    fail_next_puts: Arc<AtomicUsize>,
    puts: Arc<AtomicUsize>,
    failure: Arc<Mutex<Failure>>,
    published: Arc<Mutex<Published>>,
}

pub struct FakeKv {
    pub addr: String,
    pub store: Arc<Mutex<BTreeMap<String, String>>>,
    /// The next this many PUTs answer 500.
    pub fail_next_puts: Arc<AtomicUsize>,
    pub puts: Arc<AtomicUsize>,
    pub published: Arc<Mutex<Published>>,
    failure: Arc<Mutex<Failure>>,
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One parsed request.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn read(reader: &mut BufReader<TcpStream>) -> Option<Self> {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).ok()? == 0 {
                return None;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let length = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok()?;
        Some(Self {
            method,
            path,
            headers,
            body,
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Checks a `Provii-Signature` header the way an edge would: independent
/// of the appliance's code, from the documented construction.
fn signature_ok(key: &[u8; 32], header: &str, body: &[u8]) -> Option<i64> {
    let field = |name: &str| {
        header.split(',').map(str::trim).find_map(|f| {
            f.strip_prefix(name)
                .and_then(|v| v.strip_prefix('='))
                .map(|v| v.trim_matches('"').to_owned())
        })
    };
    let (seq, t, sig) = (field("seq")?, field("t")?, field("sig")?);
    if field("keyid")? != "provii/publisher/1" {
        return None;
    }
    let mut digest = Sha256::new();
    digest.update(format!("provii.publication.v1\n{seq}\n{t}\n").as_bytes());
    digest.update(body);
    let digest = digest.finalize();
    let sig = provii_circuits::encoding::b64url_decode_array::<64>(&sig, "sig").ok()?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(key).ok()?;
    key.verify_strict(&digest, &ed25519_dalek::Signature::from_bytes(&sig))
        .ok()?;
    seq.parse().ok()
}

impl Shared {
    fn answer(&self, req: &Request) -> (u16, String) {
        if *self.failure.lock().expect("failure") == Failure::ServerError {
            return (500, r#"{"success":false}"#.to_owned());
        }
        if req.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
            return (401, r#"{"success":false}"#.to_owned());
        }
        if req.path == PUBLISH_PATH {
            return self.publish(req);
        }
        if let Some(prefix) = req.path.strip_prefix(LIST) {
            let prefix = percent_decode(prefix);
            let names: Vec<serde_json::Value> = self
                .store
                .lock()
                .expect("store")
                .keys()
                .filter(|k| k.starts_with(&prefix))
                .map(|k| serde_json::json!({ "name": k }))
                .collect();
            let reply = serde_json::json!({"result": names, "result_info": {"cursor": ""}, "success": true});
            return (200, reply.to_string());
        }
        let key = req.path.strip_prefix(PREFIX).map(percent_decode);
        match (req.method.as_str(), key) {
            ("PUT", Some(k)) => {
                self.puts.fetch_add(1, Ordering::SeqCst);
                if self.fail_next_puts.load(Ordering::SeqCst) > 0 {
                    self.fail_next_puts.fetch_sub(1, Ordering::SeqCst);
                    return (500, r#"{"success":false}"#.to_owned());
                }
                self.store
                    .lock()
                    .expect("store")
                    .insert(k, String::from_utf8_lossy(&req.body).into_owned());
                (
                    200,
                    r#"{"success":true,"errors":[],"messages":[],"result":null}"#.to_owned(),
                )
            }
            ("GET", Some(k)) => match self.store.lock().expect("store").get(&k) {
                Some(v) => (200, v.clone()),
                None => (404, r#"{"success":false}"#.to_owned()),
            },
            _ => (404, r#"{"success":false}"#.to_owned()),
        }
    }

    fn publish(&self, req: &Request) -> (u16, String) {
        let mut p = self.published.lock().expect("published");
        match req.method.as_str() {
            "GET" => match &p.document {
                Some(d) => (200, d.clone()),
                None => (404, "{}".to_owned()),
            },
            "PUT" => {
                let seq = p
                    .publisher_key
                    .and_then(|key| signature_ok(&key, req.header("provii-signature")?, &req.body));
                let Some(seq) = seq else {
                    p.refused_signatures += 1;
                    return (401, r#"{"error":"bad signature"}"#.to_owned());
                };
                if p.seqs.last().is_some_and(|last| seq < *last) {
                    return (
                        409,
                        r#"{"error":"older than what is published"}"#.to_owned(),
                    );
                }
                p.seqs.push(seq);
                p.document = Some(String::from_utf8_lossy(&req.body).into_owned());
                (204, String::new())
            }
            _ => (405, "{}".to_owned()),
        }
    }

    fn serve(&self, stream: TcpStream) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
        let mut reader = BufReader::new(stream);
        while let Some(req) = Request::read(&mut reader) {
            while *self.failure.lock().expect("failure") == Failure::Hang {
                std::thread::sleep(Duration::from_millis(50));
            }
            let (status, reply) = self.answer(&req);
            let response = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: application/json\r\n\r\n{reply}",
                reply.len()
            );
            if reader.get_mut().write_all(response.as_bytes()).is_err() {
                return;
            }
        }
    }
}

impl FakeKv {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = Shared {
            store: Arc::new(Mutex::new(BTreeMap::new())),
            fail_next_puts: Arc::new(AtomicUsize::new(0)),
            puts: Arc::new(AtomicUsize::new(0)),
            failure: Arc::new(Mutex::new(Failure::None)),
            published: Arc::new(Mutex::new(Published::default())),
        };
        let s = shared.clone();
        std::thread::spawn(move || {
            // Polls so that `Refuse` can close the port and reopen it later.
            let mut listener = Some(listener);
            loop {
                let refuse = *s.failure.lock().expect("failure") == Failure::Refuse;
                match (&listener, refuse) {
                    (Some(_), true) => listener = None,
                    (None, false) => {
                        listener = TcpListener::bind(addr).ok();
                    }
                    _ => {}
                }
                let Some(l) = &listener else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                let _ = l.set_nonblocking(true);
                match l.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let s = s.clone();
                        std::thread::spawn(move || s.serve(stream));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Self {
            addr: addr.to_string(),
            store: shared.store,
            fail_next_puts: shared.fail_next_puts,
            puts: shared.puts,
            published: shared.published,
            failure: shared.failure,
        }
    }

    pub fn fail(&self, failure: Failure) {
        *self.failure.lock().expect("failure") = failure;
    }

    pub fn get(&self, key: &str) -> Option<serde_json::Value> {
        self.store
            .lock()
            .expect("store")
            .get(key)
            .and_then(|v| serde_json::from_str(v).ok())
    }

    /// The registry as the edge verifier reads it (WIRE.md §6): one page of
    /// `issuer:` keys (more than 1000 fails closed), each value parsed as
    /// JSON with unknown fields ignored and the required fields checked.
    /// Entries by name, in the store's order.
    pub fn registry(&self) -> Result<BTreeMap<String, RegistryEntry>, String> {
        let store = self.store.lock().expect("store");
        let names: Vec<&String> = store.keys().filter(|k| k.starts_with("issuer:")).collect();
        if names.len() > 1000 {
            return Err(format!("{} entries: more than one page", names.len()));
        }
        names
            .into_iter()
            .map(|name| {
                let entry =
                    RegistryEntry::parse(&store[name]).map_err(|e| format!("{name}: {e}"))?;
                Ok((name.clone(), entry))
            })
            .collect()
    }
}

/// One registry value, with the verifier's types.
#[derive(Debug, Clone)]
pub struct RegistryEntry {
    pub issuer_kid: Option<String>,
    pub issuer_id: Option<String>,
    pub issuer_key_hash: String,
    pub verification_key: [u8; 32],
    pub organization_name: String,
    pub created_at: i64,
    pub revoked: bool,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
}

impl RegistryEntry {
    fn parse(text: &str) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let string = |f: &str| v[f].as_str().map(str::to_owned);
        let nullable_string = |f: &str| match &v[f] {
            serde_json::Value::Null => Ok(None),
            serde_json::Value::String(s) => Ok(Some(s.clone())),
            other => Err(format!("{f} is {other}, not a string or null")),
        };
        let vk = string("verification_key").ok_or("verification_key missing")?;
        let verification_key = provii_circuits::encoding::b64url_decode_array::<32>(&vk, "vk")
            .map_err(|e| e.to_string())?;
        for optional in ["organization_id", "environment"] {
            nullable_string(optional)?;
        }
        let revoked_at = match &v["revoked_at"] {
            serde_json::Value::Null => None,
            n => Some(n.as_i64().ok_or("revoked_at is not an integer")?),
        };
        Ok(Self {
            issuer_kid: string("issuer_kid"),
            issuer_id: nullable_string("issuer_id")?,
            issuer_key_hash: string("issuer_key_hash").ok_or("issuer_key_hash missing")?,
            verification_key,
            organization_name: string("organization_name").ok_or("organization_name missing")?,
            created_at: v["created_at"].as_i64().ok_or("created_at missing")?,
            revoked: v["revoked"].as_bool().ok_or("revoked missing")?,
            revoked_at,
            revoked_reason: nullable_string("revoked_reason")?,
        })
    }

    /// `Blake2s-256("provii.issuer.vk.v0" ‖ vk)`, computed here from the
    /// WIRE.md definition rather than by the appliance's code.
    pub fn expected_key_hash(&self) -> String {
        let mut h = blake2s_simd::Params::new().hash_length(32).to_state();
        h.update(b"provii.issuer.vk.v0");
        h.update(&self.verification_key);
        provii_circuits::encoding::b64url_encode(h.finalize().as_bytes())
    }
}
