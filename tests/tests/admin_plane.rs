//! The admin plane: every subcommand as every role, MFA missing, wrong,
//! replayed or used for another request, and the officer enrolment round
//! trip. Only the allowed combinations succeed; each refusal is audited and
//! changes nothing.

use std::path::PathBuf;

use provii_circuits::encoding::hex_decode;
use provii_e2e::Appliance;
use provii_e2e::world::SoftYubiKey;
use serde_json::{Value, json};

/// An enrolled person: id and the file holding their YubiKey secret.
struct Person {
    id: String,
    secret_file: PathBuf,
}

fn enrol(app: &Appliance, args: &[&str], id: &str) -> Person {
    let v = app.cli_json(args);
    let secret_file = app.dir.join(format!("{id}.secret"));
    std::fs::write(
        &secret_file,
        v["secret"].as_str().expect("secret shown once"),
    )
    .expect("secret file");
    Person {
        id: id.to_owned(),
        secret_file,
    }
}

/// Officers and clients as they stand (what a refusal must not change).
fn snapshot(app: &Appliance) -> String {
    app.rows(&[
        "SELECT id, role, status, secret_generation FROM officers ORDER BY id",
        "SELECT id, status, secret_generation, previous_generation FROM clients ORDER BY id",
        "SELECT COUNT(*) FROM officer_failures",
    ])
}

fn refusals(app: &Appliance) -> usize {
    String::from_utf8_lossy(&app.cli(&["audit", "export"]).stdout)
        .matches("\"admin.refused\"")
        .count()
}

#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum Role {
    Officer,
    Viewer,
    Admin,
    SuperAdmin,
}

#[test]
fn every_subcommand_as_every_role() {
    let app = Appliance::start("rbac");
    let people = [
        (
            Role::Officer,
            enrol(&app, &["officers", "add", "olga"], "olga"),
        ),
        (
            Role::Viewer,
            enrol(&app, &["admins", "add", "vic", "--role", "viewer"], "vic"),
        ),
        (
            Role::Admin,
            enrol(&app, &["admins", "add", "ada", "--role", "admin"], "ada"),
        ),
        (
            Role::SuperAdmin,
            enrol(
                &app,
                &["admins", "add", "sam", "--role", "super_admin"],
                "sam",
            ),
        ),
    ];
    // Targets the mutating commands act on.
    enrol(
        &app,
        &["officers", "add", "target-officer"],
        "target-officer",
    );
    app.enrol_client("target-client", false);

    for (role, person) in &people {
        let victim_admin = format!("victim-{}", person.id);
        enrol(
            &app,
            &["admins", "add", &victim_admin, "--role", "viewer"],
            &victim_admin,
        );
        let new_officer = format!("new-officer-{}", person.id);
        let new_client = format!("new-client-{}", person.id);
        let new_admin = format!("new-admin-{}", person.id);
        let matrix: Vec<(Vec<&str>, Role)> = vec![
            (vec!["status"], Role::Viewer),
            (vec!["officers", "list"], Role::Viewer),
            (vec!["clients", "list"], Role::Viewer),
            (vec!["admins", "list"], Role::Viewer),
            (vec!["audit", "verify"], Role::Viewer),
            (vec!["audit", "export"], Role::Viewer),
            (vec!["audit", "tail"], Role::Viewer),
            (vec!["hsm", "status"], Role::Viewer),
            (vec!["hsm", "inventory"], Role::Viewer),
            (vec!["keys", "list"], Role::Viewer),
            (vec!["officers", "add", &new_officer], Role::Admin),
            (vec!["officers", "disable", "target-officer"], Role::Admin),
            (vec!["officers", "enable", "target-officer"], Role::Admin),
            (
                vec!["officers", "rotate-secret", "target-officer"],
                Role::Admin,
            ),
            (vec!["officers", "unlock", "target-officer"], Role::Admin),
            (vec!["clients", "add", &new_client], Role::Admin),
            (vec!["clients", "disable", "target-client"], Role::Admin),
            (vec!["clients", "enable", "target-client"], Role::Admin),
            (
                vec!["clients", "rotate-secret", "target-client"],
                Role::Admin,
            ),
            (
                vec!["admins", "add", &new_admin, "--role", "viewer"],
                Role::SuperAdmin,
            ),
            (vec!["admins", "disable", &victim_admin], Role::SuperAdmin),
            (vec!["keys", "create"], Role::SuperAdmin),
            (vec!["keys", "rotate-attestation"], Role::SuperAdmin),
        ];
        for (args, needed) in matrix {
            let allowed = *role >= needed && *role != Role::Officer;
            let before = (snapshot(&app), refusals(&app));
            let out = app.cli_as(&person.id, &person.secret_file, &args);
            assert_eq!(
                out.status.success(),
                allowed,
                "{} running {args:?}: {}",
                person.id,
                String::from_utf8_lossy(&out.stderr)
            );
            if !allowed {
                assert_eq!(snapshot(&app), before.0, "a refused {args:?} changed state");
                assert_eq!(
                    refusals(&app),
                    before.1 + 1,
                    "the refusal of {args:?} by {} was not audited",
                    person.id
                );
            }
        }
    }
    // An admin may not act on admins: disabling a super_admin needs a super_admin.
    let (_, ada) = &people[2];
    let out = app.cli_as(&ada.id, &ada.secret_file, &["officers", "disable", "sam"]);
    assert!(!out.status.success(), "an admin disabled a super_admin");
}

