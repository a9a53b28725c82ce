//! The open-files limit the connection cap needs. Every client connection
//! is a descriptor, and so is each file SoftHSM opens per operation; if
//! connections use them all up, `accept` fails and so do HSM calls. A shell
//! or a default unit gives 1 024 (soft), the same as the default
//! `http.max_connections`, so the daemon raises its soft limit towards the
//! hard one at start, as far as the cap needs.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

use crate::error::AppError;

/// Descriptors kept for everything but client connections: the database
/// and its WAL, SoftHSM's token files, the admin socket's clients,
/// publications to the edge, the log.
pub const RESERVED: u64 = 256;

/// The fewest client connections worth serving.
const MIN_CONNECTIONS: u64 = 16;

/// What to do about the limit, given the soft and hard limits (`None`:
/// unlimited) and the cap.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    Enough,
    /// Raise the soft limit to `to`.
    Raise {
        to: u64,
    },
    /// The hard limit is too low for the default cap: raise the soft limit
    /// to it and serve fewer connections.
    Lower {
        soft: u64,
        max_connections: usize,
    },
    /// The hard limit is too low for the cap the configuration asks for.
    Refuse {
        hard: u64,
    },
}

pub fn plan(soft: Option<u64>, hard: Option<u64>, max_connections: usize, explicit: bool) -> Plan {
    let needed = (max_connections as u64).saturating_add(RESERVED);
    if soft.is_none_or(|s| s >= needed) {
        return Plan::Enough;
    }
    match hard {
        None => Plan::Raise { to: needed },
        Some(h) if h >= needed => Plan::Raise { to: needed },
        Some(h) if explicit || h < RESERVED + MIN_CONNECTIONS => Plan::Refuse { hard: h },
        Some(h) => Plan::Lower {
            soft: h,
            max_connections: usize::try_from(h - RESERVED).unwrap_or(usize::MAX),
        },
    }
}

/// Makes room for `max_connections` (`explicit`: set in the configuration
/// rather than defaulted); returns the cap to serve with.
pub fn make_room(max_connections: usize, explicit: bool) -> Result<usize, AppError> {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let raise = |to: u64| {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(to),
                maximum,
            },
        )
        .map_err(|e| AppError::Refused(format!("cannot raise the open-files limit to {to}: {e}")))
    };
    match plan(current, maximum, max_connections, explicit) {
        Plan::Enough => Ok(max_connections),
        Plan::Raise { to } => {
            raise(to)?;
            tracing::info!(
                from = current,
                to,
                "raised the open-files limit for http.max_connections"
            );
            Ok(max_connections)
        }
        Plan::Lower {
            soft,
            max_connections: fewer,
        } => {
            raise(soft)?;
            tracing::warn!(
                hard_limit = soft,
                max_connections = fewer,
                "the open-files limit is too low for the default http.max_connections; serving fewer. Raise LimitNOFILE, or set http.max_connections to say so"
            );
            Ok(fewer)
        }
        Plan::Refuse { hard } => Err(AppError::Refused(format!(
            "http.max_connections = {max_connections} needs {} open files, but this process may open at most {hard}: lower http.max_connections or raise LimitNOFILE (ulimit -Hn)",
            (max_connections as u64).saturating_add(RESERVED)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enough_is_left_alone() {
        assert_eq!(plan(Some(4096), Some(4096), 1024, false), Plan::Enough);
        assert_eq!(plan(None, None, 65_536, true), Plan::Enough);
        assert_eq!(plan(Some(1280), Some(1280), 1024, true), Plan::Enough);
    }

    #[test]
    fn a_low_soft_limit_is_raised_as_far_as_the_cap_needs() {
        assert_eq!(
            plan(Some(1024), Some(524_288), 1024, false),
            Plan::Raise { to: 1280 }
        );
        assert_eq!(plan(Some(1024), None, 4000, true), Plan::Raise { to: 4256 });
    }

    #[test]
    fn a_low_hard_limit_lowers_the_default_cap_and_refuses_a_configured_one() {
        assert_eq!(
            plan(Some(512), Some(1024), 1024, false),
            Plan::Lower {
                soft: 1024,
                max_connections: 768
            }
        );
        assert_eq!(
            plan(Some(512), Some(1024), 1024, true),
            Plan::Refuse { hard: 1024 }
        );
        assert_eq!(
            plan(Some(100), Some(200), 1024, false),
            Plan::Refuse { hard: 200 },
            "too few for any connections"
        );
    }
}
