//! SoftHSM served by `p11-kit server`, for outage tests: killing it is an
//! HSM outage for every process that loaded p11-kit's client module.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// p11-kit's client module (Debian package p11-kit-modules).
pub fn client_module() -> PathBuf {
    [
        "/usr/lib/x86_64-linux-gnu/pkcs11",
        "/usr/lib/aarch64-linux-gnu/pkcs11",
        "/usr/lib/pkcs11",
        "/usr/lib64/pkcs11",
    ]
    .iter()
    .map(|d| PathBuf::from(d).join("p11-kit-client.so"))
    .find(|p| p.exists())
    .expect("p11-kit-client.so (Debian package p11-kit-modules; scripts/test.sh installs it)")
}

pub struct P11KitServer {
    child: Child,
}

impl P11KitServer {
    /// Serves token `label` of the SoftHSM configured by `softhsm_conf` on
    /// the Unix socket `socket`, and waits until the socket exists.
    pub fn start(socket: &Path, label: &str, softhsm_conf: &Path) -> Self {
        let _ = std::fs::remove_file(socket);
        // Its own process group: p11-kit forks a process per client
        // connection, and an outage has to take those down too.
        let child = Command::new("p11-kit")
            .process_group(0)
            .args(["server", "-f", "-n"])
            .arg(socket)
            .args(["--provider", SOFTHSM_MODULE])
            .arg(format!("pkcs11:token={label}"))
            .env("SOFTHSM2_CONF", softhsm_conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start p11-kit server (Debian package p11-kit)");
        // The socket file appears at bind(), before listen(): wait until a
        // connection is accepted, or a client may see no token at all.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "p11-kit server is not accepting connections"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child }
    }

    /// Kills the server and every per-connection process it forked.
    pub fn kill(self) {
        drop(self);
    }

    /// Stops the server and its per-connection processes (`SIGSTOP`): calls
    /// in flight and new ones wait for an answer that does not come, as
    /// with a network HSM behind a dead link.
    pub fn freeze(&self) {
        assert!(self.signal_group("-STOP"), "SIGSTOP the p11-kit server");
    }

    /// Lets a frozen server answer again (`SIGCONT`).
    pub fn thaw(&self) {
        assert!(self.signal_group("-CONT"), "SIGCONT the p11-kit server");
    }

    /// Whether `kill(1)` delivered `signal` to the server's process group.
    fn signal_group(&self, signal: &str) -> bool {
        // kill(1) with a negative pid signals the whole process group.
        Command::new("kill")
            .args([signal, "--", &format!("-{}", self.child.id())])
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for P11KitServer {
    fn drop(&mut self) {
        self.signal_group("-KILL");
        let _ = self.child.wait();
    }
}
