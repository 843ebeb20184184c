//! Pets: the one a lead names ("a 60 lb lab") and a building's policy as the catalog
//! words it ("cats and dogs under 40 lb, $35/month pet rent"), and whether one fits the
//! other.
//!
//! Owns: both readings and the fit. Must not: word an answer (`super` does).

use super::super::catalog::Building;
use super::words;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PetKind {
    Dog,
    Cat,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pet {
    pub kind: PetKind,
    pub weight_lb: Option<u32>,
}

impl Pet {
    pub fn describe(&self) -> String {
        let kind = match self.kind {
            PetKind::Dog => "dog",
            PetKind::Cat => "cat",
            PetKind::Other => "pet",
        };
        match self.weight_lb {
            Some(w) => format!("a {w} lb {kind}"),
            None => format!("a {kind}"),
        }
    }
}

const DOG_WORDS: &[&str] = &[
    "dog",
    "dogs",
    "puppy",
    "pup",
    "lab",
    "labrador",
    "retriever",
    "shepherd",
    "pitbull",
    "pit",
    "husky",
    "poodle",
    "terrier",
    "chihuahua",
    "beagle",
    "bulldog",
    "doodle",
    "corgi",
    "dachshund",
    "boxer",
    "rottweiler",
];
const CAT_WORDS: &[&str] = &["cat", "cats", "kitten", "kitty", "kittens"];
const OTHER_PET_WORDS: &[&str] = &[
    "pet", "pets", "bird", "rabbit", "bunny", "hamster", "ferret", "parrot", "animal", "animals",
];

/// The pet a lead's words name, with its weight when given ("60 lb", "60lbs", "60
/// pounds"). `None` when no animal is named.
pub fn read_pet(text: &str) -> Option<Pet> {
    let w = words(text);
    let has = |list: &[&str]| w.iter().any(|x| list.contains(&x.as_str()));
    let kind = if has(DOG_WORDS) {
        PetKind::Dog
    } else if has(CAT_WORDS) {
        PetKind::Cat
    } else if has(OTHER_PET_WORDS) {
        PetKind::Other
    } else {
        return None;
    };
    let is_unit = |s: &str| matches!(s, "lb" | "lbs" | "pound" | "pounds");
    let mut weight_lb = None;
    for (i, x) in w.iter().enumerate() {
        let digits: String = x.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            continue;
        }
        let rest = &x[digits.len()..];
        if is_unit(rest) || (rest.is_empty() && w.get(i + 1).is_some_and(|n| is_unit(n))) {
            weight_lb = digits.parse().ok();
        }
    }
    Some(Pet { kind, weight_lb })
}

/// A building's pet policy as the catalog words it ("cats and dogs under 40 lb, $35/month
/// pet rent", "cats only"); no `pets` (or notes saying "no pets") = none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PetPolicy {
    pub cats: bool,
    pub dogs: bool,
    pub dog_max_lb: Option<u32>,
    pub pet_rent: Option<u32>,
}

impl PetPolicy {
    pub fn of(b: &Building) -> Self {
        let Some(text) = b.pets.as_deref() else {
            return Self::default();
        };
        let w = words(text);
        if w.starts_with(&["no".into()]) || w.iter().any(|x| x == "none") {
            return Self::default();
        }
        let mut p = Self {
            cats: w.iter().any(|x| x.starts_with("cat")),
            dogs: w.iter().any(|x| x.starts_with("dog")),
            ..Self::default()
        };
        if !p.cats && !p.dogs && w.iter().any(|x| x.starts_with("pet")) {
            // "pets allowed": both, as the words say.
            p.cats = true;
            p.dogs = true;
        }
        for (i, x) in w.iter().enumerate() {
            if let Some(amount) = x.strip_prefix('$') {
                p.pet_rent = amount.parse().ok();
            }
            if matches!(x.as_str(), "under" | "up" | "max" | "below")
                && let Some(n) = w[i + 1..].iter().find_map(|n| {
                    let d: String = n.chars().take_while(char::is_ascii_digit).collect();
                    d.parse().ok()
                })
            {
                p.dog_max_lb = Some(n);
            }
        }
        p
    }

    pub fn any(&self) -> bool {
        self.cats || self.dogs
    }

    /// `Some(true)` fits, `Some(false)` does not; `None`: a kind the catalog's words do
    /// not settle (a rabbit where "cats and dogs" are named).
    pub fn fits(&self, pet: &Pet) -> Option<bool> {
        match pet.kind {
            PetKind::Cat => Some(self.cats),
            PetKind::Dog => Some(
                self.dogs
                    && match (self.dog_max_lb, pet.weight_lb) {
                        (Some(max), Some(w)) => w < max,
                        _ => true,
                    },
            ),
            PetKind::Other if !self.any() => Some(false),
            PetKind::Other => None,
        }
    }
}
