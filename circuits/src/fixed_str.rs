//! `kid` and `schema`: UTF-8 strings of a length the circuit fixes (spec §12.4).

use core::fmt;

use crate::constants::{KID_SIZE_BYTES, SCHEMA_SIZE_BYTES};
use crate::error::{Error, Result};

macro_rules! fixed_utf8 {
    ($(#[$doc:meta])* $name:ident, $len:expr, $err:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const LEN: usize = $len;

            pub fn new(s: &str) -> Result<Self> {
                if s.len() != $len {
                    return Err(Error::$err(s.len()));
                }
                Ok(Self(s.to_owned()))
            }

            pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
                let s = core::str::from_utf8(bytes).map_err(|_| Error::Utf8 { field: $field })?;
                Self::new(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn as_bytes(&self) -> &[u8] {
                self.0.as_bytes()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:?})"), self.0)
            }
        }

        impl core::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }
    };
}

fixed_utf8!(
    /// Issuer key identifier: exactly 14 UTF-8 bytes, e.g. `provii:2026-05`.
    Kid, KID_SIZE_BYTES, KidLength, "kid"
);
fixed_utf8!(
    /// Credential schema: exactly 12 UTF-8 bytes, e.g. `provii.age/0`.
    Schema, SCHEMA_SIZE_BYTES, SchemaLength, "schema"
);

impl Schema {
    /// The v0.1 age schema, `provii.age/0`.
    pub fn age() -> Self {
        Self(crate::constants::AGE_SCHEMA.to_owned())
    }
}
