//! Mutated requests at the real socket: valid bodies for every public POST
//! route, bent at random (bytes flipped, cut, repeated; values swapped for
//! other types, extremes and nesting; keys dropped, added and doubled), sent
//! to a running daemon. Every answer must be a status the route documents
//! with WIRE.md's error envelope, never a 5xx, and a refused request must
//! change nothing: the auth nonce or attestation it carried still works
//! afterwards. Unit tests and the fuzz targets cover the parsers one at a
//! time; this covers the way the daemon puts them together.
//!
//! The seed is random per run and printed with any failure; set
//! `PROVII_MUTATION_SEED` to replay one.

use std::collections::BTreeMap;

use provii_circuits::encoding::b64url_encode;
use provii_e2e::world::{IssuingParty, good_r_bits, now, random_hex32};
use provii_e2e::{Appliance, Response, http};
use serde_json::{Value, json};

/// SplitMix64: small, seedable, and enough to pick mutations.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0; the bias is irrelevant here).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Values that stress a JSON reader or a field's range and type.
fn odd_value(dice: &mut Dice) -> Value {
    let deep = (0..200).fold(json!(0), |v, _| json!([v]));
    let values = [
        Value::Null,
        json!(true),
        json!(-1),
        json!(0),
        json!(1.5),
        json!(1e308),
        json!(-1e308),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(""),
        json!("\u{0}"),
        json!("é\u{202e}"),
        json!("0".repeat(64)),
        json!("A".repeat(4096)),
        json!([]),
        json!({}),
        deep,
    ];
    dice.pick(&values).clone()
}

/// Bytes and tokens that break JSON's grammar in different places.
const ODD_TOKENS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"-0",
    b"1e999",
    b"99999999999999999999999",
    b"\"\\ud800\"",
    b"\"\\u0000\"",
    b"\xff\xfe",
    b"\xc3",
    b"\x00",
    b" \t\r\n",
    b"/*x*/",
];

/// Every path to a value inside `v` (object keys and array indices).
fn paths(v: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                at.push(k.clone());
                paths(child, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                at.push(i.to_string());
                paths(child, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn at_path<'a>(v: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, step| match v {
        Value::Object(m) => m.get_mut(step),
        Value::Array(a) => step.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
        _ => None,
    })
}

/// A value of the same type, one step away: a number off by one, a string
/// with one character changed. These pass the reader and meet the checks
/// behind it (signatures, HMACs, ranges).
fn nudge(v: &Value, dice: &mut Dice) -> Value {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(|i| json!(i.wrapping_add(if dice.below(2) == 0 { 1 } else { -1 })))
            .unwrap_or_else(|| v.clone()),
        Value::String(s) if !s.is_empty() => {
            let mut chars: Vec<char> = s.chars().collect();
            let i = dice.below(chars.len());
            chars[i] = *dice.pick(&['0', '9', 'a', 'f', 'g', 'A', '-', '_', '=', '+']);
            json!(chars.into_iter().collect::<String>())
        }
        _ => v.clone(),
    }
}

/// One structural change to a copy of `body`: a value nudged or swapped, a
/// key dropped or added.
fn mutate_value(body: &Value, dice: &mut Dice) -> Value {
    let mut v = body.clone();
    let mut all = Vec::new();
    paths(&v, &mut Vec::new(), &mut all);
    let path = dice.pick(&all).clone();
    match dice.below(4) {
        3 => {
            if let Some(slot) = at_path(&mut v, &path) {
                *slot = nudge(slot, dice);
            }
        }
        0 => {
            if let Some(slot) = at_path(&mut v, &path) {
                *slot = odd_value(dice);
            }
        }
        1 => {
            if let Some((last, parent)) = path.split_last()
                && let Some(Value::Object(m)) = at_path(&mut v, parent)
            {
                m.remove(last);
            }
        }
        _ => {
            let value = odd_value(dice);
            if let Some(Value::Object(m)) = at_path(&mut v, &path) {
                m.insert("unexpected".into(), value);
            } else if let Value::Object(m) = &mut v {
                m.insert("dob_days".into(), value);
            }
        }
    }
    v
}

