//! Fair-housing guardrails on what we send: the Fair Housing Act applies whatever writes the
//! reply (HUD's 2024 guidance on AI in housing), and the housing provider answers for its
//! vendor's model. A drafted reply that asks about or conditions on a protected
//! characteristic, or steers by who lives in a neighbourhood, is held for a person; a lead
//! asking about vouchers, accessibility or an accommodation is handed to a person.
//!
//! Owns: the rule the prompts carry ([`PROMPT_RULE`]), the deterministic check of a draft
//! ([`check_draft`]) and of a lead's message ([`accommodation_request`]), and their phrase
//! sets. Must not: reword a reply or decide what a hold does (the lead's turn holds it and
//! alerts). A phrase is listed only when no ordinary leasing answer contains it: "kids are
//! welcome" passes, "any kids?" is held; the corpus in the tests holds both sides.

use crate::revocation::normalise;

/// What the model prompts say, appended to the plain and the brain's system prompt.
pub const PROMPT_RULE: &str = "Fair housing: never ask about, comment on or decide by a \
     person's race, color, national origin, religion, sex, sexual orientation, gender \
     identity, familial status (children, pregnancy), disability, marital status, age or \
     source of income. Describe units, buildings and written policies, never the people who \
     live in a neighborhood, and give every lead the same answer. If the lead asks about a \
     housing voucher, accessibility, a disability or a reasonable accommodation, say a \
     member of the team will follow up today and ask nothing about it.";

/// The protected ground a finding touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ground {
    FamilialStatus,
    NationalOrigin,
    Religion,
    Disability,
    MaritalStatusOrSex,
    Age,
    RaceOrColor,
    SourceOfIncome,
    /// Describing who lives in a neighbourhood, or matching a lead to one by who they are.
    Steering,
}

impl Ground {
    pub fn label(self) -> &'static str {
        match self {
            Ground::FamilialStatus => "familial status",
            Ground::NationalOrigin => "national origin",
            Ground::Religion => "religion",
            Ground::Disability => "disability",
            Ground::MaritalStatusOrSex => "marital status or sex",
            Ground::Age => "age",
            Ground::RaceOrColor => "race or color",
            Ground::SourceOfIncome => "source of income",
            Ground::Steering => "steering by neighbourhood demographics",
        }
    }
}

/// Why a draft is held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub ground: Ground,
    /// The pattern that matched, as listed below.
    pub pattern: &'static str,
}

impl Finding {
    pub fn describe(&self) -> String {
        format!(
            "fair housing: the draft asks about or conditions on {} (\"{}\")",
            self.ground.label(),
            self.pattern
        )
    }
}

