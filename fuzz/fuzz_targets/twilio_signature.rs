//! `verify_signature` (`src/channels/twilio.rs`) with arbitrary URL, parameters, token and
//! signature: never panics (the URL's port forms are cut out of untrusted text), an
//! arbitrary signature almost never verifies, and the one computed for the inputs always
//! does.
#![no_main]

use lead_agent::channels::twilio::{compute_signature, verify_signature};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    token: String,
    url: String,
    params: Vec<(String, String)>,
    signature: String,
}

fuzz_target!(|input: Input| {
    let Input {
        token,
        url,
        params,
        signature,
    } = input;
    let _ = verify_signature(&token, &url, &params, &signature);
    let good = compute_signature(&token, &url, &params);
    assert!(verify_signature(&token, &url, &params, &good));
    if signature != good {
        // The other port form may have the given signature only by a SHA-1 collision.
        let [a, b] = lead_agent::channels::twilio::url_port_forms(&url);
        let matches_a_form = [a, b]
            .iter()
            .any(|u| compute_signature(&token, u, &params) == signature);
        assert_eq!(
            verify_signature(&token, &url, &params, &signature),
            matches_a_form
        );
    }
});
