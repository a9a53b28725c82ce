//! One initialised PKCS#11 library with the token found, the user logged in
//! on an anchor session, a pool of worker sessions and a handle cache.
//!
//! Sessions are opened "no close on drop": a connection abandoned during an
//! outage must never close, by stale handle number, a session that belongs
//! to the library's next initialisation. [`Connection::shutdown`] closes
//! them explicitly.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;

use crate::config::{HsmConfig, TokenSelector};
use crate::error::{CallError, FaultClass, HsmError, P11ResultExt};
use crate::labels::ObjectLabel;

/// What a connection attempt ran into.
#[derive(Debug, Clone)]
pub(crate) struct ConnectError {
    pub error: HsmError,
    pub class: FaultClass,
}

impl ConnectError {
    fn transient(error: HsmError) -> Self {
        Self {
            error,
            class: FaultClass::Transient,
        }
    }
    fn permanent(error: HsmError) -> Self {
        Self {
            error,
            class: FaultClass::Permanent,
        }
    }
    fn from_call(e: CallError) -> Self {
        let class = e.class;
        Self {
            error: e.into_error(),
            class,
        }
    }
}

/// An error inside an operation: a PKCS#11 failure still to be classified,
/// or an outcome the operation already understood (missing object, GCM tag
/// mismatch).
#[derive(Debug)]
pub(crate) enum OpError {
    Call(CallError),
    Domain(HsmError),
}

impl From<CallError> for OpError {
    fn from(e: CallError) -> Self {
        OpError::Call(e)
    }
}

impl From<HsmError> for OpError {
    fn from(e: HsmError) -> Self {
        OpError::Domain(e)
    }
}

pub(crate) struct Connection {
    ctx: Pkcs11,
    pub token: String,
    pub serial: String,
    anchor: Mutex<Option<Session>>,
    pool: Mutex<Vec<Session>>,
    pool_size: usize,
    slot: Slot,
    handles: Mutex<HashMap<(String, u64), ObjectHandle>>,
    /// Keys already dealt with by [`Connection::keep_session_copy`]: their
    /// cached handle is a session copy, or they may not be copied.
    settled: Mutex<HashSet<(String, u64)>>,
}

/// SoftHSM never locks a token after wrong PINs, so the appliance limits
/// its own attempts: after the n-th consecutive failure for a token, the
/// next attempt waits 2^(n-1) s (capped at 5 min).
static LOGIN_FAILURES: Mutex<Option<HashMap<String, (u32, Instant)>>> = Mutex::new(None);

fn login_allowed(token: &str) -> Result<(), HsmError> {
    let guard = LOGIN_FAILURES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, next)) = guard.as_ref().and_then(|m| m.get(token)) {
        let now = Instant::now();
        if *next > now {
            return Err(HsmError::LoginRateLimited {
                token: token.to_owned(),
                retry_after_secs: (*next - now).as_secs().max(1),
            });
        }
    }
    Ok(())
}

