//! Process hardening and locked memory (own test binary: it changes the
//! process).

use provii_hsm::LockedBytes;
use provii_hsm::hardening::{harden_process, is_dumpable};

#[test]
fn hardening_disables_core_dumps_and_dumpability() {
    harden_process().expect("harden");
    assert!(!is_dumpable());
    let mut limit = libc::rlimit {
        rlim_cur: 1,
        rlim_max: 1,
    };
    // SAFETY: getrlimit writes into the valid struct we pass.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut limit) }, 0);
    assert_eq!((limit.rlim_cur, limit.rlim_max), (0, 0));
}

#[test]
fn locked_bytes_are_locked_and_redacted() {
    let mut secret = LockedBytes::<32>::new().expect("mlock 32 bytes");
    secret.bytes_mut().copy_from_slice(&[0xab; 32]);
    assert_eq!(secret.bytes(), &[0xab; 32]);
    assert_eq!(format!("{secret:?}"), "LockedBytes([REDACTED])");
    // VmLck in /proc/self/status counts locked memory: at least one page now.
    let status = std::fs::read_to_string("/proc/self/status").expect("proc status");
    let locked_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmLck line");
    assert!(locked_kb >= 4, "VmLck is {locked_kb} kB");
}
