//! Threads that call into the PKCS#11 module, joined before the process
//! exits.
//!
//! SoftHSM runs OpenSSL inside this process, and OpenSSL keeps per-thread
//! state (a random generator per thread, among others) that a thread-exit
//! destructor frees. A thread that ends while the main thread is in `exit`,
//! running OpenSSL's own cleanup, frees that state against a library that is
//! being torn down: a use after free. `init` died of it twice in CI (once
//! "double free or corruption", once a silent SIGSEGV), each time right
//! after its work was done, while the database writer was still closing.
//! `JoinHandle::is_finished` is not enough: it turns true before the
//! thread's destructors have run; only a join waits for them.

use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

static THREADS: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// Spawns a named thread that [`join_all`] will wait for. Such a thread
/// must end on its own once the process is done with it (its queue closed,
/// its owner dropped).
pub fn spawn(name: String, work: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    let handle = std::thread::Builder::new().name(name).spawn(work)?;
    THREADS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(handle);
    Ok(())
}

/// Joins every thread started through [`spawn`], waiting up to `limit` in
/// all for them to end; false if one had not by then (it is left running,
/// and the caller should exit without running the libraries' exit handlers).
pub fn join_all(limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let threads = std::mem::take(&mut *THREADS.lock().unwrap_or_else(|p| p.into_inner()));
    let mut all_joined = true;
    for thread in threads {
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if thread.is_finished() {
            // A thread that panicked has still ended.
            let _ = thread.join();
        } else {
            all_joined = false;
            // Keep it, so a later call can still join it.
            THREADS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(thread);
        }
    }
    all_joined
}

/// Flushes standard output and error and ends the process at once, without
/// the exit handlers: for when [`join_all`] could not join every thread.
/// What the appliance stores is committed and synced before this point.
pub fn exit_now(code: u8) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` takes no pointers and does not return.
    unsafe { libc::_exit(i32::from(code)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, mpsc};

    // One test: the registry is process-wide, and parallel tests would join
    // each other's threads.
    #[test]
    fn join_all_waits_for_threads_to_end_and_reports_one_that_does_not() {
        // Ends once its queue closes, as the database writer does.
        let (jobs, queue) = mpsc::channel::<()>();
        let ended = Arc::new(AtomicBool::new(false));
        let flag = ended.clone();
        spawn("queue-reader".into(), move || {
            while queue.recv().is_ok() {}
            std::thread::sleep(Duration::from_millis(50));
            flag.store(true, Ordering::SeqCst);
        })
        .expect("spawn");
        drop(jobs);
        assert!(join_all(Duration::from_secs(10)));
        assert!(
            ended.load(Ordering::SeqCst),
            "returned before the thread ended"
        );

        // One that outlives the limit is reported, kept, and joined later.
        let (release, wait) = mpsc::channel::<()>();
        spawn("held".into(), move || {
            let _ = wait.recv();
        })
        .expect("spawn");
        assert!(!join_all(Duration::from_millis(20)));
        drop(release);
        assert!(join_all(Duration::from_secs(10)));
        assert!(THREADS.lock().expect("lock").is_empty());
    }
}
