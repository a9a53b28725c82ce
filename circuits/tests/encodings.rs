//! Property tests of the strict encodings and the fixed-size types.

use proptest::prelude::*;
use provii_circuits::encoding::{
    b64url_decode, b64url_decode_array, b64url_encode, hex_decode, hex_decode_array, hex_encode,
};
use provii_circuits::error::{Base64Error, Error, HexError};
use provii_circuits::{DobDays, Kid, RBits, Schema};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64_err(s: &str) -> Base64Error {
    match b64url_decode(s, "t") {
        Err(Error::Base64 { source, .. }) => source,
        other => panic!("expected a base64 error for {s:?}, got {other:?}"),
    }
}

fn hex_err(s: &str) -> HexError {
    match hex_decode(s, "t") {
        Err(Error::Hex { source, .. }) => source,
        other => panic!("expected a hex error for {s:?}, got {other:?}"),
    }
}

proptest! {
    #[test]
    fn b64url_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let s = b64url_encode(&bytes);
        prop_assert!(!s.contains(['=', '+', '/']));
        prop_assert_eq!(s.len(), (bytes.len() * 4).div_ceil(3));
        prop_assert_eq!(b64url_decode(&s, "t").expect("round trip"), bytes);
    }

    #[test]
    fn b64url_fixed_sizes_have_the_spec_lengths(a in prop::array::uniform32(any::<u8>())) {
        let s = b64url_encode(&a);
        prop_assert_eq!(s.len(), 43);
        prop_assert_eq!(b64url_decode_array::<32>(&s, "t").expect("decodes"), a);
        let too_long = matches!(b64url_decode_array::<31>(&s, "t"), Err(Error::Length { expected: 31, actual: 32, .. }));
        prop_assert!(too_long);
    }

    #[test]
    fn b64url_refuses_padding(bytes in prop::collection::vec(any::<u8>(), 1..64)) {
        let padded = base64_std_padded_url(&bytes);
        prop_assume!(padded.ends_with('='));
        prop_assert_eq!(b64_err(&padded), Base64Error::Padding);
    }

    #[test]
    fn b64url_refuses_the_standard_alphabet(bytes in prop::collection::vec(any::<u8>(), 1..64), pos in any::<prop::sample::Index>(), std_char in prop::sample::select(vec!['+', '/', ' ', '\n', '.'])) {
        let mut s: Vec<char> = b64url_encode(&bytes).chars().collect();
        let i = pos.index(s.len());
        s[i] = std_char;
        let s: String = s.into_iter().collect();
        prop_assert_eq!(b64_err(&s), Base64Error::InvalidCharacter { offset: i });
    }

    #[test]
    fn b64url_refuses_non_canonical_trailing_bits(a in prop::array::uniform32(any::<u8>()), low in 1u8..4) {
        // 32 bytes = 256 bits in 43 characters: the last carries 2 unused bits.
        let mut s = b64url_encode(&a).into_bytes();
        let last = ALPHABET.iter().position(|c| *c == s[42]).expect("alphabet") as u8;
        s[42] = ALPHABET[usize::from((last & !3) | low)];
        let s = String::from_utf8(s).expect("ascii");
        prop_assert_eq!(b64_err(&s), Base64Error::NonCanonicalTrailingBits);
    }

    #[test]
    fn hex_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..100)) {
        let s = hex_encode(&bytes);
        prop_assert_eq!(&s, &s.to_lowercase());
        prop_assert_eq!(hex_decode(&s, "t").expect("round trip"), bytes);
    }

    #[test]
    fn hex_refuses_uppercase_odd_and_junk(bytes in prop::collection::vec(any::<u8>(), 1..50), pos in any::<prop::sample::Index>()) {
        let s = hex_encode(&bytes);
        let i = pos.index(s.len());
        let mut upper = s.clone().into_bytes();
        upper[i] = b'A';
        prop_assert_eq!(hex_err(&String::from_utf8(upper).expect("ascii")), HexError::Uppercase { offset: i });
        let mut junk = s.clone().into_bytes();
        junk[i] = b'g';
        prop_assert_eq!(hex_err(&String::from_utf8(junk).expect("ascii")), HexError::InvalidCharacter { offset: i });
        prop_assert_eq!(hex_err(&s[1..]), HexError::OddLength);
        let n = bytes.len();
        let wrong_len = matches!(hex_decode_array::<64>(&s, "t"), Err(Error::Length { expected: 64, actual, .. }) if actual == n);
        prop_assert!(wrong_len);
    }

    #[test]
    fn kid_and_schema_lengths_are_exact(s in "[a-z0-9:.-]{0,30}") {
        match Kid::new(&s) {
            Ok(k) => prop_assert_eq!(k.as_bytes().len(), 14),
            Err(e) => prop_assert_eq!(e, Error::KidLength(s.len())),
        }
        match Schema::new(&s) {
            Ok(k) => prop_assert_eq!(k.as_bytes().len(), 12),
            Err(e) => prop_assert_eq!(e, Error::SchemaLength(s.len())),
        }
    }

    #[test]
    fn dob_days_range(x in any::<i32>()) {
        prop_assert_eq!(DobDays::new(x).is_ok(), (-36525..=36525).contains(&x));
    }

    #[test]
    fn rbits_wire_packing_is_msb_first(bytes in prop::array::uniform16(any::<u8>())) {
        let Ok(r) = RBits::from_wire_bytes(&bytes) else { return Ok(()); };
        for i in 0..128 {
            prop_assert_eq!(r.bit(i), (bytes[i / 8] >> (7 - i % 8)) & 1 == 1);
        }
        let bits: Vec<bool> = r.bits().collect();
        let again = RBits::from_bits(&bits).expect("same bits validate");
        prop_assert_eq!(*again.to_wire_bytes(), bytes);
        let lsb: Vec<u8> = bytes.iter().map(|b| b.reverse_bits()).collect();
        let via_lsb = RBits::from_lsb_first_bytes(&lsb).expect("same bits");
        prop_assert_eq!(*via_lsb.to_wire_bytes(), bytes);
    }
}

/// Standard padded base64 with the URL alphabet, written out here so the
/// test does not lean on the code under test.
fn base64_std_padded_url(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn rbits_profile_a() {
    assert_eq!(
        RBits::from_wire_bytes(&[0u8; 16]).err(),
        Some(Error::RBitsAllZero)
    );
    assert_eq!(
        RBits::from_wire_bytes(&[0u8; 15]).err(),
        Some(Error::RBitsLength { bits: 120 })
    );
    assert_eq!(
        RBits::from_wire_bytes(&[1u8; 17]).err(),
        Some(Error::RBitsLength { bits: 136 })
    );
    let seven: Vec<u8> = (0..16).map(|i| (i % 7) as u8 + 1).collect();
    assert_eq!(
        RBits::from_wire_bytes(&seven).err(),
        Some(Error::RBitsLowEntropy { unique: 7 })
    );
    let eight: Vec<u8> = (0..16).map(|i| (i % 8) as u8 + 1).collect();
    assert!(RBits::from_wire_bytes(&eight).is_ok());
}

#[test]
fn secrets_are_redacted_in_debug() {
    let dob = DobDays::new(12345).expect("in range");
    assert_eq!(format!("{dob:?}"), "DobDays([REDACTED])");
    let r = RBits::from_wire_bytes(&(1..=16).collect::<Vec<u8>>()).expect("valid");
    assert_eq!(format!("{r:?}"), "RBits([REDACTED])");
}