fn send(app: &Appliance, request: &Value) -> Value {
    app.admin_send(request.to_string().as_bytes())
        .expect("admin answer")
}

#[test]
fn missing_wrong_replayed_and_misapplied_mfa_are_refused_and_audited() {
    let app = Appliance::start("mfa");
    let alice = app.yubikey();
    let before = refusals(&app);
    let add = json!({"cmd": "clients.add", "id": "c1"});

    // Challenges go to any id, enrolled or not (existence is not
    // revealed), but only to something that could be one.
    for (officer, issued) in [("nobody", true), (&*"x".repeat(129), false), ("a b", false)] {
        let ch = send(
            &app,
            &json!({"cmd": "auth.challenge", "officer": officer, "request": add}),
        );
        assert_eq!(ch["ok"], issued, "{officer}: {ch}");
    }

    let missing = send(&app, &add);
    assert_eq!(missing["ok"], false);
    assert!(
        missing["error"].as_str().unwrap_or("").contains("MFA"),
        "{missing}"
    );

    let wrong = app
        .admin_signed("alice", &SoftYubiKey { secret: [7; 20] }, &add)
        .expect("signed");
    assert_eq!(send(&app, &wrong)["ok"], false);

    let good = app.admin_signed("alice", &alice, &add).expect("signed");
    assert_eq!(send(&app, &good)["ok"], true, "a correct request succeeds");
    let replay = send(&app, &good);
    assert_eq!(replay["ok"], false, "a replayed MFA response must not work");

    // A touch approves one request: its challenge cannot carry another.
    let approved = app
        .admin_signed("alice", &alice, &json!({"cmd": "clients.list"}))
        .expect("signed");
    let mut other = json!({"cmd": "clients.add", "id": "c2"});
    other["auth"] = approved["auth"].clone();
    let misapplied = send(&app, &other);
    assert_eq!(misapplied["ok"], false);
    assert!(
        misapplied["error"]
            .as_str()
            .unwrap_or("")
            .contains("different request"),
        "{misapplied}"
    );

    let clients: Vec<String> = app
        .cli_json(&["clients", "list"])
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["id"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        clients,
        ["c1"],
        "only the approved request changed anything"
    );
    assert_eq!(refusals(&app), before + 4);
}

