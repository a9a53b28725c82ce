//! The appliance's handle on its HSM: every call goes through
//! [`Hsm::call`], which hands the caller a session of its own and turns a
//! transient fault into [`HsmError::Unavailable`] plus a background
//! reconnect, never a panic or a dead process.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use cryptoki::session::Session;
use serde::Serialize;

use crate::config::HsmConfig;
use crate::connection::{ConnectError, Connection, OpError};
use crate::error::{CallError, FaultClass, HsmError, Result};

/// First retry delay after a fault; doubles per failed attempt.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// Cap for transient faults: a returning HSM is in use again within ~2 s.
const BACKOFF_CAP: Duration = Duration::from_secs(2);
/// Cap for permanent failures (wrong PIN, missing token): no hammering.
const BACKOFF_CAP_PERMANENT: Duration = Duration::from_secs(30);
/// How long recovery waits for calls still holding the dead connection.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HsmState {
    Usable,
    Unusable,
}

/// What `/ready` and `status` report about the HSM.
#[derive(Debug, Clone, Serialize)]
pub struct HsmStatus {
    pub state: HsmState,
    /// The token's label.
    pub token: String,
    pub serial: String,
    pub module: String,
    pub last_error: Option<String>,
    #[serde(serialize_with = "unix_seconds")]
    pub last_error_at: Option<SystemTime>,
    /// Successful reconnects since start.
    pub reconnects: u64,
}

fn unix_seconds<S: serde::Serializer>(
    t: &Option<SystemTime>,
    s: S,
) -> core::result::Result<S::Ok, S::Error> {
    match t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()) {
        Some(d) => s.serialize_some(&d.as_secs()),
        None => s.serialize_none(),
    }
}

struct Inner {
    config: HsmConfig,
    conn: RwLock<Option<Arc<Connection>>>,
    last_error: Mutex<Option<(String, SystemTime)>>,
    token: Mutex<(String, String)>,
    recovering: AtomicBool,
    reconnects: AtomicU64,
    /// Shared by every call, exclusive while objects are created or
    /// destroyed (see [`Hsm::provisioning`]).
    provisioning: RwLock<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let conn = self.conn.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(conn) = conn.and_then(|c| Arc::try_unwrap(c).ok()) {
            conn.shutdown();
        }
    }
}

/// Cheap to clone; all clones share one connection.
#[derive(Clone)]
pub struct Hsm {
    inner: Arc<Inner>,
}

