//! Where a lead is, in time: the IANA zones a North American (+1) number belongs to, from
//! its area code (and, where an area code spans two zones, the exchange), so that quiet
//! hours are the lead's night and not the office's.
//!
//! Owns: the prefix lookup over the generated table in `data.txt` and the rule that picks a
//! lead's zones (a stored zone first, then the number, then the office's `OWNER_TZ`).
//! Must not: guess beyond the table — a number it does not know gets the office's zone, and
//! a number whose prefix spans several zones keeps all of them, so the caller can stay
//! quiet until it is daytime in every one.

pub mod state;

use std::sync::OnceLock;

use chrono_tz::Tz;

/// libphonenumber's time-zone map for +1 numbers, as shipped in the Python `phonenumbers`
/// package 9.0.43 (Copyright (C) 2011-2026 The Libphonenumber Authors, Apache License
/// 2.0): one line a prefix, `DIGITS ZONE[,ZONE…]`, sorted. Keys are the digits after the
/// country code — the area code, with more digits of the exchange where an area code spans
/// zones. Plain text so that it costs nothing resident until first used; regenerate it with
/// `scripts/gen_phone_zones.py`, never by hand.
const DATA: &str = include_str!("data.txt");

/// The parsed table, built on the first lookup (a followup or SLA sweep).
fn table() -> &'static [(&'static str, Vec<Tz>)] {
    static TABLE: OnceLock<Vec<(&'static str, Vec<Tz>)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        DATA.lines()
            .filter_map(|line| {
                let (key, zones) = line.split_once(' ')?;
                let zones: Vec<Tz> = zones.split(',').filter_map(|z| z.parse().ok()).collect();
                Some((key, zones))
            })
            .collect()
    })
}

/// The zones of a `+1` number in E.164 (`+1NPANXXXXXX`), longest matching prefix first;
/// empty for other countries, malformed numbers and prefixes the table lacks.
pub fn zones_for_phone(phone: &str) -> Vec<Tz> {
    let Some(national) = phone.strip_prefix("+1") else {
        return Vec::new();
    };
    if national.len() != 10 || !national.bytes().all(|b| b.is_ascii_digit()) {
        return Vec::new();
    }
    // The table's keys are 3 to 6 digits long; the longest match is the most precise.
    for len in (3..=6).rev() {
        let prefix = &national[..len];
        if let Ok(i) = table().binary_search_by(|(key, _)| (*key).cmp(prefix)) {
            return table()[i].1.clone();
        }
    }
    Vec::new()
}

/// The zones a lead's local time is read in: its stored zone when one is set and valid,
/// else the zones of its number, else `default` (the office's `OWNER_TZ`). Never empty.
pub fn lead_zones(stored: Option<&str>, phone: &str, default: Tz) -> Vec<Tz> {
    if let Some(tz) = stored.and_then(|z| z.parse::<Tz>().ok()) {
        return vec![tz];
    }
    let zones = zones_for_phone(phone);
    if zones.is_empty() {
        vec![default]
    } else {
        zones
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_zone_in_the_table_is_a_real_iana_zone_and_the_keys_are_sorted() {
        let lines: Vec<&str> = DATA.lines().collect();
        for line in &lines {
            let (key, zones) = line.split_once(' ').expect("DIGITS ZONES");
            assert!((3..=6).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_digit()));
            for z in zones.split(',') {
                assert!(z.parse::<Tz>().is_ok(), "{key}: {z}");
            }
        }
        assert_eq!(table().len(), lines.len(), "no line dropped");
        assert!(table().windows(2).all(|w| w[0].0 < w[1].0));
        assert!(table().len() > 400, "every NANP area code is there");
    }

    #[test]
    fn area_codes_map_to_their_zones() {
        let cases = [
            ("+13125550100", "America/Chicago"),     // Chicago
            ("+12125550100", "America/New_York"),    // Manhattan
            ("+14155550100", "America/Los_Angeles"), // San Francisco
            ("+13035550100", "America/Denver"),      // Denver
            ("+16025550100", "America/Phoenix"),     // Phoenix: no DST
            ("+18085550100", "Pacific/Honolulu"),
            ("+14165550100", "America/Toronto"),
        ];
        for (phone, zone) in cases {
            assert_eq!(
                zones_for_phone(phone),
                vec![zone.parse::<Tz>().unwrap()],
                "{phone}"
            );
        }
    }

    #[test]
    fn a_split_area_code_uses_the_exchange_and_keeps_every_zone_when_that_is_unknown() {
        // Idaho's 208 spans Mountain and Pacific time; the table splits it by exchange.
        assert_eq!(
            zones_for_phone("+12082015555"),
            vec![chrono_tz::America::Denver]
        );
        assert_eq!(
            zones_for_phone("+12082155555"),
            vec![chrono_tz::America::Los_Angeles]
        );
        // 907 (Alaska) spans two zones with no split: both are kept.
        assert_eq!(zones_for_phone("+19075550100").len(), 2);
    }

    #[test]
    fn other_countries_and_malformed_numbers_have_no_zone() {
        for phone in [
            "+447911123456",
            "+1312555",
            "+1312555010x",
            "13125550100",
            "",
        ] {
            assert!(zones_for_phone(phone).is_empty(), "{phone}");
        }
    }

    #[test]
    fn a_stored_zone_wins_then_the_number_then_the_office() {
        let office = chrono_tz::America::Chicago;
        assert_eq!(
            lead_zones(Some("America/New_York"), "+14155550100", office),
            vec![chrono_tz::America::New_York]
        );
        assert_eq!(
            lead_zones(Some("not a zone"), "+14155550100", office),
            vec![chrono_tz::America::Los_Angeles]
        );
        assert_eq!(lead_zones(None, "+447911123456", office), vec![office]);
    }
}
