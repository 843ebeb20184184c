//! Fitting a model's reply to SMS: the prompt asks for one or two segments, and this makes
//! sure of it whatever the model wrote.
//!
//! Owns: folding typography the carrier would bill as UCS-2 (curly quotes, dashes, ellipsis,
//! emoji) back to GSM-friendly ASCII, dropping markdown emphasis, the two-segment target
//! (whole sentences kept when the reply runs long) and the hard 1,600-character cap
//! (Twilio error 21617).
//! Must not: change wording beyond that; a reply it cannot shorten at a sentence keeps its
//! length up to the hard cap rather than being cut mid-thought.

/// Twilio refuses longer bodies.
pub const HARD_MAX_CHARS: usize = 1600;

/// A segment of a multi-part SMS: 153 GSM-7 characters or 67 UCS-2 ones.
fn segment_chars(gsm: bool) -> usize {
    if gsm { 153 } else { 67 }
}

/// Roughly GSM-7: printable ASCII and line breaks. (GSM-7 also has a few accented letters;
/// treating them as UCS-2 only makes the target stricter.)
pub fn is_gsm(text: &str) -> bool {
    text.chars()
        .all(|c| c == '\n' || c == '\r' || (' '..='~').contains(&c))
}

/// How many segments the carrier will bill.
pub fn segments(text: &str) -> usize {
    let gsm = is_gsm(text);
    let n = text.chars().count();
    let single = if gsm { 160 } else { 70 };
    if n <= single {
        1
    } else {
        n.div_ceil(segment_chars(gsm))
    }
}

fn fold(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{2018}' | '\u{2019}' | '\u{201B}' | '\u{2032}' => "'",
        '\u{201C}' | '\u{201D}' | '\u{201F}' | '\u{2033}' => "\"",
        '\u{2013}' | '\u{2014}' | '\u{2012}' | '\u{2212}' => "-",
        '\u{2026}' => "...",
        '\u{00A0}' | '\u{2009}' | '\u{202F}' => " ",
        '\u{2022}' => "-",
        _ => return None,
    })
}

fn is_emoji(c: char) -> bool {
    matches!(c as u32, 0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0xFE0F | 0x200D)
}

/// The reply as it will be sent.
pub fn fit_sms(text: &str) -> String {
    let mut folded = String::with_capacity(text.len());
    for c in text.replace("**", "").replace("__", "").chars() {
        if is_emoji(c) {
            continue;
        }
        match fold(c) {
            Some(s) => folded.push_str(s),
            None => folded.push(c),
        }
    }
    // Collapse runs of spaces and blank lines a model pads with.
    let mut out = String::with_capacity(folded.len());
    for line in folded
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
    {
        if line.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&line);
    }

    let target = 2 * segment_chars(is_gsm(&out));
    let chars: Vec<char> = out.chars().collect();
    if chars.len() <= target {
        return out;
    }
    // Whole sentences up to two segments, if that keeps most of the target.
    if let Some(end) = (0..target).rev().find(|&i| {
        matches!(chars[i], '.' | '!' | '?') && chars.get(i + 1).is_none_or(|c| c.is_whitespace())
    }) && end + 1 >= target * 6 / 10
    {
        return chars[..=end].iter().collect();
    }
    if chars.len() <= HARD_MAX_CHARS {
        return out;
    }
    let cut = (0..HARD_MAX_CHARS - 3)
        .rev()
        .find(|&i| chars[i].is_whitespace())
        .unwrap_or(HARD_MAX_CHARS - 3);
    let mut s: String = chars[..cut].iter().collect();
    s.push_str("...");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typography_and_emoji_are_folded_so_the_sms_stays_gsm() {
        let out =
            fit_sms("We\u{2019}re open \u{2014} come by! \u{1F3E0} **Saturday** works\u{2026}");
        assert_eq!(out, "We're open - come by! Saturday works...");
        assert!(is_gsm(&out));
    }

    #[test]
    fn a_long_reply_keeps_whole_sentences_within_two_segments() {
        let sentence = "Lakeview Lofts has a two bedroom at 1900 a month available in January. ";
        let long = sentence.repeat(8);
        let out = fit_sms(&long);
        assert!(segments(&out) <= 2, "{} chars", out.len());
        assert!(out.ends_with('.'));
        assert!(out.len() >= 180);
    }

    #[test]
    fn nothing_ever_exceeds_the_hard_cap() {
        let out = fit_sms(&"word ".repeat(1000));
        assert!(out.chars().count() <= HARD_MAX_CHARS);
        assert!(out.ends_with("..."));
        let unicode = fit_sms(&"\u{00E9}t\u{00E9} ".repeat(600));
        assert!(unicode.chars().count() <= HARD_MAX_CHARS);
    }

    #[test]
    fn segment_counting_follows_the_encoding() {
        assert_eq!(segments(&"a".repeat(160)), 1);
        assert_eq!(segments(&"a".repeat(161)), 2);
        assert_eq!(segments(&"\u{00E9}".repeat(70)), 1);
        assert_eq!(segments(&"\u{00E9}".repeat(71)), 2);
    }
}
