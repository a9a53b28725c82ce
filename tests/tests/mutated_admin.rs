//! Mutated calls on the admin socket: valid calls of every command that
//! takes arguments, bent at random in three ways and sent to a running
//! daemon as its super_admin.
//!
//! - Arguments bent, MFA honest: the bent call is what the YubiKey
//!   approved, so authentication passes and the command's own checks must
//!   judge the arguments.
//! - The whole signed line bent as text: the reader or the MFA binding must
//!   refuse it, unless the change kept its meaning.
//! - The signed call bent as JSON, `auth` included.
//!
//! Every answer must be one JSON line with `ok` and, for a refusal, an
//! error that is the caller's fault (not a panic, storage or internal
//! error); a refusal must change nothing; whatever was accepted must leave
//! only ids, names and reasons an operator could have typed.
//!
//! The seed is random per run and printed with any failure; set
//! `PROVII_MUTATION_SEED` to replay one.

use std::collections::BTreeMap;

use provii_e2e::Appliance;
use provii_e2e::mutate::{Dice, mutate, mutate_value};
use provii_e2e::world::SoftYubiKey;
use serde_json::{Value, json};

/// Everything an admin command can change.
const STATE: &[&str] = &[
    "SELECT id, role, status, secret_generation FROM officers ORDER BY id",
    "SELECT id, display_name, status, allow_under_18, secret_generation, previous_generation, \
     previous_valid_until FROM clients ORDER BY id",
    "SELECT officer_id, locked_until FROM officer_failures ORDER BY officer_id",
    "SELECT kid, state, activated_at FROM signing_keys ORDER BY kid",
    "SELECT kid, reason FROM key_revocations ORDER BY kid",
];

/// Errors that are the daemon's fault, whatever the caller sent.
const DAEMON_FAULTS: &[&str] = &["task failed", "internal", "storage", "panicked"];

struct Campaign {
    app: Appliance,
    alice: SoftYubiKey,
    seed: u64,
    dice: Dice,
    /// (command, how it was bent, accepted) → count.
    tally: BTreeMap<(String, &'static str, bool), usize>,
}

impl Campaign {
    fn pending_key(&self) -> String {
        let created = self.app.cli_json(&["keys", "create"]);
        created["kid"].as_str().expect("kid").to_owned()
    }

    fn sign(&self, call: &Value) -> Option<Value> {
        if !call.is_object() {
            return None;
        }
        self.app.admin_signed("alice", &self.alice, call).ok()
    }

    /// Bends `call` one of the three ways, sends it and checks the answer;
    /// returns whether the call was accepted.
    fn send_bent(&mut self, call: &Value) -> bool {
        let cmd = call["cmd"].as_str().unwrap_or("?").to_owned();
        let mut bent_arguments = None;
        let (how, line) = match self.dice.below(3) {
            0 => {
                let bent = mutate_value(call, &mut self.dice);
                bent_arguments = Some(bent.clone());
                // Some bent calls get no challenge (one nested too deep,
                // say); they go unsigned and must be refused.
                let line = self.sign(&bent).unwrap_or(bent);
                ("arguments", line.to_string().into_bytes())
            }
            1 => {
                let signed = self.sign(call).expect("a challenge for a valid call");
                ("text", mutate(&signed, &mut self.dice))
            }
            _ => {
                let signed = self.sign(call).expect("a challenge for a valid call");
                (
                    "signed call",
                    mutate_value(&signed, &mut self.dice)
                        .to_string()
                        .into_bytes(),
                )
            }
        };
        let before = self.app.rows(STATE);
        let shown = String::from_utf8_lossy(&line[..line.len().min(300)]).into_owned();
        let seed = self.seed;
        let answer = self
            .app
            .admin_send(&line)
            .unwrap_or_else(|e| panic!("{cmd} ({how}) {shown:?}: {e} (seed {seed})"));
        let accepted = match (&answer["ok"], answer["error"].as_str()) {
            (Value::Bool(true), _) => true,
            (Value::Bool(false), Some(error)) if !error.is_empty() => {
                assert!(
                    !DAEMON_FAULTS.iter().any(|f| error.contains(f)),
                    "{cmd} ({how}) {shown:?}: {error} (seed {seed})"
                );
                assert_eq!(
                    self.app.rows(STATE),
                    before,
                    "{cmd} ({how}) {shown:?} was refused ({error}) but changed state (seed {seed})"
                );
                false
            }
            _ => panic!("{cmd} ({how}) {shown:?}: answer {answer} (seed {seed})"),
        };
        if let (true, Some(bent)) = (accepted, bent_arguments)
            && let Err(e) = did_what_was_asked(call, &bent, &answer["result"])
        {
            panic!("{cmd}: accepted {bent} but {e} (seed {seed})");
        }
        *self.tally.entry((cmd, how, accepted)).or_default() += 1;
        accepted
    }
}

/// An accepted call must have been read as sent, not through a default or
/// a clamp: every argument of the valid `call` still present in `bent` has
/// its type (or is null, which means "the default"), and a rotation's
/// overlap is the one asked for.
fn did_what_was_asked(call: &Value, bent: &Value, result: &Value) -> Result<(), String> {
    let kind = |v: &Value| std::mem::discriminant(v);
    for (key, valid) in call.as_object().into_iter().flatten() {
        match bent.get(key) {
            Some(v) if !v.is_null() && kind(v) != kind(valid) => {
                return Err(format!("{key} of the wrong type was taken"));
            }
            _ => {}
        }
    }
    if call["cmd"] == "clients.rotate-secret" {
        let asked = match bent.get("overlap_seconds") {
            None | Some(Value::Null) => json!(86_400),
            Some(v) => v.clone(),
        };
        if result["previous_valid_for_seconds"] != asked {
            return Err(format!(
                "the overlap is {}",
                result["previous_valid_for_seconds"]
            ));
        }
    }
    Ok(())
}

/// WIRE.md §2's id alphabet and length.
fn is_protocol_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_:./@".contains(&b))
}

