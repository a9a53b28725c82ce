//! `provii-appliance init`: first run. Creates the state directory and
//! database, provisions the HSM objects, activates a first signing key and
//! enrols the first super_admin. Refuses to touch an initialised appliance.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

use provii_circuits::Kid;
use provii_hsm::{Hsm, ObjectLabel};
use rusqlite::params;
use zeroize::Zeroizing;

use crate::audit::{self, Event, Severity};
use crate::config::Config;
use crate::db::{Db, meta_get};
use crate::enrol;
use crate::error::AppError;
use crate::state::now;

pub const KEK_GENERATION: u32 = 1;
pub const FIRST_ATTESTATION_KEY: &str = "1";

/// Year and month of a Unix time (UTC).
pub fn year_month(unix: i64) -> (i64, u32) {
    let (year, month, _) = crate::calendar::civil_from_days(unix.div_euclid(86_400));
    (year, month as u32)
}

/// `provii:YYYY-MM`: 14 bytes for any year 1000-9999.
pub fn kid_for(unix: i64) -> Result<Kid, AppError> {
    let (y, m) = year_month(unix);
    Kid::new(&format!("provii:{y:04}-{m:02}")).map_err(|e| AppError::Internal(e.to_string()))
}

pub struct Initialised {
    pub officer_id: String,
    pub officer_secret: Zeroizing<[u8; 20]>,
    pub kid: Kid,
}

pub fn init(config: &Config, officer_id: &str) -> Result<Initialised, AppError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.state_dir)
        .map_err(|e| AppError::Internal(format!("create {}: {e}", config.state_dir.display())))?;
    let db = Db::open(&config.db_path())?;
    let _ = std::fs::set_permissions(config.db_path(), std::fs::Permissions::from_mode(0o600));
    if db.read_blocking(|c| meta_get(c, "initialized"))?.is_some() {
        return Err(AppError::Refused(format!(
            "{} is already initialised; refusing to touch it (use a fresh state_dir for a new appliance)",
            config.state_dir.display()
        )));
    }
    let hsm = Hsm::open(config.hsm.clone())?;
    let kek = ObjectLabel::kek(KEK_GENERATION);
    if hsm.exists(&kek)? {
        return Err(AppError::Refused(
            "the HSM token already holds provii/kek/1: it belongs to another appliance; initialise a fresh token".into(),
        ));
    }
    let now = now();
    hsm.create_kek(&kek)?;
    let attest = ObjectLabel::attestation(FIRST_ATTESTATION_KEY)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let attest_public = hsm.create_ed25519_key(&attest)?;
    hsm.create_mac_key(&audit::audit_key())?;
    hsm.create_mac_key(&audit::address_key())?;
    let kid = kid_for(now)?;
    let sealed = hsm.generate_signing_key(&kek, &kid)?;
    let cfg = config.clone();
    let (h, cfg_issuer, kid_s, kek_s, attest_s) = (
        hsm.clone(),
        config.issuer_id.clone(),
        kid.as_str().to_owned(),
        kek.as_str().to_owned(),
        attest.as_str().to_owned(),
    );
    let (vk_bytes, sealed_bytes) = (
        sealed.verifying_key.to_bytes().to_vec(),
        sealed.blob.to_bytes(),
    );
    db.write_blocking(move |tx| {
        tx.execute(
            "INSERT INTO attestation_keys (label, public_key, state, created_at) VALUES (?1, ?2, 'current', ?3)",
            params![attest_s, attest_public.to_vec(), now],
        )?;
        tx.execute(
            "INSERT INTO signing_keys (kid, verifying_key, sealed, kek, state, created_at, activated_at) VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?5)",
            params![kid_s, vk_bytes, sealed_bytes, kek_s, now],
        )?;
        tx.execute("INSERT INTO meta (key, value) VALUES ('initialized', ?1), ('issuer_id', ?2)", params![now.to_string(), cfg_issuer])?;
crate::outbox::enqueue(tx, &cfg, now)?;
                let event = Event::new("appliance.initialized", Severity::Critical).detail("kid", kid_s.as_str()).detail("issuer_id", cfg_issuer.as_str());
        audit::append(tx, &h, &event, now)
    })?;
    crate::publisher::provision(&hsm, &db, now)?;
    let (h, officer) = (hsm.clone(), officer_id.to_owned());
    let officer_secret = db
        .write_blocking(move |c| enrol::add_officer(c, &h, &officer, "super_admin", "init", now))?;
    Ok(Initialised {
        officer_id: officer_id.to_owned(),
        officer_secret,
        kid,
    })
}
