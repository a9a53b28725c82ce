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
use provii_e2e::mutate::{Dice, mutate};
use provii_e2e::world::{IssuingParty, good_r_bits, now, random_hex32};
use provii_e2e::{Appliance, Response, http};
use serde_json::{Value, json};

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
    let (dice, seed) = Dice::from_env();
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
        dice,
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
