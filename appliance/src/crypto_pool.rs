//! A fixed set of threads for requests' HSM and curve work (attestation and
//! credential signing), fed in arrival order.
//!
//! On tokio's blocking pool every connection's work ran at once: on two
//! cores, thirty-odd threads shared the CPUs with the database writer and
//! the async workers, and each piece of work finished later the more there
//! were. A semaphore in front of the blocking pool bounded that but added a
//! hand-off per request (the freed permit wakes a task, which wakes a
//! thread); here a thread that finishes takes the next job itself. Other
//! blocking work (publication, housekeeping) stays on tokio's pool, so a slow
//! edge verifier never holds up a request. Figures in BENCHMARKS.md.
//!
//! Every job has a deadline (`http.crypto_timeout_ms`) covering its wait
//! and its work: an HSM that hangs rather than fails, such as a network HSM
//! behind a dead link, would otherwise hold every request until its client
//! gave up. Past the deadline the request is answered 503 with
//! `Retry-After`; a job whose request has gone is skipped unstarted, and one
//! already running finishes with its result discarded. The client
//! attestation and the blind issuance commit their nonces and audit records
//! after the job, so such a 503 has changed nothing; the officer path
//! consumes its challenge inside the job (single use whatever the outcome),
//! so an officer answered 503 asks for a new challenge.
//!
//! When every thread has been inside one job for longer than the deadline
//! the pool is stalled (the HSM hangs): nothing queued could finish in time,
//! so new work is refused at once ([`Unfinished::Stalled`]) instead of
//! joining a queue whose every request would wait out its deadline. It is
//! accepted again as soon as one thread comes back.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Job = Box<dyn FnOnce() + Send>;

pub struct CryptoPool {
    jobs: Sender<Job>,
    /// Jobs queued and not yet started: how far demand is past the threads.
    waiting: Arc<AtomicUsize>,
    busy: Arc<BusySince>,
    deadline: Duration,
}

/// When each thread started the job it is running, in microseconds since
/// `epoch` plus one; zero while it waits for work.
struct BusySince {
    epoch: Instant,
    threads: Vec<AtomicU64>,
}

impl BusySince {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    /// Every thread is inside a job it started more than `limit` ago.
    fn all_stuck(&self, limit: Duration) -> bool {
        let now = self.now();
        let limit = u64::try_from(limit.as_micros()).unwrap_or(u64::MAX);
        self.threads.iter().all(|t| {
            let since = t.load(Ordering::Acquire);
            since != 0 && now.saturating_sub(since) > limit
        })
    }
}

/// Why a job gave no result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unfinished {
    #[error("the work panicked, or the crypto threads have stopped")]
    Failed,
    #[error("no result within the deadline: the HSM is slow or hung, or demand is past capacity")]
    TimedOut,
    #[error("refused unqueued: every crypto thread has been stuck in one job past the deadline")]
    Stalled,
}

impl CryptoPool {
    /// Starts `threads` threads, which stop when the pool is dropped. A
    /// job's caller waits at most `deadline` from the moment it queues it.
    pub fn start(threads: usize, deadline: Duration) -> std::io::Result<Self> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let threads = threads.max(1);
        let busy = Arc::new(BusySince {
            epoch: Instant::now(),
            threads: (0..threads).map(|_| AtomicU64::new(0)).collect(),
        });
        for i in 0..threads {
            let (queue, busy) = (queue.clone(), busy.clone());
            provii_hsm::threads::spawn(format!("crypto-{i}"), move || serve(&queue, &busy, i))?;
        }
        Ok(Self {
            jobs,
            waiting: Arc::default(),
            busy,
            deadline,
        })
    }

    /// Jobs queued that no thread has started yet.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Queues `work` now, in call order; the future yields its result
    /// within the pool's deadline, or why not.
    pub fn run<T, F>(
        &self,
        work: F,
    ) -> impl std::future::Future<Output = Result<T, Unfinished>> + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let stalled = self.busy.all_stuck(self.deadline);
        let (done, result) = tokio::sync::oneshot::channel();
        let waiting = self.waiting.clone();
        let job: Job = Box::new(move || {
            waiting.fetch_sub(1, Ordering::Relaxed);
            // Its request timed out (or went away) while it waited.
            if done.is_closed() {
                return;
            }
            let _ = done.send(work());
        });
        let queued = if stalled {
            Err(Unfinished::Stalled)
        } else {
            self.waiting.fetch_add(1, Ordering::Relaxed);
            self.jobs.send(job).map_err(|_| {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                Unfinished::Failed
            })
        };
        let deadline = self.deadline;
        async move {
            queued?;
            match tokio::time::timeout(deadline, result).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(_)) => Err(Unfinished::Failed),
                Err(_) => Err(Unfinished::TimedOut),
            }
        }
    }
}

fn serve(queue: &Mutex<Receiver<Job>>, busy: &BusySince, me: usize) {
    loop {
        // One thread waits in `recv`, the others for the lock: jobs go out
        // in arrival order to whichever thread is free.
        let job = match queue.lock() {
            Ok(q) => q.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = job else { return };
        // A panicking job drops its reply, which its request turns into a
        // 500; the thread stays for the next one.
        let slot = &busy.threads[me];
        slot.store(busy.now(), Ordering::Release);
        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
        slot.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc;

    use super::*;

    /// A job that holds the pool's only thread until `release` is sent.
    fn hold(pool: &CryptoPool) -> mpsc::Sender<()> {
        let (release, held) = mpsc::channel::<()>();
        // The request stays alive in the task, so its job runs.
        tokio::spawn(pool.run(move || {
            let _ = held.recv();
        }));
        release
    }

    #[tokio::test]
    async fn work_past_the_deadline_is_answered_timed_out() {
        let pool = CryptoPool::start(1, Duration::from_millis(50)).unwrap();
        let (release, held) = mpsc::channel::<()>();
        let outcome = pool.run(move || held.recv()).await;
        assert_eq!(outcome, Err(Unfinished::TimedOut));
        release.send(()).unwrap();
    }

    #[tokio::test]
    async fn work_whose_request_has_gone_is_skipped() {
        let pool = CryptoPool::start(1, Duration::from_secs(60)).unwrap();
        let release = hold(&pool);
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        drop(pool.run(move || flag.store(true, Ordering::SeqCst)));
        release.send(()).unwrap();
        // One thread, jobs in order: once this one ran, the others are done.
        assert_eq!(pool.run(|| ()).await, Ok(()));
        assert!(!ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_panicking_job_fails_its_request_and_the_thread_serves_on() {
        let pool = CryptoPool::start(1, Duration::from_secs(60)).unwrap();
        assert_eq!(
            pool.run(|| -> i32 { panic!("work panicked") }).await,
            Err(Unfinished::Failed)
        );
        assert_eq!(pool.run(|| 5).await, Ok(5));
    }
}