/// One change to the text itself.
fn mutate_bytes(text: &mut Vec<u8>, dice: &mut Dice) {
    let len = text.len().max(1);
    let at = dice.below(len).min(text.len());
    match dice.below(6) {
        0 => {
            if let Some(b) = text.get_mut(at) {
                *b ^= 1 << dice.below(8);
            }
        }
        1 => {
            let end = (at + 1 + dice.below(8)).min(text.len());
            text.drain(at..end);
        }
        2 => {
            let end = (at + 1 + dice.below(16)).min(text.len());
            let span = text[at..end].to_vec();
            let to = dice.below(text.len() + 1);
            text.splice(to..to, span);
        }
        3 => text.truncate(at),
        4 => {
            let token = dice.pick(ODD_TOKENS);
            text.splice(at..at, token.iter().copied());
        }
        _ => {
            // A key given twice: the first value or the second would be a
            // choice; the daemon must refuse instead.
            if let Some(open) = text.iter().position(|b| *b == b'{') {
                text.splice(open + 1..open + 1, br#""dob_days":1,"#.iter().copied());
            }
        }
    }
}

/// A bent copy of `body`: one to three changes, to its structure or text.
/// One of them, laying the JSON out with indents and newlines, keeps its
/// meaning, so some bent requests must still be served.
fn mutate(body: &Value, dice: &mut Dice) -> Vec<u8> {
    let mut v = body.clone();
    let mut text = None::<Vec<u8>>;
    for _ in 0..1 + dice.below(3) {
        match (&mut text, dice.below(3)) {
            (None, 0) => v = mutate_value(&v, dice),
            (None, 1) => {
                let mut t = v.to_string().into_bytes();
                mutate_bytes(&mut t, dice);
                text = Some(t);
            }
            (None, _) => text = serde_json::to_vec_pretty(&v).ok(),
            (Some(t), _) => mutate_bytes(t, dice),
        }
    }
    text.unwrap_or_else(|| v.to_string().into_bytes())
}

/// What one route may answer to a bent request.
struct Route {
    name: &'static str,
    /// The deployed path and the spec's alias (the same for the challenge).
    paths: (&'static str, &'static str),
    served: u16,
    allowed: &'static [u16],
}

const CHALLENGE: Route = Route {
    name: "challenge",
    paths: ("/v1/challenge", "/v1/challenge"),
    served: 201,
    allowed: &[201, 400, 401],
};
const OFFICER_ATTESTATION: Route = Route {
    name: "officer attestation",
    paths: ("/v1/attestation/create", "/v0/attestation/create"),
    served: 201,
    allowed: &[201, 400, 401],
};
const CLIENT_ATTESTATION: Route = Route {
    name: "client attestation",
    ..OFFICER_ATTESTATION
};
const ISSUANCE: Route = Route {
    name: "issuance",
    paths: ("/v1/issuance/blind", "/v0/issuance/blind"),
    served: 200,
    allowed: &[200, 400, 401, 403],
};

type Tally = BTreeMap<(&'static str, u16), usize>;

/// One run: the daemon, the seed it replays from, and what it answered.
struct Campaign {
    app: Appliance,
    seed: u64,
    dice: Dice,
    tally: Tally,
}

impl Campaign {
    /// Sends a bent copy of `body` to the route or its alias (at random)
    /// and checks the answer.
    fn send_bent(&mut self, route: &Route, body: &Value) -> Response {
        let bent = mutate(body, &mut self.dice);
        let (primary, alias) = route.paths;
        let path = if self.dice.below(2) == 0 {
            primary
        } else {
            alias
        };
        let r = match http::request(
            &self.app.addr,
            "POST",
            path,
            Some("application/json"),
            &bent,
        ) {
            Ok(r) => r,
            Err(e) => panic!(
                "{e}: {path} {:?} (seed {})",
                String::from_utf8_lossy(&bent),
                self.seed
            ),
        };
        self.check_answer(route, &r, &bent);
        r
    }

    /// Sends a bent copy of `body`, then `body` itself: that is served
    /// unless the bent copy was (then 409, a replay), so a refusal spent
    /// nothing.
    fn bend_then_send_unbent(&mut self, route: &Route, body: &Value) {
        let r = self.send_bent(route, body);
        let again = self.app.post(route.paths.0, body);
        let expected = if r.status == route.served {
            409
        } else {
            route.served
        };
        assert_eq!(
            again.status,
            expected,
            "{}: the request unbent, after its bent copy got {} (seed {}): {:?}",
            route.name,
            r.status,
            self.seed,
            again.json()
        );
    }

    /// The status must be one the route documents, and a refusal must
    /// carry WIRE.md's envelope with the code that belongs to its status.
    fn check_answer(&mut self, route: &Route, r: &Response, sent: &[u8]) {
        let (name, seed) = (route.name, self.seed);
        let shown = String::from_utf8_lossy(&sent[..sent.len().min(300)]).into_owned();
        assert!(
            route.allowed.contains(&r.status),
            "{name}: status {} to {shown:?} (seed {seed}): {:?}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        assert!(
            r.header("x-request-id").is_some(),
            "{name}: no X-Request-ID (seed {seed})"
        );
        if r.status >= 400 {
            let body = r.json();
            let keys: Vec<&str> = body
                .as_object()
                .map(|m| m.keys().map(String::as_str).collect())
                .unwrap_or_default();
            assert_eq!(
                keys,
                ["error", "code"],
                "{name}: envelope {body} (seed {seed})"
            );
            let code = body["code"].as_str().unwrap_or("");
            let expected = match r.status {
                400 => "BAD_REQUEST",
                401 => "UNAUTHORIZED",
                403 => "FORBIDDEN",
                _ => "",
            };
            assert_eq!(
                code, expected,
                "{name}: code for {} (seed {seed})",
                r.status
            );
        }
        *self.tally.entry((name, r.status)).or_default() += 1;
    }
}

#[test]
fn mutated_requests_get_documented_refusals_and_change_nothing() {
    let seed = std::env::var("PROVII_MUTATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("PROVII_MUTATION_SEED={seed}");
    // Limits out of the way, so that every request reaches the checks the
    // mutation aims at instead of a lockout or a 429.
    let app = Appliance::start_with(
        "mutations",
        "[officers]\nlockout_failures = 1000000\nmax_failures_per_source_per_hour = 1000000\n\
         [rate_limits]\nper_source_per_minute = 1000000\nper_client_per_minute = 1000000\n\
         per_officer_per_minute = 1000000\nglobal_per_second = 1000000\n",
    );
    let bank = app.enrol_client("bank-m", false);
    let mut run = Campaign {
        app,
        seed,
        dice: Dice(seed),
        tally: Tally::new(),
    };
    let mut issued = 0;

    for _ in 0..100 {
        let body =
            json!({"officer_id": "alice", "intent": {"dob_days": 9000, "nonce": random_hex32()}});
        run.send_bent(&CHALLENGE, &body);
    }

    for _ in 0..100 {
        let (dob, nonce) = (9000, random_hex32());
        let ch = run.app.post(
            "/v1/challenge",
            &json!({"officer_id": "alice", "intent": {"dob_days": dob, "nonce": nonce}}),
        );
        assert_eq!(ch.status, 201, "challenge: {:?}", ch.json());
        let ch = ch.json();
        let response = run
            .app
            .yubikey()
            .respond(ch["challenge"].as_str().expect("challenge"));
        let body = json!({"dob_days": dob, "authorizer": {"format": "yubikey", "keyId": "alice",
            "challengeId": ch["challenge_id"], "timestamp": now(), "hmac": response, "nonce": nonce}});
        run.send_bent(&OFFICER_ATTESTATION, &body);
    }

    for _ in 0..200 {
        // A refusal left the auth nonce unspent; an acceptance spent it.
        run.bend_then_send_unbent(
            &CLIENT_ATTESTATION,
            &bank.request(7300, now(), &random_hex32()),
        );
    }

    for _ in 0..200 {
        let attestation = client_attestation(&run.app, &bank);
        let body = json!({"attestation": attestation, "r_bits": b64url_encode(&good_r_bits()),
            "schema": "provii.age/0", "validity_days": 365});
        // A refusal left the attestation unspent; an issuance spent it.
        run.bend_then_send_unbent(&ISSUANCE, &body);
        issued += 1;
    }

    let Campaign { app, tally, .. } = run;
    eprintln!("answers by route and status: {tally:?}");
    // The bent requests reached past the JSON reader: some kept their
    // meaning and were served, and the client's HMAC check refused some.
    let count = |route: &Route, status: u16| tally.get(&(route.name, status)).copied();
    assert!(
        count(&CLIENT_ATTESTATION, 201).is_some()
            && count(&ISSUANCE, 200).is_some()
            && count(&CLIENT_ATTESTATION, 401).is_some(),
        "{tally:?} (seed {seed})"
    );
    assert_eq!(app.get("/ready").status, 200, "seed {seed}");
    let verdict = app.cli_json(&["audit", "verify"]);
    assert_eq!(verdict["ok"], true, "{verdict} (seed {seed})");
    let audit = String::from_utf8(app.cli(&["audit", "export"]).stdout).expect("utf-8");
    assert_eq!(
        audit.matches("\"credential.issued\"").count(),
        issued,
        "one credential per attestation, whichever copy earned it (seed {seed})"
    );
    assert!(!app.log().contains("panicked"), "seed {seed}");
}

fn client_attestation(app: &Appliance, bank: &IssuingParty) -> String {
    let r = app.post(
        "/v1/attestation/create",
        &bank.request(7300, now(), &random_hex32()),
    );
    assert_eq!(r.status, 201, "attestation: {:?}", r.json());
    r.json()["attestation"]
        .as_str()
        .expect("attestation")
        .to_owned()
}