/// What an operator could have typed as a name or reason.
fn is_operator_text(text: &str) -> bool {
    (1..=200).contains(&text.chars().count())
        && !text
            .chars()
            .any(|c| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c))
}

fn texts(conn: &rusqlite::Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(sql).expect("prepare");
    let rows = stmt.query_map([], |r| r.get(0)).expect("query");
    rows.collect::<Result<_, _>>().expect("rows")
}

#[test]
fn mutated_admin_calls_are_answered_and_refusals_change_nothing() {
    let (dice, seed) = Dice::from_env();
    let app = Appliance::start("admin-mutations");
    app.cli_json(&["clients", "add", "c1"]);
    app.cli_json(&["officers", "add", "o1"]);
    let alice = app.yubikey();
    let mut run = Campaign {
        app,
        alice,
        seed,
        dice,
        tally: BTreeMap::new(),
    };
    // Each add gets an id not yet taken, and each revocation a pending key
    // not yet revoked, so that every bent call reaches the command's checks.
    let (mut to_activate, mut to_revoke) = (run.pending_key(), run.pending_key());
    for n in 0..600 {
        let calls = [
            json!({"cmd": "officers.add", "id": format!("o-{n}")}),
            json!({"cmd": "admins.add", "id": format!("a-{n}"), "role": "viewer"}),
            json!({"cmd": "officers.disable", "id": "o1"}),
            json!({"cmd": "officers.enable", "id": "o1"}),
            json!({"cmd": "officers.unlock", "id": "o1"}),
            json!({"cmd": "officers.rotate-secret", "id": "o1"}),
            json!({"cmd": "clients.add", "id": format!("c-{n}"), "display_name": "Bank of Example", "allow_under_18": false}),
            json!({"cmd": "clients.disable", "id": "c1"}),
            json!({"cmd": "clients.enable", "id": "c1"}),
            json!({"cmd": "clients.rotate-secret", "id": "c1", "overlap_seconds": 60}),
            json!({"cmd": "audit.tail", "lines": 3}),
            json!({"cmd": "keys.activate", "kid": to_activate, "force": false}),
            json!({"cmd": "keys.revoke", "kid": to_revoke, "reason": "superseded"}),
            json!({"cmd": "keys.list"}),
            json!({"cmd": "status"}),
        ];
        let call = run.dice.pick(&calls).clone();
        if run.send_bent(&call) {
            match call["cmd"].as_str() {
                Some("keys.activate") => to_activate = run.pending_key(),
                Some("keys.revoke") => to_revoke = run.pending_key(),
                _ => {}
            }
        }
    }

    let Campaign { app, tally, .. } = run;
    eprintln!("answers by command, bending and acceptance: {tally:?}");
    let count = |how: &str, accepted: bool| -> usize {
        tally
            .iter()
            .filter(|((_, h, a), _)| *h == how && *a == accepted)
            .map(|(_, n)| n)
            .sum()
    };
    // The campaign reached past the reader: bent arguments were both
    // accepted and refused by the commands themselves.
    assert!(
        count("arguments", true) > 0 && count("arguments", false) > 0,
        "{tally:?} (seed {seed})"
    );

    let conn = rusqlite::Connection::open(app.db_path()).expect("db");
    for id in texts(
        &conn,
        "SELECT id FROM officers UNION ALL SELECT id FROM clients",
    ) {
        assert!(is_protocol_id(&id), "enrolled id {id:?} (seed {seed})");
    }
    for sql in [
        "SELECT display_name FROM clients",
        "SELECT reason FROM key_revocations",
    ] {
        for text in texts(&conn, sql) {
            assert!(is_operator_text(&text), "{sql}: {text:?} (seed {seed})");
        }
    }

    let honest = app
        .admin_signed("alice", &app.yubikey(), &json!({"cmd": "clients.list"}))
        .expect("challenge");
    let listed = app
        .admin_send(honest.to_string().as_bytes())
        .expect("answer");
    assert_eq!(listed["ok"], true, "{listed} (seed {seed})");
    assert_eq!(app.get("/ready").status, 200, "seed {seed}");
    let verdict = app.cli_json(&["audit", "verify"]);
    assert_eq!(verdict["ok"], true, "{verdict} (seed {seed})");
    assert!(!app.log().contains("panicked"), "seed {seed}");
}