/// Patterns over the normalised words (lowercase, accents folded, apostrophes dropped:
/// "what's" is `whats`): words in order, `a|b` any one of them, `do_not` two words as one
/// alternative, `w?` optional. Matched anywhere, whole words.
const DRAFT_PATTERNS: &[(Ground, &str)] = &[
    // Familial status.
    (
        Ground::FamilialStatus,
        "do|will you have any? kids|children|child|a_baby",
    ),
    (Ground::FamilialStatus, "any kids|children"),
    (Ground::FamilialStatus, "how many kids|children"),
    (Ground::FamilialStatus, "how old are your kids|children"),
    (Ground::FamilialStatus, "ages of your kids|children"),
    (Ground::FamilialStatus, "are you pregnant|expecting"),
    (
        Ground::FamilialStatus,
        "plan|planning on|to have|having a? kids|children|baby|family",
    ),
    (Ground::FamilialStatus, "no kids|children"),
    (Ground::FamilialStatus, "without kids|children"),
    (Ground::FamilialStatus, "adults|adult only"),
    (
        Ground::FamilialStatus,
        "not suitable|ideal|good|great|meant|recommended for kids|children|families|a_family",
    ),
    (
        Ground::FamilialStatus,
        "better|best|ideal|perfect|great suited? for singles|couples|adults|retirees|seniors|young",
    ),
    // National origin.
    (Ground::NationalOrigin, "where are you originally? from"),
    (Ground::NationalOrigin, "what country are you from"),
    (
        Ground::NationalOrigin,
        "what|whats is? your nationality|ethnicity|heritage|accent|native_language|first_language|citizenship|immigration_status",
    ),
    (
        Ground::NationalOrigin,
        "your national_origin|country_of_origin",
    ),
    (
        Ground::NationalOrigin,
        "are you a? us? citizen|immigrant|legal_resident|illegal|undocumented",
    ),
    (
        Ground::NationalOrigin,
        "do you have a? green_card|papers|visa",
    ),
    (Ground::NationalOrigin, "do you speak english"),
    (Ground::NationalOrigin, "english speakers? only"),
    (Ground::NationalOrigin, "must speak english"),
    // Religion.
    (Ground::Religion, "what|whats is? your religion|faith"),
    (
        Ground::Religion,
        "what church|mosque|temple|synagogue do you",
    ),
    (
        Ground::Religion,
        "do you go_to|attend church|mosque|temple|synagogue",
    ),
    (
        Ground::Religion,
        "are you christian|muslim|jewish|catholic|hindu|religious",
    ),
    // Disability.
    (
        Ground::Disability,
        "do you have a|any disability|disabilities|handicap|medical_condition|mental_illness",
    ),
    (Ground::Disability, "are you disabled|handicapped"),
    (
        Ground::Disability,
        "what|whats is? your disability|diagnosis|condition",
    ),
    (Ground::Disability, "do you use a wheelchair"),
    (Ground::Disability, "no wheelchairs"),
    (Ground::Disability, "proof of your disability"),
    // Marital status, sex, sexual orientation, gender identity.
    (
        Ground::MaritalStatusOrSex,
        "are you married|single|divorced|separated|widowed|gay|straight|lesbian|transgender",
    ),
    (
        Ground::MaritalStatusOrSex,
        "what|whats is? your marital_status|gender|sexual_orientation",
    ),
    (
        Ground::MaritalStatusOrSex,
        "is he|she|that your husband|wife|boyfriend|girlfriend|spouse",
    ),
    (Ground::MaritalStatusOrSex, "married couples only"),
    // Age.
    (Ground::Age, "how old are you"),
    (Ground::Age, "what|whats is? your age"),
    (Ground::Age, "too old|young for"),
    // Race or color.
    (Ground::RaceOrColor, "what|whats is? your race|color"),
    (
        Ground::RaceOrColor,
        "are you white|black|hispanic|latino|latina|asian|african_american",
    ),
    // Source of income.
    (Ground::SourceOfIncome, "no section_8|vouchers|voucher"),
    (
        Ground::SourceOfIncome,
        "dont|do_not|doesnt|does_not|cannot|cant|wont|will_not|never accept|take section_8|vouchers|voucher|housing_vouchers|assistance",
    ),
    (Ground::SourceOfIncome, "must be employed"),
    (Ground::SourceOfIncome, "employment income only"),
    // Steering.
    (Ground::Steering, "people like you"),
    (Ground::Steering, "your kind"),
    (Ground::Steering, "you|youd would? fit in"),
    (
        Ground::Steering,
        "mostly|predominantly|primarily|largely|mainly|very white|black|hispanic|latino|asian|jewish|christian|muslim|immigrant|immigrants|minority|minorities|ethnic|diverse",
    ),
    (
        Ground::Steering,
        "neighborhood|neighbourhood|area is diverse|ethnic|integrated|changing|white|black|hispanic|latino|asian",
    ),
    (
        Ground::Steering,
        "lots|full of families|immigrants|hispanics|latinos|minorities|retirees",
    ),
    (Ground::Steering, "your background|culture"),
];

/// A lead's message that asks about a voucher, accessibility, a disability or a reasonable
/// accommodation: a person answers it.
const ACCOMMODATION_PATTERNS: &[&str] = &[
    "section 8",
    "section eight",
    "voucher",
    "vouchers",
    "housing choice",
    "hcv",
    "cha",
    "wheelchair",
    "accessible",
    "accessibility",
    "ada",
    "handicap",
    "disability",
    "disabled",
    "reasonable accommodation",
    "accommodation",
    "service animal",
    "service dog",
    "emotional support",
    "esa",
    "assistance animal",
    "grab bars",
    "ground floor unit",
    // Spanish.
    "discapacidad",
    "silla de ruedas",
    "seccion 8",
];

