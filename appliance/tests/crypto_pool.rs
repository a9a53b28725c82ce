//! The crypto threads: arrival order, what waits is counted, every thread in
//! use, a panicking job costs its request, not the pool, and a job past its
//! deadline answers at the deadline and, if it had not started, never runs;
//! a pool whose every thread is stuck past the deadline refuses work at once.

use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use provii_appliance::crypto_pool::{CryptoPool, Unfinished};

/// Long enough never to be reached by a test that is not about deadlines.
const NO_DEADLINE: Duration = Duration::from_secs(600);

#[tokio::test]
async fn one_thread_runs_jobs_in_the_order_they_came() {
    let pool = CryptoPool::start(1, NO_DEADLINE).expect("pool");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (open, gate) = channel::<()>();
    let (started, has_started) = channel::<()>();
    // Hold the only thread until every job is queued.
    let held = pool.run(move || started.send(()).is_ok() && gate.recv().is_ok());
    has_started.recv().expect("the held job starts");
    let jobs: Vec<_> = (0..50)
        .map(|i| {
            let seen = seen.clone();
            pool.run(move || seen.lock().expect("lock").push(i))
        })
        .collect();
    assert_eq!(pool.waiting(), 50, "queued behind the held job");
    open.send(()).expect("open");
    assert_eq!(held.await, Ok(true));
    for job in jobs {
        assert_eq!(job.await, Ok(()));
    }
    assert_eq!(*seen.lock().expect("lock"), (0..50).collect::<Vec<_>>());
    assert_eq!(pool.waiting(), 0);
}

#[tokio::test]
async fn every_thread_takes_work() {
    const THREADS: usize = 3;
    let pool = CryptoPool::start(THREADS, NO_DEADLINE).expect("pool");
    // Each job reports in, then waits to hear that all have: only possible
    // with all three running at once. The deadline only stops a broken pool
    // from hanging the suite.
    let (arrive, arrivals) = channel::<()>();
    let mut releases = Vec::new();
    let mut jobs = Vec::new();
    for _ in 0..THREADS {
        let (release, released) = channel::<()>();
        releases.push(release);
        let arrive = arrive.clone();
        jobs.push(pool.run(move || {
            arrive.send(()).is_ok() && released.recv_timeout(Duration::from_secs(60)).is_ok()
        }));
    }
    let all_arrived = tokio::task::spawn_blocking(move || {
        (0..THREADS).all(|_| arrivals.recv_timeout(Duration::from_secs(60)).is_ok())
    })
    .await
    .expect("join");
    for release in releases {
        let _ = release.send(());
    }
    assert!(all_arrived, "three jobs never ran at once");
    for job in jobs {
        assert_eq!(job.await, Ok(true));
    }
}

#[tokio::test]
async fn a_panicking_job_answers_none_and_the_thread_goes_on() {
    let pool = CryptoPool::start(1, NO_DEADLINE).expect("pool");
    let panicked = pool.run(|| -> u32 { panic!("a job failed") });
    assert_eq!(panicked.await, Err(Unfinished::Failed));
    assert_eq!(pool.run(|| 7).await, Ok(7));
}

#[tokio::test]
async fn past_the_deadline_a_request_is_answered_and_its_queued_job_never_runs() {
    let pool = CryptoPool::start(1, Duration::from_millis(300)).expect("pool");
    let (open, hung) = hang_a_thread(&pool);
    let ran = Arc::new(Mutex::new(false));
    let queued = {
        let ran = ran.clone();
        pool.run(move || *ran.lock().expect("lock") = true)
    };
    assert_eq!(pool.waiting(), 1);
    let (hung, queued) = tokio::join!(hung, queued);
    assert_eq!(hung, Err(Unfinished::TimedOut), "the running job's request");
    assert_eq!(
        queued,
        Err(Unfinished::TimedOut),
        "the waiting job's request"
    );
    // The HSM answers again: the thread finishes the hung job and passes
    // over the abandoned one.
    open.send(()).expect("open");
    assert_eq!(run_once_back(&pool).await, Ok(7));
    assert!(
        !*ran.lock().expect("lock"),
        "a job whose request gave up ran"
    );
    assert_eq!(pool.waiting(), 0);
}

#[tokio::test]
async fn a_pool_stuck_past_its_deadline_refuses_work_at_once_until_a_thread_returns() {
    const DEADLINE: Duration = Duration::from_millis(200);
    let pool = CryptoPool::start(1, DEADLINE).expect("pool");
    let (open, hung) = hang_a_thread(&pool);
    // Queued while the thread is stuck but not yet past the deadline: taken.
    let early = pool.run(|| 1);
    assert_eq!(
        pool.waiting(),
        1,
        "a thread busy within its deadline still queues"
    );
    assert_eq!(hung.await, Err(Unfinished::TimedOut));
    assert_eq!(early.await, Err(Unfinished::TimedOut));
    // The thread has now been in one job for longer than the deadline.
    tokio::time::sleep(DEADLINE).await;
    let ran = Arc::new(Mutex::new(false));
    let refused = {
        let ran = ran.clone();
        pool.run(move || *ran.lock().expect("lock") = true)
    };
    assert_eq!(pool.waiting(), 1, "only the abandoned job waits");
    assert_eq!(refused.await, Err(Unfinished::Stalled));
    // The HSM answers again: work is taken as soon as the thread is back.
    open.send(()).expect("open");
    assert_eq!(run_once_back(&pool).await, Ok(7));
    assert!(!*ran.lock().expect("lock"), "a refused job ran");
    assert_eq!(pool.waiting(), 0);
}

/// Holds one of the pool's threads in a job, like a call into an HSM that
/// does not answer, until the returned sender sends; returns once it runs.
fn hang_a_thread(
    pool: &CryptoPool,
) -> (
    Sender<()>,
    impl std::future::Future<Output = Result<bool, Unfinished>> + use<>,
) {
    let (open, gate) = channel::<()>();
    let (started, has_started) = channel::<()>();
    let hung = pool.run(move || {
        let _ = started.send(());
        gate.recv_timeout(Duration::from_secs(60)).is_ok()
    });
    has_started.recv().expect("the hung job starts");
    (open, hung)
}

/// Runs a job once the pool's stuck thread has come back: until then the
/// pool refuses work as stalled (for a few microseconds after the hung job
/// is released).
async fn run_once_back(pool: &CryptoPool) -> Result<u32, Unfinished> {
    for _ in 0..500 {
        match pool.run(|| 7).await {
            Err(Unfinished::Stalled) => tokio::time::sleep(Duration::from_millis(10)).await,
            answer => return answer,
        }
    }
    Err(Unfinished::Stalled)
}
