//! Consent revoked in plain words: since 2025-04-11 (47 CFR 64.1200(a)(10)) a consumer
//! revokes consent to texts with any of *stop, quit, end, revoke, opt out, cancel,
//! unsubscribe*, or with any words a reasonable person would read as revocation ("please
//! stop texting me", "take me off your list", "wrong number, don't text me"); it must be
//! honoured at once. This is the deterministic check — it runs on every inbound text,
//! whether or not a model is configured.
//!
//! Owns: the normalisation (case, accents, punctuation), the keyword-as-intent rule (a
//! keyword with only courtesy words around it: "stop please", "STOP NOW!!"), the phrase
//! set in English and Spanish, and the exceptions that keep ambiguous texts ("stop by
//! tomorrow?", "don't text me before 9") ordinary. Must not: decide what happens to a
//! revoked lead (the webhook records the opt-out, the sender honours it) or look at
//! anything but the one message.

/// What the plain model chain answers, alone, when it reads the lead's message as a
/// revocation the phrase set missed (its prompt asks it to): the turn opts the lead out
/// instead of sending it. The model's judgement is a second check, never the only one.
pub const MODEL_OPT_OUT: &str = "OPT_OUT";

/// The law's seven words and their carrier spellings, Spanish beside them, as whole
/// messages or with courtesy words only.
const KEYWORDS: &[&str] = &[
    "stop",
    "stopall",
    "quit",
    "end",
    "revoke",
    "opt out",
    "optout",
    "cancel",
    "unsubscribe",
    // Spanish.
    "alto",
    "parar",
    "para",
    "pare",
    "detener",
    "cancelar",
    "baja",
    "no mas",
];

/// Words that may stand around a keyword without changing what it means.
const COURTESY: &[&str] = &[
    "please", "pls", "plz", "now", "thanks", "thank", "you", "thx", "ty", "ok", "okay", "me",
    "all", "por", "favor", "ya", "gracias",
];

/// Plain-language revocations, matched as whole words anywhere in the normalised text.
const PHRASES: &[&str] = &[
    "stop texting",
    "stop txting",
    "stop messaging",
    "stop sending",
    "stop contacting",
    "stop the texts",
    "stop these texts",
    "stop the messages",
    "dont text",
    "don t text",
    "do not text",
    "dont message",
    "do not message",
    "dont contact",
    "do not contact",
    "dont send me",
    "do not send me",
    "no more texts",
    "no more messages",
    "take me off",
    "remove me from",
    "remove my number",
    "delete my number",
    "lose my number",
    "unsubscribe me",
    "opt me out",
    "leave me alone",
    "not interested stop",
    // Spanish.
    "no me escriba",
    "no me escriban",
    "no me envie",
    "no me envien",
    "no me manden",
    "deje de escribir",
    "dejen de escribir",
    "deje de escribirme",
    "dejen de escribirme",
    "deje de enviar",
    "dejen de enviar",
    "no mas mensajes",
    "no quiero mensajes",
    "no quiero recibir",
    "borren mi numero",
];

/// A phrase followed by one of these limits when or how, not whether: "don't text me
/// before 9am" asks for quiet hours, not for silence.
const LIMITS: &[&str] = &[
    "before", "after", "until", "till", "til", "so", "at", "during", "between", "on", "in",
    "antes", "despues",
];

/// "Wrong number" revokes only as (nearly) the whole message: "you gave me the wrong
/// number for the office" is a question.
const WRONG_NUMBER_MAX_WORDS: usize = 5;

/// True when `text` revokes consent to texts: a revocation keyword with nothing but
/// courtesy words around it, or a plain-language revocation.
pub fn is_revocation(text: &str) -> bool {
    let words = normalise(text);
    if words.is_empty() {
        return false;
    }
    keyword_with_courtesy(&words) || phrase(&words) || wrong_number(&words)
}

/// Lowercase, accents folded (Spanish), apostrophes dropped ("don't" → "dont"), any other
/// punctuation a word break.
pub(crate) fn normalise(text: &str) -> Vec<String> {
    let folded: String = text
        .chars()
        .filter(|c| !matches!(c, '\'' | '\u{2019}' | '\u{2018}'))
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ä' | 'Á' | 'À' => 'a',
            'é' | 'è' | 'ê' | 'ë' | 'É' => 'e',
            'í' | 'ì' | 'î' | 'ï' | 'Í' => 'i',
            'ó' | 'ò' | 'ô' | 'ö' | 'Ó' => 'o',
            'ú' | 'ù' | 'û' | 'ü' | 'Ú' => 'u',
            'ñ' | 'Ñ' => 'n',
            c if c.is_alphanumeric() => c.to_ascii_lowercase(),
            _ => ' ',
        })
        .collect();
    folded.split_whitespace().map(str::to_string).collect()
}

