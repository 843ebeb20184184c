//! How a phone number (a lead id) appears in logs and spans: [`LogPhone`], a display
//! wrapper, rendered in the one process-wide [`LogPhoneMode`] set at start (`LOG_PHONE`).
//!
//! Owns: the three renderings — `masked` (the default: `+1******4567`, country code guess
//! and last four digits), `hash` (a short keyed HMAC-SHA256, `#` + 12 hex digits, the same
//! in every process given the same `LOG_PHONE_KEY`, so operators can follow a lead across
//! pods without seeing its number) and `full` (the raw number, for debugging only).
//! Must not: be used where the full number is the point — the store, `/ops` answers, the
//! SMS sender, alerts to Discord (operators act on those numbers) — or be changed after
//! start: a mode that moved under a running process would split one lead's log lines.

use std::fmt;
use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How phone numbers are written to logs.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum LogPhoneMode {
    /// Country code guess and last four digits; everything else `*`.
    #[default]
    Masked,
    /// `#` + the first 12 hex digits of HMAC-SHA256(key, number).
    Hash { key: Vec<u8> },
    /// The number as stored. Personal data in the logs: for debugging only.
    Full,
}

impl fmt::Debug for LogPhoneMode {
    // The key is a secret: never in `Debug` output (Settings are printed on demand).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogPhoneMode::Masked => f.write_str("Masked"),
            LogPhoneMode::Hash { .. } => f.write_str("Hash { key: <redacted> }"),
            LogPhoneMode::Full => f.write_str("Full"),
        }
    }
}

static MODE: OnceLock<LogPhoneMode> = OnceLock::new();

/// Sets the process's mode; the first call wins (tests build many apps in one process, and
/// a later call must not change how the earlier ones' lines read). Unset means masked.
pub fn set_mode(mode: LogPhoneMode) {
    let _ = MODE.set(mode);
}

fn mode() -> &'static LogPhoneMode {
    static DEFAULT: LogPhoneMode = LogPhoneMode::Masked;
    MODE.get().unwrap_or(&DEFAULT)
}

/// A phone number or lead id as it may appear in a log line or span field:
/// `tracing::info!(lead = %LogPhone(lead.as_str()), …)` or `lead = %lead.log()`.
#[derive(Clone, Copy)]
pub struct LogPhone<'a>(pub &'a str);

impl fmt::Display for LogPhone<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render(mode(), self.0))
    }
}

impl fmt::Debug for LogPhone<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `phone` as `mode` writes it.
pub fn render(mode: &LogPhoneMode, phone: &str) -> String {
    match mode {
        LogPhoneMode::Full => phone.to_string(),
        LogPhoneMode::Masked => mask(phone),
        LogPhoneMode::Hash { key } => hash(key, phone),
    }
}

/// Every phone-number-looking run in `text` (a `+` and 8 to 15 digits, as E.164 has)
/// rendered in the process's mode: for free text that names a lead, such as an alert's.
pub fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if bytes[i] == b'+' {
            let digits = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if (8..=15).contains(&digits) {
                out.push_str(&text[copied..i]);
                out.push_str(&render(mode(), &text[i..i + 1 + digits]));
                i += 1 + digits;
                copied = i;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// Country codes of one digit: NANP (+1) and Russia/Kazakhstan (+7). Any other is shown
/// as two digits — right for most of Europe, a digit short for three-digit codes (+353),
/// which leaks less rather than more.
fn country_code_len(digits: &str) -> usize {
    match digits.as_bytes().first() {
        Some(b'1') | Some(b'7') => 1,
        _ => 2,
    }
}

fn mask(phone: &str) -> String {
    let (prefix, number) = match phone.strip_prefix("whatsapp:") {
        Some(rest) => ("whatsapp:", rest),
        None => ("", phone),
    };
    let e164 = number
        .strip_prefix('+')
        .filter(|d| (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()));
    let Some(digits) = e164 else {
        // Not a number we can read (a short code, a malformed id): show its length only,
        // never its characters, which may be anything.
        return format!("{prefix}<{} chars>", number.chars().count());
    };
    let cc = country_code_len(digits);
    let hidden = digits.len() - cc - 4;
    format!(
        "{prefix}+{}{}{}",
        &digits[..cc],
        "*".repeat(hidden),
        &digits[digits.len() - 4..]
    )
}

fn hash(key: &[u8], phone: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(phone.as_bytes());
    let digest = mac.finalize().into_bytes();
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("#{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_keeps_the_country_code_guess_and_the_last_four_digits() {
        let m = LogPhoneMode::Masked;
        assert_eq!(render(&m, "+13125554567"), "+1******4567");
        assert_eq!(render(&m, "+447700900123"), "+44******0123");
        assert_eq!(render(&m, "+79161234567"), "+7******4567");
        assert_eq!(render(&m, "whatsapp:+13125554567"), "whatsapp:+1******4567");
        // Not E.164: nothing of it is shown.
        assert_eq!(render(&m, "12345"), "<5 chars>");
        assert_eq!(render(&m, "+1 <b>x</b>"), "<11 chars>");
        assert!(!render(&m, "+13125554567").contains("312555"));
    }

    #[test]
    fn hash_is_keyed_short_and_stable() {
        let a = LogPhoneMode::Hash {
            key: b"key-a".to_vec(),
        };
        let b = LogPhoneMode::Hash {
            key: b"key-b".to_vec(),
        };
        let h = render(&a, "+13125554567");
        assert_eq!(h.len(), 13);
        assert!(h.starts_with('#'));
        assert_eq!(h, render(&a, "+13125554567"), "stable");
        assert_ne!(h, render(&b, "+13125554567"), "keyed");
        assert_ne!(h, render(&a, "+13125554568"), "per number");
        assert!(!h.contains("4567"));
        // A known value (HMAC-SHA256("key-a", "+13125554567")), so another process or
        // version computing it differently is caught.
        assert_eq!(h, "#bfc12f9619b2");
    }

    #[test]
    fn full_is_the_number_as_stored() {
        assert_eq!(render(&LogPhoneMode::Full, "+13125554567"), "+13125554567");
    }

    #[test]
    fn scrub_masks_every_number_in_free_text_and_leaves_the_rest() {
        // The process mode is unset in unit tests: masked.
        let text = "Reply #3 to +13125554567 is waiting; call +447700900123. Ref +123.";
        assert_eq!(
            scrub(text),
            "Reply #3 to +1******4567 is waiting; call +44******0123. Ref +123."
        );
        assert_eq!(scrub("ünïcode +13125554567 ✓"), "ünïcode +1******4567 ✓");
    }

    #[test]
    fn the_key_is_not_in_debug_output() {
        let shown = format!(
            "{:?}",
            LogPhoneMode::Hash {
                key: b"s3cret".to_vec()
            }
        );
        assert!(!shown.contains("s3cret"));
    }
}