fn record_login(token: &str, ok: bool) {
    let mut guard = LOGIN_FAILURES.lock().unwrap_or_else(|p| p.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    if ok {
        map.remove(token);
    } else {
        let failures = map.get(token).map_or(0, |(n, _)| *n) + 1;
        let wait = Duration::from_secs(1u64 << (failures - 1).min(8)).min(Duration::from_secs(300));
        map.insert(token.to_owned(), (failures, Instant::now() + wait));
    }
}

/// The raw `CK_OBJECT_CLASS`, as a cache key.
fn class_key(class: ObjectClass) -> u64 {
    #[allow(clippy::useless_conversion)]
    u64::from(*class)
}

impl Connection {
    pub fn open(config: &HsmConfig) -> Result<Self, ConnectError> {
        let module = config.module.display().to_string();
        let ctx = Pkcs11::new(&config.module).map_err(|e| {
            ConnectError::permanent(HsmError::Module {
                module: module.clone(),
                detail: e.to_string(),
            })
        })?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => {
                return Err(ConnectError::from_call(CallError::from_p11(
                    "C_Initialize",
                    e,
                )));
            }
        }
        let (slot, token, serial) = find_token(&ctx, &config.token).map_err(|e| match e {
            Some(call) => ConnectError::from_call(call),
            None => ConnectError::transient(HsmError::TokenNotFound {
                token: config.token.to_string(),
                module: module.clone(),
            }),
        })?;
        let anchor = ctx
            .open_rw_session_no_drop(slot)
            .op("C_OpenSession")
            .map_err(ConnectError::from_call)?;
        login_allowed(&token).map_err(ConnectError::permanent)?;
        let pin = config.pin.read().map_err(ConnectError::permanent)?;
        match anchor.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
                record_login(&token, true)
            }
            Err(P11Error::Pkcs11(
                RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange,
                _,
            )) => {
                record_login(&token, false);
                let _ = anchor.close();
                return Err(ConnectError::permanent(HsmError::WrongPin {
                    token,
                    pin_source: config.pin.to_string(),
                }));
            }
            Err(P11Error::Pkcs11(RvError::PinLocked, _)) => {
                let _ = anchor.close();
                return Err(ConnectError::permanent(HsmError::Refused {
                    operation: "C_Login",
                    detail: format!(
                        "the user PIN of token {token:?} is locked; the security officer must reset it"
                    ),
                }));
            }
            Err(e) => {
                let _ = anchor.close();
                return Err(ConnectError::from_call(CallError::from_p11("C_Login", e)));
            }
        }
        Ok(Self {
            ctx,
            token,
            serial,
            anchor: Mutex::new(Some(anchor)),
            pool: Mutex::new(Vec::new()),
            pool_size: config.pool_size.max(1),
            slot,
            handles: Mutex::new(HashMap::new()),
            settled: Mutex::new(HashSet::new()),
        })
    }

    /// A worker session for the calling thread alone.
    pub fn checkout(&self) -> Result<Session, CallError> {
        if let Some(s) = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(s);
        }
        self.ctx
            .open_rw_session_no_drop(self.slot)
            .op("C_OpenSession")
    }

    pub fn checkin(&self, session: Session) {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < self.pool_size {
            pool.push(session);
        } else {
            drop(pool);
            let _ = session.close();
        }
    }

    /// Liveness of the token behind the anchor session.
    pub fn probe(&self) -> Result<(), CallError> {
        let anchor = self.anchor.lock().unwrap_or_else(|p| p.into_inner());
        match anchor.as_ref() {
            Some(s) => s.get_session_info().op("C_GetSessionInfo").map(|_| ()),
            None => Err(CallError {
                operation: "probe",
                detail: "connection is shut down".into(),
                class: FaultClass::Transient,
                rv: None,
            }),
        }
    }

    /// The handle of the one object with this label and class; cached.
    pub fn find(
        &self,
        session: &Session,
        label: &ObjectLabel,
        class: ObjectClass,
    ) -> Result<ObjectHandle, OpError> {
        let key = (label.as_str().to_owned(), class_key(class));
        if let Some(h) = self
            .handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(*h);
        }
        let found = session
            .find_objects(&[
                Attribute::Class(class),
                Attribute::Token(true),
                Attribute::Label(label.as_str().as_bytes().to_vec()),
            ])
            .op("C_FindObjects")?;
        match found.as_slice() {
            [] => Err(HsmError::ObjectNotFound {
                label: label.to_string(),
            }
            .into()),
            [h] => {
                self.handles
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, *h);
                Ok(*h)
            }
            _ => Err(HsmError::Refused {
                operation: "C_FindObjects",
                detail: format!(
                    "{} objects share the label {label}; remove the duplicates",
                    found.len()
                ),
            }
            .into()),
        }
    }

    /// Replaces the cached handle of a token key by a session copy made on
    /// the anchor session, which lives as long as this connection. SoftHSM
    /// opens and locks a token object's file on every use; a session object
    /// is held in memory. `Ok(false)`: already settled, or the key may not
    /// be copied (keys made before copies were allowed) and the token object
    /// stays in use.
    pub fn keep_session_copy(
        &self,
        session: &Session,
        label: &ObjectLabel,
    ) -> Result<bool, OpError> {
        if self.is_settled(label) {
            return Ok(false);
        }
        let class = label.key_class();
        let key = (label.as_str().to_owned(), class_key(class));
        let original = self.find(session, label, class)?;
        let anchor = self.anchor.lock().unwrap_or_else(|p| p.into_inner());
        let Some(anchor) = anchor.as_ref() else {
            return Ok(false);
        };
        match anchor.copy_object(original, &[Attribute::Token(false)]) {
            Ok(copy) => {
                self.handles
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key.clone(), copy);
                self.settled
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key);
                Ok(true)
            }
            Err(P11Error::Pkcs11(RvError::ActionProhibited | RvError::AttributeReadOnly, _)) => {
                self.settled
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key);
                Ok(false)
            }
            Err(e) => Err(CallError::from_p11("C_CopyObject", e).into()),
        }
    }

    /// Whether [`Connection::keep_session_copy`] has nothing left to do for
    /// this key on this connection.
    pub fn is_settled(&self, label: &ObjectLabel) -> bool {
        self.settled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(label.as_str().to_owned(), class_key(label.key_class())))
    }

    pub fn forget(&self, label: &ObjectLabel) {
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(l, _), _| l != label.as_str());
        self.settled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(l, _)| l != label.as_str());
    }

    /// Closes every session and finalises the library. Errors are ignored:
    /// this runs when the device is already gone.
    pub fn shutdown(self) {
        for s in self
            .pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = s.close();
        }
        if let Some(anchor) = self.anchor.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = anchor.close();
        }
        let _ = self.ctx.finalize();
    }
}

/// The slot, label and serial of the selected token. `Err(None)`: no such
/// token (yet); `Err(Some(_))`: the library failed.
fn find_token(
    ctx: &Pkcs11,
    selector: &TokenSelector,
) -> Result<(Slot, String, String), Option<CallError>> {
    let slots = ctx
        .get_slots_with_initialized_token()
        .op("C_GetSlotList")
        .map_err(Some)?;
    for slot in slots {
        let Ok(info) = ctx.get_token_info(slot) else {
            continue;
        };
        let label = info.label().trim().to_owned();
        let serial = info.serial_number().trim().to_owned();
        let matches = match selector {
            TokenSelector::Label(l) => label == *l,
            TokenSelector::Serial(s) => serial == *s,
        };
        if matches {
            return Ok((slot, label, serial));
        }
    }
    Err(None)
}
