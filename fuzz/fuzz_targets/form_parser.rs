//! `parse_form`, the webhook's strict `application/x-www-form-urlencoded` decoding
//! (`src/http/twilio.rs`): any bytes must give pairs or an error, never a panic; and what it
//! accepts must survive a round trip through urlencoding unchanged.
#![no_main]

use lead_agent::http::twilio::parse_form;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let Ok(pairs) = parse_form(body) else {
        return;
    };
    let mut encoded = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            encoded.push('&');
        }
        let pair = [(k.as_str(), v.as_str())];
        encoded.push_str(&encode(&pair));
    }
    let again = parse_form(encoded.as_bytes()).expect("an encoded form parses");
    // An empty key with an empty value encodes as "=", which parses back; pairs that
    // were `&&` never appear. So the round trip is exact.
    assert_eq!(again, pairs);
});

fn encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        escape(&mut out, k);
        out.push('=');
        escape(&mut out, v);
    }
    out
}

/// Percent-encodes every byte that is not unreserved (`+` for space, as Twilio does).
fn escape(out: &mut String, s: &str) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
}
