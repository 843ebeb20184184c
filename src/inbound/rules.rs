//! The input rules an inbound message passes before anything stores it: phone numbers in
//! E.164, no control characters in the body, and a body cap.
//!
//! Owns: [`check_phone`] (`From`/`To`: `+` and 1–15 digits, first digit not 0, optionally
//! `whatsapp:`-prefixed), [`clean_body`] (control characters other than tab and newline
//! removed — a NUL made PostgreSQL refuse the row, so the webhook answered 503 on every
//! retry and the SMS could never be stored) and [`cap_body`] (a body over
//! `INBOUND_BODY_MAX_CHARS` is kept truncated with a visible marker, never refused: Twilio
//! itself sends at most 1,600 characters, so a longer one is not a real SMS, but a lead's
//! words are still worth keeping).
//! Must not: touch the signature check (it covers the exact values Twilio sent, so the rules
//! run after it, on the verified form), do I/O, or cut inside a character: lengths are
//! counted in `char`s, not bytes.

/// `From`/`To` as Twilio sends them for SMS (`+13125550123`) or WhatsApp
/// (`whatsapp:+13125550123`); anything else is refused by name.
pub fn check_phone(field: &str, value: &str) -> Result<(), String> {
    let number = value.strip_prefix("whatsapp:").unwrap_or(value);
    if is_e164(number) {
        Ok(())
    } else {
        Err(format!(
            "{field} must be an E.164 number (+ and 1-15 digits, optionally whatsapp:-prefixed), \
             got {:?}",
            shorten(value)
        ))
    }
}

/// `+` then 1–15 ASCII digits, the first not 0: E.164's own bounds. Looser on length than
/// `config::is_e164` (8–15, for the numbers we text, such as `OWNER_PHONE`): an inbound
/// number is what the carrier says it is.
fn is_e164(number: &str) -> bool {
    let Some(digits) = number.strip_prefix('+') else {
        return false;
    };
    (1..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// The body without control characters other than tab and newline (NUL, CR, escape, the
/// C1 range…). Everything else — emoji, accents, right-to-left text — is the lead's.
pub fn clean_body(body: &str) -> String {
    body.chars()
        .filter(|&c| c == '\t' || c == '\n' || !c.is_control())
        .collect()
}

/// The body cut to its first `max_chars` characters, followed by a marker saying how many
/// were cut, when it is longer; unchanged otherwise.
pub fn cap_body(body: &str, max_chars: usize) -> String {
    let total = body.chars().count();
    if total <= max_chars {
        return body.to_string();
    }
    let kept: String = body.chars().take(max_chars).collect();
    format!("{kept}… [truncated: {} characters]", total - max_chars)
}

/// What a refusal quotes of a value: its first 40 characters (a refusal must not echo a
/// 60 KB field back into the logs).
fn shorten(value: &str) -> String {
    if value.chars().count() <= 40 {
        value.to_string()
    } else {
        let head: String = value.chars().take(40).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers_pass_with_or_without_the_whatsapp_prefix() {
        assert!(check_phone("From", "+13125550123").is_ok());
        assert!(check_phone("From", "whatsapp:+447700900123").is_ok());
        assert!(check_phone("To", "+1").is_ok());
        assert!(check_phone("To", "+123456789012345").is_ok(), "15 digits");
    }

    #[test]
    fn anything_else_is_refused_naming_the_field() {
        for bad in [
            "",
            "+",
            "13125550123",
            "+0123",
            "+1234567890123456",
            "whatsapp:+44 <b>x</b>",
            "+1312\u{202E}5550123",
            "+1312 555 0123",
            " +13125550123",
            "+13125550123\n",
            "whatsapp:",
            "sms:+13125550123",
            "+１３１２",
        ] {
            let err = check_phone("From", bad).expect_err(bad);
            assert!(err.starts_with("From must be an E.164 number"), "{err}");
        }
        assert!(check_phone("To", "x").unwrap_err().starts_with("To "));
    }

    #[test]
    fn a_refusal_quotes_a_long_value_shortened() {
        let err = check_phone("From", &"9".repeat(10_000)).unwrap_err();
        assert!(err.len() < 200, "{err}");
    }

    #[test]
    fn control_characters_other_than_tab_and_newline_are_removed() {
        assert_eq!(clean_body("a\u{0}b"), "ab");
        assert_eq!(clean_body("line1\r\nline2\tx"), "line1\nline2\tx");
        assert_eq!(clean_body("\u{1b}[31mred\u{7f}\u{85}"), "[31mred");
        assert_eq!(clean_body("Hi — 2BR? 😀 مرحبا"), "Hi — 2BR? 😀 مرحبا");
    }

    #[test]
    fn a_long_body_is_cut_by_characters_with_a_marker() {
        assert_eq!(cap_body("hello", 5), "hello");
        assert_eq!(cap_body("hello!", 5), "hello… [truncated: 1 characters]");
        // Multi-byte characters: 4 bytes each; the cut never lands inside one.
        let emoji = "😀".repeat(10);
        let capped = cap_body(&emoji, 3);
        assert_eq!(capped, "😀😀😀… [truncated: 7 characters]");
        let long = "é".repeat(60_000);
        let capped = cap_body(&long, 1600);
        assert!(capped.starts_with(&"é".repeat(1600)));
        assert!(capped.ends_with("… [truncated: 58400 characters]"));
    }
}
