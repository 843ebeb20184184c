//! Is a body the provider lists the reply we sent? Twilio's smart encoding (on by default
//! for messaging services) rewrites a body before storing it: characters outside GSM-7
//! that have a look-alike inside it are replaced, so `“Hi” — it’s here…` is listed as
//! `"Hi" - it's here...`. An exact comparison calls that reply absent and texts the lead
//! twice.
//!
//! Owns: the normal form both sides are reduced to before comparing. Must not: be loose
//! enough to match a different reply — only what smart encoding changes (punctuation
//! look-alikes, unusual spaces, invisible characters) is folded; letters, digits and
//! word order must match exactly.

/// True when `listed` is `ours` as the provider may have stored it.
pub fn same_body(ours: &str, listed: &str) -> bool {
    ours == listed || normalise(ours) == normalise(listed)
}

/// The form smart encoding cannot change. Each character is folded to its GSM-7/ASCII
/// look-alike — double quotes (“ ” „ ‟ ″ « » 〝 〞 ＂…) to `"`, single quotes and primes
/// (‘ ’ ‚ ‛ ′ ‵ ʹ ʼ ˈ ＇…) to `'`, hyphens and dashes (‐ ‑ ‒ – — ― − ﹘ ﹣ －) to `-`,
/// `…` to `...`, ‹ › to < >, the fraction and division slashes to `/`, ‼ ⁇ ⁈ ⁉ to their
/// pairs, and any other full-width ASCII form (U+FF01–FF5E) to its ASCII original — then
/// invisible characters (zero-width space and joiners, BOM, soft hyphen, word joiner) are
/// dropped and every run of whitespace, Unicode spaces included (no-break, en/em, thin,
/// ideographic…), becomes one space, trimmed at both ends (a carrier or a rewrite may
/// trim). Folding our side too means a reply that already used the plain form matches.
pub fn normalise(body: &str) -> String {
    let mut folded = String::with_capacity(body.len());
    for c in body.chars() {
        match fold(c) {
            Fold::Keep => folded.push(c),
            Fold::Drop => {}
            Fold::To(s) => folded.push_str(s),
            Fold::Char(r) => folded.push(r),
        }
    }
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

enum Fold {
    Keep,
    Drop,
    To(&'static str),
    Char(char),
}

fn fold(c: char) -> Fold {
    match c {
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' | '\u{2036}'
        | '\u{00AB}' | '\u{00BB}' | '\u{02BA}' | '\u{02DD}' | '\u{02EE}' | '\u{301D}'
        | '\u{301E}' | '\u{301F}' => Fold::Char('"'),
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' | '\u{2035}'
        | '\u{02B9}' | '\u{02BB}' | '\u{02BC}' | '\u{02BD}' | '\u{02C8}' | '\u{02CA}'
        | '\u{02CB}' | '\u{0060}' | '\u{00B4}' => Fold::Char('\''),
        '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}'
        | '\u{2043}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' => Fold::Char('-'),
        '\u{2026}' => Fold::To("..."),
        '\u{2039}' => Fold::Char('<'),
        '\u{203A}' => Fold::Char('>'),
        '\u{2044}' | '\u{2215}' => Fold::Char('/'),
        '\u{2216}' => Fold::Char('\\'),
        '\u{01C0}' | '\u{2223}' => Fold::Char('|'),
        '\u{02D0}' | '\u{2236}' => Fold::Char(':'),
        '\u{204E}' | '\u{2217}' => Fold::Char('*'),
        '\u{203C}' => Fold::To("!!"),
        '\u{2047}' => Fold::To("??"),
        '\u{2048}' => Fold::To("?!"),
        '\u{2049}' => Fold::To("!?"),
        // Full-width forms of printable ASCII sit at a fixed offset from it.
        '\u{FF01}'..='\u{FF5E}' => {
            char::from_u32(c as u32 - 0xFF01 + 0x21).map_or(Fold::Keep, Fold::Char)
        }
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}' => Fold::Drop,
        // `split_whitespace` turns these (and every other Unicode space) into one space.
        _ => Fold::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_smart_encoding_rewrites_still_matches() {
        let ours = "“Hi Sam” — it’s the 2BR on ‘Elm’… see you at 5\u{00A0}pm";
        let listed = "\"Hi Sam\" - it's the 2BR on 'Elm'... see you at 5 pm";
        assert!(same_body(ours, listed));
        assert!(same_body(listed, listed));
        assert!(same_body("Ｈｉ！\u{200B} ok", "Hi! ok"));
        assert!(same_body("Tour at 5pm ", "Tour at 5pm"));
    }

    #[test]
    fn a_different_reply_does_not_match() {
        assert!(!same_body("Tour at 5pm", "Tour at 6pm"));
        assert!(!same_body("Yes, it is available", "Yes it is available"));
        assert!(!same_body("hi", "Hi"), "case is never folded");
        assert!(
            !same_body("“Hi”", "Hi"),
            "quotes become quotes, not nothing"
        );
    }
}
