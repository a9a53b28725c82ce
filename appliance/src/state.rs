//! What every request shares: configuration, HSM, database, limits, and
//! the keys in service (reloaded from the database when they change).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use provii_circuits::{AttestationVerifyingKey, Kid, VerifyingKey};
use provii_hsm::{Hsm, ObjectLabel, SealedBlob, SealedSigningKey};
use rusqlite::Connection;

use crate::config::Config;
use crate::db::Db;
use crate::error::AppError;
use crate::ratelimit::RateLimits;

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The credential signing key in service.
#[derive(Clone)]
pub struct ActiveKey {
    pub kek: ObjectLabel,
    pub sealed: SealedSigningKey,
}

/// A verifying key wallets may hold credentials under.
#[derive(Clone)]
pub struct PublishedKey {
    pub kid: Kid,
    pub verifying_key: VerifyingKey,
    pub state: String,
}

#[derive(Clone)]
pub struct AttestationKey {
    pub label: ObjectLabel,
    pub public: AttestationVerifyingKey,
}

#[derive(Clone, Default)]
pub struct KeySet {
    /// Shared so a request holds it without copying the sealed blob.
    pub active: Option<Arc<ActiveKey>>,
    pub published: Vec<PublishedKey>,
    /// The signing attestation key first; older ones still verify.
    pub attestation: Vec<AttestationKey>,
}

pub struct App {
    pub config: Config,
    pub hsm: Hsm,
    pub db: Db,
    pub limits: RateLimits,
    pub metrics: crate::metrics::Metrics,
    /// Set when a background job changed key states; housekeeping reloads.
    pub keys_stale: std::sync::atomic::AtomicBool,
    /// Swapped whole on reload; requests share it without copying.
    keys: RwLock<Arc<KeySet>>,
    /// Source address → its HSM-keyed HMAC; bounded.
    source_hashes: Mutex<HashMap<IpAddr, String>>,
    /// Wakes the outbox worker when key states change, so a revocation
    /// leaves at once instead of at the next poll.
    pub outbox_wake: tokio::sync::Notify,
    /// Set by a restore from backup: signed requests and attestations
    /// timestamped at or before it are refused, since nonces consumed after
    /// the snapshot were lost with it.
    pub replay_floor: i64,
    /// Runs requests' HSM and curve work (`http.crypto_concurrency` threads).
    pub crypto: crate::crypto_pool::CryptoPool,
    /// A `/ready` HSM probe is running and has not answered yet.
    pub hsm_probe_pending: std::sync::atomic::AtomicBool,
    /// Attestations signed here and not yet presented for issuance.
    pub own_attestations: crate::own_attestations::OwnAttestations,
}

const SOURCE_HASH_CACHE: usize = 10_000;

fn bad_row(what: &str) -> AppError {
    AppError::Storage(format!("stored {what} is corrupt"))
}

/// A signing key still in service (pending, active or deprecated), as
/// stored: its state, the KEK it is sealed under, and the sealed key.
pub struct StoredKey {
    pub state: String,
    pub kek: ObjectLabel,
    pub sealed: SealedSigningKey,
}

