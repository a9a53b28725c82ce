//! Whole-system test support (DESIGN.md §6): start the real
//! `provii-appliance` against a SoftHSM token of its own on a loopback port,
//! talk to it over real sockets, and play the outside world: a software
//! YubiKey and an Issuing Party that sign exactly as the real ones do.

pub mod cpu;
pub mod http;
pub mod kv;
pub mod mutate;
pub mod p11kit;
pub mod world;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use http::Response;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace")
}

/// A binary of the workspace, built next to this test executable.
/// Runs `provii-tool` with `stdin` and parses its JSON output.
pub fn tool(args: &[&str], stdin: &[u8]) -> Value {
    use std::io::Write;
    let mut child = Command::new(binary("provii-tool"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("provii-tool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write");
    let out = child.wait_with_output().expect("provii-tool output");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("provii-tool {args:?} printed no JSON ({e}); its stderr is above")
    })
}

/// The age circuit's test parameters: the directory `scripts/test.sh`
/// generated once for the run (`PROVII_TEST_PARAMS`), or, when a test runs
/// on its own, a directory generated here on first use.
pub fn test_params() -> PathBuf {
    if let Some(dir) = std::env::var_os("PROVII_TEST_PARAMS") {
        return PathBuf::from(dir);
    }
    static GENERATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _once = GENERATING.lock().unwrap_or_else(|p| p.into_inner());
    let dir = workspace()
        .join("target/e2e")
        .join(format!("params-{}", std::process::id()));
    if !dir.join("manifest.json").exists() {
        let out = Command::new(binary("provii-tool"))
            .args(["params", "generate", "--out"])
            .arg(&dir)
            .args(["--seed", &"5a".repeat(32)])
            .output()
            .expect("provii-tool params generate");
        assert!(
            out.status.success(),
            "params generate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dir
}

pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` (scripts/test.sh does)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running appliance with its own state directory and token.
pub struct Appliance {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub addr: String,
    pub softhsm_conf: PathBuf,
    pub officer_id: String,
    pub officer_secret: [u8; 20],
    pub issuer_id: String,
    daemon: Option<Child>,
    p11kit_socket: Option<PathBuf>,
    p11kit_server: Option<p11kit::P11KitServer>,
}

impl Appliance {
    /// Provisions a token and state under `target/e2e/<name>-<pid>`, runs
    /// `init`, starts `serve` and waits until it is ready.
    pub fn start(name: &str) -> Self {
        Self::start_with(name, "")
    }

    /// As [`Appliance::start`], with extra TOML appended to the config.
    pub fn start_with(name: &str, extra_toml: &str) -> Self {
        Self::start_full(name, extra_toml, "", None)
    }

    /// As [`Appliance::start`], with extra keys for the `[http]` table; the
    /// daemon's readiness is then not awaited over plain HTTP.
    pub fn start_with_http(name: &str, http_toml: &str) -> Self {
        Self::start_full(name, "", http_toml, None)
    }

    /// Provisions and initialises with SoftHSM directly, then serves through
    /// p11-kit's client module talking to a `p11-kit server` of that token,
    /// so killing the server is an HSM outage for the daemon, and stopping
    /// it a hung HSM. `http_toml` goes into the `[http]` table.
    pub fn start_via_p11kit(name: &str, http_toml: &str) -> (Self, p11kit::P11KitServer, PathBuf) {
        let socket = std::env::temp_dir().join(format!(
            "provii-e2e-p11kit-{}-{}.sock",
            name,
            std::process::id()
        ));
        let mut app = Self::start_full(name, "", http_toml, Some(socket.clone()));
        let server = app.p11kit_server.take().expect("server started");
        (app, server, socket)
    }

    fn start_full(
        name: &str,
        extra_toml: &str,
        http_toml: &str,
        p11kit_socket: Option<PathBuf>,
    ) -> Self {
        let dir = workspace()
            .join("target/e2e")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test dir");
        let label = format!("e2e-{}", rand::random::<u32>());
        // A token directory per appliance: SoftHSM reads every token in its
        // directory at C_Initialize, and a token another test's process is
        // writing at that moment is the likely cause of the one heap
        // corruption seen in `init` ("double free or corruption", CI).
        let tokendir = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm/provii-e2e-tokens").join(&label)
        } else {
            dir.join("tokens")
        };
        let ok = Command::new("bash")
            .arg(workspace().join("softhsm/token.sh"))
            .arg(dir.join("softhsm"))
            .arg(&label)
            .env("SOFTHSM_TOKENDIR", &tokendir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("softhsm/token.sh")
            .success();
        assert!(ok, "token setup failed");
        let port = free_port();
        let issuer_id = "dmv.example.gov".to_owned();
        let write_config = |path: &Path, module: &str| {
            std::fs::write(
                path,
                format!(
                    "issuer_id = \"{issuer_id}\"\nstate_dir = \"state\"\n{extra_toml}\n[http]\nlisten = \"127.0.0.1:{port}\"\n{http_toml}\n\
                     [hsm]\nmodule = \"{module}\"\ntoken = {{ label = \"{label}\" }}\npin = {{ file = \"softhsm/user-pin\" }}\n"
                ),
            )
            .expect("config");
        };
        let config = dir.join("appliance.toml");
        let init_config = dir.join("appliance-init.toml");
        write_config(&init_config, p11kit::SOFTHSM_MODULE);
        match &p11kit_socket {
            Some(_) => write_config(&config, &p11kit::client_module().display().to_string()),
            None => write_config(&config, p11kit::SOFTHSM_MODULE),
        }
        let mut app = Self {
            softhsm_conf: dir.join("softhsm/softhsm2.conf"),
            dir,
            config,
            addr: format!("127.0.0.1:{port}"),
            officer_id: "alice".into(),
            officer_secret: [0; 20],
            issuer_id,
            daemon: None,
            p11kit_socket: p11kit_socket.clone(),
            p11kit_server: None,
        };
        let secret_file = app.dir.join("alice.secret");
        // init always talks to SoftHSM itself: p11-kit 0.24 cannot carry
        // the Ed25519 and AES-GCM mechanisms provisioning needs.
        let out = Command::new(binary("provii-appliance"))
            .arg("--config")
            .arg(&init_config)
            .env("SOFTHSM2_CONF", &app.softhsm_conf)
            .args([
                "init",
                "--officer-id",
                "alice",
                "--secret-out",
                secret_file.to_str().expect("utf-8 path"),
            ])
            .output()
            .expect("run init");
        assert!(
            out.status.success(),
            "init failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let hex = std::fs::read_to_string(&secret_file).expect("secret file");
        let secret =
            provii_circuits::encoding::hex_decode(hex.trim(), "secret").expect("hex secret");
        app.officer_secret.copy_from_slice(&secret);
        if let Some(socket) = &p11kit_socket {
            app.p11kit_server = Some(p11kit::P11KitServer::start(
                socket,
                &label,
                &app.softhsm_conf,
            ));
        }
        if http_toml.contains("tls_cert") {
            app.spawn_without_waiting();
        } else {
            app.spawn();
        }
        app
    }

    fn command(&self) -> Command {
        let mut c = Command::new(binary("provii-appliance"));
        c.arg("--config")
            .arg(&self.config)
            .env("SOFTHSM2_CONF", &self.softhsm_conf);
        if let Some(socket) = &self.p11kit_socket {
            c.env(
                "P11_KIT_SERVER_ADDRESS",
                format!("unix:path={}", socket.display()),
            );
        }
        c
    }

    /// Runs an admin subcommand as `alice`, the super_admin `init` enrolled,
    /// approved by her software YubiKey.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        self.cli_as("alice", &self.dir.join("alice.secret"), args)
    }

    /// Runs an admin subcommand as `officer`, whose YubiKey secret (hex) is
    /// in `secret_file`.
    pub fn cli_as(&self, officer: &str, secret_file: &Path, args: &[&str]) -> std::process::Output {
        let responder = format!("soft:{}", secret_file.display());
        self.command()
            .args(["--as", officer, "--responder", &responder])
            .args(args)
            .output()
            .expect("run provii-appliance")
    }

    /// Runs an admin subcommand with `--json` and returns the parsed answer.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        let out = self.cli(&with_json);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON from --json")
    }

    /// Asks to activate `kid` until the daemon allows it (its publication
    /// confirmed for the lead time); fails the test after 30 s.
    pub fn activate_when_allowed(&self, kid: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !self.cli(&["keys", "activate", kid]).status.success() {
            assert!(
                std::time::Instant::now() < deadline,
                "{kid} never became activatable"
            );
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }

    /// Starts `serve` without waiting for it.
    pub fn spawn_without_waiting(&mut self) {
        let log = std::fs::File::create(self.dir.join("daemon.log")).expect("log file");
        let child = self
            .command()
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the daemon");
        self.daemon = Some(child);
    }

    /// Starts `serve` and waits for `/ready`.
    pub fn spawn(&mut self) {
        self.spawn_without_waiting();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if http::get(&self.addr, "/ready").is_ok_and(|r| r.status == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "daemon not ready: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemon's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Child::id)
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends the daemon SIGTERM; returns it to be waited for.
    fn terminate(&mut self) -> Child {
        let c = self.daemon.take().expect("daemon running");
        // The kill(1) tool sends SIGTERM without any unsafe code here.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        c
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.terminate();
        c.wait().expect("daemon exit")
    }

    /// SIGTERM, and its exit status if it exits within `limit`.
    pub fn stop_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let mut c = self.terminate();
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.join("state/appliance.db")
    }

    pub fn post(&self, path: &str, body: &Value) -> Response {
        http::post_json(&self.addr, path, &body.to_string()).expect("POST")
    }

    pub fn get(&self, path: &str) -> Response {
        http::get(&self.addr, path).expect("GET")
    }

    /// Sends `line` (a newline is added) to the admin socket and returns
    /// the daemon's one-line answer as JSON.
    pub fn admin_send(&self, line: &[u8]) -> Result<Value, String> {
        use std::io::{BufRead, BufReader, Write};
        let mut s = std::os::unix::net::UnixStream::connect(self.dir.join("state/admin.sock"))
            .map_err(|e| format!("admin socket: {e}"))?;
        s.write_all(&[line, b"\n"].concat())
            .map_err(|e| format!("write: {e}"))?;
        let mut answer = String::new();
        BufReader::new(s)
            .read_line(&mut answer)
            .map_err(|e| format!("read: {e}"))?;
        serde_json::from_str(&answer).map_err(|_| format!("not one JSON line: {answer:?}"))
    }

    /// `request` with the `auth` member an admin call needs: a challenge
    /// bound to exactly this request, answered by `officer`'s `key`. The
    /// error is the daemon's answer when it issued no challenge.
    pub fn admin_signed(
        &self,
        officer: &str,
        key: &world::SoftYubiKey,
        request: &Value,
    ) -> Result<Value, String> {
        let challenge =
            serde_json::json!({"cmd": "auth.challenge", "officer": officer, "request": request});
        let ch = self.admin_send(challenge.to_string().as_bytes())?;
        let Some(challenge) = ch["result"]["challenge"].as_str() else {
            return Err(ch.to_string());
        };
        let response = key.respond(challenge);
        let mut r = request.clone();
        r["auth"] = serde_json::json!({"officer": officer, "challenge_id": ch["result"]["challenge_id"], "response": response});
        Ok(r)
    }

    /// The rows `queries` return, one line per row with every column: what
    /// a test compares before and after a refusal.
    pub fn rows(&self, queries: &[&str]) -> String {
        let conn = rusqlite::Connection::open(self.db_path()).expect("db");
        let mut out = String::new();
        for sql in queries {
            let mut stmt = conn.prepare(sql).expect("prepare");
            let columns = stmt.column_count();
            let mut rows = stmt.query([]).expect("query");
            while let Some(row) = rows.next().expect("row") {
                for i in 0..columns {
                    let v: rusqlite::types::Value = row.get(i).expect("column");
                    out.push_str(&format!("{v:?}|"));
                }
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        self.kill();
    }
}
