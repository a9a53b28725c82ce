//! Token buckets per source address, client, officer, and one global.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use crate::config::RateLimitConfig;

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A keyed set of buckets refilling at `rate` tokens per second up to `burst`.
struct Buckets<K> {
    rate: f64,
    burst: f64,
    map: Mutex<HashMap<K, Bucket>>,
}

impl<K: std::hash::Hash + Eq + Clone> Buckets<K> {
    fn new(per_period: u32, period_secs: f64) -> Self {
        Self {
            rate: f64::from(per_period) / period_secs,
            burst: f64::from(per_period),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok(())` with a token taken, or `Err(seconds until one is free)`.
    fn take(&self, key: &K) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            // Forget idle keys so a scan of many addresses cannot grow this forever.
            map.retain(|_, b| now.duration_since(b.last).as_secs_f64() * self.rate < self.burst);
        }
        let b = map.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        b.tokens =
            (b.tokens + now.duration_since(b.last).as_secs_f64() * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / self.rate).ceil() as u64)
        }
    }
}

pub struct RateLimits {
    audited: Mutex<HashMap<String, Instant>>,
    source: Buckets<IpAddr>,
    client: Buckets<String>,
    officer: Buckets<String>,
    global: Buckets<()>,
}

/// Which limit refused a request, and when to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub scope: &'static str,
    pub retry_after: u64,
}

impl RateLimits {
    pub fn new(c: &RateLimitConfig) -> Self {
        Self {
            audited: Mutex::new(HashMap::new()),
            source: Buckets::new(c.per_source_per_minute, 60.0),
            client: Buckets::new(c.per_client_per_minute, 60.0),
            officer: Buckets::new(c.per_officer_per_minute, 60.0),
            global: Buckets::new(c.global_per_second, 1.0),
        }
    }

    pub fn request(&self, source: Option<IpAddr>) -> Result<(), Limited> {
        self.global.take(&()).map_err(|s| Limited {
            scope: "global",
            retry_after: s,
        })?;
        if let Some(ip) = source {
            self.source.take(&ip).map_err(|s| Limited {
                scope: "source",
                retry_after: s,
            })?;
        }
        Ok(())
    }

    /// Whether a refusal for `subject` should be audited now (once a minute).
    pub fn should_audit(&self, subject: &str) -> bool {
        let now = Instant::now();
        let mut audited = self.audited.lock().unwrap_or_else(|p| p.into_inner());
        if audited.len() > 10_000 {
            audited.retain(|_, t| now.duration_since(*t).as_secs() < 60);
        }
        match audited.get(subject) {
            Some(t) if now.duration_since(*t).as_secs() < 60 => false,
            _ => {
                audited.insert(subject.to_owned(), now);
                true
            }
        }
    }

    pub fn client(&self, id: &str) -> Result<(), Limited> {
        self.client.take(&id.to_owned()).map_err(|s| Limited {
            scope: "client",
            retry_after: s,
        })
    }

    pub fn officer(&self, id: &str) -> Result<(), Limited> {
        self.officer.take(&id.to_owned()).map_err(|s| Limited {
            scope: "officer",
            retry_after: s,
        })
    }
}
