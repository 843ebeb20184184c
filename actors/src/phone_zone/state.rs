//! Where a lead is, in law: the US state (or DC) of a +1 number's area code, so that a
//! state's own calling-hours rule can be applied to the lead's local time.
//!
//! Owns: the lookup over the generated table in `states.txt`. Must not: decide windows
//! (`crate::send_window` does) or guess: a number the table lacks (Canada, the Caribbean,
//! a new overlay) has no state, and only the federal window and `QUIET_HOURS` apply.

use std::sync::OnceLock;

/// libphonenumber's geocoding data for +1 numbers, as shipped in the Python `phonenumbers`
/// package 9.0.43 (Copyright (C) 2011-2026 The Libphonenumber Authors, Apache License
/// 2.0), reduced to `NPA ST[,ST…]` a line, sorted. An area code named for two states keeps
/// both. Regenerate with `scripts/gen_phone_states.py`, never by hand.
const DATA: &str = include_str!("states.txt");

fn table() -> &'static [(&'static str, Vec<&'static str>)] {
    static TABLE: OnceLock<Vec<(&'static str, Vec<&'static str>)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        DATA.lines()
            .filter_map(|line| {
                let (npa, states) = line.split_once(' ')?;
                Some((npa, states.split(',').collect()))
            })
            .collect()
    })
}

/// The states (two-letter codes) of a `+1` number in E.164; empty for other countries,
/// malformed numbers and area codes outside the US.
pub fn states_for_phone(phone: &str) -> Vec<&'static str> {
    let Some(national) = phone.strip_prefix("+1") else {
        return Vec::new();
    };
    if national.len() != 10 || !national.bytes().all(|b| b.is_ascii_digit()) {
        return Vec::new();
    }
    let npa = &national[..3];
    table()
        .binary_search_by(|(key, _)| (*key).cmp(npa))
        .map(|i| table()[i].1.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_holds_every_state() {
        assert!(table().windows(2).all(|w| w[0].0 < w[1].0));
        let mut states: Vec<&str> = table().iter().flat_map(|(_, s)| s.clone()).collect();
        states.sort();
        states.dedup();
        assert_eq!(states.len(), 51, "50 states and DC: {states:?}");
        for (npa, s) in table() {
            assert!(
                npa.len() == 3 && npa.bytes().all(|b| b.is_ascii_digit()),
                "{npa}"
            );
            assert!(s.iter().all(|st| st.len() == 2), "{npa}: {s:?}");
        }
    }

    #[test]
    fn area_codes_map_to_their_states() {
        let cases = [
            ("+13125550100", vec!["IL"]),
            ("+13055550100", vec!["FL"]),
            ("+12145550100", vec!["TX"]),
            ("+18605550100", vec!["CT"]),
            ("+14055550100", vec!["OK"]),
            ("+16015550100", vec!["MS"]),
            ("+14105550100", vec!["MD"]),
            ("+12065550100", vec!["WA"]),
            ("+12025550100", vec!["DC"]),
        ];
        for (phone, want) in cases {
            assert_eq!(states_for_phone(phone), want, "{phone}");
        }
        assert!(states_for_phone("+12015550100").contains(&"NJ"));
    }

    #[test]
    fn canada_other_countries_and_malformed_numbers_have_no_state() {
        for phone in [
            "+14165550100",
            "+447911123456",
            "+1312555",
            "13125550100",
            "",
        ] {
            assert!(states_for_phone(phone).is_empty(), "{phone}");
        }
    }
}