/// The first fair-housing finding in a drafted reply, if any.
pub fn check_draft(draft: &str) -> Option<Finding> {
    let words = normalise(draft);
    DRAFT_PATTERNS
        .iter()
        .find(|(_, p)| matches_anywhere(&words, p))
        .map(|&(ground, pattern)| Finding { ground, pattern })
}

/// The phrase of `message` that makes it a voucher, accessibility or accommodation
/// question, if any.
pub fn accommodation_request(message: &str) -> Option<&'static str> {
    let words = normalise(message);
    ACCOMMODATION_PATTERNS
        .iter()
        .copied()
        .find(|p| matches_anywhere(&words, p))
}

/// One pattern token: any of its alternatives (each one or more words), or nothing when
/// optional.
struct Token<'a> {
    alternatives: Vec<Vec<&'a str>>,
    optional: bool,
}

fn tokens(pattern: &str) -> Vec<Token<'_>> {
    pattern
        .split_whitespace()
        .map(|t| {
            let (t, optional) = match t.strip_suffix('?') {
                Some(t) => (t, true),
                None => (t, false),
            };
            Token {
                alternatives: t.split('|').map(|a| a.split('_').collect()).collect(),
                optional,
            }
        })
        .collect()
}

fn matches_anywhere(words: &[String], pattern: &str) -> bool {
    let tokens = tokens(pattern);
    (0..words.len()).any(|start| matches_at(&words[start..], &tokens))
}

