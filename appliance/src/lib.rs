//! The Provii issuer appliance: the daemon, its admin plane and first-run
//! provisioning, over `provii-circuits` (protocol) and `provii-hsm` (keys).

pub mod admin;
pub mod api;
pub mod audit;
pub mod backup;
pub mod calendar;
pub mod config;
pub mod crypto_pool;
pub mod db;
pub mod enrol;
pub mod error;
pub mod fd_limit;
pub mod http_server;
pub mod init;
pub mod keys;
pub mod metrics;
pub mod nonces;
pub mod officer;
pub mod operator_text;
pub mod outbox;
pub mod own_attestations;
pub mod publisher;
pub mod ratelimit;
pub mod serve;
pub mod state;
pub mod tls;