fn keyword_with_courtesy(words: &[String]) -> bool {
    let mut rest: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .filter(|w| !COURTESY.contains(w))
        .collect();
    // "STOP STOP STOP" is one STOP said louder.
    rest.dedup();
    !rest.is_empty() && KEYWORDS.contains(&rest.join(" ").as_str())
}

fn phrase(words: &[String]) -> bool {
    for p in PHRASES {
        let p: Vec<&str> = p.split(' ').collect();
        for start in 0..words.len().saturating_sub(p.len() - 1) {
            if words[start..start + p.len()]
                .iter()
                .zip(&p)
                .all(|(w, p)| w == p)
                && !limited(&words[start + p.len()..])
            {
                return true;
            }
        }
    }
    false
}

/// Whether what follows the phrase (skipping "me" / "us") limits it to a time or manner.
fn limited(after: &[String]) -> bool {
    after
        .iter()
        .map(String::as_str)
        .find(|w| !matches!(*w, "me" | "us" | "anymore" | "again"))
        .is_some_and(|w| LIMITS.contains(&w))
}

fn wrong_number(words: &[String]) -> bool {
    words.len() <= WRONG_NUMBER_MAX_WORDS
        && words.windows(2).any(|w| {
            (w[0] == "wrong" && w[1] == "number") || (w[0] == "numero" && w[1] == "equivocado")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both sides of the line, in one table: each text and whether it revokes.
    const TABLE: &[(&str, bool)] = &[
        // The seven words, alone, any case, any punctuation.
        ("STOP", true),
        ("stop.", true),
        ("Stop!!!", true),
        ("quit", true),
        ("END", true),
        ("Revoke", true),
        ("opt out", true),
        ("Opt-out", true),
        ("OPTOUT", true),
        ("cancel", true),
        ("Unsubscribe", true),
        // As the message's clear intent.
        ("stop please", true),
        ("Please stop", true),
        ("STOP NOW", true),
        ("stop, thank you", true),
        ("unsubscribe me", true),
        // Spanish.
        ("Alto", true),
        ("parar", true),
        ("CANCELAR", true),
        ("no más", true),
        ("Baja por favor", true),
        ("Por favor no me escriban más", true),
        ("dejen de escribirme", true),
        ("STOP STOP STOP", true),
        ("Dejen de escribir a este número", true),
        // Plain language.
        ("please stop texting me", true),
        ("Stop texting me!", true),
        ("take me off your list", true),
        ("Wrong number, don't text me", true),
        ("wrong number", true),
        ("Do not contact me again", true),
        ("No more texts please", true),
        ("Remove me from your list", true),
        ("lose my number", true),
        ("I'm not interested. Leave me alone", true),
        ("don’t text me anymore", true),
        // Ambiguous: ordinary messages.
        ("stop by tomorrow?", false),
        ("Can I stop by tomorrow at 5?", false),
        ("I can't stop thinking about the 2BR", false),
        ("I need to cancel my tour", false),
        ("cancel my tour please", false),
        ("What's the end date of the lease?", false),
        ("Is the quit fee high if I end the lease early?", false),
        ("Please don't text me before 9am", false),
        ("don't text me so early please", false),
        ("Don't message me at night, call instead", false),
        (
            "You gave me the wrong number for the office, what is it?",
            false,
        ),
        ("Para cuándo está disponible?", false),
        ("para mi y mi esposa", false),
        ("Yes", false),
        ("", false),
    ];

    #[test]
    fn the_table_of_revocations_and_ordinary_texts_holds_both_sides() {
        let wrong: Vec<_> = TABLE
            .iter()
            .filter(|(text, revokes)| is_revocation(text) != *revokes)
            .collect();
        assert!(wrong.is_empty(), "misread: {wrong:?}");
        let yes = TABLE.iter().filter(|(_, r)| *r).count();
        let no = TABLE.len() - yes;
        assert!(
            yes >= 30 && no >= 12,
            "both sides are covered: {yes} / {no}"
        );
    }
}