fn matches_at(words: &[String], tokens: &[Token<'_>]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return true;
    };
    let here = first.alternatives.iter().any(|alt| {
        words.len() >= alt.len()
            && words.iter().zip(alt).all(|(w, a)| w == a)
            && matches_at(&words[alt.len()..], rest)
    });
    here || (first.optional && matches_at(words, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drafts a person must see first, with the ground each touches.
    const HELD: &[(&str, Ground)] = &[
        (
            "Great! Do you have any kids moving in with you?",
            Ground::FamilialStatus,
        ),
        ("Any children? The 1BR is small.", Ground::FamilialStatus),
        (
            "How many kids will be living there?",
            Ground::FamilialStatus,
        ),
        (
            "Are you pregnant or planning to have a baby soon?",
            Ground::FamilialStatus,
        ),
        (
            "This building is adults only, sorry.",
            Ground::FamilialStatus,
        ),
        (
            "The loft is not suitable for families with kids.",
            Ground::FamilialStatus,
        ),
        (
            "It's perfect for young professionals like you.",
            Ground::FamilialStatus,
        ),
        (
            "We prefer tenants with no kids in the studios.",
            Ground::FamilialStatus,
        ),
        ("Where are you originally from?", Ground::NationalOrigin),
        (
            "What's your nationality? Just curious.",
            Ground::NationalOrigin,
        ),
        ("Are you a US citizen?", Ground::NationalOrigin),
        (
            "Do you speak English well enough to sign?",
            Ground::NationalOrigin,
        ),
        ("What church do you attend?", Ground::Religion),
        ("Are you Muslim? There's a mosque nearby.", Ground::Religion),
        (
            "Do you have a disability we should know about?",
            Ground::Disability,
        ),
        ("What is your diagnosis for the ESA?", Ground::Disability),
        ("Are you married or single?", Ground::MaritalStatusOrSex),
        (
            "Is he your boyfriend or your husband?",
            Ground::MaritalStatusOrSex,
        ),
        ("How old are you, if you don't mind me asking?", Ground::Age),
        (
            "The 4th floor walk-up might be too old for you.",
            Ground::Age,
        ),
        (
            "What is your race? It's for our records.",
            Ground::RaceOrColor,
        ),
        (
            "Sorry, we don't accept Section 8 at Lakeview.",
            Ground::SourceOfIncome,
        ),
        ("The owner does not take vouchers.", Ground::SourceOfIncome),
        (
            "No Section 8, but the 2BR is $1,900.",
            Ground::SourceOfIncome,
        ),
        (
            "Pilsen is mostly Hispanic, you'd fit in better in Lincoln Park.",
            Ground::Steering,
        ),
        (
            "The neighborhood is very diverse, lots of immigrants.",
            Ground::Steering,
        ),
        (
            "Rogers Park is full of families like yours.",
            Ground::Steering,
        ),
        (
            "People like you usually prefer the North side.",
            Ground::Steering,
        ),
    ];

    /// Ordinary leasing answers that must go out untouched.
    const PASSED: &[&str] = &[
        "We have 2BR units from $1,850 and pets are welcome. When would you like to tour?",
        "How many people will be living in the apartment?",
        "Is the 2BR for you alone, or will someone live with you?",
        "Kids are welcome at all our buildings, and there is a playground on site.",
        "We accept housing vouchers and every lawful source of income.",
        "Do you have a housing voucher? It helps us prepare the paperwork.",
        "The building has an elevator and a step-free entrance.",
        "Yes, service and assistance animals are always allowed, with no pet fee.",
        "Reasonable accommodation requests go to our team; someone will reach out today.",
        "What is your move-in date and your monthly budget?",
        "Where are you moving from? We can set up a video tour.",
        "Our income requirement is 2.5 times the rent, from any lawful source.",
        "The neighborhood has a grocery store, two parks and the Blue Line three blocks away.",
        "Stop by tomorrow at 10 and we will show you the unit.",
        "The unit is on the 3rd floor; this building has no elevator.",
        "I can describe the building and transit, not who lives in the area.",
        "We don't allow smoking in any unit.",
        "There is no parking garage, but street parking is free.",
        "Our studio is perfect for anyone who wants to live near the Loop.",
        "Applications need a photo ID and proof of income.",
        "Do you have any pets?",
        "The building is old: it was built in 1925 and renovated in 2019.",
        "Single rooms are not in our catalog; the smallest unit is a studio.",
        "The 1BR is $1,450 with heat included. Want to see it Saturday?",
        "Thanks for asking! A member of our team will follow up with you today.",
        "How old is the building? It was built in 1925.",
        "The area is quiet at night and close to the lake.",
        "We have ground floor units at Lakeview; want details?",
    ];

    #[test]
    fn the_draft_corpus_holds_both_sides() {
        for (draft, ground) in HELD {
            let f = check_draft(draft).unwrap_or_else(|| panic!("not held: {draft:?}"));
            assert_eq!(f.ground, *ground, "{draft:?}: {f:?}");
        }
        for draft in PASSED {
            assert_eq!(check_draft(draft), None, "held: {draft:?}");
        }
        // The sizes the closing note reports.
        assert_eq!((HELD.len(), PASSED.len()), (28, 28));
    }

    #[test]
    fn voucher_accessibility_and_accommodation_questions_go_to_a_person() {
        for msg in [
            "Do you take Section 8?",
            "I have a housing choice voucher, is that ok?",
            "Is the building wheelchair accessible?",
            "I need a reasonable accommodation for my service dog",
            "Can I have an emotional support animal?",
            "Tienen apartamentos para silla de ruedas?",
        ] {
            assert!(accommodation_request(msg).is_some(), "{msg:?}");
        }
        for msg in [
            "Hi, any 1BR under $1500?",
            "Can I see the unit Saturday?",
            "Is parking included?",
            "I have a cat and a small dog",
            "stop by tomorrow?",
        ] {
            assert_eq!(accommodation_request(msg), None, "{msg:?}");
        }
    }

    #[test]
    fn the_prompt_rule_names_the_grounds_and_the_hand_off() {
        for w in [
            "familial status",
            "disability",
            "source of income",
            "reasonable accommodation",
            "same answer",
        ] {
            assert!(PROMPT_RULE.contains(w), "{w}");
        }
    }
}