#[test]
fn officer_enrolment_round_trip() {
    let app = Appliance::start("enrolment");
    let out = app.cli(&["officers", "add", "carol"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let hex = text
        .split_whitespace()
        .find(|w| w.len() == 40 && w.bytes().all(|b| b.is_ascii_hexdigit()))
        .expect("secret printed");
    assert!(
        text.contains(&format!("ykman otp chalresp --touch 2 {hex}")),
        "{text}"
    );
    // Shown once: nothing lists it again.
    assert!(!String::from_utf8_lossy(&app.cli(&["officers", "list"]).stdout).contains(hex));
    let mut secret = [0u8; 20];
    secret.copy_from_slice(&hex_decode(hex, "secret").expect("hex"));
    let old_key = SoftYubiKey { secret };
    assert_eq!(
        app.officer_attest_as("carol", &old_key, 9000).status,
        201,
        "the programmed key attests"
    );

    let rotated = app.cli_json(&["officers", "rotate-secret", "carol"]);
    let mut secret = [0u8; 20];
    secret.copy_from_slice(
        &hex_decode(rotated["secret"].as_str().expect("secret"), "s").expect("hex"),
    );
    let new_key = SoftYubiKey { secret };
    assert_eq!(
        app.officer_attest_as("carol", &old_key, 9000).status,
        401,
        "the old secret stops working"
    );
    assert_eq!(app.officer_attest_as("carol", &new_key, 9000).status, 201);

    app.cli_json(&["officers", "disable", "carol"]);
    assert_eq!(
        app.officer_attest_as("carol", &new_key, 9000).status,
        401,
        "a disabled officer cannot attest"
    );
}

#[test]
fn names_and_reasons_no_operator_could_type_are_refused() {
    let app = Appliance::start("operator-text");
    let alice = app.yubikey();
    let pending = app.cli_json(&["keys", "create"])["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    let before = snapshot(&app);
    let long = "x".repeat(201);
    for text in [
        "",
        &long,
        "a\nb",
        "\u{1b}[2J",
        "invoice\u{202e}fdp.exe",
        "nul\u{0}",
    ] {
        for (request, key) in [
            (
                json!({"cmd": "clients.add", "id": "c9", "display_name": text}),
                "display_name",
            ),
            (
                json!({"cmd": "keys.revoke", "kid": pending, "reason": text}),
                "reason",
            ),
        ] {
            let answer = send(
                &app,
                &app.admin_signed("alice", &alice, &request).expect("signed"),
            );
            assert_eq!(answer["ok"], false, "{request}");
            assert!(
                answer["error"].as_str().unwrap_or("").contains(key),
                "{answer}"
            );
        }
    }
    assert_eq!(snapshot(&app), before);
    let keys = app.cli_json(&["keys", "list"]);
    let state = keys
        .as_array()
        .and_then(|ks| ks.iter().find(|k| k["kid"] == pending.as_str()))
        .map(|k| k["state"].clone());
    assert_eq!(state, Some(json!("pending")), "{keys}");
    // A name in another script, at the limit, is fine.
    let name = "é".repeat(200);
    let add = json!({"cmd": "clients.add", "id": "c9", "display_name": name});
    let answer = send(
        &app,
        &app.admin_signed("alice", &alice, &add).expect("signed"),
    );
    assert_eq!(answer["ok"], true, "{answer}");
}

#[test]
fn silent_callers_are_timed_out_and_a_crowd_is_told_the_socket_is_busy() {
    use std::io::{BufRead, BufReader};
    let app = Appliance::start("admin-crowd");
    // The daemon serves 16 calls at once (admin::MAX_CONNECTIONS) and
    // accepts in connection order, so these hold every slot.
    let socket = app.dir.join("state/admin.sock");
    let silent: Vec<_> = (0..16)
        .map(|_| std::os::unix::net::UnixStream::connect(&socket).expect("connect"))
        .collect();
    let busy = app.admin_send(br#"{"cmd": "status"}"#).expect("answer");
    assert_eq!(busy["ok"], false, "{busy}");
    assert!(
        busy["error"].as_str().unwrap_or("").contains("busy"),
        "{busy}"
    );

    for s in silent {
        s.set_read_timeout(Some(std::time::Duration::from_secs(120)))
            .expect("timeout");
        let mut line = String::new();
        BufReader::new(s)
            .read_line(&mut line)
            .expect("an answer, not a hang");
        let answer: Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(answer["ok"], false, "{answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap_or("")
                .contains("no request line"),
            "{answer}"
        );
    }
    let list = app
        .admin_signed("alice", &app.yubikey(), &json!({"cmd": "clients.list"}))
        .expect("a challenge once the slots are free");
    assert_eq!(send(&app, &list)["ok"], true);
}
