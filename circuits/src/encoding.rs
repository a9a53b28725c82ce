//! Strict wire encodings: base64url without padding that admits exactly one
//! encoding per byte string (spec §2.7), and lowercase hex.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::error::{Base64Error, Error, HexError, Result};

/// No padding on encode, padding refused on decode, non-zero trailing bits refused.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

pub fn b64url_encode(bytes: &[u8]) -> String {
    B64URL.encode(bytes)
}

/// Decodes canonical base64url-no-pad of any length.
pub fn b64url_decode(s: &str, field: &'static str) -> Result<Vec<u8>> {
    let wrap = |source| Error::Base64 { field, source };
    if s.contains('=') {
        return Err(wrap(Base64Error::Padding));
    }
    B64URL.decode(s).map_err(|e| {
        wrap(match e {
            base64::DecodeError::InvalidByte(offset, _) => Base64Error::InvalidCharacter { offset },
            base64::DecodeError::InvalidLastSymbol { .. } => Base64Error::NonCanonicalTrailingBits,
            base64::DecodeError::InvalidPadding => Base64Error::Padding,
            base64::DecodeError::InvalidLength(_) => Base64Error::InvalidLength,
        })
    })
}

/// Decodes canonical base64url-no-pad of exactly `N` bytes.
pub fn b64url_decode_array<const N: usize>(s: &str, field: &'static str) -> Result<[u8; N]> {
    let bytes = b64url_decode(s, field)?;
    to_array(&bytes, field)
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

pub fn hex_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX_DIGITS[usize::from(b >> 4)]));
        out.push(char::from(HEX_DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn hex_nibble(c: u8, offset: usize) -> core::result::Result<u8, HexError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Err(HexError::Uppercase { offset }),
        _ => Err(HexError::InvalidCharacter { offset }),
    }
}

/// Decodes lowercase hex of any even length.
pub fn hex_decode(s: &str, field: &'static str) -> Result<Vec<u8>> {
    let wrap = |source| Error::Hex { field, source };
    let raw = s.as_bytes();
    if !raw.len().is_multiple_of(2) {
        return Err(wrap(HexError::OddLength));
    }
    raw.chunks_exact(2)
        .enumerate()
        .map(|(i, pair)| {
            let hi = hex_nibble(pair[0], 2 * i).map_err(wrap)?;
            let lo = hex_nibble(pair[1], 2 * i + 1).map_err(wrap)?;
            Ok(hi << 4 | lo)
        })
        .collect()
}

/// Decodes lowercase hex of exactly `N` bytes.
pub fn hex_decode_array<const N: usize>(s: &str, field: &'static str) -> Result<[u8; N]> {
    let bytes = hex_decode(s, field)?;
    to_array(&bytes, field)
}

pub(crate) fn to_array<const N: usize>(bytes: &[u8], field: &'static str) -> Result<[u8; N]> {
    bytes.try_into().map_err(|_| Error::Length {
        field,
        expected: N,
        actual: bytes.len(),
    })
}
