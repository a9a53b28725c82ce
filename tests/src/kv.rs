//! A local stand-in for the part of Cloudflare's Workers KV API the
//! publisher uses (WIRE.md §6): `PUT`/`GET .../values/{key}` with a bearer
//! token, over a real socket, with injectable failures.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub struct FakeKv {
    pub addr: String,
    pub store: Arc<Mutex<BTreeMap<String, String>>>,
    /// The next this many PUTs answer 500.
    pub fail_next_puts: Arc<AtomicUsize>,
    pub puts: Arc<AtomicUsize>,
}

pub const TOKEN: &str = "test-token-123";
pub const PREFIX: &str = "/client/v4/accounts/acc1/storage/kv/namespaces/ns1/values/";

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

impl FakeKv {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let store = Arc::new(Mutex::new(BTreeMap::new()));
        let fail_next_puts = Arc::new(AtomicUsize::new(0));
        let puts = Arc::new(AtomicUsize::new(0));
        let (s, f, p) = (store.clone(), fail_next_puts.clone(), puts.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (s, f, p) = (s.clone(), f.clone(), p.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut parts = line.split_whitespace();
                        let (method, path) = (
                            parts.next().unwrap_or("").to_owned(),
                            parts.next().unwrap_or("").to_owned(),
                        );
                        let (mut length, mut authorised) = (0usize, false);
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            let h = h.trim_end();
                            if h.is_empty() {
                                break;
                            }
                            if let Some((k, v)) = h.split_once(':') {
                                if k.eq_ignore_ascii_case("content-length") {
                                    length = v.trim().parse().unwrap_or(0);
                                }
                                if k.eq_ignore_ascii_case("authorization")
                                    && v.trim() == format!("Bearer {TOKEN}")
                                {
                                    authorised = true;
                                }
                            }
                        }
                        let mut body = vec![0; length];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        let key = path.strip_prefix(PREFIX).map(percent_decode);
                        let (status, reply) = match (authorised, method.as_str(), key) {
                            (false, _, _) => (401, r#"{"success":false}"#.to_owned()),
                            (true, "PUT", Some(k)) => {
                                p.fetch_add(1, Ordering::SeqCst);
                                if f.load(Ordering::SeqCst) > 0 {
                                    f.fetch_sub(1, Ordering::SeqCst);
                                    (500, r#"{"success":false}"#.to_owned())
                                } else {
                                    s.lock()
                                        .expect("store")
                                        .insert(k, String::from_utf8_lossy(&body).into_owned());
                                    (200, r#"{"success":true,"errors":[],"messages":[],"result":null}"#.to_owned())
                                }
                            }
                            (true, "GET", Some(k)) => match s.lock().expect("store").get(&k) {
                                Some(v) => (200, v.clone()),
                                None => (404, r#"{"success":false}"#.to_owned()),
                            },
                            _ => (404, r#"{"success":false}"#.to_owned()),
                        };
                        let response = format!(
                            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: application/json\r\n\r\n{reply}",
                            reply.len()
                        );
                        if reader.get_mut().write_all(response.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            store,
            fail_next_puts,
            puts,
        }
    }

    pub fn get(&self, key: &str) -> Option<serde_json::Value> {
        self.store
            .lock()
            .expect("store")
            .get(key)
            .and_then(|v| serde_json::from_str(v).ok())
    }
}
