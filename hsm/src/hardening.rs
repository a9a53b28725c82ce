//! Process hardening for anything that holds key material: no core dumps,
//! not dumpable (no ptrace by other users, no /proc/<pid>/mem reads).

use crate::error::{HsmError, Result};

/// Sets `RLIMIT_CORE` to 0 and clears the dumpable flag. Call first thing
/// in `main`.
pub fn harden_process() -> Result<()> {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads a valid, initialised rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) } != 0 {
        return Err(HsmError::MemoryLock(format!(
            "setrlimit(RLIMIT_CORE, 0): {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: PR_SET_DUMPABLE takes one integer argument; no pointers.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(HsmError::MemoryLock(format!(
            "prctl(PR_SET_DUMPABLE, 0): {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Best effort `mlockall(MCL_CURRENT | MCL_FUTURE)`: keeps every page of the
/// process, stacks included, out of swap. Needs `LimitMEMLOCK=infinity`;
/// returns whether it took effect.
pub fn lock_all_memory() -> bool {
    // SAFETY: mlockall takes flags only.
    unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) == 0 }
}

/// Whether the dumpable flag is clear (for status and tests).
pub fn is_dumpable() -> bool {
    // SAFETY: PR_GET_DUMPABLE takes no arguments and returns the flag.
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) != 0 }
}
