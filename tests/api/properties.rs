//! Property tests (issue 12, item 6) of the two functions every webhook passes before
//! anything else: the strict form decoding (`http::twilio::parse_form`) and the Twilio
//! signature check (`channels::twilio::verify_signature`). They run in every `cargo test`;
//! the fuzz targets (`fuzz/`) search the same functions longer, outside CI.

use lead_agent::channels::twilio::{compute_signature, verify_signature};
use lead_agent::http::twilio::parse_form;
use proptest::prelude::*;

/// Any text, control characters, `&`, `=`, `%`, `+` and non-ASCII included.
fn text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("(.|[&=%+\\n\\u{0}é😀])*").unwrap()
}

fn params() -> impl Strategy<Value = Vec<(String, String)>> {
    // Non-empty keys: an empty pair (`&&`) is skipped by the parser, as by browsers.
    proptest::collection::vec(
        (text().prop_filter("a key", |k| !k.is_empty()), text()),
        0..8,
    )
}

fn encode(params: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_pairs_survive_urlencoding_and_the_strict_parser(pairs in params()) {
        let body = encode(&pairs);
        prop_assert_eq!(parse_form(body.as_bytes()).unwrap(), pairs);
    }

    #[test]
    fn the_form_parser_never_panics_and_decodes_only_valid_utf8(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(pairs) = parse_form(&bytes) {
            // What it accepts is what a lenient decoder reads too: nothing invented.
            let lenient: Vec<(String, String)> = form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            prop_assert_eq!(pairs, lenient);
        }
    }

    #[test]
    fn a_signature_made_for_url_and_params_verifies(
        token in "[a-f0-9]{32}",
        path in "/[a-z/]{0,20}",
        pairs in params(),
    ) {
        let url = format!("https://example.com{path}");
        let sig = compute_signature(&token, &url, &pairs);
        prop_assert!(verify_signature(&token, &url, &pairs, &sig));
        // The other port form of the same URL verifies too (Twilio signs either).
        let with_port = format!("https://example.com:443{path}");
        prop_assert!(verify_signature(&token, &with_port, &pairs, &sig));
    }

    #[test]
    fn any_change_of_url_param_or_signature_fails(
        token in "[a-f0-9]{32}",
        pairs in params().prop_filter("a param", |p| !p.is_empty()),
        which in any::<prop::sample::Index>(),
        extra in "[a-zA-Z0-9]{1,4}",
        flip in any::<prop::sample::Index>(),
    ) {
        let url = "https://example.com/twilio/sms";
        let sig = compute_signature(&token, url, &pairs);

        let other_url = format!("{url}{extra}");
        prop_assert!(!verify_signature(&token, &other_url, &pairs, &sig), "url changed");

        let mut changed = pairs.clone();
        let i = which.index(changed.len());
        changed[i].1.push_str(&extra);
        prop_assert!(!verify_signature(&token, url, &changed, &sig), "value changed");

        let mut renamed = pairs.clone();
        renamed[i].0.push_str(&extra);
        prop_assert!(!verify_signature(&token, url, &renamed, &sig), "name changed");

        let mut added = pairs.clone();
        added.push((extra.clone(), extra.clone()));
        prop_assert!(!verify_signature(&token, url, &added, &sig), "param added");

        let mut bytes = sig.clone().into_bytes();
        let j = flip.index(bytes.len());
        bytes[j] = if bytes[j] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(bytes).unwrap();
        prop_assert!(!verify_signature(&token, url, &pairs, &forged), "signature changed");

        prop_assert!(!verify_signature(&format!("{token}x"), url, &pairs, &sig), "other token");
    }
}