impl Hsm {
    /// Loads the module, finds the token and logs in. A wrong PIN, a missing
    /// token or module fail here, so a misconfigured appliance does not
    /// start; faults after start are ridden out.
    pub fn open(config: HsmConfig) -> Result<Self> {
        let conn = Connection::open(&config).map_err(|e| e.error)?;
        let token = (conn.token.clone(), conn.serial.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                conn: RwLock::new(Some(Arc::new(conn))),
                last_error: Mutex::new(None),
                token: Mutex::new(token),
                recovering: AtomicBool::new(false),
                reconnects: AtomicU64::new(0),
                provisioning: RwLock::new(()),
            }),
        })
    }

    pub fn status(&self) -> HsmStatus {
        let usable = self
            .inner
            .conn
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        let last = self
            .inner
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let (token, serial) = self
            .inner
            .token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        HsmStatus {
            state: if usable {
                HsmState::Usable
            } else {
                HsmState::Unusable
            },
            token,
            serial,
            module: self.inner.config.module.display().to_string(),
            last_error: last.as_ref().map(|(e, _)| e.clone()),
            last_error_at: last.map(|(_, t)| t),
            reconnects: self.inner.reconnects.load(Ordering::Relaxed),
        }
    }

    /// Asks the token whether it is still there, then reports status.
    pub fn probe(&self) -> HsmStatus {
        if let Some(conn) = self.current()
            && let Err(e) = conn.probe()
            && e.class == FaultClass::Transient
        {
            self.fault(&conn, &e);
        }
        self.status()
    }

    pub(crate) fn current(&self) -> Option<Arc<Connection>> {
        self.inner
            .conn
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn unavailable(&self) -> HsmError {
        let reason = self
            .inner
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or_else(|| "not connected".to_owned(), |(e, _)| e.clone());
        HsmError::Unavailable { reason }
    }

    /// Runs `op` on a session of the caller's own. Blocking: from async code
    /// use [`Hsm::run`].
    pub(crate) fn call<T>(
        &self,
        op: impl FnOnce(&Session, &Connection) -> Result<T, OpError>,
    ) -> Result<T> {
        // Shared with other calls; skipped by the thread that provisions.
        let _shared = if PROVISIONING.with(|p| p.get()) == 0 {
            Some(
                self.inner
                    .provisioning
                    .read()
                    .unwrap_or_else(|p| p.into_inner()),
            )
        } else {
            None
        };
        let conn = self.current().ok_or_else(|| self.unavailable())?;
        let session = match conn.checkout() {
            Ok(s) => s,
            Err(e) => return Err(self.failed(&conn, e)),
        };
        match op(&session, &conn) {
            Ok(v) => {
                conn.checkin(session);
                Ok(v)
            }
            Err(OpError::Domain(e)) => {
                conn.checkin(session);
                Err(e)
            }
            Err(OpError::Call(e)) if e.class == FaultClass::Transient => {
                // The session is dead with the device; leave it to shutdown.
                drop(session);
                Err(self.failed(&conn, e))
            }
            Err(OpError::Call(e)) => {
                conn.checkin(session);
                Err(e.into_error())
            }
        }
    }

    fn failed(&self, conn: &Arc<Connection>, e: CallError) -> HsmError {
        if e.class == FaultClass::Transient {
            self.fault(conn, &e);
        }
        e.into_error()
    }

    /// Takes a broken connection out of service (once) and starts recovery.
    fn fault(&self, conn: &Arc<Connection>, e: &CallError) {
        let detail = format!("{}: {}", e.operation, e.detail);
        let mut guard = self.inner.conn.write().unwrap_or_else(|p| p.into_inner());
        if !guard.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            return;
        }
        let old = guard.take();
        drop(guard);
        tracing::warn!(token = %conn.token, error = %detail, "HSM fault; taking the connection out of service");
        self.record_error(detail);
        self.spawn_recovery(old);
    }

    fn record_error(&self, detail: String) {
        *self
            .inner
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some((detail, SystemTime::now()));
    }

    fn spawn_recovery(&self, old: Option<Arc<Connection>>) {
        if self.inner.recovering.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("hsm-recovery".into())
            .spawn(move || recover(weak, old));
        if let Err(e) = spawned {
            self.inner.recovering.store(false, Ordering::Release);
            tracing::error!(error = %e, "cannot start the HSM recovery thread");
        }
    }

    /// Exclusive access for creating or destroying objects. SoftHSM 2.6.1
    /// intermittently answers CKR_GENERAL_ERROR or CKR_TEMPLATE_INCONSISTENT
    /// when an object is created while other sessions work; provisioning is
    /// rare, so it waits for calls in flight and holds new ones back. Code
    /// that creates objects through a session of its own in this process
    /// should hold it too.
    pub fn provisioning(&self) -> ProvisioningGuard<'_> {
        let guard = self
            .inner
            .provisioning
            .write()
            .unwrap_or_else(|p| p.into_inner());
        PROVISIONING.with(|p| p.set(p.get() + 1));
        ProvisioningGuard { _guard: guard }
    }

    /// Runs blocking HSM work off the async runtime.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Hsm) -> Result<T> + Send + 'static,
    {
        let hsm = self.clone();
        tokio::task::spawn_blocking(move || f(&hsm))
            .await
            .unwrap_or_else(|e| {
                Err(HsmError::Unavailable {
                    reason: format!("HSM worker task failed: {e}"),
                })
            })
    }
}

/// Drains and finalises the dead connection, then reconnects with capped
/// exponential backoff until it succeeds or the `Hsm` is dropped.
fn recover(weak: Weak<Inner>, old: Option<Arc<Connection>>) {
    if let Some(old) = old {
        drain_and_shutdown(old);
    }
    let mut backoff = BACKOFF_START;
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let delay = match Connection::open(&inner.config) {
            Ok(conn) => {
                *inner.token.lock().unwrap_or_else(|p| p.into_inner()) =
                    (conn.token.clone(), conn.serial.clone());
                *inner.conn.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(conn));
                inner.reconnects.fetch_add(1, Ordering::Relaxed);
                inner.recovering.store(false, Ordering::Release);
                tracing::info!("HSM connection re-established");
                return;
            }
            Err(ConnectError { error, class }) => {
                *inner.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((error.to_string(), SystemTime::now()));
                let cap = if class == FaultClass::Transient {
                    BACKOFF_CAP
                } else {
                    BACKOFF_CAP_PERMANENT
                };
                backoff.min(cap)
            }
        };
        drop(inner);
        std::thread::sleep(delay);
        backoff = (backoff * 2).min(BACKOFF_CAP_PERMANENT);
    }
}

fn drain_and_shutdown(mut old: Arc<Connection>) {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        match Arc::try_unwrap(old) {
            Ok(conn) => return conn.shutdown(),
            Err(still_shared) if Instant::now() < deadline => {
                old = still_shared;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => {
                // A call is stuck in the old library; its sessions never close
                // on drop, so abandoning it cannot hurt the next connection.
                tracing::error!(
                    "HSM call did not return within 30 s; abandoning the old connection"
                );
                return;
            }
        }
    }
}

thread_local! {
    /// How many provisioning guards this thread holds.
    static PROVISIONING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Exclusive HSM access for creating or destroying objects.
pub struct ProvisioningGuard<'a> {
    _guard: std::sync::RwLockWriteGuard<'a, ()>,
}

impl Drop for ProvisioningGuard<'_> {
    fn drop(&mut self) {
        PROVISIONING.with(|p| p.set(p.get().saturating_sub(1)));
    }
}
