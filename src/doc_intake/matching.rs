//! Which lead a mail is from: the phone numbers written in its `From`, `Subject` and text,
//! in E.164 as the leads' ids are (`+13125550171`, what Twilio sends as `From`).
//!
//! Owns: finding numbers in free text — digit groups joined by single separators (space,
//! `-`, `.`, `(`, `)`), a leading `+` kept — and their E.164 readings: ten digits (the first
//! 2–9) are a +1 number, eleven starting with 1 too, and after a `+` any 8–15 digits. A group
//! is never split (an order number's twelve digits are not a phone), and every reading is a
//! candidate only: the store says which one is a lead.
//! Must not: touch the store or guess a number from fewer digits. The store keeps no email
//! address of a lead, so the sender's address is not matched (only numbers in it are).

/// Characters that may join the digit groups of one number.
fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{a0}')
}

/// Most candidates taken from one mail: a long mail cannot make a run look up hundreds.
pub const MAX_CANDIDATES: usize = 20;

/// The E.164 numbers `text` may hold, in the order they appear, without repeats.
pub fn phone_candidates(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() && out.len() < MAX_CANDIDATES {
        let plus = chars[i] == '+' && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        let starts_number = plus
            || (chars[i].is_ascii_digit()
                && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '+')));
        if !starts_number {
            i += 1;
            continue;
        }
        // One run: digit groups, each pair joined by at most two separators ("(312) 555").
        let mut groups: Vec<String> = Vec::new();
        let mut j = if plus { i + 1 } else { i };
        loop {
            let start = j;
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            groups.push(chars[start..j].iter().collect());
            let mut k = j;
            while k < chars.len() && k - j < 2 && is_separator(chars[k]) {
                k += 1;
            }
            if k > j && k < chars.len() && chars[k].is_ascii_digit() {
                j = k;
            } else {
                break;
            }
        }
        // A number glued to letters after it ("3125550171abc") is not a number.
        let glued = chars.get(j).is_some_and(|c| c.is_alphanumeric());
        if !glued {
            readings(&groups, plus, &mut out);
        }
        i = j.max(i + 1);
    }
    out.truncate(MAX_CANDIDATES);
    out
}

/// Every E.164 reading of consecutive groups of one run.
fn readings(groups: &[String], plus: bool, out: &mut Vec<String>) {
    for start in 0..groups.len() {
        let mut digits = String::new();
        for g in groups.iter().skip(start) {
            digits.push_str(g);
            if digits.len() > 15 {
                break;
            }
            // Windows start and end at group boundaries: a group is never split.
            let reading = plus && start == 0 && (8..=15).contains(&digits.len());
            let mut push = |n: String| {
                if !out.contains(&n) {
                    out.push(n);
                }
            };
            if reading {
                push(format!("+{digits}"));
            } else if digits.len() == 10 && matches!(digits.as_bytes()[0], b'2'..=b'9') {
                push(format!("+1{digits}"));
            } else if digits.len() == 11 && digits.starts_with('1') {
                push(format!("+{digits}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ways_people_write_a_us_number_read_as_its_e164() {
        for text in [
            "call me at (312) 555-0171 please",
            "312-555-0171",
            "312.555.0171",
            "3125550171",
            "+1 312 555 0171",
            "+13125550171",
            "1-312-555-0171",
            "Jane (+1 (312) 555-0171) <jane@example.com>",
        ] {
            assert!(
                phone_candidates(text).contains(&"+13125550171".to_string()),
                "{text}: {:?}",
                phone_candidates(text)
            );
        }
    }

    #[test]
    fn two_numbers_are_both_found_in_order_and_long_digit_runs_are_not_phones() {
        let c = phone_candidates("mine 312 555 0171, my wife's 773-555-0199");
        let mine = c.iter().position(|n| n == "+13125550171").unwrap();
        let hers = c.iter().position(|n| n == "+17735550199").unwrap();
        assert!(mine < hers, "{c:?}");
        assert!(phone_candidates("order 431255501719 shipped").is_empty());
        assert!(phone_candidates("ref AB3125550171").is_empty());
        assert!(phone_candidates("3125550171abc").is_empty());
        assert!(phone_candidates("unit 12, zip 60601, 2 beds").is_empty());
        // A leading 0 or 1 is not a US area code.
        assert!(phone_candidates("0125550171").is_empty());
        assert!(phone_candidates("+44 20 7946 0958").contains(&"+442079460958".to_string()));
    }

    #[test]
    fn a_mail_full_of_numbers_yields_a_bounded_list() {
        let text: String = (0..100).map(|i| format!("312555{i:04} x ")).collect();
        assert_eq!(phone_candidates(&text).len(), MAX_CANDIDATES);
    }
}