/// The signing keys in service, newest first.
pub fn live_signing_keys(conn: &Connection) -> Result<Vec<StoredKey>, AppError> {
    let mut stmt = conn.prepare(
        "SELECT kid, verifying_key, sealed, kek, state FROM signing_keys
         WHERE state IN ('pending', 'active', 'deprecated') ORDER BY created_at DESC",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, Vec<u8>>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    let mut keys = Vec::new();
    for row in rows {
        let (kid, vk, sealed, kek, state) = row?;
        let kid = Kid::new(&kid).map_err(|_| bad_row("kid"))?;
        let vk: [u8; 32] = vk.try_into().map_err(|_| bad_row("verifying key"))?;
        let verifying_key = VerifyingKey::from_bytes(&vk).map_err(|_| bad_row("verifying key"))?;
        let kek = kek_label(&kek).ok_or_else(|| bad_row("KEK label"))?;
        let blob = SealedBlob::from_bytes(&sealed).map_err(|_| bad_row("sealed key"))?;
        keys.push(StoredKey {
            state,
            kek,
            sealed: SealedSigningKey {
                kid,
                verifying_key,
                blob,
            },
        });
    }
    Ok(keys)
}

pub fn load_keys(conn: &Connection) -> Result<KeySet, AppError> {
    let mut set = KeySet::default();
    for key in live_signing_keys(conn)? {
        set.published.push(PublishedKey {
            kid: key.sealed.kid.clone(),
            verifying_key: key.sealed.verifying_key,
            state: key.state.clone(),
        });
        if key.state == "active" && set.active.is_none() {
            set.active = Some(Arc::new(ActiveKey {
                kek: key.kek,
                sealed: key.sealed,
            }));
        }
    }
    let mut stmt = conn.prepare(
        "SELECT label, public_key FROM attestation_keys WHERE state = 'current'
         OR (state = 'previous' AND label IN (SELECT label FROM attestation_key_windows WHERE verify_until > unixepoch()))
         ORDER BY CASE state WHEN 'current' THEN 0 ELSE 1 END, created_at DESC",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    for row in rows {
        let (label, public) = row?;
        let public: [u8; 32] = public.try_into().map_err(|_| bad_row("attestation key"))?;
        let public =
            AttestationVerifyingKey::from_bytes(&public).map_err(|_| bad_row("attestation key"))?;
        let id = label
            .strip_prefix("provii/attest/")
            .ok_or_else(|| bad_row("attestation key label"))?;
        let label = ObjectLabel::attestation(id).map_err(|_| bad_row("attestation key label"))?;
        set.attestation.push(AttestationKey { label, public });
    }
    Ok(set)
}

/// `provii/kek/<n>` back into a label.
pub(crate) fn kek_label(s: &str) -> Option<ObjectLabel> {
    s.strip_prefix("provii/kek/")?
        .parse()
        .ok()
        .map(ObjectLabel::kek)
}

impl App {
    pub fn new(config: Config, hsm: Hsm, db: Db) -> Result<Self, AppError> {
        let keys = db.read_blocking(load_keys)?;
        let replay_floor = db
            .read_blocking(|c| crate::db::meta_get(c, "replay_floor"))?
            .and_then(|v| v.parse().ok())
            .unwrap_or(i64::MIN);
        let limits = RateLimits::new(&config.rate_limits);
        let crypto = crate::crypto_pool::CryptoPool::start(
            config.http.crypto_threads(),
            config.http.crypto_timeout(),
        )
        .map_err(|e| AppError::Internal(format!("cannot start the crypto threads: {e}")))?;
        Ok(Self {
            config,
            hsm,
            db,
            limits,
            metrics: Default::default(),
            keys_stale: Default::default(),
            keys: RwLock::new(Arc::new(keys)),
            source_hashes: Mutex::new(HashMap::new()),
            outbox_wake: tokio::sync::Notify::new(),
            replay_floor,
            crypto,
            hsm_probe_pending: Default::default(),
            own_attestations: Default::default(),
        })
    }

    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The audit form of a source address (blocking: the HSM on a miss).
    pub fn source_hash(&self, source: Option<IpAddr>) -> Result<Option<String>, AppError> {
        let Some(ip) = source else { return Ok(None) };
        if let Some(h) = self
            .source_hashes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ip)
        {
            return Ok(Some(h.clone()));
        }
        let h = crate::audit::source_hash(&self.hsm, ip)?;
        let mut cache = self.source_hashes.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= SOURCE_HASH_CACHE {
            cache.clear();
        }
        cache.insert(ip, h.clone());
        Ok(Some(h))
    }

    /// The keys every request uses: the audit and address keys, attestation
    /// keys, the active signing key's KEK and every active client's secrets.
    pub fn hot_keys(&self) -> Result<Vec<ObjectLabel>, AppError> {
        let keys = self.keys();
        let mut labels = vec![crate::audit::audit_key(), crate::audit::address_key()];
        labels.extend(keys.attestation.iter().map(|k| k.label.clone()));
        labels.extend(keys.active.iter().map(|k| k.kek.clone()));
        let clients: Vec<(String, i64, Option<i64>)> = self.db.read_blocking(|c| {
            let mut stmt = c.prepare(
                "SELECT id, secret_generation, previous_generation FROM clients WHERE status = 'active'",
            )?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })?;
        for (id, generation, previous) in clients {
            for g in std::iter::once(generation).chain(previous) {
                if let Ok(label) = ObjectLabel::client(&id, g as u32) {
                    labels.push(label);
                }
            }
        }
        Ok(labels)
    }

    pub fn reload_keys(&self) -> Result<(), AppError> {
        let keys = self.db.read_blocking(load_keys)?;
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        self.outbox_wake.notify_one();
        Ok(())
    }
}
