//! Prometheus exposition (`GET /metrics`): requests and latencies per route
//! and status, the database's group commits, HSM state, reconnects, whether
//! a signing key is active.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds (seconds) of the request latency buckets.
const REQUEST_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Upper bounds (seconds) of the database buckets: a group commit on a
/// healthy disk takes about a millisecond, and the `fsync` stalls a virtual
/// disk has from time to time (3–20 ms here, BENCHMARKS.md) show as the
/// buckets above; a write waits for the writer about as long.
const COMMIT_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0,
];

/// A Prometheus histogram: cumulative counts per upper bound.
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, took: Duration) {
        let secs = took.as_secs_f64();
        for (n, le) in self.counts.iter_mut().zip(self.bounds) {
            if secs <= *le {
                *n += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }

    /// The series of `name`, each with `labels` (`key="value",` pairs, or
    /// empty) before `le`.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (le, n) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {}", self.count);
        let labels = match labels.trim_end_matches(',') {
            "" => String::new(),
            l => format!("{{{l}}}"),
        };
        let _ = writeln!(out, "{name}_sum{labels} {}", self.sum);
        let _ = writeln!(out, "{name}_count{labels} {}", self.count);
    }
}

/// What the database writer's group commits cost, kept by `crate::db`'s
/// writer thread. Every request that changes state waits twice: for the
/// writer to take it into a batch, then for that batch's commit (the jobs,
/// the audit seal, the log write, its `fsync`, and a checkpoint when one
/// falls due). A slow disk shows in the second first; a writer that cannot
/// keep up, in the first.
pub struct CommitMetrics {
    histograms: Mutex<CommitHistograms>,
}

struct CommitHistograms {
    /// Per committed job: from being queued to its batch's `BEGIN`; its
    /// count is the jobs committed.
    queue_wait: Histogram,
    /// Per commit: from `BEGIN` to `COMMIT` returning.
    duration: Histogram,
}

impl Default for CommitMetrics {
    fn default() -> Self {
        Self {
            histograms: Mutex::new(CommitHistograms {
                queue_wait: Histogram::new(COMMIT_BUCKETS),
                duration: Histogram::new(COMMIT_BUCKETS),
            }),
        }
    }
}

impl CommitMetrics {
    /// One commit that took `took`, of jobs that had waited `waited` each.
    pub fn observe(&self, waited: &[Duration], took: Duration) {
        let mut h = self.histograms.lock().unwrap_or_else(|p| p.into_inner());
        for wait in waited {
            h.queue_wait.observe(*wait);
        }
        h.duration.observe(took);
    }

    fn render(&self, out: &mut String) {
        let h = self.histograms.lock().unwrap_or_else(|p| p.into_inner());
        out.push_str("# HELP provii_db_queue_wait_seconds How long each committed write waited for the database writer to begin its batch.\n# TYPE provii_db_queue_wait_seconds histogram\n");
        h.queue_wait.render(out, "provii_db_queue_wait_seconds", "");
        out.push_str("# HELP provii_db_commit_duration_seconds Group commits of the database writer, durable on disk.\n# TYPE provii_db_commit_duration_seconds histogram\n");
        h.duration
            .render(out, "provii_db_commit_duration_seconds", "");
        let _ = writeln!(
            out,
            "# HELP provii_db_committed_jobs_total Writes those commits carried (requests and housekeeping).\n# TYPE provii_db_committed_jobs_total counter\nprovii_db_committed_jobs_total {}",
            h.queue_wait.count
        );
    }
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// Client connections open now, kept by `crate::http_server`.
    pub connections_open: Arc<AtomicUsize>,
    /// The cap they are served under (`crate::fd_limit` may lower the
    /// default).
    pub connection_cap: AtomicUsize,
}

impl Metrics {
    pub fn observe(&self, route: &str, status: u16, took: Duration) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((route.to_owned(), status))
            .or_default() += 1;
        self.latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(route.to_owned())
            .or_insert_with(|| Histogram::new(REQUEST_BUCKETS))
            .observe(took);
    }

    /// The text format, with the database's commits and the gauges the
    /// caller supplies.
    pub fn render(&self, commits: &CommitMetrics, gauges: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP provii_http_requests_total HTTP requests by route and status.\n# TYPE provii_http_requests_total counter\n");
        for ((route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "provii_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP provii_http_request_duration_seconds Request latency by route.\n# TYPE provii_http_request_duration_seconds histogram\n");
        for (route, h) in self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            h.render(
                &mut out,
                "provii_http_request_duration_seconds",
                &format!("route=\"{route}\","),
            );
        }
        commits.render(&mut out);
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}
