//! Free text an operator types: a client's display name, a revocation
//! reason. It is shown in listings and terminals, and a revocation reason is
//! published to the edge verifier's registry (WIRE.md §6), so it is bounded
//! and may not carry control characters or the bidirectional controls that
//! make a terminal show something other than what is stored.

use crate::error::ApiError;

/// Characters, not bytes: names in any script fit.
pub const MAX_CHARS: usize = 200;

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` if it is 1 to [`MAX_CHARS`] characters with no control or
/// bidirectional-control characters; otherwise an error naming `what`.
pub fn check<'a>(what: &'static str, text: &'a str) -> Result<&'a str, ApiError> {
    let count = text.chars().count();
    if count == 0 || count > MAX_CHARS {
        return Err(ApiError::bad_request(format!(
            "{what} must be 1-{MAX_CHARS} characters"
        )));
    }
    if text.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Err(ApiError::bad_request(format!(
            "{what} may not contain control or bidirectional-control characters"
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn names_in_any_script_up_to_the_limit_pass() {
        for text in [
            "Bank of Example",
            "Crédit Agricole",
            "東京銀行",
            "a",
            &"é".repeat(200),
        ] {
            assert_eq!(check("name", text).ok(), Some(text));
        }
    }

    #[test]
    fn empty_long_and_control_text_is_refused() {
        let long = "a".repeat(201);
        for text in [
            "",
            &long,
            "a\nb",
            "a\u{0}",
            "\u{1b}[31mred",
            "evil\u{202e}gpj.exe",
            "x\u{2066}",
        ] {
            assert!(check("name", text).is_err(), "{text:?}");
        }
    }
}
